/**
 * Session store contract, ownership: `connect` (create, take within the deadline, subjects and
 * their session limit), `renew` of leases, `release`, and `counts` by lease (src/core/session.ts).
 */
import assert from "node:assert/strict";
import type { Session } from "../../core/session.ts";
import { away, plain, session, sessionOf, T0 } from "./fixtures.ts";
import type { StoreCases } from "./fixtures.ts";

/** Registers the ownership cases. */
export function ownershipCases({ run, id }: StoreCases): void {
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
}
