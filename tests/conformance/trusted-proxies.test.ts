/**
 * `server.trusted_proxies` under the runtime that runs the tests, with two loopback peers: from
 * 127.0.0.1 (a trusted proxy) `X-Forwarded-For` / `Forwarded` name the client, so the
 * per-address connection limit and the open/close lines see it; from 127.0.0.2 and 127.0.0.3
 * (not trusted) the headers are ignored, so no client can claim an address or escape its limit.
 * Clients pick their source address with node:net's `localAddress`.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import type { Socket } from "node:net";
import process from "node:process";
import { after, before, test } from "node:test";
import { startGateway } from "../support/gateway-process.ts";
import type { Gateway } from "../support/gateway-process.ts";
import { currentRuntime } from "../support/runtime.ts";

const tag = `proxy-${process.pid}-${Date.now().toString(36)}`;
let gateway: Gateway;
let port: number;

before(async () => {
  gateway = await startGateway(
    currentRuntime,
    `server: { host: 127.0.0.1, port: 0, trusted_proxies: [127.0.0.1/32, "::1"] }
policy: { connections_per_second_per_address: 1 }
endpoints: [{ name: chat, type: memory }]
`,
  );
  port = Number(new URL(gateway.http).port);
});
after(async () => {
  assert.equal(await gateway.stop(), 0, gateway.output());
});

interface Answer {
  status: number;
  /** The head and what arrived of the body by the time the status was read. */
  text: string;
  socket: Socket;
}

/**
 * Sends a GET from `from` (a loopback source address) with `headers`, and resolves with the
 * status once the response head arrived; the socket stays open (an SSE stream, a WebSocket).
 */
function request(from: string, path: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, localAddress: from });
    let text = "";
    socket.on("error", reject);
    socket.on("connect", () => {
      const lines = Object.entries({ Host: `127.0.0.1:${port}`, ...headers }).map(([k, v]) => `${k}: ${v}`);
      socket.write(`GET ${path} HTTP/1.1\r\n${lines.join("\r\n")}\r\n\r\n`);
    });
    socket.on("data", (chunk) => {
      text += chunk;
      const status = text.match(/^HTTP\/1\.1 (\d{3})/)?.[1];
      // A refusal's JSON body comes with its head, or right after it.
      if (status && (status === "200" || status === "101" || /\r\n\r\n[\s\S]*\}/.test(text))) {
        resolve({ status: Number(status), text, socket });
      }
    });
  });
}

const sse = (from: string, clientId: string, headers: Record<string, string> = {}) =>
  request(from, `/sse/chat?clientId=${clientId}`, headers);

/** Waits until the gateway printed a line matching `pattern`, and returns it. */
async function line(pattern: RegExp): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = gateway.output().split("\n").find((l) => pattern.test(l));
    if (found) return found;
    if (Date.now() > deadline) assert.fail(`no line ${pattern} in:\n${gateway.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test(`trusted proxies (${currentRuntime}): a trusted peer's X-Forwarded-For / Forwarded name the client in the open and close lines`, async () => {
  const viaXff = await sse("127.0.0.1", `${tag}-xff`, { "X-Forwarded-For": "198.51.100.1, 203.0.113.7" });
  assert.equal(viaXff.status, 200, viaXff.text);
  await line(
    new RegExp(`\\[SSE\\] Connection opened client=${tag}-xff transport=sse address=203\\.0\\.113\\.7 `),
  );
  viaXff.socket.destroy();
  await line(
    new RegExp(`\\[SSE\\] Connection closed client=${tag}-xff transport=sse address=203\\.0\\.113\\.7 `),
  );

  const viaForwarded = await sse("127.0.0.1", `${tag}-fwd`, {
    Forwarded: 'for=198.51.100.1, for="[2001:DB8::7]:4711";proto=https',
  });
  assert.equal(viaForwarded.status, 200, viaForwarded.text);
  await line(new RegExp(`\\[SSE\\] Connection opened client=${tag}-fwd transport=sse address=2001:db8::7 `));
  viaForwarded.socket.destroy();

  // A WebSocket's lines too.
  const ws = await request("127.0.0.1", `/ws?clientId=${tag}-ws`, {
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
    "X-Forwarded-For": "203.0.113.8",
  });
  assert.equal(ws.status, 101, ws.text);
  await line(
    new RegExp(`\\[WS\\] Connection opened client=${tag}-ws transport=ws address=203\\.0\\.113\\.8 `),
  );
  ws.socket.destroy();
  await line(
    new RegExp(`\\[WS\\] Connection closed client=${tag}-ws transport=ws address=203\\.0\\.113\\.8 `),
  );

  // A malformed header from the trusted peer is ignored: the peer is the address.
  const malformed = await sse("127.0.0.1", `${tag}-bad`, {
    "X-Forwarded-For": "203.0.113.7, not-an-address",
  });
  assert.equal(malformed.status, 200, malformed.text);
  await line(
    new RegExp(`\\[SSE\\] Connection opened client=${tag}-bad transport=sse address=127\\.0\\.0\\.1 `),
  );
  malformed.socket.destroy();
});

test(`trusted proxies (${currentRuntime}): an untrusted peer's forwarding headers are ignored`, async () => {
  const claimed = await sse("127.0.0.2", `${tag}-claim`, {
    "X-Forwarded-For": "203.0.113.9",
    Forwarded: "for=203.0.113.9",
  });
  assert.equal(claimed.status, 200, claimed.text);
  await line(
    new RegExp(`\\[SSE\\] Connection opened client=${tag}-claim transport=sse address=127\\.0\\.0\\.2 `),
  );
  claimed.socket.destroy();
  assert.doesNotMatch(gateway.output(), /address=203\.0\.113\.9/);
});

test(`trusted proxies (${currentRuntime}): the per-address connection limit counts the client a trusted proxy names, and only what an untrusted peer is`, async () => {
  // connections_per_second_per_address: 1 (bursts of 2). Six at once behind the proxy, each
  // from another client: none is refused, since each client has its own allowance.
  const distinct = await Promise.all(
    Array.from(
      { length: 6 },
      (_, i) => sse("127.0.0.1", `${tag}-d${i}`, { "X-Forwarded-For": `198.51.100.${10 + i}` }),
    ),
  );
  assert.deepEqual(distinct.map((a) => a.status), [200, 200, 200, 200, 200, 200]);
  // Six at once from one client behind the proxy: it gets its allowance and no more.
  const same = await Promise.all(
    Array.from(
      { length: 6 },
      (_, i) => sse("127.0.0.1", `${tag}-s${i}`, { "X-Forwarded-For": "198.51.100.50" }),
    ),
  );
  const refused = same.filter((a) => a.status === 429);
  assert.ok(refused.length >= 1 && refused.length <= 4, same.map((a) => a.status).join(","));
  assert.match(refused[0].text, /too many connections from 198\.51\.100\.50/);
  // Six at once from an untrusted peer, each claiming another address: the claims count for
  // nothing, all six are that peer's.
  const claims = await Promise.all(
    Array.from(
      { length: 6 },
      (_, i) => sse("127.0.0.3", `${tag}-c${i}`, { "X-Forwarded-For": `198.51.100.${60 + i}` }),
    ),
  );
  const claimsRefused = claims.filter((a) => a.status === 429);
  assert.ok(claimsRefused.length >= 1 && claimsRefused.length <= 4, claims.map((a) => a.status).join(","));
  assert.match(claimsRefused[0].text, /too many connections from 127\.0\.0\.3/);
  for (const answer of [...distinct, ...same, ...claims]) answer.socket.destroy();
});
