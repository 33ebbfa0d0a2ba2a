/**
 * The baseline side of bench/main.ts, run as its own process under the runtime being measured:
 * bare mqtt.js clients doing what the gateway does for its clients, without the gateway.
 *
 *   bare-mqtt.ts binds N URL NS      N clients connect with clean:false and subscribe
 *   bare-mqtt.ts fanout N M URL TOPIC  N subscribers, one publisher sending M messages
 *
 * Prints one JSON line with its figures.
 */
import mqtt from "mqtt";
import process from "node:process";
import { percentile, rssBytes } from "./measure.ts";

const [mode, nText, ...rest] = process.argv.slice(2);
const n = Number(nText);

if (mode === "binds") {
  const [url, ns] = rest;
  const before = rssBytes(process.pid);
  const started = performance.now();
  const clients: mqtt.MqttClient[] = [];
  for (let i = 0; i < n; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, n - i) }, async (_, j) => {
      const client = await mqtt.connectAsync(url, {
        clientId: `bench-bare-${ns}-${i + j}`,
        clean: false,
        protocolVersion: 5,
        properties: { sessionExpiryInterval: 60 },
      });
      await client.subscribeAsync(`${ns}/bare/${i + j}/down`, { qos: 1 });
      clients.push(client);
    }));
  }
  const seconds = (performance.now() - started) / 1000;
  const after = rssBytes(process.pid);
  console.log(JSON.stringify({ bindsPerSecond: n / seconds, rssPerClient: (after - before) / n }));
  // Expiry 0 on the way out, so the benchmark leaves no sessions behind.
  await Promise.all(clients.map((c) => c.endAsync(false, { properties: { sessionExpiryInterval: 0 } })));
} else if (mode === "fanout") {
  const [mText, url, topic] = rest;
  const m = Number(mText);
  const latencies: number[] = [];
  const subscribers = await Promise.all(Array.from({ length: n }, async () => {
    const client = await mqtt.connectAsync(url, { protocolVersion: 5 });
    await client.subscribeAsync(topic, { qos: 1 });
    client.on(
      "message",
      (_t, payload) => latencies.push(performance.now() - JSON.parse(payload.toString()).t),
    );
    return client;
  }));
  const publisher = await mqtt.connectAsync(url, { protocolVersion: 5 });
  const started = performance.now();
  await Promise.all(
    Array.from(
      { length: m },
      (_, i) => publisher.publishAsync(topic, JSON.stringify({ i, t: performance.now() }), { qos: 1 }),
    ),
  );
  while (latencies.length < n * m && performance.now() - started < 60_000) {
    await new Promise((r) => setTimeout(r, 5));
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({
    delivered: latencies.length,
    perSecond: latencies.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  }));
  await Promise.all([publisher, ...subscribers].map((c) => c.endAsync()));
}
process.exit(0);
