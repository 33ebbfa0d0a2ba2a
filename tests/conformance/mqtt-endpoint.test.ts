/**
 * The endpoint contract kit against the MQTT endpoint and the real Mosquitto (durable: the
 * broker keeps a client's persistent session across a gateway restart).
 */
import { after, before } from "node:test";
import type { MqttClient } from "mqtt";
import { makeMqttEndpoint, namespace, outsideClient } from "../support/mqtt.ts";
import { freePort } from "../support/net.ts";
import { endpointContract } from "./endpoint-contract.ts";

const ns = namespace("contract");
let publisher: MqttClient;
/** A port nothing listens on, for the broker-down case. */
let downPort: number;
before(async () => {
  downPort = await freePort();
  publisher = await outsideClient();
});
after(async () => {
  await publisher.endAsync();
});

endpointContract("mqtt", () =>
  Promise.resolve({
    make: (logger) => makeMqttEndpoint({ ns, ...(logger && { logger }) }),
    unreachable: (logger) => makeMqttEndpoint({ ns, url: `mqtt://127.0.0.1:${downPort}`, logger }),
    inject: async (clientId, text) => {
      await publisher.publishAsync(`${ns}/${clientId}/down`, text, { qos: 1 });
    },
    durable: true,
    clientId: (label) => `${label}-${crypto.randomUUID().slice(0, 8)}`,
  }));
