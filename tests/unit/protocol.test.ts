/**
 * Client identity, payload mapping, and the default policy's frame checks.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { GatewayError } from "../../src/core/errors.ts";
import { isSafeName, resolveIdentity } from "../../src/core/identity.ts";
import { scanJson } from "../../src/core/json-scan.ts";
import { messageFrame } from "../../src/core/message-frame.ts";
import { encodeData, preparePayload, toBase64 } from "../../src/core/payload.ts";
import { decodePayload } from "../support/payload.ts";
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
  for (const ok of ["a", "A.b_c:d-9", "x".repeat(128)]) assert.ok(isSafeName(ok), ok);
  for (const bad of ["", "a b", "a/b", "a#", "a+", "x".repeat(129), "é", "a\n"]) {
    assert.equal(isSafeName(bad), false, JSON.stringify(bad));
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
  const policy = new DefaultPolicy({ maxMessageBytes: 100, maxJsonDepth: 64 });
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
  assert.equal(
    code('{"type":"dance"}'),
    'BAD_FRAME: invalid frame: "type" must be one of publish, subscribe, unsubscribe, ack, ping or leave; got "dance"',
  );
  assert.equal(
    code('{"type":"publish","data":1}'),
    "BAD_FRAME: invalid frame: publish takes endpoint, data and id; endpoint missing",
  );
  assert.equal(
    code('{"type":"ping","extra":1}'),
    'BAD_FRAME: invalid frame: ping takes nothing else; got "extra"',
  );
  assert.equal(
    code('{"type":"publish","endpoint":"chat","data":1,"params":{}}'),
    'BAD_FRAME: invalid frame: publish takes endpoint, data and id; got "params"',
  );
  assert.equal(
    code('{"type":"subscribe","endpoint":"chat","params":{"a":1}}'),
    "BAD_FRAME: invalid frame: params.a must be a string; got a number",
  );
  assert.equal(
    code('{"type":"ack","endpoint":"","id":"m1"}'),
    'BAD_FRAME: invalid frame: "endpoint" must be an endpoint name (a string of 1-128 characters); got an empty string',
  );
  assert.equal(code("[1]"), 'BAD_FRAME: invalid frame: a frame is a JSON object with a "type"; got an array');
  // The refused frame's id travels with the error, so the error frame can name it; an id that is
  // itself invalid is not echoed.
  const refused = (text: string) => {
    try {
      policy.parseFrame(text);
    } catch (e) {
      return (e as GatewayError).frameId;
    }
  };
  assert.equal(refused('{"type":"publish","endpoint":"chat","data":1,"id":"m7","params":{}}'), "m7");
  assert.equal(refused('{"type":"publish","endpoint":"chat","data":1,"id":7,"params":{}}'), undefined);
  assert.equal(refused('{"type":"publish","endpoint":"chat","data":1,"id":""}'), undefined);
  assert.match(
    code(JSON.stringify({ type: "publish", endpoint: "chat", data: "x".repeat(2000) })),
    /^TOO_LARGE/,
  );
  assert.throws(() => policy.checkPublish("c", "chat", 101, {}), (e: GatewayError) => e.code === "TOO_LARGE");
  policy.checkPublish("c", "chat", 100, {});
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

test("policy: a frame nested deeper than max_json_depth is BAD_FRAME, found without recursion", () => {
  const policy = new DefaultPolicy({ maxMessageBytes: 100_000, maxJsonDepth: 64 });
  const frame = (data: string) => `{"type":"publish","endpoint":"chat","data":${data}}`;
  const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);
  assert.deepEqual(policy.parseFrame(frame(nested(64))).type, "publish");
  for (const depth of [65, 6000, 33_000]) {
    assert.throws(
      () => policy.parseFrame(frame(nested(depth))),
      (e: GatewayError) => e.code === "BAD_FRAME" && /nested deeper than 64/.test(e.message),
    );
  }
  // Unclosed, and deep objects: refused the same way.
  assert.throws(() => policy.parseFrame(frame('{"a":'.repeat(10_000))), /nested deeper/);
  assert.throws(() => policy.parseFrame(frame("[".repeat(10))), /not valid JSON/);
});

test("json scan: accepts exactly what JSON.parse accepts, within the depth bound", () => {
  const samples = [
    "{}",
    "[]",
    "1",
    "-0.5e+3",
    '"a\\u00e9\\n"',
    '{"a":[1,{"b":null}],"c":true}',
    " [ 1 , 2 ] ",
    "01",
    "1.",
    ".5",
    '{"a" 1}',
    "[1,]",
    "{,}",
    '"\\x"',
    '"a',
    "tru",
    "[1 2]",
    '{"a":1,}',
    "",
    " ",
    '"\u0001"',
    "[]]",
    '{"a":{}}x',
    "nul",
    "-",
    "1e",
    "[[[]]]",
    '{"a":1}{',
    "\u00a0 1",
  ];
  const alphabet = [
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    '"',
    "a",
    "1",
    "0",
    "-",
    ".",
    "e",
    "true",
    "null",
    " ",
    "\\",
    '"k"',
  ];
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let t = 0; t < 20_000; t++) {
    let text = "";
    for (let k = Math.floor(random() * 10); k > 0; k--) {
      text += alphabet[Math.floor(random() * alphabet.length)];
    }
    samples.push(text);
  }
  for (const text of samples) {
    let expected = "json";
    try {
      JSON.parse(text);
    } catch {
      expected = "invalid";
    }
    assert.equal(scanJson(text, 64), expected, JSON.stringify(text));
  }
  assert.equal(scanJson("[".repeat(64) + "]".repeat(64), 64), "json");
  assert.equal(scanJson("[".repeat(65) + "]".repeat(65), 64), "deep");
});

test("payload: prepared once per message; deep JSON and odd bytes become safe JSON text", () => {
  const encode = (t: string) => new TextEncoder().encode(t);
  assert.deepEqual(preparePayload(encode('{"a":1}'), 64), { json: '{"a":1}', text: '{"a":1}' });
  assert.deepEqual(preparePayload(encode("hi\n"), 64), { json: '"hi\\n"', text: "hi\n" });
  const deep = "[".repeat(6000) + "]".repeat(6000);
  const prepared = preparePayload(encode(deep), 64);
  assert.equal(JSON.parse(prepared.json), deep, "delivered as its text, a JSON string");
  assert.deepEqual(preparePayload(new Uint8Array([0xff, 0]), 64), { json: '"/wA="', encoding: "base64" });
  const frame = messageFrame({
    endpoint: "chat",
    id: "7.1",
    payload: encode(deep),
    prepared,
    meta: { topic: "t/1", offset: 3 },
  });
  assert.deepEqual(JSON.parse(frame), {
    type: "message",
    endpoint: "chat",
    id: "7.1",
    data: deep,
    meta: { topic: "t/1", offset: 3 },
  });
});
