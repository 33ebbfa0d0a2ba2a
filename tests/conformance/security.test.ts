/**
 * The security suite, black-box, under the runtime that runs the tests: authentication (JWT with
 * a secret and through a rotating JWKS, API keys), sessions bound to their subject, origins.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { Server } from "node:http";
import { after, before, test } from "node:test";
import { sign } from "hono/jwt";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { currentRuntime } from "../support/runtime.ts";
import { TestSocket } from "../support/ws-client.ts";
import { SseClient } from "../support/sse-client.ts";
import { upgradeAnswer } from "./gateway-scenarios.ts";

const SECRET = `test-secret-${crypto.randomUUID()}`;
const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;
const now = () => Math.floor(Date.now() / 1000);
const ENDPOINTS = `endpoints:
  - { name: chat, type: memory }
  - { name: inbox, type: memory, publish_topic: "inbox/{to}", subscribe_topic: "inbox/{clientId}" }
  - name: rooms
    type: memory
    publish_topic: "room/{room}"
    subscribe_topic: "room/{room}"
    acl: { publish: ["role:writer"], subscribe: ["*"], params: { room: rooms } }`;

const token = (sub: string, claims: Record<string, unknown> = {}, secret = SECRET) =>
  sign({ sub, aud: "mediation", iss: "https://issuer.test", exp: now() + 300, ...claims }, secret, "HS256");

let jwtGw: Gateway;
let keyGw: Gateway;
let openGw: Gateway;
let jwksGw: Gateway;
let jwks: Server;
let jwksKeys: JsonWebKey[] = [];
const signers = new Map<string, CryptoKey>();

async function rsaKey(kid: string): Promise<JsonWebKey> {
  const pair = await crypto.subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  ) as CryptoKeyPair;
  signers.set(kid, pair.privateKey);
  return {
    ...await crypto.subtle.exportKey("jwk", pair.publicKey),
    kid,
    alg: "RS256",
    use: "sig",
  } as JsonWebKey;
}

async function rsaToken(kid: string, sub: string): Promise<string> {
  const enc = (v: unknown) =>
    btoa(JSON.stringify(v)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  const body = `${enc({ alg: "RS256", typ: "JWT", kid })}.${enc({ sub, exp: now() + 300 })}`;
  const signature = new Uint8Array(
    await crypto.subtle.sign("RSASSA-PKCS1-v1_5", signers.get(kid)!, new TextEncoder().encode(body)),
  );
  return `${body}.${
    btoa(String.fromCharCode(...signature)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_")
  }`;
}

before(async () => {
  jwksKeys = [await rsaKey("k1")];
  jwks = createServer((_req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ keys: jwksKeys }));
  });
  await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
  const jwksPort = (jwks.address() as { port: number }).port;
  const server = (extra = "") => `server: { host: 127.0.0.1, port: 0${extra} }\n`;
  [jwtGw, keyGw, openGw, jwksGw] = await Promise.all([
    startGateway(
      currentRuntime,
      server(', allowed_origins: ["https://app.example"]') +
        `auth: { type: jwt, jwt: { secret: "${SECRET}", issuer: "https://issuer.test", audience: mediation } }\n${ENDPOINTS}\n`,
    ),
    startGateway(
      currentRuntime,
      server() +
        `auth: { type: api_key, api_keys: [{ key: sensor-key-1, subject: sensor-fleet }, { key: other-key, subject: other }] }\n` +
        `policy: { connections_per_second: 2 }\n${ENDPOINTS}\n`,
    ),
    startGateway(currentRuntime, server(', allowed_origins: ["https://app.example"]') + ENDPOINTS + "\n"),
    startGateway(
      currentRuntime,
      server() +
        `auth: { type: jwt, jwt: { jwks_url: "http://127.0.0.1:${jwksPort}/jwks" } }\n${ENDPOINTS}\n`,
    ),
  ]);
});
after(async () => {
  await Promise.all([jwtGw, keyGw, openGw, jwksGw].map((g) => g?.stop("SIGKILL")));
  await new Promise((resolve) => jwks?.close(resolve));
});

async function welcomed(gw: Gateway, query: string) {
  const socket = await TestSocket.open(`${gw.ws}/ws?${query}`);
  const welcome = await socket.next((f) => f.type === "welcome");
  return { socket, welcome };
}

const post = async (gw: Gateway, path: string, body: string, headers: Record<string, string> = {}) => {
  const r = await fetch(`${gw.http}${path}`, { method: "POST", body, headers });
  return { status: r.status, body: await r.json() as Record<string, unknown> };
};

test(`security (${currentRuntime}): no, forged, expired, wrong-audience or wrong-issuer tokens get 401 before the upgrade`, async () => {
  const id = unique("c");
  const cases: Array<[string, string | undefined]> = [
    ["none", undefined],
    ["forged", await token("alice", {}, "another-secret")],
    ["expired", await token("alice", { exp: now() - 10 })],
    ["not yet valid", await token("alice", { nbf: now() + 600 })],
    ["wrong audience", await token("alice", { aud: "someone-else" })],
    ["wrong issuer", await token("alice", { iss: "https://evil.test" })],
    ["garbage", "not.a.token"],
  ];
  for (const [what, t] of cases) {
    const answer = await upgradeAnswer(jwtGw, `/ws?clientId=${id}${t ? `&token=${t}` : ""}`);
    assert.equal(answer.status, 401, what);
    assert.equal(JSON.parse(answer.body).code, "UNAUTHENTICATED", what);
    const sse = await SseClient.open(
      `${jwtGw.http}/sse/chat?clientId=${id}`,
      t ? { Authorization: `Bearer ${t}` } : {},
    );
    assert.equal(sse.status, 401, `sse ${what}`);
    assert.equal(
      (await post(jwtGw, "/publish/chat", "1", t ? { Authorization: `Bearer ${t}` } : {})).status,
      401,
    );
  }
  const { socket, welcome } = await welcomed(jwtGw, `clientId=${id}&token=${await token("alice")}`);
  assert.equal(welcome.clientId, id);
  await socket.close();
});

test(`security (${currentRuntime}): a session belongs to its subject: another subject can neither resume, take over, kick nor publish as it`, async () => {
  const id = unique("owned");
  const alice = await token("alice");
  const mallory = await token("mallory");
  const owner = await welcomed(jwtGw, `clientId=${id}&token=${alice}`);
  owner.socket.send({ type: "subscribe", endpoint: "inbox", id: "s" });
  await owner.socket.next((f) => f.type === "receipt" && f.id === "s");
  const hijack = await upgradeAnswer(jwtGw, `/ws?clientId=${id}&token=${mallory}`);
  assert.equal(hijack.status, 403);
  assert.equal(JSON.parse(hijack.body).code, "FORBIDDEN");
  const sse = await SseClient.open(`${jwtGw.http}/sse/inbox?clientId=${id}`, {
    Authorization: `Bearer ${mallory}`,
  });
  assert.equal(sse.status, 403);
  const asOwner = await post(jwtGw, "/publish/chat", "1", {
    Authorization: `Bearer ${mallory}`,
    "X-WSO2-Client-ID": id,
  });
  assert.equal(asOwner.status, 403);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(owner.socket.closed, undefined, "the owner was not kicked");
  await post(jwtGw, `/publish/inbox?to=${id}`, '"still yours"', { Authorization: `Bearer ${alice}` });
  assert.deepEqual(await owner.socket.settled("inbox", 1), ["still yours"]);
  await owner.socket.close();
  // Away, it still cannot be resumed by another subject; its owner resumes it.
  assert.equal((await upgradeAnswer(jwtGw, `/ws?clientId=${id}&token=${mallory}`)).status, 403);
  const back = await welcomed(jwtGw, `clientId=${id}&token=${alice}`);
  assert.equal(back.welcome.resumed, true);
  await back.socket.close();
});

test(`security (${currentRuntime}): a token that expires on a live connection closes it with 4401`, async () => {
  const short = await token("alice", { exp: now() + 2 });
  const { socket } = await welcomed(jwtGw, `clientId=${unique("short")}&token=${short}`);
  const closed = await socket.closedBy(6000);
  assert.equal(closed.code, 4401);
});

test(`security (${currentRuntime}): API keys authenticate as their subject`, async () => {
  assert.equal((await upgradeAnswer(keyGw, `/ws?clientId=${unique("k")}&token=wrong-key`)).status, 401);
  const { socket, welcome } = await welcomed(keyGw, `clientId=${unique("k")}&token=sensor-key-1`);
  assert.equal(welcome.type, "welcome");
  await socket.close();
  const published = await post(keyGw, "/publish/chat", "1", { Authorization: "Bearer sensor-key-1" });
  assert.equal(published.status, 202);
});

test(`security (${currentRuntime}): a JWKS key rotated in is fetched again for its kid; unknown kids are refused`, async () => {
  const first = await welcomed(jwksGw, `clientId=${unique("j")}&token=${await rsaToken("k1", "alice")}`);
  await first.socket.close();
  jwksKeys = [await rsaKey("k2")]; // rotation: k1 retired, k2 in
  await new Promise((r) => setTimeout(r, 1100)); // unknown kids refetch the JWKS at most once a second
  const second = await welcomed(jwksGw, `clientId=${unique("j")}&token=${await rsaToken("k2", "alice")}`);
  assert.equal(second.welcome.type, "welcome");
  await second.socket.close();
  await rsaKey("k3"); // signed by a key the JWKS does not publish
  assert.equal(
    (await upgradeAnswer(jwksGw, `/ws?clientId=${unique("j")}&token=${await rsaToken("k3", "eve")}`)).status,
    401,
  );
});

test(`security (${currentRuntime}): cross-origin pages are refused unless allowed; CORS answers allowed origins only`, async () => {
  const upgrade = (gw: Gateway, origin: string, query = "") =>
    upgradeWithOrigin(gw, `/ws?clientId=${unique("o")}${query}`, origin);
  assert.equal(await upgrade(openGw, "https://evil.example"), 403, "cross-site page, no credential");
  assert.equal(await upgrade(openGw, "null"), 403, "sandboxed page");
  assert.equal(await upgrade(openGw, "https://app.example"), 101, "listed origin");
  const evilPost = await fetch(`${openGw.http}/publish/chat`, {
    method: "POST",
    body: "1",
    headers: { Origin: "https://evil.example", "Content-Type": "text/plain" },
  });
  assert.equal(evilPost.status, 403, "a cross-site text/plain POST publishes nothing");
  await evilPost.body?.cancel();
  const preflight = await fetch(`${openGw.http}/publish/chat`, {
    method: "OPTIONS",
    headers: { Origin: "https://app.example", "Access-Control-Request-Method": "POST" },
  });
  assert.equal(preflight.headers.get("access-control-allow-origin"), "https://app.example");
  await preflight.body?.cancel();
  const refused = await fetch(`${openGw.http}/publish/chat`, {
    method: "OPTIONS",
    headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "POST" },
  });
  assert.equal(refused.headers.get("access-control-allow-origin"), null);
  await refused.body?.cancel();
  // With auth on, a request carrying its token may come from any page (a page cannot make a
  // browser send a token by itself).
  assert.equal(await upgrade(jwtGw, "https://elsewhere.example", `&token=${await token("alice")}`), 101);
  assert.equal(await upgrade(jwtGw, "https://elsewhere.example"), 403);
});

/** A WebSocket upgrade over TCP with an Origin header; resolves the status. */
async function upgradeWithOrigin(gw: Gateway, path: string, origin: string): Promise<number> {
  const { connect } = await import("node:net");
  const { hostname, port } = new URL(gw.http);
  return await new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () =>
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nOrigin: ${origin}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ));
    socket.once("data", (chunk) => {
      socket.destroy();
      resolve(Number(chunk.toString().match(/^HTTP\/1\.1 (\d{3})/)?.[1]));
    });
    socket.on("error", reject);
  });
}

test(`security (${currentRuntime}): an SSE stream whose binding the ACL refuses is answered 403, not a stream that waits for nothing`, async () => {
  const room = unique("room");
  const reader = await token("alice", { rooms: [room] });
  const refused = await fetch(
    `${jwtGw.http}/sse/rooms?room=not-mine&clientId=${unique("sse-acl")}&token=${reader}`,
  );
  assert.equal(refused.status, 403);
  const body = await refused.json();
  assert.equal(body.code, "FORBIDDEN");
  assert.equal(body.temporary, false);
  const multi = await fetch(
    `${jwtGw.http}/sse?endpoints=chat,rooms&room=not-mine&clientId=${unique("sse-acl")}&token=${reader}`,
  );
  assert.equal(multi.status, 403, "one refused binding refuses the stream");
  await multi.body?.cancel();
  const allowed = await SseClient.open(`${jwtGw.http}/sse/rooms?room=${room}&clientId=${unique("sse-acl")}`, {
    Authorization: `Bearer ${reader}`,
  });
  assert.equal(allowed.status, 200);
  await allowed.until(() => allowed.events.some((e) => e.event === "subscribed"), 10_000, "subscribed");
  await allowed.close();
});

test(`security (${currentRuntime}): ACLs decide who publishes and subscribes with which params, again on resume`, async () => {
  const id = unique("acl");
  const room = unique("room");
  const reader = await token("alice", { rooms: [room] });
  const { socket } = await welcomed(jwtGw, `clientId=${id}&token=${reader}`);
  const answer = async (frame: Record<string, unknown>) => {
    const fid = unique("f");
    socket.send({ ...frame, id: fid });
    return await socket.next((f) => (f.type === "receipt" || f.type === "error") && f.id === fid);
  };
  assert.equal(
    (await answer({ type: "subscribe", endpoint: "rooms", params: { room: "not-mine" } })).code,
    "FORBIDDEN",
  );
  assert.equal((await answer({ type: "subscribe", endpoint: "rooms", params: { room } })).type, "receipt");
  assert.equal(
    (await answer({ type: "publish", endpoint: "rooms", data: 1 })).code,
    "FORBIDDEN",
    "no writer role",
  );
  const writer = await token("bob", { roles: ["writer"], rooms: [room] });
  const sent = await post(jwtGw, `/publish/rooms?room=${room}`, '"hello"', {
    Authorization: `Bearer ${writer}`,
  });
  assert.equal(sent.status, 202);
  const denied = await post(jwtGw, `/publish/rooms?room=${room}`, '"x"', {
    Authorization: `Bearer ${reader}`,
  });
  assert.equal(denied.status, 403);
  assert.deepEqual(await socket.settled("rooms", 1), ["hello"]);
  await socket.close();
  // Away, the room is taken from alice's token: the binding does not come back with the session.
  const revoked = await token("alice", { rooms: [] });
  const back = await welcomed(jwtGw, `clientId=${id}&token=${revoked}`);
  const refused = await back.socket.next((f) => f.type === "error");
  assert.equal(refused.code, "FORBIDDEN");
  assert.match(String(refused.message), /no longer allowed to subscribe to "rooms"/);
  await post(jwtGw, `/publish/rooms?room=${room}`, '"not for alice"', { Authorization: `Bearer ${writer}` });
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(back.socket.messages("rooms"), []);
  await back.socket.close();
});

test(`security (${currentRuntime}): new connections per subject are rate limited (429 with Retry-After), others unaffected`, async () => {
  const statuses: number[] = [];
  for (let i = 0; i < 8; i++) {
    statuses.push((await upgradeAnswer(keyGw, `/ws?clientId=${unique("burst")}&token=sensor-key-1`)).status);
  }
  assert.ok(
    statuses.filter((s) => s === 101).length <= 5,
    `a burst of twice the rate, then refused: ${statuses}`,
  );
  assert.ok(statuses.includes(429), `${statuses}`);
  const limited = await upgradeAnswer(keyGw, `/ws?clientId=${unique("burst")}&token=sensor-key-1`);
  assert.equal(limited.status, 429);
  assert.equal(JSON.parse(limited.body).code, "RATE_LIMITED");
  assert.ok(JSON.parse(limited.body).retry_after_ms > 0);
  assert.equal((await upgradeAnswer(keyGw, `/ws?clientId=${unique("other")}&token=other-key`)).status, 101);
});
