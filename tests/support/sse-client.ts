/**
 * A Server-Sent Events test client over fetch: parses the stream into events. The parser
 * (sseBlocks, parseSseBlock) is the one every test client uses (chaos-clients.ts too); the client
 * library keeps its own in client/src/sse-client.js.
 */

export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/** What one block of an SSE stream (the text between blank lines) says. */
export interface SseBlock {
  /** Undefined for a block of comments or `retry:` alone. */
  event?: SseEvent;
  /** Comment lines (`: ping`), without the colon, trimmed. */
  comments: string[];
  /** A `retry:` field, in ms. */
  retry?: number;
}

/**
 * Parses one block, as EventSource does: `field: value` (one space after the colon dropped), a
 * line without a colon is a field with an empty value, `data` lines are joined with newlines.
 */
export function parseSseBlock(block: string): SseBlock {
  const event: SseEvent = { event: "message", data: "" };
  const data: string[] = [];
  const parsed: SseBlock = { comments: [] };
  for (const line of block.split("\n")) {
    if (line === "") continue;
    if (line.startsWith(":")) {
      parsed.comments.push(line.slice(1).trim());
      continue;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id") event.id = value;
    else if (field === "event") event.event = value;
    else if (field === "data") data.push(value);
    else if (field === "retry" && /^\d+$/.test(value)) parsed.retry = Number(value);
  }
  if (data.length > 0 || event.id !== undefined) parsed.event = { ...event, data: data.join("\n") };
  return parsed;
}

/**
 * The blocks of an SSE stream as they come, CR LF and CR taken as LF. What follows the last blank
 * line when the stream ends is half a block: dropped, as EventSource does. A read that fails
 * (a cut, an abort) throws out of the loop.
 */
export async function* sseBlocks(reader: ReadableStreamDefaultReader<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    // A CR at the end may be the first half of a CR LF: kept until the next chunk says.
    const whole = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
    buffer = buffer.slice(0, whole).replace(/\r\n?/g, "\n") + buffer.slice(whole);
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      yield buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
    }
  }
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
    const reader = this.#reader = body.getReader();
    try {
      for await (const block of sseBlocks(reader)) {
        const { event, comments, retry } = parseSseBlock(block);
        this.comments.push(...comments);
        if (retry !== undefined) this.retry = retry;
        if (event) this.events.push(event);
      }
    } catch {
      // Aborted by close().
    }
    this.ended = true;
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
