/**
 * The Kafka endpoint's payload sharing across consumers: one object per message when the bytes
 * are the same, never another message's bytes, and bounded.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { test } from "node:test";
import { SharedPayloads } from "../../src/endpoints/kafka/shared-payloads.ts";

test("kafka shared payloads: consumers of one message get one object with its bytes", () => {
  const shared = new SharedPayloads();
  const first = shared.share("t", 0, "5", Buffer.from('{"n":5}'));
  const second = shared.share("t", 0, "5", Buffer.from('{"n":5}'));
  assert.equal(second, first);
  assert.deepEqual([...first], [...Buffer.from('{"n":5}')]);
  // Another partition, offset or topic is another message.
  assert.notEqual(shared.share("t", 1, "5", Buffer.from('{"n":5}')), first);
  assert.notEqual(shared.share("t", 0, "6", Buffer.from('{"n":5}')), first);
  assert.notEqual(shared.share("u", 0, "5", Buffer.from('{"n":5}')), first);
});

test("kafka shared payloads: other bytes at a known position (a topic made again) are not replaced", () => {
  const shared = new SharedPayloads();
  shared.share("t", 0, "0", Buffer.from("old"));
  const fresh = shared.share("t", 0, "0", Buffer.from("new"));
  assert.equal(Buffer.from(fresh).toString(), "new");
  assert.equal(shared.share("t", 0, "0", Buffer.from("new")), fresh);
  const longer = shared.share("t", 0, "0", Buffer.from("newer"));
  assert.equal(Buffer.from(longer).toString(), "newer");
});

test("kafka shared payloads: a kept payload is a copy, not a view of the fetch response", () => {
  const response = Buffer.from("xx{}yy");
  const view = response.subarray(2, 4);
  const kept = new SharedPayloads().share("t", 0, "0", view);
  assert.equal(kept.byteLength, 2);
  assert.equal(kept.buffer.byteLength, 2);
  response[2] = 0x5b;
  assert.equal(Buffer.from(kept).toString(), "{}");
});

test("kafka shared payloads: bounded in entries and bytes, oldest out first; large ones not kept", () => {
  const byCount = new SharedPayloads(3, 1 << 20);
  for (let i = 0; i < 10; i++) byCount.share("t", 0, String(i), Buffer.from(`m${i}`));
  assert.equal(byCount.size, 3);
  const bySize = new SharedPayloads(100, 10);
  for (let i = 0; i < 10; i++) bySize.share("t", 0, String(i), Buffer.from("abcd"));
  assert.equal(bySize.size, 2);
  const large = Buffer.alloc(65 * 1024, 0x20);
  const big = new SharedPayloads();
  assert.equal(big.share("t", 0, "0", large), large);
  assert.equal(big.size, 0);
});
