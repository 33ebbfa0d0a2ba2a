/**
 * The session store contract: what every SessionStore must do (src/core/session.ts), run against
 * each implementation.
 *
 * @example
 * sessionStoreContract("memory", async () => ({ store: new MemorySessionStore() }));
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Session, SessionStore } from "../../src/core/session.ts";

export interface StoreHarness {
  store: SessionStore;
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

export function sessionStoreContract(kind: string, setup: () => Promise<StoreHarness>): void {
  const id = (label: string) => `${label}-${crypto.randomUUID()}`;
  const run = (name: string, body: (store: SessionStore) => Promise<void>) =>
    test(`${kind} store: ${name}`, async () => {
      const harness = await setup();
      try {
        await body(harness.store);
      } finally {
        await harness.store.close();
        await harness.close?.();
      }
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

  run("claimExpired: exactly one of many concurrent callers wins", async (store) => {
    const now = T0 + 10 * 60_000;
    const c = id("c");
    await store.create(away(c, now - 1));
    const claims = await Promise.all(Array.from({ length: 8 }, () => store.claimExpired(c, now, 60_000)));
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
}
