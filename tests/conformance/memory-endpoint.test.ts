/**
 * The endpoint contract kit against the memory endpoint. Its bus lives in the process, so it is
 * not durable across a restart (a restarted node starts with an empty bus).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { memoryLogger } from "../../src/core/logger.ts";
import { encodeText } from "../../src/core/payload.ts";
import { MemoryEndpoint } from "../../src/endpoints/memory/memory-endpoint.ts";
import type { MemoryEndpointOptions } from "../../src/endpoints/memory/memory-endpoint.ts";
import { endpointContract, RecordingHandler } from "./endpoint-contract.ts";
import type { OptionalKeys, Same } from "./endpoint-contract.ts";

endpointContract("memory", () => {
  let current: MemoryEndpoint | undefined;
  return Promise.resolve({
    make(logger) {
      current = new MemoryEndpoint({
        name: "bus",
        logger: logger ?? memoryLogger(),
        queueLimit: 10_000,
        queueBytes: 8 * 1024 * 1024,
        totalBytes: 256 * 1024 * 1024,
        publishTopic: "inbox/{clientId}",
        subscribeTopic: "inbox/{clientId}",
      });
      return current;
    },
    // Publishing as the client itself with a per-client topic reaches exactly that client.
    inject: async (clientId, text) => {
      await current!.publish(clientId, { payload: encodeText(text) }, {});
    },
    durable: false,
    clientId: (label) => `${label}-${crypto.randomUUID()}`,
  });
});

test("memory: a deliver that throws for one subscriber fails no publish to the topic", async () => {
  const logger = memoryLogger();
  const endpoint = new MemoryEndpoint({
    name: "chat",
    logger,
    queueLimit: 10_000,
    queueBytes: 8 * 1024 * 1024,
    totalBytes: 256 * 1024 * 1024,
  });
  const handler = new RecordingHandler();
  await endpoint.start(handler);
  await endpoint.bindClient("a", {});
  await endpoint.bindClient("b", {});
  handler.throwOnce.add("m2");
  for (const m of ["m1", "m2", "m3"]) {
    const receipt = await endpoint.publish("sender", { payload: encodeText(m) }, {});
    assert.deepEqual(receipt, { meta: { topic: "chat" } });
  }
  // The throw hit whichever subscriber came first; the other one got everything.
  const [broken, fine] = handler.of("a").length < 3 ? ["a", "b"] : ["b", "a"];
  assert.deepEqual(handler.of(fine), ["m1", "m2", "m3"]);
  assert.deepEqual(handler.of(broken), ["m1"]);
  assert.equal(endpoint.queued(broken), 2, "held, not lost");
  assert.ok(logger.lines.some((l) => /^ERROR \[Memory\] chat: delivering to [ab] failed/.test(l)));
  await endpoint.resumeClient(broken, {});
  assert.deepEqual(handler.of(broken), ["m1", "m2", "m3"]);
  await endpoint.stop();
});

test("memory: only options without a default are optional: the config schema writes the defaults once", () => {
  // The topics default to the endpoint's name, which the schema cannot know.
  const onlyUnset: Same<OptionalKeys<MemoryEndpointOptions>, "publishTopic" | "subscribeTopic"> = true;
  assert.equal(onlyUnset, true);
});

test("memory: queues are bounded in bytes per client and in all; what is dropped is counted for the resume report", async () => {
  const endpoint = new MemoryEndpoint({
    name: "chat",
    logger: memoryLogger(),
    queueLimit: 10_000,
    queueBytes: 1000,
    totalBytes: 1500,
  });
  const handler = new RecordingHandler();
  await endpoint.start(handler);
  await endpoint.bindClient("a", {});
  await endpoint.bindClient("b", {});
  await endpoint.suspendClient("a");
  await endpoint.suspendClient("b");
  const payload = encodeText("x".repeat(100));
  for (let i = 0; i < 20; i++) await endpoint.publish("sender", { payload }, {});
  // 20 x 100 bytes each: a keeps its newest 10 (1000 bytes), b what is left of the 1500 in all.
  assert.equal(endpoint.queued("a") + endpoint.queued("b") <= 15, true);
  assert.ok(endpoint.queued("a") <= 10 && endpoint.queued("b") <= 10);
  assert.equal(
    endpoint.takeLosses("a") + endpoint.takeLosses("b"),
    40 - endpoint.queued("a") - endpoint.queued("b"),
  );
  assert.equal(endpoint.takeLosses("a"), 0, "counted once");
  const big = encodeText("y".repeat(2000));
  await endpoint.publish("sender", { payload: big }, {}); // larger than a client's bound: lost for both
  assert.equal(endpoint.takeLosses("a"), 1);
  await endpoint.unbindClient("a");
  await endpoint.unbindClient("b");
});
