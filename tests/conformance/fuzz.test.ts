/**
 * Fuzz (DESIGN.md sections 6 and 11): at least 10,000 generated hostile frames from several
 * connections on the multiplexed WebSocket `/ws` while a victim client receives a steady numbered
 * stream. The frames come from tests/support/fuzz-frames.ts: random and invalid-UTF-8 binary
 * frames, garbage and truncated text, JSON nested 10 to 100,000 deep (closed or not), wrong types
 * for every field, unknown frame types, extra and duplicate keys, `__proto__` / `constructor` /
 * `prototype` keys at every level, odd numbers (1e400, -0, 9007199254740993, 1e-400), strings up
 * to just past the frame limit, ids of every shape, acks with nonsense ids, unknown endpoints, odd
 * but valid `data` (lone surrogates and NUL as JSON escapes), and well-formed frames in between.
 *
 * - Every frame gets exactly one answer, the one the protocol says (the generator's oracle): the
 *   error with its code (and the frame's id once the frame was valid), the receipt or the pong;
 *   per connection, compared as multisets (answers of one connection are not ordered: a publish
 *   answers when its broker does). Each attacker keeps at most WINDOW frames unanswered, so a
 *   frame the gateway never answers stops its attacker and is reported.
 * - Each attacker is bound (before the fuzzing) to `chat`, to a room of its own and to its inbox,
 *   so the valid publishes it sends come back to it: it gets exactly those (and everyone's chat),
 *   nothing else. Attackers' client IDs are `__proto__`, `constructor` and `prototype` too; one
 *   has acks on (`ack=1`) and acknowledges each delivery (a valid ack is not answered).
 * - The victim, bound to its inbox, gets `{"n":1}`..`{"n":N}` published over HTTP by a
 *   well-behaved publisher paced over the whole attack: exactly those, in order, once each, and
 *   nothing else; its pings keep answering.
 * - Text frames that are not UTF-8 (which a runtime's WebSocket client cannot send) go over raw
 *   TCP sockets on the side: the runtime ends such a connection (RFC 6455: 1007), nothing else.
 * - After the run: `/healthz` answers, a new client is served, the gateway logged no ERROR (client
 *   input is logged at debug only; an ERROR would be a gateway bug), and its RSS did not balloon
 *   (printed; growth under 500 MB asserted).
 *
 * The seed is printed; `FUZZ_SEED=<seed>` replays a run. `FUZZ_FRAMES` (default 10,000),
 * `FUZZ_VICTIM_MESSAGES` (2,000) scale it.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import process from "node:process";
import { after, before, test } from "node:test";
import type { AttackerContext, FuzzFrame, FuzzLimits } from "../support/fuzz-oracle.ts";
import { RawWebSocket } from "../support/raw-clients.ts";
import { describeFrame, FRAME_KINDS, generateFrames } from "../support/fuzz-frames.ts";
import { answerKey } from "../support/fuzz-oracle.ts";
import { deriveSeed } from "../support/fuzz-rng.ts";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { running } from "../support/net.ts";
import { currentRuntime } from "../support/runtime.ts";
import { openWelcomed, TestSocket } from "../support/ws-client.ts";
import { GATEWAY_CONFIG } from "./gateway-scenarios.ts";

const SEED = (process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Date.now() % 2 ** 32) >>> 0;
const FRAMES = Number(process.env.FUZZ_FRAMES ?? 10_000);
const VICTIM_MESSAGES = Number(process.env.FUZZ_VICTIM_MESSAGES ?? 2000);
const ATTACKERS = 5;
/** Frames an attacker may have sent and not had answered. */
const WINDOW = 32;
/** How long an attacker waits for an answer before the gateway counts as not answering. */
const ANSWER_TIMEOUT_MS = 20_000;
const RAW_UTF8_CONNECTIONS = 12;
const ENDPOINTS = ["chat", "rooms", "inbox"];
const LIMITS: FuzzLimits = {
  maxMessageBytes: Number(GATEWAY_CONFIG.match(/max_message_bytes: (\d+)/)?.[1] ?? 65536),
  maxJsonDepth: Number(GATEWAY_CONFIG.match(/max_json_depth: (\d+)/)?.[1] ?? 64),
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssKb(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/)?.[1] ?? NaN);
}

function count(map: Map<string, number>, key: string, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}

/** What `want` has more of than `got` ("missing"), and the other way round ("extra"). */
function multisetDiff(want: Map<string, number>, got: Map<string, number>) {
  const missing: string[] = [];
  const extra: string[] = [];
  for (const [k, n] of want) for (let i = got.get(k) ?? 0; i < n; i++) missing.push(k);
  for (const [k, n] of got) for (let i = want.get(k) ?? 0; i < n; i++) extra.push(k);
  return { missing, extra };
}

const short = (s: string, max = 200) => s.length > max ? `${s.slice(0, max)}... (${s.length} chars)` : s;

class Attacker {
  socket!: TestSocket;
  frames: FuzzFrame[] = [];
  sent = 0;
  answered = 0;
  answers = new Map<string, number>();
  deliveries = new Map<string, number>();
  deliveryCount = 0;
  acksSent = 0;
  unexpected: unknown[] = [];

  readonly ctx: AttackerContext;
  readonly seed: number;
  constructor(ctx: AttackerContext, seed: number) {
    this.ctx = ctx;
    this.seed = seed;
  }

  async connect(gw: Gateway): Promise<void> {
    const query = `clientId=${encodeURIComponent(this.ctx.clientId)}${this.ctx.acks ? "&ack=1" : ""}`;
    this.socket = await TestSocket.open(`${gw.ws}/ws?${query}`);
    await this.socket.next((f) => f.type === "welcome");
    for (const [endpoint, params] of Object.entries(this.ctx.bound)) {
      const id = `setup-${endpoint}`;
      this.socket.send({ type: "subscribe", endpoint, params, id });
      const answer = await this.socket.next((f) =>
        (f.type === "receipt" || f.type === "error") && f.id === id
      );
      assert.equal(
        answer.type,
        "receipt",
        `${this.ctx.clientId} binds ${endpoint}: ${JSON.stringify(answer)}`,
      );
    }
    // From here on every frame is counted.
    this.socket.onFrame = (frame) => this.#received(frame);
  }

  #received(frame: unknown): void {
    const f = frame as Record<string, unknown>;
    if (f instanceof Uint8Array || typeof f !== "object" || f === null) {
      return void this.unexpected.push(frame);
    }
    if (f.type === "pong" || f.type === "receipt" || f.type === "error") {
      this.answered++;
      const key = f.type === "pong"
        ? answerKey({ type: "pong" })
        : f.type === "receipt"
        ? answerKey({ type: "receipt", id: f.id as string })
        : answerKey({ type: "error", code: f.code as string, id: f.id as string | undefined });
      count(this.answers, key);
      if (f.type === "error" && typeof f.message !== "string") this.unexpected.push(frame);
      return;
    }
    if (f.type === "message" && f.encoding === undefined) {
      this.deliveryCount++;
      // On `ack=1` every delivery is acknowledged (a valid ack is not answered), so the
      // connection never reaches its in-flight bound.
      if (this.ctx.acks) {
        this.socket.send({ type: "ack", endpoint: f.endpoint, id: f.id });
        this.acksSent++;
      }
      return count(this.deliveries, `${f.endpoint} ${JSON.stringify(f.data)}`);
    }
    this.unexpected.push(frame);
  }

  expectedAnswers(): Map<string, number> {
    const want = new Map<string, number>();
    for (const frame of this.frames.slice(0, this.sent)) count(want, answerKey(frame.answer));
    return want;
  }

  /** Sends every frame, at most WINDOW unanswered, then waits for the last answers. */
  async run(onSent: () => void): Promise<void> {
    for (const frame of this.frames) {
      if (this.sent - this.answered >= WINDOW) {
        await this.#waitAnswers(() => this.sent - this.answered < WINDOW);
      }
      this.socket.send(frame.wire);
      this.sent++;
      onSent();
    }
    await this.#waitAnswers(() => this.answered >= this.sent);
  }

  async #waitAnswers(check: () => boolean): Promise<void> {
    try {
      await this.socket.until(check, ANSWER_TIMEOUT_MS, "answers");
    } catch {
      throw new Error(`${this.report("no answer")}`);
    }
  }

  /** What went wrong, with the frames that expected the missing answers. */
  report(what: string): string {
    const { missing, extra } = multisetDiff(this.expectedAnswers(), this.answers);
    const lines = [
      `${what}: attacker ${JSON.stringify(this.ctx.clientId)} (seed ${SEED}, attacker seed ${this.seed}): ` +
      `sent ${this.sent}, answered ${this.answered}, closed ${JSON.stringify(this.socket.closed)}`,
    ];
    const grouped = (
      keys: string[],
    ) => [...keys.reduce((m, k) => (count(m, k), m), new Map<string, number>())];
    for (const [key, n] of grouped(missing).slice(0, 10)) {
      const suspects = this.frames.slice(0, this.sent).filter((f) => answerKey(f.answer) === key);
      lines.push(`  missing ${n} x ${short(key)}, expected by ${suspects.length} frame(s), e.g.:`);
      for (const f of suspects.slice(-3)) lines.push(`    [${f.kind}] ${describeFrame(f.wire)}`);
    }
    for (const [key, n] of grouped(extra).slice(0, 10)) lines.push(`  extra ${n} x ${short(key)}`);
    lines.push(`  ${missing.length} missing, ${extra.length} extra in all`);
    lines.push(`  last frames sent:`);
    for (const f of this.frames.slice(Math.max(0, this.sent - 5), this.sent)) {
      lines.push(`    [${f.kind}] ${describeFrame(f.wire)} -> ${short(answerKey(f.answer), 120)}`);
    }
    return lines.join("\n");
  }
}

/** Sends text frames that are not UTF-8 over raw TCP; resolves how each connection ended. */
async function invalidUtf8Text(gw: Gateway, seed: number): Promise<Map<string, number>> {
  const { hostname, port } = new URL(gw.http);
  const outcomes = new Map<string, number>();
  const sequences = [[0xc3, 0x28], [0xed, 0xa0, 0x80], [0xff, 0xfe], [0xe2, 0x82], [0xc0, 0xaf], [
    0xf8,
    0x88,
  ]];
  const head = new TextEncoder().encode('{"type":"publish","endpoint":"chat","data":"');
  const tail = new TextEncoder().encode('","id":"utf8"}');
  await Promise.all(Array.from({ length: RAW_UTF8_CONNECTIONS }, async (_, i) => {
    let raw: RawWebSocket | undefined;
    try {
      raw = await RawWebSocket.open(`ws://${hostname}:${port}/ws?clientId=raw-utf8-${seed}-${i}`);
      raw.resume({ keepTexts: true });
      await raw.until(() => raw!.texts.length > 0, 5000);
      assert.match(raw.texts[0] ?? "", /"type":"welcome"/, "raw socket welcomed");
      const bad = sequences[i % sequences.length];
      raw.sendFrame(1, i % 2 ? Uint8Array.from([...head, ...bad, ...tail]) : Uint8Array.from(bad));
      raw.sendFrame(1, new TextEncoder().encode('{"type":"ping"}'));
      await raw.until(() => raw!.ended || raw!.closeCode !== undefined || raw!.texts.length >= 3, 5000);
      const answers = raw.texts.slice(1).map((t) => JSON.parse(t) as Record<string, unknown>);
      const outcome = raw.closeCode !== undefined
        ? `closed with ${raw.closeCode}`
        : raw.ended
        ? "connection dropped without a close frame"
        : answers.length === 2 && answers[0].code === "BAD_FRAME" && answers[1].type === "pong"
        ? "BAD_FRAME, then pong"
        : `unexpected: ${JSON.stringify(answers)}`;
      count(outcomes, outcome);
    } finally {
      raw?.destroy();
    }
  }));
  return outcomes;
}

let gw: Gateway;
before(async () => {
  gw = await startGateway(currentRuntime, GATEWAY_CONFIG);
});
after(async () => {
  await gw?.stop("SIGKILL");
});

test(
  `fuzz: ${FRAMES} hostile frames from ${ATTACKERS} connections; the gateway answers each, the victim loses nothing`,
  { timeout: 120_000 },
  async () => {
    const started = performance.now();
    console.log(`fuzz seed: ${SEED} (replay with FUZZ_SEED=${SEED}); runtime ${currentRuntime}`);
    const pid = gw.pid();

    // Attackers, each bound to chat, a room of its own and its inbox.
    const ids = ["__proto__", "constructor", "prototype", `fuzz-${SEED}-3`, `fuzz-${SEED}-4`];
    const attackers = ids.slice(0, ATTACKERS).map((clientId, i) => {
      const ctx: AttackerContext = {
        clientId,
        acks: i === ATTACKERS - 1,
        bound: { chat: {}, rooms: { room: `fuzz-room-${SEED}-${i}` }, inbox: {} },
        endpoints: ENDPOINTS,
      };
      return new Attacker(ctx, deriveSeed(SEED, i));
    });
    const perAttacker = Math.ceil(FRAMES / ATTACKERS);
    for (const a of attackers) a.frames = generateFrames(a.seed, a.ctx, perAttacker, LIMITS);
    const generatedMs = performance.now() - started;
    await Promise.all(attackers.map((a) => a.connect(gw)));

    // The victim, on its own inbox, and its pings.
    const victimId = `victim-${SEED}`;
    const { socket: victim } = await openWelcomed(gw.ws, victimId);
    victim.send({ type: "subscribe", endpoint: "inbox", id: "victim-sub" });
    await victim.next((f) => f.type === "receipt" && f.id === "victim-sub");
    const pingSent: number[] = [];
    const pongLatency: number[] = [];
    victim.onFrame = (f) => {
      if ((f as { type?: string }).type === "pong") {
        pongLatency.push(performance.now() - pingSent[pongLatency.length]);
      }
    };
    const pinger = setInterval(() => {
      pingSent.push(performance.now());
      victim.send({ type: "ping" });
    }, 20);

    await sleep(200);
    const rssBefore = rssKb(pid);

    // The attack, the paced publisher and the raw non-UTF-8 sockets, all at once.
    const total = attackers.reduce((n, a) => n + a.frames.length, 0);
    let sentAll = 0;
    let attacking = true;
    const attackStarted = performance.now();
    const attack = Promise.all(attackers.map((a) => a.run(() => sentAll++))).finally(() => attacking = false);
    const publisher = (async () => {
      for (let n = 1; n <= VICTIM_MESSAGES; n++) {
        // Spread over the attack: message n goes once the attackers sent n/N of their frames.
        while (attacking && sentAll / total < n / VICTIM_MESSAGES) await sleep(2);
        const response = await fetch(`${gw.http}/publish/inbox?to=${victimId}`, {
          method: "POST",
          body: JSON.stringify({ n }),
        });
        await response.body?.cancel();
        assert.equal(response.status, 202, `publish ${n}`);
      }
    })();
    const rawOutcomes = invalidUtf8Text(gw, SEED);
    const results = await Promise.allSettled([attack, publisher, rawOutcomes]);
    const attackMs = performance.now() - attackStarted;
    for (const r of results) if (r.status === "rejected") throw r.reason;
    for (const outcome of (await rawOutcomes).keys()) {
      assert.doesNotMatch(
        outcome,
        /unexpected/,
        "a text frame that is not UTF-8 ends its connection or is refused",
      );
    }

    // Every attacker: exactly the answers the oracle expects, its deliveries, nothing else.
    const chat = new Map<string, number>();
    for (const a of attackers) {
      for (const f of a.frames) if (f.delivery?.endpoint === "chat") count(chat, `chat ${f.delivery.json}`);
    }
    for (const a of attackers) {
      const want = new Map(chat);
      for (const f of a.frames) if (f.delivery?.endpoint === "rooms") count(want, `rooms ${f.delivery.json}`);
      const wanted = [...want.values()].reduce((x, y) => x + y, 0);
      await a.socket.until(() => a.deliveryCount >= wanted, 15_000, "deliveries").catch(() => {});
    }
    await sleep(500);
    for (const a of attackers) {
      assert.equal(a.answered, a.frames.length, a.report("answer count"));
      const { missing, extra } = multisetDiff(a.expectedAnswers(), a.answers);
      assert.ok(missing.length === 0 && extra.length === 0, a.report("wrong answers"));
      assert.deepEqual(a.unexpected.slice(0, 5), [], `${a.ctx.clientId} got frames it should not have`);
      assert.equal(a.socket.closed, undefined, `${a.ctx.clientId} stays connected`);
      const want = new Map(chat);
      for (const f of a.frames) if (f.delivery?.endpoint === "rooms") count(want, `rooms ${f.delivery.json}`);
      const deliveries = multisetDiff(want, a.deliveries);
      assert.ok(
        deliveries.missing.length === 0 && deliveries.extra.length === 0,
        `${a.ctx.clientId} deliveries: missing ${
          JSON.stringify(deliveries.missing.slice(0, 5).map((k) => short(k)))
        }` +
          ` extra ${JSON.stringify(deliveries.extra.slice(0, 5).map((k) => short(k)))}`,
      );
    }

    // The victim: 1..N in order, once each, nothing else; its pings answered.
    const got = await victim.settled("inbox", VICTIM_MESSAGES, 20_000);
    clearInterval(pinger);
    await victim.until(() => pongLatency.length >= pingSent.length, 10_000, "the last pongs");
    const numbers = got.map((d) => (d as { n?: unknown }).n);
    const outOfPlace = numbers.findIndex((n, i) => n !== i + 1);
    assert.equal(
      outOfPlace,
      -1,
      `victim stream: position ${outOfPlace} holds ${
        JSON.stringify(got[outOfPlace])
      } (${got.length} received)`,
    );
    assert.equal(got.length, VICTIM_MESSAGES);
    const others = victim.frames.filter((f) => {
      const t = (f as { type?: string }).type;
      return !(t === "welcome" || t === "pong" ||
        (t === "message" && (f as { endpoint: string }).endpoint === "inbox") ||
        (t === "receipt" && (f as { id: string }).id === "victim-sub"));
    });
    assert.deepEqual(others, [], "the victim gets nothing else");
    assert.equal(pongLatency.length, pingSent.length, "every victim ping answered");
    assert.equal(victim.closed, undefined);

    // The gateway: up, serving, no ERROR from client input, memory bounded.
    assert.equal(gw.child.exitCode, null, "gateway process still running");
    assert.ok(running(pid), "gateway process still running");
    const health = await fetch(`${gw.http}/healthz`);
    await health.body?.cancel();
    assert.equal(health.status, 200);
    // A new client is served, and nothing leaked into Object.prototype (`room` or `to` there would
    // fill these topic templates, which must still miss their param).
    const { socket: late } = await openWelcomed(gw.ws, `late-${SEED}`);
    late.send({ type: "ping" });
    late.send({ type: "subscribe", endpoint: "rooms", params: {}, id: "late-sub" });
    late.send({ type: "publish", endpoint: "inbox", data: 1, id: "late-pub" });
    for (const id of ["late-sub", "late-pub"]) {
      const answer = await late.next((f) => f.id === id);
      assert.equal(answer.code, "BAD_FRAME", `${id}: ${JSON.stringify(answer)}`);
      assert.match(String(answer.message), /needs the param/);
    }
    await late.next((f) => f.type === "pong");
    await late.close();
    const rssAfter = rssKb(pid);
    const output = gw.output();
    const errors = output.split("\n").filter((l) =>
      /^(\S+Z )?ERROR|Uncaught|Unhandled|panic|RangeError|stack/i.test(l)
    );
    // Log lines start with their time (docs/operations.md "Logs").
    const warnings = output.split("\n").filter((l) => /^(\S+Z )?WARN/.test(l));

    // Figures.
    const byKind = new Map<string, { frames: number; pong: number; receipt: number; error: number }>();
    const codes = new Map<string, number>();
    let bytes = 0;
    for (const a of attackers) {
      for (const f of a.frames) {
        const row = byKind.get(f.kind) ?? { frames: 0, pong: 0, receipt: 0, error: 0 };
        row.frames++;
        row[f.answer.type]++;
        byKind.set(f.kind, row);
        if (f.answer.type === "error") {
          count(codes, `${f.answer.code}${f.answer.id === undefined ? "" : " (with id)"}`);
        }
        bytes += typeof f.wire === "string" ? new TextEncoder().encode(f.wire).length : f.wire.length;
      }
    }
    console.log(
      `frames sent per kind (${total} frames, ${(bytes / 1e6).toFixed(1)} MB, ${ATTACKERS} connections):`,
    );
    console.log(
      `  ${"kind".padEnd(18)} ${"frames".padStart(6)} ${"pong".padStart(6)} ${"receipt".padStart(7)} error`,
    );
    for (const kind of FRAME_KINDS) {
      const r = byKind.get(kind);
      if (r) {
        console.log(
          `  ${kind.padEnd(18)} ${String(r.frames).padStart(6)} ${String(r.pong).padStart(6)} ${
            String(r.receipt).padStart(7)
          } ${r.error}`,
        );
      }
    }
    console.log(`answers: ${[...codes].map(([c, n]) => `${c} ${n}`).join(", ")}; all matched the oracle`);
    console.log(
      `attacker deliveries: ${
        attackers.map((a) =>
          `${a.ctx.clientId} ${a.deliveryCount}${a.ctx.acks ? ` (ack=1, ${a.acksSent} valid acks sent)` : ""}`
        ).join(", ")
      }`,
    );
    const sorted = [...pongLatency].sort((x, y) => x - y);
    console.log(
      `victim: ${got.length}/${VICTIM_MESSAGES} in order, nothing else; pings ${pingSent.length}, pongs ${pongLatency.length}` +
        ` (p50 ${sorted[Math.floor(sorted.length / 2)]?.toFixed(1)} ms, max ${sorted.at(-1)?.toFixed(1)} ms)`,
    );
    const arrivals = victim.messages("inbox").map((m) => (m as unknown as { at: number }).at - attackStarted);
    console.log(
      `victim messages arrived from ${arrivals[0]?.toFixed(0)} ms to ${arrivals.at(-1)?.toFixed(0)} ms ` +
        `into the attack (${attackMs.toFixed(0)} ms)`,
    );
    console.log(
      `text frames that are not UTF-8 (raw TCP): ${[...await rawOutcomes].map(([o, n]) => `${n} ${o}`)}`,
    );
    console.log(
      `gateway RSS: ${(rssBefore / 1024).toFixed(1)} MB before, ${(rssAfter / 1024).toFixed(1)} MB after; ` +
        `${warnings.length} WARN lines; generation ${generatedMs.toFixed(0)} ms, attack ${
          attackMs.toFixed(0)
        } ms, ` +
        `whole test ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    assert.deepEqual(errors, [], "no ERROR lines from client input");
    assert.ok(
      rssAfter - rssBefore < 500 * 1024,
      `RSS grew by ${((rssAfter - rssBefore) / 1024).toFixed(0)} MB`,
    );
    for (const a of attackers) await a.socket.close();
    await victim.close();
  },
);
