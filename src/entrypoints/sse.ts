/**
 * Server-Sent Events (`GET {path}/:endpoint`, or `GET {path}?endpoints=a,b`): binds on connect
 * and streams deliveries as `id:` / `event: message` / `data:` events, with a `: ping` comment
 * every `server.sse_ping_interval`. The first event, `welcome`, carries the client ID.
 *
 * Query parameters other than `clientId` and `endpoints` are the binding params.
 * On a single-endpoint stream `data` is the payload itself (base64 with `event: message-base64`
 * when it is not UTF-8); on a multi-endpoint stream it is the JSON of the WebSocket message frame,
 * so the client can tell the endpoints apart. A stream carries only the endpoints it names: what
 * the session holds for others (bound over WebSocket) stays queued with their brokers.
 *
 * Takeover: a stream whose session another connection took gets `event: taken-over` with the id
 * `taken.<epoch>` and ends. EventSource reconnects by itself, sending that id as Last-Event-ID;
 * such a request is answered 409, which ends an EventSource for good, so two tabs with one
 * client ID do not take the session from each other forever.
 */
import type { Context, Hono } from "hono";
import type { Connection, Recovery } from "../core/connection.ts";
import { CloseCode, GatewayError } from "../core/errors.ts";
import { CLIENT_ID_HEADER } from "../core/identity.ts";
import { messageFrame } from "../core/message-frame.ts";
import type { Delivery, DeliverySink } from "../core/sink.ts";
import type { EntrypointContext } from "./common.ts";
import { nextRetry, ReplayWriter, RETRY_FIRST_MS } from "./sse-replay.ts";
import { admit, errorResponse, queryParams, requireEndpoints } from "./common.ts";
import { SlowClientClock } from "./slow-client.ts";

const encoder = new TextEncoder();
/** The Last-Event-ID of a stream that ended because it was taken over. */
const TAKEN = "taken.";

export function sseRoutes(app: Hono, path: string, ctx: EntrypointContext): void {
  app.get(path, (c) => stream(c, ctx, (c.req.query("endpoints") ?? "").split(",").filter(Boolean), true));
  app.get(`${path}/:endpoint`, (c) => stream(c, ctx, [c.req.param("endpoint")], false));
}

async function stream(c: Context, ctx: EntrypointContext, endpoints: string[], multi: boolean) {
  const { engine, hooks } = ctx;
  let conn: Connection;
  let lastEventId: string | undefined;
  /** The client's address, for the open and close lines. */
  let address: string | undefined;
  let replay: Awaited<ReturnType<typeof engine.hub.takeReplay>>;
  try {
    const admitted = await admit(c, engine, ctx);
    const { clientId, principal } = admitted;
    address = admitted.address;
    if (endpoints.length === 0) {
      throw new GatewayError("BAD_REQUEST", "name the endpoints: ?endpoints=a,b or /sse/<endpoint>");
    }
    requireEndpoints(engine, endpoints);
    // A binding the ACL refuses is refused before the stream is answered: a 403, which
    // EventSource does not retry, rather than a 200 stream with an error event and nothing after.
    for (const endpoint of endpoints) {
      engine.hub.checkSubscribe(clientId, endpoint, queryParams(c), principal);
    }
    lastEventId = c.req.header("last-event-id") ?? c.req.query("lastEventId");
    if (lastEventId?.startsWith(TAKEN)) {
      throw new GatewayError(
        "TAKEN_OVER",
        `the session of ${clientId} was taken over by a newer connection; not reconnecting`,
      );
    }
    conn = await engine.hub.connect(clientId, "sse", {
      endpoints,
      acks: true,
      principal,
    });
  } catch (error) {
    return errorResponse(c, engine, error);
  }
  try {
    replay = await engine.hub.takeReplay(conn.clientId, lastEventId);
  } catch (error) {
    void conn.close();
    return errorResponse(c, engine, error);
  }
  const { scheduler, config } = engine;
  const writer = new ReplayWriter(conn, engine.hub, engine.logger, scheduler);
  hooks.keepStreamOpen(c);
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let closed = false;
  /** Aborted when the stream ends: stops the bind retries' waits. */
  const ended = new AbortController();
  const fields = { client: conn.clientId, transport: conn.transport, ...address ? { address } : {} };
  engine.logger.info("[SSE] Connection opened", { ...fields, resumed: conn.resumed });
  /** Ends the stream; its one close line says who ended it and why. */
  const end = (reason = "stream closed by the client", by: "client" | "gateway" = "client") => {
    if (closed) return;
    closed = true;
    engine.logger.info("[SSE] Connection closed", { ...fields, reason, by });
    scheduler.clear(ping);
    slowClock.stop();
    ended.abort();
    // Events already kept are acknowledged first, so the broker does not send them again.
    void writer.finish().finally(() => conn.close());
  };
  /** Enqueues an event; a stream the client went away from ends the connection. */
  const write = (text: string): boolean => {
    if (closed) return false;
    try {
      controller.enqueue(encoder.encode(text));
      return true;
    } catch {
      end();
      return false;
    }
  };
  const full = () => (controller.desiredSize ?? 0) <= 0;
  /** Runs while the stream is full; ends it when it fires. */
  const slowClock = new SlowClientClock(
    scheduler,
    config.server.slow_client_timeout,
    () => !closed && full(),
    () => {
      engine.logger.debug(`[SSE] ${conn.clientId} is too slow (its stream stayed full); ending it`);
      end("too slow", "gateway");
      try {
        controller.error(new Error("too slow"));
      } catch {
        // Already closed.
      }
    },
  );
  /**
   * Room in the stream (it holds up to server.max_buffered_bytes the client has not read). A
   * stream that stays full for server.slow_client_timeout is ended: its client reads nothing.
   * EventSource comes back by itself, with Last-Event-ID.
   */
  const writable = () => !closed && slowClock.keepsUp();
  const sink: DeliverySink = {
    settled: () => writer.flushed(),
    deliver: (d) => {
      if (!writable()) return false;
      const id = multi ? `${d.endpoint}/${d.id}` : d.id;
      const text = formatEvent(id, d, multi);
      if (!write(text)) return false;
      writer.add({ id, endpoint: d.endpoint, text }, d.id);
      return true;
    },
    writable,
    close: (code, reason) => {
      if (code === CloseCode.TAKEN_OVER) {
        write(
          `id: ${TAKEN}${conn.epoch}\nevent: taken-over\ndata: ${
            JSON.stringify({
              code: "TAKEN_OVER",
              message: "session taken over by a newer connection",
              temporary: false,
            })
          }\n\n`,
        );
      }
      end(reason, "gateway");
      try {
        controller.close();
      } catch {
        // Already closed.
      }
    },
  };
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    cancel: () => end(),
  }, new ByteLengthQueuingStrategy({ highWaterMark: config.server.max_buffered_bytes }));

  // A full stream is not idle, and a ping would only grow it; the tick still starts its clock.
  const ping = scheduler.setInterval(
    () => writable() && write(": ping\n\n"),
    config.server.sse_ping_interval,
  );
  // retry: first, so a browser whose stream drops comes back in a second (its default is 3 s).
  write(`retry: ${config.server.sse_retry}\n\n`);
  const carried = new Set(endpoints);
  const greet = (recovery: Recovery) => {
    if (replay.evicted > 0) {
      recovery = {
        recovered: false,
        reason: recovery.reason ?? "dropped",
        lost: { ...recovery.lost, "sse-replay": replay.evicted },
      };
    }
    write(
      `event: welcome\ndata: ${
        JSON.stringify({ clientId: conn.clientId, resumed: conn.resumed, ...recovery, endpoints })
      }\n\n`,
    );
    // What the earlier stream wrote after Last-Event-ID, again, as it was (same ids), before
    // anything new. Events of endpoints this stream does not carry wait in the log.
    for (const event of replay.events) if (carried.has(event.endpoint)) write(event.text);
  };
  const params = queryParams(c);
  /**
   * Binds one endpoint (or resumes its consumer, if that failed at open). A temporary failure (a
   * broker down) gets one `error` event and is retried in place, 1 s doubling to 30 s, until the
   * binding is in place or the stream ends: ending the stream instead would have EventSource
   * come back every `retry:` (1 s) for as long as the broker is down, each time a new request.
   */
  const bind = async (endpoint: string) => {
    let delay = RETRY_FIRST_MS;
    for (let attempt = 1; !closed; attempt++) {
      try {
        await conn.subscribe(endpoint, params);
        if (attempt > 1) {
          engine.logger.info(`[SSE] ${conn.clientId} bound to ${endpoint} after ${attempt} attempts`);
        }
        write(`event: subscribed\ndata: ${JSON.stringify({ endpoint })}\n\n`);
        return;
      } catch (error) {
        const e = GatewayError.from(error);
        if (closed) return;
        if (attempt === 1) write(errorEvent(e));
        if (!e.temporary) return;
        const line =
          `[SSE] Binding ${conn.clientId} to ${endpoint} failed; retrying in ${delay} ms: ${e.message}`;
        // Once a stream at info (the endpoint reports its broker's outage itself), then debug.
        if (attempt === 1) engine.logger.info(line);
        else engine.logger.debug(line);
      }
      try {
        await scheduler.sleep(delay, ended.signal);
      } catch {
        return;
      }
      delay = nextRetry(delay);
    }
  };
  void (async () => {
    for (const e of await conn.open(sink, greet)) write(errorEvent(e));
    // The welcome goes out before the bindings are made (deliveries of a resumed session follow
    // it at once); `subscribed` says when an endpoint's binding is in place, so a client knows
    // from when on a message published to it reaches this stream (a new binding starts at the
    // broker's end, e.g. a Kafka topic's). One endpoint's outage does not hold up the others'.
    await Promise.all(endpoints.map(bind));
  })().catch((error) => engine.logger.error(`[SSE] Opening ${conn.clientId} failed`, error));

  return new Response(body, {
    headers: {
      "Content-Type": "text/event-stream",
      "Cache-Control": "no-cache",
      "Connection": "keep-alive",
      "X-Accel-Buffering": "no",
      [CLIENT_ID_HEADER]: conn.clientId,
    },
  });
}

/** One delivery as an SSE event with the stream's `id:` (endpoint-qualified on a multi-endpoint stream). */
function formatEvent(id: string, d: Delivery, multi: boolean): string {
  if (multi) return `id: ${id}\nevent: message\ndata: ${messageFrame(d)}\n\n`;
  const { text, json } = d.prepared;
  const event = text === undefined ? "message-base64" : "message";
  // Without text, json is the base64 in quotes.
  const lines = (text ?? json.slice(1, -1)).split(/\r\n|\r|\n/).map((l) => `data: ${l}`).join("\n");
  return `id: ${id}\nevent: ${event}\n${lines}\n\n`;
}

function errorEvent(e: GatewayError): string {
  return `event: error\ndata: ${
    JSON.stringify({ code: e.code, message: e.message, temporary: e.temporary })
  }\n\n`;
}
