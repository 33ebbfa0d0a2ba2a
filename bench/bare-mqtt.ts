/**
 * The bare side of bench/main.ts, run as its own process under the runtime being measured:
 * mqtt.js clients doing what the gateway does for its clients, without the gateway or WebSocket.
 *
 *   bare-mqtt.ts binds N URL NS                 N clients connect with clean:false and subscribe
 *   bare-mqtt.ts fanout N URL TOPIC WARMUP M [RATE]
 *       N subscribers and a publisher connected first; WARMUP messages sent and received, then M
 *       messages: all at once (a burst), or RATE a second
 *
 * Prints one JSON line with its figures; CPU is this process's (publisher and subscribers).
 */
import mqtt from "mqtt";
import process from "node:process";
import { atRate, cpuMs, FanoutRecord, rssBytes, until, warmUp } from "./measure.ts";

const [mode, nText, url, ...rest] = process.argv.slice(2);
const n = Number(nText);

if (mode === "binds") {
  const [ns] = rest;
  const before = rssBytes(process.pid);
  const cpu = cpuMs(process.pid);
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
  const cpuUsPerBind = ((cpuMs(process.pid) - cpu) * 1000) / n;
  const after = rssBytes(process.pid);
  console.log(
    JSON.stringify({ bindsPerSecond: n / seconds, cpuUsPerBind, rssPerClient: (after - before) / n }),
  );
  // Expiry 0 on the way out, so the benchmark leaves no sessions behind.
  await Promise.all(clients.map((c) => c.endAsync(false, { properties: { sessionExpiryInterval: 0 } })));
} else if (mode === "fanout") {
  const [topic, warmupText, mText, rateText] = rest;
  const [warmup, m, rate] = [Number(warmupText), Number(mText), Number(rateText ?? 0)];
  let record = new FanoutRecord();
  const subscribers = await Promise.all(Array.from({ length: n }, async () => {
    const client = await mqtt.connectAsync(url, { protocolVersion: 5 });
    await client.subscribeAsync(topic, { qos: 1 });
    client.on("message", (_t, payload) => {
      const { i, t } = JSON.parse(payload.toString());
      record.add(i, t, performance.now());
    });
    return client;
  }));
  const publisher = await mqtt.connectAsync(url, { protocolVersion: 5 });
  const send = (i: number) =>
    void publisher.publish(topic, JSON.stringify({ i, t: performance.now() }), { qos: 1 });
  await warmUp(warmup, send, () => record.delivered / n);
  record = new FanoutRecord();
  const cpu = cpuMs(process.pid);
  const started = performance.now();
  if (rate > 0) await atRate(m, rate, send);
  else for (let i = 0; i < m; i++) send(i);
  await until(() => record.delivered >= n * m, 60_000);
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify(record.summary(seconds, cpuMs(process.pid) - cpu)));
  await Promise.all([publisher, ...subscribers].map((c) => c.endAsync()));
}
process.exit(0);
