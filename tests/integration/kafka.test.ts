/**
 * The Kafka endpoint against Apache Kafka (KAFKA_BROKERS, 127.0.0.1:9092 by default): the
 * publish path, a disconnect in the middle of a burst, where a new binding starts, unbind,
 * retention while a client is away, the shared fetch, bounded publishes. A broker that goes away
 * or stops answering is kafka-private-broker.test.ts's. Plain kafkajs clients play the outside
 * world.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Admin, EachMessagePayload } from "kafkajs";
import type { GatewayError } from "../../src/core/errors.ts";
import { memoryLogger } from "../../src/core/logger.ts";
import { encodeText } from "../../src/core/payload.ts";
import { VirtualClock } from "../../src/core/virtual-clock.ts";
import type { KafkaEndpointOptions } from "../../src/endpoints/kafka/kafka-endpoint.ts";
import { eventually, RecordingHandler } from "../conformance/endpoint-contract.ts";
import type { OptionalKeys, Same } from "../conformance/endpoint-contract.ts";
import { kafkaNamespace, makeKafkaEndpoint, outsideProducer, startKafka } from "../support/kafka/cluster.ts";
import type { TestKafka } from "../support/kafka/cluster.ts";
import { connectionsTo } from "../support/net.ts";
import { RealScheduler } from "../../src/core/scheduler.ts";
import { KafkaWire } from "../../src/endpoints/kafka/wire.ts";

const id = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;
const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);

let kafka: TestKafka;
before(async () => {
  kafka = await startKafka();
});
after(() => kafka.stop());

test("kafka: publishes are acked with their offset, keyed per client, and arrive in order", async () => {
  const ns = kafkaNamespace("pub");
  const topic = `${ns}.shared`;
  const admin = kafka.kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] });
  const endpoint = makeKafkaEndpoint(kafka.brokers, { ns, publishTopic: topic, keyParam: "account" });
  await endpoint.start(new RecordingHandler());
  const seen: Array<{ key: string; value: string; partition: number }> = [];
  const consumer = kafka.kafka.consumer({ groupId: id("outside"), maxWaitTimeInMs: 100 });
  try {
    const receipt = await endpoint.publish("alice", { payload: encodeText("first") }, {});
    assert.equal(receipt.meta?.topic, topic);
    assert.equal(typeof receipt.meta?.partition, "number");
    assert.match(String(receipt.meta?.offset), /^\d+$/);

    await Promise.all(range("a", 100).map((m) => endpoint.publish("alice", { payload: encodeText(m) }, {})));
    await Promise.all(range("b", 100).map((m) => endpoint.publish("bob", { payload: encodeText(m) }, {})));
    await endpoint.publish("carol", { payload: encodeText("as a1") }, { account: "a1" });

    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: ({ message, partition }: EachMessagePayload) => {
        seen.push({ key: message.key!.toString(), value: message.value!.toString(), partition });
        return Promise.resolve();
      },
    });
    await eventually(() => seen.length === 202, "every publish");
    assert.deepEqual(seen.filter((m) => m.key === "alice").map((m) => m.value), [
      "first",
      ...range("a", 100),
    ]);
    assert.deepEqual(seen.filter((m) => m.key === "bob").map((m) => m.value), range("b", 100));
    assert.equal(
      new Set(seen.filter((m) => m.key === "alice").map((m) => m.partition)).size,
      1,
      "one partition",
    );
    assert.deepEqual(seen.filter((m) => m.key === "a1").map((m) => m.value), ["as a1"], "keyed by the param");
  } finally {
    await consumer.disconnect();
    await admin.disconnect();
    await endpoint.stop();
  }
});

test("kafka: a disconnect during a burst in flight loses nothing and repeats nothing", async () => {
  const ns = kafkaNamespace("burst");
  const endpoint = makeKafkaEndpoint(kafka.brokers, { ns });
  const handler = new RecordingHandler();
  await endpoint.start(handler);
  const client = id("b");
  const producer = await outsideProducer(kafka.kafka);
  try {
    await endpoint.bindClient(client, {});
    const burst = range("b", 800);
    let suspended: Promise<void> | undefined;
    handler.onDelivered = (c, count) => {
      if (count === 50) suspended = endpoint.suspendClient(c);
    };
    // In chunks sent one after another, so the broker's order is the burst's order.
    const sending = (async () => {
      for (let i = 0; i < burst.length; i += 20) {
        const messages = burst.slice(i, i + 20).map((value) => ({ key: client, value }));
        await producer.send({ topic: `${ns}.${client}.down`, messages });
      }
    })();
    await eventually(() => suspended !== undefined, "the burst to start arriving");
    await suspended;
    handler.onDelivered = undefined;
    assert.ok(handler.of(client).length < burst.length, "the suspend cut the burst");
    await sending;
    await endpoint.resumeClient(client, {});
    await eventually(() => handler.of(client).length >= burst.length, "every message of the burst");
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(handler.of(client), burst, "all of it, in order, once");
    await endpoint.unbindClient(client, {});
  } finally {
    await producer.disconnect();
    await endpoint.stop();
  }
});

test("kafka: a new binding starts at the end of the topic, or at its beginning with earliest", async () => {
  const ns = kafkaNamespace("start");
  const producer = await outsideProducer(kafka.kafka);
  const [late, early] = [id("late"), id("early")];
  for (const c of [late, early]) {
    await producer.send({ topic: `${ns}.${c}.down`, messages: [{ value: "before" }] });
  }
  const latest = makeKafkaEndpoint(kafka.brokers, { ns });
  const earliest = makeKafkaEndpoint(kafka.brokers, { ns, startFrom: "earliest" });
  const [hl, he] = [new RecordingHandler(), new RecordingHandler()];
  await latest.start(hl);
  await earliest.start(he);
  try {
    await latest.bindClient(late, {});
    await earliest.bindClient(early, {});
    for (const c of [late, early]) {
      await producer.send({ topic: `${ns}.${c}.down`, messages: [{ value: "after" }] });
    }
    await eventually(() => hl.of(late).length >= 1 && he.of(early).length >= 2, "deliveries");
    assert.deepEqual(hl.of(late), ["after"]);
    assert.deepEqual(he.of(early), ["before", "after"]);
    await latest.unbindClient(late);
    await earliest.unbindClient(early);
  } finally {
    await producer.disconnect();
    await Promise.all([latest.stop(), earliest.stop()]);
  }
});

test("kafka: unbind deletes the client's consumer group", async () => {
  const ns = kafkaNamespace("unbind");
  const endpoint = makeKafkaEndpoint(kafka.brokers, { ns });
  await endpoint.start(new RecordingHandler());
  const admin = kafka.kafka.admin();
  await admin.connect();
  const client = id("u");
  const group = endpoint.groupId(client);
  try {
    await endpoint.bindClient(client, {});
    assert.equal(group, `engine-orders-client-${client}`);
    assert.ok((await admin.listGroups()).groups.some((g) => g.groupId === group));
    assert.equal(endpoint.bindingCount(), 1);
    await endpoint.unbindClient(client);
    assert.equal(endpoint.bindingCount(), 0);
    assert.ok(!(await admin.listGroups()).groups.some((g) => g.groupId === group));
    assert.equal((await admin.describeGroups([group])).groups[0].state, "Dead");
    await endpoint.unbindClient(client);
  } finally {
    await admin.disconnect();
    await endpoint.stop();
  }
});

test("kafka: a group with a member of someone else's is not deleted: unbind fails, temporary, and succeeds once the member left; twice is fine", async () => {
  const ns = kafkaNamespace("nonempty");
  const endpoint = makeKafkaEndpoint(kafka.brokers, { ns });
  await endpoint.start(new RecordingHandler());
  const admin = kafka.kafka.admin();
  await admin.connect();
  const client = id("ne");
  const group = endpoint.groupId(client);
  // A consumer in the client's group (an older gateway's member, or anyone's): the broker answers
  // DeleteGroups with NON_EMPTY_GROUP while it is in.
  const member = kafka.kafka.consumer({ groupId: group, maxWaitTimeInMs: 100 });
  let joined = false;
  member.on(member.events.GROUP_JOIN, () => (joined = true));
  try {
    await endpoint.bindClient(client, {});
    await member.connect();
    await member.subscribe({ topic: `${ns}.${client}.down` });
    await member.run({ eachMessage: () => Promise.resolve() });
    await eventually(() => joined, "the member to join", 30_000);
    await assert.rejects(
      endpoint.unbindClient(client),
      (e: GatewayError) =>
        e.code === "UPSTREAM_UNAVAILABLE" && e.temporary &&
        e.message.includes(`delete group ${group}: it has members (NON_EMPTY_GROUP)`),
    );
    assert.ok((await admin.listGroups()).groups.some((g) => g.groupId === group), "still there");
    await member.disconnect();
    await endpoint.unbindClient(client);
    assert.equal((await admin.describeGroups([group])).groups[0].state, "Dead", "gone once it could be");
    await endpoint.unbindClient(client);
  } finally {
    await member.disconnect();
    await admin.disconnect();
    await endpoint.stop();
  }
});

test("kafka: a bound client is no group member: its group holds the committed start and no members", async () => {
  const ns = kafkaNamespace("nomember");
  const endpoint = makeKafkaEndpoint(kafka.brokers, { ns });
  const handler = new RecordingHandler();
  await endpoint.start(handler);
  const admin = kafka.kafka.admin();
  await admin.connect();
  const producer = await outsideProducer(kafka.kafka);
  const client = id("m");
  const topic = `${ns}.${client}.down`;
  try {
    await producer.send({ topic, messages: [{ value: "before" }] });
    // One member per client would wait group.initial.rebalance.delay.ms (3 s on a default
    // broker) for its group to form, and keep a connection of its own; a group without members
    // has nothing to form.
    await endpoint.bindClient(client, {});
    const [group] = (await admin.describeGroups([endpoint.groupId(client)])).groups;
    assert.equal(group.state, "Empty");
    assert.deepEqual(group.members, []);
    const [committed] = await admin.fetchOffsets({ groupId: endpoint.groupId(client), topics: [topic] });
    assert.deepEqual(committed.partitions.map((p) => p.offset), ["1"], "the start, committed at the bind");
    await producer.send({ topic, messages: [{ value: "after" }] });
    await eventually(() => handler.of(client).length === 1, "the message after the bind");
    assert.deepEqual(handler.of(client), ["after"]);
    await eventually(async () => {
      const [now] = await admin.fetchOffsets({ groupId: endpoint.groupId(client), topics: [topic] });
      return now.partitions[0].offset === "2";
    }, "its offset committed once delivered");
    await endpoint.unbindClient(client);
  } finally {
    await producer.disconnect();
    await admin.disconnect();
    await endpoint.stop();
  }
});

/**
 * Moves each partition's log start to the given offset, as retention does when it deletes a
 * segment (DeleteRecords: deterministic, where retention.ms runs on the broker's own schedule).
 */
async function deleteRecords(admin: Admin, topic: string, starts: string[]): Promise<void> {
  await admin.fetchTopicOffsets(topic); // kafkajs finds the leaders in metadata it already has
  await admin.deleteTopicRecords({
    topic,
    partitions: starts.map((offset, partition) => ({ partition, offset })),
  });
}

test("kafka: retention deleted messages while the client was away: the resume report counts them per partition, and it goes on from the log's start, in order", async () => {
  const ns = kafkaNamespace("retention");
  const logger = memoryLogger();
  const endpoint = makeKafkaEndpoint(kafka.brokers, { ns, logger });
  const handler = new RecordingHandler();
  await endpoint.start(handler);
  const admin = kafka.kafka.admin();
  await admin.connect();
  const producer = await outsideProducer(kafka.kafka);
  const client = id("ret");
  const topic = `${ns}.${client}.down`;
  const produce = (partition: number, values: string[]) =>
    producer.send({ topic, messages: values.map((value) => ({ value, partition })) });
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] });
    await endpoint.bindClient(client, {});
    await produce(0, range("p0-a", 5));
    await produce(1, range("p1-a", 5));
    await eventually(() => handler.of(client).length === 10, "the first ten");
    await endpoint.suspendClient(client);
    assert.equal(await endpoint.takeLosses(client, {}), 0, "nothing deleted yet");
    await produce(0, range("p0-b", 20));
    await produce(1, range("p1-b", 20));
    // The client committed 5 on each; the log now starts at 17 on partition 0, 10 on 1.
    await deleteRecords(admin, topic, ["17", "10"]);
    assert.equal(await endpoint.takeLosses(client, {}), 12 + 5, "offsets 5-16 and 5-9");
    assert.equal(await endpoint.takeLosses(client, {}), 0, "reported once");
    assert.ok(
      logger.lines.some((l) =>
        l.startsWith(`WARN [Kafka] orders: retention deleted 17 messages of ${client} while it was away`) &&
        l.includes(`${topic}/0: 12 (offsets 5 to 16), ${topic}/1: 5 (offsets 5 to 9)`)
      ),
      logger.lines.join("\n"),
    );
    const [committed] = await admin.fetchOffsets({ groupId: endpoint.groupId(client), topics: [topic] });
    assert.deepEqual(
      committed.partitions.sort((a, b) => a.partition - b.partition).map((p) => p.offset),
      ["17", "10"],
      "the log's start committed",
    );
    await endpoint.resumeClient(client, {});
    await eventually(() => handler.of(client).length === 10 + 8 + 15, "what is left");
    const after = handler.of(client).slice(10);
    assert.deepEqual(after.filter((v) => v.startsWith("p0")), range("p0-b", 20).slice(12), "in order");
    assert.deepEqual(after.filter((v) => v.startsWith("p1")), range("p1-b", 20).slice(5), "in order");
    await produce(0, ["p0-live"]);
    await eventually(() => handler.of(client).at(-1) === "p0-live", "live again");
    assert.equal(await endpoint.takeLosses(client, {}), 0);
    await endpoint.unbindClient(client);
  } finally {
    await producer.disconnect();
    await admin.disconnect();
    await endpoint.stop();
  }
});

test("kafka: a deleted offset the check missed (resumed without it) is found at the fetch: counted for the next report", async () => {
  const ns = kafkaNamespace("retention-fetch");
  const logger = memoryLogger();
  const endpoint = makeKafkaEndpoint(kafka.brokers, { ns, logger });
  const handler = new RecordingHandler();
  await endpoint.start(handler);
  const admin = kafka.kafka.admin();
  await admin.connect();
  const producer = await outsideProducer(kafka.kafka);
  const client = id("retf");
  const topic = `${ns}.${client}.down`;
  try {
    await endpoint.bindClient(client, {});
    await producer.send({ topic, messages: [{ value: "a" }] });
    await eventually(() => handler.of(client).length === 1, "the first");
    await endpoint.suspendClient(client);
    await producer.send({ topic, messages: range("b", 6).map((value) => ({ value })) });
    await deleteRecords(admin, topic, ["4"]);
    await endpoint.resumeClient(client, {});
    await eventually(() => handler.of(client).length === 1 + 3, "what is left");
    assert.deepEqual(handler.of(client), ["a", "b4", "b5", "b6"]);
    assert.match(
      logger.lines.join("\n"),
      /offset 1 on .* is not in the log; going on from 4 \(3 messages deleted by retention/,
    );
    assert.equal(await endpoint.takeLosses(client, {}), 3);
    assert.equal(await endpoint.takeLosses(client, {}), 0);
    await endpoint.unbindClient(client);
  } finally {
    await producer.disconnect();
    await admin.disconnect();
    await endpoint.stop();
  }
});

test("kafka: back on a node after another node had it, what that one delivered unacknowledged comes flagged redelivered; back where nobody else was, new ones are not", async () => {
  const ns = kafkaNamespace("marks");
  const [a, b] = [
    makeKafkaEndpoint(kafka.brokers, { ns, nodeId: "a" }),
    makeKafkaEndpoint(kafka.brokers, { ns, nodeId: "b" }),
  ];
  const [ha, hb] = [new RecordingHandler(), new RecordingHandler()];
  await a.start(ha);
  await b.start(hb);
  const producer = await outsideProducer(kafka.kafka);
  const client = id("mk");
  const produce = (value: string) => producer.send({ topic: `${ns}.${client}.down`, messages: [{ value }] });
  try {
    await b.bindClient(client, {});
    await produce("m1");
    await eventually(() => hb.of(client).length === 1, "m1 on B");
    await b.suspendClient(client);
    // On A the client acknowledges nothing: m2 and m3 reach it, their offsets stay uncommitted.
    ha.acking.add(client);
    await a.resumeClient(client, {});
    await produce("m2");
    await produce("m3");
    await eventually(() => ha.of(client).length === 2, "m2 and m3 on A");
    await a.suspendClient(client);
    await b.resumeClient(client, {});
    await eventually(() => hb.of(client).length === 3, "m2 and m3 again on B");
    assert.deepEqual(hb.of(client), ["m1", "m2", "m3"]);
    assert.deepEqual(hb.redelivered.get(client), ["m2", "m3"], "A had delivered them");
    await b.suspendClient(client);
    await produce("m4");
    await b.resumeClient(client, {});
    await eventually(() => hb.of(client).length === 4, "m4 on B");
    assert.deepEqual(hb.redelivered.get(client), ["m2", "m3"], "nobody had m4: not flagged");
    await b.unbindClient(client);
  } finally {
    await producer.disconnect();
    await Promise.all([a.stop(), b.stop()]);
  }
});

test("kafka: an idle bound client's offsets are committed again daily, before the broker's retention drops them", async () => {
  const ns = kafkaNamespace("recommit");
  const clock = new VirtualClock();
  const endpoint = makeKafkaEndpoint(kafka.brokers, { ns, scheduler: clock });
  await endpoint.start(new RecordingHandler());
  const admin = kafka.kafka.admin();
  await admin.connect();
  const producer = await outsideProducer(kafka.kafka);
  const client = id("idle");
  const topic = `${ns}.${client}.down`;
  const group = endpoint.groupId(client);
  const offsetNow = async () =>
    (await admin.fetchOffsets({ groupId: group, topics: [topic] }))[0].partitions[0].offset;
  // Someone else's commit stands in for the broker forgetting the offset: only a commit of the
  // gateway's own brings it back.
  const other = new KafkaWire(kafka.kafka, 100, new RealScheduler());
  try {
    await producer.send({ topic, messages: [{ value: "before" }] });
    await endpoint.bindClient(client, {});
    assert.equal(await offsetNow(), "1");
    await other.commit(group, topic, new Map([[0, "0"]]));
    await clock.advance(23 * 3600_000);
    assert.equal(await offsetNow(), "0", "not within the day");
    await clock.advance(2 * 3600_000);
    await eventually(async () => await offsetNow() === "1", "the offset committed again");
    await endpoint.unbindClient(client);
  } finally {
    await other.disconnect();
    await producer.disconnect();
    await admin.disconnect();
    await endpoint.stop();
  }
});

test("kafka: clients of one topic at different positions share its fetch; each gets what lies from its own position on, in order, once", async () => {
  const ns = kafkaNamespace("shared");
  const topic = `${ns}.all`;
  const endpoint = makeKafkaEndpoint(kafka.brokers, { ns, subscribeTopic: topic });
  const handler = new RecordingHandler();
  await endpoint.start(handler);
  const producer = await outsideProducer(kafka.kafka);
  const send = (values: string[]) => producer.send({ topic, messages: values.map((value) => ({ value })) });
  const [early, late] = [id("early"), id("late")];
  try {
    await endpoint.bindClient(early, {});
    await send(range("m", 5));
    await eventually(() => handler.of(early).length === 5, "the first five");
    await endpoint.suspendClient(early);
    await send(range("n", 5));
    // `late` starts at the end; `early` comes back five behind it: one fetch from early's position.
    await endpoint.bindClient(late, {});
    await endpoint.resumeClient(early, {});
    await send(range("p", 5));
    await eventually(() => handler.of(early).length === 15 && handler.of(late).length === 5, "both");
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(handler.of(early), [...range("m", 5), ...range("n", 5), ...range("p", 5)]);
    assert.deepEqual(handler.of(late), range("p", 5), "nothing from before its bind");
    await endpoint.unbindClient(early);
    await endpoint.unbindClient(late);
  } finally {
    await producer.disconnect();
    await endpoint.stop();
  }
});

test("kafka: thirty clients with topics of their own use the broker connections of the first few", async () => {
  const ns = kafkaNamespace("conns");
  const endpoint = makeKafkaEndpoint(kafka.brokers, { ns });
  const handler = new RecordingHandler();
  await endpoint.start(handler);
  const port = Number(kafka.brokers[0].split(":")[1]);
  const clients = Array.from({ length: 30 }, () => id("c"));
  const producer = await outsideProducer(kafka.kafka);
  try {
    const deliverTo = async (batch: string[]) => {
      for (const c of batch) await endpoint.bindClient(c, {});
      for (const c of batch) await producer.send({ topic: `${ns}.${c}.down`, messages: [{ value: c }] });
      await eventually(() => batch.every((c) => handler.of(c).length === 1), "a message to each");
    };
    // Counted once the first clients' fetch and commits (and the outside producer) are connected.
    await deliverTo(clients.slice(0, 5));
    const first = connectionsTo(port);
    await deliverTo(clients.slice(5));
    // At most one more: the join fetch's connection opens the first time a client joins while
    // the main fetch is in a long poll. One consumer per client would add one or more each.
    assert.ok(connectionsTo(port) <= first + 1, `${first} connections, then ${connectionsTo(port)}`);
    for (const c of clients) await endpoint.unbindClient(c);
  } finally {
    await producer.disconnect();
    await endpoint.stop();
  }
});

test("kafka: an ack that comes after the unbind makes no group again", async () => {
  const ns = kafkaNamespace("lateack");
  const endpoint = makeKafkaEndpoint(kafka.brokers, { ns });
  const handler = new RecordingHandler();
  await endpoint.start(handler);
  const admin = kafka.kafka.admin();
  await admin.connect();
  const producer = await outsideProducer(kafka.kafka);
  const client = id("late");
  handler.acking.add(client);
  try {
    await endpoint.bindClient(client, {});
    await producer.send({ topic: `${ns}.${client}.down`, messages: [{ value: "held" }] });
    await eventually(() => handler.of(client).length === 1, "the delivery");
    await endpoint.unbindClient(client);
    handler.ack(client, 1);
    await new Promise((r) => setTimeout(r, 300));
    const group = endpoint.groupId(client);
    assert.ok(!(await admin.listGroups()).groups.some((g) => g.groupId === group), "no group left behind");
  } finally {
    await producer.disconnect();
    await admin.disconnect();
    await endpoint.stop();
  }
});

const outcome = (p: Promise<unknown>) => p.then(() => "receipt", (e: GatewayError) => e.code);

test("kafka: publishes waiting on the brokers are bounded: 1000 per key, 10000 in all", async () => {
  const ns = kafkaNamespace("bounds");
  const endpoint = makeKafkaEndpoint(kafka.brokers, { ns, publishTimeout: 30_000 });
  await endpoint.start(new RecordingHandler());
  try {
    const payload = { payload: encodeText("x") };
    // All sent in one go: each key's first is in flight and the rest wait behind it.
    const first = Array.from({ length: 1002 }, () => outcome(endpoint.publish("k0", payload, {})));
    const rest = range("k", 9).flatMap((key) =>
      Array.from({ length: 1001 }, () => outcome(endpoint.publish(key, payload, {})))
    );
    const tally = (codes: string[]) =>
      Object.fromEntries([...new Set(codes)].map((c) => [c, codes.filter((x) => x === c).length]));
    // k0: 1 in flight, 1000 waiting, the next refused. Then 9 more keys fill up 10000 in all.
    assert.deepEqual(tally(await Promise.all(first)), { receipt: 1001, RATE_LIMITED: 1 });
    assert.deepEqual(tally(await Promise.all(rest)), { receipt: 8999, UPSTREAM_UNAVAILABLE: 10 });
    assert.equal(await outcome(endpoint.publish("k0", payload, {})), "receipt", "room again once acked");
  } finally {
    await endpoint.stop();
  }
});

test("kafka: only options without a default are optional: the config schema writes the defaults once", () => {
  const onlyUnset: Same<OptionalKeys<KafkaEndpointOptions>, "keyParam" | "sasl"> = true;
  assert.equal(onlyUnset, true);
});
