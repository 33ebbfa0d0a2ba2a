/**
 * WebSocket entrypoints (DESIGN.md section 7):
 * - `GET {path}`: multiplexed JSON frames (publish, subscribe, unsubscribe, ping).
 * - `GET {path}/:endpoint`: raw; bound to one endpoint on connect (query parameters other than
 *   `clientId` are the binding params), every frame is a payload.
 *
 * The session is taken before the upgrade, so a bad client ID or an unreachable store is an
 * HTTP error the client can read, not a socket that opens and dies.
 */
import type { Context, Hono } from "hono";
import type { WSContext, WSEvents } from "hono/ws";
import type { Connection } from "../core/connection.ts";
import { CloseCode, GatewayError } from "../core/errors.ts";
import { CLIENT_ID_HEADER } from "../core/identity.ts";
import { decodePayload, decodeText, encodeData, encodeText } from "../core/payload.ts";
import type { ClientFrame, ServerFrame } from "../core/protocol.ts";
import type { Delivery, DeliverySink } from "../core/sink.ts";
import type { Engine } from "../engine.ts";
import type { EntrypointContext } from "./common.ts";
import { errorResponse, identify, queryParams, requireEndpoints } from "./common.ts";

const OPEN = 1;

export function wsRoutes(app: Hono, path: string, ctx: EntrypointContext): void {
  app.get(path, (c) => upgrade(c, ctx, undefined));
  app.get(`${path}/:endpoint`, (c) => upgrade(c, ctx, c.req.param("endpoint")));
}

async function upgrade(c: Context, ctx: EntrypointContext, rawEndpoint: string | undefined) {
  const { engine, hooks } = ctx;
  let conn: Connection;
  try {
    const { clientId } = identify(c);
    if (rawEndpoint !== undefined) requireEndpoints(engine, [rawEndpoint]);
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      return c.json({ type: "error", code: "BAD_FRAME", message: "expected a WebSocket upgrade" }, 426);
    }
    conn = await engine.hub.connect(clientId, rawEndpoint === undefined ? "ws" : "ws-raw");
  } catch (error) {
    return errorResponse(c, engine, error);
  }
  c.header(CLIENT_ID_HEADER, conn.clientId);
  const session = rawEndpoint === undefined
    ? new MultiplexedSocket(engine, conn, hooks.bufferedAmount)
    : new RawSocket(engine, conn, hooks.bufferedAmount, rawEndpoint, queryParams(c));
  try {
    return await hooks.upgradeWebSocket(c, session.events());
  } catch (error) {
    void conn.close();
    return errorResponse(c, engine, error);
  }
}

/** Common socket plumbing: the delivery sink, ordered frame handling, close. */
abstract class Socket {
  protected ws?: WSContext;
  /** Frames are handled in arrival order, after the connection opened. */
  protected ready: Promise<unknown> = new Promise(() => {});

  constructor(
    protected engine: Engine,
    protected conn: Connection,
    private bufferedAmount: (raw: unknown) => number,
  ) {}

  events(): WSEvents {
    return {
      onOpen: (_evt, ws) => {
        this.ws = ws;
        this.ready = this.opened(this.sink(ws)).catch((error) => {
          this.engine.logger.error(`[WS] Opening ${this.conn.clientId} failed`, error);
          ws.close(CloseCode.INTERNAL_ERROR, "internal error");
        });
      },
      onMessage: (evt) => {
        const data = evt.data;
        this.ready = this.ready.then(() => this.received(data)).catch((error) =>
          this.engine.logger.error(`[WS] Frame from ${this.conn.clientId} failed`, error)
        );
      },
      onClose: () => void this.conn.close(),
      onError: () => void this.conn.close(),
    };
  }

  /** Runs once the socket is open: greet, attach the sink, resume consumers. */
  protected abstract opened(sink: DeliverySink): Promise<void>;
  /** Handles one client frame. */
  protected abstract received(data: unknown): void | Promise<void>;
  /** The frame a delivery is written as. */
  protected abstract format(delivery: Delivery): string | Uint8Array<ArrayBuffer>;

  #writable(ws: WSContext): boolean {
    const raw = ws.raw as { readyState?: number } | undefined;
    return (raw?.readyState ?? ws.readyState) === OPEN &&
      this.bufferedAmount(ws.raw) <= this.engine.config.server.max_buffered_bytes;
  }

  private sink(ws: WSContext): DeliverySink {
    return {
      deliver: (delivery) => {
        if (!this.#writable(ws)) return false;
        ws.send(this.format(delivery));
        return true;
      },
      writable: () => this.#writable(ws),
      close: (code, reason) => {
        try {
          ws.close(code, reason);
        } catch {
          // Already closed.
        }
      },
    };
  }
}

class MultiplexedSocket extends Socket {
  protected async opened(sink: DeliverySink): Promise<void> {
    // The welcome goes first: resuming consumers starts deliveries at once.
    this.send({
      type: "welcome",
      clientId: this.conn.clientId,
      resumed: this.conn.resumed,
      endpoints: this.engine.hub.endpointNames,
    });
    const failures = await this.conn.open(sink);
    for (const e of failures) this.error(e);
  }

  protected format(d: Delivery): string {
    const { data, encoding } = decodePayload(d.payload);
    const frame: ServerFrame = {
      type: "message",
      endpoint: d.endpoint,
      id: d.id,
      data,
      ...(encoding ? { encoding } : {}),
      ...(d.meta ? { meta: d.meta } : {}),
    };
    return JSON.stringify(frame);
  }

  protected received(data: unknown): void {
    if (typeof data !== "string") {
      return this.error(new GatewayError("BAD_FRAME", "expected a JSON text frame"));
    }
    let frame: ClientFrame;
    try {
      frame = this.engine.hub.options.policy.parseFrame(data);
    } catch (error) {
      return this.error(error);
    }
    const id = "id" in frame ? frame.id : undefined;
    const answer = (work: Promise<unknown>) =>
      work.then(
        (receipt) => id && this.send({ type: "receipt", id, ...metaOf(receipt) }),
        (error) => this.error(error, id),
      );
    switch (frame.type) {
      case "ping":
        return this.send({ type: "pong" });
      case "publish":
        return void answer(this.conn.publish(frame.endpoint, encodeData(frame.data)));
      case "subscribe":
        return void answer(this.conn.subscribe(frame.endpoint, frame.params));
      case "unsubscribe":
        return void answer(this.conn.unsubscribe(frame.endpoint));
    }
  }

  private send(frame: ServerFrame): void {
    if (this.conn.state === "closed") return;
    try {
      this.ws?.send(JSON.stringify(frame));
    } catch {
      // The socket closed under us; onClose ends the connection.
    }
  }

  private error(error: unknown, id?: string): void {
    const e = GatewayError.from(error);
    this.engine.hub.recordError(e);
    if (e.code === "INTERNAL") this.engine.logger.error(`[WS] ${this.conn.clientId}`, error);
    this.send({ type: "error", code: e.code, message: e.message, ...(id ? { id } : {}) });
  }
}

class RawSocket extends Socket {
  constructor(
    engine: Engine,
    conn: Connection,
    bufferedAmount: (raw: unknown) => number,
    private endpoint: string,
    private params: Record<string, string>,
  ) {
    super(engine, conn, bufferedAmount);
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
    return decodeText(d.payload) ?? new Uint8Array(d.payload);
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
      : e.code === "INTERNAL"
      ? CloseCode.INTERNAL_ERROR
      : CloseCode.POLICY;
    this.ws?.close(code, `${e.code}: ${e.message}`.slice(0, 120));
  }
}

/** Binary frame data as bytes: runtimes hand over ArrayBuffer, Blob or a typed array. */
async function bytesOf(data: unknown): Promise<Uint8Array> {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (data instanceof Blob) return new Uint8Array(await data.arrayBuffer());
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new GatewayError("BAD_FRAME", "unsupported frame data");
}

function metaOf(receipt: unknown): { meta?: Record<string, string | number> } {
  const meta = (receipt as { meta?: Record<string, string | number> } | undefined)?.meta;
  return meta ? { meta } : {};
}
