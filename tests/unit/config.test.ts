import assert from "node:assert/strict";
import { test } from "node:test";
import { parseDuration } from "../../src/config/duration.ts";
import { commandLine, usage, UsageError } from "../../src/config/command-line.ts";
import { ConfigError, configPath, loadConfig, parseConfig } from "../../src/config/load.ts";

const problems = (text: string, env: Record<string, string> = {}) => {
  try {
    parseConfig(text, env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  assert.fail("expected a ConfigError");
};

test("config: durations", () => {
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("30s"), 30_000);
  assert.equal(parseDuration("5m"), 300_000);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("1.5s"), 1500);
  assert.equal(parseDuration(1200), 1200);
  for (const bad of ["five", "5", "m", "5 m", "-1s", "", null, -5, true]) {
    assert.equal(parseDuration(bad), undefined, String(bad));
  }
});

test("config: the shipped config.yaml is valid and is the embedded default", async () => {
  const { config, warnings } = await loadConfig("config.yaml", {});
  assert.deepEqual(warnings, []);
  assert.equal(config.session.type, "memory");
  assert.equal(config.session.reconnection_window, 300_000);
  assert.deepEqual(config.endpoints.map((e) => [e.name, e.type]), [["chat", "memory"]]);
  assert.deepEqual(config.entrypoints.map((e) => e.type), ["websocket", "sse", "http"]);
  assert.equal(config.server.console, true, "the shipped config serves the console");
});

test("config: defaults fill what is not said", () => {
  const { config } = parseConfig("endpoints: [{ name: chat, type: memory }]", {});
  assert.equal(config.server.port, 8080);
  assert.equal(config.server.idle_timeout, 60_000);
  assert.equal(config.server.max_buffered_bytes, 1024 * 1024);
  assert.equal(config.session.cleanup_interval, 30_000);
  assert.equal(config.policy.max_message_bytes, 65_536);
  assert.equal(config.entrypoints.length, 3);
  assert.equal(config.server.console, false, "the console is off unless asked for");
});

test("config: server.console is a boolean", () => {
  const { config } = parseConfig("server: { console: true }\nendpoints: [{ name: chat, type: memory }]", {});
  assert.equal(config.server.console, true);
  assert.deepEqual(problems("server: { console: sometimes }\nendpoints: [{ name: chat, type: memory }]"), [
    'server.console: expected true or false, got "sometimes"',
  ]);
  assert.deepEqual(problems("server: { consol: true }\nendpoints: [{ name: chat, type: memory }]"), [
    'server.consol: unknown key (did you mean "console"?)',
  ]);
});

test("config: server.tls takes PEM file paths; server.trusted_proxies takes CIDRs", () => {
  const memory = "endpoints: [{ name: chat, type: memory }]";
  const plain = parseConfig(memory, {}).config.server;
  assert.equal(plain.tls, undefined);
  assert.deepEqual(plain.trusted_proxies, []);
  const { config } = parseConfig(
    `server:
  tls: { cert: "\${CERT}", key: /etc/gw/tls.key }
  trusted_proxies: [10.0.0.0/8, 192.168.1.7, "2001:db8::/32", "::1"]
${memory}`,
    { CERT: "/etc/gw/tls.crt" },
  );
  assert.deepEqual(config.server.tls, { cert: "/etc/gw/tls.crt", key: "/etc/gw/tls.key" });
  assert.deepEqual(config.server.trusted_proxies, ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1"]);
  assert.deepEqual(problems(`server: { tls: { cert: a.crt, keyfile: a.key } }\n${memory}`), [
    "server.tls.key: expected a path to a PEM private key file, got nothing",
    "server.tls.keyfile: unknown key (expected one of cert, key)",
  ]);
  assert.deepEqual(problems(`server: { tls: { cert: "", key: 5 } }\n${memory}`), [
    'server.tls.cert: expected a path to a PEM certificate file, got ""',
    "server.tls.key: expected a path to a PEM private key file, got 5",
  ]);
  assert.deepEqual(
    problems(`server: { trusted_proxies: [10.0.0.0/33, 10.0.0.1/8, lb.internal, 7] }\n${memory}`),
    [
      'server.trusted_proxies[0]: expected a CIDR like "10.0.0.0/8" or "2001:db8::/32", or an address, got "10.0.0.0/33"',
      'server.trusted_proxies[1]: expected a CIDR like "10.0.0.0/8" or "2001:db8::/32", or an address, got "10.0.0.1/8"',
      'server.trusted_proxies[2]: expected a CIDR like "10.0.0.0/8" or "2001:db8::/32", or an address, got "lb.internal"',
      'server.trusted_proxies[3]: expected a CIDR like "10.0.0.0/8" or "2001:db8::/32", or an address, got 7',
    ],
  );
  assert.deepEqual(problems(`server: { trusted_proxies: 10.0.0.0/8 }\n${memory}`), [
    'server.trusted_proxies: expected a list of CIDRs, got "10.0.0.0/8"',
  ]);
});

test("config: log.format is text (default) or json", () => {
  const memory = "endpoints: [{ name: chat, type: memory }]";
  assert.equal(parseConfig(memory, {}).config.log.format, "text");
  assert.equal(parseConfig(`log: { format: json }\n${memory}`, {}).config.log.format, "json");
  assert.deepEqual(problems(`log: { format: yaml }\n${memory}`), [
    'log.format: expected "text" or "json", got "yaml"',
  ]);
});

test("config: every problem names its key path and what was expected", () => {
  assert.deepEqual(
    problems(`
session: { reconnection_window: five }
server: { port: 70000 }
endpoints:
  - { name: chat, type: memory }
  - { name: bad name, type: memory }
  - { name: x, type: carrier-pigeon }
`),
    [
      "server.port: expected a port number 0-65535, got 70000",
      'session.reconnection_window: expected a duration like "5m", got "five"',
      'endpoints[1].name: expected a name of A-Z a-z 0-9 _ -, got "bad name"',
      'endpoints[2].type: expected an endpoint of type "memory", "kafka", "mqtt" or "nats", got "carrier-pigeon"',
    ],
  );
  assert.deepEqual(problems("endpoints: []"), ["endpoints: expected at least one endpoint, got []"]);
  assert.deepEqual(problems("server: 5\nendpoints: [{name: a, type: memory}]"), [
    "server: expected a mapping, got 5",
  ]);
  assert.deepEqual(problems("session: { type: mongo }\nendpoints: [{name: a, type: memory}]"), [
    'session.type: expected "memory" or "redis", got "mongo"',
  ]);
  assert.match(problems("endpoints: [")[0], /^not valid YAML/);
  assert.deepEqual(
    problems("endpoints: [{name: a, type: memory}, {name: a, type: memory}]"),
    ['endpoints: expected unique endpoint names, got ["a","a"]'],
  );
});

test("config: the Redis store and the Kafka endpoint, their defaults and their problems", () => {
  const { config } = parseConfig(
    `
server: { node_id: gw-1 }
session: { type: redis, lease: 10s, redis: { url: "https://x.upstash.io", token: t } }
endpoints:
  - { name: orders, type: kafka, brokers: ["k1:9092", "k2:9092"], publish_topic: in, subscribe_topic: "out.{clientId}" }
`,
    {},
  );
  assert.equal(config.session.type, "redis");
  assert.equal(config.session.lease, 10_000);
  assert.deepEqual(config.session.redis, {
    transport: "rest",
    url: "https://x.upstash.io",
    token: "t",
    keyPrefix: "mediation:session:",
    encoding: "base64",
    timeout: 3000,
  });
  const kafka = config.endpoints[0];
  assert.equal(kafka.type, "kafka");
  if (kafka.type === "kafka") {
    assert.deepEqual(kafka.brokers, ["k1:9092", "k2:9092"]);
    assert.equal(kafka.start_from, "latest");
    assert.equal(kafka.fetch_max_wait, 500);
    assert.equal(kafka.session_timeout, undefined);
  }
  assert.deepEqual(
    problems(`
session: { type: redis, lease: 200ms }
endpoints:
  - { name: k, type: kafka, brokers: [localhost], publish_topic: a, subscribe_topic: b, start_from: middle, session_timeout: 30s }
`),
    [
      "session.redis: expected a mapping with addr (plain Redis) or url (session.type is redis), got nothing",
      "session.lease: expected at least 1s, got 200 ms",
      'endpoints[0].brokers[0]: expected a "host:port", got "localhost"',
      'endpoints[0].start_from: expected "latest" or "earliest", got "middle"',
      "endpoints[0].session_timeout: no longer used: the gateway's Kafka clients are no consumer group members (their offsets are committed to member-less groups), so there is no group session to time out; remove it",
    ],
  );
  assert.deepEqual(
    problems(`
session: { type: redis, redis: { url: mongodb://x, token: t, encoding: gzip } }
endpoints: [{ name: a, type: memory }]
`),
    [
      'session.redis.url: expected a redis://, rediss:// or http(s):// URL, got "mongodb://x"',
      'session.redis.encoding: expected "base64" or "none", got "gzip"',
    ],
  );
});

test("config: ${ENV} interpolation, defaults, and unset variables named in the problem", () => {
  const { config } = parseConfig(
    "server: { host: '${HOST}', node_id: 'n-${ID:-7}' }\nendpoints: [{ name: chat, type: memory, publish_topic: '${T}' }]",
    { HOST: "127.0.0.1", T: "t/{clientId}" },
  );
  assert.equal(config.server.host, "127.0.0.1");
  assert.equal(config.server.node_id, "n-7");
  assert.equal(config.endpoints[0].publish_topic, "t/{clientId}");
  assert.deepEqual(
    problems("server: { host: '${NOT_SET_ANYWHERE}' }\nendpoints: [{ name: chat, type: memory }]"),
    ['server.host: expected a non-empty string, got "" (environment variable NOT_SET_ANYWHERE is not set)'],
  );
});

test("config: path from --config, MEDIATION_CONFIG, else ./config.yaml", () => {
  assert.equal(configPath(["--config", "a.yaml"], { MEDIATION_CONFIG: "b.yaml" }), "a.yaml");
  assert.equal(configPath(["--config=c.yaml"], {}), "c.yaml");
  assert.equal(configPath([], { MEDIATION_CONFIG: "b.yaml" }), "b.yaml");
  assert.equal(configPath([], {}), "./config.yaml");
  assert.throws(() => configPath(["--config"], {}), UsageError);
});

test("config: the command line takes --config PATH, --config=PATH and -h/--help; anything else is a UsageError", () => {
  assert.deepEqual(commandLine([]), { help: false, config: undefined });
  assert.deepEqual(commandLine(["--config", "a.yaml"]), { help: false, config: "a.yaml" });
  assert.deepEqual(commandLine(["--config=b.yaml"]), { help: false, config: "b.yaml" });
  assert.deepEqual(commandLine(["--config=-odd.yaml"]), { help: false, config: "-odd.yaml" });
  for (const help of [["--help"], ["-h"], ["--port", "9000", "--help"], ["--config", "a.yaml", "-h"]]) {
    assert.deepEqual(commandLine(help), { help: true }, help.join(" "));
  }
  const refused = (args: string[]) => {
    try {
      commandLine(args);
    } catch (error) {
      assert.ok(error instanceof UsageError, String(error));
      return error.message;
    }
    assert.fail(`expected a UsageError for ${args.join(" ")}`);
  };
  assert.match(
    refused(["--port", "9000"]),
    /^unknown option --port: the gateway takes --config PATH and --help/,
  );
  assert.match(refused(["--port=9000"]), /^unknown option --port:/);
  assert.match(refused(["-c", "a.yaml"]), /^unknown option -c:/);
  assert.match(refused(["--config", "a.yaml", "--verbose"]), /^unknown option --verbose:/);
  assert.equal(
    refused(["gateway.yaml"]),
    'unexpected argument "gateway.yaml": the config file is given as --config PATH',
  );
  assert.equal(refused(["--config"]), "--config: expected a file path, got nothing");
  assert.equal(refused(["--config="]), "--config: expected a file path, got nothing");
  assert.equal(refused(["--config", "--port"]), "--config: expected a file path, got --port");
  assert.equal(refused(["--config", "a.yaml", "--config=b.yaml"]), "--config: given twice");
  const text = usage();
  for (
    const part of [
      "--config PATH",
      "-h, --help",
      "MEDIATION_CONFIG",
      "${NAME}",
      "README.md",
      "deno run",
      "bun run",
    ]
  ) {
    assert.ok(text.includes(part), `usage names ${part}`);
  }
});

test("config: an unreadable file is one clear problem", async () => {
  await assert.rejects(
    loadConfig("does/not/exist.yaml", {}),
    (e: ConfigError) => e.problems.length === 1 && e.problems[0].startsWith("cannot read the file"),
  );
});

/** The `session:` block of the seed project's config.yaml, as it was written. */
const SEED_SESSION = `
session:
  type: "memory"
  reconnection_window: "5m"
  cleanup_interval: "30s"
  redis:
    addr: "localhost:6379"
    password: ""
    db: 0
    keyPrefix: "mediation:session:"
`;
const CHAT = "endpoints: [{ name: chat, type: memory }]\n";

test("config: the seed's session block starts: with type memory its redis: mapping is ignored, with a warning", () => {
  const { config, warnings } = parseConfig(SEED_SESSION + CHAT, {});
  assert.equal(config.session.type, "memory");
  assert.equal(config.session.reconnection_window, 300_000);
  assert.equal(config.session.cleanup_interval, 30_000);
  assert.equal(config.session.redis, undefined);
  assert.deepEqual(warnings, ["session.redis is ignored: session.type is memory"]);
  // memory is the default type: the same without `type:`, and whatever the ignored mapping holds
  assert.deepEqual(parseConfig("session: { redis: { addr: x, whatever: 1 } }\n" + CHAT, {}).warnings, [
    "session.redis is ignored: session.type is memory",
  ]);
  assert.deepEqual(parseConfig("session: { type: memory }\n" + CHAT, {}).warnings, []);
});

test("config: with type redis, the seed's block selects plain Redis over RESP, as written", () => {
  const { config, warnings } = parseConfig(SEED_SESSION.replace('"memory"', '"redis"') + CHAT, {});
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.session.redis, {
    transport: "resp",
    host: "localhost",
    port: 6379,
    tls: false,
    username: undefined,
    password: "",
    db: 0,
    keyPrefix: "mediation:session:",
    timeout: 3000,
  });
  // secrets from the environment stay text; the db from the environment is a number
  const env = { REDIS_PASSWORD: "1234", REDIS_DB: "2" };
  const fromEnv = parseConfig(
    'session: { type: redis, redis: { addr: "10.0.0.5:6380", username: app, password: "${REDIS_PASSWORD}", db: "${REDIS_DB}" } }\n' +
      CHAT,
    env,
  ).config.session.redis;
  assert.deepEqual(
    [
      fromEnv?.transport,
      fromEnv?.transport === "resp" &&
      [fromEnv.host, fromEnv.port, fromEnv.username, fromEnv.password, fromEnv.db],
    ],
    ["resp", ["10.0.0.5", 6380, "app", "1234", 2]],
  );
});

test("config: redis:// and rediss:// urls select RESP (TLS for rediss), https:// with a token the REST API", () => {
  const redisOf = (block: string) =>
    parseConfig(`session: { type: redis, redis: ${block} }\n` + CHAT, {}).config.session.redis;
  assert.deepEqual(redisOf('{ url: "rediss://app:p%40ss@cache.example:6380/3" }'), {
    transport: "resp",
    host: "cache.example",
    port: 6380,
    tls: true,
    username: "app",
    password: "p@ss",
    db: 3,
    keyPrefix: "mediation:session:",
    timeout: 3000,
  });
  assert.deepEqual(redisOf('{ url: "redis://127.0.0.1", password: s, timeout: 1s }'), {
    transport: "resp",
    host: "127.0.0.1",
    port: 6379,
    tls: false,
    username: undefined,
    password: "s",
    db: 0,
    keyPrefix: "mediation:session:",
    timeout: 1000,
  });
  assert.deepEqual(redisOf('{ url: "https://x.upstash.io", token: t, keyPrefix: "p:" }'), {
    transport: "rest",
    url: "https://x.upstash.io",
    token: "t",
    keyPrefix: "p:",
    encoding: "base64",
    timeout: 3000,
  });
});

test("config: with type redis, exactly one of url and addr, and each transport's keys only with it", () => {
  assert.deepEqual(problems("session: { type: redis, redis: { keyPrefix: p } }\n" + CHAT), [
    'session.redis.addr: expected "host:port" (plain Redis), or url: a redis://, rediss:// or http(s):// URL, or cluster or sentinels (a list of "host:port"), got nothing',
  ]);
  assert.deepEqual(
    problems('session: { type: redis, redis: { url: "redis://h:1", addr: "h:1" } }\n' + CHAT),
    ["session.redis.addr: expected url or addr, got both"],
  );
  assert.deepEqual(
    problems(
      'session: { type: redis, redis: { url: "https://x.upstash.io", password: "", db: 1 } }\n' + CHAT,
    ),
    [
      "session.redis.token: expected the REST token, got nothing",
      "session.redis.password: only for plain Redis (addr, or a redis:// url); the REST API at url takes token",
      "session.redis.db: only for plain Redis (addr, or a redis:// url); the REST API at url takes token",
    ],
  );
  assert.deepEqual(
    problems('session: { type: redis, redis: { addr: "h:6379", token: t, encoding: none } }\n' + CHAT),
    [
      "session.redis.token: only for the REST API (an http(s):// url); plain Redis takes password (and username)",
      "session.redis.encoding: only for the REST API (an http(s):// url); plain Redis takes password (and username)",
    ],
  );
  assert.deepEqual(
    problems("session: { type: redis, redis: { addr: localhost, db: -1, password: 1234 } }\n" + CHAT),
    [
      'session.redis.addr: expected a "host:port", got "localhost"',
      "session.redis.password: expected a string, got 1234",
      "session.redis.db: expected a database number (0 or more), got -1",
    ],
  );
  assert.deepEqual(
    problems('session: { type: redis, redis: { url: "redis://:a@h/x", password: b } }\n' + CHAT),
    [
      "session.redis.password: expected it in url or here, got both",
      'session.redis.url: expected a database number as the url\'s path (/0), got "redis://:a@h/x"',
    ],
  );
});

test("config: an unknown key in any mapping stops start-up at its own key path, with a did-you-mean when one is close", () => {
  assert.deepEqual(problems("session: { reconection_window: 1m }\n" + CHAT), [
    'session.reconection_window: unknown key (did you mean "reconnection_window"?)',
  ]);
  assert.deepEqual(
    problems(`
sever: { port: 1 }
server: { max_bufered_bytes: 5, host: h }
session:
  type: redis
  redis: { url: "https://x.upstash.io", token: t, response_encoding: none, keyprefix: p }
entrypoints:
  - { name: ws, type: websocket, paht: /ws }
  - { name: sse, type: sse, Path: /sse }
endpoints:
  - { name: chat, type: memory, queue_limt: 5 }
  - { name: s, type: mqtt, url: "mqtt://h", publish_topic: a, subscribe_topic: b, qso: 1, brokers: [] }
  - name: k
    type: kafka
    brokers: ["h:9092"]
    publish_topic: a
    subscribe_topic: b
    sasl: { mechanism: plain, username: u, password: p, mechansim: x }
policy: { max_mesage_bytes: 1 }
log: { lvl: debug, colour: red }
`),
    [
      'server.max_bufered_bytes: unknown key (did you mean "max_buffered_bytes"?)',
      'session.redis.response_encoding: unknown key (did you mean "encoding"?)',
      'session.redis.keyprefix: unknown key (did you mean "keyPrefix"?)',
      'entrypoints[0].paht: unknown key (did you mean "path"?)',
      'entrypoints[1].Path: unknown key (did you mean "path"?)',
      'endpoints[0].queue_limt: unknown key (did you mean "queue_limit"?)',
      'endpoints[1].qso: unknown key (did you mean "qos"?)',
      "endpoints[1].brokers: unknown key (expected one of name, type, url, publish_topic, subscribe_topic, qos, " +
      "producer_pool_size, protocol_version, username, password, connect_timeout, publish_timeout, acl)",
      'endpoints[2].sasl.mechansim: unknown key (did you mean "mechanism"?)',
      'policy.max_mesage_bytes: unknown key (did you mean "max_message_bytes"?)',
      'log.lvl: unknown key (did you mean "level"?)',
      "log.colour: unknown key (expected one of level, format)",
      'sever: unknown key (did you mean "server"?)',
    ],
  );
  // an unknown key is listed with the other problems of its mapping
  assert.deepEqual(problems("server: { port: x, hots: h }\n" + CHAT), [
    'server.port: expected a port number 0-65535, got "x"',
    'server.hots: unknown key (did you mean "host"?)',
  ]);
});

test("config: ${ENV} values are accepted where numbers, durations and booleans are expected, and still validated", () => {
  const env = {
    MBB: "2048",
    IDLE: "5s",
    WINDOW: "1m",
    QUEUE: "7",
    QOS: "0",
    PROTO: "4",
    POOL: "3",
    SSL: "true",
    BYTES: "1024",
  };
  const { config } = parseConfig(
    `
server:
  port: \${PORT:-8080}
  max_buffered_bytes: \${MBB}
  idle_timeout: \${IDLE}
session: { reconnection_window: "\${WINDOW}", cleanup_interval: "\${CLEANUP:-2s}" }
endpoints:
  - { name: chat, type: memory, queue_limit: "\${QUEUE}" }
  - name: s
    type: mqtt
    url: "mqtt://h"
    publish_topic: a
    subscribe_topic: b
    qos: \${QOS}
    protocol_version: \${PROTO}
    producer_pool_size: \${POOL}
  - { name: k, type: kafka, brokers: ["h:9092"], publish_topic: a, subscribe_topic: b, ssl: "\${SSL}" }
policy: { max_message_bytes: "\${BYTES}" }
`,
    env,
  );
  assert.equal(config.server.port, 8080);
  assert.equal(config.server.max_buffered_bytes, 2048);
  assert.equal(config.server.idle_timeout, 5000);
  assert.equal(config.session.reconnection_window, 60_000);
  assert.equal(config.session.cleanup_interval, 2000);
  assert.equal(config.policy.max_message_bytes, 1024);
  const [memory, mqtt, kafka] = config.endpoints;
  assert.ok(memory.type === "memory" && mqtt.type === "mqtt" && kafka.type === "kafka");
  assert.equal(memory.queue_limit, 7);
  assert.deepEqual([mqtt.qos, mqtt.protocol_version, mqtt.producer_pool_size], [0, 4, 3]);
  assert.equal(kafka.ssl, true);
  assert.equal(
    parseConfig("server: { port: '${PORT:-8080}' }\n" + CHAT, { PORT: "9000" }).config.server.port,
    9000,
  );

  assert.deepEqual(
    problems(
      `
server: { port: "\${PORT}", max_buffered_bytes: "\${MBB}", idle_timeout: "\${IDLE}" }
session: { lease: "\${LEASE}" }
endpoints:
  - { name: chat, type: memory, queue_limit: "\${QUEUE}" }
  - { name: s, type: mqtt, url: "mqtt://h", publish_topic: a, subscribe_topic: b, qos: "\${QOS}" }
  - { name: k, type: kafka, brokers: ["h:9092"], publish_topic: a, subscribe_topic: b, ssl: "\${SSL}" }
`,
      { PORT: "70000", MBB: "1.5", IDLE: "-5", LEASE: "200ms", QUEUE: "many", QOS: "2", SSL: "yes" },
    ),
    [
      "server.port: expected a port number 0-65535, got 70000",
      'server.idle_timeout: expected a duration like "5m", got "-5"',
      "server.max_buffered_bytes: expected a positive whole number, got 1.5",
      "session.lease: expected at least 1s, got 200 ms",
      'endpoints[0].queue_limit: expected a positive whole number, got "many"',
      "endpoints[1].qos: expected 0 or 1, got 2",
      'endpoints[2].ssl: expected true or false, got "yes"',
    ],
  );
  assert.deepEqual(problems("server: { port: '${PORT}' }\n" + CHAT), [
    'server.port: expected a port number 0-65535, got "" (environment variable PORT is not set)',
  ]);
});

test("config: a YAML error keeps its code frame, and a ${ENV} inside { } or [ ] is told to be quoted", () => {
  assert.deepEqual(problems("server: { port: ${PORT} }\n" + CHAT), [
    [
      "not valid YAML: Unexpected flow-map-start at node end at line 1, column 18:",
      "server: { port: ${PORT} }",
      "                 ^",
      'quote it: inside { } or [ ], write "${PORT}", not ${PORT}',
    ].join("\n"),
  ]);
  const [inList] = problems("endpoints:\n  - { name: k, type: kafka, brokers: [${KAFKA:-h:9092}] }\n");
  assert.match(inList, /^not valid YAML: .* at line 2, column 40:\n/);
  assert.match(inList, /\n {2}- \{ name: k, type: kafka, brokers: \[\$\{KAFKA:-h:9092\}\] \}\n {39}\^\n/);
  assert.match(inList, /write "\$\{KAFKA:-h:9092\}", not \$\{KAFKA:-h:9092\}$/);
  // other YAML errors keep their frame and get no hint
  const [other] = problems("a: b: c\n");
  assert.equal(
    other,
    "not valid YAML: Nested mappings are not allowed in compact mappings at line 1, column 4:\na: b: c\n   ^",
  );
  // the ConfigError message indents every line of a problem alike, so the caret stays under its column
  try {
    parseConfig("server: { port: ${PORT} }\n" + CHAT, {});
    assert.fail("expected a ConfigError");
  } catch (error) {
    assert.match((error as Error).message, /\n {2}server: \{ port: \$\{PORT\} \}\n {19}\^\n/);
  }
});

test("config: a bare number where a duration is expected is refused with the unit to write, except 0", () => {
  assert.deepEqual(
    problems(
      `
server: { idle_timeout: 60, shutdown_timeout: 2.5, sse_retry: "\${RETRY}" }
session: { reconnection_window: 0, cleanup_interval: "\${CLEANUP}" }
endpoints:
  - { name: s, type: mqtt, url: "mqtt://h", publish_topic: a, subscribe_topic: b, publish_timeout: 10000 }
`,
      { RETRY: "1000", CLEANUP: "0" },
    ),
    [
      'server.idle_timeout: expected a duration with a unit, like "60s" or "60ms", got 60',
      'server.shutdown_timeout: expected a duration with a unit, like "2.5s" or "2.5ms", got 2.5',
      'server.sse_retry: expected a duration with a unit, like "1000s" or "1000ms", got "1000"',
      'endpoints[0].publish_timeout: expected a duration with a unit, like "10000s" or "10000ms", got 10000',
    ],
  );
  const { config } = parseConfig(
    `server: { idle_timeout: 60s, sse_retry: 500ms, shutdown_timeout: 0 }\nsession: { cleanup_interval: "\${C}" }\n${CHAT}`,
    { C: "0" },
  );
  assert.deepEqual(
    [
      config.server.idle_timeout,
      config.server.sse_retry,
      config.server.shutdown_timeout,
      config.session.cleanup_interval,
    ],
    [60_000, 500, 0, 0],
  );
  assert.deepEqual(problems("server: { idle_timeout: -5 }\n" + CHAT), [
    'server.idle_timeout: expected a duration like "5m", got -5',
  ]);
});

test("config: ${ENV} values stay strings where strings are expected", () => {
  const { config } = parseConfig(
    `
server: { node_id: "\${ID}" }
endpoints:
  - name: s
    type: mqtt
    url: "mqtt://h"
    publish_topic: "\${N}"
    subscribe_topic: b
    username: \${N}
    password: \${PASS}
  - name: k
    type: kafka
    brokers: ["h:9092"]
    publish_topic: a
    subscribe_topic: b
    sasl: { mechanism: plain, username: "\${N}", password: "\${PASS}" }
`,
    { PASS: "1234", N: "42", ID: "7" },
  );
  assert.equal(config.server.node_id, "7");
  const [mqtt, kafka] = config.endpoints;
  assert.ok(mqtt.type === "mqtt" && kafka.type === "kafka");
  assert.deepEqual([mqtt.username, mqtt.password, mqtt.publish_topic], ["42", "1234", "42"]);
  assert.deepEqual(kafka.sasl, { mechanism: "plain", username: "42", password: "1234" });
});
