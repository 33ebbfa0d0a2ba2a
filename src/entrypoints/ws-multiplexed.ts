/**
 * The multiplexed WebSocket protocol (`GET {path}`, DESIGN.md section 7): JSON frames (publish,
 * subscribe, unsubscribe, ack, ping, leave), each answered by a receipt or an error frame.
 */
import type { Recovery } from "../core/connection.ts";
import { CloseCode, GatewayError } from "../core/errors.ts";
import { messageFrame } from "../core/message-frame.ts";
import { encodeData } from "../core/payload.ts";
import type { ClientFrame, ServerFrame } from "../core/protocol.ts";
import type { Delivery, DeliverySink } from "../core/sink.ts";
import { Socket } from "./ws-socket.ts";

export class MultiplexedSocket extends Socket {
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

function metaOf(receipt: unknown): { meta?: Record<string, string | number> } {
  const meta = (receipt as { meta?: Record<string, string | number> } | undefined)?.meta;
  return meta ? { meta } : {};
}
