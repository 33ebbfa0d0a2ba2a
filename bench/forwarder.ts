/**
 * The physical-limit baseline of bench/main.ts: a minimal forwarder between WebSocket and mqtt.js
 * with none of the gateway's logic (no sessions, policy, hub, metrics, limits or logging), served
 * by the runtime's own server in a process of its own, like the gateway (bench/forwarder-server.ts).
 *
 * `subscribe` opens one persistent mqtt.js consumer for the client (clean:false, QoS 1, MQTT 5
 * session expiry); every message is sent as the gateway's message frame and then PUBACKed
 * (mqtt.js acks after its "message" handler, which writes the frame: plain mqtt.js, one write
 * per PUBACK); `publish` goes out at QoS 1 on one shared connection; `unsubscribe` ends the
 * consumer's broker session.
 *
 *   forwarder.ts MQTT_URL NAME=TOPIC...    prints `listening PORT`
 *
 * Each NAME=TOPIC is an endpoint whose subscribe and publish topic is TOPIC, `{clientId}`
 * replaced by the client's ID.
 */
import mqtt from "mqtt";
import type { MqttClient } from "mqtt";
import { args, messageFrame, serve } from "./forwarder-server.ts";

const [url, ...endpointArgs] = await args();
const templates = new Map(endpointArgs.map((a) => a.split("=", 2) as [string, string]));
const topicOf = (endpoint: string, clientId: string) =>
  templates.get(endpoint)!.replaceAll("{clientId}", clientId);
const producer = await mqtt.connectAsync(url, { protocolVersion: 5 });

await serve({
  async subscribe(client, endpoint) {
    const consumer = mqtt.connect(url, {
      clientId: `forwarder-${endpoint}-${client.id}`,
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 60 },
    });
    consumer.on(
      "message",
      (topic, payload) => client.send(messageFrame(client, endpoint, payload, `{"topic":"${topic}"}`)),
    );
    client.consumers.set(endpoint, { close: () => consumer.end(true), consumer } as { close(): void });
    await new Promise((resolve, reject) => {
      consumer.once("connect", resolve);
      consumer.once("error", reject);
    });
    await consumer.subscribeAsync(topicOf(endpoint, client.id), { qos: 1 });
  },
  async unsubscribe(client, endpoint) {
    const held = client.consumers.get(endpoint) as { consumer?: MqttClient } | undefined;
    client.consumers.delete(endpoint);
    await held?.consumer?.endAsync(false, { properties: { sessionExpiryInterval: 0 } });
  },
  async publish(client, endpoint, payload) {
    await producer.publishAsync(topicOf(endpoint, client.id), payload, { qos: 1 });
  },
});
