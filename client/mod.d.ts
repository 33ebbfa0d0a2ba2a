/**
 * The gateway's client library: the multiplexed WebSocket with end-to-end acks, resume,
 * reconnects with back-off and a publish queue (`connect`), and a receive-only SSE variant
 * (`connectSse`). No dependencies: it uses the platform's WebSocket, EventSource and timers, so it
 * runs unchanged in browsers, Deno and Bun.
 *
 * Near 400 lines of declarations only, in one file on purpose: it is the client library's whole
 * public surface (and the tables a test checks against the server's), as users read it.
 *
 * @example
 * import { connect } from "./client/mod.js";
 * const client = connect({ url: "ws://localhost:8080/ws", clientId: "alice" });
 * await client.subscribe("chat", {}, (m) => console.log(m.data));
 * await client.publish("chat", { text: "hi" });
 *
 * @module
 */

/** The wire protocol's error codes: those of the gateway's error frames (its ErrorCode). */
export type WireErrorCode =
  | "BAD_FRAME"
  | "BAD_REQUEST"
  | "BAD_CLIENT_ID"
  | "UNAUTHENTICATED"
  | "UNKNOWN_ENDPOINT"
  | "FORBIDDEN"
  | "TOO_LARGE"
  | "RATE_LIMITED"
  | "UPSTREAM_UNAVAILABLE"
  | "OUTCOME_UNKNOWN"
  | "TAKEN_OVER"
  | "STORE_UNAVAILABLE"
  | "INTERNAL";

/** The wire protocol's error codes, plus the client's own (`POLICY`: closed with 1008; `CLOSED`, `QUEUE_FULL`, `HANDLER_FAILED`). */
export type ErrorCode = WireErrorCode | "POLICY" | "CLOSED" | "QUEUE_FULL" | "HANDLER_FAILED";

/** The frames a client sends on the multiplexed WebSocket (the gateway's docs/wire-protocol.md). */
export type ClientFrame =
  | { type: "publish"; endpoint: string; data: unknown; id?: string }
  | { type: "subscribe"; endpoint: string; params?: Record<string, string>; id?: string }
  | { type: "unsubscribe"; endpoint: string; id?: string }
  | { type: "ack"; endpoint: string; id: string }
  | { type: "ping" }
  /** The client is about to close: the gateway stops delivering, answers what is under way, then `left`. */
  | { type: "leave" };

/** The frames the gateway sends on the multiplexed WebSocket. */
export type ServerFrame =
  | {
    type: "welcome";
    clientId: string;
    resumed: boolean;
    recovered: boolean;
    reason?: string;
    lost?: Record<string, number>;
    ack: boolean;
    endpoints: string[];
  }
  | {
    type: "message";
    endpoint: string;
    id: string;
    data: unknown;
    encoding?: "base64";
    meta?: Record<string, string | number>;
    /** Present (true) when the client may have had this message before. */
    redelivered?: true;
  }
  | { type: "receipt"; id: string; meta?: Record<string, string | number> }
  | {
    type: "error";
    code: WireErrorCode;
    message: string;
    /** Whether trying again later may succeed; false: do not retry. */
    temporary: boolean;
    id?: string;
    endpoint?: string;
    retry_after_ms?: number;
  }
  | { type: "pong" }
  /** The answer to `leave`: nothing was written after it; the gateway closes with 1000 next. */
  | { type: "left" };

/** The one error type of the library: a gateway error frame, a close, or the client's own refusal. */
export declare class ClientError extends Error {
  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; retryAfterMs?: number; temporary?: boolean },
  );
  readonly name: string;
  readonly code: ErrorCode;
  /**
   * Trying again later may succeed. The gateway's own word when it gave one (the `temporary`
   * field of its errors: an unreadable stored session is `STORE_UNAVAILABLE` and permanent);
   * otherwise from the code: UPSTREAM_UNAVAILABLE, STORE_UNAVAILABLE, RATE_LIMITED, OUTCOME_UNKNOWN.
   */
  readonly temporary: boolean;
  /** For RATE_LIMITED: how long the gateway asked to wait, in ms. */
  readonly retryAfterMs?: number;
}

/** One close code: whether the client reconnects on it by itself, and what it means. */
export interface CloseCodeInfo {
  readonly code: number;
  /** Whether the client reconnects by itself (after back-off) when the gateway closes with it. */
  readonly reconnect: boolean;
  readonly meaning: string;
}

type CloseCodeEntry<C extends number, R extends boolean> = {
  readonly code: C;
  readonly reconnect: R;
  readonly meaning: string;
};

/**
 * The gateway's close codes by name (docs/codes.md "Close codes"), each with whether the client
 * reconnects on it: false for 4401 (only with a new token from `getToken`), 4404 (ended by an
 * operator), 4409 (taken over) and 4500 (a permanent error).
 */
export declare const CLOSE_CODES: {
  readonly NORMAL: CloseCodeEntry<1000, true>;
  readonly GOING_AWAY: CloseCodeEntry<1001, true>;
  /** Not a code on the wire: the connection ended without a close frame (network, refused handshake). */
  readonly ABNORMAL: CloseCodeEntry<1006, true>;
  readonly POLICY: CloseCodeEntry<1008, true>;
  readonly MESSAGE_TOO_BIG: CloseCodeEntry<1009, true>;
  readonly INTERNAL_ERROR: CloseCodeEntry<1011, true>;
  readonly TRY_AGAIN_LATER: CloseCodeEntry<1013, true>;
  /** Disconnected by an operator (the admin API); the session is kept. */
  readonly DISCONNECTED: CloseCodeEntry<4000, true>;
  readonly UNAUTHENTICATED: CloseCodeEntry<4401, false>;
  /** The session was ended by an operator (the admin API): the client stops. */
  readonly SESSION_ENDED: CloseCodeEntry<4404, false>;
  readonly TAKEN_OVER: CloseCodeEntry<4409, false>;
  readonly SESSION_EXPIRED: CloseCodeEntry<4410, true>;
  /** A permanent error (reason `<CODE>: <message>`): the client stops and emits `error` with that code. */
  readonly PERMANENT_ERROR: CloseCodeEntry<4500, false>;
  readonly STORE_UNAVAILABLE: CloseCodeEntry<4503, true>;
};

/** The gateway's close codes by name (`CloseCode.TAKEN_OVER` is 4409), from CLOSE_CODES. */
export declare const CloseCode: { readonly [N in keyof typeof CLOSE_CODES]: typeof CLOSE_CODES[N]["code"] };

/**
 * The clock and timers the client waits on (back-off, pings, stable-connection reset). The
 * gateway's `Scheduler` (and its `VirtualClock`, for tests) fits as it is.
 */
export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clear(id: unknown): void;
}

/** Reconnect back-off: exponential with full jitter, capped. */
export interface BackoffOptions {
  /** The cap of the first retry's delay, ms (default 500). */
  initialMs?: number;
  /** The largest cap, ms (default 30000). */
  maxMs?: number;
  /** A connection that lasts this long resets the back-off, ms (default 10000). */
  stableMs?: number;
}

export interface ConnectOptions {
  /** The multiplexed WebSocket entrypoint, `ws://host:8080/ws` (`http(s)://` is taken as `ws(s)://`). */
  url: string;
  /** The client ID; without one the gateway makes one, and the client keeps it for reconnects. */
  clientId?: string;
  /** A credential, sent as the `token` query parameter (browsers cannot set WebSocket headers). */
  token?: string;
  /**
   * Asked for a credential before every connect and when the gateway closes with 4401 (token
   * expired): a new token reconnects at once, the same one stops the client.
   */
  getToken?: () => string | Promise<string>;
  /** End-to-end acks (`ack=1`, default true): a message is acknowledged when its handler finished. */
  ack?: boolean;
  /** Publishes kept while disconnected (default 1000); past it `publish` rejects with QUEUE_FULL. */
  maxQueuedPublishes?: number;
  backoff?: BackoffOptions;
  /** How long `close` and `disconnect` wait for the gateway's `left`, ms (default 5000). */
  leaveTimeoutMs?: number;
  /** A ping when the connection was quiet this long, ms (default 15000). */
  pingIntervalMs?: number;
  /** No frame this long after a ping: the connection is dead (half-open), ms (default 10000). */
  pingTimeoutMs?: number;
  /**
   * The key a redelivered message is recognised by. Delivery ids are per connection (a
   * redelivered message has a new id), so the key comes from the message: by default Kafka's
   * `topic/partition/offset` from `meta`, none otherwise (e.g. `(m) => m.data.id` for payloads
   * that carry their own id). A redelivered message whose key was handled in this process is
   * acked and dropped before the handler.
   */
  dedupeKey?: (message: Message) => string | undefined;
  /** Keys remembered per endpoint (default 10000). */
  dedupeSize?: number;
  /** Timers and clock (default: the platform's). */
  timers?: Timers;
  /** Random numbers in [0, 1) for the back-off's jitter (default `Math.random`). */
  random?: () => number;
  /** The WebSocket constructor (default `globalThis.WebSocket`). */
  WebSocket?: typeof WebSocket;
}

/** A delivery, as the handler gets it. */
export interface Message {
  endpoint: string;
  /** The delivery id, `<epoch>.<sequence>`: strictly increasing per endpoint, per connection. */
  id: string;
  data: unknown;
  encoding?: "base64";
  meta?: Record<string, string | number>;
  /** The client may have had this message before (it came again after a reconnect). */
  redelivered: boolean;
}

export type Handler = (message: Message) => void | Promise<void>;

/** What the gateway answered a publish with. */
export interface Receipt {
  id: string;
  meta?: Record<string, string | number>;
}

/** The welcome frame: `resumed` (the session was kept) and `recovered` (nothing was lost). */
export interface Welcome {
  clientId: string;
  resumed: boolean;
  recovered: boolean;
  reason?: string;
  lost?: Record<string, number>;
  ack: boolean;
  endpoints: string[];
}

export type ConnectionState = "connecting" | "connected" | "disconnected" | "closed";

export interface Disconnected {
  /** The close code (1006 when the connection failed without one, e.g. refused or cut). */
  code: number;
  reason: string;
  /** Whether the client will reconnect by itself. */
  willRetry: boolean;
  /** When it will, in ms. */
  retryInMs?: number;
}

export interface ClientEvents {
  /** Every state change. */
  state: ConnectionState;
  /** A connection attempt starts (`attempt` counts failures since the last stable connection). */
  connecting: { attempt: number };
  connected: Welcome;
  disconnected: Disconnected;
  /** A newer connection with this client ID took the session (4409): the client stopped for good. */
  takenOver: Disconnected;
  /**
   * A handler threw, the gateway sent an error frame without an id, a subscribe was refused (a
   * temporary refusal is retried after back-off), the gateway closed with 1008, or it refused the
   * client for good (4500: the client stopped; the error has the gateway's code, e.g. an
   * unreadable stored session's `STORE_UNAVAILABLE` with `temporary: false`).
   */
  error: ClientError;
  /**
   * A message of an endpoint without a handler. With acks it is **not** acknowledged: it waits for
   * a handler (a `subscribe` on this connection), and otherwise comes again on a later connection,
   * so a publish-only script that uses a subscriber's client ID does not drain its queue. Without
   * acks the gateway acknowledged it when it wrote it: use another client ID for such a script.
   */
  message: Message;
}

export interface Client {
  readonly state: ConnectionState;
  /** The client ID in use (the gateway's when none was given, once welcomed). */
  readonly clientId: string | undefined;
  /** The latest welcome. */
  readonly welcome: Welcome | undefined;
  /**
   * Binds `endpoint` and hands its messages to `handler`, in order, one at a time. Resolves with
   * the gateway's receipt (after a reconnect, if the client is away); the binding is renewed by
   * itself when a reconnect finds a fresh session. A temporary refusal (`UPSTREAM_UNAVAILABLE`:
   * the endpoint's broker is down) is emitted as `error` and tried again after the connection's
   * back-off; the promise rejects only on a permanent one (`FORBIDDEN`, `UNKNOWN_ENDPOINT`, ...),
   * or when the client stops.
   */
  subscribe(endpoint: string, params: Record<string, string> | undefined, handler: Handler): Promise<void>;
  subscribe(endpoint: string, handler: Handler): Promise<void>;
  /** Unbinds `endpoint` (the broker session ends) and drops its handler. */
  unsubscribe(endpoint: string): Promise<void>;
  /**
   * Publishes `data` (sent as JSON). Made while disconnected, or unanswered when a connection
   * dropped, it is sent again on reconnect with the same `id`, which the gateway's dedupe window
   * makes exactly-once into the broker. Resolves with the receipt, rejects with a ClientError.
   */
  publish(endpoint: string, data: unknown, options?: { id?: string }): Promise<Receipt>;
  /** Listens to an event; returns the function that stops listening. */
  on<K extends keyof ClientEvents>(event: K, listener: (value: ClientEvents[K]) => void): () => void;
  /**
   * Closes the connection and stays away until `reconnect` (the gateway keeps the session for
   * its reconnection window and the broker queues what comes meanwhile). Leaves cleanly first,
   * as `close` does. Resolves once the connection is closed.
   */
  disconnect(): Promise<void>;
  /** Drops the connection if there is one and connects again at once (e.g. after a network change). */
  reconnect(): void;
  /**
   * Closes for good: no reconnect; queued publishes reject with CLOSED. Leaves cleanly first: sends
   * `leave` and reads on until the gateway answers `left` (at most `leaveTimeoutMs`), so nothing
   * the gateway wrote is left unread: without acks too, a close loses no message (docs/wire-protocol.md,
   * "Delivery guarantees"). Resolves once the connection is closed; handlers may still be at work
   * on messages that came before `left` (without acks, let them finish before the process exits).
   */
  close(): Promise<void>;
}

/**
 * Connects to the gateway's multiplexed WebSocket and stays connected.
 *
 * @example
 * const client = connect({ url: "ws://localhost:8080/ws", clientId: "alice" });
 * client.on("connected", (w) => console.log(w.resumed ? "resumed" : "fresh session"));
 */
export declare function connect(options: ConnectOptions): Client;

export interface SseOptions {
  /** The SSE entrypoint, `http://host:8080/sse`. */
  url: string;
  endpoints: string[];
  /** Binding params (query parameters). */
  params?: Record<string, string>;
  clientId?: string;
  token?: string;
  getToken?: () => string | Promise<string>;
  backoff?: BackoffOptions;
  timers?: Timers;
  random?: () => number;
  /** The EventSource constructor (default `globalThis.EventSource`). */
  EventSource?: typeof EventSource;
}

export interface SseEvents {
  state: ConnectionState;
  connecting: { attempt: number };
  connected: Omit<Welcome, "ack">;
  /** An endpoint's binding is in place: what its broker gets from now on reaches the stream. */
  subscribed: { endpoint: string };
  disconnected: Disconnected;
  takenOver: Disconnected;
  /**
   * An `event: error` of the stream, a handler that threw, or a stream the gateway refused for
   * good (`temporary: false`, e.g. an unreadable stored session): the client then stopped.
   */
  error: ClientError;
}

export interface SseClient {
  readonly state: ConnectionState;
  readonly clientId: string | undefined;
  /** The id of the last event handled: where a reconnect resumes (`Last-Event-ID`). */
  readonly lastEventId: string | undefined;
  on<K extends keyof SseEvents>(event: K, listener: (value: SseEvents[K]) => void): () => void;
  close(): void;
}

/**
 * Receives over Server-Sent Events, for pages where only EventSource is allowed. Reconnects pass
 * `Last-Event-ID`, so nothing is lost; an event already handled (the same id) is dropped.
 * Messages are `redelivered: false`: SSE carries no flag (a replayed event has its first id).
 *
 * @example
 * connectSse({ url: "http://localhost:8080/sse", endpoints: ["chat"], clientId: "alice" }, (m) => console.log(m.data));
 */
export declare function connectSse(options: SseOptions, handler: Handler): SseClient;

/** The delay before retry number `attempt` (0 first): full jitter under min(maxMs, initialMs * 2^attempt). */
export declare function backoffDelay(
  attempt: number,
  options?: BackoffOptions,
  random?: () => number,
): number;
