/**
 * `deno run --allow-all bench/churn.ts` / `bun run bench/churn.ts`: what a clean disconnect keeps
 * (issue 19, item 20). The gateway (under the runtime running this) has an MQTT endpoint on the
 * shared Mosquitto; CHURN_CONNECTED clients of the client library (`client/`) are connected at
 * a time, picked from a pool of CHURN_IDS client IDs. Each stays 0.3-3 s, then calls `close()`,
 * and a new client takes its slot with another ID that is not in use. An outside publisher sends
 * every connected client a numbered stream at CHURN_RATE messages a second each (QoS 1) until
 * its `close()` resolved, so messages are in flight at every close. At the end every ID comes
 * back once and takes what its session kept; a message the broker confirmed that no client of
 * its ID ever handled is lost.
 *
 * Runs with acks and without (CHURN_ACK=1 or 0 for one of them), each CHURN_SECONDS long
 * (default 60). CHURN_PLAIN=1 closes the way a client without the `leave` handshake does (the
 * socket's close() at once), for comparison. Figures, not assertions.
 */
import process from "node:process";
import type { MqttClient } from "mqtt";
import { connect } from "../client/mod.js";
import type { Client, Message } from "../client/mod.js";
import { startGateway } from "../tests/support/gateway-process.ts";
import { mqttEndpointYaml, namespace, outsideClient } from "../tests/support/mqtt.ts";
import { currentRuntime } from "../tests/support/runtime.ts";

const SECONDS = Number(process.env.CHURN_SECONDS ?? 60);
const IDS = Number(process.env.CHURN_IDS ?? 400);
const CONNECTED = Number(process.env.CHURN_CONNECTED ?? 100);
const RATE = Number(process.env.CHURN_RATE ?? 5);
const PLAIN = process.env.CHURN_PLAIN === "1";
const MODES = process.env.CHURN_ACK === undefined ? [false, true] : [process.env.CHURN_ACK === "1"];
/** End phase: a returning client that handled nothing for this long has had all it will get. */
const QUIET_MS = 1500;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A WebSocket that closes at once where the client library would send `leave` (CHURN_PLAIN). */
class PlainClose extends WebSocket {
  override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
    if (typeof data === "string" && data.includes('"type":"leave"')) return this.close(1000, "bye");
    super.send(data);
  }
}

interface Stream {
  topic: string;
  /** Next `n` to publish. */
  next: number;
  /** `n` the broker confirmed. */
  confirmed: Set<number>;
  /** `n` a handler of this ID handled (every copy counted in `copies`). */
  handled: Set<number>;
  copies: number;
  /** Whether publishing to it goes on (a client of it is connected and not closed yet). */
  live: boolean;
  /** A client of this ID subscribed once: its broker session exists and keeps what comes. */
  bound: boolean;
}

async function churn(ack: boolean): Promise<void> {
  const ns = namespace("churn");
  const gw = await startGateway(
    currentRuntime,
    `
server: { host: 127.0.0.1, port: 0, shutdown_timeout: 2s }
session: { type: memory, reconnection_window: 2m, cleanup_interval: 30s }
log: { level: info }
# The benchmark's clients all come from one address.
policy: { connections_per_second_per_address: 100000 }
endpoints:
${mqttEndpointYaml({ ns, poolSize: 2 })}
`,
  );
  const publisher: MqttClient = await outsideClient();
  const streams = Array.from({ length: IDS }, (_, i): Stream => ({
    topic: `${ns}/c${i}/down`,
    next: 1,
    confirmed: new Set(),
    handled: new Set(),
    copies: 0,
    live: false,
    bound: false,
  }));
  const inUse = new Set<number>();
  const confirms: Array<Promise<unknown>> = [];
  const url = `${gw.ws}/ws`;
  const options = { url, ack, ...(PLAIN ? { WebSocket: PlainClose as typeof WebSocket } : {}) };
  const handler = (s: Stream) => (m: Message) => {
    const n = (m.data as { n?: number }).n;
    if (typeof n !== "number") return;
    s.copies++;
    s.handled.add(n);
  };

  let publishing = true;
  const pacer = (async () => {
    const tick = 20;
    let owed = 0;
    while (publishing) {
      await sleep(tick);
      owed += (RATE * tick) / 1000;
      const whole = Math.floor(owed);
      owed -= whole;
      for (const s of streams) {
        if (!s.live) continue;
        for (let k = 0; k < whole; k++) {
          const n = s.next++;
          confirms.push(
            publisher.publishAsync(s.topic, JSON.stringify({ n }), { qos: 1 }).then(() => s.confirmed.add(n)),
          );
        }
      }
    }
  })();

  let sessions = 0;
  const deadline = Date.now() + SECONDS * 1000;
  const slot = async () => {
    while (Date.now() < deadline) {
      let i: number;
      do i = Math.floor(Math.random() * IDS); while (inUse.has(i));
      inUse.add(i);
      const s = streams[i];
      const client: Client = connect({ ...options, clientId: `c${i}` });
      client.on("error", () => {});
      try {
        await client.subscribe("sensors", handler(s));
        s.bound = s.live = true;
        await sleep(300 + Math.random() * 2700);
      } catch {
        // A refused subscribe: the slot goes on with another ID.
      }
      // Published to until close() resolved: messages are in flight at the close.
      await client.close();
      s.live = false;
      sessions++;
      inUse.delete(i);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: CONNECTED }, slot));
  publishing = false;
  await pacer;
  await Promise.allSettled(confirms);
  const churnSeconds = (performance.now() - started) / 1000;

  // Every bound ID once more, 50 at a time: what its session kept comes now.
  const bound = streams.map((s, i) => [s, i] as const).filter(([s]) => s.bound);
  let cursor = 0;
  await Promise.all(Array.from({ length: 50 }, async () => {
    while (cursor < bound.length) {
      const [s, i] = bound[cursor++];
      const client = connect({ url, ack, clientId: `c${i}` });
      client.on("error", () => {});
      let last = s.copies;
      let quietSince = Date.now();
      await client.subscribe("sensors", handler(s)).catch(() => {});
      while ([...s.confirmed].some((n) => !s.handled.has(n)) && Date.now() - quietSince < QUIET_MS) {
        await sleep(50);
        if (s.copies !== last) [last, quietSince] = [s.copies, Date.now()];
      }
      await client.close();
    }
  }));

  let total = 0;
  let lost = 0;
  let copies = 0;
  for (const s of streams) {
    total += s.confirmed.size;
    copies += s.copies;
    for (const n of s.confirmed) if (!s.handled.has(n)) lost++;
  }
  console.log(
    `churn (${currentRuntime}, ${ack ? "acks" : "no acks"}${
      PLAIN ? ", plain close without leave" : ", close() with leave"
    }): ` +
      `${sessions} sessions of ${IDS} IDs (${CONNECTED} at a time) in ${churnSeconds.toFixed(0)} s, ` +
      `${total} messages confirmed by the broker, ${lost} lost, ${copies - (total - lost)} extra copies`,
  );
  publisher.end(true);
  await gw.stop("SIGKILL");
}

for (const ack of MODES) await churn(ack);
process.exit(0);
