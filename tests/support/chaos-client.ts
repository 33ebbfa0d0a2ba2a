/**
 * The chaos tests' client, transport-free: it keeps one client ID, is bound to one endpoint,
 * receives a numbered stream `{"n":1}`, `{"n":2}`, ..., and when its connection breaks comes back
 * after a random 0-500 ms with the same ID (binding again only if the welcome says
 * `resumed:false`). What arrived is booked per `n`, with each copy's delivery id and
 * `redelivered` flag, so a test can count losses and duplicates. A kind of client implements
 * `connection()`, one connection from open to close (chaos-ws-client.ts, chaos-sse-client.ts).
 */

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

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

  protected options: ChaosClientOptions;
  constructor(options: ChaosClientOptions) {
    this.options = options;
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
