/**
 * The endpoint type registry: built-in types listed by name, the config schema assembled from
 * them (strict keys, did-you-mean, defaults), and types from outside the repo through
 * `endpoint_modules:` and `createEngine({ endpointTypes })`.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as v from "valibot";
import { ConfigError, loadConfig, parseConfig, readConfig } from "../../src/config/load.ts";
import { defineEndpoint } from "../../src/endpoints/definition.ts";
import { builtinEndpointTypes } from "../../src/endpoints/builtins.ts";
import { EndpointRegistry } from "../../src/endpoints/registry.ts";
import { MemoryEndpoint } from "../../src/endpoints/memory/memory-endpoint.ts";
import { createEngine } from "../../src/engine.ts";
import echo from "../support/echo-endpoint.ts";

const problems = async (run: () => unknown) => {
  try {
    await run();
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems;
  }
  assert.fail("expected a ConfigError");
};

test("registry: the built-in types are listed by name, memory first", () => {
  assert.deepEqual(builtinEndpointTypes.types, ["memory", "kafka", "mqtt", "nats"]);
});

test("registry: every folder under src/endpoints/ with a definition.ts is in the built-in list", () => {
  const root = resolve(import.meta.dirname ?? ".", "../../src/endpoints");
  const folders = readdirSync(root, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(root, entry.name, "definition.ts")))
    .map((entry) => entry.name);
  assert.deepEqual([...builtinEndpointTypes.types].sort(), folders.sort());
});

test("registry: an endpoint type close to a known one gets a did-you-mean; a type's keys are strict", async () => {
  assert.deepEqual(await problems(() => parseConfig("endpoints: [{ name: a, type: nast }]", {})), [
    'endpoints[0].type: expected an endpoint of type "memory", "kafka", "mqtt" or "nats", got "nast" (did you mean "nats"?)',
  ]);
  assert.deepEqual(
    await problems(() =>
      parseConfig(
        `endpoints:
  - { name: n, type: nats, servers: ["h:4222"], stream: S, publish_subject: "a.{clientId}", subscribe_subject: b, ack_wiat: 1s }
  - { name: m, type: memory, servers: ["h:4222"] }
`,
        {},
      )
    ),
    [
      'endpoints[0].ack_wiat: unknown key (did you mean "ack_wait"?)',
      "endpoints[1].servers: unknown key (expected one of name, type, publish_topic, subscribe_topic, queue_limit, queue_bytes, total_bytes, acl)",
    ],
  );
});

test("registry: a nats entry, its defaults and its problems", async () => {
  const { config } = parseConfig(
    `endpoints:
  - { name: events, type: nats, servers: ["127.0.0.1:4222"], stream: EVENTS, publish_subject: "app.{clientId}.up", subscribe_subject: "app.{clientId}.down" }
`,
    {},
  );
  const [nats] = config.endpoints;
  assert.deepEqual(
    [nats.create_stream, nats.publish_timeout, nats.ack_wait, nats.max_ack_pending],
    [true, 10_000, 300_000, 1000],
  );
  assert.deepEqual(
    await problems(() =>
      parseConfig(
        `endpoints:
  - { name: e, type: nats, servers: [localhost], stream: "a.b", publish_subject: "app.*", subscribe_subject: "x y" }
`,
        {},
      )
    ),
    [
      'endpoints[0].servers[0]: expected a NATS server "host:port" or nats:// URL, got "localhost"',
      'endpoints[0].stream: expected a stream name of A-Z a-z 0-9 _ -, got "a.b"',
      'endpoints[0].publish_subject: expected a subject template (no wildcards), got "app.*"',
      'endpoints[0].subscribe_subject: expected a subject template (tokens, *, >, {param}), got "x y"',
    ],
  );
});

test("registry: endpoint_modules loads types from outside the repo, relative to the config file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "registry-"));
  try {
    const file = join(dir, "gateway.yaml");
    writeFileSync(
      file,
      `endpoint_modules: [${JSON.stringify(resolve("tests/support/echo-endpoint.ts"))}]
endpoints: [{ name: e, type: echo, queue_limit: "\${Q}" }, { name: chat, type: memory }]
`,
    );
    const { config, registry } = await loadConfig(file, { Q: "5" });
    assert.deepEqual(config.endpoints[0], { name: "e", type: "echo", topic: "echo", queue_limit: 5 });
    assert.deepEqual(registry.types, ["memory", "kafka", "mqtt", "nats", "echo"]);
    const relative = await readConfig(
      "endpoint_modules: [./tests/support/echo-endpoint.ts]\nendpoints: [{ name: e, type: echo }]",
      {},
      { base: resolve(".") },
    );
    assert.equal(relative.config.endpoints[0].topic, "echo");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.deepEqual(
    await problems(() =>
      readConfig("endpoints: [{ name: e, type: echo, topic: 'a#' }]", {}, { endpointTypes: [echo] })
    ),
    ['endpoints[0].topic: expected no "#", got "a#"'],
  );
  const bad = await problems(() =>
    readConfig(
      "endpoint_modules: [./nope.ts, ./tests/support/net.ts]\nendpoints: [{ name: e, type: memory }]",
      {},
    )
  );
  assert.equal(bad.length, 2);
  assert.match(bad[0], /^endpoint_modules\[0\]: cannot load \.\/nope\.ts: /);
  assert.match(
    bad[1],
    /^endpoint_modules\[1\]: expected \.\/tests\/support\/net\.ts to default-export an endpoint definition/,
  );
  assert.deepEqual(
    await problems(() =>
      readConfig("endpoints: [{ name: e, type: memory }]", {}, {
        endpointTypes: [defineEndpoint({ ...echo, type: "memory" })],
      })
    ),
    ['endpoint_modules: endpoint type "memory" is registered twice'],
  );
});

test("registry: a definition may not take the keys every endpoint has", () => {
  assert.throws(
    () =>
      new EndpointRegistry([
        defineEndpoint({
          type: "x",
          options: { acl: v.string() },
          create: () => echo.create({ name: "x", type: "x", topic: "t", queue_limit: 1 }, undefined!),
        }),
      ]),
    /options may not name acl/,
  );
  assert.throws(
    () => new EndpointRegistry([{ ...echo, type: "Bad Type" }]),
    /type: expected 1-32 characters/,
  );
});

test("registry: createEngine({ endpointTypes }) makes endpoints of a type from outside", async () => {
  const engine = await createEngine({
    configText: "endpoints: [{ name: e, type: echo }]\nlog: { level: error }",
    endpointTypes: [echo],
  });
  assert.deepEqual(engine.hub.endpointNames, ["e"]);
  assert.ok(engine.hub.endpoints.get("e") instanceof MemoryEndpoint);
  await engine.store.close();
});
