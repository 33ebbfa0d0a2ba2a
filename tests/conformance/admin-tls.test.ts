/**
 * `admin.tls` under the runtime that runs the tests: the admin listener serves HTTPS with a
 * certificate of its own (signed by a test CA, tests/support/tls.ts) while the clients' port stays
 * plain HTTP, and SIGHUP serves the admin listener's new certificate.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, test } from "node:test";
import { adminUrl } from "../support/admin.ts";
import { startGateway } from "../support/gateway-process.ts";
import { currentRuntime } from "../support/runtime.ts";
import { servedSerial, testCa, trustingFetch } from "../support/tls.ts";

const dir = mkdtempSync(join(tmpdir(), "mediation-admin-tls-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const authority = testCa(dir);
const first = authority.leaf("admin-first");
const second = authority.leaf("admin-second");
const TOKEN = `tls-admin-token-${crypto.randomUUID()}`;

test(`admin tls (${currentRuntime}): HTTPS on the admin listener, plain HTTP for clients, SIGHUP rotates`, async () => {
  const cert = join(dir, "admin.crt");
  const key = join(dir, "admin.key");
  writeFileSync(cert, first.cert);
  writeFileSync(key, first.key);
  const gw = await startGateway(
    currentRuntime,
    `server: { host: 127.0.0.1, port: 0 }
admin: { enabled: true, port: 0, tokens: ["${TOKEN}"], tls: { cert: "${cert}", key: "${key}" } }
endpoints: [{ name: chat, type: memory }]
`,
  );
  try {
    const base = await adminUrl(gw);
    assert.match(base, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(gw.http, /^http:\/\//, "the clients' port is plain HTTP");
    assert.match(
      gw.output(),
      // The log drops a serial's leading zeros; openssl prints them.
      new RegExp(
        `\\[Admin\\] TLS certificate subject="CN=admin-first" serial=0*${first.serial.replace(/^0+/, "")}`,
      ),
    );
    const nodes = await trustingFetch(`${base}/admin/nodes`, authority.ca, {
      headers: { Authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(nodes.status, 200);
    assert.equal((await nodes.json()).nodes.length, 1);
    // Plain HTTP on the admin port is not served.
    await assert.rejects(fetch(base.replace("https:", "http:") + "/admin/nodes").then((r) => r.text()));
    const port = Number(new URL(base).port);
    assert.equal(await servedSerial(port, authority.caFile), first.serial);

    writeFileSync(cert, second.cert);
    writeFileSync(key, second.key);
    process.kill(gw.pid(), "SIGHUP");
    const deadline = Date.now() + 10_000;
    while (!gw.output().includes("[Admin] SIGHUP: serving the new TLS certificate")) {
      if (Date.now() > deadline) throw new Error(`no rotation:\n${gw.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(await servedSerial(port, authority.caFile), second.serial);
  } finally {
    assert.equal(await gw.stop(), 0, gw.output());
  }
});
