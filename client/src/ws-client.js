// @ts-check
/**
 * The multiplexed WebSocket client (`connect`): follows the gateway's wire protocol (docs/wire-protocol.md,
 * "Wire protocol") so that the gateway's guarantees reach the application.
 *
 * - One connection at a time, `?clientId=...&ack=1&token=...`; reconnects with the same client
 *   ID after exponential back-off with full jitter, reset once a connection lasted `stableMs`.
 *   Close codes: 4404 (ended by an operator), 4409 (taken over), 4500 (a permanent error: reported
 *   with its code) and 4401 without a new token stop for good; 1008 is reported; everything else (1001, 1006, 1011, 1013,
 *   4410, 4503, ...) reconnects. A connection that answers nothing within `pingTimeoutMs` of a
 *   ping is dropped (half-open TCP).
 * - Messages go to their endpoint's handler in order, one at a time; the handler's completion
 *   acknowledges the message. Acks are cumulative, so they are sent per endpoint for the latest
 *   handled id, batched per tick. A handler that throws is not acked: the endpoint pauses and the
 *   client reconnects after back-off, so the message comes again (redelivered). Messages of a
 *   connection that is gone are not handled: unacked, they come again on the next one.
 * - A redelivered message whose dedupe key (see `dedupeKey`) was handled is acked and dropped.
 * - Publishes carry an id (given, or made here). Unanswered ones (made while away, or in flight
 *   when a connection dropped) are sent again after the next welcome with the same id: the
 *   gateway's dedupe window answers a repeat with the first receipt, so each reaches the broker
 *   once. A repeat that finds the first still under way (OUTCOME_UNKNOWN) asks again later.
 * - A fresh session (`resumed:false`) has no bindings: the client subscribes again by itself.
 *   A subscribe the gateway refuses with a temporary error (`"temporary":true`, e.g. its broker
 *   is down) is made again after back-off; only a permanent refusal rejects it.
 * - With acks, a message of an endpoint that has no handler is not acknowledged: it waits for a
 *   handler on this connection and otherwise comes again on a later one (a publish-only script
 *   with a subscriber's client ID does not drain the subscriber's queue).
 *
 * Deliveries on their way to the handlers are the Inbox's (inbox.js), publishes until their
 * receipt the Outbox's (outbox.js); this file runs the connection and the bindings.
 *
 * Near 700 lines, one class on purpose: what stood apart already went to inbox.js, outbox.js,
 * backoff.js and emitter.js. What is left is one state machine: open, welcome, loss, back-off,
 * token refresh and stop, and the subscriptions bound again on every welcome, all reading the
 * connection's generation, `#live`, `#subs` and the pending `#requests`; a bindings module of its
 * own would need every one of those handed to it.
 */
/** @import { Client, ClientEvents, ConnectOptions, ConnectionState, Handler, Message, Receipt, Timers, Welcome } from "../mod.d.ts" */
import { BACKOFF_DEFAULTS, backoffDelay, platformTimers } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { ClientError, CloseCode } from "./errors.js";
import { Inbox } from "./inbox.js";
import { Outbox } from "./outbox.js";

const OPEN = 1;

/**
 * @typedef {{ resolve: () => void, reject: (e: ClientError) => void }} Waiter
 * @typedef {{ endpoint: string, params: Record<string, string> | undefined, bound: boolean,
 *   requestId?: string, waiters: Waiter[], failures?: number, retry?: unknown }} Subscription
 *   `failures`: temporary refusals in a row (the back-off's exponent); `retry`: the timer of the
 *   next try
 */

/**
 * Connects and stays connected (see the module notes and `mod.d.ts`).
 *
 * @example
 * const client = connect({ url: "ws://localhost:8080/ws", clientId: "alice" });
 * await client.subscribe("chat", {}, (m) => console.log(m.data));
 * @type {typeof import("../mod.d.ts").connect}
 */
export function connect(options) {
  return new GatewayClient(options);
}

/** @implements {Client} */
class GatewayClient {
  /** @type {Emitter<ClientEvents>} */
  #events = new Emitter();
  /** @type {ConnectionState} */
  #state = "connecting";
  /** @type {string | undefined} */
  #clientId;
  /** @type {Welcome | undefined} */
  #welcome;
  /** @type {string | undefined} */
  #token;
  /** @type {WebSocket | undefined} */
  #ws;
  /** Counts sockets; the one open now is `#socket`. */
  #generation = 0;
  /** The generation of the welcomed connection, 0 while there is none. */
  #live = 0;
  /** Failures since the last stable connection: the back-off's exponent. */
  #attempt = 0;
  /** Stopped for good (close, 4409, 4500, 4401 without a new token). */
  #stopped = false;
  /** A permanent error frame that came before any welcome: why a 4500 close follows. @type {ClientError | undefined} */
  #refusal;
  /** Away on purpose (`disconnect`): no reconnect until `reconnect`. */
  #paused = false;
  #lastFrameAt = 0;
  /** @type {{ retry?: unknown, stable?: unknown, ping?: unknown, pong?: unknown }} */
  #timer = {};
  /** @type {Map<string, Subscription>} */
  #subs = new Map();
  /** Endpoints to unsubscribe on the next connection, with who waits for it. @type {Map<string, Waiter[]>} */
  #unbinds = new Map();
  /** Control requests (subscribe, unsubscribe) waiting for a receipt. @type {Map<string, Waiter>} */
  #requests = new Map();
  #nextRequest = 0;
  /** The leave under way, and what ends it (`left`, the socket's close, the timeout). @type {Promise<void> | undefined} */
  #leaving;
  /** @type {(() => void) | undefined} */
  #left;
  /** What `close()` resolves with. @type {Promise<void> | undefined} */
  #closing;

  /** @type {ConnectOptions} */
  #options;
  #ackMode;
  /** @type {Timers} */
  #timers;
  /** @type {typeof WebSocket} */
  #WebSocket;
  #inbox;
  #outbox;

  /** @param {ConnectOptions} options */
  constructor(options) {
    this.#options = options;
    this.#clientId = options.clientId;
    this.#token = options.token;
    this.#ackMode = options.ack ?? true;
    this.#timers = options.timers ?? platformTimers;
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.#WebSocket !== "function") {
      throw new TypeError("this runtime has no global WebSocket: pass one as options.WebSocket");
    }
    this.#inbox = new Inbox({
      ackMode: this.#ackMode,
      dedupeKey: options.dedupeKey ?? kafkaOffset,
      dedupeSize: options.dedupeSize ?? 10_000,
      live: () => this.#live,
      sendAck: (endpoint, id) => this.#send({ type: "ack", endpoint, id }),
      unhandled: (m) => this.#events.emit("message", m),
      failed: (m, on, error) => this.#handlerFailed(m, on, error),
    });
    this.#outbox = new Outbox(options.maxQueuedPublishes ?? 1000, this.#timers, (frame) => this.#send(frame));
    void this.#open();
  }

  get state() {
    return this.#state;
  }

  get clientId() {
    return this.#clientId;
  }

  get welcome() {
    return this.#welcome;
  }

  /**
   * @template {keyof ClientEvents} K
   * @param {K} event
   * @param {(value: ClientEvents[K]) => void} listener
   */
  on(event, listener) {
    return this.#events.on(event, listener);
  }

  /**
   * @param {string} endpoint
   * @param {Record<string, string> | undefined | Handler} params
   * @param {Handler} [handler]
   * @returns {Promise<void>}
   */
  subscribe(endpoint, params, handler) {
    if (typeof params === "function") [params, handler] = [undefined, params];
    if (typeof handler !== "function") return Promise.reject(new TypeError("subscribe needs a handler"));
    if (this.#stopped) return Promise.reject(new ClientError("CLOSED", "the client is closed"));
    // Subscribing again replaces the handler and params; messages waiting go to the new handler.
    // The gateway keeps a binding's params: other ones need an unsubscribe first (sent first).
    const previous = this.#subs.get(endpoint);
    if (previous?.bound && !sameParams(previous.params, params)) {
      if (!this.#unbinds.has(endpoint)) this.#unbinds.set(endpoint, []);
      if (this.#live) this.#unbind(endpoint);
    }
    const sub = previous ?? { endpoint, params, bound: false, waiters: [] };
    this.#cancelRetry(sub);
    Object.assign(sub, { params, bound: false, failures: 0 });
    this.#subs.set(endpoint, sub);
    this.#inbox.setHandler(endpoint, handler);
    /** @type {Promise<void>} */
    const done = new Promise((resolve, reject) => sub.waiters.push({ resolve: () => resolve(), reject }));
    if (this.#live) this.#bind(sub);
    return done;
  }

  /** @param {string} endpoint @returns {Promise<void>} */
  unsubscribe(endpoint) {
    if (this.#stopped) return Promise.reject(new ClientError("CLOSED", "the client is closed"));
    const sub = this.#subs.get(endpoint);
    if (sub) this.#cancelRetry(sub);
    this.#subs.delete(endpoint);
    this.#inbox.removeHandler(endpoint);
    for (const w of sub?.waiters ?? []) w.reject(new ClientError("CLOSED", `unsubscribed from ${endpoint}`));
    return new Promise((resolve, reject) => {
      /** @type {Waiter[]} */
      const waiters = this.#unbinds.get(endpoint) ?? [];
      waiters.push({ resolve, reject });
      this.#unbinds.set(endpoint, waiters);
      if (this.#live) this.#unbind(endpoint);
    });
  }

  /**
   * @param {string} endpoint
   * @param {unknown} data
   * @param {{ id?: string }} [options]
   * @returns {Promise<Receipt>}
   */
  publish(endpoint, data, options = {}) {
    if (this.#stopped) return Promise.reject(new ClientError("CLOSED", "the client is closed"));
    return this.#outbox.add(endpoint, data, options.id ?? randomId());
  }

  /**
   * Closes the connection and stays away (the session is kept for its window) until `reconnect`;
   * leaves first (see `#leave`). Resolves once the connection is closed.
   * @returns {Promise<void>}
   */
  disconnect() {
    if (this.#stopped) return Promise.resolve();
    this.#paused = true;
    const generation = this.#generation;
    const lost = () => this.#lost(generation, CloseCode.NORMAL, "disconnected by the client");
    const leaving = this.#leave();
    if (!leaving) return Promise.resolve(lost());
    return leaving.then(lost);
  }

  reconnect() {
    if (this.#stopped) return;
    this.#paused = false;
    if (this.#ws) this.#detach();
    this.#clearTimers();
    void this.#open();
  }

  /**
   * Closes for good; leaves first (see `#leave`). Resolves once the connection is closed.
   * @returns {Promise<void>}
   */
  close() {
    if (this.#stopped) return this.#closing ?? Promise.resolve();
    const stop = () =>
      this.#stop(CloseCode.NORMAL, "closed by the client", new ClientError("CLOSED", "the client is closed"));
    const leaving = this.#leave();
    if (!leaving) return Promise.resolve(stop());
    // Stopped at once (nothing new is taken, no reconnect), but the socket stays until the leave ends.
    this.#stopped = true;
    this.#closing = leaving.then(stop);
    return this.#closing;
  }

  /**
   * A clean leave: sends `leave` and reads on until the gateway answers `left` (it stopped
   * delivering and answered the requests under way), the socket closes, or `leaveTimeoutMs`
   * passes; only then is the socket closed. Without it, what the gateway wrote after the client
   * closed went unread, though the gateway had counted it delivered (and, without acks,
   * acknowledged it to the broker). Handlers go on with what came before `left`; with acks, the
   * acks of what they finished go out first. Undefined when there is no connection to leave.
   * @returns {Promise<void> | undefined}
   */
  #leave() {
    if (this.#leaving) return this.#leaving;
    const ws = this.#ws;
    if (!this.#live || !ws || ws.readyState !== OPEN) return undefined;
    this.#inbox.flushAcks();
    /** @type {Promise<void>} */
    const leaving = new Promise((resolve) => {
      const done = () => {
        if (this.#left !== done) return;
        this.#left = undefined;
        this.#leaving = undefined;
        this.#timers.clear(timer);
        ws.removeEventListener?.("close", done);
        resolve();
      };
      this.#left = done;
      const timer = this.#timers.setTimeout(done, this.#options.leaveTimeoutMs ?? 5000);
      ws.addEventListener?.("close", done);
      if (!this.#send({ type: "leave" })) done();
    });
    // Set after the executor ran: a leave that ended at once leaves nothing behind.
    if (this.#left) this.#leaving = leaving;
    return leaving;
  }

  // --- connection ---

  /** Opens a socket; `token` is a fresh one already asked for (after a 4401). @param {string} [token] */
  async #open(token) {
    if (this.#stopped || this.#paused) return;
    const generation = ++this.#generation;
    this.#setState("connecting");
    this.#events.emit("connecting", { attempt: this.#attempt });
    if (token !== undefined) this.#token = token;
    else if (this.#options.getToken) {
      try {
        this.#token = await this.#options.getToken();
      } catch (error) {
        if (generation !== this.#generation) return;
        this.#events.emit(
          "error",
          new ClientError("UNAUTHENTICATED", `getToken failed: ${error}`, { cause: error }),
        );
        return this.#lost(generation, CloseCode.ABNORMAL, "getToken failed");
      }
      if (generation !== this.#generation || this.#stopped || this.#paused) return;
    }
    let ws;
    try {
      ws = new this.#WebSocket(this.#url());
    } catch (error) {
      // A malformed URL: retrying cannot help.
      return this.#stop(CloseCode.ABNORMAL, String(error), new ClientError("BAD_REQUEST", String(error)));
    }
    this.#ws = ws;
    ws.onmessage = (event) => {
      if (generation === this.#generation && typeof event.data === "string") {
        this.#frame(event.data, generation);
      }
    };
    ws.onclose = (event) => this.#lost(generation, event.code || CloseCode.ABNORMAL, event.reason ?? "");
  }

  #url() {
    // Relative to the page in a browser (Deno throws on reading `location` without --location).
    const base = /** @type {any} */ (globalThis).document?.baseURI;
    const url = new URL(this.#options.url, base);
    url.protocol = url.protocol.replace(/^http/, "ws");
    if (this.#clientId !== undefined) url.searchParams.set("clientId", this.#clientId);
    if (this.#ackMode) url.searchParams.set("ack", "1");
    if (this.#token !== undefined) url.searchParams.set("token", this.#token);
    return url.href;
  }

  /** Stops listening to the current socket and closes it; its close event no longer counts. */
  #detach() {
    const ws = this.#ws;
    this.#ws = undefined;
    this.#live = 0;
    this.#generation++;
    if (!ws) return;
    ws.onmessage = ws.onclose = null;
    try {
      // A half-open connection may never complete the close handshake: nothing waits for it.
      ws.close(CloseCode.NORMAL);
    } catch {
      // Not open yet, or gone.
    }
  }

  /**
   * The connection `generation` ended with `code`: reconnect after back-off, refresh the token,
   * or stop, as the close codes table says.
   * @param {number} generation @param {number} code @param {string} reason
   */
  #lost(generation, code, reason) {
    if (generation !== this.#generation || this.#stopped) return;
    this.#detach();
    this.#clearTimers();
    // Requests unanswered on that connection are made again on the next one.
    this.#requests.clear();
    for (const sub of this.#subs.values()) {
      sub.requestId = undefined;
      // Bound again after the next welcome.
      this.#cancelRetry(sub);
    }
    const refusal = this.#refusal;
    this.#refusal = undefined;
    if (code === CloseCode.PERMANENT_ERROR) {
      // Retrying cannot help until an operator acts: stop, and say why with the gateway's code.
      const error = refusal ?? refusalOf(reason);
      this.#events.emit("error", error);
      this.#stop(code, reason, error);
      return;
    }
    if (code === CloseCode.SESSION_ENDED) {
      // An operator ended the session (the admin API): coming back would only start a fresh one.
      this.#stop(code, reason, new ClientError("CLOSED", reason || "the session was ended by an operator"));
      return;
    }
    if (code === CloseCode.TAKEN_OVER) {
      const info = { code, reason, willRetry: false };
      this.#stop(
        code,
        reason,
        new ClientError("TAKEN_OVER", reason || "taken over by a newer connection"),
        info,
      );
      this.#events.emit("takenOver", info);
      return;
    }
    if (code === CloseCode.UNAUTHENTICATED) return void this.#refresh(code, reason);
    if (code === CloseCode.POLICY) {
      this.#events.emit("error", new ClientError("POLICY", reason || "policy violation"));
    }
    this.#setState("disconnected");
    if (this.#paused) {
      this.#events.emit("disconnected", { code, reason, willRetry: false });
      return;
    }
    const retryInMs = backoffDelay(this.#attempt++, this.#options.backoff, this.#options.random);
    this.#events.emit("disconnected", { code, reason, willRetry: true, retryInMs });
    this.#timer.retry = this.#timers.setTimeout(() => void this.#open(), retryInMs);
  }

  /** 4401: a new token reconnects at once; none, or the same one, stops. @param {number} code @param {string} reason */
  async #refresh(code, reason) {
    const generation = this.#generation;
    let token;
    try {
      token = this.#options.getToken ? await this.#options.getToken() : undefined;
    } catch {
      token = undefined;
    }
    if (generation !== this.#generation || this.#stopped) return;
    if (token === undefined || token === this.#token) {
      this.#stop(code, reason, new ClientError("UNAUTHENTICATED", reason || "not authenticated"));
      return;
    }
    this.#setState("disconnected");
    this.#events.emit("disconnected", { code, reason, willRetry: true, retryInMs: 0 });
    void this.#open(token);
  }

  /**
   * Stops for good: closes the socket, rejects everything that waits.
   * @param {number} code @param {string} reason @param {ClientError} error
   * @param {{ code: number, reason: string, willRetry: boolean }} [info]
   */
  #stop(code, reason, error, info = { code, reason, willRetry: false }) {
    this.#stopped = true;
    this.#detach();
    this.#clearTimers();
    for (const sub of this.#subs.values()) this.#cancelRetry(sub);
    this.#outbox.rejectAll(error);
    for (const sub of this.#subs.values()) for (const w of sub.waiters.splice(0)) w.reject(error);
    for (const waiters of this.#unbinds.values()) for (const w of waiters) w.reject(error);
    this.#unbinds.clear();
    for (const w of this.#requests.values()) w.reject(error);
    this.#requests.clear();
    this.#setState("closed");
    this.#events.emit("disconnected", info);
  }

  #clearTimers() {
    for (const id of Object.values(this.#timer)) if (id !== undefined) this.#timers.clear(id);
    this.#timer = {};
  }

  /** @param {ConnectionState} state */
  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    this.#events.emit("state", state);
  }

  /** @param {import("../mod.d.ts").ClientFrame} frame */
  #send(frame) {
    const ws = this.#ws;
    if (!this.#live || !ws || ws.readyState !== OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  // --- liveness ---

  /** Pings a quiet connection; one that answers nothing within pingTimeoutMs is dropped. */
  #schedulePing() {
    const every = this.#options.pingIntervalMs ?? 15_000;
    this.#timer.ping = this.#timers.setTimeout(() => {
      const generation = this.#live;
      if (!generation) return;
      if (this.#timers.now() - this.#lastFrameAt >= every && this.#timer.pong === undefined) {
        this.#send({ type: "ping" });
        this.#timer.pong = this.#timers.setTimeout(
          () => this.#lost(generation, CloseCode.ABNORMAL, "ping timeout"),
          this.#options.pingTimeoutMs ?? 10_000,
        );
      }
      this.#schedulePing();
    }, every);
  }

  // --- frames from the gateway ---

  /** @param {string} text @param {number} generation */
  #frame(text, generation) {
    this.#lastFrameAt = this.#timers.now();
    if (this.#timer.pong !== undefined) {
      this.#timers.clear(this.#timer.pong);
      this.#timer.pong = undefined;
    }
    /** @type {import("../mod.d.ts").ServerFrame | undefined} */
    let f;
    try {
      f = JSON.parse(text);
    } catch {
      return;
    }
    switch (f?.type) {
      case "welcome":
        return this.#welcomed(f, generation);
      case "message":
        return this.#message(f, generation);
      case "receipt":
        return this.#receipt(f);
      case "error":
        return this.#errorFrame(f);
      case "left":
        return this.#left?.();
    }
  }

  /** @param {Welcome & { type?: string }} f @param {number} generation */
  #welcomed(f, generation) {
    const { type: _type, ...welcome } = f;
    this.#welcome = welcome;
    this.#clientId = welcome.clientId;
    this.#live = generation;
    this.#setState("connected");
    const stableMs = this.#options.backoff?.stableMs ?? BACKOFF_DEFAULTS.stableMs;
    this.#timer.stable = this.#timers.setTimeout(() => this.#attempt = 0, stableMs);
    this.#schedulePing();
    // A fresh session has no bindings; a resumed one has every binding it had.
    if (!welcome.resumed) {
      for (const sub of this.#subs.values()) sub.bound = false;
      for (const [endpoint, waiters] of this.#unbinds) {
        this.#unbinds.delete(endpoint);
        for (const w of waiters) w.resolve();
      }
    }
    for (const endpoint of this.#unbinds.keys()) this.#unbind(endpoint);
    for (const sub of this.#subs.values()) if (!sub.bound) this.#bind(sub);
    this.#outbox.flush();
    this.#events.emit("connected", welcome);
  }

  /** @param {any} f @param {number} generation */
  #message(f, generation) {
    /** @type {Message} */
    const m = { endpoint: f.endpoint, id: f.id, data: f.data, redelivered: f.redelivered === true };
    if (f.encoding) m.encoding = f.encoding;
    if (f.meta) m.meta = f.meta;
    this.#inbox.receive(m, generation);
  }

  /** @param {Message} m @param {number} on @param {unknown} error */
  #handlerFailed(m, on, error) {
    this.#events.emit(
      "error",
      new ClientError("HANDLER_FAILED", `the handler of ${m.endpoint} failed on ${m.id}: ${error}`, {
        cause: error,
      }),
    );
    // With acks the endpoint paused (see Inbox): the message comes again on the next connection,
    // after back-off.
    if (this.#ackMode && on === this.#live) this.#lost(on, CloseCode.ABNORMAL, "a handler failed");
  }

  /** @param {{ id: string, meta?: Record<string, string | number> }} f */
  #receipt(f) {
    const request = this.#requests.get(f.id);
    if (request) {
      this.#requests.delete(f.id);
      return request.resolve();
    }
    this.#outbox.receipt(f);
  }

  /**
   * @param {{ id?: string, code: import("../mod.d.ts").ErrorCode, message: string, temporary?: boolean,
   *   retry_after_ms?: number }} f
   */
  #errorFrame(f) {
    const error = new ClientError(f.code, f.message, {
      retryAfterMs: f.retry_after_ms,
      // The gateway's word wins over the code: the same code can be either (an unreadable stored
      // session is STORE_UNAVAILABLE, and permanent).
      temporary: f.temporary,
    });
    const request = f.id === undefined ? undefined : this.#requests.get(f.id);
    if (request) {
      this.#requests.delete(/** @type {string} */ (f.id));
      return request.reject(error);
    }
    if (this.#outbox.error(f.id, error)) return;
    // Before any welcome: the gateway refuses the connection, and closes it with 4500 next.
    if (!this.#live && error.temporary === false) this.#refusal = error;
    else this.#events.emit("error", error);
  }

  // --- requests to the gateway ---

  /** @param {Subscription} sub */
  #bind(sub) {
    const id = `~sub.${++this.#nextRequest}`;
    sub.requestId = id;
    this.#requests.set(id, {
      resolve: () => {
        if (this.#subs.get(sub.endpoint) !== sub || sub.requestId !== id) return;
        sub.bound = true;
        sub.failures = 0;
        for (const w of sub.waiters.splice(0)) w.resolve();
      },
      reject: (error) => {
        if (this.#subs.get(sub.endpoint) !== sub || sub.requestId !== id) return;
        sub.requestId = undefined;
        this.#events.emit("error", error);
        if (error.temporary) return this.#retryBind(sub);
        this.#subs.delete(sub.endpoint);
        for (const w of sub.waiters.splice(0)) w.reject(error);
      },
    });
    /** @type {import("../mod.d.ts").ClientFrame} */
    const frame = {
      type: "subscribe",
      endpoint: sub.endpoint,
      id,
      ...(sub.params ? { params: sub.params } : {}),
    };
    if (!this.#send(frame)) this.#requests.delete(id);
  }

  /**
   * A temporary refusal (the endpoint's broker is down, ...): bound again after the connection's
   * back-off, on the connection open then (a new connection binds it after its welcome anyway).
   * @param {Subscription} sub
   */
  #retryBind(sub) {
    const delay = backoffDelay(sub.failures ?? 0, this.#options.backoff, this.#options.random);
    sub.failures = (sub.failures ?? 0) + 1;
    const live = this.#live;
    sub.retry = this.#timers.setTimeout(() => {
      sub.retry = undefined;
      if (this.#live === live && this.#subs.get(sub.endpoint) === sub && !sub.bound) this.#bind(sub);
    }, delay);
  }

  /** @param {Subscription} sub */
  #cancelRetry(sub) {
    if (sub.retry !== undefined) this.#timers.clear(sub.retry);
    sub.retry = undefined;
  }

  /** @param {string} endpoint */
  #unbind(endpoint) {
    const id = `~unsub.${++this.#nextRequest}`;
    const settle = (/** @type {ClientError | undefined} */ error) => {
      const waiters = this.#unbinds.get(endpoint) ?? [];
      this.#unbinds.delete(endpoint);
      for (const w of waiters) error ? w.reject(error) : w.resolve();
    };
    this.#requests.set(id, { resolve: () => settle(undefined), reject: settle });
    if (!this.#send({ type: "unsubscribe", endpoint, id })) this.#requests.delete(id);
  }
}

/** The error a 4500 close names in its reason (`<CODE>: <message>`), when no frame came before it. @param {string} reason */
function refusalOf(reason) {
  const match = /^([A-Z_]+): (.*)$/s.exec(reason);
  const code = /** @type {import("../mod.d.ts").ErrorCode} */ (match?.[1] ?? "INTERNAL");
  return new ClientError(code, match?.[2] ?? (reason || "refused for good"), { temporary: false });
}

/** @param {Record<string, string> | undefined} a @param {Record<string, string> | undefined} b */
function sameParams(a = {}, b = {}) {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

/** Kafka's position, where the endpoint tells it: the same message always has the same one. @param {Message} m */
function kafkaOffset(m) {
  const meta = m.meta;
  return meta?.offset === undefined ? undefined : `${meta.topic}/${meta.partition}/${meta.offset}`;
}

function randomId() {
  return globalThis.crypto?.randomUUID?.() ??
    `${Date.now().toString(36)}.${Math.random().toString(36).slice(2)}`;
}
