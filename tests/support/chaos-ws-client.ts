/** The chaos tests' multiplexed WebSocket client, with or without end-to-end acks (`ack=1`). */
import { ChaosClient, sleep } from "./chaos-client.ts";
import type { ChaosClientOptions } from "./chaos-client.ts";

interface MessageFrame {
  type: "message";
  endpoint: string;
  id: string;
  data: { n?: number };
  redelivered?: boolean;
}

/**
 * The multiplexed WebSocket (`/ws?clientId=X`, with `&ack=1` for end-to-end acks). With acks,
 * the latest delivery id handled is acknowledged (cumulatively) every `ackEveryMs`, so many
 * clients at a high rate do not flood the gateway with one ack per message.
 */
export class WsChaosClient extends ChaosClient {
  #ws?: WebSocket;
  #welcomed = false;
  #receipts = new Map<string, () => void>();
  #subscriptions = 0;

  constructor(options: ChaosClientOptions & { ack: boolean; ackEveryMs?: number }) {
    super(options);
    this.ack = options.ack;
    this.ackEveryMs = options.ackEveryMs ?? 20;
  }

  readonly ack: boolean;
  readonly ackEveryMs: number;

  get live(): boolean {
    return this.#welcomed && this.#ws?.readyState === WebSocket.OPEN;
  }

  protected connection(bound: () => void, fail: (error: Error) => void): Promise<void> {
    const { clientId, endpoint } = this.options;
    const url = `${this.base.replace(/^http/, "ws")}/ws?clientId=${encodeURIComponent(clientId)}${
      this.ack ? "&ack=1" : ""
    }`;
    return new Promise<void>((resolve, reject) => {
      const ws = this.#ws = new WebSocket(url);
      let opened = false;
      let latest: string | undefined;
      let acked: string | undefined;
      const acker = this.ack
        ? setInterval(() => {
          if (latest === undefined || latest === acked || ws.readyState !== WebSocket.OPEN) return;
          ws.send(JSON.stringify({ type: "ack", endpoint, id: latest }));
          acked = latest;
        }, this.ackEveryMs)
        : undefined;
      const send = (frame: unknown) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
      };
      ws.onopen = () => {
        opened = true;
        this.connections++;
      };
      ws.onmessage = (event) => {
        if (typeof event.data !== "string") return;
        const frame = JSON.parse(event.data) as { type: string } & Record<string, unknown>;
        switch (frame.type) {
          case "welcome": {
            if (this.ack && frame.ack !== true) {
              fail(new Error(`asked for acks (ack=1), but the welcome says ${event.data}`));
              ws.close(1000, "no acks");
              break;
            }
            this.welcome(frame);
            if (frame.resumed === false) {
              const id = `sub-${++this.#subscriptions}`;
              this.#receipts.set(id, () => {
                this.#welcomed = true;
                bound();
              });
              send({ type: "subscribe", endpoint, id });
            } else {
              this.#welcomed = true;
              bound();
            }
            break;
          }
          case "message": {
            const m = frame as unknown as MessageFrame;
            if (m.endpoint !== endpoint || typeof m.data?.n !== "number") break;
            this.record(m.data.n, m.redelivered === true, m.id);
            latest = m.id;
            break;
          }
          case "receipt": {
            const done = this.#receipts.get(frame.id as string);
            this.#receipts.delete(frame.id as string);
            done?.();
            break;
          }
          case "error":
            this.errors.push(`${frame.code}: ${frame.message}`);
            break;
        }
      };
      ws.onclose = () => {
        clearInterval(acker);
        this.#welcomed = false;
        if (opened) resolve();
        else reject(new Error(`WebSocket ${url} did not open`));
      };
    });
  }

  protected async unbindAndClose(): Promise<void> {
    const ws = this.#ws!;
    const id = `unsub-${this.clientId}`;
    const answered = new Promise<void>((resolve) => this.#receipts.set(id, resolve));
    try {
      ws.send(JSON.stringify({ type: "unsubscribe", endpoint: this.options.endpoint, id }));
      await Promise.race([answered, sleep(5000)]);
      ws.close(1000, "done");
    } catch {
      // Closed under us: the window and the cleanup worker end the binding instead.
    }
  }
}

/**
 * Takes the session over with a WebSocket and unsubscribes `endpoint` there, which ends the
 * broker session: what an SSE client, which has no frame for it, does to end its binding.
 */
export async function unsubscribeOverWs(base: string, clientId: string, endpoint: string): Promise<void> {
  const ws = new WebSocket(`${base.replace(/^http/, "ws")}/ws?clientId=${encodeURIComponent(clientId)}`);
  const id = `unsub-${clientId}`;
  try {
    await Promise.race([
      new Promise<void>((resolve, reject) => {
        ws.onopen = () => ws.send(JSON.stringify({ type: "unsubscribe", endpoint, id }));
        ws.onmessage = (event) => {
          const frame = JSON.parse(String(event.data)) as { type: string; id?: string };
          if (frame.type === "receipt" && frame.id === id) resolve();
        };
        ws.onclose = () => reject(new Error("closed before the receipt"));
      }),
      sleep(5000),
    ]);
  } catch {
    // The window and the cleanup worker end the binding instead.
  } finally {
    ws.close(1000, "done");
  }
}
