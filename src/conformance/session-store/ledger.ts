/**
 * Session store contract, the publish dedupe ledger: `reservePublish` and `completePublish`
 * across nodes and epochs, its ttl, its bound, and its life with the session (src/core/session.ts).
 */
import assert from "node:assert/strict";
import { session, T0 } from "./fixtures.ts";
import type { StoreCases } from "./fixtures.ts";

/** Registers the publish ledger cases. */
export function ledgerCases({ run, id }: StoreCases): void {
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
}
