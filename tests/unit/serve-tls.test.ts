/**
 * serve() with `server.tls`, over a fake adapter: the adapter gets the checked PEM text, SIGHUP
 * is handled only with TLS, and each SIGHUP reads the files again and hands the adapter what they
 * hold, or logs a WARN (a bad file, a runtime that cannot rotate) and keeps the certificate.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { memoryLogger } from "../../src/core/logger.ts";
import { createEngine } from "../../src/engine.ts";
import { serve } from "../../src/serve.ts";
import type { Adapter, Listening, Signal } from "../../src/serve.ts";
import type { TlsMaterial } from "../../src/tls.ts";
import { testCa } from "../support/tls.ts";

const dir = mkdtempSync(join(tmpdir(), "mediation-serve-tls-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const authority = testCa(dir);
const first = authority.leaf("unit-first");
const second = authority.leaf("unit-second");
const cert = join(dir, "gw.crt");
const key = join(dir, "gw.key");

/** An adapter that serves nothing and records what serve() gives it. */
function fakeAdapter(rotate?: (tls: TlsMaterial) => Promise<void>) {
  const seen = { listened: [] as (TlsMaterial | undefined)[], signals: new Map<Signal, () => void>() };
  const adapter: Adapter = {
    runtime: "fake",
    hooks: () => ({
      upgradeWebSocket: () => Promise.resolve(undefined),
      bufferedAmount: () => 0,
      keepStreamOpen: () => {},
      remoteAddress: () => "127.0.0.1",
    }),
    listen(_app, _engine, tls) {
      seen.listened.push(tls);
      const listening: Listening = {
        hostname: "127.0.0.1",
        port: 18443,
        stopAccepting: () => Promise.resolve(),
      };
      if (tls && rotate) listening.rotateTls = rotate;
      return listening;
    },
    onSignal: (signal, handler) => void seen.signals.set(signal, handler),
    exit: () => {
      throw new Error("exit");
    },
  };
  return { adapter, seen };
}

async function started(configText: string, rotate?: (tls: TlsMaterial) => Promise<void>) {
  const logger = memoryLogger();
  const engine = await createEngine({ configText, env: {}, logger });
  const { adapter, seen } = fakeAdapter(rotate);
  await serve(engine, adapter);
  return { engine, logger, seen };
}

/** Sends the recorded SIGHUP and waits until a reload logged its outcome. */
async function hangUp(
  seen: { signals: Map<Signal, () => void> },
  logger: { lines: string[] },
): Promise<string> {
  const before = logger.lines.length;
  seen.signals.get("SIGHUP")!();
  for (let i = 0; i < 200; i++) {
    const line = logger.lines.slice(before).find((l) => /SIGHUP/.test(l));
    if (line) return line;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.fail("SIGHUP logged nothing");
}

const tlsConfig = `server: { host: 127.0.0.1, port: 18443, tls: { cert: "${cert}", key: "${key}" } }
endpoints: [{ name: chat, type: memory }]
`;

test("serve: without server.tls SIGHUP is not taken over, and the listener gets no TLS", async () => {
  const { engine, seen, logger } = await started(
    "server: { port: 18080 }\nendpoints: [{ name: chat, type: memory }]\n",
  );
  assert.deepEqual(seen.listened, [undefined]);
  assert.deepEqual([...seen.signals.keys()].sort(), ["SIGINT", "SIGTERM"]);
  assert.ok(logger.lines.some((l) => /Listening on http:\/\//.test(l)));
  await engine.stop();
});

test("serve: with server.tls the adapter gets the PEM text, and each SIGHUP rotates or keeps", async () => {
  writeFileSync(cert, first.cert);
  writeFileSync(key, first.key);
  const rotated: TlsMaterial[] = [];
  let refuse = false;
  const { engine, seen, logger } = await started(tlsConfig, (tls) => {
    if (refuse) return Promise.reject(new Error("the runtime said no"));
    rotated.push(tls);
    return Promise.resolve();
  });
  assert.deepEqual(seen.listened.map((t) => t && [t.cert, t.key]), [[first.cert, first.key]]);
  assert.ok(seen.signals.has("SIGHUP"));
  assert.ok(
    logger.lines.some((l) =>
      l.includes(`[Server] TLS certificate subject="CN=unit-first" serial=${first.serial}`)
    ),
  );
  assert.ok(logger.lines.some((l) => /Listening on https:\/\/127\.0\.0\.1:18443 \(fake\)/.test(l)));

  writeFileSync(cert, second.cert);
  writeFileSync(key, second.key);
  assert.match(
    await hangUp(seen, logger),
    new RegExp(
      `INFO \\[Server\\] SIGHUP: serving the new TLS certificate subject="CN=unit-second" serial=${second.serial}`,
    ),
  );
  assert.deepEqual(rotated.map((t) => [t.cert, t.key]), [[second.cert, second.key]]);

  // A key of another certificate: not handed to the runtime.
  writeFileSync(key, first.key);
  assert.match(
    await hangUp(seen, logger),
    /WARN \[Server\] SIGHUP: keeping the current certificate: server\.tls: the key in .*gw\.key is not the key of the certificate in .*gw\.crt/,
  );
  assert.equal(rotated.length, 1);

  // A runtime that refuses: its reason, and the certificate stays.
  writeFileSync(key, second.key);
  refuse = true;
  assert.match(
    await hangUp(seen, logger),
    /WARN \[Server\] SIGHUP: keeping the current certificate: the runtime said no/,
  );
  assert.equal(rotated.length, 1);

  for (const leaf of [first, second]) {
    const keyLine = leaf.key.split("\n")[1];
    assert.ok(!logger.lines.some((l) => l.includes(keyLine)), "no key text in the log");
  }
  await engine.stop();
});

test("serve: a runtime whose listener cannot rotate keeps its certificate with a WARN", async () => {
  writeFileSync(cert, first.cert);
  writeFileSync(key, first.key);
  const { engine, seen, logger } = await started(tlsConfig);
  assert.match(
    await hangUp(seen, logger),
    /WARN \[Server\] SIGHUP: keeping the current certificate: this runtime cannot change the certificate of its listener/,
  );
  await engine.stop();
});

test("serve: a certificate file that is missing stops start-up before the port is bound", async () => {
  const logger = memoryLogger();
  const engine = await createEngine({
    configText: tlsConfig.replace(cert, join(dir, "nowhere.crt")),
    env: {},
    logger,
  });
  const { adapter, seen } = fakeAdapter();
  await assert.rejects(serve(engine, adapter), /server\.tls\.cert: .*nowhere\.crt: no such file/);
  assert.deepEqual(seen.listened, []);
});
