/**
 * A Server-Sent Events test client over fetch: parses the stream into events.
 */

export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

export class SseClient {
  events: SseEvent[] = [];
  comments: string[] = [];
  status = 0;
  headers = new Headers();
  /** The body the server answered, when it was not a stream (an error). */
  body?: string;
  /** Set once the server ended the stream (or it broke). */
  ended = false;
  /** The last `retry:` field, in ms. */
  retry?: number;
  #controller = new AbortController();
  #done?: Promise<void>;
  #reader?: ReadableStreamDefaultReader<Uint8Array>;

  static async open(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const client = new SseClient();
    const response = await fetch(url, { headers, signal: client.#controller.signal });
    client.status = response.status;
    client.headers = response.headers;
    if (response.ok && response.body) client.#done = client.#read(response.body);
    else client.body = await response.text();
    return client;
  }

  async #read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = "";
    const reader = this.#reader = body.getReader();
    try {
      for (;;) {
        const { value: chunk, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          this.#parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch {
      // Aborted by close().
    }
    this.ended = true;
  }

  #parse(block: string): void {
    const event: SseEvent = { event: "message", data: "" };
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) this.comments.push(line.slice(1).trim());
      else if (line.startsWith("id: ")) event.id = line.slice(4);
      else if (line.startsWith("retry: ")) this.retry = Number(line.slice(7));
      else if (line.startsWith("event: ")) event.event = line.slice(7);
      else if (line.startsWith("data: ")) data.push(line.slice(6));
    }
    if (data.length === 0 && event.id === undefined) return;
    event.data = data.join("\n");
    this.events.push(event);
  }

  async until(check: () => boolean, timeoutMs = 10_000, what = "an event"): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what}; events: ${JSON.stringify(this.events.slice(-5))}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async close(): Promise<void> {
    this.#controller.abort();
    // Deno's fetch does not always end a body that was idle for long on abort alone.
    await this.#reader?.cancel().catch(() => {});
    await this.#done;
  }
}
