/**
 * NATS test support: the shared nats-server (JetStream on), stream names unique to a run, an
 * endpoint on them, an outside JetStream client (the plain @nats-io packages, not the gateway)
 * to publish as a device would and to delete what a run created, and private nats-servers for
 * tests that break the server.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { memoryLogger } from "../../src/core/logger.ts";
import { RealScheduler } from "../../src/core/scheduler.ts";
import { NatsEndpoint } from "../../src/endpoints/nats/nats-endpoint.ts";
import type { NatsEndpointOptions } from "../../src/endpoints/nats/nats-endpoint.ts";
import { accepts, freePort, running } from "./net.ts";

export const NATS_SERVER = process.env.NATS_SERVER ?? "127.0.0.1:4222";

/**
 * A stream name and subject prefix unique to this run: `{stream}` holds `{prefix}.>`.
 *
 * @example
 * const ns = natsNamespace("contract"); // { stream: "test_contract_1a2b3c4d", prefix: "test.contract-1a2b3c4d" }
 */
export function natsNamespace(label: string): { stream: string; prefix: string } {
  const id = crypto.randomUUID().slice(0, 8);
  return { stream: `test_${label}_${id}`, prefix: `test.${label}-${id}` };
}

export function makeNatsEndpoint(
  options: Partial<NatsEndpointOptions> & { ns: { stream: string; prefix: string } },
): NatsEndpoint {
  const { ns, ...rest } = options;
  return new NatsEndpoint({
    name: "events",
    servers: [NATS_SERVER],
    stream: ns.stream,
    createStream: true,
    publishSubject: `${ns.prefix}.{clientId}.up`,
    subscribeSubject: `${ns.prefix}.{clientId}.down`,
    connectTimeout: 3000,
    publishTimeout: 3000,
    ackWait: 60_000,
    maxAckPending: 1000,
    inactiveThreshold: 600_000,
    nodeId: "test",
    logger: memoryLogger(),
    scheduler: new RealScheduler(),
    ...rest,
  });
}

/** A plain NATS connection with JetStream, as a device or an operator would have. */
export class OutsideNats {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  private constructor(
    nc: NatsConnection,
    js: JetStreamClient,
    jsm: JetStreamManager,
  ) {
    this.nc = nc;
    this.js = js;
    this.jsm = jsm;
  }

  static async connect(server: string | string[] = NATS_SERVER): Promise<OutsideNats> {
    const nc = await connect({ servers: server });
    return new OutsideNats(nc, jetstream(nc), await jetstreamManager(nc));
  }

  /** Publishes into the stream and waits for its ack. */
  async publish(subject: string, text: string): Promise<void> {
    await this.js.publish(subject, text);
  }

  /** The names of the stream's consumers. */
  async consumers(stream: string): Promise<string[]> {
    const names: string[] = [];
    for await (const c of this.jsm.consumers.list(stream)) names.push(c.name);
    return names;
  }

  /** Deletes the stream if it exists (a run cleans up what it created). */
  async dropStream(stream: string): Promise<void> {
    await this.jsm.streams.delete(stream).catch(() => false);
  }

  async close(): Promise<void> {
    await this.nc.close();
  }
}

/** A private nats-server with JetStream on a free port, its store in a temporary folder, to stop and start. */
export class PrivateNats {
  #child?: ChildProcess;
  readonly dir = mkdtempSync(join(tmpdir(), "nats-"));
  readonly port: number;
  private constructor(port: number) {
    this.port = port;
  }

  static async start(): Promise<PrivateNats> {
    const server = new PrivateNats(await freePort());
    await server.resume();
    return server;
  }

  get server(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** (Re)starts the server on the same port and store, and waits until it accepts connections. */
  async resume(): Promise<void> {
    this.#child = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(this.port), "-js", "-sd", this.dir], {
      stdio: "ignore",
    });
    const deadline = Date.now() + 10_000;
    while (!await accepts(this.port)) {
      if (Date.now() > deadline) throw new Error(`nats-server on port ${this.port} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Kills the server (SIGKILL: no goodbye to its clients) and waits for it to exit. */
  async kill(): Promise<void> {
    const pid = this.#child?.pid;
    if (pid === undefined || !running(pid)) return;
    process.kill(pid, "SIGKILL");
    // Polled: under Deno the "exit" event does not always keep the event loop alive.
    while (running(pid)) await new Promise((r) => setTimeout(r, 20));
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
