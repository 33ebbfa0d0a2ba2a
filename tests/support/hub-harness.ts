/**
 * A hub on the virtual clock with the memory store and memory endpoint, and a recording sink
 * standing in for a client socket.
 */
import { hubOptionsFromConfig } from "../../src/config/hub-options.ts";
import { parseConfig } from "../../src/config/load.ts";
import { Hub } from "../../src/core/hub.ts";
import { memoryLogger } from "../../src/core/logger.ts";
import { Metrics } from "../../src/core/metrics.ts";
import type { Delivery, DeliverySink } from "../../src/core/sink.ts";
import { VirtualClock } from "../../src/core/virtual-clock.ts";
import { MemoryEndpoint } from "../../src/endpoints/memory/memory-endpoint.ts";
import { CleanupWorker } from "../../src/session/cleanup.ts";
import { MemorySessionStore } from "../../src/session/memory.ts";
import type { SessionStore } from "../../src/core/session.ts";
import { encodeData } from "../../src/core/payload.ts";
import { decodePayload } from "./payload.ts";

export const WINDOW = 5 * 60_000;
export const CLEANUP_INTERVAL = 30_000;
export const LEASE = 15_000;

/** A sink that records what was written, and can refuse writes like a backed-up socket. */
export class RecordingSink implements DeliverySink {
  deliveries: Delivery[] = [];
  closed?: { code: number; reason: string };
  full = false;
  settled?: () => Promise<void>;

  deliver(delivery: Delivery): boolean {
    if (this.closed || this.full) return false;
    this.deliveries.push(delivery);
    return true;
  }
  writable(): boolean {
    return !this.closed && !this.full;
  }
  close(code: number, reason: string): void {
    this.closed = { code, reason };
  }
  /** Delivered payloads, decoded as the wire would show them. */
  get data(): unknown[] {
    return this.deliveries.map((d) => decodePayload(d.payload).data);
  }
}

export interface HarnessOptions {
  /** A store shared with other harnesses: each harness is then one node of a cluster. */
  store?: SessionStore;
  nodeId?: string;
  /** Each node has its own clock, so a crashed node is one whose clock stops. */
  clock?: VirtualClock;
  maxInFlight?: number;
  publishesPerSecond?: number;
  /** The node announces itself to the store (the admin API's nodes and signals). */
  announce?: boolean;
}

/**
 * The config of a harness hub: the defaults, but with small frames (1 KiB payloads) and a publish
 * rate no test reaches unless it asks for one.
 */
function harnessConfig(options: HarnessOptions) {
  return parseConfig(
    JSON.stringify({
      session: { reconnection_window: `${WINDOW}ms`, lease: `${LEASE}ms` },
      policy: {
        max_message_bytes: 1024,
        publishes_per_second: options.publishesPerSecond ?? 100_000,
        publish_bytes_per_second: 1024 * 1024 * 1024,
      },
      delivery: { max_in_flight: options.maxInFlight ?? 1000, dedupe_window: `${WINDOW}ms` },
      endpoints: [{ name: "chat", type: "memory" }, { name: "rooms", type: "memory" }],
    }),
    {},
    "the hub harness",
  ).config;
}

export async function createHarness(options: HarnessOptions = {}) {
  const clock = options.clock ?? new VirtualClock();
  const store = options.store ?? new MemorySessionStore();
  const logger = memoryLogger();
  const metrics = new Metrics();
  const chat = new MemoryEndpoint({
    name: "chat",
    logger,
    queueLimit: 10_000,
    queueBytes: 8 * 1024 * 1024,
    totalBytes: 256 * 1024 * 1024,
  });
  const rooms = new MemoryEndpoint({
    name: "rooms",
    subscribeTopic: "room/{room}",
    publishTopic: "room/{room}",
    logger,
    queueLimit: 10_000,
    queueBytes: 8 * 1024 * 1024,
    totalBytes: 256 * 1024 * 1024,
  });
  const config = harnessConfig(options);
  const hub = new Hub(hubOptionsFromConfig(config, {
    store,
    endpoints: [chat, rooms],
    scheduler: clock,
    logger,
    metrics,
    nodeId: options.nodeId ?? "node-a",
    node: options.announce
      ? {
        address: `${options.nodeId ?? "node-a"}:8080`,
        runtime: "test",
        version: "0",
        startedAt: clock.now(),
      }
      : undefined,
  }));
  hub.start();
  await chat.start(hub);
  await rooms.start(hub);
  const cleanup = new CleanupWorker({
    store,
    scheduler: clock,
    logger,
    metrics,
    expire: (id) => hub.expire(id),
    interval: CLEANUP_INTERVAL,
  });
  cleanup.start();

  /** Connects and opens a client the way an entrypoint does (an SSE stream names its endpoints). */
  async function connect(clientId: string, endpoints?: string[], acks = false) {
    const conn = await hub.connect(clientId, endpoints ? "sse" : "test", { endpoints, acks });
    const sink = new RecordingSink();
    const failures = await conn.open(sink);
    if (failures.length) throw failures[0];
    return { conn, sink };
  }

  /** Publishes `data` as another client would, without a session (HTTP publish). */
  const publish = (data: unknown, endpoint = "chat", from = "publisher") =>
    hub.publishDetached(from, endpoint, encodeData(data));

  return { clock, store, logger, metrics, chat, rooms, hub, cleanup, connect, publish };
}
