/**
 * serve(): the port is bound before the engine starts, a bind that fails names the address, and
 * requests that arrive while the engine starts wait for it (the probes do not).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { memoryLogger } from "../../src/core/logger.ts";
import { createEngine } from "../../src/engine.ts";
import type { Engine } from "../../src/engine.ts";
import { serve } from "../../src/serve.ts";
import type { Adapter } from "../../src/serve.ts";

const CONFIG = "server: { host: 127.0.0.1, port: 18080 }\nendpoints: [{ name: chat, type: memory }]\n";

/** An adapter that serves nothing: it hands the app to `onListen` (or throws `bindError`). */
function fakeAdapter(
  onListen: (fetch: (request: Request) => Response | Promise<Response>) => void,
  bindError?: unknown,
) {
  const adapter: Adapter = {
    runtime: "fake",
    hooks: () => ({
      upgradeWebSocket: () => Promise.resolve(undefined),
      bufferedAmount: () => 0,
      keepStreamOpen: () => {},
      remoteAddress: () => "127.0.0.1",
    }),
    listen(app) {
      if (bindError) throw bindError;
      onListen((request) => app.fetch(request));
      return { hostname: "127.0.0.1", port: 18080, stopAccepting: () => Promise.resolve() };
    },
    onSignal: () => {},
    exit: () => {
      throw new Error("exit");
    },
  };
  return adapter;
}

async function engineWith(logger = memoryLogger()): Promise<{ engine: Engine; logger: typeof logger }> {
  return { engine: await createEngine({ configText: CONFIG, env: {}, logger }), logger };
}

test("serve: a port that cannot be bound names the address, and the engine never starts", async () => {
  for (
    const [code, problem] of [
      ["EADDRINUSE", "address already in use"],
      ["EACCES", "permission denied"],
      [undefined, "something odd"],
    ]
  ) {
    const { engine, logger } = await engineWith();
    let started = false;
    engine.start = () => {
      started = true;
      return Promise.resolve();
    };
    const error = Object.assign(new Error("something odd"), code ? { code } : {});
    await assert.rejects(
      serve(engine, fakeAdapter(() => {}, error)),
      (e: Error) => e.message.startsWith(`cannot listen on 127.0.0.1:18080: ${problem}`),
    );
    assert.equal(started, false, "the engine is not started");
    assert.deepEqual(logger.lines.filter((l) => /started|Listening/.test(l)), []);
  }
});

test("serve: bound before the engine starts; requests wait for the start, the probes do not", async () => {
  const { engine, logger } = await engineWith();
  const start = engine.start.bind(engine);
  let finish!: () => void;
  const startCalled = new Promise<void>((resolve) => {
    engine.start = async () => {
      resolve();
      await new Promise<void>((release) => finish = release);
      await start();
    };
  });
  let fetch!: (request: Request) => Response | Promise<Response>;
  const serving = serve(engine, fakeAdapter((f) => fetch = f));
  await startCalled;
  assert.ok(fetch, "listening before the engine starts");
  assert.equal((await fetch(new Request("http://gw/healthz"))).status, 200);
  assert.equal((await fetch(new Request("http://gw/readyz"))).status, 503, "not ready while starting");
  let answered = false;
  const publish = Promise.resolve(
    fetch(new Request("http://gw/publish/chat?clientId=a", { method: "POST", body: "{}" })),
  ).then((response) => {
    answered = true;
    return response;
  });
  // Nothing to wait for here: the check is that, given time, the publish is still not answered.
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(answered, false, "a publish waits for the start");
  assert.deepEqual(logger.lines.filter((l) => /Listening/.test(l)), []);
  finish();
  assert.equal((await publish).status, 202);
  await serving;
  assert.equal((await fetch(new Request("http://gw/readyz"))).status, 200);
  assert.ok(logger.lines.some((l) => /\[Server\] Listening on http:\/\/127\.0\.0\.1:18080 \(fake\)/.test(l)));
  await engine.stop();
});
