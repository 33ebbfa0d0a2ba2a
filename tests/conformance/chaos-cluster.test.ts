/**
 * Chaos on two nodes, one killed (DESIGN.md sections 4, 5 and 11), the companion of
 * chaos.test.ts: two gateway nodes share the Redis store (through the Upstash REST proxy) and
 * Mosquitto, each behind a cutting proxy of its own (each connection cut after a random
 * 0.3-2 s, the bytes in flight thrown away). WebSocket clients with end-to-end acks (`ack=1`)
 * start spread over both nodes and, after each cut, come back in 0-500 ms with the same client
 * ID to either node at random; an outside QoS 1 publisher sends each a numbered stream at
 * 200 msg/s. In the middle of the run the node more clients were last on is killed with
 * `kill -9`; from then on clients come back to the survivor only. The sessions the killed node had are still held by its lease
 * (`session.lease`, 3 s here): a connect takes the session over all the same.
 *
 * Nothing may be lost, and every copy of a message past the first must be flagged
 * `redelivered` (MQTT's DUP: Mosquitto sent it before, to either node).
 *
 * Both nodes run under the runtime that runs the test. `CHAOS_SECONDS` and `CHAOS_CLUSTER_CLIENTS`
 * (else `CHAOS_CLIENTS`) scale a run (defaults 10 and 10); the kill comes at 40% of the traffic.
 */
import assert from "node:assert/strict";
import { assertNoLossAllFlagged, chaosSummary, WsChaosClient } from "../support/chaos-clients.ts";
import type { ChaosProxy } from "../support/chaos-proxy.ts";
import { chaosSuite, mqttStreamsPublisher } from "../support/chaos-suite.ts";
import { mqttEndpointYaml, namespace } from "../support/mqtt.ts";
import { keyPrefix, RedisProxy } from "../support/redis.ts";
import { currentRuntime } from "../support/runtime.ts";

const ns = namespace("chaos-cluster");
const prefix = keyPrefix("chaos-cluster");

const nodeConfig = (redis: RedisProxy, nodeId: string) => `
server: { host: 127.0.0.1, port: 0, node_id: ${nodeId}, shutdown_timeout: 5s }
session:
  type: redis
  reconnection_window: 60s
  cleanup_interval: 5s
  lease: 3s
  redis: { url: "${redis.url}", token: "${redis.token}", keyPrefix: "${prefix}", encoding: none, timeout: 2s }
endpoints:
${mqttEndpointYaml({ ns, poolSize: 2 })}
`;

let redis: RedisProxy;
/** Nodes A and B (suite.nodes); which one is killed is decided in the run. */
const suite = chaosSuite({
  clientsVariable: "CHAOS_CLUSTER_CLIENTS",
  configs: async () => {
    redis = await RedisProxy.start();
    // Node ids of their own (see cluster.test.ts): MQTT producer connections are named after them.
    const run = crypto.randomUUID().slice(0, 8);
    return [nodeConfig(redis, `chaos-node-a-${run}`), nodeConfig(redis, `chaos-node-b-${run}`)];
  },
  cleanup: async () => {
    await redis?.drop(prefix).catch(() => {});
    await redis?.stop();
  },
});
const CLIENTS = suite.clients;
/** When the node is killed, ms into the traffic. */
const KILL_AT_MS = suite.seconds * 400;

const NAMES = ["A", "B"];

suite.test(
  "two nodes on Redis, one killed with kill -9, WebSocket with end-to-end acks through cutting proxies: 0 lost, duplicates flagged redelivered",
  async () => {
    const nodes = suite.nodes;
    let proxies: ChaosProxy[] = [];
    /** The killed node, once killed; it is the one more clients were last on then. */
    let victim: number | undefined;
    let killedAt = 0;
    let openAtKill = 0;
    let onVictimAtKill: number[] = [];
    // The first connections alternate over the nodes; later ones pick at random, the survivor
    // only once the other node is dead. Per client: the node of its latest connection, and how
    // long after the kill it first went to the survivor.
    const tried = [0, 0];
    const onNode: number[] = [];
    const backAfterKill: number[] = [];
    const started = performance.now();
    const pick = (client: number, bases: string[]) => {
      const i = victim !== undefined
        ? 1 - victim
        : onNode[client] === undefined
        ? client % 2
        : Math.random() < 0.5
        ? 0
        : 1;
      tried[i]++;
      onNode[client] = i;
      if (victim !== undefined) backAfterKill[client] ??= performance.now() - started - killedAt * 1000;
      return bases[i];
    };
    const r = await suite.run({
      label: "cluster",
      client: (clientId, bases, i) =>
        new WsChaosClient({
          base: () => pick(i, bases),
          clientId,
          endpoint: "sensors",
          ack: true,
          ackEveryMs: 20,
        }),
      publisher: async (clients, cutting) => {
        proxies = cutting;
        const mqtt = await mqttStreamsPublisher(ns, clients);
        return {
          publish: async (total) => {
            const kill = (async () => {
              await new Promise((resolve) => setTimeout(resolve, KILL_AT_MS));
              const on = (node: number) => clients.map((_, i) => i).filter((i) => onNode[i] === node);
              const v = victim = on(1).length >= on(0).length ? 1 : 0;
              killedAt = (performance.now() - started) / 1000;
              openAtKill = proxies[v].connections.length;
              onVictimAtKill = on(v);
              await nodes[v].stop("SIGKILL");
            })();
            await mqtt.publish(total);
            await kill;
          },
          close: mqtt.close,
        };
      },
    });
    const v = victim!;
    const moved = onVictimAtKill.map((i) => backAfterKill[i]);
    console.log(chaosSummary(currentRuntime, "two nodes, one killed, ws + acks", r));
    console.log(
      `  killed node ${NAMES[v]} at ${killedAt.toFixed(1)} s with ${openAtKill} connections open on it;` +
        ` ${onVictimAtKill.length} of ${CLIENTS} clients were last on it and went to node ${
          NAMES[1 - v]
        } after` +
        ` ${moved.map((ms) => ms === undefined ? "never" : `${(ms / 1000).toFixed(2)} s`).join(", ")}` +
        ` (its lease: 3 s); connections tried: A ${tried[0]}, B ${tried[1]}`,
    );
    const failed = r.tallies.some((t) => t.lost.length > 0 || t.duplicates !== t.duplicatesFlagged);
    if (failed) console.log(suite.tails(4000));
    assert.ok(r.cuts >= CLIENTS, `the proxies cut connections (${r.cuts})`);
    assert.ok(proxies.every((p) => p.accepted >= CLIENTS / 2), "clients went to both nodes");
    assert.ok(onVictimAtKill.length > 0, "sessions were on the killed node");
    assert.ok(moved.every((ms) => ms !== undefined), "every client of the killed node went to the survivor");
    assertNoLossAllFlagged(r);
  },
);
