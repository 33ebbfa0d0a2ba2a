/**
 * The operator's page (`/admin/` on the admin listener) in a real Chromium (Debian's
 * `/usr/bin/chromium`, driven by playwright-core, as tests/conformance/console.test.ts does), against
 * two gateway processes under the runtime that runs the test, sharing one Redis. A client of the
 * library (client/) on node B publishes and receives all along, so the charts move.
 *
 * Log in (a wrong token first), see both nodes and the figures, find the client by its ID,
 * disconnect it from node A's page and watch it resume (its epoch goes up, connected again), then
 * drain node A with the confirmation: the page shows it draining and the node exits 0.
 *
 * Screenshots stay in the test's temporary folder (the path is printed; `ADMIN_SCREENSHOTS=dir`
 * puts them there instead) for a person to look at.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import type { BrowserContext, Page } from "playwright-core";
import { connect } from "../../client/mod.js";
import type { Client } from "../../client/mod.js";
import { adminUrl } from "../support/admin.ts";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { keyPrefix, RespRedis } from "../support/redis.ts";
import { currentRuntime } from "../support/runtime.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const TOKEN = `page-token-${crypto.randomUUID()}`;
const prefix = keyPrefix("admin-page");
const redis = new RespRedis();
const run = crypto.randomUUID().slice(0, 8);
const config = (node: string) => `
server: { host: 127.0.0.1, port: 0, node_id: ${node}, shutdown_timeout: 3s }
admin: { enabled: true, port: 0, drain_time: 2s, tokens: [{ name: operator, token: "\${ADMIN_TOKEN}" }] }
session:
  type: redis
  reconnection_window: 60s
  lease: 3s
  redis: ${redis.config(prefix)}
endpoints:
  - { name: chat, type: memory }
`;

let a: Gateway;
let b: Gateway;
let browser: BrowserContext;
let client: Client | undefined;
let traffic: ReturnType<typeof setInterval> | undefined;
const dir = mkdtempSync(join(tmpdir(), "admin-page-test-"));
const shots = process.env.ADMIN_SCREENSHOTS ?? dir;

before(async () => {
  mkdirSync(shots, { recursive: true });
  const env = { ADMIN_TOKEN: TOKEN };
  [a, b, browser] = await Promise.all([
    startGateway(currentRuntime, config(`page-a-${run}`), env),
    startGateway(currentRuntime, config(`page-b-${run}`), env),
    chromium.launchPersistentContext(join(dir, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    }),
  ]);
  browser.setDefaultTimeout(15_000);
});
after(async () => {
  clearInterval(traffic);
  client?.close();
  await browser?.close();
  await Promise.all([a?.stop("SIGKILL"), b?.stop("SIGKILL")]);
  await redis.drop(prefix);
  await redis.stop();
  rmSync(join(dir, "profile"), { recursive: true, force: true });
});

async function until(what: string, predicate: () => Promise<boolean> | boolean, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!await predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The cells of the session row of `clientId`, as text. */
const row = (page: Page, clientId: string) =>
  page.$$eval(
    `#sessions tr[data-client="${clientId}"] td`,
    (cells) => cells.map((c) => (c as unknown as { textContent: string }).textContent),
  );

test(
  `admin page (${currentRuntime}): log in, find a client, disconnect it and watch it resume, drain a node`,
  {
    timeout: 90_000,
  },
  async () => {
    const clientId = `page-client-${run}`;
    const welcomes: boolean[] = [];
    const closes: number[] = [];
    client = connect({ url: `${b.ws}/ws`, clientId, backoff: { initialMs: 100, maxMs: 300 } });
    client.on("connected", (w) => welcomes.push(w.resumed));
    client.on("disconnected", (d) => closes.push(d.code));
    await client.subscribe("chat", undefined, () => {});
    let n = 0;
    traffic = setInterval(() => void client?.publish("chat", { n: ++n }).catch(() => {}), 50);

    const base = await adminUrl(a);
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(e.message));
    await page.goto(`${base}/admin/`);
    await page.fill("#token", "not-the-token-at-all");
    await page.click("#login-button");
    await page.waitForSelector("#login-error:not([hidden])");
    assert.match(await page.textContent("#login-error") ?? "", /not one of admin.tokens/);

    await page.fill("#token", TOKEN);
    await page.click("#login-button");
    await page.waitForSelector("#main:not([hidden])");
    await until(
      "both nodes listed",
      async () => (await page.$$(`#nodes tr[data-node$="${run}"]`)).length === 2,
    );
    // Node B's figures reach A's page through the store: B announces its connection count.
    await until(
      "B's connected client counted",
      async () =>
        (await page.textContent(`#nodes tr[data-node="page-b-${run}"] td:nth-child(5)`))?.trim() === "1",
    );
    // The client's traffic on B shows in A's charts and bindings, from B's announcements.
    await until(
      "messages in and out per second on the charts",
      async () =>
        parseFloat(await page.textContent("#rate-in") ?? "0") > 0 &&
        parseFloat(await page.textContent("#rate-out") ?? "0") > 0,
    );
    await until(
      "B's binding counted",
      async () =>
        (await page.$$eval(
          "#bindings td",
          (cells) => cells.map((c) => (c as unknown as { textContent: string }).textContent),
        ))
          .join(" ") === "chat 1",
    );

    await page.fill("#q-client", clientId);
    await page.click("#search-button");
    await page.waitForSelector(`#sessions tr[data-client="${clientId}"]`);
    const before = await row(page, clientId);
    assert.equal(before[1], "connected");
    assert.equal(before[4], `page-b-${run}`);
    assert.equal(before[5], "chat");
    const epoch = Number(before[2]);
    await page.screenshot({
      path: join(shots, `admin-page-${currentRuntime}-1-session.png`),
      fullPage: true,
    });

    await page.click(`#sessions tr[data-client="${clientId}"] button:has-text("Disconnect")`);
    await until("closed with 4000", () => closes.includes(4000));
    await until("resumed", () => welcomes.length >= 2);
    assert.deepEqual(welcomes, [false, true]);
    // The page searches again after the action; keep asking until the resumed session shows.
    await until("the page shows it connected again, with a newer epoch", async () => {
      await page.click("#search-button");
      await page.waitForSelector(`#sessions tr[data-client="${clientId}"]`);
      const now = await row(page, clientId);
      return now[1] === "connected" && Number(now[2]) > epoch;
    });
    assert.match(a.output(), /\[Admin\] operator: POST \/admin\/sessions\/[^ ]+\/disconnect -> 202/);

    await page.click("#drain");
    await page.waitForSelector("#drain-confirm:not([hidden])");
    assert.equal(await page.textContent("#drain-node"), `page-a-${run}`);
    await page.screenshot({
      path: join(shots, `admin-page-${currentRuntime}-2-drain-confirm.png`),
      fullPage: true,
    });
    await page.click("#drain-yes");
    await until(
      "the page says draining",
      async () => /Draining page-a-/.test(await page.textContent("#message") ?? ""),
    );
    await until(
      "node A shown draining",
      async () =>
        (await page.textContent(`#nodes tr[data-node="page-a-${run}"] td:nth-child(7)`))?.trim() ===
          "draining",
    );
    await page.screenshot({
      path: join(shots, `admin-page-${currentRuntime}-3-draining.png`),
      fullPage: true,
    });
    await until("A exits", () => /gateway-exit=\d+/.test(a.output()), 15_000);
    assert.match(a.output(), /gateway-exit=0/);
    assert.deepEqual(problems, [], "no script errors");
    console.log(`  screenshots in ${shots}`);
  },
);
