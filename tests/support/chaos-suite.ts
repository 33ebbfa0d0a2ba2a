/**
 * The setup every chaos file shares (tests/conformance/chaos*.test.ts): the run's scale from the
 * environment, the gateway nodes started before the tests and killed after them, and one
 * scenario's frame: a cutting proxy in front of each node, the clients named
 * `chaos-<label>-<run>-<i>` (the shape `chaosSummary` folds error lines by), the outside
 * publisher opened before the run and closed after it, and the nodes' last output printed when
 * the run fails. What each file varies (the broker, the clients, how the streams are published,
 * the verdict) stays in the file.
 */
import process from "node:process";
import { after, before, test } from "node:test";
import type { ChaosClient, ChaosRun } from "./chaos-clients.ts";
import { paceNumbered, runChaos } from "./chaos-clients.ts";
import { ChaosProxy } from "./chaos-proxy.ts";
import type { Gateway } from "./gateway-process.ts";
import { startGateway } from "./gateway-process.ts";
import { outsideClient } from "./mqtt.ts";
import { currentRuntime } from "./runtime.ts";

/** Every stream's pace, messages per second and client. */
export const CHAOS_RATE = 200;

export interface ChaosSuiteOptions {
  /**
   * Runs in `before`: starts what the nodes need (a broker, a store proxy) and returns one
   * gateway config per node, each started under the runtime that runs the test.
   */
  configs(): Promise<string[]> | string[];
  /** Runs in `after`, once the nodes are killed: stops what `configs` started. */
  cleanup?(): Promise<void>;
  /** Seconds of traffic when `CHAOS_SECONDS` is unset (default 10). */
  seconds?: number;
  /** A variable read before `CHAOS_CLIENTS` for the number of clients (default 10 when neither is set). */
  clientsVariable?: string;
}

/** The publisher of one scenario: sends each client its numbered stream, closed after the run. */
export interface ChaosPublisher {
  /** Sends `total` numbered messages to each client; resolves once the broker has them all. */
  publish(total: number): Promise<void>;
  close?(): Promise<void>;
}

export interface ChaosScenario {
  /** Names the clients: `chaos-<label>-<run>-<i>`. */
  label: string;
  /** Client `i`, given the proxies' base URLs (one per node, in the nodes' order). */
  client(clientId: string, bases: string[], i: number): ChaosClient;
  /** Opens the publisher once the clients are made; the proxies are this scenario's. */
  publisher(clients: ChaosClient[], proxies: ChaosProxy[]): Promise<ChaosPublisher> | ChaosPublisher;
}

export interface ChaosSuite {
  readonly clients: number;
  readonly seconds: number;
  readonly rate: number;
  /** The gateway nodes, once `before` has run. */
  readonly nodes: Gateway[];
  /** The last `chars` characters each node printed, for a failure's diagnosis. */
  tails(chars?: number): string;
  /** A test named `chaos (<runtime>): <name>`, with the time a chaos run needs. */
  test(name: string, fn: () => Promise<void>): void;
  /** One scenario through a cutting proxy per node (see the module comment). */
  run(scenario: ChaosScenario): Promise<ChaosRun>;
}

/**
 * Registers the nodes' `before` and `after` and returns what the file's tests use.
 *
 * @example
 * ```ts
 * const suite = chaosSuite({ configs: () => [CONFIG] });
 * suite.test("WebSocket with acks: 0 lost", async () => {
 *   const r = await suite.run({ label: "acked", client: (id, [base]) => new WsChaosClient({ ... }), publisher });
 *   assertNoLossAllFlagged(r);
 * });
 * ```
 */
export function chaosSuite(options: ChaosSuiteOptions): ChaosSuite {
  const env = process.env;
  const clients = Number(
    (options.clientsVariable ? env[options.clientsVariable] : undefined) ?? env.CHAOS_CLIENTS ?? 10,
  );
  const seconds = Number(env.CHAOS_SECONDS ?? options.seconds ?? 10);
  let nodes: Gateway[] = [];
  before(async () => {
    const configs = await options.configs();
    nodes = await Promise.all(configs.map((config) => startGateway(currentRuntime, config)));
  });
  after(async () => {
    await Promise.all(nodes.map((gw) => gw.stop("SIGKILL")));
    await options.cleanup?.();
  });
  const tails = (chars = 6000) =>
    nodes.length === 1
      ? `gateway output (last ${chars} characters):\n${nodes[0].output().slice(-chars)}`
      : nodes.map((gw, i) =>
        `--- node ${String.fromCharCode(65 + i)} (last ${chars} characters) ---\n${gw.output().slice(-chars)}`
      ).join("\n");
  return {
    clients,
    seconds,
    rate: CHAOS_RATE,
    get nodes() {
      return nodes;
    },
    tails,
    test: (name, fn) => test(`chaos (${currentRuntime}): ${name}`, { timeout: 120_000 }, fn),
    async run(scenario) {
      const proxies = await Promise.all(nodes.map((gw) => ChaosProxy.start(Number(new URL(gw.http).port))));
      const bases = proxies.map((p) => `http://127.0.0.1:${p.port}`);
      const run = crypto.randomUUID().slice(0, 8);
      const made = Array.from(
        { length: clients },
        (_, i) => scenario.client(`chaos-${scenario.label}-${run}-${i}`, bases, i),
      );
      let publisher: ChaosPublisher | undefined;
      try {
        publisher = await scenario.publisher(made, proxies);
        const { publish } = publisher;
        return await runChaos({
          clients: made,
          proxies,
          rate: CHAOS_RATE,
          trafficSeconds: seconds,
          publish: (total) => publish(total),
        });
      } catch (error) {
        console.log(tails(nodes.length === 1 ? 6000 : 4000));
        throw error;
      } finally {
        await publisher?.close?.();
        await Promise.all(proxies.map((p) => p.stop()));
      }
    },
  };
}

/**
 * An outside MQTT client (on the shared Mosquitto) that publishes each client's numbered stream
 * to `<ns>/<clientId>/down` with QoS 1; `publish` resolves once the broker confirmed all.
 */
export async function mqttStreamsPublisher(ns: string, clients: ChaosClient[]): Promise<ChaosPublisher> {
  const publisher = await outsideClient();
  const topics = clients.map((c) => `${ns}/${c.clientId}/down`);
  return {
    async publish(total) {
      const confirmed: Array<Promise<unknown>> = [];
      await paceNumbered(topics.length, CHAOS_RATE, total, (due) => {
        for (const [i, n] of due) {
          confirmed.push(publisher.publishAsync(topics[i], JSON.stringify({ n }), { qos: 1 }));
        }
      });
      await Promise.all(confirmed);
    },
    close: async () => void await publisher.endAsync(),
  };
}
