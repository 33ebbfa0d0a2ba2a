/**
 * The WebSocket side of the benchmarks' forwarders (bench/forwarder.ts for MQTT,
 * bench/kafka-forwarder.ts for Kafka): the runtime's own server (Deno.serve / Bun.serve) and the
 * gateway's frames (Node: `ws` on node:http, as the gateway's adapter), for what the benchmarks do, with none of the gateway's logic. A welcome on
 * open; `subscribe`, `unsubscribe` and `publish` handed to the broker side, answered with a
 * receipt; deliveries sent as the gateway's message frame.
 */

export interface ForwarderClient {
  id: string;
  send(text: string): void;
  /** Per endpoint: the broker side's consumer, whatever it is. */
  consumers: Map<string, { close(): void }>;
  sequences: Map<string, number>;
}

export interface BrokerSide {
  /** Opens the client's consumer of `endpoint`; resolves once it is subscribed. */
  subscribe(client: ForwarderClient, endpoint: string): Promise<void>;
  /** Ends the client's consumer of `endpoint` with its broker-side state. */
  unsubscribe(client: ForwarderClient, endpoint: string): Promise<void>;
  publish(client: ForwarderClient, endpoint: string, payload: string): Promise<void>;
}

const decoder = new TextDecoder();

/** The gateway's message frame: a JSON payload spliced in as it is, `meta` as given. */
export function messageFrame(
  client: ForwarderClient,
  endpoint: string,
  payload: Uint8Array,
  meta: string,
): string {
  const sequence = (client.sequences.get(endpoint) ?? 0) + 1;
  client.sequences.set(endpoint, sequence);
  return `{"type":"message","endpoint":"${endpoint}","id":"1.${sequence}","data":${
    decoder.decode(payload)
  },"meta":${meta}}`;
}

/** Serves the forwarder on a free port of 127.0.0.1 and prints `listening PORT`. */
export async function serve(broker: BrokerSide): Promise<void> {
  const onFrame = async (client: ForwarderClient, text: string) => {
    const f = JSON.parse(text) as { type: string; endpoint: string; id?: string; data?: unknown };
    if (f.type === "subscribe") await broker.subscribe(client, f.endpoint);
    else if (f.type === "unsubscribe") await broker.unsubscribe(client, f.endpoint);
    else if (f.type === "publish") await broker.publish(client, f.endpoint, JSON.stringify(f.data));
    if (f.id) client.send(`{"type":"receipt","id":"${f.id}"}`);
  };
  const received = (client: ForwarderClient, text: string) =>
    void onFrame(client, text).catch((e) => console.error(e));
  const opened = (client: ForwarderClient) =>
    client.send(`{"type":"welcome","clientId":"${client.id}","resumed":false}`);
  const closed = (client: ForwarderClient) => {
    for (const consumer of client.consumers.values()) consumer.close();
  };
  const newClient = (request: Request): ForwarderClient => ({
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
      socket.onmessage = (e) => received(client, e.data as string);
      socket.onclose = () => closed(client);
      return response;
    });
    console.log(`listening ${server.addr.port}`);
    return;
  }
  if (!("Bun" in globalThis)) {
    const { WebSocketServer } = await import("ws");
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
    wss.on("connection", (socket, request) => {
      const client = newClient(new Request(`http://127.0.0.1${request.url ?? "/"}`));
      client.send = (t) => socket.send(t);
      socket.on("message", (data) => received(client, String(data)));
      socket.on("close", () => closed(client));
      socket.on("error", () => {});
      opened(client);
    });
    await new Promise((resolve) => wss.once("listening", resolve));
    console.log(`listening ${(wss.address() as { port: number }).port}`);
    return;
  }
  interface BunSocket {
    data: ForwarderClient;
    send(text: string): number;
  }
  const Bun = (globalThis as unknown as {
    Bun: {
      serve(options: {
        hostname: string;
        port: number;
        fetch(
          request: Request,
          server: { upgrade(r: Request, o: { data: ForwarderClient }): boolean },
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
      if (server.upgrade(request, { data: newClient(request) })) return undefined;
      return new Response("upgrade expected", { status: 400 });
    },
    websocket: {
      open(ws) {
        ws.data.send = (t) => ws.send(t);
        opened(ws.data);
      },
      message: (ws, text) => received(ws.data, String(text)),
      close: (ws) => closed(ws.data),
    },
  });
  console.log(`listening ${server.port}`);
}

/** The command line's arguments, under either runtime. */
export async function args(): Promise<string[]> {
  return (globalThis as { Deno?: { args: string[] } }).Deno?.args ??
    (await import("node:process")).default.argv.slice(2);
}
