/**
 * The session store contract: what every SessionStore must do (src/core/session.ts), run against
 * each implementation.
 *
 * @example
 * sessionStoreContract("memory", async () => ({ store: new MemorySessionStore() }));
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ReplayEvent, Session, SessionStore, Taken } from "../../src/core/session.ts";

export interface StoreHarness {
  store: SessionStore;
  /** Another node's store over the same data (the same object for a single-node store). */
  peer: SessionStore;
  close?(): Promise<void>;
}

const T0 = Date.UTC(2026, 0, 1);

function session(clientId: string, patch: Partial<Session> = {}): Session {
  return {
    clientId,
    state: "connected",
    epoch: 1,
    nodeId: "n1",
    connectedAt: T0,
    subscriptions: [],
    ...patch,
  };
}

function away(clientId: string, deadline: number, epoch = 1): Session {
  return session(clientId, {
    state: "disconnected",
    epoch,
    nodeId: undefined,
    disconnectedAt: deadline - 1000,
    reconnectionDeadline: deadline,
  });
}

const sessionOf = (taken: Taken) => "session" in taken ? taken.session : undefined;

/** A session with its undefined fields dropped, as JSON would store it. */
const plain = (s: Session | undefined) => s && JSON.parse(JSON.stringify(s));

export function sessionStoreContract(kind: string, setup: () => Promise<StoreHarness>): void {
  const id = (label: string) => `${label}-${crypto.randomUUID()}`;
  const run = (name: string, body: (store: SessionStore, peer: SessionStore) => Promise<void>) =>
    test(`${kind} store: ${name}`, async () => {
      const harness = await setup();
      try {
        await body(harness.store, harness.peer);
      } finally {
        await harness.store.close();
        await harness.peer.close();
        await harness.close?.();
      }
    });

  run("ping answers", async (store) => {
    await store.ping();
  });

  run("every field survives a round trip, and absent ones stay absent", async (store, peer) => {
    const c = id("c");
    const full = session(c, {
      epoch: 7,
      leaseUntil: T0 + 15_000,
      reconnectionDeadline: T0 + 315_000,
      subscriptions: [
        { endpoint: "chat", params: {}, boundAt: T0 },
        { endpoint: "rooms", params: { room: "a b", "ü": "ö" }, boundAt: T0 + 1 },
      ],
    });
    await store.create(full);
    assert.deepEqual(await peer.get(c), full);
    const gone = away(c, T0 + 9000, 8);
    await store.update(gone, 7);
    assert.deepEqual(plain(await peer.get(c)), plain(gone), "an update replaces every field");
  });

  run("create, then get returns an equal copy", async (store) => {
    const c = id("c");
    const s = session(c, { subscriptions: [{ endpoint: "chat", params: { room: "r" }, boundAt: T0 }] });
    assert.equal(await store.get(c), undefined);
    assert.equal(await store.create(s), true);
    assert.deepEqual(await store.get(c), s);
    assert.equal(await store.create(session(c, { epoch: 9 })), false, "create never overwrites");
    assert.equal((await store.get(c))?.epoch, 1);
  });

  run("update is compare-and-set on the epoch", async (store) => {
    const c = id("c");
    await store.create(session(c));
    assert.equal(await store.update(session(c, { epoch: 2, nodeId: "n2" }), 1), true);
    assert.equal(await store.update(session(c, { epoch: 3, nodeId: "n3" }), 1), false, "stale epoch");
    assert.equal((await store.get(c))?.nodeId, "n2");
    assert.equal(await store.update(session(id("missing")), 1), false, "no session, no write");
  });

  run("delete is compare-and-set on the epoch", async (store) => {
    const c = id("c");
    await store.create(session(c, { epoch: 4 }));
    assert.equal(await store.delete(c, 3), false);
    assert.ok(await store.get(c));
    assert.equal(await store.delete(c, 4), true);
    assert.equal(await store.get(c), undefined);
    assert.equal(await store.delete(c, 4), false);
  });

  run("listExpired: past-deadline sessions, oldest first, limited", async (store) => {
    const now = T0 + 10 * 60_000;
    const [a, b, c, live, future] = [id("a"), id("b"), id("c"), id("live"), id("future")];
    await store.create(away(b, now - 2000));
    await store.create(away(a, now - 3000));
    await store.create(away(c, now - 1000));
    await store.create(session(live));
    await store.create(away(future, now + 1000));
    const expired = (await store.listExpired(now, 1000)).filter((x) => [a, b, c, live, future].includes(x));
    assert.deepEqual(expired, [a, b, c]);
    const first = await store.listExpired(now, 1);
    assert.equal(first.length, 1);
  });

  run("listExpired: a connected session under a lapsed lease expires at lease + window", async (store) => {
    const now = T0 + 10 * 60_000;
    const crashed = id("crashed");
    await store.create(session(crashed, { leaseUntil: now - 6000, reconnectionDeadline: now - 1000 }));
    assert.ok((await store.listExpired(now, 1000)).includes(crashed));
  });

  run("update is compare-and-set across nodes: of two racing writers one wins", async (store, peer) => {
    const c = id("c");
    await store.create(session(c, { epoch: 3 }));
    const results = await Promise.all([
      store.update(session(c, { epoch: 4, nodeId: "a" }), 3),
      peer.update(session(c, { epoch: 4, nodeId: "b" }), 3),
    ]);
    assert.equal(results.filter(Boolean).length, 1);
    assert.equal((await store.get(c))?.nodeId, results[0] ? "a" : "b");
  });

  run("claimExpired: exactly one of many concurrent callers on two nodes wins", async (store, peer) => {
    const now = T0 + 10 * 60_000;
    const c = id("c");
    await store.create(away(c, now - 1));
    const claims = await Promise.all(
      Array.from({ length: 8 }, (_, i) => (i % 2 ? peer : store).claimExpired(c, now, 60_000)),
    );
    assert.equal(claims.filter(Boolean).length, 1);
    assert.equal(claims.find(Boolean)?.clientId, c);
    assert.ok(await store.get(c), "a claimed session stays readable until deleted");
  });

  run("claimExpired: not before the deadline, and not a session that came back", async (store) => {
    const now = T0 + 10 * 60_000;
    const c = id("c");
    await store.create(away(c, now + 5000));
    assert.equal(await store.claimExpired(c, now, 60_000), undefined);
    assert.equal(await store.claimExpired(id("missing"), now, 60_000), undefined);
    await store.update(session(c, { epoch: 2 }), 1);
    assert.equal(await store.claimExpired(c, now + 10_000, 60_000), undefined);
  });

  run("claimExpired: a crashed cleanup's claim lapses after its ttl", async (store) => {
    const now = T0 + 10 * 60_000;
    const c = id("c");
    await store.create(away(c, now - 1));
    assert.ok(await store.claimExpired(c, now, 5000));
    assert.equal(await store.claimExpired(c, now + 4000, 5000), undefined);
    assert.ok(await store.claimExpired(c, now + 6000, 5000));
  });

  run("a write voids a cleanup claim, and a session that got no deadline leaves the index", async (store) => {
    const now = T0 + 10 * 60_000;
    const c = id("c");
    await store.create(away(c, now - 1));
    assert.ok(await store.claimExpired(c, now, 60_000));
    await store.update(away(c, now - 1, 2), 1);
    assert.ok(await store.claimExpired(c, now, 60_000), "the claim went with the old record");
    await store.update(session(c, { epoch: 3 }), 2);
    assert.ok(!(await store.listExpired(now + 60_000, 1000)).includes(c));
  });

  run(
    "renew: matching epochs get the lease and deadline, the others are reported lost with the reason",
    async (store, peer) => {
      const now = T0 + 10 * 60_000;
      const [mine, taken, gone] = [id("mine"), id("taken"), id("gone")];
      await store.create(session(mine, { leaseUntil: now - 5000, reconnectionDeadline: now - 1 }));
      await store.create(session(taken, { epoch: 2 }));
      assert.ok((await store.listExpired(now, 1000)).includes(mine));
      const lost = await peer.renew(
        [{ clientId: mine, epoch: 1 }, { clientId: taken, epoch: 1 }, { clientId: gone, epoch: 1 }],
        now,
        now + 15_000,
        now + 315_000,
      );
      assert.deepEqual(
        lost.sort((a, b) => a.clientId < b.clientId ? -1 : 1),
        [{ clientId: gone, reason: "expired" }, { clientId: taken, reason: "taken" }].sort((a, b) =>
          a.clientId < b.clientId ? -1 : 1
        ),
      );
      const renewed = await store.get(mine);
      assert.equal(renewed?.leaseUntil, now + 15_000);
      assert.equal(renewed?.reconnectionDeadline, now + 315_000);
      assert.ok(!(await store.listExpired(now + 1000, 1000)).includes(mine), "no longer expired");
      assert.equal((await store.get(taken))?.leaseUntil, undefined, "a lost lease is not written");
      assert.equal(await store.get(gone), undefined, "a lost lease creates nothing");
      assert.deepEqual(await store.renew([], now, now, now), []);
    },
  );

  run("renew honours a held cleanup claim and clears a lapsed one", async (store, peer) => {
    const now = T0 + 10 * 60_000;
    const [held, lapsed] = [id("held"), id("lapsed")];
    for (const c of [held, lapsed]) {
      await store.create(session(c, { leaseUntil: now - 5000, reconnectionDeadline: now - 100 }));
    }
    assert.ok(await peer.claimExpired(held, now, 60_000));
    assert.ok(await peer.claimExpired(lapsed, now - 50, 10), "claimed until now - 40: lapsed at now");
    const lost = await store.renew(
      [{ clientId: held, epoch: 1 }, { clientId: lapsed, epoch: 1 }],
      now,
      now + 15_000,
      now + 315_000,
    );
    assert.deepEqual(lost, [{ clientId: held, reason: "expired" }], "a held claim wins over the renewal");
    assert.equal(
      (await store.get(held))?.reconnectionDeadline,
      now - 100,
      "the claimed session is not renewed",
    );
    assert.equal((await store.get(lapsed))?.reconnectionDeadline, now + 315_000);
    // The lapsed claim went with the renewal: once expired again, the session can be claimed at once.
    assert.ok(await peer.claimExpired(lapsed, now + 400_000, 60_000));
  });

  run(
    "listExpired leaves out sessions held by a cleanup claim until the claim lapses",
    async (store, peer) => {
      const now = T0 + 10 * 60_000;
      const stuck = Array.from({ length: 5 }, (_, i) => id(`stuck${i}`));
      const newer = id("newer");
      for (const [i, c] of stuck.entries()) await store.create(away(c, now - 1000 + i));
      await store.create(away(newer, now - 10));
      for (const c of stuck) assert.ok(await peer.claimExpired(c, now, 60_000));
      const ours = (ids: string[]) => ids.filter((x) => [...stuck, newer].includes(x));
      // More stuck claims than the page holds: the newer session is still listed.
      assert.deepEqual(ours(await store.listExpired(now, 1000)), [newer]);
      assert.ok((await store.listExpired(now, 1)).length <= 1);
      const later = ours(await store.listExpired(now + 61_000, 1000));
      assert.deepEqual(later.sort(), [...stuck, newer].sort(), "lapsed claims come back");
    },
  );

  run(
    "connect: a session belongs to its subject; another subject's connect is forbidden and changes nothing",
    async (store, peer) => {
      const c = id("owned");
      const attach = (now: number, subject?: string) => ({
        nodeId: "n1",
        now,
        leaseUntil: now + 15_000,
        deadline: now + 315_000,
        freshEpoch: 7,
        subject,
      });
      const created = await store.connect(c, attach(T0, "alice"));
      assert.equal(created.outcome, "created");
      assert.equal(sessionOf(created)?.subject, "alice");
      assert.deepEqual(await peer.connect(c, attach(T0 + 1, "mallory")), { outcome: "forbidden" });
      assert.deepEqual(
        await peer.connect(c, attach(T0 + 1)),
        { outcome: "forbidden" },
        "nor without a subject",
      );
      assert.equal((await store.get(c))?.epoch, 7, "untouched");
      const again = await peer.connect(c, attach(T0 + 2, "alice"));
      assert.equal(again.outcome, "resumed");
      assert.equal(sessionOf(again)?.epoch, 8);
      // A session made without authentication is taken, and from then on owned, by the first subject.
      const open = id("open");
      await store.connect(open, attach(T0));
      assert.equal((await store.connect(open, attach(T0 + 1, "bob"))).outcome, "resumed");
      assert.equal((await store.get(open))?.subject, "bob");
      assert.equal((await store.connect(open, attach(T0 + 2, "eve"))).outcome, "forbidden");
    },
  );

  run(
    "connect: a subject holds at most maxSessions sessions; deleting one makes room",
    async (store, peer) => {
      const subject = id("subject");
      const attach = (now: number) => ({
        nodeId: "n1",
        now,
        leaseUntil: now + 15_000,
        deadline: now + 315_000,
        freshEpoch: 3,
        subject,
        maxSessions: 2,
      });
      const [a, b, c] = [id("a"), id("b"), id("c")];
      assert.equal((await store.connect(a, attach(T0))).outcome, "created");
      assert.equal((await peer.connect(b, attach(T0))).outcome, "created");
      assert.deepEqual(await store.connect(c, attach(T0)), { outcome: "limited" }, "a third is refused");
      assert.equal(await store.get(c), undefined, "and nothing written");
      assert.equal((await peer.connect(a, attach(T0 + 1))).outcome, "resumed", "its own come back");
      assert.ok(await store.delete(b, 3));
      assert.equal((await store.connect(c, attach(T0 + 2))).outcome, "created", "room again");
      assert.equal(
        (await store.connect(id("other"), { ...attach(T0), subject: id("s2") })).outcome,
        "created",
      );
    },
  );

  run(
    "connect: creates, then takes within the deadline (epoch + 1), leaves an expired one alone",
    async (store, peer) => {
      const c = id("c");
      const attach = (now: number, nodeId = "n1") => ({
        nodeId,
        now,
        leaseUntil: now + 15_000,
        deadline: now + 315_000,
        freshEpoch: 42,
      });
      const created = await store.connect(c, attach(T0));
      assert.equal(created.outcome, "created");
      const expected: Session = {
        clientId: c,
        state: "connected",
        epoch: 42,
        nodeId: "n1",
        connectedAt: T0,
        leaseUntil: T0 + 15_000,
        reconnectionDeadline: T0 + 315_000,
        subscriptions: [],
      };
      assert.deepEqual(plain(sessionOf(created)), expected);
      assert.deepEqual(plain(await peer.get(c)), expected);

      const sub = { endpoint: "chat", params: { room: "r" }, boundAt: T0 + 1 };
      assert.equal(await store.setSubscription(c, 42, "chat", sub), true);
      assert.equal(await store.release(c, 42, T0 + 2000, T0 + 302_000), true);
      const taken = await peer.connect(c, attach(T0 + 3000, "n2"));
      assert.equal(taken.outcome, "resumed");
      assert.deepEqual(plain(sessionOf(taken)), {
        ...expected,
        epoch: 43,
        nodeId: "n2",
        connectedAt: T0 + 3000,
        leaseUntil: T0 + 18_000,
        reconnectionDeadline: T0 + 318_000,
        subscriptions: [sub],
      }, "connected again: no disconnectedAt, subscriptions kept");

      // A connected session taken by another node is taken over the same way.
      const again = await store.connect(c, attach(T0 + 4000, "n1"));
      assert.equal(sessionOf(again)?.epoch, 44);

      await store.release(c, 44, T0 + 5000, T0 + 6000);
      assert.deepEqual(await store.connect(c, attach(T0 + 7000)), { outcome: "expired" });
      assert.equal((await store.get(c))?.epoch, 44, "an expired session is left alone");
    },
  );

  run("release is compare-and-set, and marks the session disconnected with its deadline", async (store) => {
    const c = id("c");
    await store.create(session(c, { epoch: 5, leaseUntil: T0 + 15_000, reconnectionDeadline: T0 + 315_000 }));
    assert.equal(await store.release(c, 4, T0 + 1000, T0 + 301_000), false);
    assert.equal((await store.get(c))?.state, "connected");
    assert.equal(await store.release(c, 5, T0 + 1000, T0 + 301_000), true);
    assert.deepEqual(
      plain(await store.get(c)),
      plain({ ...away(c, T0 + 301_000, 5), disconnectedAt: T0 + 1000 }),
    );
    assert.equal(await store.release(id("missing"), 1, T0, T0), false);
  });

  run("setSubscription is compare-and-set; it adds, replaces and removes one endpoint", async (store) => {
    const c = id("c");
    await store.create(session(c, { epoch: 2 }));
    const chat = { endpoint: "chat", params: {}, boundAt: T0 + 1 };
    const rooms = { endpoint: "rooms", params: { room: "a" }, boundAt: T0 + 2 };
    assert.equal(await store.setSubscription(c, 1, "chat", chat), false, "stale epoch");
    assert.deepEqual((await store.get(c))?.subscriptions, []);
    assert.equal(await store.setSubscription(c, 2, "chat", chat), true);
    assert.equal(await store.setSubscription(c, 2, "rooms", rooms), true);
    assert.deepEqual((await store.get(c))?.subscriptions, [chat, rooms]);
    const moved = { ...rooms, params: { room: "b" } };
    await store.setSubscription(c, 2, "rooms", moved);
    assert.deepEqual((await store.get(c))?.subscriptions, [chat, moved]);
    await store.setSubscription(c, 2, "chat", undefined);
    assert.deepEqual((await store.get(c))?.subscriptions, [moved]);
    assert.equal(await store.setSubscription(id("missing"), 1, "chat", chat), false, "creates nothing");
  });

  run(
    "counts: connected under a live lease, disconnected otherwise (lapsed leases included)",
    async (store, peer) => {
      const now = T0 + 10 * 60_000;
      const [live, lapsed, away1, gone] = [id("live"), id("lapsed"), id("away"), id("gone")];
      const before = await store.counts(now);
      await store.create(session(live, { leaseUntil: now + 5000, reconnectionDeadline: now + 305_000 }));
      await store.create(session(lapsed, { leaseUntil: now - 5000, reconnectionDeadline: now + 295_000 }));
      await store.create(away(away1, now + 1000));
      await peer.connect(gone, {
        nodeId: "n2",
        now,
        leaseUntil: now + 5000,
        deadline: now + 305_000,
        freshEpoch: 1,
      });
      await peer.release(gone, 1, now, now + 300_000);
      const after = await store.counts(now);
      assert.deepEqual(
        {
          connected: after.connected - before.connected,
          disconnected: after.disconnected - before.disconnected,
        },
        { connected: 1, disconnected: 3 },
      );
      await store.delete(gone, 1);
      assert.equal((await peer.counts(now)).disconnected, after.disconnected - 1);
    },
  );

  // The publish dedupe ledger. Times are T0-based: a virtual clock, far from the store's own.
  const TTL = 60_000;
  const MAX = 100;
  const NEW = { state: "new" } as const;
  const PENDING = { state: "pending" } as const;
  const done = (receipt: string) => ({ state: "done", receipt });
  const receiptOf = (offset: number) => JSON.stringify({ endpoint: "chat", offset, "ü": "ö" });

  run(
    "publish ledger: a reserved id is pending until completed, then its receipt answers every retry, on any node and epoch",
    async (store, peer) => {
      const c = id("c");
      const attach = (now: number, nodeId: string) => ({
        nodeId,
        now,
        leaseUntil: now + 15_000,
        deadline: now + 315_000,
        freshEpoch: 1,
      });
      await store.connect(c, attach(T0, "n1"));
      assert.deepEqual(await store.reservePublish(c, "p1", T0 + 1, TTL, MAX), NEW);
      assert.deepEqual(await peer.reservePublish(c, "p1", T0 + 2, TTL, MAX), PENDING);
      await store.completePublish(c, "p1", receiptOf(7), T0 + 3, TTL);
      assert.deepEqual(await store.reservePublish(c, "p1", T0 + 4, TTL, MAX), done(receiptOf(7)));
      // The client loses its connection and comes back on another node: a new epoch.
      await store.release(c, 1, T0 + 5, T0 + 300_000);
      assert.equal((await peer.connect(c, attach(T0 + 6, "n2"))).outcome, "resumed");
      assert.deepEqual(await peer.reservePublish(c, "p1", T0 + 7, TTL, MAX), done(receiptOf(7)));
      assert.deepEqual(await peer.reservePublish(c, "p2", T0 + 8, TTL, MAX), NEW, "another id is new");
    },
  );

  run(
    "publish ledger: of concurrent reserves of one id on two nodes exactly one is new",
    async (store, peer) => {
      const c = id("c");
      await store.create(session(c));
      const states = await Promise.all(
        Array.from({ length: 8 }, (_, i) => (i % 2 ? peer : store).reservePublish(c, "p", T0 + i, TTL, MAX)),
      );
      assert.deepEqual(
        states.map((s) => s.state).sort(),
        ["new", ...Array(7).fill("pending")],
      );
    },
  );

  run(
    "publish ledger: a reservation or a receipt counts for ttl from its last write",
    async (store, peer) => {
      const c = id("c");
      await store.create(session(c));
      // A node died mid-publish: its reservation blocks the id until ttl has passed.
      assert.deepEqual(await store.reservePublish(c, "p", T0, TTL, MAX), NEW);
      assert.deepEqual(await peer.reservePublish(c, "p", T0 + TTL - 1, TTL, MAX), PENDING);
      assert.deepEqual(await peer.reservePublish(c, "p", T0 + TTL, TTL, MAX), NEW, "pending past ttl");
      const completed = T0 + TTL + 10;
      await peer.completePublish(c, "p", receiptOf(1), completed, TTL);
      assert.deepEqual(await store.reservePublish(c, "p", completed + TTL - 1, TTL, MAX), done(receiptOf(1)));
      assert.deepEqual(await store.reservePublish(c, "p", completed + TTL, TTL, MAX), NEW, "done past ttl");
      // A completion that comes after its reservation lapsed stores nothing.
      await store.completePublish(c, "p", receiptOf(2), completed + 2 * TTL, TTL);
      assert.deepEqual(await store.reservePublish(c, "p", completed + 2 * TTL, TTL, MAX), NEW);
    },
  );

  run(
    "publish ledger: a failed publish frees its id; only a pending reservation is completed",
    async (store) => {
      const c = id("c");
      await store.create(session(c));
      assert.deepEqual(await store.reservePublish(c, "p", T0, TTL, MAX), NEW);
      await store.completePublish(c, "p", undefined, T0 + 1, TTL);
      assert.deepEqual(await store.reservePublish(c, "p", T0 + 2, TTL, MAX), NEW, "may be published again");
      await store.completePublish(c, "p", receiptOf(1), T0 + 3, TTL);
      await store.completePublish(c, "p", receiptOf(2), T0 + 4, TTL);
      await store.completePublish(c, "p", undefined, T0 + 5, TTL);
      assert.deepEqual(
        await store.reservePublish(c, "p", T0 + 6, TTL, MAX),
        done(receiptOf(1)),
        "a receipt stays as first stored",
      );
      await store.completePublish(c, "never-reserved", receiptOf(3), T0 + 7, TTL);
      assert.deepEqual(await store.reservePublish(c, "never-reserved", T0 + 8, TTL, MAX), NEW);
    },
  );

  run("publish ledger: past maxIds the least recently written id is evicted", async (store) => {
    const c = id("c");
    await store.create(session(c));
    for (const [i, p] of ["a", "b", "c"].entries()) {
      assert.deepEqual(await store.reservePublish(c, p, T0 + i, TTL, 3), NEW);
    }
    await store.completePublish(c, "a", receiptOf(1), T0 + 3, TTL);
    // Written last, "a" is now the newest: "b" goes first.
    assert.deepEqual(await store.reservePublish(c, "d", T0 + 4, TTL, 3), NEW);
    assert.deepEqual(await store.reservePublish(c, "c", T0 + 5, TTL, 3), PENDING);
    assert.deepEqual(await store.reservePublish(c, "a", T0 + 5, TTL, 3), done(receiptOf(1)));
    assert.deepEqual(await store.reservePublish(c, "d", T0 + 5, TTL, 3), PENDING);
    assert.deepEqual(await store.reservePublish(c, "b", T0 + 6, TTL, 3), NEW, "evicted");
    assert.deepEqual(await store.reservePublish(c, "c", T0 + 7, TTL, 3), NEW, "evicted by b");
    assert.deepEqual(await store.reservePublish(c, "a", T0 + 8, TTL, 3), NEW, "evicted by c");
  });

  run(
    "publish ledger: goes with the session's delete, and a client without a session has none",
    async (store) => {
      const c = id("c");
      await store.create(session(c, { epoch: 3 }));
      assert.deepEqual(await store.reservePublish(c, "p", T0, TTL, MAX), NEW);
      await store.completePublish(c, "p", receiptOf(1), T0 + 1, TTL);
      assert.equal(await store.delete(c, 2), false);
      assert.deepEqual(
        await store.reservePublish(c, "p", T0 + 2, TTL, MAX),
        done(receiptOf(1)),
        "stale delete",
      );
      assert.equal(await store.delete(c, 3), true);
      assert.deepEqual(await store.reservePublish(c, "p", T0 + 3, TTL, MAX), NEW);
      assert.deepEqual(await store.reservePublish(c, "p", T0 + 4, TTL, MAX), NEW, "nothing recorded");
      await store.create(session(c));
      assert.deepEqual(
        await store.reservePublish(c, "p", T0 + 5, TTL, MAX),
        NEW,
        "a fresh session, a fresh ledger",
      );
    },
  );

  run("publish ledger: one client's ids are independent of another's", async (store, peer) => {
    const [a, b] = [id("a"), id("b")];
    await store.create(session(a));
    await store.create(session(b));
    assert.deepEqual(await store.reservePublish(a, "p", T0, TTL, 1), NEW);
    assert.deepEqual(await peer.reservePublish(b, "p", T0 + 1, TTL, 1), NEW);
    await store.completePublish(a, "p", receiptOf(1), T0 + 2, TTL);
    assert.deepEqual(await peer.reservePublish(b, "p", T0 + 3, TTL, 1), PENDING);
    assert.deepEqual(await peer.reservePublish(b, "q", T0 + 4, TTL, 1), NEW, "evicts b's p, not a's");
    assert.deepEqual(await store.reservePublish(a, "p", T0 + 5, TTL, 1), done(receiptOf(1)));
    await store.delete(b, 1);
    assert.deepEqual(await store.reservePublish(a, "p", T0 + 6, TTL, 1), done(receiptOf(1)));
  });

  // The SSE replay log.
  const BOUND = 1 << 20;
  const LIFE = 60_000;
  /** Event `n` of `endpoint`, its text as a stream writes it (multi-line, quotes, non-ASCII). */
  const event = (n: number, endpoint = "chat", data = `"ü" \\ ${n}`): ReplayEvent => {
    const id = `${endpoint}/${n}`;
    return { id, endpoint, text: `id: ${id}\nevent: message\ndata: ${data}\ndata: line 2\n\n` };
  };
  const events = (from: number, to: number, endpoint?: string) =>
    Array.from({ length: to - from + 1 }, (_, i) => event(from + i, endpoint));
  const taken = (list: ReplayEvent[], found: boolean, evicted = 0) => ({ events: list, evicted, found });
  const NONE = taken([], false);
  const bytes = (e: ReplayEvent) => new TextEncoder().encode(e.text).length;

  run("replay log: append, then a take without an id returns every event, oldest first", async (store) => {
    const c = id("c");
    await store.create(session(c));
    assert.equal(await store.appendReplay(c, events(1, 2), BOUND, LIFE), 0);
    assert.equal(await store.appendReplay(c, [], BOUND, LIFE), 0);
    assert.equal(await store.appendReplay(c, events(3, 5), BOUND, LIFE), 0);
    assert.deepEqual(await store.takeReplay(c, undefined), taken(events(1, 5), false));
  });

  run(
    "replay log: a take drops what Last-Event-ID confirms and keeps the rest until it is confirmed",
    async (store) => {
      const c = id("c");
      await store.create(session(c));
      await store.appendReplay(c, events(1, 5), BOUND, LIFE);
      assert.deepEqual(await store.takeReplay(c, event(2).id), taken(events(3, 5), true));
      // The new stream dropped before the client had event 3: all of 3..5 again.
      assert.deepEqual(await store.takeReplay(c, undefined), taken(events(3, 5), false));
      assert.deepEqual(await store.takeReplay(c, event(2).id), taken(events(3, 5), true), "2 was confirmed");
      assert.deepEqual(await store.takeReplay(c, event(5).id), taken([], true));
      assert.deepEqual(
        await store.takeReplay(c, event(5).id),
        taken([], true),
        "reconnected again, nothing new",
      );
      assert.deepEqual(await store.takeReplay(c, event(2).id), taken([], false), "confirmed before 5");
      await store.appendReplay(c, events(6, 7), BOUND, LIFE);
      assert.deepEqual(await store.takeReplay(c, event(6).id), taken(events(7, 7), true));
    },
  );

  run("replay log: an unknown Last-Event-ID is not found and drops nothing", async (store) => {
    const c = id("c");
    await store.create(session(c));
    await store.appendReplay(c, events(1, 3), BOUND, LIFE);
    assert.deepEqual(await store.takeReplay(c, "chat/9"), taken(events(1, 3), false));
    assert.deepEqual(await store.takeReplay(c, "chat"), taken(events(1, 3), false), "a prefix of an id");
    assert.deepEqual(await store.takeReplay(c, ""), taken(events(1, 3), false));
    assert.deepEqual(await store.takeReplay(c, event(1).id), taken(events(2, 3), true));
  });

  run("replay log: ids and texts come back exactly, and only a whole id matches", async (store, peer) => {
    const c = id("c");
    await store.create(session(c));
    const odd = ['a,"b"', 'a,"b"x', "x\\y", "ü/1", '{"bytes":1,"id":"z"}'].map((id, i): ReplayEvent => ({
      id,
      endpoint: `e,"${i}"`,
      text: `id: ${id}\ndata: {"q":"\\"/\u{1F600}\u0000\t"}\n\n`,
    }));
    await store.appendReplay(c, odd, BOUND, LIFE);
    assert.deepEqual(await peer.takeReplay(c, undefined), taken(odd, false));
    assert.deepEqual(await peer.takeReplay(c, 'a,"b"'), taken(odd.slice(1), true));
    assert.deepEqual(await peer.takeReplay(c, "ü/1"), taken(odd.slice(4), true));
  });

  run("replay log: past maxBytes the oldest are evicted, counted once until the next take", async (store) => {
    const c = id("c");
    await store.create(session(c));
    // Five characters, ten bytes in UTF-8: the bound counts bytes.
    const fat = (n: number): ReplayEvent => ({ id: `f${n}`, endpoint: "chat", text: "üüüüü" });
    assert.equal(await store.appendReplay(c, [fat(1), fat(2), fat(3)], 25, LIFE), 1);
    assert.equal(await store.appendReplay(c, [fat(4)], 25, LIFE), 1);
    assert.deepEqual(await store.takeReplay(c, undefined), taken([fat(3), fat(4)], false, 2));
    assert.deepEqual(
      await store.takeReplay(c, undefined),
      taken([fat(3), fat(4)], false),
      "reset by the take",
    );
    assert.equal(await store.appendReplay(c, [fat(5)], 30, LIFE), 0, "exactly at the bound");
    assert.equal(await store.appendReplay(c, [fat(6)], 30, LIFE), 1);
    assert.deepEqual(await store.takeReplay(c, "f4"), taken([fat(5), fat(6)], true, 1));
    assert.deepEqual(await store.takeReplay(c, "f3"), taken([fat(5), fat(6)], false), "evicted or confirmed");
    // The confirmed id counts as found only while what followed it is all still there.
    assert.equal(await store.appendReplay(c, [fat(7)], 20, LIFE), 1);
    assert.deepEqual(await store.takeReplay(c, "f4"), taken([fat(6), fat(7)], false, 1));
    const huge: ReplayEvent = { id: "h", endpoint: "chat", text: "x".repeat(21) };
    assert.equal(await store.appendReplay(c, [fat(8), huge], 20, LIFE), 4, "larger than the bound alone");
    assert.deepEqual(await store.takeReplay(c, undefined), taken([], false, 4));
    assert.equal(await store.appendReplay(c, [fat(9)], 20, LIFE), 0, "an emptied log keeps no bytes");
    assert.deepEqual(await store.takeReplay(c, undefined), taken([fat(9)], false));
  });

  run("replay log: another node and a newer epoch see the same log", async (store, peer) => {
    const c = id("c");
    const attach = (now: number, nodeId: string) => ({
      nodeId,
      now,
      leaseUntil: now + 15_000,
      deadline: now + 315_000,
      freshEpoch: 1,
    });
    await store.connect(c, attach(T0, "n1"));
    await store.appendReplay(c, events(1, 3), BOUND, LIFE);
    await store.release(c, 1, T0 + 1, T0 + 300_000);
    assert.equal((await peer.connect(c, attach(T0 + 2, "n2"))).outcome, "resumed");
    assert.deepEqual(await peer.takeReplay(c, event(1).id), taken(events(2, 3), true));
    await peer.appendReplay(c, events(4, 4), BOUND, LIFE);
    assert.deepEqual(await store.takeReplay(c, undefined), taken(events(2, 4), false));
    assert.deepEqual(await store.takeReplay(c, event(1).id), taken(events(2, 4), true), "confirmed on n2");
  });

  run(
    "replay log: goes with the session's delete, and a client without a session has none",
    async (store, peer) => {
      const c = id("c");
      assert.equal(await store.appendReplay(c, events(1, 1), 1, LIFE), 0, "nothing to evict from");
      assert.deepEqual(await store.takeReplay(c, undefined), NONE, "nothing recorded");
      await store.create(session(c, { epoch: 3 }));
      assert.deepEqual(await store.takeReplay(c, event(1).id), NONE);
      await store.appendReplay(c, events(1, 3), BOUND, LIFE);
      assert.equal(await store.delete(c, 2), false);
      assert.deepEqual(await peer.takeReplay(c, event(1).id), taken(events(2, 3), true), "stale delete");
      assert.equal(await store.appendReplay(c, events(4, 4), 2 * bytes(event(4)), LIFE), 1);
      assert.equal(await store.delete(c, 3), true);
      assert.deepEqual(await peer.takeReplay(c, undefined), NONE);
      await store.create(session(c));
      assert.deepEqual(await peer.takeReplay(c, event(4).id), NONE, "a fresh session, a fresh log");
    },
  );

  run("replay log: one client's log is independent of another's", async (store, peer) => {
    const [a, b] = [id("a"), id("b")];
    await store.create(session(a));
    await store.create(session(b));
    await store.appendReplay(a, events(1, 3), BOUND, LIFE);
    await peer.appendReplay(b, events(1, 3, "news"), BOUND, LIFE);
    assert.equal(
      await peer.appendReplay(b, events(4, 4, "news"), bytes(event(4, "news")), LIFE),
      3,
      "b's bound evicts b's events",
    );
    assert.deepEqual(await store.takeReplay(a, event(2).id), taken(events(3, 3), true));
    assert.deepEqual(await peer.takeReplay(b, event(2).id), taken(events(4, 4, "news"), false, 3));
    await store.delete(b, 1);
    assert.deepEqual(await store.takeReplay(a, undefined), taken(events(3, 3), false));
  });

  run("listSessions: a walk lists every session once, filtered", async (store, peer) => {
    const now = T0 + 60_000;
    const tag = id("walk");
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const c = `${tag}-${i}`;
      ids.push(c);
      const connected = i % 2 === 0;
      await store.create(
        connected
          ? session(c, {
            nodeId: i < 4 ? "n1" : "n2",
            leaseUntil: now + 15_000,
            reconnectionDeadline: now + 315_000,
            subject: i === 2 ? "alice" : undefined,
            subscriptions: i === 4 ? [{ endpoint: "chat", params: { room: "r" }, boundAt: T0 }] : [],
          })
          : away(c, now + 300_000),
      );
    }
    // A walk in small pages, on the peer: everything of this test's, once each.
    const walk = async (query: Parameters<SessionStore["listSessions"]>[0]) => {
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await peer.listSessions(query, cursor, 3, now);
        seen.push(...page.sessions.map((s) => s.clientId).filter((c) => c.startsWith(tag)));
        cursor = page.cursor;
        assert.ok(++pages < 10_000, "the walk ends");
      } while (cursor !== undefined);
      return seen.sort();
    };
    assert.deepEqual(await walk({}), [...ids].sort());
    assert.deepEqual(await walk({ state: "connected" }), ids.filter((_, i) => i % 2 === 0));
    assert.deepEqual(await walk({ state: "disconnected" }), ids.filter((_, i) => i % 2 === 1));
    assert.deepEqual(await walk({ node: "n1" }), [ids[0], ids[2]]);
    assert.deepEqual(await walk({ subject: "alice" }), [ids[2]]);
    assert.deepEqual(await walk({ endpoint: "chat" }), [ids[4]]);
    assert.deepEqual(await walk({ node: "n2", endpoint: "chat" }), [ids[4]]);
    // A lease that lapsed counts as disconnected, as `counts` has it.
    assert.deepEqual(
      await peer.listSessions({ state: "connected" }, undefined, 1000, now + 20_000).then(
        (p) => p.sessions.filter((s) => s.clientId.startsWith(tag)),
      ),
      [],
    );
    const one = (await walk({ endpoint: "chat" }))[0];
    const page = await peer.listSessions({ endpoint: "chat" }, undefined, 1000, now);
    assert.deepEqual(
      page.sessions.find((s) => s.clientId === one)?.subscriptions,
      [{ endpoint: "chat", params: { room: "r" }, boundAt: T0 }],
      "a listed session is whole",
    );
  });

  const node = (nodeId: string, seenAt: number) => ({
    id: nodeId,
    address: "127.0.0.1:8080",
    runtime: "deno 2.0.0",
    version: "1.0.0",
    startedAt: T0,
    connected: 3,
    draining: false,
    seenAt,
  });

  run("nodes: an announced node is listed until its record lapses", async (store, peer) => {
    const [a, b] = [id("node-a"), id("node-b")];
    assert.deepEqual(await store.announce(node(a, T0), T0 + 15_000), []);
    await peer.announce({ ...node(b, T0), draining: true }, T0 + 5_000);
    const ours = async (now: number) => (await store.nodes(now)).filter((n) => n.id === a || n.id === b);
    assert.deepEqual(
      await ours(T0 + 1000),
      [node(a, T0), { ...node(b, T0), draining: true }].sort((x, y) => x.id < y.id ? -1 : 1),
    );
    assert.deepEqual(await ours(T0 + 10_000), [node(a, T0)], "b lapsed");
    await store.announce({ ...node(a, T0 + 10_000), connected: 9 }, T0 + 25_000);
    assert.deepEqual(await ours(T0 + 20_000), [{ ...node(a, T0 + 10_000), connected: 9 }], "renewed");
    assert.deepEqual(await ours(T0 + 30_000), []);
  });

  run("nodes: signals reach their node's next announcement, once, in order", async (store, peer) => {
    const [a, b] = [id("node-a"), id("node-b")];
    await store.announce(node(a, T0), T0 + 15_000);
    assert.equal(await peer.signal(b, { type: "end", clientId: "x" }, T0), false, "no such node");
    assert.equal(await peer.signal(a, { type: "disconnect", clientId: "c1" }, T0), true);
    const deliver = {
      type: "deliver",
      clientId: "c2",
      endpoint: "chat",
      data: "aGk=",
      encoding: "base64",
    } as const;
    assert.equal(await peer.signal(a, deliver, T0 + 1), true);
    assert.equal(await peer.signal(a, { type: "end", clientId: "c1" }, T0 + 20_000), false, "lapsed");
    assert.deepEqual(await store.announce(node(a, T0 + 2), T0 + 15_000), [
      { type: "disconnect", clientId: "c1" },
      deliver,
    ]);
    assert.deepEqual(await store.announce(node(a, T0 + 3), T0 + 15_000), [], "taken once");
  });
}
