/**
 * The endpoint contract kit against the NATS JetStream endpoint and the real nats-server on
 * 127.0.0.1:4222 (durable: a consumer's state outlives the gateway). The stream is unique to the
 * run and deleted afterwards.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { encodeText } from "../../src/core/payload.ts";
import { memoryLogger } from "../../src/core/logger.ts";
import { VirtualClock } from "../../src/core/virtual-clock.ts";
import { GatewayError } from "../../src/core/errors.ts";
import { consumerNamePart, streamSubjects } from "../../src/endpoints/nats/subjects.ts";
import { makeNatsEndpoint, natsNamespace, OutsideNats, PrivateNats } from "../support/nats.ts";
import { freePort } from "../support/net.ts";
// As a plugin author imports the kit (package.json / deno.json "exports"):
import { endpointContract, eventually, RecordingHandler } from "mediation-engine/conformance";

const ns = natsNamespace("contract");
let outside: OutsideNats;
/** A port nothing listens on, for the broker-down case. */
let downPort: number;
before(async () => {
  downPort = await freePort();
  outside = await OutsideNats.connect();
});
after(async () => {
  await outside.dropStream(ns.stream);
  await outside.close();
});

endpointContract("nats", () =>
  Promise.resolve({
    make: (logger) => makeNatsEndpoint({ ns, ...(logger && { logger }) }),
    unreachable: (logger) => makeNatsEndpoint({ ns, servers: [`127.0.0.1:${downPort}`], logger }),
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

/** Records deliveries like RecordingHandler, and which clients' consumers were reported dropped. */
class DropWatchingHandler extends RecordingHandler {
  dropped: string[] = [];
  consumerDropped(clientId: string): void {
    this.dropped.push(clientId);
  }
}

const until = (check: () => boolean | Promise<boolean>, what: string) => eventually(check, what, 5000);

test("nats: another node resuming the client takes the consumer; the first is told, and does not take it back", async () => {
  const clock = new VirtualClock();
  const a = makeNatsEndpoint({ ns, scheduler: clock });
  const b = makeNatsEndpoint({ ns });
  const onA = new DropWatchingHandler();
  const onB = new RecordingHandler();
  await a.start(onA);
  await b.start(onB);
  const id = `moved-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await a.bindClient(id, {});
    await outside.publish(`${ns.prefix}.${id}.down`, "m1");
    await until(() => onA.of(id).length === 1, "m1 on the first node");
    // Its ack confirmed first: else the second node starts below it and m1 comes again (flagged).
    await until(
      async () => (await outside.jsm.consumers.info(ns.stream, a.consumerName(id))).num_ack_pending === 0,
      "m1's ack at the broker",
    );
    await b.resumeClient(id, {});
    await until(() => onA.dropped.includes(id), "the first node told");
    await outside.publish(`${ns.prefix}.${id}.down`, "m2");
    await until(() => onB.of(id).length === 1, "m2 on the second node");
    await clock.advance(5000); // past the first node's look at the consumer
    await outside.publish(`${ns.prefix}.${id}.down`, "m3");
    await until(() => onB.of(id).length === 2, "m3 on the second node");
    assert.deepEqual(onB.of(id), ["m2", "m3"]);
    assert.deepEqual(onA.of(id), ["m1"], "the first node never pulls again");
    await b.unbindClient(id, {});
  } finally {
    await a.stop();
    await b.stop();
  }
});

test("nats: a refused delivery pauses the pull until the hub resumes it: no WARN, no drop reported, no pulling of its own", async () => {
  const clock = new VirtualClock();
  const logger = memoryLogger();
  const endpoint = makeNatsEndpoint({ ns, scheduler: clock, logger });
  const handler = new DropWatchingHandler();
  let refused = 0;
  const deliver = handler.deliver.bind(handler);
  handler.deliver = (clientId, name, message) => {
    const written = deliver(clientId, name, message);
    if (!written) refused++;
    return written;
  };
  await endpoint.start(handler);
  const id = `refused-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await endpoint.bindClient(id, {});
    handler.refusing.add(id);
    await outside.publish(`${ns.prefix}.${id}.down`, "m1");
    await until(() => refused === 1, "the refused delivery");
    handler.refusing.delete(id);
    await new Promise((r) => setTimeout(r, 200)); // the stopped pull's end has been seen by now
    await clock.advance(5000); // past the retry of a pull that ended by itself
    await outside.publish(`${ns.prefix}.${id}.down`, "m2");
    await new Promise((r) => setTimeout(r, 300)); // a pull of its own would have handed them over by now
    assert.deepEqual(handler.of(id), [], "nothing handed over before the hub resumes the client");
    assert.deepEqual(handler.dropped, [], "a refusal is not a consumer that went away");
    assert.deepEqual(logger.lines.filter((l) => l.startsWith("WARN")), []);
    await endpoint.resumeClient(id, {});
    await until(() => handler.of(id).length === 2, "both after the resume");
    assert.deepEqual(handler.of(id), ["m1", "m2"]);
    await endpoint.unbindClient(id, {});
  } finally {
    await endpoint.stop();
  }
});

test("nats: a consumer deleted from outside is re-created and pulled again while the client stays", async () => {
  const clock = new VirtualClock();
  const endpoint = makeNatsEndpoint({ ns, scheduler: clock });
  const handler = new DropWatchingHandler();
  await endpoint.start(handler);
  const id = `deleted-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await endpoint.bindClient(id, {});
    await outside.publish(`${ns.prefix}.${id}.down`, "before");
    await until(() => handler.of(id).length === 1, "the delivery before"); // the pull is waiting now
    await outside.jsm.consumers.delete(ns.stream, endpoint.consumerName(id));
    await until(() => handler.dropped.includes(id), "the drop reported");
    await clock.advance(5000);
    await until(
      async () => (await outside.consumers(ns.stream)).includes(endpoint.consumerName(id)),
      "re-created",
    );
    await outside.publish(`${ns.prefix}.${id}.down`, "after");
    await until(() => handler.of(id).length === 2, "the delivery after");
    assert.deepEqual(handler.of(id), ["before", "after"]);
    await endpoint.unbindClient(id, {});
  } finally {
    await endpoint.stop();
  }
});

test("nats: a new binding starts at the stream's end, whatever a consumer left from an earlier one held", async () => {
  const first = makeNatsEndpoint({ ns });
  await first.start(new RecordingHandler());
  const id = `stale-${crypto.randomUUID().slice(0, 8)}`;
  await first.bindClient(id, {});
  await first.suspendClient(id);
  await outside.publish(`${ns.prefix}.${id}.down`, "stale");
  await first.stop(); // its unbind never came
  const second = makeNatsEndpoint({ ns });
  const handler = new RecordingHandler();
  await second.start(handler);
  try {
    await second.bindClient(id, {});
    await outside.publish(`${ns.prefix}.${id}.down`, "new");
    await until(() => handler.of(id).length >= 1, "the new one");
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(handler.of(id), ["new"]);
    await second.unbindClient(id, {});
  } finally {
    await second.stop();
  }
});

test("nats: the server killed and back on its store: publishes fail meanwhile, then the client's queue flows on in order", async () => {
  const server = await PrivateNats.start();
  const privateNs = natsNamespace("restart");
  const endpoint = makeNatsEndpoint({ ns: privateNs, servers: [server.server] });
  const handler = new DropWatchingHandler();
  await endpoint.start(handler);
  const id = `restart-${crypto.randomUUID().slice(0, 8)}`;
  let publisher = await OutsideNats.connect(server.server);
  try {
    await endpoint.bindClient(id, {});
    for (const m of ["m1", "m2"]) await publisher.publish(`${privateNs.prefix}.${id}.down`, m);
    await until(() => handler.of(id).length === 2, "m1 and m2");
    await publisher.close();
    await server.kill();
    await until(() => handler.dropped.includes(id), "the drop reported");
    await assert.rejects(
      endpoint.publish(id, { payload: encodeText("x") }, {}),
      (e) => e instanceof GatewayError && e.code === "UPSTREAM_UNAVAILABLE",
    );
    assert.equal((await endpoint.health()).ok, false);
    await server.resume();
    publisher = await OutsideNats.connect(server.server);
    for (const m of ["m3", "m4", "m5"]) await publisher.publish(`${privateNs.prefix}.${id}.down`, m);
    await eventually(() => new Set(handler.of(id)).size === 5, "the queue after the restart", 20_000);
    await new Promise((r) => setTimeout(r, 300));
    // A killed server may lose the acks it had not written to its store yet: those messages come
    // again, flagged; nothing is lost and the order holds.
    const got = handler.of(id);
    assert.deepEqual([...new Set(got)], ["m1", "m2", "m3", "m4", "m5"], "nothing lost, in order");
    const again = got.filter((m, i) => got.indexOf(m) !== i);
    assert.ok(
      again.every((m) => handler.redelivered.get(id)?.includes(m)),
      "a repeat is flagged redelivered",
    );
    assert.deepEqual(got.slice(got.indexOf("m3")), ["m3", "m4", "m5"], "the new ones once, after the old");
    assert.equal((await endpoint.health()).ok, true);
    await endpoint.unbindClient(id, {});
  } finally {
    await endpoint.stop();
    await publisher.close().catch(() => {});
    await server.stop();
  }
});
