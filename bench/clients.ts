/**
 * The benchmark's WebSocket clients, for the gateway and the forwarder alike (the same frames),
 * on the runtime's own WebSocket. Lean on purpose: they share the machine's 2 cores with what
 * they measure, so a message frame is parsed once and recorded, nothing kept.
 */
import { atRate, cpuMs, FanoutRecord, until, warmUp } from "./measure.ts";
import type { FanoutSummary } from "./measure.ts";

type Frame = Record<string, unknown>;

export class BenchSocket {
  #ws: WebSocket;
  #replies: Frame[] = [];
  #waiters: Array<() => void> = [];
  /** Called with the parsed `data` of each message frame and its arrival time. */
  onMessage?: (data: { i: number; t: number }, at: number) => void;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.onmessage = (e) => {
      const at = performance.now();
      const frame = JSON.parse(e.data as string) as Frame;
      if (frame.type === "message") {
        this.onMessage?.(frame.data as { i: number; t: number }, at);
        return;
      }
      this.#replies.push(frame);
      for (const w of this.#waiters.splice(0)) w();
    };
  }

  static open(url: string): Promise<BenchSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const socket = new BenchSocket(ws);
      ws.onopen = () => resolve(socket);
      ws.onerror = () => reject(new Error(`WebSocket ${url} failed to open`));
    });
  }

  send(frame: Frame): void {
    this.#ws.send(JSON.stringify(frame));
  }

  /** The first reply (any frame but a message) that matches; waits up to a minute. */
  async reply(match: (f: Frame) => boolean): Promise<Frame> {
    const deadline = performance.now() + 60_000;
    for (;;) {
      const found = this.#replies.find(match);
      if (found) {
        this.#replies.splice(this.#replies.indexOf(found), 1);
        return found;
      }
      if (performance.now() > deadline) throw new Error("no reply within 60 s");
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }

  /** Sends a frame with a fresh id and waits for its receipt; an error frame throws. */
  async request(frame: Frame): Promise<void> {
    const id = crypto.randomUUID();
    this.send({ ...frame, id });
    const answer = await this.reply((f) => (f.type === "receipt" || f.type === "error") && f.id === id);
    if (answer.type === "error") throw new Error(`${answer.code}: ${answer.message}`);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#ws.onclose = () => resolve();
      this.#ws.close(1000, "bye");
    });
  }
}

/** Runs `each` for 0..n-1, 100 at a time. */
export async function inBatches<T>(n: number, each: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i += 100) {
    out.push(...await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, j) => each(i + j))));
  }
  return out;
}

/** A client connected and welcomed. */
export async function connect(base: string, id: string): Promise<BenchSocket> {
  const socket = await BenchSocket.open(`${base}/ws?clientId=${id}`);
  await socket.reply((f) => f.type === "welcome");
  return socket;
}

/**
 * `clients` clients bind `endpoint` (connect, subscribe, receipt), timed; CPU is `pid`'s, the
 * server's. Unbound and closed after.
 */
export async function binds(base: string, pid: number, endpoint: string, clients: number, label: string) {
  const cpu = cpuMs(pid);
  const started = performance.now();
  const sockets = await inBatches(clients, async (i) => {
    const socket = await connect(base, `${label}-${i}`);
    await socket.request({ type: "subscribe", endpoint });
    return socket;
  });
  const seconds = (performance.now() - started) / 1000;
  const cpuUsPerBind = ((cpuMs(pid) - cpu) * 1000) / clients;
  return {
    bindsPerSecond: clients / seconds,
    cpuUsPerBind,
    /** Unbinds and closes, so the benchmark leaves no broker sessions behind. */
    release: async () => {
      await inBatches(sockets.length, (i) => sockets[i].request({ type: "unsubscribe", endpoint }));
      await inBatches(sockets.length, (i) => sockets[i].close());
    },
  };
}

/**
 * Fan-out through a server: `subscribers` clients bound to `endpoint` and a publisher
 * connected first; `warmup` messages sent and delivered; then each run of `runs` (a burst when
 * its rate is 0, else that many messages a second) measured, CPU being `pid`'s.
 */
export async function fanout(
  base: string,
  pid: number,
  endpoint: string,
  subscribers: number,
  warmup: number,
  runs: Array<{ messages: number; rate: number }>,
  label: string,
): Promise<FanoutSummary[]> {
  let record = new FanoutRecord();
  const sockets = await inBatches(subscribers, async (i) => {
    const socket = await connect(base, `${label}-${i}`);
    socket.onMessage = (data, at) => record.add(data.i, data.t, at);
    await socket.request({ type: "subscribe", endpoint });
    return socket;
  });
  const publisher = await connect(base, `${label}-publisher`);
  const send = (i: number) =>
    publisher.send({ type: "publish", endpoint, data: { i, t: performance.now() } });
  await warmUp(warmup, send, () => record.delivered / subscribers);
  const results: FanoutSummary[] = [];
  for (const { messages, rate } of runs) {
    record = new FanoutRecord();
    const cpu = cpuMs(pid);
    const started = performance.now();
    if (rate > 0) await atRate(messages, rate, send);
    else for (let i = 0; i < messages; i++) send(i);
    await until(() => record.delivered >= subscribers * messages, 60_000);
    const seconds = (performance.now() - started) / 1000;
    results.push(record.summary(seconds, cpuMs(pid) - cpu));
  }
  await inBatches(sockets.length, (i) => sockets[i].request({ type: "unsubscribe", endpoint }));
  await Promise.all([publisher, ...sockets].map((s) => s.close()));
  return results;
}
