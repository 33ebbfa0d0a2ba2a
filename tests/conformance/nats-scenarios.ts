/**
 * Black-box scenarios for a gateway with a NATS JetStream endpoint on the real nats-server; a
 * plain @nats-io client plays the devices. The gateway creates the run's stream; the run deletes it.
 */
import assert from "node:assert/strict";
import { NATS_SERVER, OutsideNats } from "../support/nats.ts";
import { numbered, openWelcomed } from "../support/ws-client.ts";
import { eventually } from "./endpoint-contract.ts";
import type { Scenario } from "./gateway-scenarios.ts";
import { CLEANUP_MS, WINDOW_MS } from "./gateway-scenarios.ts";

export function natsGatewayConfig(ns: { stream: string; prefix: string }): string {
  return `
server: { host: 127.0.0.1, port: 0, shutdown_timeout: 5s }
session: { type: memory, reconnection_window: ${WINDOW_MS}ms, cleanup_interval: ${CLEANUP_MS}ms }
endpoints:
  - name: events
    type: nats
    servers: ["${NATS_SERVER}"]
    stream: ${ns.stream}
    publish_subject: "${ns.prefix}.{clientId}.up"
    subscribe_subject: "${ns.prefix}.{clientId}.down"
`;
}

/** Publishes payloads to client `id`'s subject from outside (for ackScenarios). */
export function natsInject(ns: { prefix: string }) {
  return async (_gw: unknown, id: string, payloads: string[]): Promise<void> => {
    const outside = await OutsideNats.connect();
    for (const p of payloads) await outside.publish(`${ns.prefix}.${id}.down`, p);
    await outside.close();
  };
}

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

export function natsScenarios(ns: { stream: string; prefix: string }): Scenario[] {
  return [
    {
      name: "nats: publish -> receipt after the JetStream ack, stored in the stream",
      async run(gw) {
        const id = unique("pub");
        const { socket } = await openWelcomed(gw.ws, id);
        socket.send({ type: "publish", endpoint: "events", data: { t: 21.5 }, id: "r-1" });
        const receipt = await socket.next((f) => f.type === "receipt" && f.id === "r-1");
        const meta = receipt.meta as Record<string, unknown>;
        assert.equal(meta.subject, `${ns.prefix}.${id}.up`);
        assert.equal(meta.stream, ns.stream);
        const outside = await OutsideNats.connect();
        try {
          const stored = await outside.jsm.streams.getMessage(ns.stream, { seq: meta.seq as number });
          assert.equal(stored?.subject, `${ns.prefix}.${id}.up`);
          assert.equal(stored?.string(), '{"t":21.5}');
        } finally {
          await outside.close();
        }
        await socket.close();
      },
    },
    {
      name:
        "nats: away, 200 published outside, back in window -> 200 in order once; later the consumer is gone",
      async run(gw) {
        const id = unique("dev");
        const consumer = `engine-events-client-${id}`;
        const first = await openWelcomed(gw.ws, id);
        first.socket.send({ type: "subscribe", endpoint: "events", id: "s" });
        await first.socket.next((f) => f.type === "receipt" && f.id === "s");
        // The line comes through the gateway's stdout, which may reach the test after the receipt.
        const bound = new RegExp(`\\[NATS\\] Client ${id} bound to endpoint events \\(consumer ${consumer}`);
        await eventually(() => bound.test(gw.output()), "the bind's log line");
        await first.socket.close();

        const outside = await OutsideNats.connect();
        try {
          for (let n = 1; n <= 200; n++) {
            await outside.publish(`${ns.prefix}.${id}.down`, JSON.stringify({ n }));
          }
          const second = await openWelcomed(gw.ws, id);
          assert.equal(second.welcome.resumed, true);
          assert.deepEqual(await second.socket.settled("events", 200), numbered(200), "in order, once");
          await second.socket.close();
          assert.ok((await outside.consumers(ns.stream)).includes(consumer), "kept while away");
          await eventually(
            () => gw.output().includes(`[CleanupWorker] Unbound client ${id} from endpoint events`),
            "the cleanup after the window",
            WINDOW_MS + CLEANUP_MS * 10,
          );
          assert.ok(!(await outside.consumers(ns.stream)).includes(consumer), "deleted by the cleanup");
        } finally {
          await outside.close();
        }
      },
    },
  ];
}
