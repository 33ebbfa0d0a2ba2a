/**
 * A raw Kafka protocol client for the test broker's own tests: sends request frames as they are
 * and returns the response bodies, so tests can check what no client library would send.
 */
import { connect } from "node:net";
import type { Socket } from "node:net";
import { Reader, Writer } from "./codec.ts";

export class RawKafkaClient {
  #socket: Socket;
  #buffer = new Uint8Array(0);
  #waiting = new Map<number, (body: Reader) => void>();
  #next = 1;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("data", (chunk: Uint8Array) => {
      const joined = new Uint8Array(this.#buffer.length + chunk.length);
      joined.set(this.#buffer);
      joined.set(chunk, this.#buffer.length);
      this.#buffer = joined;
      while (this.#buffer.length >= 4) {
        const size = new DataView(this.#buffer.buffer, this.#buffer.byteOffset).getInt32(0);
        if (this.#buffer.length < 4 + size) break;
        const body = new Reader(this.#buffer.slice(4, 4 + size));
        this.#buffer = this.#buffer.slice(4 + size);
        const correlationId = body.int32();
        this.#waiting.get(correlationId)?.(body);
        this.#waiting.delete(correlationId);
      }
    });
  }

  static connect(port: number, host = "127.0.0.1"): Promise<RawKafkaClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, host, () => resolve(new RawKafkaClient(socket)));
      socket.once("error", reject);
    });
  }

  /** Sends one request; resolves its response body (after the correlation ID). */
  request(apiKey: number, version: number, body: Writer | Uint8Array = new Writer()): Promise<Reader> {
    const correlationId = this.#next++;
    const payload = body instanceof Writer ? body.finish() : body;
    const header = new Writer().int16(apiKey).int16(version).int32(correlationId).string("raw-client")
      .finish();
    const frame = new Writer().int32(header.length + payload.length).raw(header).raw(payload).finish();
    return new Promise((resolve) => {
      this.#waiting.set(correlationId, resolve);
      this.#socket.write(frame);
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}
