/**
 * MQTT test support: the shared Mosquitto's URL, an outside client (the plain `mqtt` package,
 * not the gateway), a broker-side session probe, and private Mosquitto instances for tests that
 * break the broker.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { accepts, freePort, running } from "./net.ts";
export { freePort };
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import mqtt from "mqtt";
import type { MqttClient } from "mqtt";
import { memoryLogger } from "../../src/core/logger.ts";
import { RealScheduler } from "../../src/core/scheduler.ts";
import { MqttEndpoint } from "../../src/endpoints/mqtt/mqtt-endpoint.ts";
import type { MqttEndpointOptions } from "../../src/endpoints/mqtt/mqtt-endpoint.ts";

export const MQTT_URL = process.env.MQTT_URL ?? "mqtt://127.0.0.1:1883";

/** A topic namespace unique to this run. */
export const namespace = (label: string) => `test/${label}-${crypto.randomUUID().slice(0, 8)}`;

/**
 * An `mqtt` entry of a config's `endpoints:` list, as YAML lines (indented for the list, no
 * trailing newline): qos 1, topics `<ns>/{clientId}/up` and `<ns>/{clientId}/down` unless given.
 *
 * @example
 * const CONFIG = `
 * endpoints:
 * ${mqttEndpointYaml({ ns, poolSize: 2 })}
 * `;
 */
export function mqttEndpointYaml(options: {
  ns: string;
  name?: string;
  url?: string;
  poolSize: number;
  publishTopic?: string;
  subscribeTopic?: string;
}): string {
  const { ns, name = "sensors", url = MQTT_URL, poolSize } = options;
  return [
    `  - name: ${name}`,
    `    type: mqtt`,
    `    url: ${url}`,
    `    publish_topic: "${options.publishTopic ?? `${ns}/{clientId}/up`}"`,
    `    subscribe_topic: "${options.subscribeTopic ?? `${ns}/{clientId}/down`}"`,
    `    qos: 1`,
    `    producer_pool_size: ${poolSize}`,
  ].join("\n");
}

export function makeMqttEndpoint(options: Partial<MqttEndpointOptions> & { ns: string }): MqttEndpoint {
  return new MqttEndpoint({
    name: "sensors",
    url: MQTT_URL,
    publishTopic: `${options.ns}/{clientId}/up`,
    subscribeTopic: `${options.ns}/{clientId}/down`,
    qos: 1,
    producerPoolSize: 5,
    protocolVersion: 5,
    sessionExpiry: 60_000,
    // Its own: producer connections are named after the node, and two endpoints with one node id
    // (another test's, another run's) would take each other's over.
    nodeId: `test-${crypto.randomUUID().slice(0, 8)}`,
    logger: memoryLogger(),
    scheduler: new RealScheduler(),
    connectTimeout: 3000,
    publishTimeout: 3000,
    ...options,
  });
}

/** A plain mqtt.js client, connected. */
export async function outsideClient(url = MQTT_URL, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 200, ...options });
  client.on("error", () => {});
  return client;
}

/** Whether the broker holds a persistent session for `clientId` (CONNACK session present). */
export async function brokerHasSession(clientId: string, url = MQTT_URL): Promise<boolean> {
  const client = mqtt.connect(url, {
    clientId,
    clean: false,
    protocolVersion: 5,
    reconnectPeriod: 0,
    properties: { sessionExpiryInterval: 0 },
  });
  client.on("error", () => {});
  try {
    const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
      client.once("connect", resolve);
      client.once("error", reject);
    });
    return connack.sessionPresent;
  } finally {
    // Expiry 0 on this probe connection: closing it removes whatever session it created.
    await client.endAsync(false).catch(() => client.end(true));
  }
}

/** A private Mosquitto on a free port, with persistence in a temporary folder, to stop and start. */
export class PrivateMosquitto {
  #child?: ChildProcess;
  readonly dir = mkdtempSync(join(tmpdir(), "mosquitto-"));
  readonly port: number;
  private constructor(port: number) {
    this.port = port;
  }

  /** `maxQueuedMessages`: Mosquitto's per-session queue limit (default here 10,000). */
  static async start(options: { maxQueuedMessages?: number } = {}): Promise<PrivateMosquitto> {
    const broker = new PrivateMosquitto(await freePort());
    writeFileSync(
      join(broker.dir, "mosquitto.conf"),
      `listener ${broker.port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location ${broker.dir}/\nmax_queued_messages ${
        options.maxQueuedMessages ?? 10000
      }\n`,
    );
    await broker.resume();
    return broker;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** (Re)starts the broker process and waits until it accepts connections. */
  async resume(): Promise<void> {
    this.#child = spawn("mosquitto", ["-c", join(this.dir, "mosquitto.conf")], { stdio: "ignore" });
    const deadline = Date.now() + 10_000;
    // A TCP probe: mqtt.js with reconnects off may neither connect nor fail on a refused port.
    while (!await accepts(this.port)) {
      if (Date.now() > deadline) throw new Error(`mosquitto on port ${this.port} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Freezes the broker process (SIGSTOP): its port still accepts TCP connections and takes their
   * bytes, but nothing is answered (no CONNACK, no PUBACK) until `thaw`.
   */
  freeze(): void {
    this.#signal("SIGSTOP");
  }

  /** Lets a frozen broker go on (SIGCONT). */
  thaw(): void {
    this.#signal("SIGCONT");
  }

  /** By process ID: Deno's ChildProcess.kill sends no signal after its first. */
  #signal(signal: NodeJS.Signals): void {
    const pid = this.#child?.pid;
    if (pid !== undefined && running(pid)) process.kill(pid, signal);
  }

  /** Stops the broker gracefully (it writes its persistence file) and waits for it to exit. */
  async pause(): Promise<void> {
    const child = this.#child;
    if (!child?.pid || child.exitCode !== null) return;
    // A frozen process would hold SIGTERM until it is let go on.
    this.#signal("SIGCONT");
    this.#signal("SIGTERM");
    // Polled rather than awaiting "exit": under Deno that event does not always keep the event
    // loop alive, and the test runner then gives up on a pending promise.
    while (running(child.pid)) await new Promise((r) => setTimeout(r, 20));
  }

  async stop(): Promise<void> {
    await this.pause();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
