/**
 * The Kafka test broker (tests/support/kafka) judged by real kafkajs producers, consumers and
 * admin, and by raw protocol requests for what kafkajs never sends.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Kafka, logLevel, Partitioners } from "kafkajs";
import type { Consumer, EachMessagePayload } from "kafkajs";
import { ApiKey, ErrorCode, KafkaTestBroker } from "../support/kafka/broker.ts";
import { Writer } from "../support/kafka/codec.ts";
import type { Reader } from "../support/kafka/codec.ts";
import { RawKafkaClient } from "../support/kafka/raw-client.ts";
import { eventually } from "../conformance/endpoint-contract.ts";

let broker: KafkaTestBroker;
let kafka: Kafka;
before(async () => {
  broker = await KafkaTestBroker.start();
  kafka = new Kafka({ clientId: "broker-test", brokers: broker.brokers, logLevel: logLevel.NOTHING });
});
after(() => broker.stop());

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;

async function produce(topic: string, messages: Array<{ key?: string; value: string; partition?: number }>) {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    return await producer.send({ topic, messages });
  } finally {
    await producer.disconnect();
  }
}

/** A consumer that records `partition:value` and commits only when told to. */
async function consume(groupId: string, topic: string, fromBeginning = true) {
  const seen: Array<{ partition: number; offset: string; value: string }> = [];
  const consumer: Consumer = kafka.consumer({
    groupId,
    heartbeatInterval: 200,
    sessionTimeout: 6000,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning });
  await consumer.run({
    autoCommit: false,
    eachMessage: ({ partition, message }: EachMessagePayload) => {
      seen.push({ partition, offset: message.offset, value: message.value!.toString() });
      return Promise.resolve();
    },
  });
  return { consumer, seen };
}

test("kafka broker: produce and consume on several partitions, each partition in order", async () => {
  const topic = unique("multi");
  const admin = kafka.admin();
  await admin.connect();
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] }), true);
  const values = Array.from({ length: 30 }, (_, i) => ({ key: `k${i % 5}`, value: `v${i}` }));
  const acks = await produce(topic, values);
  assert.ok(acks.every((a) => a.errorCode === 0));
  const { consumer, seen } = await consume(unique("g"), topic);
  await eventually(() => seen.length === 30, "30 messages");
  for (let p = 0; p < 3; p++) {
    const offsets = seen.filter((m) => m.partition === p).map((m) => Number(m.offset));
    assert.deepEqual(offsets, offsets.map((_, i) => i), `partition ${p} in offset order from 0`);
  }
  assert.ok(new Set(seen.map((m) => m.partition)).size > 1, "more than one partition used");
  // Per key, the order of sending.
  for (let k = 0; k < 5; k++) {
    const sent = values.filter((v) => v.key === `k${k}`).map((v) => v.value);
    const got = seen.filter((m) => Number(m.value.slice(1)) % 5 === k).map((m) => m.value);
    assert.deepEqual(got, sent);
  }
  const offsets = await admin.fetchTopicOffsets(topic);
  assert.equal(offsets.reduce((n, o) => n + Number(o.high), 0), 30);
  assert.ok(offsets.every((o) => o.low === "0"));
  await consumer.disconnect();
  await admin.disconnect();
});

test("kafka broker: committed offsets survive a consumer restart", async () => {
  const topic = unique("restart");
  const group = unique("g");
  await produce(topic, Array.from({ length: 5 }, (_, i) => ({ value: `a${i}` })));
  const first = await consume(group, topic);
  await eventually(() => first.seen.length === 5, "first 5");
  await first.consumer.commitOffsets([{ topic, partition: 0, offset: "3" }]);
  await first.consumer.disconnect();

  await produce(topic, Array.from({ length: 2 }, (_, i) => ({ value: `b${i}` })));
  const second = await consume(group, topic);
  await eventually(() => second.seen.length === 4, "from the committed offset");
  assert.deepEqual(second.seen.map((m) => m.value), ["a3", "a4", "b0", "b1"]);
  await second.consumer.disconnect();
});

test("kafka broker: a second member rebalances the group; each resumes from the committed offsets", async () => {
  const topic = unique("rebalance");
  const group = unique("g");
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] });
  await produce(topic, [0, 1].flatMap((p) => [0, 1, 2].map((i) => ({ partition: p, value: `p${p}-${i}` }))));
  const a = await consume(group, topic);
  await eventually(() => a.seen.length === 6, "A reads both partitions");
  await a.consumer.commitOffsets([{ topic, partition: 0, offset: "3" }, {
    topic,
    partition: 1,
    offset: "1",
  }]);

  const b = await consume(group, topic);
  await eventually(
    async () => {
      const [described] = (await admin.describeGroups([group])).groups;
      return described.state === "Stable" && described.members.length === 2;
    },
    "a stable group of two",
    20_000,
  );
  // Whoever got partition 1 starts again at its committed offset 1.
  await eventually(() => [...a.seen, ...b.seen].filter((m) => m.value === "p1-1").length === 2, "p1-1 again");
  await produce(topic, [{ partition: 0, value: "p0-3" }, { partition: 1, value: "p1-3" }]);
  await eventually(() => [...a.seen, ...b.seen].some((m) => m.value === "p0-3"), "new message on p0");
  await eventually(() => [...a.seen, ...b.seen].some((m) => m.value === "p1-3"), "new message on p1");
  const bPartitions = new Set(b.seen.map((m) => m.partition));
  assert.equal(bPartitions.size, 1, "B owns one partition");
  assert.ok(!b.seen.some((m) => m.value === "p0-0"), "nothing before a committed offset is read again");
  await Promise.all([a.consumer.disconnect(), b.consumer.disconnect()]);
  await admin.disconnect();
});

test("kafka broker: DeleteGroups removes the offsets; a group with members is not deleted", async () => {
  const topic = unique("delete");
  const group = unique("g");
  await produce(topic, [{ value: "x" }]);
  const { consumer, seen } = await consume(group, topic);
  await eventually(() => seen.length === 1, "one message");
  await consumer.commitOffsets([{ topic, partition: 0, offset: "1" }]);
  const admin = kafka.admin();
  await admin.connect();
  const groupError = (code: number) => (e: { groups?: Array<{ errorCode: number }> }) =>
    e.groups?.[0]?.errorCode === code;
  await assert.rejects(admin.deleteGroups([group]), groupError(ErrorCode.NON_EMPTY_GROUP));
  await consumer.disconnect();
  await admin.deleteGroups([group]);
  const [offsets] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  assert.deepEqual(offsets.partitions.map((p) => p.offset), ["-1"]);
  assert.ok(!(await admin.listGroups()).groups.some((g) => g.groupId === group));
  assert.equal((await admin.describeGroups([group])).groups[0].state, "Dead");
  await assert.rejects(admin.deleteGroups([group]), groupError(ErrorCode.GROUP_ID_NOT_FOUND));
  await admin.disconnect();
});

/** A Fetch v4 request for one partition. */
function fetchRequest(topic: string, offset: number, maxWait: number, minBytes: number): Writer {
  return new Writer().int32(-1).int32(maxWait).int32(minBytes).int32(1 << 20).int8(0)
    .array([topic], (w, t) => w.string(t).array([0], (w) => w.int32(0).int64(offset).int32(1 << 20)));
}

/** The one partition of a Fetch v4 answer to `fetchRequest`. */
function fetchAnswer(body: Reader) {
  body.int32(); // throttle_time_ms
  assert.equal(body.int32(), 1, "one topic");
  const topic = body.string();
  assert.equal(body.int32(), 1, "one partition");
  const partition = body.int32();
  const error = body.int16();
  const highWatermark = body.int64();
  body.int64(); // last_stable_offset
  body.int32(); // aborted_transactions, always empty here
  return { topic, partition, error, highWatermark, recordBytes: body.int32() };
}

test("kafka broker: Fetch waits up to max_wait for min_bytes, and answers as soon as data arrives", async () => {
  const topic = unique("wait");
  broker.createTopic(topic);
  const raw = await RawKafkaClient.connect(broker.port);
  const fetch = async (offset: number, maxWait: number, minBytes: number) => {
    const started = Date.now();
    const answer = fetchAnswer(
      await raw.request(ApiKey.Fetch, 4, fetchRequest(topic, offset, maxWait, minBytes)),
    );
    return { ...answer, took: Date.now() - started };
  };
  try {
    const empty = await fetch(0, 400, 1);
    assert.ok(empty.took >= 380, "an empty partition is held for max_wait");
    assert.deepEqual([empty.topic, empty.partition, empty.error, empty.recordBytes], [
      topic,
      0,
      ErrorCode.NONE,
      0,
    ]);

    const pending = fetch(0, 5000, 1);
    setTimeout(() => void produce(topic, [{ value: "late" }]), 200);
    const late = await pending;
    assert.ok(late.took < 3000, "answered when the data came, not at max_wait");
    assert.equal(late.error, ErrorCode.NONE);
    assert.equal(late.highWatermark, 1, "high watermark");
    assert.ok(late.recordBytes > 61, "one record batch");

    // One small batch is there, but less than min_bytes: held until max_wait, then answered with it.
    const under = await fetch(0, 300, 1 << 16);
    assert.ok(under.took >= 280, "held for max_wait while under min_bytes");
    assert.equal(under.error, ErrorCode.NONE);
    assert.ok(under.recordBytes > 61, "still answered with what there is");

    assert.equal((await fetch(5, 0, 1)).error, ErrorCode.OFFSET_OUT_OF_RANGE);
  } finally {
    raw.close();
  }
});

test("kafka broker: unknown API keys, unsupported versions and malformed requests get error answers", async () => {
  const raw = await RawKafkaClient.connect(broker.port);
  try {
    assert.equal((await raw.request(999, 0)).int16(), ErrorCode.UNSUPPORTED_VERSION);
    assert.equal((await raw.request(ApiKey.Metadata, 0, new Writer().array([], () => {}))).int16(), 35);
    const versions = await raw.request(ApiKey.ApiVersions, 9);
    assert.equal(versions.int16(), ErrorCode.UNSUPPORTED_VERSION);
    const apis = versions.array((r) => ({ key: r.int16(), min: r.int16(), max: r.int16() }));
    assert.ok(apis.some((a) => a.key === ApiKey.Fetch && a.max === 4));
    // Truncated: Metadata v4 without its allow_auto_topic_creation flag.
    const truncated = await raw.request(ApiKey.Metadata, 4, new Writer().array(["x"], (w, t) => w.string(t)));
    assert.equal(truncated.int16(), ErrorCode.INVALID_REQUEST);
    const ok = await raw.request(ApiKey.ApiVersions, 0);
    assert.equal(ok.int16(), ErrorCode.NONE, "the connection still answers");
  } finally {
    raw.close();
  }
});
