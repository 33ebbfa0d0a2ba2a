/**
 * Black-box scenarios for a gateway with an MQTT endpoint on the real Mosquitto; an outside
 * client (the plain `mqtt` package) plays the devices.
 */
import assert from "node:assert/strict";
import { brokerHasSession, mqttEndpointYaml, namespace, outsideClient } from "../support/mqtt.ts";
import { numbered, openWelcomed } from "../support/ws-client.ts";
import { eventually } from "./endpoint-contract.ts";
import { nested } from "./hardening-scenarios.ts";
import type { Scenario } from "./gateway-scenarios.ts";
import { CLEANUP_MS, WINDOW_MS } from "./gateway-scenarios.ts";

const ns = namespace("gateway");

export const MQTT_GATEWAY_CONFIG = `
server: { host: 127.0.0.1, port: 0, shutdown_timeout: 5s }
session: { type: memory, reconnection_window: ${WINDOW_MS}ms, cleanup_interval: ${CLEANUP_MS}ms }
endpoints:
${mqttEndpointYaml({ ns, poolSize: 5 })}
`;

/** Puts payloads on client `id`'s down topic, as a device would (for ackScenarios). */
export async function mqttInject(_gw: unknown, id: string, payloads: string[]): Promise<void> {
  const outside = await outsideClient();
  for (const p of payloads) await outside.publishAsync(`${ns}/${id}/down`, p, { qos: 1 });
  await outside.endAsync();
}

const unique = (label: string) => `${label}-${crypto.randomUUID().slice(0, 8)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const mqttScenarios: Scenario[] = [
  {
    name: "mqtt: publish -> receipt after PUBACK, seen by an outside subscriber",
    async run(gw) {
      const id = unique("pub");
      const outside = await outsideClient();
      const seen: string[] = [];
      await outside.subscribeAsync(`${ns}/${id}/up`, { qos: 1 });
      outside.on("message", (_t, payload) => seen.push(payload.toString()));
      const { socket } = await openWelcomed(gw.ws, id);
      socket.send({ type: "publish", endpoint: "sensors", data: { t: 21.5 }, id: "r-1" });
      const receipt = await socket.next((f) => f.type === "receipt" && f.id === "r-1");
      assert.deepEqual(receipt.meta, { topic: `${ns}/${id}/up` });
      await eventually(() => seen.length === 1, "the outside subscriber");
      assert.deepEqual(seen, ['{"t":21.5}']);
      await socket.close();
      await outside.endAsync();
    },
  },
  {
    name: "mqtt: away, 200 published outside, back in window -> 200 in order once; later no broker session",
    async run(gw) {
      const id = unique("dev");
      const first = await openWelcomed(gw.ws, id);
      const sub = unique("s");
      first.socket.send({ type: "subscribe", endpoint: "sensors", id: sub });
      await first.socket.next((f) => f.type === "receipt" && f.id === sub);
      // The line comes through the gateway's stdout, which may reach the test after the receipt.
      const bound = new RegExp(
        `\\[MQTT\\] Client ${id} bound to endpoint sensors \\(subscribed to ${ns}/${id}/down\\)`,
      );
      await eventually(() => bound.test(gw.output()), "the bind's log line");
      await first.socket.close();

      const outside = await outsideClient();
      for (let n = 1; n <= 200; n++) {
        await outside.publishAsync(`${ns}/${id}/down`, JSON.stringify({ n }), { qos: 1 });
      }
      await outside.endAsync();

      const second = await openWelcomed(gw.ws, id);
      assert.equal(second.welcome.resumed, true);
      assert.deepEqual(await second.socket.settled("sensors", 200), numbered(200), "in order, once");
      await second.socket.close();

      await sleep(WINDOW_MS + CLEANUP_MS * 3);
      assert.match(gw.output(), new RegExp(`\\[CleanupWorker\\] Unbound client ${id} from endpoint sensors`));
      assert.equal(await brokerHasSession(`engine-sensors-client-${id}`), false);
    },
  },
  {
    name:
      "mqtt: poison payload: 6,000 and 30,000 deep JSON arrive as text, live and after a resume; the gateway goes on",
    async run(gw) {
      const id = unique("poison");
      const down = `${ns}/${id}/down`;
      const first = await openWelcomed(gw.ws, id);
      first.socket.send({ type: "subscribe", endpoint: "sensors", id: "s" });
      await first.socket.next((f) => f.type === "receipt" && f.id === "s");
      const bystander = await openWelcomed(gw.ws, unique("bystander"));
      bystander.socket.send({ type: "subscribe", endpoint: "sensors", id: "s" });
      await bystander.socket.next((f) => f.type === "receipt" && f.id === "s");
      const outside = await outsideClient();
      await outside.publishAsync(down, nested(6000), { qos: 1 });
      await outside.publishAsync(down, '{"n":1}', { qos: 1 });
      assert.deepEqual(await first.socket.settled("sensors", 2), [nested(6000), { n: 1 }]);
      await first.socket.close();
      // Queued by the broker while away: the gateway gets it again on resume, and survives it again.
      await outside.publishAsync(down, nested(30_000), { qos: 1 });
      await outside.publishAsync(down, '{"n":2}', { qos: 1 });
      const second = await openWelcomed(gw.ws, id);
      assert.deepEqual(await second.socket.settled("sensors", 2), [nested(30_000), { n: 2 }], "after resume");
      const name = bystander.welcome.clientId as string;
      await outside.publishAsync(`${ns}/${name}/down`, '"untouched"', { qos: 1 });
      assert.deepEqual(await bystander.socket.settled("sensors", 1), ["untouched"]);
      await outside.endAsync();
      await second.socket.close();
      await bystander.socket.close();
      assert.equal((await fetch(`${gw.http}/healthz`)).status, 200);
    },
  },
];
