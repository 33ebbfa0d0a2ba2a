/**
 * Client identity, payload mapping, and the default policy's frame checks.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { GatewayError } from "../../src/core/errors.ts";
import { isValidClientId, resolveIdentity } from "../../src/core/identity.ts";
import { decodePayload, encodeData, toBase64 } from "../../src/core/payload.ts";
import { DefaultPolicy } from "../../src/policy/default-policy.ts";
import { expandTopic } from "../../src/endpoints/template.ts";

test("identity: header wins over query; none gives a fresh UUID", () => {
  assert.deepEqual(resolveIdentity("h-1", "q-1"), { clientId: "h-1", generated: false });
  assert.deepEqual(resolveIdentity(undefined, "q-1"), { clientId: "q-1", generated: false });
  const fresh = resolveIdentity(undefined, undefined);
  assert.equal(fresh.generated, true);
  assert.match(fresh.clientId, /^[0-9a-f-]{36}$/);
});

test("identity: only 1-128 chars of [A-Za-z0-9._:-]", () => {
  for (const ok of ["a", "A.b_c:d-9", "x".repeat(128)]) assert.ok(isValidClientId(ok), ok);
  for (const bad of ["", "a b", "a/b", "a#", "a+", "x".repeat(129), "é", "a\n"]) {
    assert.equal(isValidClientId(bad), false, JSON.stringify(bad));
    assert.throws(
      () => resolveIdentity(bad, undefined),
      (e: GatewayError) => e.code === "BAD_CLIENT_ID" && e.status === 400,
    );
  }
});

test("payload: data is JSON on the way in; JSON, text or base64 on the way out", () => {
  assert.equal(new TextDecoder().decode(encodeData({ a: [1, "x"] })), '{"a":[1,"x"]}');
  assert.deepEqual(decodePayload(encodeData({ a: 1 })), { data: { a: 1 }, text: '{"a":1}' });
  assert.deepEqual(decodePayload(new TextEncoder().encode("plain text")), {
    data: "plain text",
    text: "plain text",
  });
  const bytes = new Uint8Array([0xff, 0x00, 0xfe]);
  assert.deepEqual(decodePayload(bytes), { data: "/wD+", encoding: "base64" });
  const big = new Uint8Array(100_000).map((_, i) => i % 256);
  assert.equal(atob(toBase64(big)).length, 100_000);
});

test("policy: frames are validated; bad ones get BAD_FRAME, big ones TOO_LARGE", () => {
  const policy = new DefaultPolicy({ endpoints: ["chat"], maxMessageBytes: 100 });
  assert.deepEqual(policy.parseFrame('{"type":"publish","endpoint":"chat","data":{"x":1},"id":"m1"}'), {
    type: "publish",
    endpoint: "chat",
    data: { x: 1 },
    id: "m1",
  });
  assert.deepEqual(policy.parseFrame('{"type":"ping"}'), { type: "ping" });
  const code = (text: string) => {
    try {
      policy.parseFrame(text);
    } catch (e) {
      return `${(e as GatewayError).code}: ${(e as GatewayError).message}`;
    }
    return "accepted";
  };
  assert.match(code("not json"), /^BAD_FRAME: frame is not valid JSON/);
  assert.match(code('{"type":"dance"}'), /^BAD_FRAME: invalid frame/);
  assert.match(code('{"type":"publish","data":1}'), /^BAD_FRAME: invalid frame: endpoint/);
  assert.match(code('{"type":"ping","extra":1}'), /^BAD_FRAME/);
  assert.match(
    code('{"type":"subscribe","endpoint":"chat","params":{"a":1}}'),
    /^BAD_FRAME: invalid frame: params.a/,
  );
  assert.match(
    code(JSON.stringify({ type: "publish", endpoint: "chat", data: "x".repeat(2000) })),
    /^TOO_LARGE/,
  );
  assert.throws(
    () => policy.checkPublish("c", "nope", 1),
    (e: GatewayError) => e.code === "UNKNOWN_ENDPOINT",
  );
  assert.throws(() => policy.checkPublish("c", "chat", 101), (e: GatewayError) => e.code === "TOO_LARGE");
  policy.checkPublish("c", "chat", 100);
});

test("topic templates: clientId and params expand; wildcards and separators are refused", () => {
  assert.equal(expandTopic("s/{clientId}/{room}", "c1", { room: "r.1" }), "s/c1/r.1");
  for (const bad of ["#", "+", "a/b", "", "a b"]) {
    assert.throws(
      () => expandTopic("s/{room}", "c1", { room: bad }),
      (e: GatewayError) => e.code === "BAD_FRAME",
    );
  }
  assert.throws(() => expandTopic("s/{room}", "c1", {}), /needs the param "room"/);
});
