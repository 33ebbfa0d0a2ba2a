/**
 * The raw WebSocket protocol (`GET {path}/:endpoint`, DESIGN.md section 7): bound to one endpoint
 * on connect (query parameters other than `clientId` are the binding params), every frame is a
 * payload, and errors are told by the close code and reason.
 */
import type { Connection } from "../core/connection.ts";
import { CloseCode, GatewayError } from "../core/errors.ts";
import { encodeText } from "../core/payload.ts";
import type { Delivery, DeliverySink } from "../core/sink.ts";
import type { Engine } from "../engine.ts";
import { isPermanentStoreError, Socket } from "./ws-socket.ts";

export class RawSocket extends Socket {
  private endpoint: string;
  private params: Record<string, string>;
  constructor(
    engine: Engine,
    conn: Connection,
    bufferedAmount: (raw: unknown) => number,
    endpoint: string,
    params: Record<string, string>,
  ) {
    super(engine, conn, bufferedAmount);
    this.endpoint = endpoint;
    this.params = params;
  }

  protected async opened(sink: DeliverySink): Promise<void> {
    const failures = await this.conn.open(sink);
    if (failures.length > 0) return this.fail(failures[0]);
    await this.conn.subscribe(this.endpoint, this.params).catch((error) => {
      // An endpoint that only publishes is fine for a raw socket; anything else ends it.
      if (!(error instanceof GatewayError && error.code === "BAD_FRAME")) this.fail(error);
    });
  }

  protected format(d: Delivery): string | Uint8Array<ArrayBuffer> {
    return d.prepared.text ?? new Uint8Array(d.payload);
  }

  protected failed(error: unknown): void {
    this.fail(error);
  }

  protected async received(data: unknown): Promise<void> {
    const payload = typeof data === "string" ? encodeText(data) : await bytesOf(data);
    this.conn.publish(this.endpoint, payload).catch((error) => this.fail(error));
  }

  /** Raw clients cannot tell an error frame from a message: the close code and reason say it. */
  private fail(error: unknown): void {
    const e = GatewayError.from(error);
    this.engine.hub.recordError(e);
    const code = e.temporary
      ? CloseCode.TRY_AGAIN_LATER
      : isPermanentStoreError(e)
      ? CloseCode.PERMANENT_ERROR
      : e.code === "INTERNAL"
      ? CloseCode.INTERNAL_ERROR
      : e.code === "TOO_LARGE"
      ? CloseCode.MESSAGE_TOO_BIG
      : CloseCode.POLICY;
    this.close(code, `${e.code}: ${e.message}`.slice(0, 120));
  }
}

/** Binary frame data as bytes: runtimes hand over ArrayBuffer, Blob or a typed array. */
async function bytesOf(data: unknown): Promise<Uint8Array> {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (data instanceof Blob) return new Uint8Array(await data.arrayBuffer());
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new GatewayError("BAD_FRAME", "unsupported frame data");
}
