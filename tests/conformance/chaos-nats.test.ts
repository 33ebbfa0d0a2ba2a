/**
 * Chaos on NATS JetStream, the companion of chaos-kafka.test.ts: clients reach the gateway through
 * the cutting proxy (each connection cut after a random 0.3-2 s, the bytes in flight thrown away,
 * back in 0-500 ms with the same client ID) and are bound to a NATS endpoint on the real
 * nats-server, where an outside @nats-io client publishes to each client's subject
 * `<prefix>.<clientId>.down` a numbered stream at 200 msg/s, each publish waiting for its ack.
 *
 * With end-to-end acks (`ack=1`) nothing may be lost, and every copy of a message past the first
 * must be flagged `redelivered`: a resume re-creates the client's consumer at its ack floor and
 * flags everything the consumer had handed out before.
 *
 * The gateway runs under the runtime that runs the test. `CHAOS_SECONDS` and `CHAOS_CLIENTS`
 * scale a run (defaults 6 and 10: short, to keep CI quick; docs/performance.md has a 20 s run).
 */
import assert from "node:assert/strict";
import {
  assertNoLossAllFlagged,
  chaosSummary,
  paceNumbered,
  WsChaosClient,
} from "../support/chaos-clients.ts";
import { CHAOS_RATE, chaosSuite } from "../support/chaos-suite.ts";
import { natsNamespace, OutsideNats } from "../support/nats.ts";
import { currentRuntime } from "../support/runtime.ts";
import { natsGatewayConfig } from "./nats-scenarios.ts";

const ns = natsNamespace("chaos");

let outside: OutsideNats;
const suite = chaosSuite({
  seconds: 6,
  configs: async () => {
    outside = await OutsideNats.connect();
    // A window long enough that no session expires during the run.
    return [
      natsGatewayConfig(ns).replace(
        /reconnection_window: \d+ms, cleanup_interval: \d+ms/,
        "reconnection_window: 60s, cleanup_interval: 5s",
      ),
    ];
  },
  cleanup: async () => {
    await outside?.dropStream(ns.stream);
    await outside?.close();
  },
});

suite.test(
  "NATS JetStream, WebSocket with end-to-end acks through a cutting proxy: 0 lost, duplicates flagged redelivered",
  async () => {
    const r = await suite.run({
      label: "nats",
      client: (clientId, [base]) =>
        new WsChaosClient({ base, clientId, endpoint: "events", ack: true, ackEveryMs: 20 }),
      publisher: (clients) => {
        const ids = clients.map((c) => c.clientId);
        return {
          publish: (total) =>
            paceNumbered(clients.length, CHAOS_RATE, total, async (due) => {
              // Each stream in order: one client's publishes one after another, the clients at once.
              const byClient = new Map<number, number[]>();
              for (const [i, n] of due) byClient.set(i, [...(byClient.get(i) ?? []), n]);
              await Promise.all([...byClient].map(async ([i, ns_]) => {
                for (const n of ns_) {
                  await outside.publish(`${ns.prefix}.${ids[i]}.down`, JSON.stringify({ n }));
                }
              }));
            }),
        };
      },
    });
    console.log(chaosSummary(currentRuntime, "nats, ws + acks", r));
    assert.ok(r.cuts >= suite.clients, `the proxy cut connections (${r.cuts})`);
    assertNoLossAllFlagged(r);
  },
);
