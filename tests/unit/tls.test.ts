/** loadTls: what the certificate log line says of a certificate, as openssl would say it. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadTls } from "../../src/tls.ts";
import { testCa } from "../support/tls.ts";

const dir = mkdtempSync(join(tmpdir(), "tls-unit-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("tls: the logged serial is the one openssl prints, a leading zero digit included", () => {
  const ca = testCa(dir);
  for (const hex of ["05AB12", "1A2B3C"]) {
    const leaf = ca.leaf(`serial-${hex}`, hex);
    assert.equal(leaf.serial, hex, "what openssl prints");
    const cert = join(dir, `${hex}.crt`);
    const key = join(dir, `${hex}.key`);
    writeFileSync(cert, leaf.cert);
    writeFileSync(key, leaf.key);
    const { summary } = loadTls({ cert, key }, "server.tls");
    assert.match(summary, new RegExp(` serial=${hex} `));
    assert.match(summary, /^subject="CN=serial-/);
  }
});
