/**
 * Clients for the chaos test (tests/conformance/chaos.test.ts): each keeps one client ID, is
 * bound to one endpoint, receives a numbered stream `{"n":1}`, `{"n":2}`, ..., and when its
 * connection breaks comes back after a random 0-500 ms with the same ID (binding again only if
 * the welcome says `resumed:false`). What arrived is booked per `n`, with each copy's
 * `redelivered` flag, so a test can count losses and duplicates.
 *
 * The reconnect loop and the bookkeeping are transport-free (`ChaosClient`); a kind of client
 * implements `connection()`, one connection from open to close. `WsChaosClient` is the
 * multiplexed WebSocket, with or without end-to-end acks (`ack=1`); an SSE client with
 * `Last-Event-ID` would be another subclass.
 */

export interface ChaosClientOptions {
  /** The gateway's (or its proxy's) base URL, `http://127.0.0.1:PORT`. */
  base: string;
  clientId: string;
  endpoint: string;
  /** Longest pause before a reconnect, ms (default 500). */
  maxReconnectDelayMs?: number;
}

/** One client's figures once the stream is over. */
export interface ChaosTally {
  clientId: string;
  /** Frames with an `n` received (every copy). */
  received: number;
  /** `n` from 1 to `last` never received. */
  lost: number[];
  /** Copies past the first of an `n`. */
  duplicates: number;
  /** Of those, the ones flagged `redelivered`. */
  duplicatesFlagged: number;
  /** Connections that opened (the first one included). */
  connections: number;
  /** Welcomes past the first that said `resumed:false` (the session was gone). */
  freshSessions: number;
  /** Welcomes that resumed but said `recovered:false` (something could not be kept). */
  unrecovered: number;
  /** Error frames the gateway sent. */
  errors: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export abstract class ChaosClient {
  readonly clientId: string;
  /** Per `n`, the `redelivered` flag of each copy, in arrival order. */
  readonly copies = new Map<number, boolean[]>();
  received = 0;
  connections = 0;
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

  /** Books one delivery of `n`. */
  protected record(n: number, redelivered: boolean): void {
    this.received++;
    const seen = this.copies.get(n);
    if (seen) seen.push(redelivered);
    else this.copies.set(n, [redelivered]);
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
    for (const flags of this.copies.values()) {
      for (const flag of flags.slice(1)) {
        duplicates++;
        if (flag) duplicatesFlagged++;
      }
    }
    return {
      clientId: this.clientId,
      received: this.received,
      lost,
      duplicates,
      duplicatesFlagged,
      connections: this.connections,
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
    const { base, clientId, endpoint } = this.options;
    const url = `${base.replace(/^http/, "ws")}/ws?clientId=${encodeURIComponent(clientId)}${
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
            if (frame.resumed === true && frame.recovered === false) this.unrecovered++;
            if (frame.resumed === false) {
              if (this.connections > 1) this.freshSessions++;
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
            this.record(m.data.n, m.redelivered === true);
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
