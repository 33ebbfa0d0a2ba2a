/**
 * The physical-limit baseline of bench/main.ts: a minimal forwarder between WebSocket and mqtt.js
 * with none of the gateway's logic (no sessions, policy, hub, metrics, limits or logging), served
 * by the runtime's own server (Deno.serve / Bun.serve) in a process of its own, like the gateway.
 *
 * It speaks the gateway's frames for what the benchmark does: a welcome on open; `subscribe`
 * opens one persistent mqtt.js consumer for the client (clean:false, QoS 1, MQTT 5 session
 * expiry) and answers with a receipt; every message is sent as the gateway's message frame and
 * then PUBACKed (mqtt.js acks after its "message" handler, which writes the frame); `publish`
 * goes out at QoS 1 on one shared connection; `unsubscribe` ends the consumer's broker session.
 *
 *   forwarder.ts MQTT_URL NAME=TOPIC...    prints `listening PORT`
 *
 * Each NAME=TOPIC is an endpoint whose subscribe and publish topic is TOPIC, `{clientId}`
 * replaced by the client's ID.
 */
import mqtt from "mqtt";
import type { MqttClient } from "mqtt";

const [url, ...endpointArgs] = (globalThis as { Deno?: { args: string[] } }).Deno?.args ??
  (await import("node:process")).default.argv.slice(2);
const templates = new Map(endpointArgs.map((a) => a.split("=", 2) as [string, string]));

interface Client {
  id: string;
  send(text: string): void;
  consumers: Map<string, MqttClient>;
  sequences: Map<string, number>;
}

const producer = await mqtt.connectAsync(url, { protocolVersion: 5 });
const decoder = new TextDecoder();
const topicOf = (endpoint: string, clientId: string) =>
  templates.get(endpoint)!.replaceAll("{clientId}", clientId);

function frame(client: Client, endpoint: string, topic: string, payload: Uint8Array): string {
  // The gateway's message frame: a JSON payload spliced in as it is, the topic as meta.
  const sequence = (client.sequences.get(endpoint) ?? 0) + 1;
  client.sequences.set(endpoint, sequence);
  return `{"type":"message","endpoint":"${endpoint}","id":"1.${sequence}","data":${
    decoder.decode(payload)
  },"meta":{"topic":"${topic}"}}`;
}

async function onFrame(client: Client, text: string): Promise<void> {
  const f = JSON.parse(text) as { type: string; endpoint: string; id?: string; data?: unknown };
  if (f.type === "subscribe") {
    const consumer = mqtt.connect(url, {
      clientId: `forwarder-${f.endpoint}-${client.id}`,
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 60 },
    });
    consumer.on("message", (topic, payload) => client.send(frame(client, f.endpoint, topic, payload)));
    client.consumers.set(f.endpoint, consumer);
    await new Promise((resolve, reject) => {
      consumer.once("connect", resolve);
      consumer.once("error", reject);
    });
    await consumer.subscribeAsync(topicOf(f.endpoint, client.id), { qos: 1 });
    client.send(`{"type":"receipt","id":"${f.id}"}`);
  } else if (f.type === "unsubscribe") {
    await client.consumers.get(f.endpoint)?.endAsync(false, { properties: { sessionExpiryInterval: 0 } });
    client.consumers.delete(f.endpoint);
    client.send(`{"type":"receipt","id":"${f.id}"}`);
  } else if (f.type === "publish") {
    await producer.publishAsync(topicOf(f.endpoint, client.id), JSON.stringify(f.data), { qos: 1 });
    if (f.id) client.send(`{"type":"receipt","id":"${f.id}"}`);
  }
}

function opened(client: Client): void {
  client.send(`{"type":"welcome","clientId":"${client.id}","resumed":false}`);
}

function closed(client: Client): void {
  for (const consumer of client.consumers.values()) consumer.end(true);
}

const newClient = (request: Request): Client => ({
  id: new URL(request.url).searchParams.get("clientId") ?? crypto.randomUUID(),
  send: () => {},
  consumers: new Map(),
  sequences: new Map(),
});

if ("Deno" in globalThis) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { response, socket } = Deno.upgradeWebSocket(request);
    const client = newClient(request);
    client.send = (t) => socket.send(t);
    socket.onopen = () => opened(client);
    socket.onmessage = (e) => void onFrame(client, e.data as string).catch((e) => console.error(e));
    socket.onclose = () => closed(client);
    return response;
  });
  console.log(`listening ${server.addr.port}`);
} else {
  interface BunSocket {
    data: Client;
    send(text: string): number;
  }
  const Bun = (globalThis as unknown as {
    Bun: {
      serve(options: {
        hostname: string;
        port: number;
        fetch(
          request: Request,
          server: { upgrade(r: Request, o: { data: Client }): boolean },
        ): Response | undefined;
        websocket: {
          open(ws: BunSocket): void;
          message(ws: BunSocket, text: string | Uint8Array): void;
          close(ws: BunSocket): void;
        };
      }): { port: number };
    };
  }).Bun;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request, server) {
      const client = newClient(request);
      if (server.upgrade(request, { data: client })) return undefined;
      return new Response("upgrade expected", { status: 400 });
    },
    websocket: {
      open(ws) {
        ws.data.send = (t) => ws.send(t);
        opened(ws.data);
      },
      message: (ws, text) => void onFrame(ws.data, String(text)).catch((e) => console.error(e)),
      close: (ws) => closed(ws.data),
    },
  });
  console.log(`listening ${server.port}`);
}
