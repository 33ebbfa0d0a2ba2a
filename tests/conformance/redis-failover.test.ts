/**
 * A Redis primary killed (`kill -9`) under load, on each distributed setup of the session store
 * (tests/support/redis-cluster.ts): a Redis Cluster of 3 primaries and 3 replicas (the sharded
 * layout), and a Sentinel-managed primary with one replica. Two gateway nodes share the store and
 * Mosquitto; WebSocket clients with end-to-end acks (`ack=1`) go through a cutting proxy per node
 * (each connection cut after 0.3-2 s, so they reconnect all through the failover), plus one
 * client straight to a node that is never cut. An outside QoS 1 publisher sends each a numbered
 * stream. At 30 % of the traffic the primary is killed: for the cluster, the one serving the
 * uncut client's shard.
 *
 * Then: the uncut connection keeps flowing while the primary is gone (it needs no store round
 * trip); new connections of client IDs on the lost primary get 503 until the replica is promoted
 * and then get through; nothing is lost for the clients with acks, every duplicate is flagged
 * `redelivered`. The time from the kill to the first accepted connection is printed: what a
 * failover costs in this setup (1 s failure detection).
 *
 * Both nodes run under the runtime that runs the test.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import process from "node:process";
import { after, test } from "node:test";
import type { MqttClient } from "mqtt";
import {
  assertNoLossAllFlagged,
  chaosSummary,
  paceNumbered,
  runChaos,
  WsChaosClient,
} from "../support/chaos-clients.ts";
import { ChaosProxy } from "../support/chaos-proxy.ts";
import { startGateway } from "../support/gateway-process.ts";
import { mqttEndpointYaml, namespace, outsideClient } from "../support/mqtt.ts";
import { keyPrefix } from "../support/redis.ts";
import type { TestRedis } from "../support/redis.ts";
import { RedisClusterServers, RedisSentinelServers, TEST_SHARDS } from "../support/redis-cluster.ts";
import { currentRuntime } from "../support/runtime.ts";
import { KeyLayout } from "../../src/session/redis-layout.ts";
import { upgradeAnswer } from "./gateway-scenarios.ts";

const CLIENTS = Number(process.env.FAILOVER_CLIENTS ?? 6);
const SECONDS = Number(process.env.FAILOVER_SECONDS ?? 6);
const RATE = 100;
const KILL_AT_MS = SECONDS * 300;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const nodeConfig = (redis: TestRedis, prefix: string, ns: string, nodeId: string) => `
server: { host: 127.0.0.1, port: 0, node_id: ${nodeId}, shutdown_timeout: 5s }
session:
  type: redis
  reconnection_window: 60s
  cleanup_interval: 5s
  lease: 3s
  redis: ${redis.config(prefix, "1s")}
endpoints:
${mqttEndpointYaml({ ns, poolSize: 2 })}
`;

/** Publishes each client's numbered stream (QoS 1); resolves once the broker confirmed all. */
async function publishStreams(publisher: MqttClient, topics: string[], total: number): Promise<void> {
  const confirmed: Array<Promise<unknown>> = [];
  await paceNumbered(topics.length, RATE, total, (due) => {
    for (const [i, n] of due) {
      confirmed.push(publisher.publishAsync(topics[i], JSON.stringify({ n }), { qos: 1 }));
    }
  });
  await Promise.all(confirmed);
}

/** What one setup is to the test: its servers, and the primary to kill for a client ID. */
interface Setup {
  redis: TestRedis & { stop(): Promise<void> };
  /** The port of the primary that holds a client ID's (`base + clientId`) session now. */
  primaryFor(idOrBase: string, layout: KeyLayout): Promise<number>;
  kill(port: number): Promise<void>;
  /** Resolves once Redis itself has replaced the primary on `port`. */
  promoted(port: number): Promise<unknown>;
  shards?: number;
}

const setups: Record<string, () => Promise<Setup>> = {
  cluster: async () => {
    const cluster = await RedisClusterServers.start();
    return {
      redis: cluster,
      // A key base alone is in its shard's slot too: the tag is all that counts.
      primaryFor: (id, layout) => cluster.primaryOf(layout.bases.includes(id) ? id : layout.key(id)),
      kill: (port) => cluster.kill(port),
      promoted: (port) => cluster.promoted(port),
      shards: TEST_SHARDS,
    };
  },
  sentinel: async () => {
    const sentinel = await RedisSentinelServers.start();
    return {
      redis: sentinel,
      primaryFor: () => sentinel.primary(),
      kill: (port) => sentinel.kill(port),
      promoted: (port) => sentinel.promoted(port, 60_000),
    };
  },
};

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

for (const kind of ["cluster", "sentinel"] as const) {
  test(
    `redis ${kind} failover (${currentRuntime}): a primary killed under load: live connections flow, new ones get 503 until the replica is promoted, 0 lost with acks`,
    { timeout: 120_000 },
    async () => {
      const setup = await setups[kind]();
      cleanups.push(() => setup.redis.stop());
      const prefix = keyPrefix(`failover-${kind}`);
      const layout = new KeyLayout(prefix, setup.shards);
      const ns = namespace(`failover-${kind}`);
      const run = crypto.randomUUID().slice(0, 8);
      const nodes = await Promise.all(
        ["a", "b"].map((n) =>
          startGateway(currentRuntime, nodeConfig(setup.redis, prefix, ns, `failover-${n}-${run}`))
        ),
      );
      cleanups.push(() => Promise.all(nodes.map((gw) => gw.stop("SIGKILL"))).then(() => {}));
      const tails = () =>
        nodes.map((gw, i) => `--- node ${"AB"[i]} (last 3000 characters) ---\n${gw.output().slice(-3000)}`)
          .join("\n");

      // The uncut client, and the primary it lives on: the one to kill.
      const liveId = `failover-${run}-live`;
      const victim = await setup.primaryFor(liveId, layout);
      const lost = new Set<string>();
      for (const base of layout.bases) {
        if (await setup.primaryFor(base, layout) === victim) lost.add(base);
      }
      /** A fresh client ID whose session would live on the killed primary. */
      const onVictim = (label: string) => {
        for (let i = 0;; i++) {
          const id = `failover-${run}-${label}-${i}`;
          if (lost.has(layout.baseOf(id))) return id;
        }
      };

      const proxies = await Promise.all(nodes.map((gw) => ChaosProxy.start(Number(new URL(gw.http).port))));
      const bases = proxies.map((p) => `http://127.0.0.1:${p.port}`);
      const clients = Array.from(
        { length: CLIENTS },
        (_, i) =>
          new WsChaosClient({
            base: () => bases[Math.random() < 0.5 ? 0 : 1],
            clientId: `failover-${run}-${i}`,
            endpoint: "sensors",
            ack: true,
            ackEveryMs: 20,
          }),
      );
      const live = new WsChaosClient({
        base: nodes[0].http,
        clientId: liveId,
        endpoint: "sensors",
        ack: true,
      });
      const all = [...clients, live];

      const started = performance.now();
      const at = () => (performance.now() - started) / 1000;
      let killedAt = 0;
      let promotedAt = 0;
      let replacedAt = 0;
      let liveAtKill = 0;
      let liveAtPromotion = 0;
      const probes: Array<{ at: number; status: number }> = [];
      const publisher = await outsideClient();
      let r;
      try {
        r = await runChaos({
          clients: all,
          proxies,
          rate: RATE,
          trafficSeconds: SECONDS,
          drainMs: 30_000,
          publish: async (total) => {
            const failover = (async () => {
              const probeIds = Array.from({ length: 300 }, (_, i) => onVictim(`probe${i}`));
              await sleep(KILL_AT_MS);
              liveAtKill = live.received;
              await setup.kill(victim);
              killedAt = at();
              const replaced = setup.promoted(victim).then(() => (replacedAt = at()));
              // New connections on the lost primary, one every 100 ms until one gets through.
              for (const id of probeIds) {
                const { status } = await upgradeAnswer(nodes[probes.length % 2], `/ws?clientId=${id}`);
                probes.push({ at: at(), status });
                if (status === 101) break;
                await sleep(100);
              }
              promotedAt = at();
              liveAtPromotion = live.received;
              await replaced;
            })();
            await publishStreams(publisher, all.map((c) => `${ns}/${c.clientId}/down`), total);
            await failover;
          },
        });
      } catch (error) {
        console.log(tails());
        throw error;
      } finally {
        await publisher.endAsync();
        await Promise.all(proxies.map((p) => p.stop()));
      }
      const refused = probes.filter((p) => p.status === 503);
      console.log(chaosSummary(currentRuntime, `redis ${kind}, a primary killed`, r));
      console.log(
        `  killed the primary on ${victim} at ${
          killedAt.toFixed(1)
        } s; new connections on it got 503 ${refused.length} times, ` +
          `Redis replaced it ${(replacedAt - killedAt).toFixed(2)} s after the kill, ` +
          `the first new connection got through ${(promotedAt - killedAt).toFixed(2)} s after it; ` +
          `the uncut connection received ${liveAtPromotion - liveAtKill} messages meanwhile`,
      );
      const failed = r.tallies.some((t) => t.lost.length > 0 || t.duplicates !== t.duplicatesFlagged);
      if (failed) console.log(tails());
      if (failed && process.env.FAILOVER_LOG_DIR) {
        nodes.forEach((gw, i) =>
          writeFileSync(`${process.env.FAILOVER_LOG_DIR}/node-${"AB"[i]}.log`, gw.output())
        );
      }
      if (failed || process.env.FAILOVER_DEBUG) {
        console.log(
          "the uncut client's session now:",
          await setup.redis.command("HGETALL", layout.key(liveId)),
        );
      }
      assert.ok(refused.length > 0, "new connections on the lost primary were refused with 503");
      assert.deepEqual(
        probes.map((p) => p.status).filter((s) => s !== 503 && s !== 101),
        [],
        "nothing but 503 before the promotion",
      );
      assert.equal(probes.at(-1)?.status, 101, "then they get through");
      assert.ok(liveAtPromotion > liveAtKill, "the uncut connection kept flowing during the failover");
      assert.equal(live.connections, 1, "on one connection");
      // A connection whose store request was under way when the primary went may get a
      // temporary STORE_UNAVAILABLE frame; it goes on (or reconnects) by itself. Nothing else.
      const errors = r.tallies.flatMap((t) => t.errors);
      assert.deepEqual(errors.filter((e) => !/^STORE_UNAVAILABLE: session store unreachable/.test(e)), []);
      assertNoLossAllFlagged({ ...r, tallies: r.tallies.map((t) => ({ ...t, errors: [] })) });
    },
  );
}
