/**
 * A load balancer for tests, as one stands in front of a fleet: a TCP proxy on a free 127.0.0.1
 * port that sends each new connection to the next backend, round robin, among those whose
 * `GET /readyz` answered 200 at its last check (every `checkMs`). Connections it made stay as
 * they are until either side closes. Works on node:net alone, so under Deno and Bun alike.
 */
import net from "node:net";
import type { Server, Socket } from "node:net";

export class Balancer {
  /** Connections sent to each backend port, for the test to look at. */
  readonly sent = new Map<number, number>();
  #backends: number[] = [];
  #ready = new Set<number>();
  #next = 0;
  #timer?: ReturnType<typeof setInterval>;
  #sockets = new Set<Socket>();

  private readonly server: Server;
  readonly port: number;

  private constructor(server: Server, port: number, checkMs: number) {
    this.server = server;
    this.port = port;
    this.#timer = setInterval(() => void this.#check(), checkMs);
  }

  static async start(checkMs = 100): Promise<Balancer> {
    // Connections accepted before the balancer exists (none: it listens first) are dropped.
    const made: { balancer?: Balancer } = {};
    const server = net.createServer((socket) =>
      made.balancer ? made.balancer.accept(socket) : socket.destroy()
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return made.balancer = new Balancer(server, (server.address() as net.AddressInfo).port, checkMs);
  }

  /** The backends' ports; the ready ones among them take new connections after their next check. */
  setBackends(ports: number[]): Promise<void> {
    this.#backends = [...ports];
    return this.#check();
  }

  /** Backends taking new connections now. */
  get ready(): number[] {
    return this.#backends.filter((p) => this.#ready.has(p));
  }

  async #check(): Promise<void> {
    await Promise.all(this.#backends.map(async (port) => {
      try {
        const answer = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1000) });
        await answer.body?.cancel();
        if (answer.status === 200) this.#ready.add(port);
        else this.#ready.delete(port);
      } catch {
        this.#ready.delete(port);
      }
    }));
  }

  accept(client: Socket): void {
    const ready = this.ready;
    if (ready.length === 0) return void client.destroy();
    const port = ready[this.#next++ % ready.length];
    this.sent.set(port, (this.sent.get(port) ?? 0) + 1);
    const backend = net.connect(port, "127.0.0.1");
    for (const s of [client, backend]) {
      this.#sockets.add(s);
      s.on("close", () => this.#sockets.delete(s));
      s.on("error", () => {});
    }
    client.pipe(backend);
    backend.pipe(client);
    client.on("close", () => backend.destroy());
    backend.on("close", () => client.destroy());
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
