/**
 * The admin API, black-box: two gateway processes sharing one Redis (a key prefix of this run's)
 * and one Mosquitto, under the runtime that runs the test, each with its admin listener; clients
 * from the client library (client/), with acks.
 *
 * - Nothing of the admin API is on the clients' port; no token or a wrong one is 401; every call
 *   is logged with the token's name, never the token.
 * - Nodes, sessions (filtered, across nodes), one session with its in-flight counts on its node.
 * - Disconnect from the other node (a store signal): the client resumes its session.
 * - A message to one client, a publish to an endpoint, end (4404: the client stops, the session
 *   is gone).
 * - Drain: /readyz 503 at once, the client closed with 1001 moves to the other node, exit 0.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { connect } from "../../client/mod.js";
import type { Client, Message } from "../../client/mod.js";
import { adminCall, adminUrl } from "../support/admin.ts";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { mqttEndpointYaml, namespace } from "../support/mqtt.ts";
import { keyPrefix, RespRedis } from "../support/redis.ts";
import { currentRuntime } from "../support/runtime.ts";

const TOKEN = `ops-token-${crypto.randomUUID()}`;
const READER = `reader-token-${crypto.randomUUID()}`;
const ns = namespace("admin");
const prefix = keyPrefix("admin");
const redis = new RespRedis();
const run = crypto.randomUUID().slice(0, 8);

const config = (node: string) => `
server: { host: 127.0.0.1, port: 0, node_id: ${node}, shutdown_timeout: 3s }
admin:
  enabled: true
  port: 0
  drain_time: 2s
  tokens:
    - { name: ops, token: "\${ADMIN_TOKEN}" }
    - "${READER}"
session:
  type: redis
  reconnection_window: 60s
  lease: 3s
  redis: ${redis.config(prefix)}
endpoints:
${mqttEndpointYaml({ ns, poolSize: 1 })}
${
  mqttEndpointYaml({
    ns,
    name: "alerts",
    poolSize: 1,
    publishTopic: `${ns}/{clientId}/alerts`,
    subscribeTopic: `${ns}/{clientId}/alerts`,
  })
}
`;

let a: Gateway;
let b: Gateway;
let adminA: string;
let adminB: string;
const clients: Client[] = [];

before(async () => {
  const env = { ADMIN_TOKEN: TOKEN };
  [a, b] = await Promise.all([
    startGateway(currentRuntime, config(`adm-a-${run}`), env),
    startGateway(currentRuntime, config(`adm-b-${run}`), env),
  ]);
  [adminA, adminB] = await Promise.all([adminUrl(a), adminUrl(b)]);
});
after(async () => {
  for (const c of clients) c.close();
  await Promise.all([a?.stop("SIGKILL"), b?.stop("SIGKILL")]);
  await redis.drop(prefix);
  await redis.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(
  what: string,
  probe: () => T | Promise<T>,
  timeoutMs = 15_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A client of the library on `gw`, with acks, its messages and close codes recorded. */
function client(gw: Gateway, clientId: string) {
  const c = connect({ url: `${gw.ws}/ws`, clientId, backoff: { initialMs: 100, maxMs: 300 } });
  clients.push(c);
  const messages: Message[] = [];
  const closes: number[] = [];
  const welcomes: boolean[] = [];
  c.on("disconnected", (d) => closes.push(d.code));
  c.on("connected", (w) => welcomes.push(w.resumed));
  return { c, messages, closes, welcomes };
}

test("admin: nothing of it on the clients' port, and no valid token is 401", async () => {
  for (const path of ["/admin/", "/admin/sessions", "/admin/openapi.json", "/admin/drain"]) {
    const answer = await fetch(`${a.http}${path}`, { method: path === "/admin/drain" ? "POST" : "GET" });
    await answer.body?.cancel();
    assert.equal(answer.status, 404, path);
  }
  assert.equal((await adminCall(adminA, undefined, "GET", "/admin/nodes")).status, 401);
  assert.equal((await adminCall(adminA, "not-a-token-of-ours-at-all", "GET", "/admin/nodes")).status, 401);
  assert.equal((await adminCall(adminA, undefined, "POST", "/admin/drain")).status, 401);
  // The page and the description need no token; the API behind them does.
  assert.equal((await adminCall(adminA, undefined, "GET", "/admin/")).status, 200);
  assert.equal((await adminCall(adminA, undefined, "GET", "/admin/openapi.json")).body.openapi, "3.1.0");
  assert.equal((await adminCall(adminA, READER, "GET", "/admin/nodes")).status, 200);
  await until("the calls logged", () => a.output().includes("[Admin] #2: GET /admin/nodes -> 200"));
  assert.match(a.output(), /WARN \[Admin\] Refused GET \/admin\/nodes: no valid admin token/);
  assert.match(a.output(), /INFO \[Admin\] anonymous: GET \/admin\/openapi.json -> 200/);
  assert.ok(!a.output().includes(TOKEN) && !a.output().includes(READER), "no token in the log");
});

test("admin: nodes, sessions across nodes, one session with its in-flight counts", async () => {
  const nodes = await until("both nodes announced", async () => {
    const answer = await adminCall(adminA, TOKEN, "GET", "/admin/nodes");
    const ours = answer.body.nodes.filter((n: { id: string }) => n.id.endsWith(run));
    return ours.length === 2 ? ours : undefined;
  });
  assert.deepEqual(nodes.map((n: { id: string }) => n.id), [`adm-a-${run}`, `adm-b-${run}`]);
  for (const n of nodes) {
    assert.match(n.address, /^127\.0\.0\.1:\d+$/);
    assert.match(n.runtime, new RegExp(`^${currentRuntime} `));
    assert.equal(typeof n.version, "string");
    assert.ok(n.startedAt > 0);
  }
  assert.equal(new URL(b.http).port, nodes[1].address.split(":")[1]);

  const onB = client(b, `adm-list-${run}`);
  await onB.c.subscribe("sensors", undefined, (m) => void onB.messages.push(m));
  const id = onB.c.clientId!;
  const listed = await until("the session listed on A", async () => {
    const all = [];
    let cursor: string | null = null;
    do {
      const q: string = `/admin/sessions?node=adm-b-${run}&limit=2${
        cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""
      }`;
      const page = await adminCall(adminA, TOKEN, "GET", q);
      assert.equal(page.status, 200);
      all.push(...page.body.sessions);
      cursor = page.body.cursor;
    } while (cursor);
    return all.find((s: { clientId: string }) => s.clientId === id);
  });
  assert.equal(listed.state, "connected");
  assert.deepEqual(listed.subscriptions.map((s: { endpoint: string }) => s.endpoint), ["sensors"]);
  const connected = await adminCall(
    adminA,
    TOKEN,
    "GET",
    `/admin/sessions?state=connected&endpoint=sensors&limit=1000`,
  );
  assert.ok(connected.body.sessions.some((s: { clientId: string }) => s.clientId === id));
  assert.equal((await adminCall(adminA, TOKEN, "GET", "/admin/sessions?state=gone")).status, 400);

  const here = await adminCall(adminB, TOKEN, "GET", `/admin/sessions/${id}`);
  assert.equal(here.body.node, `adm-b-${run}`);
  assert.deepEqual(here.body.connection.inFlight, {});
  assert.equal(here.body.connection.acks, true);
  const there = await adminCall(adminA, TOKEN, "GET", `/admin/sessions/${id}`);
  assert.equal(there.body.connection, null, "A holds no connection of it");
  assert.equal((await adminCall(adminA, TOKEN, "GET", `/admin/sessions/nobody-${run}`)).status, 404);
});

test("admin: disconnect from another node; the client resumes its session", async () => {
  const onB = client(b, `adm-kick-${run}`);
  await onB.c.subscribe("sensors", undefined, (m) => void onB.messages.push(m));
  const id = onB.c.clientId!;
  await until(
    "its session on B",
    async () => (await adminCall(adminA, TOKEN, "GET", `/admin/sessions/${id}`)).body.node === `adm-b-${run}`,
  );
  const kicked = await adminCall(adminA, TOKEN, "POST", `/admin/sessions/${id}/disconnect`);
  assert.deepEqual([kicked.status, kicked.body.outcome], [202, "signalled"]);
  await until("closed with 4000", () => onB.closes.includes(4000));
  await until("resumed", () => onB.welcomes.length >= 2);
  assert.deepEqual(onB.welcomes, [false, true], "the session was kept and resumed");
  await until("B logged the signal", () => b.output().includes(`Signal disconnect for client ${id}`));
  assert.match(a.output(), /\[Admin\] ops: POST \/admin\/sessions\/[^ ]+\/disconnect -> 202/);
});

test("admin: a message to one client, a publish to an endpoint, then end (4404)", async () => {
  const onA = client(a, `adm-end-${run}`);
  await onA.c.subscribe("alerts", undefined, (m) => void onA.messages.push(m));
  onA.c.on("message", (m) => onA.messages.push(m));
  const id = onA.c.clientId!;
  const direct = await adminCall(adminA, TOKEN, "POST", `/admin/sessions/${id}/messages`, {
    endpoint: "alerts",
    data: { notice: "direct" },
  });
  assert.deepEqual([direct.status, direct.body.outcome], [200, "delivered"]);
  const viaB = await adminCall(adminB, TOKEN, "POST", `/admin/sessions/${id}/messages`, {
    endpoint: "alerts",
    data: { notice: "through B" },
  });
  assert.deepEqual([viaB.status, viaB.body.outcome], [202, "signalled"]);
  const published = await adminCall(adminB, TOKEN, "POST", "/admin/endpoints/alerts/messages", {
    data: { notice: "published" },
    clientId: id,
  });
  assert.equal(published.status, 200, JSON.stringify(published.body));
  await until("all three", () => onA.messages.length >= 3);
  assert.deepEqual(
    onA.messages.map((m) => (m.data as { notice: string }).notice).sort(),
    ["direct", "published", "through B"],
  );
  const ended = await adminCall(adminB, TOKEN, "DELETE", `/admin/sessions/${id}`);
  assert.deepEqual([ended.status, ended.body.outcome], [202, "signalled"]);
  await until("closed with 4404", () => onA.closes.includes(4404));
  await until(
    "the session gone",
    async () => (await adminCall(adminA, TOKEN, "GET", `/admin/sessions/${id}`)).status === 404,
  );
  await sleep(500);
  assert.equal(onA.c.state, "closed", "the client stopped");
  assert.match(a.output(), new RegExp(`\\[Admin\\] Unbound client ${id} from endpoint alerts`));
});

test("admin: drain: readyz 503 first, the client closed with 1001, the node exits 0", async () => {
  const onB = client(b, `adm-drain-${run}`);
  await onB.c.subscribe("sensors", undefined, (m) => void onB.messages.push(m));
  const drained = await adminCall(adminB, TOKEN, "POST", "/admin/drain");
  assert.equal(drained.status, 202);
  const ready = await fetch(`${b.http}/readyz`);
  assert.equal(ready.status, 503);
  assert.equal((await ready.json()).checks.drain.ok, false);
  await until("closed with 1001", () => onB.closes.includes(1001));
  const code = await until("B exits", () => b.output().match(/gateway-exit=(\d+)/)?.[1], 15_000);
  assert.equal(code, "0");
  assert.match(b.output(), /\[Server\] POST \/admin\/drain: draining over 2000 ms/);
});
