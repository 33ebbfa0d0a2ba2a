/**
 * The endpoint contract kit against the NATS JetStream endpoint and the real nats-server on
 * 127.0.0.1:4222 (durable: a consumer's state outlives the gateway). The stream is unique to the
 * run and deleted afterwards.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { encodeText } from "../../src/core/payload.ts";
import { GatewayError } from "../../src/core/errors.ts";
import { consumerNamePart, streamSubjects } from "../../src/endpoints/nats/subjects.ts";
import { makeNatsEndpoint, natsNamespace, OutsideNats } from "../support/nats.ts";
// As a plugin author imports the kit (package.json / deno.json "exports"):
import { endpointContract, eventually, RecordingHandler } from "mediation-engine/conformance";

const ns = natsNamespace("contract");
let outside: OutsideNats;
before(async () => {
  outside = await OutsideNats.connect();
});
after(async () => {
  await outside.dropStream(ns.stream);
  await outside.close();
});

endpointContract("nats", () =>
  Promise.resolve({
    make: (logger) => makeNatsEndpoint({ ns, ...(logger && { logger }) }),
    inject: (clientId, text) => outside.publish(`${ns.prefix}.${clientId}.down`, text),
    durable: true,
    clientId: (label) => `${label}-${crypto.randomUUID().slice(0, 8)}`,
  }));

test("nats: a publish resolves on the JetStream ack, with the stream and its sequence", async () => {
  const endpoint = makeNatsEndpoint({ ns });
  await endpoint.start(new RecordingHandler());
  try {
    const receipt = await endpoint.publish("dev-1", { payload: encodeText('{"t":1}') }, {});
    assert.equal(receipt.meta?.subject, `${ns.prefix}.dev-1.up`);
    assert.equal(receipt.meta?.stream, ns.stream);
    assert.equal(typeof receipt.meta?.seq, "number");
    const elsewhere = makeNatsEndpoint({ ns, publishSubject: "nowhere.{clientId}" });
    await elsewhere.start(new RecordingHandler());
    await assert.rejects(
      elsewhere.publish("dev-1", { payload: encodeText("x") }, {}),
      (e) =>
        e instanceof GatewayError && e.code === "UPSTREAM_UNAVAILABLE" &&
        e.message ===
          "NATS publish to nowhere.dev-1 refused: no stream captures this subject (or JetStream is off)",
    );
    await elsewhere.stop();
    await assert.rejects(
      endpoint.publish("a.b", { payload: encodeText("x") }, {}),
      (e) => e instanceof GatewayError && e.code === "BAD_FRAME" && /may not contain "\."/.test(e.message),
    );
  } finally {
    await endpoint.stop();
  }
});

test("nats: each bound client has a durable consumer named by its escaped ID; unbind deletes it", async () => {
  const endpoint = makeNatsEndpoint({ ns });
  await endpoint.start(new RecordingHandler());
  const id = `dev.${crypto.randomUUID().slice(0, 8)}:x_y`;
  try {
    await endpoint.bindClient(id, {}).catch((e) => assert.match(e.message, /may not contain/));
    // The subject needs a dot-free client ID; the consumer name escapes whatever the ID holds.
    const plain = `dev-${crypto.randomUUID().slice(0, 8)}`;
    await endpoint.bindClient(plain, {});
    assert.ok((await outside.consumers(ns.stream)).includes(`engine-events-client-${plain}`));
    await endpoint.unbindClient(plain, {});
    await eventually(
      async () => !(await outside.consumers(ns.stream)).includes(`engine-events-client-${plain}`),
      "the consumer deleted",
    );
    assert.equal(endpoint.consumerName(id), `engine-events-client-${consumerNamePart(id)}`);
  } finally {
    await endpoint.stop();
  }
});

test("nats: consumer names are NATS-legal and never the same for two client IDs", () => {
  const ids = ["a.b", "a_2Eb", "a:b", "a_b", "a-b", "ab", "A.b", "a.b.", "x\u00e9", "x_C3_A9"];
  const names = ids.map(consumerNamePart);
  for (const name of names) assert.match(name, /^[A-Za-z0-9_-]+$/);
  assert.equal(new Set(names).size, ids.length);
  assert.equal(consumerNamePart("dev.1:a_b"), "dev_2E1_3Aa_5Fb");
});

test("nats: a created stream captures both templates, no subject twice", () => {
  assert.deepEqual(streamSubjects(["app.{clientId}.up", "app.{clientId}.down"]), ["app.*.up", "app.*.down"]);
  assert.deepEqual(streamSubjects(["orders.in", "orders.{clientId}"]), ["orders.*"]);
  assert.deepEqual(streamSubjects(["a.>", "a.{room}.x"]), ["a.>"]);
});

test("nats: with create_stream false a missing stream stops start-up with its name", async () => {
  const endpoint = makeNatsEndpoint({ ns: natsNamespace("missing"), createStream: false });
  await assert.rejects(endpoint.start(new RecordingHandler()), /does not exist \(create_stream is false\)/);
});
