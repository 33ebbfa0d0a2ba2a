/**
 * The redaction helper: URL credentials, JWT-shaped text and the config's secret values out of
 * log lines and error messages.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { GatewayError } from "../../src/core/errors.ts";
import { memoryLogger } from "../../src/core/logger.ts";
import {
  configSecrets,
  redact,
  redactError,
  redactingLogger,
  redactUrl,
  rememberSecrets,
} from "../../src/core/redact.ts";

test("redact: the userinfo of any URL in a text, user name included", () => {
  assert.equal(
    redact("MQTT broker mqtt://bob:s3cretpw@127.0.0.1:1999 is unreachable"),
    "MQTT broker mqtt://***@127.0.0.1:1999 is unreachable",
  );
  assert.equal(
    redact("at nats://tok-only@h:4222, nats://u:p%40ss@[::1]:4222/x"),
    "at nats://***@h:4222, nats://***@[::1]:4222/x",
  );
  assert.equal(redactUrl(["redis://a:b@h:1", "redis://h:2"]), "redis://***@h:1, redis://h:2");
  assert.equal(redactUrl(["user:pw@h:4222", "h:4223"]), "***@h:4222, h:4223");
  assert.equal(redact("mail bob@example.com, see http://h/a@b"), "mail bob@example.com, see http://h/a@b");
});

test("redact: JWT-shaped text", () => {
  const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
  assert.equal(redact(`invalid token: token (${jwt}) expired`), "invalid token: token (***) expired");
});

test("redact: remembered config secrets, wherever they appear; short ones only inside URLs", () => {
  const secrets = configSecrets({
    endpoints: [
      {
        name: "m",
        url: "mqtt://urluser-1:url%2Fpass-1@h:1883",
        username: "field-user-1",
        password: "field-pw-1",
      },
      {
        name: "n",
        servers: ["nats://srv-user-1:srv-pw-1@h:4222", "bare-user-1:bare-pw-1@h:4223"],
        token: "nats-token-1",
      },
      {
        name: "k",
        brokers: ["h:9092"],
        sasl: { mechanism: "plain", username: "sasl-user-1", password: "sasl-pw-1" },
      },
    ],
    session: { redis: { host: "h", password: "redis-pw-1", keyPrefix: "mediation:session:" } },
    auth: { jwt: { secret: "jwt-secret-1" }, api_keys: [{ key: "api-key-1", subject: "fleet" }] },
  });
  for (
    const s of [
      "urluser-1",
      "url/pass-1",
      "url%2Fpass-1",
      "field-user-1",
      "field-pw-1",
      "srv-user-1",
      "srv-pw-1",
      "bare-user-1",
      "bare-pw-1",
      "nats-token-1",
      "sasl-user-1",
      "sasl-pw-1",
      "redis-pw-1",
      "jwt-secret-1",
      "api-key-1",
    ]
  ) assert.ok(secrets.has(s), s);
  assert.ok(!secrets.has("mediation:session:") && !secrets.has("fleet") && !secrets.has("h:9092"));
  rememberSecrets([...secrets, "ab"]);
  assert.equal(redact("SASL failed for sasl-user-1/sasl-pw-1"), "SASL failed for ***/***");
  assert.equal(redact("a tab of ab"), "a tab of ab");
  assert.equal(redact("redis://x:ab@h"), "redis://***@h");
});

test("redact: GatewayError messages and every logger line, errors given to error() too", () => {
  rememberSecrets(["pw-in-error-7"]);
  const e = new GatewayError("UPSTREAM_UNAVAILABLE", "MQTT broker mqtt://u:pw-in-error-7@h:1 is unreachable");
  assert.equal(e.message, "MQTT broker mqtt://***@h:1 is unreachable");
  assert.equal(GatewayError.from(new Error("auth pw-in-error-7 refused")).message, "auth *** refused");

  const inner = memoryLogger();
  const logger = redactingLogger(inner);
  logger.debug("debug mqtt://a:b@h");
  logger.info("info pw-in-error-7");
  logger.warn("warn pw-in-error-7");
  const cause = new Error("cause pw-in-error-7");
  logger.error("error pw-in-error-7", new Error("failed pw-in-error-7", { cause }));
  assert.deepEqual(inner.lines, [
    "DEBUG debug mqtt://***@h",
    "INFO info ***",
    "WARN warn ***",
    "ERROR error ***: failed ***",
  ]);
  // Members besides the four levels come through (a memory logger's lines), and a fields object is redacted too.
  assert.equal((logger as typeof inner).lines, inner.lines);
  (logger.info as (m: string, fields: unknown) => void)("with fields", { url: "nats://a:b@h", n: 1 });
  assert.equal(inner.lines.at(-1), "INFO with fields");
  const fieldsSeen: unknown[] = [];
  const spy = redactingLogger({ ...inner, info: (...args: unknown[]) => void fieldsSeen.push(...args) });
  (spy.info as (m: string, fields: unknown) => void)("m", { url: "nats://a:b@h", n: 1 });
  assert.deepEqual(fieldsSeen, ["m", { url: "nats://***@h", n: 1 }]);

  const copy = redactError(Object.assign(new Error("x pw-in-error-7", { cause }), { code: "E1" })) as
    & Error
    & {
      code: string;
    };
  assert.ok(copy instanceof Error);
  assert.equal(copy.code, "E1");
  assert.ok(!copy.stack?.includes("pw-in-error-7"));
  assert.equal((copy.cause as Error).message, "cause ***");
  const clean = new Error("nothing secret");
  assert.equal(redactError(clean), clean);
});

test("redact: a tls: mapping's key is a file path, not a secret (PEM text under it still is)", () => {
  const pem =
    "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n";
  const secrets = configSecrets({
    server: { tls: { cert: "/etc/gw/tls.crt", key: "/etc/gw/tls.key" } },
    endpoints: [{ name: "x", tls: { key: pem } }],
    auth: { api_keys: [{ key: "api-key-2", subject: "fleet" }] },
  });
  assert.ok(!secrets.has("/etc/gw/tls.key"));
  assert.ok(!secrets.has("/etc/gw/tls.crt"));
  assert.ok(secrets.has(pem));
  assert.ok(secrets.has("api-key-2"));
});
