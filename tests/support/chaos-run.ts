/**
 * One chaos scenario from start to verdict: `runChaos` drives it (clients up, the proxies'
 * monkeys on while the streams are published, then a drain), `paceNumbered` paces a numbered
 * stream per client, `chaosSummary` is the one line a person reads, and the assertions the
 * chaos files share.
 */
import assert from "node:assert/strict";
import type { ChaosProxy } from "./chaos-proxy.ts";
import type { ChaosClient, ChaosTally } from "./chaos-client.ts";
import { sleep } from "./chaos-client.ts";

/** `CHAOS_VERBOSE=1`: `runChaos` prints its phases and progress every 2 s. */
const verbose = !!(globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env
  .CHAOS_VERBOSE;

/** What one chaos scenario did. */
export interface ChaosRun {
  /** Messages published to each client. */
  last: number;
  /** Messages per second and client, and for how long. */
  rate: number;
  trafficSeconds: number;
  tallies: ChaosTally[];
  /** Over every proxy. */
  cuts: number;
  droppedBytes: number;
  /** Wall time of the whole run, s. */
  seconds: number;
}

export interface ChaosPlan {
  clients: ChaosClient[];
  /** The proxies the clients go through; each one's monkey runs while the streams are sent. */
  proxies: ChaosProxy[];
  rate: number;
  trafficSeconds: number;
  /** Sends `rate * trafficSeconds` numbered messages to each client; resolves once the broker has them. */
  publish: (total: number) => Promise<void>;
  /** After the publisher is done: how long clients may take to get everything (default 15 s). */
  drainMs?: number;
  /** Clients all live and none received anything for this long: nothing more is coming (default 2 s). */
  quietMs?: number;
  /** How long the clients may take to connect and bind at first, ms (default 30 s). */
  bindTimeoutMs?: number;
  /** The monkey's shortest and longest connection life, ms (default 300-2000). */
  cutMinMs?: number;
  cutMaxMs?: number;
}

/** Starts every client; rejects, naming those that are not bound yet and what they saw, after `timeoutMs`. */
async function bindAll(clients: ChaosClient[], timeoutMs: number): Promise<void> {
  const bound = new Set<ChaosClient>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const waiting = clients.filter((c) => !bound.has(c));
      reject(
        new Error(
          `${waiting.length} clients not bound after ${timeoutMs} ms: ${
            waiting.map((c) =>
              `${c.clientId} (connections ${c.connections}, errors ${JSON.stringify(c.errors)})`
            )
              .join(", ")
          }`,
        ),
      );
    }, timeoutMs);
  });
  try {
    await Promise.race([Promise.all(clients.map((c) => c.start().then(() => void bound.add(c)))), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One chaos scenario: the clients connect (through their proxies) and bind, the monkeys start,
 * the streams are published, the monkeys stop, and the clients get what is still coming
 * (everything, or until all are live and quiet). The clients are finished (unbound) before it
 * resolves or rejects; the proxies are the caller's.
 */
export async function runChaos(plan: ChaosPlan): Promise<ChaosRun> {
  const { clients, proxies } = plan;
  const total = plan.rate * plan.trafficSeconds;
  const started = performance.now();
  const phase = (what: string) => {
    if (!verbose) return;
    const received = clients.reduce((sum, c) => sum + c.received, 0);
    const live = clients.filter((c) => c.live).length;
    console.log(
      `  [${
        ((performance.now() - started) / 1000).toFixed(1)
      } s] ${what}; received ${received}, live ${live}`,
    );
  };
  const progress = verbose ? setInterval(() => phase("..."), 2000) : undefined;
  try {
    await bindAll(clients, plan.bindTimeoutMs ?? 30_000);
    phase("clients bound");
    for (const p of proxies) p.startMonkey(plan.cutMinMs ?? 300, plan.cutMaxMs ?? 2000);
    await plan.publish(total);
    for (const p of proxies) p.stopMonkey();
    phase("published");
    const deadline = Date.now() + (plan.drainMs ?? 15_000);
    let lastCount = -1;
    let quietSince = Date.now();
    while (!clients.every((c) => c.hasAll(total)) && Date.now() < deadline) {
      const count = clients.reduce((sum, c) => sum + c.received, 0);
      if (count !== lastCount || !clients.every((c) => c.live)) {
        lastCount = count;
        quietSince = Date.now();
      } else if (Date.now() - quietSince > (plan.quietMs ?? 2000)) {
        break;
      }
      await sleep(50);
    }
    return {
      last: total,
      rate: plan.rate,
      trafficSeconds: plan.trafficSeconds,
      tallies: clients.map((c) => c.tally(total)),
      cuts: proxies.reduce((sum, p) => sum + p.cuts, 0),
      droppedBytes: proxies.reduce((sum, p) => sum + p.droppedBytes, 0),
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    for (const p of proxies) p.stopMonkey();
    phase("finishing");
    await Promise.all(clients.map((c) => c.finish()));
    phase("finished");
    clearInterval(progress);
  }
}

/**
 * Paces `streams` numbered streams (`n` from 1 to `total` each) at `rate` per second and stream:
 * every few ms `tick` gets what is due, as `[stream, n]` pairs in order. A tick that returns a
 * promise is awaited before the next (what comes due meanwhile goes in the next batch).
 */
export async function paceNumbered(
  streams: number,
  rate: number,
  total: number,
  tick: (due: Array<[stream: number, n: number]>) => Promise<unknown> | void,
): Promise<void> {
  const sent = Array.from({ length: streams }, () => 0);
  const started = performance.now();
  while (sent.some((s) => s < total)) {
    const upTo = Math.min(total, Math.floor(((performance.now() - started) * rate) / 1000) + 1);
    const due: Array<[number, number]> = [];
    for (let i = 0; i < streams; i++) while (sent[i] < upTo) due.push([i, ++sent[i]]);
    if (due.length > 0) await tick(due);
    await sleep(5);
  }
}

/**
 * One line: what a person reads to see what the chaos did. `duplicates` says how duplicates
 * are told apart: by the `redelivered` flag (WebSocket), or by id (SSE: one with the id of an
 * earlier copy was written again from the replay log; one with another id came from the broker
 * again), with how many arrived by replay (and of those, with another id).
 */
export function chaosSummary(
  runtime: string,
  name: string,
  r: ChaosRun,
  duplicates: "flag" | "id" = "flag",
): string {
  const sum = (f: (t: ChaosTally) => number) => r.tallies.reduce((s, t) => s + f(t), 0);
  const dups = duplicates === "flag"
    ? `duplicates ${sum((t) => t.duplicates)}, flagged redelivered ${sum((t) => t.duplicatesFlagged)}`
    : `duplicates ${sum((t) => t.duplicates)}: same id ${sum((t) => t.duplicatesSameId)},` +
      ` other id ${sum((t) => t.duplicates - t.duplicatesSameId)}; by replay ${
        sum((t) => t.duplicatesReplayed)
      }` +
      ` (other id ${sum((t) => t.duplicatesReplayedOtherId)})`;
  return `chaos (${runtime}, ${name}): ${r.tallies.length} clients x ${r.last} messages` +
    ` (${r.rate}/s for ${r.trafficSeconds} s), received ${sum((t) => t.received)}; cuts ${r.cuts},` +
    ` dropped bytes ${r.droppedBytes}; lost ${sum((t) => t.lost.length)}; ${dups};` +
    ` connections ${sum((t) => t.connections)} (failed opens ${sum((t) => t.failedOpens)}), fresh sessions ${
      sum((t) => t.freshSessions)
    },` +
    ` reconnects not recovered ${sum((t) => t.unrecovered)},` +
    ` error frames ${sum((t) => t.errors.length)}; ${r.seconds.toFixed(1)} s` +
    errorLines(r);
}

/** The distinct error frames, with how often each came (client IDs left out). */
function errorLines(r: ChaosRun): string {
  const counts = new Map<string, number>();
  for (const e of r.tallies.flatMap((t) => t.errors)) {
    const key = e.replaceAll(/chaos-[\w-]+?-\w{8}-\d+/g, "<client>");
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([e, n]) => `\n  ${n} x ${e}`).join("");
}

/** What one client lost, for an assertion message. */
export const losses = (t: ChaosTally) =>
  `${t.clientId}: ${t.lost.length} lost${t.lost.length ? ` (${t.lost.slice(0, 10).join(", ")}...)` : ""}`;

/**
 * The end-to-end guarantee, asserted per client: nothing lost, every copy past the first flagged
 * `redelivered`, and no error frame (a failed resume stalls a client until its next reconnect:
 * had it been the last one, its messages would not have come).
 */
export function assertNoLossAllFlagged(run: ChaosRun): void {
  for (const t of run.tallies) {
    assert.equal(t.lost.length, 0, losses(t));
    assert.equal(
      t.duplicatesFlagged,
      t.duplicates,
      `${t.clientId}: ${
        t.duplicates - t.duplicatesFlagged
      } of ${t.duplicates} duplicates not flagged redelivered`,
    );
  }
  assert.deepEqual(run.tallies.flatMap((t) => t.errors), [], "no error frames");
}
