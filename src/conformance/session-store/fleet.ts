/**
 * Session store contract, the fleet: a walk over the sessions of every node (listSessions, with
 * its filters), node announcements (who shares the store, until their record lapses) and the
 * signals the admin API sends a node through the store (src/core/session.ts).
 */
import assert from "node:assert/strict";
import type { SessionStore } from "../../core/session.ts";
import { away, session, T0 } from "./fixtures.ts";
import type { StoreCases } from "./fixtures.ts";

/** Registers the fleet cases. */
export function fleetCases({ run, id }: StoreCases): void {
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
