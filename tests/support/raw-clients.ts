/**
 * Clients that misbehave at the byte level, for the limits suite, over plain TCP so they do
 * exactly what a hostile client does on either runtime: a WebSocket that stops reading (so the
 * gateway's send buffer fills) and parses what it finally reads, or sends frames no runtime's
 * client API would (text that is not UTF-8), an HTTP upload that never ends,
 * connections that never finish their request headers; and the gateway process's memory.
 */
import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import type { Socket } from "node:net";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resident set size of a process in bytes (Linux /proc). */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(status.match(/VmRSS:\s+(\d+) kB/)![1]) * 1024;
}

export const MiB = 1024 * 1024;

/** Samples a process's RSS every `everyMs` until `stop()`, which returns the first and largest. */
export function sampleRss(pid: number, everyMs = 25): { stop(): { before: number; peak: number } } {
  const before = rssOf(pid);
  let peak = before;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssOf(pid));
    } catch {
      // The process is gone; the test says so.
    }
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, rssOf(pid));
      return { before, peak };
    },
  };
}

/** Opens a TCP connection to `url`'s host and port. */
function tcp(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => resolve(socket));
    socket.once("error", reject);
  });
}

/** A client-to-server WebSocket frame (masked, as the protocol requires). */
export function clientFrame(payload: Uint8Array, opcode = 0x1): Uint8Array {
  const length = payload.length;
  const head = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.alloc(head + 4 + length);
  frame[0] = 0x80 | opcode;
  if (head === 2) frame[1] = 0x80 | length;
  else if (head === 4) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  frame.set(mask, head);
  for (let i = 0; i < length; i++) frame[head + 4 + i] = payload[i] ^ mask[i & 3];
  return frame;
}

/**
 * A WebSocket over plain TCP that reads only when told to: while it does not, what the gateway
 * sends piles up in the kernel's buffers and then in the gateway's own.
 */
export class RawWebSocket {
  /** Frames read (after `resume`), and the server's close frame if one came. */
  frames = 0;
  closeFrame?: { code: number; reason: string };
  /** When the connection ended (the server's FIN or reset, or a failed write), ms since open. */
  endedAfterMs?: number;
  /** Why a write failed (the server had gone): EPIPE, ECONNRESET. */
  writeError?: string;
  /** The text frames read, with `resume({ keepTexts: true })`. */
  readonly texts: string[] = [];
  readonly #socket: Socket;
  readonly #opened = performance.now();
  #buffer = Buffer.alloc(0);
  #keepTexts = false;
  /** Woken on every read and at the end (until). */
  readonly #waiters = new Set<() => void>();

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("error", (error: NodeJS.ErrnoException) => {
      this.writeError ??= error.code ?? error.message;
      this.#ended();
    });
    socket.on("close", () => this.#ended());
    socket.on("end", () => this.#ended());
  }

  /** Opens `url` (`ws://host:port/path?query`) and completes the handshake; reads nothing after. */
  static async open(url: string): Promise<RawWebSocket> {
    const socket = await tcp(url);
    const { host, pathname, search } = new URL(url);
    socket.write(
      `GET ${pathname}${search} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    const client = new RawWebSocket(socket);
    await new Promise<void>((resolve, reject) => {
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        socket.off("data", onData);
        socket.pause();
        const status = head.subarray(0, head.indexOf("\r\n")).toString();
        if (!status.includes(" 101 ")) return reject(new Error(`upgrade refused: ${status}`));
        client.#buffer = head.subarray(end + 4);
        resolve();
      };
      socket.on("data", onData);
    });
    return client;
  }

  get ended(): boolean {
    return this.endedAfterMs !== undefined;
  }

  /** The code of the server's close frame, if one came. */
  get closeCode(): number | undefined {
    return this.closeFrame?.code;
  }

  /**
   * Sends one masked frame with `opcode` (1 text, 2 binary) and the bytes as they are, valid
   * UTF-8 or not; does not wait for the socket to take it.
   */
  sendFrame(opcode: number, payload: Uint8Array): void {
    if (!this.ended) this.#socket.write(clientFrame(payload, opcode));
  }

  /** Waits (reading, after `resume`) until `check` holds or `ms` passed; whether it held. */
  async until(check: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!check() && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.#waiters.delete(done);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(done, deadline - Date.now());
        this.#waiters.add(done);
      });
    }
    return check();
  }

  /** Sends a text frame; resolves once the socket takes more (false if the connection is gone). */
  async send(text: string): Promise<boolean> {
    if (this.ended) return false;
    return await this.write(clientFrame(new TextEncoder().encode(text)), 60_000) === "taken";
  }

  /**
   * Writes bytes as they are (frames built with `clientFrame`). "taken" once the socket takes
   * more, "stalled" when it takes nothing more for `stallMs` (the gateway stopped reading),
   * "gone" when the connection is.
   */
  async write(bytes: Uint8Array, stallMs: number): Promise<"taken" | "stalled" | "gone"> {
    if (this.ended) return "gone";
    if (this.#socket.write(bytes)) return "taken";
    const outcome = await new Promise<"taken" | "stalled">((resolve) => {
      const settle = (how: "taken" | "stalled") => {
        clearTimeout(timer);
        this.#socket.off("drain", taken).off("close", taken);
        resolve(how);
      };
      const taken = () => settle("taken");
      const timer = setTimeout(() => settle("stalled"), stallMs);
      this.#socket.on("drain", taken).on("close", taken);
    });
    return this.ended ? "gone" : outcome;
  }

  /** Starts reading: counts frames, keeps the close frame and, with `keepTexts`, the text frames. */
  resume(options: { keepTexts?: boolean } = {}): void {
    this.#keepTexts = options.keepTexts ?? false;
    this.#socket.on("data", (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#parse();
      this.#wake();
    });
    this.#parse();
    this.#socket.resume();
  }

  /**
   * Waits until the connection ended or the server's close frame came, for at most `timeoutMs`;
   * whether one did.
   */
  async waitEnded(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended && !this.closeFrame && Date.now() < deadline) await sleep(20);
    return this.ended || this.closeFrame !== undefined;
  }

  destroy(): void {
    this.#socket.destroy();
  }

  #ended(): void {
    this.endedAfterMs ??= Math.round(performance.now() - this.#opened);
    this.#wake();
  }

  #wake(): void {
    for (const waiter of this.#waiters) waiter();
  }

  #parse(): void {
    for (;;) {
      const b = this.#buffer;
      if (b.length < 2) return;
      let length = b[1] & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (b.length < 4) return;
        length = b.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (b.length < 10) return;
        length = Number(b.readBigUInt64BE(2));
        offset = 10;
      }
      if (b.length < offset + length) return;
      const payload = b.subarray(offset, offset + length);
      if ((b[0] & 0x0f) === 0x1 && this.#keepTexts) this.texts.push(payload.toString());
      if ((b[0] & 0x0f) === 0x8 && !this.closeFrame) {
        this.closeFrame = {
          code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005,
          reason: payload.subarray(2).toString(),
        };
        // Answered as a client does, which completes the close.
        if (!this.ended) this.#socket.write(clientFrame(payload.subarray(0, 2), 0x8));
      }
      this.frames++;
      this.#buffer = b.subarray(offset + length);
    }
  }
}

export interface UploadResult {
  status?: number;
  body?: string;
  /** Body bytes written before the answer came (or the connection ended). */
  sent: number;
  ms: number;
  error?: string;
}

/**
 * POSTs a body of `bytes` (chunked, or with its Content-Length when `declared`) to `url`, in
 * 64 KiB chunks as fast as the gateway takes them, and stops at the first answer: a gateway that
 * refuses early is not made to read the rest.
 */
export async function upload(url: string, bytes: number, declared = false): Promise<UploadResult> {
  const started = performance.now();
  const socket = await tcp(url);
  const { host, pathname, search } = new URL(url);
  socket.write(
    `POST ${pathname}${search} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/octet-stream\r\n` +
      (declared ? `Content-Length: ${bytes}\r\n\r\n` : "Transfer-Encoding: chunked\r\n\r\n"),
  );
  const chunk = Buffer.alloc(64 * 1024, "x");
  const framed = declared
    ? chunk
    : Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n")]);
  let sent = 0;
  let answer = "";
  let answered = false;
  let gone: string | undefined;
  const result = new Promise<UploadResult>((resolve) => {
    const finish = () =>
      resolve({
        ...parseAnswer(answer),
        sent,
        ms: Math.round(performance.now() - started),
        ...(answered ? {} : { error: gone ?? "no answer" }),
      });
    socket.on("data", (data: Buffer) => {
      answer += data.toString();
      if (!complete(answer)) return;
      answered = true;
      socket.destroy();
      finish();
    });
    socket.on("error", (error: NodeJS.ErrnoException) => gone ??= error.code ?? error.message);
    socket.on("close", finish);
  });
  while (sent < bytes && !answered && gone === undefined && !socket.destroyed) {
    sent += chunk.length;
    if (!socket.write(framed)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          socket.off("drain", done).off("close", done);
          resolve();
        };
        socket.on("drain", done).on("close", done);
      });
    }
  }
  if (!answered && !socket.destroyed && !declared) socket.write("0\r\n\r\n");
  return result;
}

/** An HTTP answer with its whole Content-Length body. */
function complete(text: string): boolean {
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return false;
  const length = Number(text.slice(0, end).match(/content-length:\s*(\d+)/i)?.[1] ?? 0);
  return new TextEncoder().encode(text.slice(end + 4)).length >= length;
}

function parseAnswer(text: string): { status?: number; body?: string } {
  const status = text.match(/^HTTP\/1\.1 (\d{3})/)?.[1];
  const end = text.indexOf("\r\n\r\n");
  return status ? { status: Number(status), body: end >= 0 ? text.slice(end + 4) : "" } : {};
}

/**
 * Opens `count` connections that each send `partial` (part of a request line) and then
 * nothing. `closedAfterMs[i]` is set when the gateway closed connection i.
 */
export async function halfRequests(
  url: string,
  count: number,
  partial = "GET /heal",
): Promise<{ closedAfterMs: Array<number | undefined>; destroy(): void }> {
  const sockets = await Promise.all(Array.from({ length: count }, () => tcp(url)));
  const started = performance.now();
  const closedAfterMs: Array<number | undefined> = new Array(count).fill(undefined);
  sockets.forEach((socket, i) => {
    const closed = () => closedAfterMs[i] ??= Math.round(performance.now() - started);
    socket.on("close", closed);
    socket.on("end", closed);
    socket.on("error", closed);
    socket.on("data", () => {});
    socket.write(partial);
  });
  return { closedAfterMs, destroy: () => sockets.forEach((s) => s.destroy()) };
}

/**
 * A GET (an SSE stream) whose answer is not read until `resume()`: what the gateway writes
 * piles up as it does for a client that stopped reading.
 */
export async function stalledGet(url: string): Promise<{
  resume(): void;
  waitEnded(timeoutMs: number): Promise<boolean>;
  destroy(): void;
}> {
  const socket = await tcp(url);
  const { host, pathname, search } = new URL(url);
  let ended = false;
  const end = () => ended = true;
  socket.on("end", end);
  socket.on("close", end);
  socket.on("error", end);
  socket.pause();
  socket.write(`GET ${pathname}${search} HTTP/1.1\r\nHost: ${host}\r\nAccept: text/event-stream\r\n\r\n`);
  return {
    resume: () => {
      socket.on("data", () => {});
      socket.resume();
    },
    async waitEnded(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (!ended && Date.now() < deadline) await sleep(20);
      return ended;
    },
    destroy: () => socket.destroy(),
  };
}
