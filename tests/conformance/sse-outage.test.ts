/**
 * SSE streams through outages, black-box: a gateway process under the runtime running the tests,
 * with a private Mosquitto or a private Redis that the test stops and starts.
 *
 * - The broker down when a stream opens: the stream says `error`, retries its bind in place, and
 *   says `subscribed` once the broker is back; a message published after it arrives.
 * - The Redis store down under a live stream: what the stream wrote meanwhile is not kept, so it
 *   is not acknowledged to the broker; a client that lost those events on the way and comes back
 *   with its Last-Event-ID gets them all (from the replay log or from the broker), with a welcome
 *   that says `recovered: true`, whether the stream was cut after Redis came back or before.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { eventually } from "../../src/conformance/endpoint-contract.ts";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { MQTT_URL, mqttEndpointYaml, namespace, outsideClient, PrivateMosquitto } from "../support/mqtt.ts";
import { keyPrefix, PrivateRedis, RespRedis } from "../support/redis.ts";
import { currentRuntime } from "../support/runtime.ts";
import { SseClient } from "../support/sse-client.ts";

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

function config(mqttUrl: string, ns: string, session = "{ type: memory }"): string {
  return `
server: { host: 127.0.0.1, port: 0, sse_ping_interval: 1s }
session: ${session}
endpoints:
${mqttEndpointYaml({ ns, url: mqttUrl, poolSize: 1 })}
`;
}

async function publishDown(url: string, topic: string, from: number, to: number): Promise<void> {
  const outside = await outsideClient(url);
  for (let n = from; n <= to; n++) await outside.publishAsync(topic, JSON.stringify({ n }), { qos: 1 });
  await outside.endAsync();
}

const numbers = (sse: SseClient) =>
  sse.events.filter((e) => e.event === "message").map((e) => (JSON.parse(e.data) as { n: number }).n);

/** Opens a stream, retrying while the gateway answers 503 (its store still reconnecting). */
async function openStream(gw: Gateway, clientId: string, lastEventId?: string): Promise<SseClient> {
  const url = `${gw.http}/sse/sensors?clientId=${clientId}`;
  const headers: Record<string, string> = lastEventId ? { "Last-Event-ID": lastEventId } : {};
  let sse = await SseClient.open(url, headers);
  const deadline = Date.now() + 15_000;
  while (sse.status === 503 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    sse = await SseClient.open(url, headers);
  }
  assert.equal(sse.status, 200, sse.body ?? "");
  await sse.until(() => sse.events.some((e) => e.event === "welcome"), 10_000, "welcome");
  return sse;
}

test(`sse (${currentRuntime}): a stream opened while its MQTT broker is down binds once the broker is back, says subscribed, and delivers`, async () => {
  const broker = await PrivateMosquitto.start();
  await broker.pause();
  const ns = namespace("sse-bind");
  const gw = await startGateway(currentRuntime, config(broker.url, ns));
  const id = unique("bind");
  let sse: SseClient | undefined;
  try {
    sse = await openStream(gw, id);
    const stream = sse;
    await stream.until(() => stream.events.some((e) => e.event === "error"), 15_000, "the bind's error");
    assert.equal(
      JSON.parse(stream.events.find((e) => e.event === "error")!.data).code,
      "UPSTREAM_UNAVAILABLE",
    );
    assert.ok(!stream.events.some((e) => e.event === "subscribed"));

    await broker.resume();
    // Before: pings for ever, never subscribed.
    await stream.until(() => stream.events.some((e) => e.event === "subscribed"), 20_000, "subscribed");
    assert.equal(stream.ended, false);
    await publishDown(broker.url, `${ns}/${id}/down`, 1, 1);
    await stream.until(() => numbers(stream).length === 1, 10_000, "the message published after");
    assert.deepEqual(numbers(stream), [1]);
  } finally {
    await sse?.close();
    await gw.stop("SIGKILL");
    await broker.stop();
  }
});

for (const cut of ["after", "before"] as const) {
  test(`sse (${currentRuntime}): events written while the Redis store is down are not acknowledged; cut ${cut} it is back, the stream's Last-Event-ID gets them all`, async () => {
    const redis = await PrivateRedis.start();
    const store = new RespRedis(redis.url);
    const prefix = keyPrefix("sse-replay");
    const ns = namespace("sse-replay");
    const gw = await startGateway(
      currentRuntime,
      config(MQTT_URL, ns, `{ type: redis, redis: ${store.config(prefix, "500ms")} }`),
    );
    const id = unique("replay");
    const topic = `${ns}/${id}/down`;
    const streams: SseClient[] = [];
    try {
      const first = await openStream(gw, id);
      streams.push(first);
      await first.until(() => first.events.some((e) => e.event === "subscribed"), 10_000, "subscribed");
      await publishDown(MQTT_URL, topic, 1, 1);
      await first.until(() => numbers(first).length === 1, 10_000, "message 1");
      // What the client still has when it comes back: events 2-6 are lost on the way.
      const had = first.events.find((e) => e.event === "message")!.id!;

      await redis.pause();
      await publishDown(MQTT_URL, topic, 2, 6);
      await first.until(() => numbers(first).length === 6, 10_000, "2-6, live while the store is down");
      if (cut === "after") {
        await redis.resume();
        await eventually(
          async () => (await fetch(`${gw.http}/readyz`)).status === 200,
          "ready again",
          15_000,
        );
        await first.close();
      } else {
        await first.close();
        // Its connection is closed only after its last attempt to keep them (which fails).
        await eventually(
          async () =>
            !/mediation_connections\{[^}]*transport="sse"[^}]*\} [1-9]/.test(
              await (await fetch(`${gw.http}/metrics`)).text(),
            ),
          "the stream's connection closed",
          15_000,
        );
        await redis.resume();
      }

      const again = await openStream(gw, id, had);
      streams.push(again);
      assert.equal(JSON.parse(again.events.find((e) => e.event === "welcome")!.data).recovered, true);
      // Before: acknowledged although not kept, so gone, and the welcome said recovered.
      await again.until(
        () => [2, 3, 4, 5, 6].every((n) => numbers(again).includes(n)),
        20_000,
        "2-6 again (replayed or redelivered)",
      );
      assert.ok(!numbers(again).includes(1), "1 was confirmed by Last-Event-ID");
      if (cut === "after") {
        assert.match(gw.output(), /Replay log of \S+ unreachable; \d+ events left unacknowledged/);
      } else {
        // Cut while the store is down, the stream's last attempt to keep them says so; the live
        // one may not have failed yet by then (the store's outage is noticed when a write fails).
        assert.match(gw.output(), /Stream of \S+ ended with \d+ events .* not acknowledged/);
      }
    } finally {
      for (const s of streams) await s.close();
      await gw.stop("SIGKILL");
      await store.drop(prefix).catch(() => {});
      await store.stop();
      await redis.stop();
    }
  });
}
