/**
 * The console's files are imported as text (src/console/routes.ts), so a single executable
 * carries them: the table of the client library's modules lists every file of client/src/, each
 * as it is on disk.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { test } from "node:test";
import { CLIENT_MODULES } from "../../src/console/routes.ts";

test("console files: every module of client/src/ is served, as it is on disk", () => {
  const dir = resolve(import.meta.dirname ?? ".", "../../client/src");
  const files = readdirSync(dir).filter((f) => f.endsWith(".js")).sort();
  assert.deepEqual(Object.keys(CLIENT_MODULES).sort(), files);
  for (const file of files) {
    assert.equal(CLIENT_MODULES[file], readFileSync(resolve(dir, file), "utf8"), file);
  }
});
