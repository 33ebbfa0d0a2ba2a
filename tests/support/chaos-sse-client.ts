/** The chaos tests' SSE client: a stream over fetch that comes back with `Last-Event-ID`. */
import { ChaosClient } from "./chaos-client.ts";
import type { ChaosCopy } from "./chaos-client.ts";
import { unsubscribeOverWs } from "./chaos-ws-client.ts";
import { parseSseBlock, sseBlocks } from "./sse-client.ts";
import type { SseEvent } from "./sse-client.ts";

/**
 * An SSE stream over fetch (not EventSource: both runtimes' fetch can read a stream),
 * `GET /sse/<endpoint>?clientId=X`, coming back after each cut with the header
 * `Last-Event-ID: <id of the last message event received>`, as EventSource does. The stream
 * binds on connect, so a fresh session needs nothing more. SSE events carry no `redelivered`
 * flag: a copy that came again from the replay log has the id of its first copy.
 */
export class SseChaosClient extends ChaosClient {
  /** The id of the last message event received (any connection). */
  lastEventId?: string;
  /** Connections that sent `Last-Event-ID`. */
  withLastEventId = 0;
  /**
   * Message events that came from the replay log: on each connection, those with an epoch (the
   * id's `<epoch>.` part) below that of the connection's own newest event. A connection cut
   * before anything new came is not counted, so this is a lower bound.
   */
  replayed = 0;
  /** This connection's message events, with their ids' epochs. */
  #arrived: Array<{ copy: ChaosCopy; epoch: number }> = [];
  #controller?: AbortController;
  #streaming = false;
  #welcomed = false;
  #unbinding?: Promise<void>;
  /** Where the latest connection went. */
  #base = "";

  get live(): boolean {
    return this.#streaming && this.#welcomed;
  }

  protected async connection(bound: () => void, _fail: (error: Error) => void): Promise<void> {
    const { clientId, endpoint } = this.options;
    const base = this.#base = this.base;
    const url = `${base}/sse/${endpoint}?clientId=${encodeURIComponent(clientId)}`;
    const headers: Record<string, string> = {};
    if (this.lastEventId !== undefined) headers["Last-Event-ID"] = this.lastEventId;
    const controller = this.#controller = new AbortController();
    const response = await fetch(url, { headers, signal: controller.signal });
    if (!response.ok || !response.body) {
      const body = await response.text().catch(() => "");
      this.errors.push(`HTTP ${response.status}: ${body}`);
      throw new Error(`${url} answered ${response.status}`);
    }
    this.connections++;
    if (this.lastEventId !== undefined) this.withLastEventId++;
    this.#streaming = true;
    this.#arrived = [];
    const reader = response.body.getReader();
    try {
      for await (const block of sseBlocks(reader)) {
        const { event } = parseSseBlock(block);
        if (event) this.#handle(event, bound);
      }
    } catch {
      // Cut (reset), or aborted by finish: the loop comes back. What arrived after the last
      // full event is half an event: dropped, as EventSource does.
    } finally {
      this.#streaming = false;
      this.#welcomed = false;
      const newest = Math.max(...this.#arrived.map((a) => a.epoch));
      for (const a of this.#arrived) {
        if (a.epoch >= newest) continue;
        a.copy.replayed = true;
        this.replayed++;
      }
      await this.#unbinding;
    }
  }

  #handle(event: SseEvent, bound: () => void): void {
    switch (event.event) {
      case "welcome": {
        this.welcome(JSON.parse(event.data));
        this.#welcomed = true;
        break;
      }
      // Not the welcome: it goes out before the binding is made, and what is published before
      // a new binding is in place does not reach the stream (docs/wire-protocol.md "SSE").
      case "subscribed":
        bound();
        break;
      case "message": {
        const data = JSON.parse(event.data) as { n?: number };
        if (typeof data?.n !== "number" || event.id === undefined) break;
        const copy = this.record(data.n, false, event.id);
        this.#arrived.push({ copy, epoch: Number(event.id.split(".")[0]) });
        this.lastEventId = event.id;
        break;
      }
      case "taken-over":
        // Only finish's own WebSocket takes the session while a stream is up.
        if (!this.finishing) this.errors.push(`taken-over: ${event.data}`);
        break;
      case "error": {
        const e = JSON.parse(event.data) as { code?: string; message?: string };
        this.errors.push(`${e.code}: ${e.message}`);
        break;
      }
    }
  }

  protected unbindAndClose(): Promise<void> {
    // On the node the stream is on; the WebSocket's takeover ends the stream.
    this.#unbinding ??= unsubscribeOverWs(this.#base, this.clientId, this.options.endpoint)
      .finally(() => this.#controller?.abort());
    return this.#unbinding;
  }
}
