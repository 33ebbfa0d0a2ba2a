/**
 * The MQTT endpoint parses its broker URL once (brokerOptions) instead of handing the string to
 * mqtt.js on every connect: the options must be those mqtt.js derives from the URL itself.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parse } from "node:url";
import { brokerOptions } from "../../src/endpoints/mqtt/client-options.ts";

/** What mqtt.js's connect() takes from a URL string (mqtt/build/lib/connect/index.js). */
function asMqttJs(url: string) {
  const parsed = parse(url, true);
  return {
    protocol: parsed.protocol?.replace(/:$/, ""),
    host: parsed.hostname,
    port: parsed.port != null ? Number(parsed.port) : undefined,
    auth: parsed.auth ?? undefined,
    path: parsed.path,
    query: { ...parsed.query },
  };
}

for (
  const url of [
    "mqtt://localhost:1883",
    "mqtt://127.0.0.1",
    "mqtts://user:p%40ss@broker.example:8883",
    "mqtt://only-user@10.0.0.1:1884",
    "mqtt://[::1]:1883",
    "ws://broker.example:9001/mqtt?x=1",
  ]
) {
  test(`mqtt client options: ${url} gives what mqtt.js would parse from it`, () => {
    const options = brokerOptions(url) as Record<string, unknown>;
    const expected = asMqttJs(url);
    assert.equal(options.protocol, expected.protocol);
    assert.equal(options.host, expected.host);
    assert.equal(options.port, expected.port);
    assert.equal(options.auth, expected.auth);
    assert.deepEqual(options.query, expected.query);
    // The path counts only for WebSocket brokers (mqtt.js drops it for the others).
    if (url.startsWith("ws")) assert.equal(options.path, expected.path);
  });
}
