/**
 * What a client can make the gateway hold (docs/configuration.md "Limits"), black-box under the runtime that
 * runs the tests: message sizes refused before buffering, HTTP bodies refused while they stream,
 * back-pressure on every frame (slow clients closed, not buffered without bound), connections
 * that never finish their request headers. Memory and latency figures are printed; assertions on
 * them are loose, since the machine is shared.
 *
 * What a runtime cannot do is registered as a `todo` test naming the limit, on that runtime.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { halfRequests, MiB, RawWebSocket, sampleRss, stalledGet, upload } from "../support/raw-clients.ts";
import { currentRuntime, ROOT, runArgs, runtimeBinary } from "../support/runtime.ts";
import { TestSocket } from "../support/ws-client.ts";

const MAX_MESSAGE = 65_536;
/** policy.max_message_bytes + 1 KiB for the envelope. */
const MAX_FRAME = MAX_MESSAGE + 1024;
const MAX_BUFFERED = 256 * 1024;
const SLOW_CLIENT_MS = 2000;

const CONFIG = `
server:
  host: 127.0.0.1
  port: 0
  idle_timeout: 30s
  header_timeout: 3s
  shutdown_timeout: 2s
  max_buffered_bytes: ${MAX_BUFFERED}
  slow_client_timeout: ${SLOW_CLIENT_MS}ms
session: { type: memory, reconnection_window: 5s, cleanup_interval: 1s }
log: { level: debug }
entrypoints:
  - { name: ws, type: websocket, path: /ws }
  - { name: sse, type: sse, path: /sse }
  - { name: http, type: http, path: /publish }
endpoints:
  - { name: chat, type: memory }
  - { name: rooms, type: memory, publish_topic: "room/{room}", subscribe_topic: "room/{room}" }
policy:
  max_message_bytes: ${MAX_MESSAGE}
  publish_bytes_per_second: 1000000000
  connections_per_second: 10000
`;

/** A publish rate the test client passes in its first batch, on however loaded a machine. */
const PUSHY_RATE = 20;
const PUSHY_CONFIG = CONFIG.replace("policy:\n", `policy:\n  publishes_per_second: ${PUSHY_RATE}\n`);

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
const report = (line: string) => console.log(`[limits] ${currentRuntime}: ${line}`);

/** Runs `fn` against a gateway of its own, so one test's memory does not hide another's. */
async function withGateway(fn: (gw: Gateway) => Promise<void>, config = CONFIG): Promise<void> {
  const gw = await startGateway(currentRuntime, config);
  try {
    await fn(gw);
  } finally {
    await gw.stop("SIGKILL");
  }
}

async function welcomed(gw: Gateway, clientId: string, path = "/ws"): Promise<TestSocket> {
  const socket = await TestSocket.open(`${gw.ws}${path}?clientId=${clientId}`);
  if (path === "/ws") await socket.next((f) => f.type === "welcome");
  return socket;
}

/** Pings from each socket in turn, one at a time, until `done()`; when each was sent, and its round trip in ms. */
async function pingSamples(
  sockets: TestSocket[],
  done: () => boolean,
): Promise<Array<{ at: number; rtt: number }>> {
  const samples: Array<{ at: number; rtt: number }> = [];
  await Promise.all(sockets.map(async (socket) => {
    let pongs = 0;
    socket.onFrame = (f) => (f as { type?: string }).type === "pong" && pongs++;
    while (!done()) {
      const expected = pongs + 1;
      const sent = performance.now();
      socket.send({ type: "ping" });
      await socket.until(() => pongs >= expected, 15_000, "a pong");
      samples.push({ at: sent, rtt: performance.now() - sent });
      await sleep(5);
    }
  }));
  return samples;
}

async function pingRoundTrips(sockets: TestSocket[], done: () => boolean): Promise<number[]> {
  return (await pingSamples(sockets, done)).map((s) => s.rtt);
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(sorted.length * p) - 1)] ?? 0;
};

test(`limits (${currentRuntime}): a WebSocket message past max_message_bytes + 1 KiB closes the socket with 1009; 20 sockets sending 2 MiB each`, () =>
  withGateway(async (gw) => {
    const sockets = await Promise.all(Array.from({ length: 20 }, (_, i) => welcomed(gw, unique(`big${i}`))));
    await sleep(300);
    const rss = sampleRss(gw.pid());
    const frame = "x".repeat(2 * MiB);
    for (const socket of sockets) socket.send(frame);
    const closes = await Promise.all(sockets.map((s) => s.closedBy(20_000)));
    await sleep(500);
    const { before, peak } = rss.stop();
    report(
      `20 sockets x 2 MiB frames: gateway RSS ${mib(before)} -> peak ${mib(peak)} (+${
        mib(peak - before)
      }); ` +
        `closes: ${[...new Set(closes.map((c) => `${c.code} "${c.reason}"`))].join(", ")}`,
    );
    for (const close of closes) assert.equal(close.code, 1009);
    // Bun and Node refuse the message as it arrives; Deno reads it whole first (see the todo below).
    if (currentRuntime !== "deno") assert.ok(peak - before < 20 * MiB, `RSS grew ${mib(peak - before)}`);
    // The gateway is fine, and so is a new client.
    const after = await welcomed(gw, unique("after"));
    after.send({ type: "ping" });
    await after.next((f) => f.type === "pong");
    await after.close();
  }));

if (currentRuntime === "deno") {
  test(
    "limits (deno): a WebSocket message past the limit is refused before it is buffered",
    { todo: "Deno.upgradeWebSocket has no maximum message size: Deno reads up to 64 MiB whole first" },
    () => {},
  );
}

test(`limits (${currentRuntime}): a payload past max_message_bytes inside the envelope gets TOO_LARGE and the socket goes on; raw sockets close with 1009`, () =>
  withGateway(async (gw) => {
    const socket = await welcomed(gw, unique("payload"));
    socket.send({ type: "publish", endpoint: "chat", data: "x".repeat(MAX_MESSAGE + 100), id: "big-1" });
    const error = await socket.next((f) => f.type === "error" && f.id === "big-1");
    assert.equal(error.code, "TOO_LARGE");
    socket.send({ type: "ping" });
    await socket.next((f) => f.type === "pong");
    socket.send("y".repeat(MAX_FRAME + 1));
    assert.equal((await socket.closedBy()).code, 1009);

    for (const size of [MAX_MESSAGE + 100, MAX_FRAME + 1]) {
      const raw = await welcomed(gw, unique("raw"), "/ws/chat");
      raw.send(new Uint8Array(size));
      const closed = await raw.closedBy();
      assert.equal(closed.code, 1009, `raw frame of ${size} bytes: ${JSON.stringify(closed)}`);
    }
    const raw = await welcomed(gw, unique("raw"), "/ws/chat");
    raw.send(new Uint8Array(MAX_MESSAGE));
    await sleep(300);
    assert.equal(raw.closed, undefined, "a raw frame of exactly max_message_bytes is taken");
    await raw.close();
  }));

test(`limits (${currentRuntime}): 8 parallel chunked HTTP bodies of 100 MiB are refused with 413 TOO_LARGE while they stream`, () =>
  withGateway(async (gw) => {
    const rss = sampleRss(gw.pid());
    const url = `${gw.http}/publish/chat`;
    const results = await Promise.all([
      ...Array.from({ length: 8 }, () => upload(url, 100 * MiB)),
      upload(url, 100 * MiB, true),
    ]);
    await sleep(300);
    const { before, peak } = rss.stop();
    report(
      `8 chunked + 1 declared 100 MiB uploads: gateway RSS ${mib(before)} -> peak ${mib(peak)} ` +
        `(+${mib(peak - before)}); answered after ${
          results.map((r) => `${mib(r.sent)}/${r.ms}ms`).join(", ")
        }`,
    );
    for (const result of results) {
      assert.ok(result.sent < 100 * MiB, `refused before the body was all sent: ${JSON.stringify(result)}`);
      // The gateway answers 413 and closes while the body is still coming. The server closing a
      // socket with unread bytes makes the kernel reset it, and a reset can discard the 413 still
      // unread at the client (seen under Bun, 1 upload in 9, once in several runs): that upload
      // then ends with EPIPE or ECONNRESET instead, refused early all the same.
      if (result.status === undefined && (result.error === "EPIPE" || result.error === "ECONNRESET")) {
        continue;
      }
      assert.equal(result.status, 413, JSON.stringify(result));
      assert.equal(JSON.parse(result.body!).code, "TOO_LARGE");
    }
    assert.ok(results.some((r) => r.status === 413), "the refusal is answered 413 TOO_LARGE");
    assert.ok(peak - before < 100 * 1000 * 1000, `RSS grew ${mib(peak - before)}`);
    // A body at the limit still goes through.
    const ok = await fetch(url, { method: "POST", body: "x".repeat(MAX_MESSAGE) });
    assert.equal(ok.status, 202, await ok.text());
  }));

test(`limits (${currentRuntime}): a client that publishes 100,000 times and never reads is closed; memory stays bounded, others are answered all along`, () =>
  withGateway(async (gw) => {
    const pingers = await Promise.all(
      Array.from({ length: 4 }, (_, i) => welcomed(gw, unique(`pinger${i}`))),
    );
    await pingRoundTrips(
      pingers,
      (() => {
        const until = Date.now() + 500;
        return () => Date.now() > until;
      })(),
    );
    const quiet = await (async () => {
      const until = Date.now() + 3000;
      return await pingRoundTrips(pingers, () => Date.now() > until);
    })();

    const rss = sampleRss(gw.pid());
    const flooder = spawn(
      runtimeBinary(currentRuntime),
      runArgs(currentRuntime, "tests/support/ws-flood.ts", [
        `${gw.ws}/ws?clientId=${unique("flood")}`,
        "100000",
        "chat",
      ]),
      { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
    );
    let output = "";
    let floodStarted = Infinity;
    flooder.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('"flooding"')) floodStarted = Math.min(floodStarted, performance.now());
    });
    const exited = new Promise<void>((resolve) => flooder.on("exit", () => resolve()));
    let exitedAt = Infinity;
    void exited.then(() => exitedAt = performance.now());
    // One series of pings from the flood's start until a second after the flooder is gone.
    const series = await pingSamples(pingers, () => performance.now() > exitedAt + 1000);
    const { before, peak } = rss.stop();
    const flood = JSON.parse(output.trim().split("\n").pop()!) as {
      sent: number;
      floodMs: number;
      stalled: boolean;
      ended: boolean;
      endedAfterMs?: number;
      writeError?: string;
      frames: number;
      closeFrame?: { code: number; reason: string };
    };
    // Pings sent while the gateway was taking the flood's frames (from the first until it
    // stopped taking them, and 100 ms more for what it had read by then), and in the second
    // after the flooder was gone.
    const floodEnd = floodStarted + flood.floodMs + 100;
    const loud = series.filter((s) => s.at >= floodStarted && s.at <= floodEnd).map((s) => s.rtt);
    const after = series.filter((s) => s.at > exitedAt).map((s) => s.rtt);
    const [p50q, p99q, p50l, p99l, p99a] = [
      percentile(quiet, 0.5),
      percentile(quiet, 0.99),
      percentile(loud, 0.5),
      percentile(loud, 0.99),
      percentile(after, 0.99),
    ];
    report(
      `flood: ${flood.sent} publishes sent in ${flood.floodMs} ms before the gateway ended it ` +
        `(${flood.stalled ? "it stopped reading them; then " : ""}${
          flood.closeFrame ? `close ${flood.closeFrame.code} "${flood.closeFrame.reason}"` : "no close frame"
        }` +
        `${flood.writeError ? `, ${flood.writeError}` : ""}; ${flood.frames} frames read after); ` +
        `gateway RSS ${mib(before)} -> peak ${mib(peak)} (+${mib(peak - before)})`,
    );
    report(
      `ping round trips of 4 other clients: p50 ${p50q.toFixed(2)} ms, p99 ${p99q.toFixed(2)} ms quiet ` +
        `(${quiet.length}); p50 ${p50l.toFixed(2)} ms, p99 ${
          p99l.toFixed(2)
        } ms during the flood (${loud.length}); ` +
        `p99 ratio ${(p99l / p99q).toFixed(1)}x; p99 ${p99a.toFixed(2)} ms in the second after`,
    );
    assert.ok(flood.ended, "the gateway ended the flooding client");
    // Far fewer answers than it asked for: the gateway stopped writing to it, not buffered them.
    assert.ok(flood.frames < 50_000, `it read ${flood.frames} frames`);
    // Closed for one of the policy's reasons (docs/configuration.md "Limits"), or its TCP connection cut.
    if (flood.closeFrame) {
      assert.equal(flood.closeFrame.code, 1008);
      assert.ok(
        ["too slow", "too many frames waiting", "RATE_LIMITED: kept publishing past its rate"].includes(
          flood.closeFrame.reason,
        ),
        flood.closeFrame.reason,
      );
    }
    assert.ok(peak - before < 64 * MiB, `RSS grew ${mib(peak - before)}`);
    // The others were answered all along (every ping within pingSamples' 15 s), during the flood
    // and in the second after. How quickly is a figure, reported above and written down in
    // docs/configuration.md ("Limits"), not asserted: a timing on a shared machine is not a test.
    assert.ok(loud.length > 0 && after.length > 0, `${loud.length} pings during, ${after.length} after`);
    for (const socket of pingers) await socket.close();
  }));

test(`limits (${currentRuntime}): a client that ignores RATE_LIMITED is closed with 1008; what it had answered stays answered`, () =>
  withGateway(async (gw) => {
    const clientId = unique("pushy");
    const socket = await welcomed(gw, clientId);
    // policy.publishes_per_second is PUSHY_RATE (bursts of twice that). Sent 100 at a time, each
    // batch once the last was answered: the first batch alone is past the burst and then past
    // the rate of refusals, however slowly a loaded machine answers, and it is one read for the
    // gateway, so nothing unread is left when it closes (a close with unread bytes resets the
    // connection, and the client loses what was in flight).
    const answered = () =>
      (socket.frames as Array<{ type: string }>).filter((f) => f.type === "receipt" || f.type === "error")
        .length;
    for (let sent = 0; sent < 10_000 && !socket.closed;) {
      for (const end = sent + 100; sent < end; sent++) {
        socket.send({ type: "publish", endpoint: "chat", data: sent, id: `p${sent}` });
      }
      await socket.until(() => socket.closed !== undefined || answered() >= sent, 10_000, "answers");
    }
    const closed = await socket.closedBy(15_000);
    // Deno, closing a socket whose client frames are still coming in, drops the TCP connection
    // right after its close frame, and the client's kernel discards that frame with the reset
    // (code 0 or 1006 then); the refusals below tell why it was closed.
    if (currentRuntime === "bun" || (closed.code !== 0 && closed.code !== 1006)) {
      assert.deepEqual(closed, { code: 1008, reason: "RATE_LIMITED: kept publishing past its rate" });
    }
    const frames = socket.frames as Array<
      { type: string; id?: string; code?: string; retry_after_ms?: number }
    >;
    const receipts = frames.filter((f) => f.type === "receipt");
    const refusals = frames.filter((f) => f.type === "error");
    report(
      `${receipts.length} receipts, ${refusals.length} RATE_LIMITED, then closed ${JSON.stringify(closed)}`,
    );
    assert.ok(receipts.length >= 2 * PUSHY_RATE, `${receipts.length} receipts`);
    assert.ok(
      refusals.every((f) => f.code === "RATE_LIMITED" && f.retry_after_ms! > 0),
      JSON.stringify(refusals[0]),
    );
    // Closed on the refusal past publishes_per_second in a second (or later, if tokens that came
    // back in the meantime spread the refusals over more than a second).
    assert.ok(refusals.length >= PUSHY_RATE, `${refusals.length} refusals`);
    // The session is kept: the client comes back and is heard again.
    const back = await welcomed(gw, clientId);
    assert.equal((back.frames[0] as { resumed?: boolean }).resumed, true);
    back.send({ type: "ping" });
    await back.next((f) => f.type === "pong");
    await back.close();
  }, PUSHY_CONFIG));

test(`limits (${currentRuntime}): a WebSocket or SSE client whose send buffer stays full for slow_client_timeout is closed`, () =>
  withGateway(async (gw) => {
    const [wsRoom, sseRoom] = [unique("ws-room"), unique("sse-room")];
    const ws = await RawWebSocket.open(`${gw.ws}/ws?clientId=${unique("stuck")}`);
    await ws.send(
      JSON.stringify({ type: "subscribe", endpoint: "rooms", params: { room: wsRoom }, id: "s1" }),
    );
    const sse = await stalledGet(`${gw.http}/sse/rooms?room=${sseRoom}&clientId=${unique("stuck-sse")}`);
    await sleep(500);
    // Enough to fill the kernel's socket buffers and then the gateway's own, for each.
    const payload = JSON.stringify({ pad: "p".repeat(60_000) });
    const started = performance.now();
    for (let i = 0; i < 200; i += 10) {
      await Promise.all(Array.from({ length: 10 }, async (_, j) => {
        for (const room of [wsRoom, sseRoom]) {
          const r = await fetch(`${gw.http}/publish/rooms?room=${room}&clientId=pub-${i + j}`, {
            method: "POST",
            body: payload,
          });
          assert.equal(r.status, 202, await r.text());
        }
      }));
    }
    const published = performance.now() - started;
    // Neither reads anything until after the slow-client timeout (and a margin).
    await sleep(SLOW_CLIENT_MS + 3000);
    ws.resume();
    sse.resume();
    const [wsEnded, sseEnded] = await Promise.all([ws.waitEnded(10_000), sse.waitEnded(10_000)]);
    report(
      `stuck clients after ${(published / 1000).toFixed(1)} s of publishing: WebSocket ` +
        `${
          wsEnded
            ? `ended (${
              ws.closeFrame ? `close ${ws.closeFrame.code} "${ws.closeFrame.reason}"` : "no close frame"
            })`
            : "still open"
        }, ` +
        `SSE ${sseEnded ? "ended" : "still open"}`,
    );
    ws.destroy();
    sse.destroy();
    assert.ok(wsEnded, "the WebSocket client was closed");
    if (ws.closeFrame) assert.deepEqual(ws.closeFrame, { code: 1008, reason: "too slow" });
    assert.ok(sseEnded, "the SSE stream was ended");
  }));

test(`limits (${currentRuntime}): a peer that answers no ping (half-open) is dropped (server.idle_timeout), a live one kept`, async () => {
  const gw = await startGateway(currentRuntime, CONFIG.replace("idle_timeout: 30s", "idle_timeout: 2s"));
  try {
    // Reads what the gateway sends (the welcome, its pings) and answers nothing, as a peer that
    // is gone does; a live client's runtime answers the pings by itself.
    const silent = await RawWebSocket.open(`${gw.ws}/ws?clientId=${unique("silent")}`);
    silent.resume();
    const live = await welcomed(gw, unique("live"));
    // Deno pings after idle_timeout and closes when no pong comes within it again; Bun closes
    // after idle_timeout without a frame; Node's adapter pings each half of it.
    assert.ok(await silent.until(() => silent.ended, 15_000), "the silent peer's connection ended");
    report(
      `a silent peer (idle_timeout 2 s) was dropped after ${(silent.endedAfterMs! / 1000).toFixed(1)} s`,
    );
    // As long again (up to 4 s) as the silent one took to be dropped: the live one is kept.
    await sleep(Math.min(silent.endedAfterMs!, 4000));
    live.send({ type: "ping" });
    await live.next((f) => f.type === "pong");
    assert.equal(live.closed, undefined, "the live client (its runtime answers pings) is still connected");
    await live.close();
  } finally {
    await gw.stop("SIGKILL");
  }
});

test(`limits (${currentRuntime}): 200 connections that never finish their request headers, while a normal client is served`, () =>
  withGateway(async (gw) => {
    const half = await halfRequests(gw.http, 200);
    // Bun drops them at about 10 s (its own, fixed), Node after server.header_timeout (3 s here);
    // Deno never does (see the todo below).
    const waitMs = { bun: 16_000, node: 10_000, deno: 6_000 }[currentRuntime];
    const started = Date.now();
    const served: number[] = [];
    while (Date.now() - started < waitMs) {
      const t = performance.now();
      const r = await fetch(`${gw.http}/healthz`);
      assert.equal(r.status, 200);
      await r.body?.cancel();
      served.push(performance.now() - t);
      if (half.closedAfterMs.every((ms) => ms !== undefined)) break;
      await sleep(100);
    }
    const closed = half.closedAfterMs.filter((ms) => ms !== undefined) as number[];
    report(
      `200 half requests: ${closed.length} closed by the gateway after ${
        Math.round((Date.now() - started) / 1000)
      } s` +
        `${closed.length ? ` (from ${Math.min(...closed)} to ${Math.max(...closed)} ms)` : ""}; ` +
        `a normal client was served ${served.length} times meanwhile, p99 ${
          percentile(served, 0.99).toFixed(1)
        } ms`,
    );
    half.destroy();
    if (currentRuntime !== "deno") assert.equal(closed.length, 200);
  }));

if (currentRuntime === "deno") {
  test(
    "limits (deno): connections that never finish their request headers are dropped",
    {
      todo: "Deno.serve has no request header timeout (docs/configuration.md, Limits: put a proxy in front)",
    },
    () => {},
  );
}
