/**
 * `server.tls` under the runtime that runs the tests: HTTPS through curl and WSS through a
 * WebSocket that trusts the test's own CA, certificates rotated with SIGHUP (openssl sees the new
 * serial; a bad file is a WARN and the old certificate stays), and start-up refused for a file
 * that is missing, unreadable as PEM, or the wrong key. No key text ever appears in the output.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, test } from "node:test";
import { startGateway } from "../support/gateway-process.ts";
import type { Gateway } from "../support/gateway-process.ts";
import { currentRuntime, ROOT, runArgs, runtimeBinary } from "../support/runtime.ts";
import { servedSerial, testCa, trustingFetch } from "../support/tls.ts";
import type { Leaf } from "../support/tls.ts";
import { TestSocket } from "../support/ws-client.ts";

const dir = mkdtempSync(join(tmpdir(), "mediation-tls-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const authority = testCa(dir);
const first = authority.leaf("first");
const second = authority.leaf("second");
const tag = `tls-${process.pid}-${Date.now().toString(36)}`;

/** The text of a PEM block, without its BEGIN/END lines: what must never be logged. */
const body = (pem: string) => pem.split("\n").filter((line) => line && !line.startsWith("-----")).join("");

function config(cert: string, key: string): string {
  return `server: { host: 127.0.0.1, port: 0, tls: { cert: "${cert}", key: "${key}" } }
endpoints: [{ name: chat, type: memory }]
`;
}

/** Puts `leaf` where the gateway's config points. */
function install(leaf: Pick<Leaf, "cert" | "key">, cert: string, key: string): void {
  writeFileSync(cert, leaf.cert);
  writeFileSync(key, leaf.key);
}

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(
      "curl",
      ["-sS", "--max-time", "10", ...args],
      (error, stdout, stderr) =>
        resolve({ code: error ? (error as { code?: number }).code ?? 1 : 0, stdout, stderr }),
    )
  );
}

/** Waits until `gateway` printed `pattern` `count` times. */
async function printed(gateway: Gateway, pattern: RegExp, count = 1): Promise<void> {
  const global = new RegExp(pattern.source, "g");
  const deadline = Date.now() + 15_000;
  while ((gateway.output().match(global)?.length ?? 0) < count) {
    if (Date.now() > deadline) assert.fail(`no ${pattern} in:\n${gateway.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test(`tls (${currentRuntime}): HTTPS through curl and WSS through a client that trusts the CA`, async () => {
  const cert = join(dir, "serve.crt");
  const key = join(dir, "serve.key");
  install(first, cert, key);
  const gateway = await startGateway(currentRuntime, config(cert, key));
  try {
    assert.match(gateway.http, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(gateway.output(), /\[Server\] Listening on https:\/\/127\.0\.0\.1:\d+/);
    assert.match(
      gateway.output(),
      new RegExp(`\\[Server\\] TLS certificate subject="CN=first" serial=${first.serial}`),
    );
    const health = await curl(["--cacert", authority.caFile, `${gateway.http}/healthz`]);
    assert.equal(health.code, 0, health.stderr);
    assert.equal(JSON.parse(health.stdout).status, "ok");
    // Not trusted without the CA: it is the certificate being checked, not plain HTTP.
    const untrusted = await curl([`${gateway.http}/healthz`]);
    assert.equal(untrusted.code, 60, `curl exit ${untrusted.code}: ${untrusted.stderr}`);
    const published = await curl([
      "--cacert",
      authority.caFile,
      "-X",
      "POST",
      "-H",
      "Content-Type: application/json",
      "--data",
      '{"over":"https"}',
      "-w",
      "%{http_code}",
      "-o",
      "/dev/null",
      `${gateway.http}/publish/chat?clientId=${tag}-curl`,
    ]);
    assert.equal(published.stdout, "202", published.stderr);

    const socket = await TestSocket.open(`${gateway.ws}/ws?clientId=${tag}-wss`, authority.ca);
    const welcome = await socket.next((f) => f.type === "welcome");
    assert.equal(welcome.clientId, `${tag}-wss`);
    socket.send({ type: "subscribe", endpoint: "chat" });
    socket.send({ type: "publish", endpoint: "chat", data: { over: "wss" }, id: "p1" });
    await socket.next((f) => f.type === "receipt" && f.id === "p1");
    await socket.close();
    assert.equal(await servedSerial(Number(new URL(gateway.http).port), authority.caFile), first.serial);
  } finally {
    assert.equal(await gateway.stop(), 0, gateway.output());
  }
  assert.ok(!gateway.output().includes(body(first.key).slice(0, 40)), "no key text in the output");
});

test(`tls (${currentRuntime}): SIGHUP serves the new certificate; a bad one is a WARN and the old stays`, async () => {
  const cert = join(dir, "rotate.crt");
  const key = join(dir, "rotate.key");
  install(first, cert, key);
  const gateway = await startGateway(currentRuntime, config(cert, key));
  const port = Number(new URL(gateway.http).port);
  try {
    assert.equal(await servedSerial(port, authority.caFile), first.serial);
    const live = await TestSocket.open(`${gateway.ws}/ws?clientId=${tag}-live`, authority.ca);
    await live.next((f) => f.type === "welcome");
    const stream = await trustingFetch(`${gateway.http}/sse/chat?clientId=${tag}-sse`, authority.ca);
    assert.equal(stream.status, 200);
    const events = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
    let received = "";
    const read = (async () => {
      for (let chunk = await events.read(); !chunk.done; chunk = await events.read()) received += chunk.value;
    })().catch(() => {});
    await printed(gateway, new RegExp(`\\[SSE\\] Connection opened client=${tag}-sse`));

    install(second, cert, key);
    process.kill(gateway.pid(), "SIGHUP");
    await printed(
      gateway,
      new RegExp(`SIGHUP: serving the new TLS certificate subject="CN=second" serial=${second.serial}`),
    );
    assert.equal(await servedSerial(port, authority.caFile), second.serial);
    const health = await curl(["--cacert", authority.caFile, `${gateway.http}/healthz`]);
    assert.equal(health.code, 0, health.stderr);
    if (currentRuntime !== "deno") {
      // Bun's old listener stops accepting and its sockets go on; Node swaps the certificate of
      // its one listener in place.
      live.send({ type: "ping" });
      await live.next((f) => f.type === "pong");
      await live.close();
    } else {
      // Deno.serve closes its WebSockets when its listener stops (1001): the client resumes.
      assert.equal((await live.closedBy()).code, 1001);
      const again = await TestSocket.open(`${gateway.ws}/ws?clientId=${tag}-live`, authority.ca);
      const welcome = await again.next((f) => f.type === "welcome");
      assert.equal(welcome.resumed, true);
      await again.close();
    }

    // An SSE stream of the old listener goes on, on either runtime.
    const published = await curl([
      "--cacert",
      authority.caFile,
      "-X",
      "POST",
      "-H",
      "Content-Type: application/json",
      "--data",
      '{"after":"rotation"}',
      `${gateway.http}/publish/chat?clientId=${tag}-pub`,
    ]);
    assert.equal(published.code, 0, published.stderr);
    const deadline = Date.now() + 10_000;
    while (!received.includes('{"after":"rotation"}')) {
      if (Date.now() > deadline) assert.fail(`the SSE stream got no message after the rotation: ${received}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await events.cancel();
    await read;

    // Unreadable, mismatched or missing files: a WARN each, and the second certificate stays.
    const bad: Array<[() => void, RegExp]> = [
      [
        () => writeFileSync(cert, "not a certificate\n"),
        /server\.tls\.cert: .*rotate\.crt holds no readable PEM certificate/,
      ],
      [
        () => install({ cert: first.cert, key: second.key }, cert, key),
        /server\.tls: the key in .*rotate\.key is not the key of the certificate/,
      ],
      [() => rmSync(key), /server\.tls\.key: .*rotate\.key: no such file/],
    ];
    for (const [index, [breakIt, problem]] of bad.entries()) {
      breakIt();
      process.kill(gateway.pid(), "SIGHUP");
      await printed(gateway, /WARN \[Server\] SIGHUP: keeping the current certificate: /, index + 1);
      assert.match(gateway.output(), problem);
      assert.equal(await servedSerial(port, authority.caFile), second.serial);
    }
    // And a good pair again is taken.
    install(first, cert, key);
    process.kill(gateway.pid(), "SIGHUP");
    await printed(gateway, new RegExp(`SIGHUP: serving the new TLS certificate subject="CN=first"`));
    assert.equal(await servedSerial(port, authority.caFile), first.serial);
  } finally {
    assert.equal(await gateway.stop(), 0, gateway.output());
  }
  for (const leaf of [first, second]) {
    assert.ok(!gateway.output().includes(body(leaf.key).slice(0, 40)), "no key text in the output");
  }
});

/** Runs the gateway until it exits (or 15 s, then it is killed and `code` is null). */
function runGateway(configText: string): Promise<{ code: number | null; output: string }> {
  const file = join(dir, `bad-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, configText);
  const child = spawn(
    runtimeBinary(currentRuntime),
    runArgs(currentRuntime, "src/main.ts", ["--config", file]),
    {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  child.stdout.on("data", (chunk) => output += chunk);
  child.stderr.on("data", (chunk) => output += chunk);
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, 15_000);
  return new Promise((resolve) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: killed ? null : code, output });
    })
  );
}

test(`tls (${currentRuntime}): a missing file, a file that is no PEM, or another certificate's key stops start-up`, async () => {
  const garbage = join(dir, "garbage.pem");
  writeFileSync(garbage, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n");
  const firstCert = join(dir, "first.crt");
  const firstKey = join(dir, "first.key");
  const secondKey = join(dir, "second.key");
  const cases: Array<[string, string, RegExp]> = [
    [join(dir, "missing.crt"), firstKey, /server\.tls\.cert: .*missing\.crt: no such file/],
    [firstCert, join(dir, "missing.key"), /server\.tls\.key: .*missing\.key: no such file/],
    [garbage, firstKey, /server\.tls\.cert: .*garbage\.pem holds no readable PEM certificate/],
    [firstCert, garbage, /server\.tls\.key: .*garbage\.pem holds no readable PEM private key/],
    [firstKey, firstKey, /server\.tls\.cert: .*first\.key holds no readable PEM certificate/],
    [
      firstCert,
      secondKey,
      /server\.tls: the key in .*second\.key is not the key of the certificate in .*first\.crt/,
    ],
    [firstCert, dir, /server\.tls\.key: .*: a directory, not a file/],
  ];
  for (const [cert, key, problem] of cases) {
    const run = await runGateway(config(cert, key));
    assert.equal(run.code, 1, run.output);
    assert.match(run.output, /ERROR \[Server\] Start-up failed/);
    assert.match(run.output, problem);
    assert.doesNotMatch(run.output, /Listening/);
    assert.ok(!run.output.includes(body(first.key).slice(0, 40)), "no key text in the output");
  }
  // An encrypted key is named as such: the gateway takes no passphrase.
  const encrypted = join(dir, "encrypted.key");
  copyFileSync(firstKey, join(dir, "plain.key"));
  await new Promise<void>((resolve, reject) =>
    execFile(
      "openssl",
      ["pkcs8", "-topk8", "-in", join(dir, "plain.key"), "-out", encrypted, "-passout", "pass:secret-pass"],
      (error) => error ? reject(error) : resolve(),
    )
  );
  const run = await runGateway(config(firstCert, encrypted));
  assert.equal(run.code, 1, run.output);
  assert.match(run.output, /server\.tls\.key: .*encrypted\.key is encrypted/);
  // And a config without a key is a config error (exit 2), naming the key path.
  const noKey = await runGateway(
    `server: { tls: { cert: "${firstCert}" } }\nendpoints: [{ name: chat, type: memory }]\n`,
  );
  assert.equal(noKey.code, 2, noKey.output);
  assert.match(noKey.output, /server\.tls\.key: expected a path to a PEM private key file, got nothing/);
});
