import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, parseConfig } from "../../src/config/load.ts";
import { configSecrets } from "../../src/core/redact.ts";
import { fnv1a32, KeyLayout, shardOf } from "../../src/session/redis-layout.ts";

test("redis layout: FNV-1a 32-bit of the UTF-8 bytes, the published test vectors", () => {
  assert.equal(fnv1a32(""), 0x811c9dc5);
  assert.equal(fnv1a32("a"), 0xe40c292c);
  assert.equal(fnv1a32("foobar"), 0xbf9cf968);
  // UTF-8, not UTF-16: "é" is the bytes c3 a9 (FNV-1a by hand), not the one code unit e9.
  const byHand = [0xc3, 0xa9].reduce((h, b) => Math.imul(h ^ b, 0x01000193) >>> 0, 0x811c9dc5);
  assert.equal(fnv1a32("é"), byHand);
});

test("redis layout: a client ID's shard is stable and the IDs spread over every shard", () => {
  assert.equal(shardOf("client-1", 16), fnv1a32("client-1") % 16);
  assert.equal(shardOf("client-1", 16), shardOf("client-1", 16));
  const counts = new Array(16).fill(0);
  for (let i = 0; i < 16_000; i++) counts[shardOf(`client-${i}`, 16)]++;
  assert.ok(counts.every((n) => n > 800 && n < 1200), `spread: ${counts}`);
});

test("redis layout: sharded keys carry the shard's hash tag after the prefix; without shards, the single-Redis keys", () => {
  const sharded = new KeyLayout("p:", 16);
  const shard = shardOf("c1", 16);
  assert.equal(sharded.key("c1"), `p:{${shard}}c1`);
  assert.equal(sharded.deadlines(sharded.baseOf("c1")), `p:{${shard}}~deadlines`);
  assert.equal(sharded.leases(sharded.baseOf("c1")), `p:{${shard}}~leases`);
  assert.equal(sharded.subject("alice"), `p:{${shardOf("alice", 16)}}~subject:alice`);
  assert.equal(sharded.bases.length, 16);
  assert.equal(sharded.marker, "p:~layout");
  assert.equal(sharded.description, 'shards: 16, keyPrefix: "p:"');
  // A client ID with braces of its own does not move its key: only the first tag counts.
  assert.equal(sharded.key("{x}"), `p:{${shardOf("{x}", 16)}}{x}`);

  const single = new KeyLayout("p:");
  assert.equal(single.key("c1"), "p:c1");
  assert.equal(single.deadlines(single.baseOf("c1")), "p:~deadlines");
  assert.equal(single.leases(single.baseOf("c1")), "p:~leases");
  assert.equal(single.subject("alice"), "p:~subject:alice");
  assert.deepEqual(single.bases, ["p:"]);
  assert.equal(single.description, 'shards: none, keyPrefix: "p:"');
});

const CHAT = "endpoints: [{ name: chat, type: memory }]\n";
const redisOf = (block: string) =>
  parseConfig(`session: { type: redis, redis: ${block} }\n` + CHAT, {}).config.session.redis;
const problems = (block: string) => {
  try {
    parseConfig(`session: { type: redis, redis: ${block} }\n` + CHAT, {});
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  assert.fail("expected problems");
};

test("config: session.redis.cluster with shards selects the cluster transport; sentinels with a name the sentinel one", () => {
  assert.deepEqual(
    redisOf('{ cluster: ["10.0.0.1:7000", "10.0.0.2:7000"], shards: 64, password: s, tls: true }'),
    {
      transport: "cluster",
      cluster: [{ host: "10.0.0.1", port: 7000 }, { host: "10.0.0.2", port: 7000 }],
      tls: true,
      username: undefined,
      password: "s",
      keyPrefix: "mediation:session:",
      shards: 64,
      timeout: 3000,
    },
  );
  assert.deepEqual(redisOf('{ sentinels: ["s1:26379", "s2:26379"], name: main, db: 2 }'), {
    transport: "sentinel",
    sentinels: [{ host: "s1", port: 26379 }, { host: "s2", port: 26379 }],
    name: "main",
    sentinelPassword: "",
    tls: false,
    username: undefined,
    password: "",
    db: 2,
    keyPrefix: "mediation:session:",
    timeout: 3000,
  });
  const single = redisOf('{ addr: "h:6379", shards: "16" }');
  assert.equal(single?.transport === "resp" && single.shards, 16);
  const rest = redisOf('{ url: "https://x.upstash.io", token: t, shards: 16 }');
  assert.equal(rest?.transport === "rest" && rest.shards, 16, "the REST API takes the sharded layout too");
  assert.equal("shards" in redisOf('{ addr: "h:6379" }')!, false, "without shards, the single-Redis layout");
});

test("config: exactly one of addr (or url), cluster and sentinels; cluster needs shards", () => {
  assert.deepEqual(problems('{ addr: "h:1", cluster: ["h:2"], shards: 4 }'), [
    "session.redis.cluster: expected one of addr (or url), cluster and sentinels, got addr and cluster",
  ]);
  assert.deepEqual(problems('{ cluster: ["h:2"], sentinels: ["h:3"], name: m }'), [
    "session.redis.sentinels: expected one of addr (or url), cluster and sentinels, got cluster and sentinels",
  ]);
  assert.deepEqual(problems('{ cluster: ["h:2"], db: 1 }'), [
    "session.redis.shards: expected a number of shards (e.g. 16) with cluster, got nothing: every script's keys must share one slot",
    "session.redis.db: a Redis Cluster has database 0 only",
  ]);
  assert.deepEqual(problems('{ sentinels: ["h:3"] }'), [
    "session.redis.name: expected the sentinels' master group name, got nothing",
  ]);
  assert.deepEqual(problems('{ addr: "h:1", name: m, sentinelPassword: x }'), [
    "session.redis.name: only with sentinels",
    "session.redis.sentinelPassword: only with sentinels",
  ]);
  assert.deepEqual(problems("{ cluster: [], shards: 0 }"), [
    'session.redis.cluster: expected at least one "host:port" (nodes of the cluster), got []',
    "session.redis.shards: expected a number of shards (1 to 16384), got 0",
  ]);
  assert.deepEqual(problems('{ cluster: ["h:2"], shards: 8, keyPrefix: "a{b}:", token: t }'), [
    "session.redis.keyPrefix: expected a key prefix without { or } with shards: the shard's hash tag follows it",
    "session.redis.token: only for the REST API (an http(s):// url)",
  ]);
  assert.deepEqual(problems('{ url: "redis://h:1", tls: true }'), [
    "session.redis.tls: a url says TLS with rediss:// (or https://)",
  ]);
  assert.match(
    problems("{ keyPrefix: p }")[0],
    /or cluster or sentinels \(a list of "host:port"\), got nothing$/,
  );
});

test("config: a cluster's and the sentinels' passwords are secrets, never in a problem", () => {
  const text = problems('{ cluster: ["h:2"], password: "hunter2-secret", sentinelPassword: "other-secret" }')
    .join("\n");
  assert.doesNotMatch(text, /hunter2|other-secret/);
});

test("config: the sentinels' password is a secret the logs redact, as the nodes' password is", () => {
  const { config } = parseConfig(
    'session: { type: redis, redis: { sentinels: ["s:26379"], name: m, password: "node-secret", sentinelPassword: "sentinel-secret" } }\n' +
      CHAT,
    {},
  );
  const secrets = configSecrets(config);
  assert.ok(secrets.has("node-secret") && secrets.has("sentinel-secret"), [...secrets].join(", "));
});
