/**
 * Session store contract, expiry: the expiry index (`listExpired`, oldest first, a lapsed lease
 * included) and the cleanup claim (`claimExpired`: exactly one winner, its ttl, what voids it, how
 * `renew` and `listExpired` treat it) (src/core/session.ts).
 */
import assert from "node:assert/strict";
import { away, session, T0 } from "./fixtures.ts";
import type { StoreCases } from "./fixtures.ts";

/** Registers the expiry cases. */
export function expiryCases({ run, id }: StoreCases): void {
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
}
