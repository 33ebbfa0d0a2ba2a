/**
 * The admin API's parts that need no process: the OpenAPI document says exactly the routes
 * src/admin/routes.ts defines (both ways, method by method), the config's `admin:` section, and
 * the token check.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { adminTokens, bearer } from "../../src/admin/auth.ts";
import { openApi } from "../../src/admin/openapi.ts";
import { createAdminApp } from "../../src/admin/routes.ts";
import { parseConfig } from "../../src/config/load.ts";
import { Engine } from "../../src/engine.ts";
import { memoryLogger } from "../../src/core/logger.ts";
import { VirtualClock } from "../../src/core/virtual-clock.ts";

const TOKEN = "a-token-of-sixteen-chars";

function engine() {
  const { config } = parseConfig(
    JSON.stringify({
      admin: { enabled: true, tokens: [TOKEN, { name: "ci", token: "another-token-16-chars" }] },
      endpoints: [{ name: "chat", type: "memory" }],
    }),
    {},
    "the test",
  );
  return new Engine(config, { scheduler: new VirtualClock(), logger: memoryLogger() });
}

test("admin api: the OpenAPI document describes every route, and only those", () => {
  const app = createAdminApp(engine(), { drain: () => {} });
  const routes = new Set(
    app.routes.filter((r) => r.method !== "ALL").map((r) =>
      `${r.method.toLowerCase()} ${r.path.replace(/:([A-Za-z]+)/g, "{$1}")}`
    ),
  );
  const described = new Set(
    Object.entries(openApi.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m} ${path}`)
    ),
  );
  assert.deepEqual([...routes].sort(), [...described].sort());
  // Every path parameter is declared where it is used.
  for (const [path, methods] of Object.entries(openApi.paths)) {
    const names = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    for (const [method, operation] of Object.entries(methods)) {
      const declared = ((operation as { parameters?: Array<{ name: string; in: string }> }).parameters ?? [])
        .filter((p) => p.in === "path").map((p) => p.name);
      assert.deepEqual(declared, names, `${method} ${path}`);
    }
  }
});

test("admin api: every route but the page and the document needs a token", async () => {
  const e = engine();
  const app = createAdminApp(e, { drain: () => {} });
  for (const [path, methods] of Object.entries(openApi.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      const open = Array.isArray((operation as { security?: unknown[] }).security);
      const url = `http://admin${path.replace(/\{\w+\}/g, "x")}`;
      const answer = await app.fetch(new Request(url, { method: method.toUpperCase() }));
      await answer.body?.cancel();
      if (open) assert.notEqual(answer.status, 401, `${method} ${path} is open`);
      else assert.equal(answer.status, 401, `${method} ${path} needs a token`);
    }
  }
});

test("admin api: tokens are known by name or place, never by their value", () => {
  const tokens = adminTokens([TOKEN, { name: "ci", token: "another-token-16-chars" }]);
  assert.equal(tokens.who(TOKEN), "#1");
  assert.equal(tokens.who("another-token-16-chars"), "ci");
  assert.equal(tokens.who(`${TOKEN}x`), undefined);
  assert.equal(tokens.who(TOKEN.slice(0, -1)), undefined);
  assert.equal(tokens.who(""), undefined);
  assert.equal(tokens.who(undefined), undefined);
  assert.equal(bearer(`Bearer ${TOKEN}`), TOKEN);
  assert.equal(bearer(`bearer  ${TOKEN} `), TOKEN);
  assert.equal(bearer(`Basic ${TOKEN}`), undefined);
  assert.equal(bearer(undefined), undefined);
});

test("admin api: the config section is off by default, on its own port, and needs tokens when on", () => {
  const parse = (admin: unknown) =>
    parseConfig(JSON.stringify({ admin, endpoints: [{ name: "chat", type: "memory" }] }), {}, "the test")
      .config
      .admin;
  assert.deepEqual(parse(undefined), {
    enabled: false,
    host: "127.0.0.1",
    port: 9090,
    tokens: [],
    drain_time: 30_000,
  });
  assert.equal(parse({ enabled: true, tokens: [TOKEN], drain_time: "5s" }).drain_time, 5000);
  assert.throws(() => parse({ enabled: true }), /admin.tokens: expected at least one token/);
  assert.throws(() => parse({ enabled: true, tokens: ["short"] }), /at least 16 characters/);
  assert.throws(
    () => parse({ enabled: true, tokens: [{ name: "x", token: TOKEN }, { name: "x", token: TOKEN }] }),
    /unique/,
  );
  assert.throws(() => parse({ tls: {} }), /admin.tls.cert: expected a path/);
  assert.throws(() => parse({ tsl: {} }), /unknown key/);
});
