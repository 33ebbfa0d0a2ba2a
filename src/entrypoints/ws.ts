/**
 * WebSocket entrypoints (DESIGN.md section 7):
 * - `GET {path}`: multiplexed JSON frames (publish, subscribe, unsubscribe, ping).
 * - `GET {path}/:endpoint`: raw; bound to one endpoint on connect (query parameters other than
 *   `clientId` are the binding params), every frame is a payload.
 *
 * The session is taken before the upgrade, so a bad client ID or an unreachable store is an
 * HTTP error the client can read, not a socket that opens and dies; except a permanent store
 * error (an unreadable stored session), which a WebSocket client would retry for ever as a 1006:
 * that socket is opened to get the error frame and close code 4500. The handshake is checked
 * first, as the runtimes check it: a request the runtime would refuse must not take a session
 * over (and close its owner with 4409) before failing.
 *
 * Limits (docs/configuration.md "Limits"): a frame longer than `maxFrameBytes` closes the socket with 1009
 * (Bun refuses it before buffering it; Deno has no such option and hands it over whole). Every
 * frame the gateway writes goes through one path that watches the socket's send buffer: past
 * `server.max_buffered_bytes` deliveries wait (the broker keeps them) and replies still go, but a
 * client whose replies alone add that much again, or whose buffer stays past it for
 * `server.slow_client_timeout`, is closed with 1008 "too slow" instead of buffered without bound.
 * Frames are handled a slice at a time so one client cannot make the others wait behind all it
 * sent; one whose unhandled frames pass `max_buffered_bytes`, or that ignores RATE_LIMITED more
 * than `policy.publishes_per_second` times a second, is closed with 1008.
 */
import { setImmediate } from "node:timers";
import type { Context, Hono } from "hono";
import type { WSContext, WSEvents } from "hono/ws";
import type { Connection, Recovery } from "../core/connection.ts";
import { CloseCode, GatewayError } from "../core/errors.ts";
import { ENVELOPE_BYTES } from "../policy/default-policy.ts";
import { CLIENT_ID_HEADER } from "../core/identity.ts";
import { messageFrame } from "../core/message-frame.ts";
import { encodeData, encodeText } from "../core/payload.ts";
import type { ClientFrame, ServerFrame } from "../core/protocol.ts";
import type { TimerId } from "../core/scheduler.ts";
import type { Delivery, DeliverySink } from "../core/sink.ts";
import type { Config } from "../config/schema.ts";
import type { Engine } from "../engine.ts";
import type { EntrypointContext } from "./common.ts";
import { admit, errorResponse, queryParams, requireEndpoints } from "./common.ts";
import { checkHandshake } from "./handshake.ts";

const OPEN = 1;
const encoder = new TextEncoder();
/**
 * Frames of one socket handled in a row before the socket yields to the event loop. The
 * runtimes hand over a socket's frames in batches as large as one read; handled in one go, a
 * client that floods would make everyone else wait behind its batch.
 */
const SLICE = 8;

/**
 * The longest WebSocket message a client may send: `policy.max_message_bytes` plus room for
 * the envelope. Adapters hand it to the runtime where it can refuse longer ones unread.
 */
export function maxFrameBytes(config: Config): number {
  return config.policy.max_message_bytes + ENVELOPE_BYTES;
}

export function wsRoutes(app: Hono, path: string, ctx: EntrypointContext): void {
  app.get(path, (c) => upgrade(c, ctx, undefined));
  app.get(`${path}/:endpoint`, (c) => upgrade(c, ctx, c.req.param("endpoint")));
}

async function upgrade(c: Context, ctx: EntrypointContext, rawEndpoint: string | undefined) {
  const { engine, hooks } = ctx;
  let conn: Connection;
  let handshakeOk = false;
  try {
    const { clientId, principal } = await admit(c, engine, hooks);
    if (rawEndpoint !== undefined) requireEndpoints(engine, [rawEndpoint]);
    const refused = checkHandshake(c.req.raw.headers);
    if (refused) {
      return c.json(
        { type: "error", code: "BAD_REQUEST", message: refused.message, temporary: false },
        refused.status,
      );
    }
    handshakeOk = true;
    conn = await engine.hub.connect(clientId, rawEndpoint === undefined ? "ws" : "ws-raw", {
      principal,
      acks: rawEndpoint === undefined && c.req.query("ack") === "1",
    });
  } catch (error) {
    const e = GatewayError.from(error);
    if (handshakeOk && isPermanentStoreError(e)) {
      const answer = await refuseOnSocket(c, ctx, e, rawEndpoint === undefined);
      if (answer) return answer;
    }
    return errorResponse(c, engine, error);
  }
  c.header(CLIENT_ID_HEADER, conn.clientId);
  const session = rawEndpoint === undefined
    ? new MultiplexedSocket(engine, conn, hooks.bufferedAmount)
    : new RawSocket(engine, conn, hooks.bufferedAmount, rawEndpoint, queryParams(c));
  let response: Response | undefined;
  try {
    response = await hooks.upgradeWebSocket(c, session.events());
  } catch (error) {
    engine.logger.debug(`[WS] Upgrade of ${conn.clientId} failed: ${(error as Error).message}`);
  }
  if (response) return response;
  // The runtime refused a handshake that passed our check: nothing to deliver to.
  void conn.close();
  return c.json(
    { type: "error", code: "BAD_REQUEST", message: "WebSocket upgrade failed", temporary: false },
    400,
  );
}

/**
 * The session store cannot serve this client until an operator acts (its record is unreadable):
 * a WebSocket cannot read the HTTP status of a refused handshake (browsers report 1006, which
 * clients retry), so the socket is opened to say so, and closed with 4500 (do not reconnect).
 */
function isPermanentStoreError(e: GatewayError): boolean {
  return e.code === "STORE_UNAVAILABLE" && !e.temporary;
}

/**
 * Upgrades only to refuse: a multiplexed socket gets the error frame (`"temporary":false`), then
 * every socket is closed with PERMANENT_ERROR and `<CODE>: <message>` as the reason. Undefined
 * when the runtime refused the upgrade (the caller answers over HTTP then).
 */
async function refuseOnSocket(
  c: Context,
  { engine, hooks }: EntrypointContext,
  e: GatewayError,
  multiplexed: boolean,
): Promise<Response | undefined> {
  const frame = JSON.stringify({ type: "error", code: e.code, message: e.message, temporary: false });
  try {
    const response = await hooks.upgradeWebSocket(c, {
      onOpen: (_evt, ws) => {
        if (multiplexed) ws.send(frame);
        // A close reason is at most 123 bytes of UTF-8.
        ws.close(CloseCode.PERMANENT_ERROR, truncateUtf8(`${e.code}: ${e.message}`, 123));
      },
    });
    if (response) {
      engine.hub.recordError(e);
      engine.logger.debug(`[WS] ${c.req.path}: refused for good: ${e.code} ${e.message}`);
    }
    return response;
  } catch {
    return undefined;
  }
}

/** `text` cut to at most `max` bytes of UTF-8, on a character boundary. */
function truncateUtf8(text: string, max: number): string {
  if (encoder.encode(text).length <= max) return text;
  let cut = text.slice(0, max);
  while (encoder.encode(cut).length > max) cut = cut.slice(0, -1);
  return cut;
}

/**
 * Common socket plumbing: the delivery sink, ordered frame handling, the one write path with
 * its back-pressure rules, close.
 */
abstract class Socket {
  protected ws?: WSContext;
  /** Frames are handled in arrival order, after the connection opened. */
  protected ready: Promise<unknown> = new Promise(() => {});
  /** Set once the gateway closed the socket itself: frames still arriving are not handled. */
  #closing = false;
  /**
   * Cleared once the client left (`leave`) or its Close arrived: from then on the sink writes
   * nothing, so the hub counts nothing more as delivered and the brokers keep it. A client may drop
   * what arrives after it closed (browsers and Bun do, as the WebSocket standard says).
   */
  #delivering = true;
  /** Bytes of replies written since the send buffer was last within max_buffered_bytes. */
  #overflow = 0;
  /** Runs while the send buffer is past max_buffered_bytes; closes the socket when it fires. */
  #slowTimer?: TimerId;
  /** Frames received and not handled yet, in order, from `#inboxHead` on. */
  #inbox: unknown[] = [];
  #inboxHead = 0;
  #inboxBytes = 0;
  /** Whether `#handleInbox` runs (or is queued behind the open). */
  #handling = false;
  /** The open was logged, and whether the close was too: one line each per connection. */
  #logged: "no" | "opened" | "closed" = "no";

  protected engine: Engine;
  protected conn: Connection;
  private bufferedAmount: (raw: unknown) => number;
  constructor(
    engine: Engine,
    conn: Connection,
    bufferedAmount: (raw: unknown) => number,
  ) {
    this.engine = engine;
    this.conn = conn;
    this.bufferedAmount = bufferedAmount;
  }

  events(): WSEvents {
    return {
      onOpen: (_evt, ws) => {
        this.ws = ws;
        this.#logged = "opened";
        this.engine.logger.info("[WS] Connection opened", {
          client: this.conn.clientId,
          transport: this.conn.transport,
          resumed: this.conn.resumed,
        });
        this.ready = this.opened(this.sink(ws)).catch((error) => {
          this.engine.logger.error(`[WS] Opening ${this.conn.clientId} failed`, error);
          ws.close(CloseCode.INTERNAL_ERROR, "internal error");
        });
      },
      onMessage: (evt) => {
        const data = evt.data;
        if (this.#closing || this.#tooLarge(data)) return;
        this.#inbox.push(data);
        this.#inboxBytes += sizeOf(data);
        if (this.#inboxBytes > this.#inboxLimit()) return this.#flooding();
        if (this.#handling) return;
        this.#handling = true;
        this.ready = this.ready.then(() => this.#handleInbox());
      },
      onClose: (evt) => {
        this.#logClosed(evt?.code ?? 1005, evt?.reason || "closed by the client", "client");
        this.#closed();
      },
      onError: () => {
        this.#logClosed(1006, "socket error", "client");
        this.#closed();
      },
    };
  }

  /**
   * Handles the frames received, in order, `SLICE` at a time: between slices the socket yields
   * (a macrotask, after the I/O the runtime has ready), so other clients' frames are handled
   * while one client sends faster than it is answered.
   */
  async #handleInbox(): Promise<void> {
    let inRow = 0;
    while (this.#inboxHead < this.#inbox.length && !this.#closing) {
      if (++inRow > SLICE) {
        await new Promise((resolve) => setImmediate(resolve));
        inRow = 1;
        if (this.#closing) break;
      }
      const data = this.#inbox[this.#inboxHead];
      this.#inbox[this.#inboxHead++] = undefined;
      this.#inboxBytes -= sizeOf(data);
      try {
        const handled = this.received(data);
        if (handled) await handled;
      } catch (error) {
        this.failed(error);
      }
    }
    this.#inbox = [];
    this.#inboxHead = 0;
    this.#handling = false;
  }

  /** Bytes of frames that may wait to be handled: a frame's worth past max_buffered_bytes. */
  #inboxLimit(): number {
    return this.engine.config.server.max_buffered_bytes + maxFrameBytes(this.engine.config);
  }

  /** Frames pile up faster than they are handled: the client is closed, not buffered. */
  #flooding(): void {
    this.engine.logger.debug(
      `[WS] ${this.conn.clientId} sends faster than it is answered (${this.#inboxBytes} bytes waiting); closing`,
    );
    this.#inbox = [];
    this.#inboxHead = 0;
    this.#inboxBytes = 0;
    this.end(CloseCode.POLICY, "too many frames waiting");
  }

  /** Runs once the socket is open: greet, attach the sink, resume consumers. */
  protected abstract opened(sink: DeliverySink): Promise<void>;
  /** Handles one client frame. */
  protected abstract received(data: unknown): void | Promise<void>;
  /** The frame a delivery is written as. */
  protected abstract format(delivery: Delivery): string | Uint8Array<ArrayBuffer>;
  /** A client frame could not be handled: tell the client. */
  protected abstract failed(error: unknown): void;

  /**
   * Writes a reply (welcome, receipt, error, pong). Replies are owed to the client, so they go
   * out past max_buffered_bytes too, but a client that keeps asking while reading nothing is
   * closed once its replies alone add that much again. Returns whether the frame was written.
   */
  protected reply(text: string): boolean {
    const ws = this.ws;
    if (!ws || this.#closing || !this.#open(ws)) return false;
    if (!this.#writable(ws)) {
      this.#overflow += text.length;
      if (this.#overflow > this.engine.config.server.max_buffered_bytes) {
        this.#tooSlow(ws, "its replies piled up unread");
        return false;
      }
    }
    return this.#send(ws, text);
  }

  /** Closes the socket for good; frames still arriving are not handled. */
  protected close(code: number, reason: string): void {
    this.#logClosed(code, reason, "gateway");
    this.#closing = true;
    this.#stopSlowClock();
    try {
      this.ws?.close(code, reason);
    } catch {
      // Already closed.
    }
  }

  #open(ws: WSContext): boolean {
    // The native socket's state is live; a WSContext's may be a snapshot of when it was made.
    const raw = ws.raw as { readyState?: number } | undefined;
    return (raw?.readyState ?? ws.readyState) === OPEN;
  }

  /** Open, and the send buffer within max_buffered_bytes; past it, the slow-client clock runs. */
  #writable(ws: WSContext): boolean {
    if (this.#closing || !this.#open(ws)) return false;
    if (this.bufferedAmount(ws.raw) <= this.engine.config.server.max_buffered_bytes) {
      this.#overflow = 0;
      this.#stopSlowClock();
      return true;
    }
    this.#slowTimer ??= this.engine.scheduler.setTimeout(() => {
      this.#slowTimer = undefined;
      const { max_buffered_bytes } = this.engine.config.server;
      if (!this.#closing && this.#open(ws) && this.bufferedAmount(ws.raw) > max_buffered_bytes) {
        this.#tooSlow(ws, "its send buffer stayed full");
      }
    }, this.engine.config.server.slow_client_timeout);
    return false;
  }

  /** One frame to the runtime. A frame the runtime did not take leaves a gap: the socket ends. */
  #send(ws: WSContext, data: string | Uint8Array<ArrayBuffer>): boolean {
    try {
      ws.send(data);
      return true;
    } catch {
      // Bun drops a frame past its back-pressure limit (the adapter turns that into a throw).
      if (this.#open(ws)) this.#tooSlow(ws, "the runtime dropped a frame");
      return false;
    }
  }

  #tooSlow(ws: WSContext, why: string): void {
    // Anyone can be slow: debug only, like other client mistakes.
    this.engine.logger.debug(
      `[WS] ${this.conn.clientId} is too slow (${why}, ${this.bufferedAmount(ws.raw)} bytes unsent); closing`,
    );
    this.end(CloseCode.POLICY, "too slow");
  }

  /** A frame past maxFrameBytes (a runtime without a limit of its own handed it over): 1009. */
  #tooLarge(data: unknown): boolean {
    const limit = maxFrameBytes(this.engine.config);
    if (!exceeds(data, limit)) return false;
    this.engine.logger.debug(`[WS] ${this.conn.clientId}: a frame exceeds ${limit} bytes; closing`);
    this.end(CloseCode.MESSAGE_TOO_BIG, `TOO_LARGE: frame exceeds ${limit} bytes`);
    return true;
  }

  /**
   * The gateway ends the connection: the session lets go at once. Deno completes the close only
   * once the client reads what was sent (a client that reads nothing keeps its TCP connection,
   * unread and unanswered, until it goes), so the close event may come late or not at all.
   */
  protected end(code: number, reason: string): void {
    this.close(code, reason);
    void this.conn.close();
  }

  /** The connection's one close line: who closed it first, with which code and reason. */
  #logClosed(code: number, reason: string, by: "client" | "gateway"): void {
    if (this.#logged !== "opened") return;
    this.#logged = "closed";
    this.engine.logger.info("[WS] Connection closed", {
      client: this.conn.clientId,
      transport: this.conn.transport,
      code,
      reason,
      by,
    });
  }

  #stopSlowClock(): void {
    if (this.#slowTimer !== undefined) this.engine.scheduler.clear(this.#slowTimer);
    this.#slowTimer = undefined;
  }

  /** Nothing more is written to the client as a delivery (replies still go). */
  protected stopDelivering(): void {
    this.#delivering = false;
  }

  #closed(): void {
    this.#delivering = false;
    this.#stopSlowClock();
    void this.conn.close();
  }

  private sink(ws: WSContext): DeliverySink {
    return {
      // Deliveries wait while the buffer is past the mark: the hub polls writable() and resumes.
      deliver: (delivery) => this.#delivering && this.#writable(ws) && this.#send(ws, this.format(delivery)),
      writable: () => this.#delivering && this.#writable(ws),
      close: (code, reason) => this.close(code, reason),
    };
  }
}

class MultiplexedSocket extends Socket {
  /** RATE_LIMITED answers lately: a client that ignores them is closed. */
  #refusals = this.engine.hub.refusals();
  /** Client requests under way (publish, subscribe, unsubscribe): answered before `left`. */
  #pending = new Set<Promise<unknown>>();
  /** The client sent `leave`. */
  #leaving = false;

  protected async opened(sink: DeliverySink): Promise<void> {
    // The welcome goes first (open greets before resuming consumers, which starts deliveries).
    const greet = (recovery: Recovery) =>
      this.send({
        type: "welcome",
        clientId: this.conn.clientId,
        resumed: this.conn.resumed,
        ...recovery,
        ack: this.conn.acks,
        endpoints: this.engine.hub.endpointNames,
      });
    const failures = await this.conn.open(sink, greet);
    for (const e of failures) this.error(e);
  }

  protected format(d: Delivery): string {
    return messageFrame(d);
  }

  protected failed(error: unknown): void {
    this.error(error);
  }

  protected received(data: unknown): void {
    if (typeof data !== "string") {
      return this.error(new GatewayError("BAD_FRAME", "expected a JSON text frame"));
    }
    let frame: ClientFrame;
    try {
      frame = this.engine.hub.parseFrame(data);
    } catch (error) {
      return this.error(error, error instanceof GatewayError ? error.frameId : undefined);
    }
    const id = "id" in frame ? frame.id : undefined;
    if (
      this.#leaving &&
      (frame.type === "publish" || frame.type === "subscribe" || frame.type === "unsubscribe")
    ) {
      return this.error(
        new GatewayError("BAD_FRAME", `${frame.type} after leave: the connection is closing`),
        id,
      );
    }
    // Every client action answers: a receipt when it names an id, an error frame when it fails
    // (synchronously or not); none can escape as an unhandled error.
    const answer = (work: () => Promise<unknown>) => {
      const answered = Promise.resolve().then(work).then(
        (receipt) => id && this.send({ type: "receipt", id, ...metaOf(receipt) }),
        (error) => this.error(error, id),
      );
      this.#pending.add(answered);
      void answered.finally(() => this.#pending.delete(answered));
    };
    switch (frame.type) {
      case "ping":
        return this.send({ type: "pong" });
      case "leave":
        return void this.#leave();
      case "publish":
        return void answer(() => this.conn.publish(frame.endpoint, encodeData(frame.data), frame.id));
      case "subscribe":
        return void answer(() => this.conn.subscribe(frame.endpoint, frame.params));
      case "unsubscribe":
        return void answer(() => this.conn.unsubscribe(frame.endpoint));
      case "ack":
        try {
          this.conn.ack(frame.endpoint, frame.id);
        } catch (error) {
          this.error(error, frame.id);
        }
        return;
    }
  }

  /**
   * The client leaves: nothing more is delivered from now on (what its brokers send meanwhile
   * stays with them, for its next connection), the requests under way are answered, then `left`
   * and a 1000 close. A client that reads up to `left` before it closes has had every message
   * the gateway counted as delivered, so a clean leave loses nothing, with acks or without.
   * Not awaited by the frame loop: acks sent after `leave` are still handled.
   */
  async #leave(): Promise<void> {
    if (this.#leaving) return;
    this.#leaving = true;
    this.stopDelivering();
    await Promise.all(this.#pending);
    this.send({ type: "left" });
    this.end(CloseCode.NORMAL, "left");
  }

  private send(frame: ServerFrame): void {
    if (this.conn.state === "closed") return;
    this.reply(JSON.stringify(frame));
  }

  /** Answers an error frame. Client mistakes are logged at debug only: anyone can cause them. */
  private error(error: unknown, id?: string): void {
    const e = GatewayError.from(error);
    this.engine.hub.recordError(e);
    if (e.code === "INTERNAL") this.engine.logger.error(`[WS] ${this.conn.clientId}`, error);
    else this.engine.logger.debug(`[WS] ${this.conn.clientId}: ${e.code} ${e.message}`);
    if (e.code === "RATE_LIMITED" && this.#refusals.keepsPushing()) {
      this.engine.logger.debug(`[WS] ${this.conn.clientId} ignores RATE_LIMITED; closing`);
      return this.end(CloseCode.POLICY, "RATE_LIMITED: kept publishing past its rate");
    }
    this.send({
      type: "error",
      code: e.code,
      message: e.message,
      temporary: e.temporary,
      ...(id ? { id } : {}),
      ...(e.retryAfterMs !== undefined ? { retry_after_ms: e.retryAfterMs } : {}),
    });
  }
}

class RawSocket extends Socket {
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

/**
 * Whether a frame is longer than `limit` bytes. A UTF-16 unit is 1 to 3 UTF-8 bytes, so text is
 * encoded only when its length leaves the answer open.
 */
function exceeds(data: unknown, limit: number): boolean {
  if (typeof data === "string") {
    return data.length > limit || (data.length * 3 > limit && encoder.encode(data).length > limit);
  }
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength > limit;
  if (data instanceof Blob) return data.size > limit;
  return false;
}

/** About how much memory a frame's data holds (a string's length in UTF-16 units). */
function sizeOf(data: unknown): number {
  if (typeof data === "string") return data.length;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  if (data instanceof Blob) return data.size;
  return 0;
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
