/**
 * A TCP gate in front of the gateway for the client library's tests: it forwards connections
 * while open, refuses them (accept and reset) while shut, can cut every connection, and can drop
 * the bytes of either direction while the sockets stay up (a half-open connection, or replies
 * lost on the way). Unlike the chaos proxy it does nothing by itself: a test says what happens
 * when.
 *
 * Works on node:net alone, so under Deno and Bun alike.
 */
import net from "node:net";
import type { Socket } from "node:net";

export class Gate {
  /** Connections accepted (forwarded or refused). */
  accepted = 0;
  /** Whether new connections are forwarded (else reset at once). */
  open = true;
  /** Drop client -> gateway bytes. */
  dropUp = false;
  /** Drop gateway -> client bytes. */
  dropDown = false;
  readonly #server: net.Server;
  readonly #links = new Set<[Socket, Socket]>();

  targetPort: number;
  /** @param targetPort where connections go; may change (a new gateway), for new connections. */
  private constructor(targetPort: number) {
    this.targetPort = targetPort;
    this.#server = net.createServer((client) => this.#accept(client));
  }

  static async start(targetPort: number): Promise<Gate> {
    const gate = new Gate(targetPort);
    await new Promise<void>((resolve, reject) => {
      gate.#server.once("error", reject);
      gate.#server.listen(0, "127.0.0.1", () => resolve());
    });
    return gate;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** Connections forwarded right now. */
  get connections(): number {
    return this.#links.size;
  }

  /** Resets every forwarded connection, the way a network failure does. */
  cutAll(): void {
    for (const link of [...this.#links]) this.#cut(link);
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.cutAll();
    await closed;
  }

  #accept(client: Socket): void {
    this.accepted++;
    if (!this.open) {
      client.on("error", () => {});
      reset(client);
      return;
    }
    const upstream = net.connect({ port: this.targetPort, host: "127.0.0.1" });
    const link: [Socket, Socket] = [client, upstream];
    this.#links.add(link);
    client.on("data", (chunk: Uint8Array) => {
      if (!this.dropUp) upstream.write(chunk);
    });
    upstream.on("data", (chunk: Uint8Array) => {
      if (!this.dropDown) client.write(chunk);
    });
    // A failure on either side is passed on as a reset; an orderly end as an end, after what
    // was written (a gateway's close frame before it goes).
    client.on("error", () => this.#cut(link));
    upstream.on("error", () => this.#cut(link));
    client.on("end", () => upstream.end());
    upstream.on("end", () => client.end());
    const closed = () => {
      if (client.destroyed && upstream.destroyed) this.#links.delete(link);
    };
    client.on("close", closed);
    upstream.on("close", closed);
  }

  #cut(link: [Socket, Socket]): void {
    if (!this.#links.delete(link)) return;
    for (const socket of link) reset(socket);
  }
}

/** Resets a socket (RST) where the runtime can, else destroys it. */
function reset(socket: Socket): void {
  const s = socket as Socket & { resetAndDestroy?: () => Socket };
  try {
    if (typeof s.resetAndDestroy === "function" && !s.destroyed) s.resetAndDestroy();
    else s.destroy();
  } catch {
    s.destroy();
  }
}
