/**
 * Session store contract, the SSE replay log: `appendReplay` and `takeReplay` (what
 * Last-Event-ID confirms, the byte bound and its eviction count, ids and texts exactly) across
 * nodes and epochs, and its life with the session (src/core/session.ts).
 */
import assert from "node:assert/strict";
import type { ReplayEvent } from "../../core/session.ts";
import { session, T0 } from "./fixtures.ts";
import type { StoreCases } from "./fixtures.ts";

/** Registers the replay log cases. */
export function replayCases({ run, id }: StoreCases): void {
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
}
