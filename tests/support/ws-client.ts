/**
 * A WebSocket test client over the runtime's own WebSocket: collects frames and waits for the
 * ones a test expects (waiting on real I/O, failing only on timeout).
 */

export interface Closed {
  code: number;
  reason: string;
}

export class TestSocket {
  frames: unknown[] = [];
  closed?: Closed;
  /** Called with each frame as it arrives (after it is recorded). */
  onFrame?: (frame: unknown) => void;
  #ws: WebSocket;
  #waiters: Array<() => void> = [];

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.binaryType = "arraybuffer";
    ws.onmessage = (e) => {
      const frame = typeof e.data === "string" ? tryJson(e.data) : new Uint8Array(e.data as ArrayBuffer);
      // Arrival time, for latency figures (bench/).
      if (frame && typeof frame === "object" && !(frame instanceof Uint8Array)) {
        Object.defineProperty(frame, "at", { value: performance.now(), enumerable: false });
      }
      this.frames.push(frame);
      this.onFrame?.(frame);
      this.#wake();
    };
    ws.onclose = (e) => {
      this.closed = { code: e.code, reason: e.reason };
      this.#wake();
    };
  }

  /**
   * Opens a socket; rejects if it does not open. `ca`: a PEM certificate a `wss://` server's
   * certificate chain must lead to (a test's own CA).
   */
  static open(url: string, ca?: string): Promise<TestSocket> {
    return new Promise((resolve, reject) => {
      const ws = ca === undefined ? new WebSocket(url) : trustingWebSocket(url, ca);
      const socket = new TestSocket(ws);
      ws.onopen = () => resolve(socket);
      ws.onerror = () => reject(new Error(`WebSocket ${url} failed to open`));
    });
  }

  send(frame: unknown): void {
    this.#ws.send(typeof frame === "string" || frame instanceof Uint8Array ? frame : JSON.stringify(frame));
  }

  /** Waits for the first frame (from `from` on) that matches, and returns it. */
  async next<T = Record<string, unknown>>(
    match: (f: Record<string, unknown>) => boolean,
    timeoutMs = 10_000,
  ): Promise<T> {
    let found: unknown;
    await this.until(
      () => (found = this.frames.find((f) => match(f as Record<string, unknown>))) !== undefined,
      timeoutMs,
      "a matching frame",
    );
    return found as T;
  }

  /** Frames of type "message" from `endpoint`. */
  messages(endpoint: string): Array<{ id: string; data: unknown }> {
    return this.frames.filter((f) =>
      (f as { type?: string }).type === "message" && (f as { endpoint?: string }).endpoint === endpoint
    ) as Array<{ id: string; data: unknown }>;
  }

  async until(check: () => boolean, timeoutMs = 10_000, what = "a condition"): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `timed out waiting for ${what}; frames: ${JSON.stringify(this.frames.slice(-5))}; closed: ${
            JSON.stringify(this.closed)
          }`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /**
   * The data of `endpoint`'s messages once `count` arrived and a moment more passed, in which
   * any extra (a duplicate) would have arrived too.
   */
  async settled(endpoint: string, count: number, timeoutMs = 15_000): Promise<unknown[]> {
    await this.until(() => this.messages(endpoint).length >= count, timeoutMs, `${count} messages`);
    await new Promise((r) => setTimeout(r, 300));
    return this.messages(endpoint).map((m) => m.data);
  }

  /** Waits for the server to close the socket. */
  async closedBy(timeoutMs = 10_000): Promise<Closed> {
    await this.until(() => this.closed !== undefined, timeoutMs, "the close");
    return this.closed!;
  }

  /** Closes from the client side and waits for the close to complete. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.#ws.close(1000, "bye");
    await this.closedBy();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}

/**
 * A WebSocket that trusts `ca`: each runtime takes it its own way (Deno through an HTTP client
 * of its own, Bun through a `tls` option), neither in the standard constructor's types.
 */
/**
 * Node's own WebSocket (undici's) takes a CA only through an undici dispatcher, which Node does not
 * export; the `ws` package's WebSocket takes `ca` and has the same event API.
 */
const NodeWebSocket = !("Deno" in globalThis) && !("Bun" in globalThis)
  ? (await import("ws")).WebSocket
  : undefined;

function trustingWebSocket(url: string, ca: string): WebSocket {
  if (NodeWebSocket) return new NodeWebSocket(url, { ca }) as unknown as WebSocket;
  const options = "Deno" in globalThis
    ? { client: Deno.createHttpClient({ caCerts: [ca] }) }
    : { tls: { ca } };
  return new WebSocket(url, options as unknown as string[]);
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Opens a multiplexed socket for `clientId` at `ws` (`ws://host:port`) and waits for its welcome. */
export async function openWelcomed(ws: string, clientId: string, token?: string) {
  const auth = token ? `&token=${encodeURIComponent(token)}` : "";
  const socket = await TestSocket.open(`${ws}/ws?clientId=${clientId}${auth}`);
  const welcome = await socket.next((f) => f.type === "welcome");
  return { socket, welcome };
}

/** `{ n }` payloads numbered from `from`, as the tests publish them. */
export const numbered = (count: number, from = 1) =>
  Array.from({ length: count }, (_, i) => ({ n: from + i }));
