/**
 * The bind side of bench/kafka.ts, on one gateway with two endpoints that read from the topic's
 * end (`start_from: latest`, the default fetch_max_wait of 500 ms): `own`, a topic per client,
 * and `bind`, one topic for all. Under the runtime being measured:
 *
 * - bind latency: a fresh client subscribes to `own`; from its receipt to the first message
 *   produced after it (right at the receipt), BIND_SAMPLES times, one after another, while another
 *   client stays bound to `own` (its topic quiet), so the node's fetch is in a long poll when the
 *   new partition joins, as on a node with clients;
 * - resume latency: the same client closes and comes back (a resume from its committed offsets);
 *   from the welcome to the first message produced right after it;
 * - BENCH_BOUND (1,000) clients bound to `bind`, one, then the rest 100 at a time: the time to
 *   bind the rest, the gateway's TCP connections to the broker (ss) with the first bound and with
 *   all, its RSS per bound client, the consumer groups on the broker; then all disconnect, and the
 *   time from the end of their window until the cleanup worker deleted their groups.
 */
import { spawnSync } from "node:child_process";
import process from "node:process";
import type { Kafka, Producer } from "kafkajs";
import type { Gateway } from "../tests/support/gateway-process.ts";
import { BenchSocket, connect, inBatches } from "./clients.ts";
import { percentile, rssBytes } from "./measure.ts";

const SAMPLES = Number(process.env.BIND_SAMPLES ?? 30);
const BOUND = Number(process.env.BENCH_BOUND ?? 1000);

export interface BindFigures {
  bindP50: number;
  bindP99: number;
  resumeP50: number;
  resumeP99: number;
  bound: number;
  bindAllSeconds: number;
  connectionsOne: number;
  connectionsBound: number;
  rssPerClientKb: number;
  groups: number;
  cleanupSeconds: number;
}

/** The gateway endpoint the figures need (added to its `endpoints:`). */
export function bindEndpoint(brokers: string[], topic: string): string {
  return `
  - name: own
    type: kafka
    brokers: [${brokers.map((b) => `"${b}"`).join(", ")}]
    publish_topic: "${topic}.{clientId}"
    subscribe_topic: "${topic}.{clientId}"
  - name: bind
    type: kafka
    brokers: [${brokers.map((b) => `"${b}"`).join(", ")}]
    publish_topic: "${topic}"
    subscribe_topic: "${topic}"
    start_from: latest`;
}

/** Established TCP connections from `pid` to the broker at `broker` (host:port). */
function connections(pid: number, broker: string): number {
  const out = spawnSync("ss", ["-tnpH", "state", "established", "dst", broker], { encoding: "utf8" }).stdout;
  return out.split("\n").filter((l) => l.includes(`pid=${pid},`)).length;
}

async function groupsWith(kafka: Kafka, prefix: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return (await admin.listGroups()).groups.filter((g) => g.groupId.startsWith(prefix)).length;
  } finally {
    await admin.disconnect();
  }
}

/** The first message frame on `socket` after now, in ms from now. */
function firstMessage(socket: BenchSocket, from: number): Promise<number> {
  return new Promise((resolve) => {
    socket.onMessage = (_data, at) => {
      socket.onMessage = undefined;
      resolve(at - from);
    };
  });
}

export async function bindFigures(
  gw: Gateway,
  kafka: Kafka,
  producer: Producer,
  broker: string,
  topic: string,
  label: string,
  windowMs: number,
): Promise<BindFigures> {
  const binds: number[] = [];
  const resumes: number[] = [];
  const quiet = await connect(gw.ws, `${label}-quiet`);
  await quiet.request({ type: "subscribe", endpoint: "own" });
  for (let n = 0; n < SAMPLES; n++) {
    const id = `${label}-lat-${n}`;
    const produce = () =>
      producer.send({ topic: `${topic}.${id}`, messages: [{ value: JSON.stringify({ i: 0, t: 0 }) }] });
    const socket = await connect(gw.ws, id);
    await socket.request({ type: "subscribe", endpoint: "own" });
    let from = performance.now();
    let arrived = firstMessage(socket, from);
    await produce();
    binds.push(await arrived);
    await socket.close();
    const again = await BenchSocket.open(`${gw.ws}/ws?clientId=${id}`);
    await again.reply((f) => f.type === "welcome");
    from = performance.now();
    arrived = firstMessage(again, from);
    await produce();
    resumes.push(await arrived);
    await again.request({ type: "unsubscribe", endpoint: "own" });
    await again.close();
  }
  await quiet.request({ type: "unsubscribe", endpoint: "own" });
  await quiet.close();

  const one = await connect(gw.ws, `${label}-many-0`);
  await one.request({ type: "subscribe", endpoint: "bind" });
  // The first client connected the endpoint's fetch, join and control connections.
  const connectionsOne = connections(gw.pid(), broker);
  const rssBefore = rssBytes(gw.pid());
  const started = performance.now();
  const rest = await inBatches(BOUND - 1, async (j) => {
    const i = j + 1;
    const socket = await connect(gw.ws, `${label}-many-${i}`);
    await socket.request({ type: "subscribe", endpoint: "bind" });
    return socket;
  });
  const sockets = [one, ...rest];
  const bindAllSeconds = (performance.now() - started) / 1000;
  const connectionsBound = connections(gw.pid(), broker);
  const rssPerClientKb = (rssBytes(gw.pid()) - rssBefore) / 1024 / (BOUND - 1);
  const prefix = `engine-bind-client-${label}-many-`;
  const groups = await groupsWith(kafka, prefix);
  // Away for good: after the window the cleanup worker unbinds them, deleting their groups.
  await inBatches(BOUND, (i) => sockets[i].close());
  const closed = performance.now();
  await new Promise((r) => setTimeout(r, windowMs));
  while (await groupsWith(kafka, prefix) > 0 && performance.now() - closed < windowMs + 300_000) {
    await new Promise((r) => setTimeout(r, 250));
  }
  const cleanupSeconds = (performance.now() - closed - windowMs) / 1000;
  return {
    bindP50: percentile(binds, 50),
    bindP99: percentile(binds, 99),
    resumeP50: percentile(resumes, 50),
    resumeP99: percentile(resumes, 99),
    bound: BOUND,
    bindAllSeconds,
    connectionsOne,
    connectionsBound,
    rssPerClientKb,
    groups,
    cleanupSeconds,
  };
}
