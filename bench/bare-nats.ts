/**
 * The baseline side of bench/nats.ts, run as its own process under the runtime being measured:
 * N bare @nats-io durable pull consumers with explicit acks, each delivering every message of
 * the subject and acking it with a confirmed ack, as the gateway's consumers do, without the
 * gateway.
 *
 *   bare-nats.ts SERVER STREAM SUBJECT N M
 *
 * Prints `ready` once every consumer pulls, then one JSON line with its figures once it has
 * N x M messages (or after 60 s).
 */
import process from "node:process";
import { connect } from "@nats-io/transport-node";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { percentile } from "./measure.ts";

const [server, stream, subject, nText, mText] = process.argv.slice(2);
const [n, m] = [Number(nText), Number(mText)];
const wall = () => performance.timeOrigin + performance.now();
const nc = await connect({ servers: server });
const js = jetstream(nc);
const jsm = await jetstreamManager(nc);
const latencies: number[] = [];
let start = 0;
let last = 0;

const pulls = await Promise.all(Array.from({ length: n }, async (_, i) => {
  const name = `bench-bare-${i}-${crypto.randomUUID().slice(0, 8)}`;
  await jsm.consumers.add(stream, {
    durable_name: name,
    filter_subject: subject,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.New,
  });
  const consumer = await js.consumers.get(stream, name);
  const messages = await consumer.consume({
    max_messages: 256,
    callback: (msg) => {
      const { t, t0 } = msg.json<{ t: number; t0: number }>();
      const now = wall();
      latencies.push(now - t);
      start = t0;
      last = now;
      void msg.ackAck().catch(() => {});
    },
  });
  return { name, messages };
}));
console.log("ready");

const deadline = Date.now() + 60_000;
while (latencies.length < n * m && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
console.log(JSON.stringify({
  delivered: latencies.length,
  perSecond: latencies.length / ((last - start) / 1000),
  p50: percentile(latencies, 50),
  p99: percentile(latencies, 99),
}));
for (const p of pulls) {
  p.messages.stop();
  await jsm.consumers.delete(stream, p.name).catch(() => {});
}
await nc.close();
process.exit(0);
