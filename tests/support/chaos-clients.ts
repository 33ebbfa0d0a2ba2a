/**
 * Clients for the chaos tests (tests/conformance/chaos*.test.ts): each keeps one client ID, is
 * bound to one endpoint, receives a numbered stream `{"n":1}`, `{"n":2}`, ..., and when its
 * connection breaks comes back after a random 0-500 ms with the same ID (binding again only if
 * the welcome says `resumed:false`). What arrived is booked per `n`, with each copy's delivery id
 * and `redelivered` flag, so a test can count losses and duplicates.
 *
 * The reconnect loop and the bookkeeping are transport-free (`ChaosClient`); a kind of client
 * implements `connection()`, one connection from open to close. `WsChaosClient` is the
 * multiplexed WebSocket, with or without end-to-end acks (`ack=1`); `SseChaosClient` is an SSE
 * stream over fetch that comes back with `Last-Event-ID`.
 *
 * `runChaos` drives one scenario (clients up, the proxies' monkeys on while the streams are
 * published, then a drain), `paceNumbered` paces a numbered stream per client, and
 * `chaosSummary` is the one line a person reads.
 */
import assert from "node:assert/strict";
import type { ChaosProxy } from "./chaos-proxy.ts";
import { parseSseBlock, sseBlocks } from "./sse-client.ts";
import type { SseEvent } from "./sse-client.ts";

export interface ChaosClientOptions {
  /**
   * The gateway's (or its proxy's) base URL, `http://127.0.0.1:PORT`; a function is asked again
   * at every (re)connect, so a client can spread over several nodes.
   */
  base: string | (() => string);
  clientId: string;
  endpoint: string;
  /** Longest pause before a reconnect, ms (default 500). */
  maxReconnectDelayMs?: number;
}

/** One client's figures once the stream is over. */
export interface ChaosTally {
  clientId: string;
  /** Messages with an `n` received (every copy). */
  received: number;
  /** `n` from 1 to `last` never received. */
  lost: number[];
  /** Copies past the first of an `n`. */
  duplicates: number;
  /** Of those, the ones flagged `redelivered`. */
  duplicatesFlagged: number;
  /**
   * Of those, the ones whose delivery id is that of an earlier copy (on SSE: written again from
   * the replay log; WebSocket ids are per connection, so there a repeat would be a gateway bug).
   */
  duplicatesSameId: number;
  /** Of the duplicates, the ones written again from the SSE replay log, and of those with another id. */
  duplicatesReplayed: number;
  duplicatesReplayedOtherId: number;
  /** Delivery ids that came with two different `n` (an id names one message: never expected). */
  idConflicts: string[];
  /** Connections that opened (the first one included). */
  connections: number;
  /** Connection attempts that did not open. */
  failedOpens: number;
  /** Welcomes past the first that said `resumed:false` (the session was gone). */
  freshSessions: number;
  /** Welcomes past the first that did not say `recovered:true` (something could not be kept). */
  unrecovered: number;
  /** Error frames (or events, or refused requests) the gateway sent. */
  errors: string[];
}

/** One copy of a message as it arrived. */
export interface ChaosCopy {
  id: string;
  redelivered: boolean;
  /** SSE: written again from the replay log (see `SseChaosClient.replayed`). */
  replayed?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `CHAOS_VERBOSE=1`: `runChaos` prints its phases and progress every 2 s. */
const verbose = !!(globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env
  .CHAOS_VERBOSE;

export abstract class ChaosClient {
  readonly clientId: string;
  /** Per `n`, each copy in arrival order. */
  readonly copies = new Map<number, ChaosCopy[]>();
  received = 0;
  connections = 0;
  /** Connection attempts that did not open (cut in the handshake, or refused). */
  failedOpens = 0;
  freshSessions = 0;
  unrecovered = 0;
  errors: string[] = [];
  /** Set by `finish`: unbind and close on the next live connection. */
  protected finishing = false;
  /** No more reconnects (finished, or failed). */
  protected done = false;
  #loop?: Promise<void>;

  constructor(protected options: ChaosClientOptions) {
    this.clientId = options.clientId;
  }

  /** The base URL to connect to now. */
  protected get base(): string {
    const { base } = this.options;
    return typeof base === "string" ? base : base();
  }

  /**
   * Runs one connection until it ends (resolves, or rejects when it could not open). Calls
   * `bound()` each time the connection is bound to the endpoint (resumed, or subscribed), and
   * `fail` when the gateway answers what the client cannot go on with.
   */
  protected abstract connection(bound: () => void, fail: (error: Error) => void): Promise<void>;

  /** Ends the binding (unsubscribe) on the connection that is open now and closes it. */
  protected abstract unbindAndClose(): Promise<void>;

  /** Whether a connection is open and bound right now. */
  abstract get live(): boolean;

  /** Opens the first connection, binds, and keeps reconnecting in the background. */
  start(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let first = true;
      const bound = () => {
        if (first) resolve();
        first = false;
        if (this.finishing) this.#unbind();
      };
      const fail = (error: Error) => {
        if (first) reject(error);
        first = false;
        this.done = true;
      };
      this.#loop = this.#run(bound, fail);
    });
  }

  async #run(bound: () => void, fail: (error: Error) => void): Promise<void> {
    const maxDelay = this.options.maxReconnectDelayMs ?? 500;
    while (!this.done) {
      try {
        await this.connection(bound, fail);
      } catch {
        // Could not open (cut in the handshake, or refused): try again like after a cut.
        this.failedOpens++;
      }
      if (this.done) break;
      await sleep(Math.random() * maxDelay);
    }
  }

  #unbind(): void {
    if (this.done) return;
    this.done = true;
    void this.unbindAndClose();
  }

  /** Books a welcome's `resumed` and `recovered` (call after `connections` counted its connection). */
  protected welcome(welcome: Record<string, unknown>): void {
    if (this.connections <= 1) return;
    if (welcome.resumed === false) this.freshSessions++;
    if (welcome.recovered !== true) this.unrecovered++;
  }

  /** Books one delivery of `n` with its delivery id. */
  protected record(n: number, redelivered: boolean, id: string): ChaosCopy {
    this.received++;
    const copy = { id, redelivered };
    const seen = this.copies.get(n);
    if (seen) seen.push(copy);
    else this.copies.set(n, [copy]);
    return copy;
  }

  /** Whether every `n` from 1 to `last` arrived. */
  hasAll(last: number): boolean {
    if (this.copies.size < last) return false;
    for (let n = 1; n <= last; n++) if (!this.copies.has(n)) return false;
    return true;
  }

  /**
   * Stops reconnecting: unbinds (unsubscribe, which ends the broker session) on the connection
   * open now, or on the next one to come up, and closes it.
   */
  async finish(timeoutMs = 10_000): Promise<void> {
    this.finishing = true;
    if (this.live) this.#unbind();
    await Promise.race([this.#loop, sleep(timeoutMs)]);
    this.done = true;
  }

  tally(last: number): ChaosTally {
    const lost: number[] = [];
    for (let n = 1; n <= last; n++) if (!this.copies.has(n)) lost.push(n);
    let duplicates = 0;
    let duplicatesFlagged = 0;
    let duplicatesSameId = 0;
    let duplicatesReplayed = 0;
    let duplicatesReplayedOtherId = 0;
    const byId = new Map<string, number>();
    const idConflicts = new Set<string>();
    for (const [n, copies] of this.copies) {
      copies.forEach((copy, i) => {
        const other = byId.get(copy.id);
        if (other !== undefined && other !== n) idConflicts.add(`${copy.id}: n=${other} and n=${n}`);
        byId.set(copy.id, n);
        if (i === 0) return;
        duplicates++;
        if (copy.redelivered) duplicatesFlagged++;
        const sameId = copies.slice(0, i).some((c) => c.id === copy.id);
        if (sameId) duplicatesSameId++;
        if (copy.replayed) duplicatesReplayed++;
        if (copy.replayed && !sameId) duplicatesReplayedOtherId++;
      });
    }
    return {
      clientId: this.clientId,
      received: this.received,
      lost,
      duplicates,
      duplicatesFlagged,
      duplicatesSameId,
      duplicatesReplayed,
      duplicatesReplayedOtherId,
      idConflicts: [...idConflicts],
      connections: this.connections,
      failedOpens: this.failedOpens,
      freshSessions: this.freshSessions,
      unrecovered: this.unrecovered,
      errors: this.errors,
    };
  }
}

interface MessageFrame {
  type: "message";
  endpoint: string;
  id: string;
  data: { n?: number };
  redelivered?: boolean;
}

/**
 * The multiplexed WebSocket (`/ws?clientId=X`, with `&ack=1` for end-to-end acks). With acks,
 * the latest delivery id handled is acknowledged (cumulatively) every `ackEveryMs`, so many
 * clients at a high rate do not flood the gateway with one ack per message.
 */
export class WsChaosClient extends ChaosClient {
  #ws?: WebSocket;
  #welcomed = false;
  #receipts = new Map<string, () => void>();
  #subscriptions = 0;

  constructor(options: ChaosClientOptions & { ack: boolean; ackEveryMs?: number }) {
    super(options);
    this.ack = options.ack;
    this.ackEveryMs = options.ackEveryMs ?? 20;
  }

  readonly ack: boolean;
  readonly ackEveryMs: number;

  get live(): boolean {
    return this.#welcomed && this.#ws?.readyState === WebSocket.OPEN;
  }

  protected connection(bound: () => void, fail: (error: Error) => void): Promise<void> {
    const { clientId, endpoint } = this.options;
    const url = `${this.base.replace(/^http/, "ws")}/ws?clientId=${encodeURIComponent(clientId)}${
      this.ack ? "&ack=1" : ""
    }`;
    return new Promise<void>((resolve, reject) => {
      const ws = this.#ws = new WebSocket(url);
      let opened = false;
      let latest: string | undefined;
      let acked: string | undefined;
      const acker = this.ack
        ? setInterval(() => {
          if (latest === undefined || latest === acked || ws.readyState !== WebSocket.OPEN) return;
          ws.send(JSON.stringify({ type: "ack", endpoint, id: latest }));
          acked = latest;
        }, this.ackEveryMs)
        : undefined;
      const send = (frame: unknown) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
      };
      ws.onopen = () => {
        opened = true;
        this.connections++;
      };
      ws.onmessage = (event) => {
        if (typeof event.data !== "string") return;
        const frame = JSON.parse(event.data) as { type: string } & Record<string, unknown>;
        switch (frame.type) {
          case "welcome": {
            if (this.ack && frame.ack !== true) {
              fail(new Error(`asked for acks (ack=1), but the welcome says ${event.data}`));
              ws.close(1000, "no acks");
              break;
            }
            this.welcome(frame);
            if (frame.resumed === false) {
              const id = `sub-${++this.#subscriptions}`;
              this.#receipts.set(id, () => {
                this.#welcomed = true;
                bound();
              });
              send({ type: "subscribe", endpoint, id });
            } else {
              this.#welcomed = true;
              bound();
            }
            break;
          }
          case "message": {
            const m = frame as unknown as MessageFrame;
            if (m.endpoint !== endpoint || typeof m.data?.n !== "number") break;
            this.record(m.data.n, m.redelivered === true, m.id);
            latest = m.id;
            break;
          }
          case "receipt": {
            const done = this.#receipts.get(frame.id as string);
            this.#receipts.delete(frame.id as string);
            done?.();
            break;
          }
          case "error":
            this.errors.push(`${frame.code}: ${frame.message}`);
            break;
        }
      };
      ws.onclose = () => {
        clearInterval(acker);
        this.#welcomed = false;
        if (opened) resolve();
        else reject(new Error(`WebSocket ${url} did not open`));
      };
    });
  }

  protected async unbindAndClose(): Promise<void> {
    const ws = this.#ws!;
    const id = `unsub-${this.clientId}`;
    const answered = new Promise<void>((resolve) => this.#receipts.set(id, resolve));
    try {
      ws.send(JSON.stringify({ type: "unsubscribe", endpoint: this.options.endpoint, id }));
      await Promise.race([answered, sleep(5000)]);
      ws.close(1000, "done");
    } catch {
      // Closed under us: the window and the cleanup worker end the binding instead.
    }
  }
}

/**
 * Takes the session over with a WebSocket and unsubscribes `endpoint` there, which ends the
 * broker session: what an SSE client, which has no frame for it, does to end its binding.
 */
async function unsubscribeOverWs(base: string, clientId: string, endpoint: string): Promise<void> {
  const ws = new WebSocket(`${base.replace(/^http/, "ws")}/ws?clientId=${encodeURIComponent(clientId)}`);
  const id = `unsub-${clientId}`;
  try {
    await Promise.race([
      new Promise<void>((resolve, reject) => {
        ws.onopen = () => ws.send(JSON.stringify({ type: "unsubscribe", endpoint, id }));
        ws.onmessage = (event) => {
          const frame = JSON.parse(String(event.data)) as { type: string; id?: string };
          if (frame.type === "receipt" && frame.id === id) resolve();
        };
        ws.onclose = () => reject(new Error("closed before the receipt"));
      }),
      sleep(5000),
    ]);
  } catch {
    // The window and the cleanup worker end the binding instead.
  } finally {
    ws.close(1000, "done");
  }
}

/**
 * An SSE stream over fetch (not EventSource: both runtimes' fetch can read a stream),
 * `GET /sse/<endpoint>?clientId=X`, coming back after each cut with the header
 * `Last-Event-ID: <id of the last message event received>`, as EventSource does. The stream
 * binds on connect, so a fresh session needs nothing more. SSE events carry no `redelivered`
 * flag: a copy that came again from the replay log has the id of its first copy.
 */
export class SseChaosClient extends ChaosClient {
  /** The id of the last message event received (any connection). */
  lastEventId?: string;
  /** Connections that sent `Last-Event-ID`. */
  withLastEventId = 0;
  /**
   * Message events that came from the replay log: on each connection, those with an epoch (the
   * id's `<epoch>.` part) below that of the connection's own newest event. A connection cut
   * before anything new came is not counted, so this is a lower bound.
   */
  replayed = 0;
  /** This connection's message events, with their ids' epochs. */
  #arrived: Array<{ copy: ChaosCopy; epoch: number }> = [];
  #controller?: AbortController;
  #streaming = false;
  #welcomed = false;
  #unbinding?: Promise<void>;
  /** Where the latest connection went. */
  #base = "";

  get live(): boolean {
    return this.#streaming && this.#welcomed;
  }

  protected async connection(bound: () => void, _fail: (error: Error) => void): Promise<void> {
    const { clientId, endpoint } = this.options;
    const base = this.#base = this.base;
    const url = `${base}/sse/${endpoint}?clientId=${encodeURIComponent(clientId)}`;
    const headers: Record<string, string> = {};
    if (this.lastEventId !== undefined) headers["Last-Event-ID"] = this.lastEventId;
    const controller = this.#controller = new AbortController();
    const response = await fetch(url, { headers, signal: controller.signal });
    if (!response.ok || !response.body) {
      const body = await response.text().catch(() => "");
      this.errors.push(`HTTP ${response.status}: ${body}`);
      throw new Error(`${url} answered ${response.status}`);
    }
    this.connections++;
    if (this.lastEventId !== undefined) this.withLastEventId++;
    this.#streaming = true;
    this.#arrived = [];
    const reader = response.body.getReader();
    try {
      for await (const block of sseBlocks(reader)) {
        const { event } = parseSseBlock(block);
        if (event) this.#handle(event, bound);
      }
    } catch {
      // Cut (reset), or aborted by finish: the loop comes back. What arrived after the last
      // full event is half an event: dropped, as EventSource does.
    } finally {
      this.#streaming = false;
      this.#welcomed = false;
      const newest = Math.max(...this.#arrived.map((a) => a.epoch));
      for (const a of this.#arrived) {
        if (a.epoch >= newest) continue;
        a.copy.replayed = true;
        this.replayed++;
      }
      await this.#unbinding;
    }
  }

  #handle(event: SseEvent, bound: () => void): void {
    switch (event.event) {
      case "welcome": {
        this.welcome(JSON.parse(event.data));
        this.#welcomed = true;
        break;
      }
      // Not the welcome: it goes out before the binding is made, and what is published before
      // a new binding is in place does not reach the stream (README "SSE").
      case "subscribed":
        bound();
        break;
      case "message": {
        const data = JSON.parse(event.data) as { n?: number };
        if (typeof data?.n !== "number" || event.id === undefined) break;
        const copy = this.record(data.n, false, event.id);
        this.#arrived.push({ copy, epoch: Number(event.id.split(".")[0]) });
        this.lastEventId = event.id;
        break;
      }
      case "taken-over":
        // Only finish's own WebSocket takes the session while a stream is up.
        if (!this.finishing) this.errors.push(`taken-over: ${event.data}`);
        break;
      case "error": {
        const e = JSON.parse(event.data) as { code?: string; message?: string };
        this.errors.push(`${e.code}: ${e.message}`);
        break;
      }
    }
  }

  protected unbindAndClose(): Promise<void> {
    // On the node the stream is on; the WebSocket's takeover ends the stream.
    this.#unbinding ??= unsubscribeOverWs(this.#base, this.clientId, this.options.endpoint)
      .finally(() => this.#controller?.abort());
    return this.#unbinding;
  }
}

/** What one chaos scenario did. */
export interface ChaosRun {
  /** Messages published to each client. */
  last: number;
  /** Messages per second and client, and for how long. */
  rate: number;
  trafficSeconds: number;
  tallies: ChaosTally[];
  /** Over every proxy. */
  cuts: number;
  droppedBytes: number;
  /** Wall time of the whole run, s. */
  seconds: number;
}

export interface ChaosPlan {
  clients: ChaosClient[];
  /** The proxies the clients go through; each one's monkey runs while the streams are sent. */
  proxies: ChaosProxy[];
  rate: number;
  trafficSeconds: number;
  /** Sends `rate * trafficSeconds` numbered messages to each client; resolves once the broker has them. */
  publish: (total: number) => Promise<void>;
  /** After the publisher is done: how long clients may take to get everything (default 15 s). */
  drainMs?: number;
  /** Clients all live and none received anything for this long: nothing more is coming (default 2 s). */
  quietMs?: number;
  /** How long the clients may take to connect and bind at first, ms (default 30 s). */
  bindTimeoutMs?: number;
  /** The monkey's shortest and longest connection life, ms (default 300-2000). */
  cutMinMs?: number;
  cutMaxMs?: number;
}

/** Starts every client; rejects, naming those that are not bound yet and what they saw, after `timeoutMs`. */
async function bindAll(clients: ChaosClient[], timeoutMs: number): Promise<void> {
  const bound = new Set<ChaosClient>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const waiting = clients.filter((c) => !bound.has(c));
      reject(
        new Error(
          `${waiting.length} clients not bound after ${timeoutMs} ms: ${
            waiting.map((c) =>
              `${c.clientId} (connections ${c.connections}, errors ${JSON.stringify(c.errors)})`
            )
              .join(", ")
          }`,
        ),
      );
    }, timeoutMs);
  });
  try {
    await Promise.race([Promise.all(clients.map((c) => c.start().then(() => void bound.add(c)))), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One chaos scenario: the clients connect (through their proxies) and bind, the monkeys start,
 * the streams are published, the monkeys stop, and the clients get what is still coming
 * (everything, or until all are live and quiet). The clients are finished (unbound) before it
 * resolves or rejects; the proxies are the caller's.
 */
export async function runChaos(plan: ChaosPlan): Promise<ChaosRun> {
  const { clients, proxies } = plan;
  const total = plan.rate * plan.trafficSeconds;
  const started = performance.now();
  const phase = (what: string) => {
    if (!verbose) return;
    const received = clients.reduce((sum, c) => sum + c.received, 0);
    const live = clients.filter((c) => c.live).length;
    console.log(
      `  [${
        ((performance.now() - started) / 1000).toFixed(1)
      } s] ${what}; received ${received}, live ${live}`,
    );
  };
  const progress = verbose ? setInterval(() => phase("..."), 2000) : undefined;
  try {
    await bindAll(clients, plan.bindTimeoutMs ?? 30_000);
    phase("clients bound");
    for (const p of proxies) p.startMonkey(plan.cutMinMs ?? 300, plan.cutMaxMs ?? 2000);
    await plan.publish(total);
    for (const p of proxies) p.stopMonkey();
    phase("published");
    const deadline = Date.now() + (plan.drainMs ?? 15_000);
    let lastCount = -1;
    let quietSince = Date.now();
    while (!clients.every((c) => c.hasAll(total)) && Date.now() < deadline) {
      const count = clients.reduce((sum, c) => sum + c.received, 0);
      if (count !== lastCount || !clients.every((c) => c.live)) {
        lastCount = count;
        quietSince = Date.now();
      } else if (Date.now() - quietSince > (plan.quietMs ?? 2000)) {
        break;
      }
      await sleep(50);
    }
    return {
      last: total,
      rate: plan.rate,
      trafficSeconds: plan.trafficSeconds,
      tallies: clients.map((c) => c.tally(total)),
      cuts: proxies.reduce((sum, p) => sum + p.cuts, 0),
      droppedBytes: proxies.reduce((sum, p) => sum + p.droppedBytes, 0),
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    for (const p of proxies) p.stopMonkey();
    phase("finishing");
    await Promise.all(clients.map((c) => c.finish()));
    phase("finished");
    clearInterval(progress);
  }
}

/**
 * Paces `streams` numbered streams (`n` from 1 to `total` each) at `rate` per second and stream:
 * every few ms `tick` gets what is due, as `[stream, n]` pairs in order. A tick that returns a
 * promise is awaited before the next (what comes due meanwhile goes in the next batch).
 */
export async function paceNumbered(
  streams: number,
  rate: number,
  total: number,
  tick: (due: Array<[stream: number, n: number]>) => Promise<unknown> | void,
): Promise<void> {
  const sent = Array.from({ length: streams }, () => 0);
  const started = performance.now();
  while (sent.some((s) => s < total)) {
    const upTo = Math.min(total, Math.floor(((performance.now() - started) * rate) / 1000) + 1);
    const due: Array<[number, number]> = [];
    for (let i = 0; i < streams; i++) while (sent[i] < upTo) due.push([i, ++sent[i]]);
    if (due.length > 0) await tick(due);
    await sleep(5);
  }
}

/**
 * One line: what a person reads to see what the chaos did. `duplicates` says how duplicates
 * are told apart: by the `redelivered` flag (WebSocket), or by id (SSE: one with the id of an
 * earlier copy was written again from the replay log; one with another id came from the broker
 * again), with how many arrived by replay (and of those, with another id).
 */
export function chaosSummary(
  runtime: string,
  name: string,
  r: ChaosRun,
  duplicates: "flag" | "id" = "flag",
): string {
  const sum = (f: (t: ChaosTally) => number) => r.tallies.reduce((s, t) => s + f(t), 0);
  const dups = duplicates === "flag"
    ? `duplicates ${sum((t) => t.duplicates)}, flagged redelivered ${sum((t) => t.duplicatesFlagged)}`
    : `duplicates ${sum((t) => t.duplicates)}: same id ${sum((t) => t.duplicatesSameId)},` +
      ` other id ${sum((t) => t.duplicates - t.duplicatesSameId)}; by replay ${
        sum((t) => t.duplicatesReplayed)
      }` +
      ` (other id ${sum((t) => t.duplicatesReplayedOtherId)})`;
  return `chaos (${runtime}, ${name}): ${r.tallies.length} clients x ${r.last} messages` +
    ` (${r.rate}/s for ${r.trafficSeconds} s), received ${sum((t) => t.received)}; cuts ${r.cuts},` +
    ` dropped bytes ${r.droppedBytes}; lost ${sum((t) => t.lost.length)}; ${dups};` +
    ` connections ${sum((t) => t.connections)} (failed opens ${sum((t) => t.failedOpens)}), fresh sessions ${
      sum((t) => t.freshSessions)
    },` +
    ` reconnects not recovered ${sum((t) => t.unrecovered)},` +
    ` error frames ${sum((t) => t.errors.length)}; ${r.seconds.toFixed(1)} s` +
    errorLines(r);
}

/** The distinct error frames, with how often each came (client IDs left out). */
function errorLines(r: ChaosRun): string {
  const counts = new Map<string, number>();
  for (const e of r.tallies.flatMap((t) => t.errors)) {
    const key = e.replaceAll(/chaos-[\w-]+?-\w{8}-\d+/g, "<client>");
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([e, n]) => `\n  ${n} x ${e}`).join("");
}

/** What one client lost, for an assertion message. */
export const losses = (t: ChaosTally) =>
  `${t.clientId}: ${t.lost.length} lost${t.lost.length ? ` (${t.lost.slice(0, 10).join(", ")}...)` : ""}`;

/**
 * The end-to-end guarantee, asserted per client: nothing lost, every copy past the first flagged
 * `redelivered`, and no error frame (a failed resume stalls a client until its next reconnect:
 * had it been the last one, its messages would not have come).
 */
export function assertNoLossAllFlagged(run: ChaosRun): void {
  for (const t of run.tallies) {
    assert.equal(t.lost.length, 0, losses(t));
    assert.equal(
      t.duplicatesFlagged,
      t.duplicates,
      `${t.clientId}: ${
        t.duplicates - t.duplicatesFlagged
      } of ${t.duplicates} duplicates not flagged redelivered`,
    );
  }
  assert.deepEqual(run.tallies.flatMap((t) => t.errors), [], "no error frames");
}
