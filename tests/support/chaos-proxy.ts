/**
 * A chaos TCP proxy for tests (DESIGN.md section 11: failure tested the way it happens). It
 * listens on a free 127.0.0.1 port and forwards each connection it accepts to a target, and it
 * can **cut** connections the way a network failure does: both sockets are reset (RST, where the
 * runtime has `resetAndDestroy`) and whatever it had read from the target but not yet handed to
 * the client is thrown away.
 *
 * So that a cut really loses bytes, target -> client data is not passed on at once: what arrives
 * is held for `holdMs` and then written as one batch, and while the client socket is backed up
 * the proxy stops reading from the target. At a cut, the held bytes and those still queued on
 * the client socket are dropped and counted in `droppedBytes`. Client -> target data is passed
 * on as it comes (what is queued on the target socket at a cut is counted in `droppedUpBytes`).
 *
 * Works on node:net alone, so under Deno and Bun alike.
 */
import net from "node:net";
import type { Socket } from "node:net";

export interface ChaosProxyOptions {
  /** The target's host (default 127.0.0.1). */
  targetHost?: string;
  /** How long bytes from the target are held before they go to the client, in ms (default 10). */
  holdMs?: number;
}

/** What a test sees of one proxied connection. */
export interface ChaosConnection {
  readonly id: number;
  /** `performance.now()` when it was accepted. */
  readonly openedAt: number;
  /** Bytes read from the target so far (passed on, held, or dropped). */
  readonly bytesRead: number;
  /** Bytes passed on client -> target and target -> client so far. */
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** Bytes read from the target and not yet written to the client (held for the next batch). */
  readonly heldBytes: number;
  readonly closed: boolean;
  readonly wasCut: boolean;
}

/** Resets a socket (RST) where the runtime can, else destroys it (FIN or RST, the OS decides). */
function reset(socket: Socket): void {
  const s = socket as Socket & { resetAndDestroy?: () => Socket };
  try {
    if (typeof s.resetAndDestroy === "function" && !s.destroyed) s.resetAndDestroy();
    else s.destroy();
  } catch {
    // Not connected yet, or already gone: destroy does what can be done.
    s.destroy();
  }
}

class Link implements ChaosConnection {
  readonly openedAt = performance.now();
  bytesRead = 0;
  bytesUp = 0;
  bytesDown = 0;
  closed = false;
  wasCut = false;
  monkey?: ReturnType<typeof setTimeout>;
  #held: Uint8Array[] = [];
  #heldBytes = 0;
  #flushTimer?: ReturnType<typeof setTimeout>;
  #upstreamConnected = false;
  #pendingUp: Uint8Array[] = [];

  readonly id: number;
  readonly client: Socket;
  readonly upstream: Socket;
  readonly holdMs: number;
  readonly onClosed: (link: Link) => void;
  constructor(
    id: number,
    client: Socket,
    upstream: Socket,
    holdMs: number,
    onClosed: (link: Link) => void,
  ) {
    this.id = id;
    this.client = client;
    this.upstream = upstream;
    this.holdMs = holdMs;
    this.onClosed = onClosed;
    // A failure on either side (a reset, a refused connect) is passed on as a reset; an orderly
    // end is passed on as an end, after what is held was written.
    client.on("error", () => this.#abort());
    upstream.on("error", () => this.#abort());
    client.on("close", () => this.#ended());
    upstream.on("close", () => this.#ended());
    upstream.on("connect", () => {
      this.#upstreamConnected = true;
      for (const chunk of this.#pendingUp.splice(0)) this.#writeUp(chunk);
    });
    client.on("data", (chunk: Uint8Array) => {
      if (this.#upstreamConnected) this.#writeUp(chunk);
      else this.#pendingUp.push(chunk);
    });
    client.on("end", () => {
      if (!this.closed) upstream.end();
    });
    upstream.on("data", (chunk: Uint8Array) => {
      this.bytesRead += chunk.length;
      this.#held.push(chunk);
      this.#heldBytes += chunk.length;
      this.#flushTimer ??= setTimeout(() => this.#flush(), this.holdMs);
    });
    upstream.on("end", () => {
      if (this.closed) return;
      this.#flush();
      client.end();
    });
  }

  get heldBytes(): number {
    return this.#heldBytes;
  }

  #writeUp(chunk: Uint8Array): void {
    this.bytesUp += chunk.length;
    if (!this.upstream.write(chunk)) {
      this.client.pause();
      this.upstream.once("drain", () => this.client.resume());
    }
  }

  /** Writes the held batch to the client; stops reading the target while the client is backed up. */
  #flush(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    if (this.closed || this.#heldBytes === 0) return;
    const batch = Buffer.concat(this.#held);
    this.#held = [];
    this.#heldBytes = 0;
    this.bytesDown += batch.length;
    if (!this.client.write(batch)) {
      this.upstream.pause();
      this.client.once("drain", () => this.upstream.resume());
    }
  }

  /** Cuts the connection; returns the target -> client bytes thrown away. */
  cut(): { down: number; up: number } {
    if (this.closed) return { down: 0, up: 0 };
    const down = this.#heldBytes + (this.client.writableLength ?? 0);
    const up = this.#pendingUp.reduce((sum, c) => sum + c.length, 0) + (this.upstream.writableLength ?? 0);
    this.wasCut = true;
    this.#held = [];
    this.#heldBytes = 0;
    this.#pendingUp = [];
    this.#abort();
    return { down, up };
  }

  /** Both sides go at once and abruptly; bytes still held are never delivered. */
  #abort(): void {
    if (this.closed) return;
    this.#done();
    reset(this.client);
    reset(this.upstream);
  }

  /** One side closed in order: the other gets what is held, then an end. */
  #ended(): void {
    if (this.closed) return;
    if (!this.client.destroyed) this.#flush();
    this.#done();
    this.client.end();
    this.upstream.end();
    // A peer that never answers the end is not kept waiting on.
    const timer = setTimeout(() => {
      this.client.destroy();
      this.upstream.destroy();
    }, 2000);
    (timer as { unref?: () => void }).unref?.();
  }

  #done(): void {
    this.closed = true;
    clearTimeout(this.#flushTimer);
    clearTimeout(this.monkey);
    this.onClosed(this);
  }
}

export class ChaosProxy {
  /** Bytes read from the target and thrown away by cuts. */
  droppedBytes = 0;
  /** Bytes from clients thrown away by cuts (not yet taken by the target). */
  droppedUpBytes = 0;
  /** Connections cut (by `cut`, `cutAll` or the monkey). */
  cuts = 0;
  /** Connections accepted. */
  accepted = 0;
  readonly #server: net.Server;
  readonly #live = new Set<Link>();
  #nextId = 1;
  #monkey?: { minMs: number; maxMs: number };

  readonly targetPort: number;
  readonly targetHost: string;
  readonly holdMs: number;
  private constructor(
    targetPort: number,
    targetHost: string,
    holdMs: number,
  ) {
    this.targetPort = targetPort;
    this.targetHost = targetHost;
    this.holdMs = holdMs;
    this.#server = net.createServer((client) => this.#accept(client));
  }

  /** Starts a proxy on a free 127.0.0.1 port in front of `targetPort`. */
  static async start(targetPort: number, options: ChaosProxyOptions = {}): Promise<ChaosProxy> {
    const proxy = new ChaosProxy(targetPort, options.targetHost ?? "127.0.0.1", options.holdMs ?? 10);
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once("error", reject);
      proxy.#server.listen(0, "127.0.0.1", () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  /** The connections open right now. */
  get connections(): ChaosConnection[] {
    return [...this.#live];
  }

  /** Cuts every open connection that `predicate` picks (all without one); returns how many. */
  cut(predicate: (c: ChaosConnection) => boolean = () => true): number {
    let count = 0;
    for (const link of [...this.#live]) {
      if (!predicate(link)) continue;
      this.#cut(link);
      count++;
    }
    return count;
  }

  cutAll(): number {
    return this.cut();
  }

  /**
   * The chaos monkey: from now on every connection (open ones too) is cut after a random
   * `minMs`-`maxMs` of life from now or from its accept.
   */
  startMonkey(minMs = 300, maxMs = 2000): void {
    this.#monkey = { minMs, maxMs };
    for (const link of this.#live) this.#arm(link);
  }

  stopMonkey(): void {
    this.#monkey = undefined;
    for (const link of this.#live) clearTimeout(link.monkey);
  }

  /** Stops listening and closes every connection (abruptly, not counted as cuts). */
  async stop(): Promise<void> {
    this.stopMonkey();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const link of [...this.#live]) link.cut();
    await closed;
  }

  #accept(client: Socket): void {
    this.accepted++;
    client.setNoDelay(true);
    const upstream = net.connect({ port: this.targetPort, host: this.targetHost });
    upstream.setNoDelay(true);
    const link = new Link(this.#nextId++, client, upstream, this.holdMs, (l) => this.#live.delete(l));
    this.#live.add(link);
    if (this.#monkey) this.#arm(link);
  }

  #arm(link: Link): void {
    const { minMs, maxMs } = this.#monkey!;
    clearTimeout(link.monkey);
    link.monkey = setTimeout(() => this.#cut(link), minMs + Math.random() * (maxMs - minMs));
  }

  #cut(link: Link): void {
    if (link.closed) return;
    const dropped = link.cut();
    this.droppedBytes += dropped.down;
    this.droppedUpBytes += dropped.up;
    this.cuts++;
  }
}
