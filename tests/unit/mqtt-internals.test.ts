/**
 * The mqtt.js internals the MQTT endpoint relies on (src/endpoints/mqtt/puback.ts) are checked:
 * present in the pinned version, and a clear error or warning when a future version removed them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import mqtt from "mqtt";
import type { MqttClient } from "mqtt";
import { checkMqttInternals, corkPubacks, MQTT_JS_TESTED } from "../../src/endpoints/mqtt/puback.ts";

test("mqtt internals: the installed mqtt.js is the pinned, tested version and has them", () => {
  const installed = createRequire(import.meta.url)("mqtt/package.json").version;
  assert.equal(installed, MQTT_JS_TESTED, "package.json pins the mqtt.js version puback.ts was tested with");
  checkMqttInternals();
  assert.equal(
    typeof (mqtt.MqttClient.prototype as unknown as { _sendPacket: unknown })._sendPacket,
    "function",
  );
});

test("mqtt internals: without _sendPacket the endpoint refuses to start, naming the version to install", () => {
  class Changed {}
  assert.throws(
    () => checkMqttInternals(Changed.prototype),
    (e: Error) =>
      /no MqttClient\._sendPacket/.test(e.message) && e.message.includes(`mqtt ${MQTT_JS_TESTED}`),
  );
});

test("mqtt internals: a socket that cannot be corked is reported once (PUBACKs then go out unbatched)", () => {
  const client = Object.assign(new EventEmitter(), { stream: {} });
  let reported = 0;
  corkPubacks(client as unknown as MqttClient, () => reported++);
  client.emit("packetreceive");
  client.emit("packetreceive");
  assert.equal(reported, 1);
});
