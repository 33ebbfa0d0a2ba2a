/**
 * Secrets stay in the gateway, black-box, under the runtime that runs the tests (issue 19, items
 * 1 and 2). Credentials given in endpoint URLs and as username/password/token fields, the session
 * store's and the JWT secret: none appears in an HTTP body, a WebSocket frame or close reason, an
 * SSE event, /readyz, /metrics, or anything the process prints at log level debug, with the
 * brokers down (free ports nobody listens on) and with the real services, which accept or ignore
 * the credentials. A refused JWT is never echoed, in whole or in part, and the refusal says what
 * was wrong with it.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { after, before, test } from "node:test";
import { sign } from "hono/jwt";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { freePort } from "../support/net.ts";
import { currentRuntime } from "../support/runtime.ts";
import { SseClient } from "../support/sse-client.ts";
import { TestSocket } from "../support/ws-client.ts";
import { upgradeAnswer } from "./gateway-scenarios.ts";
import { startKafka } from "../support/kafka/cluster.ts";
import type { TestKafka } from "../support/kafka/cluster.ts";

const RUN = crypto.randomUUID().slice(0, 8);
const SECRETS: string[] = [];
/** A secret value unique to this run, so finding it anywhere can only mean it leaked. */
const secret = (what: string) => {
  const value = `${what}-Zq${RUN}`;
  SECRETS.push(value);
  return value;
};
const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;
const now = () => Math.floor(Date.now() / 1000);

const JWT_SECRET = secret("jwt-secret");
const ISSUER = "https://issuer.test";
const token = (sub: string, claims: Record<string, unknown> = {}, key = JWT_SECRET) =>
  sign({ sub, iss: ISSUER, aud: "mediation", exp: now() + 300, ...claims }, key, "HS256");

const MQTT_URL_USER = secret("mqtt-url-user");
const MQTT_URL_PASS = secret("mqtt-url-pass");
const MQTT_USER = secret("mqtt-user");
const MQTT_PASS = secret("mqtt-pass");
const NATS_URL_USER = secret("nats-url-user");
const NATS_URL_PASS = secret("nats-url-pass");
const NATS_BARE_USER = secret("nats-bare-user");
const NATS_BARE_PASS = secret("nats-bare-pass");
const NATS_USER = secret("nats-user");
const NATS_PASS = secret("nats-pass");
const NATS_TOKEN = secret("nats-token");
const KAFKA_USER = secret("kafka-user");
const KAFKA_PASS = secret("kafka-pass");
const REDIS_URL_USER = secret("redis-url-user");
const REDIS_URL_PASS = secret("redis-url-pass");
const REDIS_USER = secret("redis-user");
const REDIS_PASS = secret("redis-pass");
const REST_TOKEN = secret("rest-token");

const MQTT_REAL = process.env.MQTT_URL ?? "mqtt://127.0.0.1:1883";
const NATS_REAL = process.env.NATS_SERVER ?? "127.0.0.1:4222";
const REDIS_REAL = new URL(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");

const header = (extra = "") =>
  `server: { host: 127.0.0.1, port: 0, shutdown_timeout: 2s }\nlog: { level: debug }\n` +
  `auth: { type: jwt, jwt: { secret: "${JWT_SECRET}", issuer: "${ISSUER}", audience: mediation } }\n${extra}`;

const mqtt = (name: string, url: string, fields = "") =>
  `  - { name: ${name}, type: mqtt, url: "${url}", publish_topic: "test/${name}-${RUN}/{clientId}", ` +
  `subscribe_topic: "test/${name}-${RUN}/{clientId}", connect_timeout: 500ms, publish_timeout: 2s${fields} }\n`;
const natsEndpoint = (name: string, servers: string[], fields = "") =>
  `  - { name: ${name}, type: nats, servers: ${JSON.stringify(servers)}, stream: SEC_${name}_${RUN}, ` +
  `publish_subject: "sec.${name}${RUN}.{clientId}", subscribe_subject: "sec.${name}${RUN}.{clientId}", ` +
  `connect_timeout: 1s, publish_timeout: 2s${fields} }\n`;
const kafkaEndpoint = (name: string, brokers: string[]) =>
  `  - { name: ${name}, type: kafka, brokers: ${
    JSON.stringify(brokers)
  }, publish_topic: "sec.${name}-${RUN}", ` +
  `subscribe_topic: "sec.${name}-${RUN}", connect_timeout: 1s, publish_timeout: 2s, ` +
  `sasl: { mechanism: plain, username: "${KAFKA_USER}", password: "${KAFKA_PASS}" } }\n`;

/** A gateway of one scenario, or what it printed when it refused to start. */
interface Run {
  name: string;
  endpoints: string[];
  gw?: Gateway;
  output: () => string;
}

/** Everything a client got from any gateway: bodies, frames, close reasons, SSE events. */
const seen: string[] = [];
const runs: Run[] = [];
let kafka: TestKafka;

async function start(name: string, config: string, endpoints: string[]): Promise<Run> {
  try {
    const gw = await startGateway(currentRuntime, config);
    return { name, endpoints, gw, output: () => gw.output() };
  } catch (error) {
    // A gateway that stops at start-up (a broker down at start, a refused password) is still
    // checked: what it printed on the way out.
    const text = (error as Error).message;
    return { name, endpoints, output: () => text };
  }
}

before(async () => {
  const [down1, down2, down3, down4, down5] = await Promise.all([1, 2, 3, 4, 5].map(() => freePort()));
  kafka = await startKafka();
  const mem = "  - { name: chat, type: memory }\n";
  const scenarios: Array<[string, string, string[]]> = [
    [
      "mqtt down",
      header() + "endpoints:\n" + mem +
      mqtt("mqttu", `mqtt://${MQTT_URL_USER}:${MQTT_URL_PASS}@127.0.0.1:${down1}`) +
      mqtt("mqttf", `mqtt://127.0.0.1:${down1}`, `, username: "${MQTT_USER}", password: "${MQTT_PASS}"`),
      ["chat", "mqttu", "mqttf"],
    ],
    [
      "resp store down",
      header(
        `session: { type: redis, redis: { url: "redis://${REDIS_URL_USER}:${REDIS_URL_PASS}@127.0.0.1:${down2}/0", timeout: 500ms } }\n`,
      ) + "endpoints:\n" + mem,
      ["chat"],
    ],
    [
      "rest store down",
      header(
        `session: { type: redis, redis: { url: "http://127.0.0.1:${down3}", token: "${REST_TOKEN}", timeout: 500ms } }\n`,
      ) + "endpoints:\n" + mem,
      ["chat"],
    ],
    [
      "resp store refuses the password",
      header(
        `session: { type: redis, redis: { addr: "${REDIS_REAL.hostname}:${
          REDIS_REAL.port || 6379
        }", username: "${REDIS_USER}", password: "${REDIS_PASS}", timeout: 1s } }\n`,
      ) + "endpoints:\n" + mem,
      ["chat"],
    ],
    [
      "nats down",
      header() + "endpoints:\n" + mem +
      natsEndpoint("natsu", [
        `nats://${NATS_URL_USER}:${NATS_URL_PASS}@127.0.0.1:${down4}`,
        `${NATS_BARE_USER}:${NATS_BARE_PASS}@127.0.0.1:${down4}`,
      ]) +
      natsEndpoint("natsf", [`127.0.0.1:${down4}`], `, username: "${NATS_USER}", password: "${NATS_PASS}"`),
      ["chat", "natsu", "natsf"],
    ],
    [
      "nats down, token",
      header() + "endpoints:\n" + natsEndpoint("natst", [`127.0.0.1:${down4}`], `, token: "${NATS_TOKEN}"`),
      ["natst"],
    ],
    [
      "kafka down",
      header() + "endpoints:\n" + mem + kafkaEndpoint("kafkad", [`127.0.0.1:${down5}`]),
      ["chat", "kafkad"],
    ],
    [
      "kafka refuses SASL",
      header() + "endpoints:\n" + mem + kafkaEndpoint("kafkar", kafka.brokers),
      ["chat", "kafkar"],
    ],
    [
      "real brokers accept the credentials",
      header() + "endpoints:\n" +
      mqtt("mqttr", MQTT_REAL.replace("://", `://${MQTT_URL_USER}:${MQTT_URL_PASS}@`)) +
      mqtt("mqttrf", MQTT_REAL, `, username: "${MQTT_USER}", password: "${MQTT_PASS}"`) +
      natsEndpoint("natsr", [`nats://${NATS_URL_USER}:${NATS_URL_PASS}@${NATS_REAL}`]) +
      natsEndpoint("natsrt", [NATS_REAL], `, token: "${NATS_TOKEN}"`),
      ["mqttr", "mqttrf", "natsr", "natsrt"],
    ],
  ];
  // Three at a time: nine runtimes starting at once on a busy machine can miss start-up's deadline.
  for (let i = 0; i < scenarios.length; i += 3) {
    const batch = scenarios.slice(i, i + 3);
    runs.push(...await Promise.all(batch.map(([name, config, endpoints]) => start(name, config, endpoints))));
  }
});

after(async () => {
  await Promise.all(runs.map((r) => r.gw?.stop("SIGKILL")));
  await kafka?.stop();
});

/** Every secret found in `text`. */
const leaks = (text: string) => SECRETS.filter((s) => text.includes(s));

/** Does what a client can: publishes, subscribes over WebSocket (multiplexed and raw) and SSE, asks /readyz and /metrics. */
async function exercise(gw: Gateway, endpoints: string[]): Promise<void> {
  const good = await token("alice");
  const bearer = { Authorization: `Bearer ${good}` };
  const keep = async (response: Response) => {
    seen.push(`${response.status} ${[...response.headers].join(" ")} ${await response.text()}`);
  };
  for (const endpoint of [...endpoints, "no-such-endpoint"]) {
    const id = unique("pub");
    await keep(
      await fetch(`${gw.http}/publish/${endpoint}?clientId=${id}`, {
        method: "POST",
        body: JSON.stringify({ n: 1 }),
        headers: bearer,
      }),
    );
    await keep(await fetch(`${gw.http}/publish/${endpoint}?clientId=${id}`, { method: "POST", body: "{" }));
  }

  const id = unique("ws");
  const socket = await TestSocket.open(`${gw.ws}/ws?clientId=${id}&token=${good}`).catch(() => undefined);
  if (socket) {
    for (const endpoint of endpoints) {
      socket.send({ type: "subscribe", endpoint, id: `s-${endpoint}` });
      await socket.next((f) => f.id === `s-${endpoint}`, 15_000).catch(() => {});
      socket.send({ type: "publish", endpoint, data: { hello: endpoint }, id: `p-${endpoint}` });
      await socket.next((f) => f.id === `p-${endpoint}`, 15_000).catch(() => {});
    }
    socket.send({ type: "nonsense" });
    await socket.next((f) => f.type === "error", 5_000).catch(() => {});
    await socket.close();
    seen.push(JSON.stringify(socket.frames), JSON.stringify(socket.closed ?? {}));
  } else {
    seen.push((await upgradeAnswer(gw, `/ws?clientId=${id}&token=${good}`)).body);
  }

  for (const endpoint of endpoints) {
    const raw = await TestSocket.open(`${gw.ws}/ws/${endpoint}?clientId=${unique("raw")}&token=${good}`)
      .catch(() => undefined);
    if (!raw) continue;
    raw.send(JSON.stringify({ raw: endpoint }));
    // Its own message comes back (publish and subscribe topics are the same), or its bind fails.
    await raw.until(() => raw.frames.length > 0 || raw.closed !== undefined, 5_000).catch(() => {});
    await raw.close();
    seen.push(
      JSON.stringify(raw.frames.map((f) => f instanceof Uint8Array ? new TextDecoder().decode(f) : f)),
    );
    seen.push(JSON.stringify(raw.closed ?? {}));
  }

  for (const endpoint of endpoints) {
    const sse = await SseClient.open(`${gw.http}/sse/${endpoint}?clientId=${unique("sse")}`, bearer);
    if (sse.body === undefined) {
      await sse.until(() => sse.events.some((e) => e.event !== "welcome") || sse.ended, 15_000).catch(
        () => {},
      );
      await sse.close();
    }
    seen.push(
      `${sse.status} ${sse.body ?? ""} ${JSON.stringify(sse.events)} ${JSON.stringify(sse.comments)}`,
    );
  }

  for (const path of ["/readyz", "/metrics", "/healthz"]) await keep(await fetch(`${gw.http}${path}`));
}

test(`secrets (${currentRuntime}): a refused JWT is never echoed, and the refusal says what was wrong`, async () => {
  const gw = runs.find((r) => r.name === "mqtt down")!.gw!;
  const cases: Array<[string, string, string]> = [
    ["expired", await token("alice", { exp: now() - 10 }), "token expired"],
    ["bad signature", await token("alice", {}, `another-secret-${RUN}`), "signature does not match"],
    ["not yet valid", await token("alice", { nbf: now() + 600 }), "token not valid yet (nbf)"],
    ["wrong audience", await token("alice", { aud: "someone-else" }), 'audience is not "mediation"'],
    ["wrong issuer", await token("alice", { iss: "https://evil.test" }), `issuer is not "${ISSUER}"`],
  ];
  const answers: string[] = [];
  for (const [what, jwt, reason] of cases) {
    const id = unique("tok");
    const http = await fetch(`${gw.http}/publish/chat?clientId=${id}`, {
      method: "POST",
      body: "{}",
      headers: { Authorization: `Bearer ${jwt}` },
    });
    const ws = await upgradeAnswer(gw, `/ws?clientId=${id}&token=${jwt}`);
    const sse = await SseClient.open(`${gw.http}/sse/chat?clientId=${id}`, {
      Authorization: `Bearer ${jwt}`,
    });
    const sseQuery = await SseClient.open(`${gw.http}/sse/chat?clientId=${id}&token=${jwt}`);
    const bodies = [
      ["http", http.status, await http.text()],
      ["ws", ws.status, ws.body],
      ["sse", sse.status, sse.body ?? ""],
      ["sse ?token", sseQuery.status, sseQuery.body ?? ""],
    ] as const;
    for (const [via, status, body] of bodies) {
      assert.equal(status, 401, `${what} over ${via}`);
      const parsed = JSON.parse(body) as { code: string; message: string };
      assert.equal(parsed.code, "UNAUTHENTICATED", `${what} over ${via}`);
      assert.equal(parsed.message, `invalid token: ${reason}`, `${what} over ${via}`);
      answers.push(body);
    }
    const log = gw.output();
    assert.ok(
      log.includes(`UNAUTHENTICATED invalid token: ${reason}`),
      `${what}: the debug line says why:\n${log}`,
    );
    for (const part of [jwt, ...jwt.split(".")]) {
      for (const body of answers) {
        assert.ok(!body.includes(part), `${what}: a 401 body quotes the token: ${body}`);
      }
      assert.ok(!log.includes(part), `${what}: the log quotes the token:\n${log}`);
    }
  }
});

test(`secrets (${currentRuntime}): no credential of an endpoint or store, up or down, reaches a client or the log`, async () => {
  for (const run of runs) {
    if (run.gw) await exercise(run.gw, run.endpoints);
  }
  // The clients' view of the real brokers is a working one: the credentials did not stop them.
  const real = runs.find((r) => r.name.startsWith("real"))!;
  assert.ok(real.gw, `the gateway on the real brokers started:\n${real.output()}`);
  await Promise.all(runs.map((r) => r.gw?.stop()));
  for (const text of seen) assert.deepEqual(leaks(text), [], `a client got ${text}`);
  if (process.env.SECRETS_DUMP) {
    (await import("node:fs")).writeFileSync(
      process.env.SECRETS_DUMP,
      runs.map((r) => `=== ${r.name}\n${r.output()}`).join("\n") + "\n=== seen\n" + seen.join("\n"),
    );
  }
  for (const run of runs) {
    assert.deepEqual(leaks(run.output()), [], `${run.name}: the log holds a secret:\n${run.output()}`);
  }
  // And the messages still say where: the broker's address with its credentials cut out.
  const mqttDown = runs.find((r) => r.name === "mqtt down")!;
  assert.match(mqttDown.output(), /mqtt:\/\/\*\*\*@127\.0\.0\.1:\d+/);
  assert.ok(
    seen.some((s) => /MQTT broker mqtt:\/\/\*\*\*@127\.0\.0\.1:\d+ is unreachable/.test(s)),
    "the 503 names the broker without its credentials",
  );
});
