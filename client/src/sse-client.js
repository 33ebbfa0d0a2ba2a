// @ts-check
/**
 * The receive-only SSE client (`connectSse`), for pages where only EventSource is allowed. It
 * uses EventSource where the platform has one (browsers, Deno) and a streamed fetch elsewhere
 * (Bun), and runs the reconnects itself either way: after back-off, with a fresh token when
 * `getToken` is given, resuming after the last event handled (`lastEventId`, which the gateway
 * reads like the `Last-Event-ID` header). The gateway writes again every kept event after that
 * id, with the same ids, so an id already handled is dropped. `taken-over` stops the client.
 *
 * A stream the gateway refuses for good (its error says `"temporary":false`: an unreadable stored
 * session, an unknown endpoint, a forbidden client ID; a 401 too unless `getToken` may bring a
 * new token) stops the client with that error. EventSource does not show why a stream was
 * refused, so after a refusal the next attempt goes over a streamed fetch, which can read it.
 *
 * Near 360 lines, one class: the EventSource and streamed-fetch transports feed the same
 * reconnect loop, last event id and refusal handling.
 */
/** @import { ConnectionState, ErrorCode, Handler, Message, SseClient, SseEvents, SseOptions, Timers } from "../mod.d.ts" */
import { BACKOFF_DEFAULTS, backoffDelay, platformTimers } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { ClientError, CloseCode } from "./errors.js";

/** Event ids remembered to drop events written again. */
const SEEN_IDS = 10_000;

/**
 * @example
 * connectSse({ url: "http://localhost:8080/sse", endpoints: ["chat"] }, (m) => console.log(m.data));
 * @type {typeof import("../mod.d.ts").connectSse}
 */
export function connectSse(options, handler) {
  return new SseGatewayClient(options, handler);
}

/** @implements {SseClient} */
class SseGatewayClient {
  /** @type {Emitter<SseEvents>} */
  #events = new Emitter();
  /** @type {ConnectionState} */
  #state = "connecting";
  /** @type {string | undefined} */
  #clientId;
  /** @type {string | undefined} */
  #lastEventId;
  /** @type {Set<string>} */
  #seen = new Set();
  #attempt = 0;
  #generation = 0;
  #stopped = false;
  /** Closes the stream open now. @type {(() => void) | undefined} */
  #closeStream;
  /** @type {unknown} */
  #retryTimer;
  /** @type {unknown} */
  #stableTimer;
  /** The last stream was refused before any event: the next one goes over fetch, to read why. */
  #readRefusal = false;
  /** Events are handled one at a time, in order. */
  #chain = Promise.resolve();
  /** @type {SseOptions} */
  #options;
  /** @type {Handler} */
  #handler;
  /** @type {Timers} */
  #timers;

  /** @param {SseOptions} options @param {Handler} handler */
  constructor(options, handler) {
    this.#options = options;
    this.#handler = handler;
    this.#clientId = options.clientId;
    this.#timers = options.timers ?? platformTimers;
    void this.#open();
  }

  get state() {
    return this.#state;
  }

  get clientId() {
    return this.#clientId;
  }

  get lastEventId() {
    return this.#lastEventId;
  }

  /**
   * @template {keyof SseEvents} K
   * @param {K} event
   * @param {(value: SseEvents[K]) => void} listener
   */
  on(event, listener) {
    return this.#events.on(event, listener);
  }

  close() {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#generation++;
    this.#closeStream?.();
    this.#clearTimers();
    this.#setState("closed");
    this.#events.emit("disconnected", {
      code: CloseCode.NORMAL,
      reason: "closed by the client",
      willRetry: false,
    });
  }

  async #open() {
    if (this.#stopped) return;
    const generation = ++this.#generation;
    this.#setState("connecting");
    this.#events.emit("connecting", { attempt: this.#attempt });
    let token = this.#options.token;
    if (this.#options.getToken) {
      try {
        token = await this.#options.getToken();
      } catch (error) {
        this.#events.emit(
          "error",
          new ClientError("UNAUTHENTICATED", `getToken failed: ${error}`, { cause: error }),
        );
        return this.#lost(generation, "getToken failed");
      }
      if (generation !== this.#generation) return;
    }
    const url = new URL(this.#options.url, /** @type {any} */ (globalThis).document?.baseURI);
    const { endpoints, params = {} } = this.#options;
    url.searchParams.set("endpoints", endpoints.join(","));
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
    if (this.#clientId !== undefined) url.searchParams.set("clientId", this.#clientId);
    if (token !== undefined) url.searchParams.set("token", token);
    if (this.#lastEventId !== undefined) url.searchParams.set("lastEventId", this.#lastEventId);
    /** @param {string} event @param {string} data @param {string} id */
    const onEvent = (event, data, id) => {
      if (generation === this.#generation) this.#event(event, data, id, generation);
    };
    /** @type {(why: string, refused?: ClientError) => void} */
    const onEnd = (why, refused) => this.#lost(generation, why, refused);
    const ES = this.#options.EventSource ?? globalThis.EventSource;
    const overFetch = !ES || (this.#readRefusal && typeof fetch === "function");
    this.#readRefusal = false;
    this.#closeStream = overFetch
      ? viaFetch(url.href, onEvent, onEnd)
      : viaEventSource(ES, url.href, onEvent, onEnd);
  }

  /** @param {string} event @param {string} data @param {string} id @param {number} generation */
  #event(event, data, id, generation) {
    switch (event) {
      case "welcome": {
        const welcome = JSON.parse(data);
        this.#clientId = welcome.clientId;
        this.#setState("connected");
        const stableMs = this.#options.backoff?.stableMs ?? BACKOFF_DEFAULTS.stableMs;
        this.#stableTimer = this.#timers.setTimeout(() => this.#attempt = 0, stableMs);
        this.#events.emit("connected", welcome);
        return;
      }
      case "taken-over": {
        const info = {
          code: CloseCode.TAKEN_OVER,
          reason: "taken over by a newer connection",
          willRetry: false,
        };
        this.#stopped = true;
        this.#generation++;
        this.#closeStream?.();
        this.#clearTimers();
        this.#setState("closed");
        this.#events.emit("disconnected", info);
        this.#events.emit("takenOver", info);
        return;
      }
      case "subscribed":
        this.#events.emit("subscribed", JSON.parse(data));
        return;
      case "error": {
        const { code, message, temporary } = JSON.parse(data);
        this.#events.emit("error", new ClientError(code, message, { temporary }));
        return;
      }
      case "message":
        return this.#message(data, id, generation);
    }
  }

  /** @param {string} data @param {string} id @param {number} generation */
  #message(data, id, generation) {
    if (!id || this.#seen.has(id)) return;
    this.#seen.add(id);
    if (this.#seen.size > SEEN_IDS) {
      this.#seen.delete(/** @type {string} */ (this.#seen.values().next().value));
    }
    // Always `?endpoints=`: every event carries the WebSocket message frame, one or many endpoints.
    const f = JSON.parse(data);
    /** @type {Message} */
    const m = { endpoint: f.endpoint, id, data: f.data, redelivered: false };
    if (f.encoding) m.encoding = f.encoding;
    if (f.meta) m.meta = f.meta;
    this.#chain = this.#chain.then(async () => {
      if (generation !== this.#generation) return;
      try {
        await this.#handler(m);
        this.#lastEventId = id;
      } catch (error) {
        this.#events.emit(
          "error",
          new ClientError("HANDLER_FAILED", `the handler failed on ${id}: ${error}`, { cause: error }),
        );
        // Comes again from the replay log: resume after the last event handled.
        this.#seen.delete(id);
        this.#closeStream?.();
        this.#lost(generation, "a handler failed");
      }
    });
  }

  /**
   * @param {number} generation @param {string} reason
   * @param {ClientError | undefined} [refused] the gateway's answer to a refused stream, when read
   */
  #lost(generation, reason, refused) {
    if (generation !== this.#generation || this.#stopped) return;
    this.#generation++;
    this.#closeStream?.();
    this.#clearTimers();
    if (refused && !refused.temporary && !(refused.code === "UNAUTHENTICATED" && this.#options.getToken)) {
      // Retrying cannot help: stop, and say why with the gateway's code.
      this.#stopped = true;
      this.#setState("closed");
      this.#events.emit("error", refused);
      this.#events.emit("disconnected", {
        code: CloseCode.PERMANENT_ERROR,
        reason: refused.message,
        willRetry: false,
      });
      return;
    }
    if (reason === REFUSED) this.#readRefusal = true;
    this.#setState("disconnected");
    const retryInMs = backoffDelay(this.#attempt++, this.#options.backoff, this.#options.random);
    this.#events.emit("disconnected", { code: CloseCode.ABNORMAL, reason, willRetry: true, retryInMs });
    this.#retryTimer = this.#timers.setTimeout(() => void this.#open(), retryInMs);
  }

  #clearTimers() {
    if (this.#retryTimer !== undefined) this.#timers.clear(this.#retryTimer);
    if (this.#stableTimer !== undefined) this.#timers.clear(this.#stableTimer);
    this.#retryTimer = this.#stableTimer = undefined;
  }

  /** @param {ConnectionState} state */
  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    this.#events.emit("state", state);
  }
}

const EVENTS = ["welcome", "subscribed", "message", "taken-over", "error"];
/** Why an EventSource ended before any event: the gateway did not answer with a stream. */
const REFUSED = "the stream was refused";

/**
 * One stream over EventSource; its own reconnects are cut short (the client runs them, with a
 * fresh token and the last id handled). Returns the function that closes it.
 * @param {typeof EventSource} ES @param {string} url
 * @param {(event: string, data: string, id: string) => void} onEvent @param {(why: string) => void} onEnd
 */
function viaEventSource(ES, url, onEvent, onEnd) {
  const es = new ES(url);
  let opened = false;
  es.onopen = () => void (opened = true);
  for (const name of EVENTS) {
    es.addEventListener(name, (e) => {
      const m = /** @type {MessageEvent} */ (e);
      // EventSource reports a failed connection as an "error" event without data.
      if (typeof m.data === "string") onEvent(name, m.data, m.lastEventId);
    });
  }
  es.onerror = (e) => {
    // The gateway's own `event: error` comes here too: it has data, and the stream goes on.
    if (typeof (/** @type {MessageEvent} */ (e)).data === "string") return;
    es.close();
    // Never opened: an HTTP error (or no server), which EventSource does not show.
    onEnd(opened ? "the stream ended" : REFUSED);
  };
  return () => es.close();
}

/**
 * One stream over a streamed fetch, for platforms without EventSource (Bun). Returns the function
 * that closes it.
 * @param {string} url
 * @param {(event: string, data: string, id: string) => void} onEvent
 * @param {(why: string, refused?: ClientError) => void} onEnd
 */
function viaFetch(url, onEvent, onEnd) {
  const controller = new AbortController();
  void (async () => {
    const response = await fetch(url, {
      headers: { Accept: "text/event-stream" },
      signal: controller.signal,
    });
    if (!response.ok || !response.body) {
      const body = await response.text().catch(() => "");
      const refused = refusalOf(body);
      if (refused) return /** @type {const} */ ([`HTTP ${response.status} ${refused.code}`, refused]);
      throw new Error(`HTTP ${response.status} ${body}`);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replaceAll("\r\n", "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = parseBlock(block);
        if (event) onEvent(event.event, event.data, event.id);
      }
    }
    return /** @type {const} */ (["the stream ended", undefined]);
  })().then(
    ([why, refused]) => onEnd(why, refused),
    (error) => controller.signal.aborted || onEnd(String(error)),
  );
  return () => controller.abort();
}

/** The gateway's JSON error answer as a ClientError; undefined for anything else. @param {string} body */
function refusalOf(body) {
  try {
    const { type, code, message, temporary } = JSON.parse(body);
    if (type !== "error" || typeof code !== "string") return undefined;
    return new ClientError(/** @type {ErrorCode} */ (code), String(message), { temporary });
  } catch {
    return undefined;
  }
}

/** One SSE event block; undefined for a comment or a `retry:`. @param {string} block */
function parseBlock(block) {
  let event = "message";
  let id = "";
  /** @type {string[]} */
  const data = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "id") id = value;
    else if (field === "data") data.push(value);
  }
  return data.length === 0 ? undefined : { event, id, data: data.join("\n") };
}
