/**
 * A Kafka broker for tests: one node, in memory, speaking the Kafka wire protocol over TCP for
 * the API versions kafkajs 2.2 negotiates (it picks the highest version the broker advertises,
 * so each API is advertised at exactly the version implemented here).
 *
 * - Topics with several partitions, auto-created by Metadata (or made by CreateTopics). Produce
 *   keeps each record batch (v2) as the producer's bytes, with the broker's base offset written
 *   in; Fetch returns whole batches from the one holding the fetch offset and waits up to
 *   `max_wait_ms` for `min_bytes`; ListOffsets answers earliest, latest and by timestamp.
 * - A group coordinator (groups.ts): JoinGroup/SyncGroup/Heartbeat/LeaveGroup with generations, rebalances
 *   when members come and go, session and rebalance timeouts; OffsetCommit/OffsetFetch with
 *   the generation checks of a real broker; DescribeGroups, ListGroups, DeleteGroups.
 * - Requests on one connection are answered one at a time, in order, as Kafka does. Unknown API
 *   keys and versions get UNSUPPORTED_VERSION (35), a malformed request INVALID_REQUEST (42); the
 *   connection stays usable.
 *
 * @example
 * const broker = await KafkaTestBroker.start();
 * const kafka = new Kafka({ brokers: broker.brokers });
 */
import { createServer } from "node:net";
import type { Server, Socket } from "node:net";
import { ProtocolError, Reader, Writer } from "./codec.ts";
import { ApiKey, ErrorCode } from "./codes.ts";
import { GroupCoordinator } from "./groups.ts";
import type { Context } from "./groups.ts";

export { ApiKey, ErrorCode } from "./codes.ts";

/** Largest request frame accepted; a larger (or negative) size closes the connection. */
const MAX_FRAME = 64 * 1024 * 1024;
const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;

interface Batch {
  base: number;
  last: number;
  maxTimestamp: number;
  bytes: Uint8Array;
}

interface Partition {
  batches: Batch[];
  /** The next offset to assign: the high watermark. */
  next: number;
}

type Handler = (r: Reader, version: number, ctx: Context) => Promise<Writer | undefined> | Writer | undefined;

export interface KafkaTestBrokerOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  /** Partitions of an auto-created topic. */
  defaultPartitions?: number;
}

export class KafkaTestBroker {
  readonly topics = new Map<string, Partition[]>();
  readonly coordinator = new GroupCoordinator((topic, index) => this.#partition(topic, index) !== undefined);
  #server: Server;
  #sockets = new Set<Socket>();
  #produced = new Set<() => void>();
  #sweeper?: ReturnType<typeof setInterval>;
  #apis: Map<number, { version: number; handle: Handler }>;
  port = 0;

  readonly host: string;
  readonly defaultPartitions: number;
  private constructor(host: string, defaultPartitions: number) {
    this.host = host;
    this.defaultPartitions = defaultPartitions;
    this.#server = createServer((socket) => this.#accept(socket));
    this.#apis = new Map<number, { version: number; handle: Handler }>([
      [ApiKey.Produce, { version: 3, handle: (r) => this.#produce(r) }],
      [ApiKey.Fetch, { version: 4, handle: (r) => this.#fetch(r) }],
      [ApiKey.ListOffsets, { version: 1, handle: (r) => this.#listOffsets(r) }],
      [ApiKey.Metadata, { version: 4, handle: (r) => this.#metadata(r) }],
      [ApiKey.OffsetCommit, { version: 2, handle: (r) => this.coordinator.offsetCommit(r) }],
      [ApiKey.OffsetFetch, { version: 2, handle: (r) => this.coordinator.offsetFetch(r) }],
      [ApiKey.FindCoordinator, { version: 1, handle: () => this.#findCoordinator() }],
      [ApiKey.JoinGroup, { version: 2, handle: (r, _v, ctx) => this.coordinator.joinGroup(r, ctx) }],
      [ApiKey.Heartbeat, { version: 1, handle: (r) => this.coordinator.heartbeat(r) }],
      [ApiKey.LeaveGroup, { version: 1, handle: (r) => this.coordinator.leaveGroup(r) }],
      [ApiKey.SyncGroup, { version: 1, handle: (r) => this.coordinator.syncGroup(r) }],
      [ApiKey.DescribeGroups, { version: 0, handle: (r) => this.coordinator.describeGroups(r) }],
      [ApiKey.ListGroups, { version: 0, handle: () => this.coordinator.listGroups() }],
      [ApiKey.ApiVersions, { version: 2, handle: (_r, v) => this.#apiVersions(v, ErrorCode.NONE) }],
      [ApiKey.CreateTopics, { version: 1, handle: (r) => this.#createTopics(r) }],
      [ApiKey.DeleteGroups, { version: 0, handle: (r) => this.coordinator.deleteGroups(r) }],
    ]);
  }

  static async start(options: KafkaTestBrokerOptions = {}): Promise<KafkaTestBroker> {
    const broker = new KafkaTestBroker(options.host ?? "127.0.0.1", options.defaultPartitions ?? 1);
    await new Promise<void>((resolve, reject) => {
      broker.#server.once("error", reject);
      broker.#server.listen(options.port ?? 0, broker.host, () => resolve());
    });
    broker.port = (broker.#server.address() as { port: number }).port;
    broker.#sweeper = setInterval(() => broker.coordinator.expireMembers(), 250);
    return broker;
  }

  /** `host:port` list for a client's `brokers`. */
  get brokers(): string[] {
    return [`${this.host}:${this.port}`];
  }

  /**
   * Goes away like a broker that stopped: the port closes and every connection drops. What it
   * holds (topics, records, committed offsets) stays for `resume`, as on a broker's disk.
   */
  async pause(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    for (const wake of this.#produced) wake();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Listens again on the same port. */
  async resume(): Promise<void> {
    this.#server = createServer((socket) => this.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(this.port, this.host, () => resolve());
    });
  }

  async stop(): Promise<void> {
    clearInterval(this.#sweeper);
    this.coordinator.stop();
    for (const socket of this.#sockets) socket.destroy();
    for (const wake of this.#produced) wake();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Creates a topic; false if it exists. */
  createTopic(name: string, partitions = this.defaultPartitions): boolean {
    if (this.topics.has(name)) return false;
    this.topics.set(name, Array.from({ length: partitions }, () => ({ batches: [], next: 0 })));
    return true;
  }

  // --- connections ---------------------------------------------------------------------------

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    socket.setNoDelay(true);
    const ctx: Context = { clientId: "", clientHost: `/${socket.remoteAddress ?? "unknown"}` };
    let buffered = new Uint8Array(0);
    let queue = Promise.resolve();
    socket.on("data", (chunk: Uint8Array) => {
      const joined = new Uint8Array(buffered.length + chunk.length);
      joined.set(buffered);
      joined.set(chunk, buffered.length);
      buffered = joined;
      while (buffered.length >= 4) {
        const size = new DataView(buffered.buffer, buffered.byteOffset).getInt32(0);
        if (size < 0 || size > MAX_FRAME) return socket.destroy();
        if (buffered.length < 4 + size) break;
        const frame = buffered.slice(4, 4 + size);
        buffered = buffered.slice(4 + size);
        // One at a time, in order: a long-polling Fetch holds back what follows it.
        queue = queue.then(() => this.#request(socket, frame, ctx));
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => this.#sockets.delete(socket));
  }

  async #request(socket: Socket, frame: Uint8Array, ctx: Context): Promise<void> {
    let correlationId: number;
    let apiKey: number;
    let version: number;
    const reader = new Reader(frame);
    try {
      apiKey = reader.int16();
      version = reader.int16();
      correlationId = reader.int32();
      ctx.clientId = reader.nullableString() ?? "";
    } catch {
      return void socket.destroy();
    }
    let body: Writer | undefined;
    const api = this.#apis.get(apiKey);
    if (apiKey === ApiKey.ApiVersions && (version < 0 || version > 2)) {
      // The client retries with the version this answer's v0 body allows.
      body = this.#apiVersions(0, ErrorCode.UNSUPPORTED_VERSION);
    } else if (!api || (version !== api.version && apiKey !== ApiKey.ApiVersions)) {
      body = new Writer().int16(ErrorCode.UNSUPPORTED_VERSION);
    } else {
      try {
        body = await api.handle(reader, version, ctx);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        body = new Writer().int16(ErrorCode.INVALID_REQUEST);
      }
    }
    if (!body || socket.destroyed) return;
    const payload = body.finish();
    const out = new Writer().int32(payload.length + 4).int32(correlationId).raw(payload).finish();
    socket.write(out);
  }

  #apiVersions(version: number, error: number): Writer {
    const w = new Writer().int16(error);
    w.array([...this.#apis], (w, [key, api]) => {
      const min = key === ApiKey.ApiVersions ? 0 : api.version;
      w.int16(key).int16(min).int16(api.version);
    });
    if (version >= 1) w.int32(0);
    return w;
  }

  // --- topics and records ----------------------------------------------------------------------

  #partition(topic: string, index: number): Partition | undefined {
    return this.topics.get(topic)?.[index];
  }

  #metadata(r: Reader): Writer {
    const requested = r.nullableArray((r) => r.string());
    const autoCreate = r.boolean();
    const names = requested ?? [...this.topics.keys()];
    const w = new Writer().int32(0);
    w.array([0], (w) => w.int32(0).string(this.host).int32(this.port).string(null));
    w.string("mediation-test-cluster").int32(0);
    w.array(names, (w, name) => {
      if (!this.topics.has(name) && autoCreate && TOPIC_NAME.test(name)) this.createTopic(name);
      const partitions = this.topics.get(name);
      const error = partitions
        ? ErrorCode.NONE
        : TOPIC_NAME.test(name)
        ? ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        : ErrorCode.INVALID_TOPIC;
      w.int16(error).string(name).boolean(false);
      w.array(partitions ? partitions.map((_, i) => i) : [], (w, i) => {
        w.int16(ErrorCode.NONE).int32(i).int32(0).array([0], (w) => w.int32(0)).array([0], (w) => w.int32(0));
      });
    });
    return w;
  }

  #createTopics(r: Reader): Writer {
    const topics = r.array((r) => {
      const name = r.string();
      const partitions = r.int32();
      r.int16();
      r.array((r) => [r.int32(), r.array((r) => r.int32())]);
      r.array((r) => [r.string(), r.nullableString()]);
      return { name, partitions };
    });
    r.int32();
    const validateOnly = r.boolean();
    return new Writer().array(topics, (w, { name, partitions }) => {
      const count = partitions === -1 ? this.defaultPartitions : partitions;
      let error: number = ErrorCode.NONE;
      let message: string | null = null;
      if (!TOPIC_NAME.test(name)) [error, message] = [ErrorCode.INVALID_TOPIC, `invalid topic name ${name}`];
      else if (this.topics.has(name)) [error, message] = [ErrorCode.TOPIC_ALREADY_EXISTS, `${name} exists`];
      else if (count < 1) [error, message] = [ErrorCode.INVALID_PARTITIONS, `${partitions} partitions`];
      else if (!validateOnly) this.createTopic(name, count);
      w.string(name).int16(error).string(message);
    });
  }

  #produce(r: Reader): Writer | undefined {
    r.nullableString();
    const acks = r.int16();
    r.int32();
    const topics = r.array((r) => ({
      name: r.string(),
      partitions: r.array((r) => ({ index: r.int32(), records: r.nullableBytes() })),
    }));
    const results = topics.map(({ name, partitions }) => ({
      name,
      partitions: partitions.map(({ index, records }) => {
        const partition = this.#partition(name, index);
        if (!partition) return { index, error: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, base: -1 };
        const batches = records ? splitBatches(records) : undefined;
        if (!batches) return { index, error: ErrorCode.CORRUPT_MESSAGE, base: -1 };
        const base = partition.next;
        for (const bytes of batches) {
          const view = new DataView(bytes.buffer, bytes.byteOffset);
          view.setBigInt64(0, BigInt(partition.next));
          const last = partition.next + view.getInt32(23);
          partition.batches.push({
            base: partition.next,
            last,
            maxTimestamp: Number(view.getBigInt64(35)),
            bytes,
          });
          partition.next = last + 1;
        }
        return { index, error: ErrorCode.NONE, base };
      }),
    }));
    for (const wake of [...this.#produced]) wake();
    if (acks === 0) return undefined;
    return new Writer().array(results, (w, t) => {
      w.string(t.name).array(t.partitions, (w, p) => w.int32(p.index).int16(p.error).int64(p.base).int64(-1));
    }).int32(0);
  }

  async #fetch(r: Reader): Promise<Writer> {
    r.int32();
    const maxWait = r.int32();
    const minBytes = r.int32();
    const maxBytes = r.int32();
    r.int8();
    const topics = r.array((r) => ({
      name: r.string(),
      partitions: r.array((r) => ({ index: r.int32(), offset: r.int64(), maxBytes: r.int32() })),
    }));
    const deadline = Date.now() + maxWait;
    for (;;) {
      let total = 0;
      let failed = false;
      const answer = topics.map(({ name, partitions }) => ({
        name,
        partitions: partitions.map(({ index, offset, maxBytes: partitionMax }) => {
          const partition = this.#partition(name, index);
          if (!partition) {
            failed = true;
            return {
              index,
              error: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
              hw: -1,
              records: [] as Uint8Array[],
            };
          }
          if (offset < 0 || offset > partition.next) {
            failed = true;
            return {
              index,
              error: ErrorCode.OFFSET_OUT_OF_RANGE,
              hw: partition.next,
              records: [] as Uint8Array[],
            };
          }
          const records: Uint8Array[] = [];
          let size = 0;
          for (const batch of partition.batches) {
            if (batch.last < offset) continue;
            // Always at least one batch, so a batch larger than the limits still gets through.
            if (
              (size + batch.bytes.length > partitionMax || total + batch.bytes.length > maxBytes) && total > 0
            ) {
              break;
            }
            records.push(batch.bytes);
            size += batch.bytes.length;
            total += batch.bytes.length;
          }
          return { index, error: ErrorCode.NONE, hw: partition.next, records };
        }),
      }));
      const remaining = deadline - Date.now();
      if (failed || total >= Math.max(minBytes, 1) || remaining <= 0) {
        const w = new Writer().int32(0);
        return w.array(answer, (w, t) => {
          w.string(t.name).array(t.partitions, (w, p) => {
            w.int32(p.index).int16(p.error).int64(p.hw).int64(p.hw).array([], () => {});
            w.int32(p.records.reduce((n, b) => n + b.length, 0));
            for (const bytes of p.records) w.raw(bytes);
          });
        });
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.#produced.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, remaining);
        this.#produced.add(wake);
      });
    }
  }

  #listOffsets(r: Reader): Writer {
    r.int32();
    const topics = r.array((r) => ({
      name: r.string(),
      partitions: r.array((r) => ({ index: r.int32(), timestamp: r.int64() })),
    }));
    return new Writer().array(topics, (w, t) => {
      w.string(t.name).array(t.partitions, (w, { index, timestamp }) => {
        const partition = this.#partition(t.name, index);
        if (!partition) {
          return void w.int32(index).int16(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION).int64(-1).int64(-1);
        }
        let offset = partition.next;
        if (timestamp === -2) offset = 0;
        else if (timestamp >= 0) {
          offset = partition.batches.find((b) => b.maxTimestamp >= timestamp)?.base ?? partition.next;
        }
        w.int32(index).int16(ErrorCode.NONE).int64(-1).int64(offset);
      });
    });
  }

  // --- groups ----------------------------------------------------------------------------------

  #findCoordinator(): Writer {
    return new Writer().int32(0).int16(ErrorCode.NONE).string(null).int32(0).string(this.host).int32(
      this.port,
    );
  }
}

/**
 * Splits a record set into its record batches (magic 2), as copies the broker can keep and
 * stamp with offsets; undefined if it is not a sequence of whole v2 batches.
 */
function splitBatches(records: Uint8Array): Uint8Array[] | undefined {
  const batches: Uint8Array[] = [];
  let at = 0;
  while (at < records.length) {
    if (records.length - at < 61) return undefined;
    const view = new DataView(records.buffer, records.byteOffset + at);
    const size = 12 + view.getInt32(8);
    if (view.getInt8(16) !== 2 || size < 61 || at + size > records.length) return undefined;
    batches.push(records.slice(at, at + size));
    at += size;
  }
  return batches.length ? batches : undefined;
}
