/**
 * The console (`GET /console`) in a real Chromium (Debian's `/usr/bin/chromium`, driven by
 * playwright-core), against the gateway under the runtime that runs the test; playwright-core
 * works under both `deno test` and `bun test`, so it runs under each.
 *
 * - Connect, subscribe, publish: the message shows up in the log with its delivery id.
 * - "Drop connection"; an outside MQTT client publishes to the client's topic while it is away;
 *   "Reconnect": the welcome says resumed, and those messages follow, in order, marked resumed.
 * - Two tabs with one client ID: the older shows it was taken over and does not fight back.
 *
 * Screenshots stay in the test's temporary folder (the path is printed; `CONSOLE_SCREENSHOTS=dir`
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
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { mqttEndpointYaml, namespace, outsideClient } from "../support/mqtt.ts";
import { currentRuntime } from "../support/runtime.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ns = namespace("console");
const CONFIG = `
server: { host: 127.0.0.1, port: 0, shutdown_timeout: 2s, console: true }
session: { type: memory, reconnection_window: 60s }
endpoints:
  - { name: chat, type: memory }
${mqttEndpointYaml({ ns, poolSize: 1 })}
`;

let gw: Gateway;
let browser: BrowserContext;
const dir = mkdtempSync(join(tmpdir(), "console-test-"));
const shots = process.env.CONSOLE_SCREENSHOTS ?? dir;

before(async () => {
  mkdirSync(shots, { recursive: true });
  [gw, browser] = await Promise.all([
    startGateway(currentRuntime, CONFIG),
    chromium.launchPersistentContext(join(dir, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1200, height: 760 },
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
  browser.setDefaultTimeout(10_000);
});
after(async () => {
  await browser?.close();
  await gw?.stop("SIGKILL");
  // The browser profile goes; the screenshots stay for a person to look at.
  rmSync(join(dir, "profile"), { recursive: true, force: true });
});

async function openConsole(clientId: string): Promise<Page> {
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on("pageerror", (e) => problems.push(e.message));
  page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
  await page.goto(`${gw.http}/console`).catch((error) => {
    throw new Error(
      `${error.message}\ngateway (exit ${gw.child.exitCode}) said:\n${gw.output().slice(-2000)}`,
    );
  });
  await page.fill("#client-id", clientId);
  await page.click("#connect");
  await page.waitForSelector('#state[data-state="connected"]');
  assert.deepEqual(problems, [], "no script errors");
  return page;
}

/** The data of the log's message entries of `endpoint`, with their marks. */
function messages(page: Page, endpoint: string) {
  return page.$$eval(
    `#log li[data-kind="message"][data-endpoint="${endpoint}"]`,
    (items) =>
      items.map((li) => {
        // Runs in the page: no DOM types here, only what is used.
        const el = li as unknown as {
          dataset: Record<string, string>;
          querySelector(s: string): { textContent: string } | null;
        };
        return {
          id: el.dataset.id,
          data: JSON.parse(el.querySelector(".data")?.textContent ?? "null"),
          resumed: el.dataset.resumed === "true",
          redelivered: el.dataset.redelivered === "true",
        };
      }),
  );
}

async function until(what: string, predicate: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!await predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test(`console (${currentRuntime}): off unless server.console is true`, async () => {
  const off = await startGateway(currentRuntime, CONFIG.replace(", console: true", ""));
  try {
    assert.equal(await fetch(`${off.http}/console`).then((r) => (r.body?.cancel(), r.status)), 404);
    const page = await fetch(`${gw.http}/console`);
    assert.equal(page.status, 200);
    assert.match(
      await page.text(),
      /<script type="application\/json" id="settings">\{"ws":"\/ws","auth":false\}/,
    );
    const status = (path: string) => fetch(`${gw.http}${path}`).then((r) => (r.body?.cancel(), r.status));
    assert.equal(await status("/console/client/src/ws-client.js"), 200);
    assert.equal(await status("/console/client/src/nope.js"), 404);
    assert.equal(await status("/console/client/src/..%2F..%2Fpackage.json"), 404);
    assert.equal(await status("/console/client/package.json"), 404);
  } finally {
    await off.stop("SIGKILL");
  }
});

test(
  `console (${currentRuntime}): in Chromium: publish and see it, resume after a drop with what came meanwhile, a second tab takes over`,
  {
    timeout: 60_000,
  },
  async () => {
    const clientId = `console-${crypto.randomUUID().slice(0, 8)}`;
    const page = await openConsole(clientId);
    assert.equal(await page.textContent("#w-resumed"), "false");
    assert.equal(await page.textContent("#w-endpoints"), "chat, sensors");

    // Subscribe and publish: the message comes back through the memory endpoint.
    await page.selectOption("#sub-endpoint", "chat");
    await page.click("#subscribe");
    await page.waitForSelector('#subscriptions li[data-endpoint="chat"]');
    await page.selectOption("#sub-endpoint", "sensors");
    await page.click("#subscribe");
    await page.waitForSelector('#subscriptions li[data-endpoint="sensors"]');
    await page.selectOption("#pub-endpoint", "chat");
    await page.fill("#pub-data", '{"text": "hello from the console"}');
    await page.click("#publish");
    await until("the published message in the log", async () => (await messages(page, "chat")).length === 1);
    const [hello] = await messages(page, "chat");
    assert.deepEqual(hello.data, { text: "hello from the console" });
    assert.match(hello.id ?? "", /^\d+\.1$/);
    assert.match(await page.textContent("#pub-result") ?? "", /^receipt /);

    // Away: an outside MQTT client publishes to the client's topic; back: resumed, in order.
    await page.click("#drop");
    await page.waitForSelector('#state[data-state="disconnected"]');
    const mqtt = await outsideClient();
    try {
      for (let n = 1; n <= 3; n++) {
        await mqtt.publishAsync(`${ns}/${clientId}/down`, JSON.stringify({ n, sent: "while away" }), {
          qos: 1,
        });
      }
    } finally {
      await mqtt.endAsync();
    }
    assert.equal((await messages(page, "sensors")).length, 0, "nothing arrives while away");
    await page.click("#reconnect");
    await page.waitForSelector('#state[data-state="connected"]');
    assert.equal(await page.textContent("#w-resumed"), "true");
    await until(
      "the three messages sent while away",
      async () => (await messages(page, "sensors")).length === 3,
    );
    const away = await messages(page, "sensors");
    assert.deepEqual(
      away.map((m) => m.data.n),
      [1, 2, 3],
    );
    assert.ok(away.every((m) => m.resumed), "marked resumed");
    const welcomes = await page.$$eval('#log li[data-kind="welcome"]', (l) => l.map((li) => li.textContent));
    assert.match(welcomes.at(-1) ?? "", /resumed, recovered/);
    const resumedShot = join(shots, `console-${currentRuntime}-resumed.png`);
    await page.screenshot({ path: resumedShot, fullPage: true });

    // A second tab with the same client ID takes the session; the first stops and says so.
    const second = await openConsole(clientId);
    await page.waitForSelector('#state[data-state="closed"]');
    assert.match(await page.textContent("#banner") ?? "", /Taken over/);
    const attempts = await page.$$eval('#log li[data-kind="state"]', (l) => l.length);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await page.$$eval('#log li[data-kind="state"]', (l) => l.length), attempts, "no reconnect");
    assert.equal(await second.getAttribute("#state", "data-state"), "connected");
    assert.equal(await second.textContent("#w-resumed"), "true");
    const takenShot = join(shots, `console-${currentRuntime}-taken-over.png`);
    await page.screenshot({ path: takenShot, fullPage: true });
    console.log(`  screenshots: ${resumedShot}, ${takenShot}`);
    await second.close();
    await page.close();
  },
);
