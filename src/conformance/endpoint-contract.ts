/**
 * The endpoint contract kit (`mediation-engine/conformance`): what every LifecycleBinder must do
 * (DESIGN.md section 3), run against a real broker, under `deno test` and `bun test` alike (it is
 * written on node:test and node:assert). Every built-in endpoint passes it, and a plugin author
 * runs the same suite against theirs: bind delivers in order; suspend queues at the broker and
 * resume drains in order, once; unsettled messages (end-to-end acks) come again flagged
 * redelivered; a refused or throwing delivery stays with the broker; unbind drops; every method
 * is idempotent; a restarted endpoint resumes a client it never saw bound; and, given
 * `unreachable`, a broker that does not answer at start is the broker-down case of
 * Endpoint.start (starts anyway, not healthy, UPSTREAM_UNAVAILABLE, one WARN).
 *
 * @example
 * // my-endpoint.test.ts
 * import { endpointContract } from "mediation-engine/conformance";
 * endpointContract("my-broker", async () => ({
 *   make: (logger) => new MyEndpoint({ ...options, ...(logger && { logger }) }),
 *   inject: (clientId, text) => publishFromOutside(`down.${clientId}`, text),
 *   durable: true,
 *   clientId: (label) => `${label}-${crypto.randomUUID().slice(0, 8)}`,
 * }));
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { GatewayError } from "../core/errors.ts";
import { memoryLogger } from "../core/logger.ts";

import { eventually, RecordingHandler } from "./endpoint-harness.ts";
import type { ContractHarness } from "./endpoint-harness.ts";

export { eventually, RecordingHandler } from "./endpoint-harness.ts";
export type { ContractHarness, OptionalKeys, Same } from "./endpoint-harness.ts";

const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i + 1}`);

/**
 * Registers the contract's tests (node:test `test`) for an endpoint. `setup` runs before each
 * test and gives the harness: how to make an endpoint on the broker, and how to publish to a
 * client's subscription from outside the gateway.
 */
export function endpointContract(kind: string, setup: () => Promise<ContractHarness>): void {
  async function started() {
    const harness = await setup();
    const handler = new RecordingHandler();
    const endpoint = harness.make();
    await endpoint.start(handler);
    const params = harness.params ?? {};
    const done = async () => {
      await endpoint.stop();
      await harness.close?.();
    };
    return { harness, handler, endpoint, params, done };
  }

  test(`${kind} contract: bind delivers what is published after it, in order`, async () => {
    const { harness, handler, endpoint, params, done } = await started();
    const id = harness.clientId("bind");
    try {
      await endpoint.bindClient(id, params);
      for (const m of range("m", 20)) await harness.inject(id, m);
      await eventually(() => handler.of(id).length >= 20, "20 deliveries");
      assert.deepEqual(handler.of(id), range("m", 20));
      await endpoint.unbindClient(id, params);
    } finally {
      await done();
    }
  });

  test(`${kind} contract: suspend queues at the broker; resume drains in order, once`, async () => {
    const { harness, handler, endpoint, params, done } = await started();
    const id = harness.clientId("suspend");
    try {
      await endpoint.bindClient(id, params);
      await harness.inject(id, "before");
      await eventually(() => handler.of(id).length === 1, "the first delivery");
      await endpoint.suspendClient(id);
      for (const m of range("away", 100)) await harness.inject(id, m);
      assert.deepEqual(handler.of(id), ["before"], "nothing is delivered while suspended");
      await endpoint.resumeClient(id, params);
      await eventually(() => handler.of(id).length >= 101, "the queued deliveries");
      await harness.inject(id, "after");
      await eventually(() => handler.of(id).length >= 102, "the live delivery");
      assert.deepEqual(handler.of(id), ["before", ...range("away", 100), "after"]);
      await endpoint.unbindClient(id, params);
    } finally {
      await done();
    }
  });

  test(`${kind} contract: with end-to-end acks, what was not settled comes again on resume, flagged redelivered`, async () => {
    const { harness, handler, endpoint, params, done } = await started();
    const id = harness.clientId("acks");
    try {
      handler.acking.add(id);
      await endpoint.bindClient(id, params);
      for (const m of range("a", 6)) await harness.inject(id, m);
      await eventually(() => handler.of(id).length >= 6, "6 deliveries, none settled yet");
      assert.deepEqual(handler.redelivered.get(id) ?? [], [], "new messages are not flagged");
      handler.ack(id, 2); // the client acknowledged a-1 and a-2; a-3..a-6 were lost on the way
      await endpoint.suspendClient(id);
      handler.received.delete(id);
      handler.pending.delete(id);
      await harness.inject(id, "while-away");
      await endpoint.resumeClient(id, params);
      await eventually(() => handler.of(id).length >= 5, "the unsettled ones and the new one");
      await new Promise((r) => setTimeout(r, 200)); // a duplicate of a settled one would show by now
      assert.deepEqual(handler.of(id), [...range("a", 6).slice(2), "while-away"], "settled ones never again");
      assert.deepEqual(handler.redelivered.get(id), range("a", 6).slice(2), "the ones that may have arrived");
      handler.ack(id, 5);
      await endpoint.suspendClient(id);
      handler.received.delete(id);
      await endpoint.resumeClient(id, params);
      await harness.inject(id, "last");
      await eventually(() => handler.of(id).length >= 1, "the next one");
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(handler.of(id), ["last"], "everything acknowledged stays acknowledged");
      await endpoint.unbindClient(id, params);
    } finally {
      await done();
    }
  });

  test(`${kind} contract: a refused delivery stays with the broker until resume`, async () => {
    const { harness, handler, endpoint, params, done } = await started();
    const id = harness.clientId("refuse");
    try {
      await endpoint.bindClient(id, params);
      handler.refusing.add(id);
      for (const m of range("r", 10)) await harness.inject(id, m);
      handler.refusing.delete(id);
      await endpoint.resumeClient(id, params);
      await eventually(() => handler.of(id).length >= 10, "the refused deliveries");
      assert.deepEqual(handler.of(id), range("r", 10));
      await endpoint.unbindClient(id, params);
    } finally {
      await done();
    }
  });

  test(`${kind} contract: a deliver that throws is a refusal: logged, kept, delivered on resume`, async () => {
    const harness = await setup();
    const params = harness.params ?? {};
    const logger = memoryLogger();
    const handler = new RecordingHandler();
    const endpoint = harness.make(logger);
    await endpoint.start(handler);
    const id = harness.clientId("throw");
    try {
      await endpoint.bindClient(id, params);
      handler.throwOnce.add("t-3");
      // For the memory endpoint, inject is a publish: it must still get its receipt.
      for (const m of range("t", 5)) await harness.inject(id, m);
      await eventually(() => handler.thrown.length === 1, "the delivery that throws");
      assert.deepEqual(handler.of(id).slice(0, 2), ["t-1", "t-2"]);
      assert.ok(
        logger.lines.some((l) => l.startsWith("ERROR") && l.includes(id) && l.includes(endpoint.name)),
        `an error line naming the client and the endpoint, got ${JSON.stringify(logger.lines)}`,
      );
      await endpoint.resumeClient(id, params);
      await harness.inject(id, "after");
      await eventually(() => handler.of(id).length >= 6, "the held messages and a live one");
      assert.deepEqual(handler.of(id), [...range("t", 5), "after"], "nothing lost, nothing twice");
      await endpoint.unbindClient(id, params);
    } finally {
      await endpoint.stop();
      await harness.close?.();
    }
  });

  test(`${kind} contract: unbind drops the queue and the binding`, async () => {
    const { harness, handler, endpoint, params, done } = await started();
    const id = harness.clientId("unbind");
    try {
      await endpoint.bindClient(id, params);
      await endpoint.suspendClient(id);
      for (const m of range("old", 5)) await harness.inject(id, m);
      await endpoint.unbindClient(id, params);
      await endpoint.bindClient(id, params);
      await harness.inject(id, "new");
      await eventually(() => handler.of(id).length >= 1, "the new delivery");
      assert.deepEqual(handler.of(id), ["new"]);
      await endpoint.unbindClient(id, params);
    } finally {
      await done();
    }
  });

  test(`${kind} contract: every method is idempotent and safe in any order`, async () => {
    const { harness, handler, endpoint, params, done } = await started();
    const id = harness.clientId("idem");
    const stranger = harness.clientId("never-bound");
    try {
      await endpoint.suspendClient(stranger);
      await endpoint.unbindClient(stranger, params);
      await endpoint.bindClient(id, params);
      await endpoint.bindClient(id, params);
      await endpoint.resumeClient(id, params);
      await harness.inject(id, "once");
      await eventually(() => handler.of(id).length >= 1, "a delivery");
      await endpoint.suspendClient(id);
      await endpoint.suspendClient(id);
      await endpoint.resumeClient(id, params);
      await endpoint.resumeClient(id, params);
      await harness.inject(id, "twice");
      await eventually(() => handler.of(id).length >= 2, "a second delivery");
      assert.deepEqual(handler.of(id), ["once", "twice"], "double binds do not double deliveries");
      await endpoint.unbindClient(id, params);
      await endpoint.unbindClient(id, params);
      await endpoint.suspendClient(id);
    } finally {
      await done();
    }
  });

  test(`${kind} contract: a broker that does not answer at start: it starts, is not healthy, refuses with UPSTREAM_UNAVAILABLE, one WARN`, async () => {
    const harness = await setup();
    const logger = memoryLogger();
    const endpoint = harness.unreachable?.(logger);
    try {
      if (!endpoint) return;
      const params = harness.params ?? {};
      await endpoint.start(new RecordingHandler());
      assert.equal((await endpoint.health()).ok, false, "health() while the broker is down");
      const unavailable = (e: unknown) =>
        e instanceof GatewayError && e.code === "UPSTREAM_UNAVAILABLE" && e.temporary;
      await assert.rejects(
        endpoint.publish(harness.clientId("down"), { payload: new Uint8Array(2) }, params),
        unavailable,
      );
      await assert.rejects(endpoint.bindClient(harness.clientId("down"), params), unavailable);
      const warnings = () => logger.lines.filter((l) => l.startsWith("WARN"));
      await eventually(() => warnings().length > 0, "the WARN of the broker being down");
      assert.equal(warnings().length, 1, logger.lines.join("\n"));
    } finally {
      await endpoint?.stop();
      await harness.close?.();
    }
  });

  test(`${kind} contract: a restarted endpoint resumes a client it never saw bound`, async () => {
    const harness = await setup();
    const params = harness.params ?? {};
    const id = harness.clientId("restart");
    const first = harness.make();
    const firstHandler = new RecordingHandler();
    await first.start(firstHandler);
    await first.bindClient(id, params);
    await first.suspendClient(id);
    await first.stop(); // the gateway node goes away without unbinding
    await harness.inject(id, "while-down");

    const second = harness.make();
    const handler = new RecordingHandler();
    await second.start(handler);
    try {
      await second.resumeClient(id, params);
      await harness.inject(id, "after-restart");
      const expected = harness.durable ? ["while-down", "after-restart"] : ["after-restart"];
      await eventually(() => handler.of(id).length >= expected.length, "deliveries after restart");
      assert.deepEqual(handler.of(id), expected);
      await second.unbindClient(id, params);
    } finally {
      await second.stop();
      await harness.close?.();
    }
  });
}
