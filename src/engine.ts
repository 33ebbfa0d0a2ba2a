/**
 * The one place that wires the engine: config -> session store -> endpoints -> hub -> cleanup
 * worker. Adapters and tests build the engine here and the Hono app from it. Endpoints are made
 * by their registered types (src/endpoints/registry.ts).
 */
import process from "node:process";
import type { Authenticator } from "./core/auth.ts";
import type { Endpoint } from "./core/endpoint.ts";
import { createAuthenticator } from "./policy/auth.ts";
import { GatewayError } from "./core/errors.ts";
import { Hub } from "./core/hub.ts";
import { consoleLogger, withFields } from "./core/logger.ts";
import type { Logger } from "./core/logger.ts";
import { Metrics } from "./core/metrics.ts";
import { registerProcessMetrics, runtimeInfo } from "./process-metrics.ts";
import type { LagSampler } from "./process-metrics.ts";
import { configSecrets, redact, redactingLogger, rememberSecrets } from "./core/redact.ts";
import { RealScheduler } from "./core/scheduler.ts";
import type { Scheduler } from "./core/scheduler.ts";
import type { SessionStore } from "./core/session.ts";
import { hubOptionsFromConfig } from "./config/hub-options.ts";
import { loadConfig, readConfig } from "./config/load.ts";
import type { Config } from "./config/schema.ts";
import type { EndpointDefinition } from "./endpoints/definition.ts";
import { builtinEndpointTypes } from "./endpoints/builtins.ts";
import type { EndpointRegistry } from "./endpoints/registry.ts";
import { CleanupWorker } from "./session/cleanup.ts";
import { createSessionStore } from "./session/factory.ts";
import pkg from "../package.json" with { type: "json" };

export interface EngineOptions {
  scheduler?: Scheduler;
  logger?: Logger;
  /** Replaces the configured store (tests share one between engines). */
  store?: SessionStore;
  /** Replaces the configured endpoints. */
  endpoints?: Endpoint[];
  /**
   * The endpoint types the config's entries are made with (the one it was checked against:
   * LoadedConfig.registry). Default: the built-in types and `endpointTypes`.
   */
  registry?: EndpointRegistry;
  /** Endpoint types besides the built-in ones (when `registry` is not given). */
  endpointTypes?: EndpointDefinition[];
}

export interface Readiness {
  ok: boolean;
  checks: Record<string, { ok: boolean; detail?: string }>;
}

export class Engine {
  readonly hub: Hub;
  readonly store: SessionStore;
  readonly scheduler: Scheduler;
  readonly logger: Logger;
  readonly metrics = new Metrics();
  readonly cleanup: CleanupWorker;
  readonly nodeId: string;
  readonly auth: Authenticator;
  /**
   * What this node announces of itself to the others sharing the store (the admin API's nodes);
   * `address` is set by `serve` once it listens.
   */
  readonly node: { address: string; runtime: string; version: string; startedAt: number };
  #started = false;
  #lag: LagSampler;

  readonly config: Config;
  constructor(config: Config, options: EngineOptions = {}) {
    this.config = config;
    this.scheduler = options.scheduler ?? new RealScheduler();
    // Before anything can log or fail: the config's secrets are never printed nor sent.
    rememberSecrets(configSecrets(config));
    this.nodeId = config.server.node_id ?? `node-${crypto.randomUUID().slice(0, 8)}`;
    // Every line says which node wrote it: in a cluster the logs of all nodes end up together.
    this.logger = redactingLogger(withFields(
      options.logger ?? consoleLogger(config.log.level, { format: config.log.format }),
      { node: this.nodeId },
    ));
    this.auth = createAuthenticator(config.auth, this.scheduler);
    const { runtime, runtimeVersion } = runtimeInfo();
    this.node = {
      address: `${config.server.host}:${config.server.port}`,
      runtime: `${runtime} ${runtimeVersion}`,
      version: pkg.version,
      startedAt: this.scheduler.now(),
    };
    this.store = options.store ??
      createSessionStore(config.session, this.logger, this.metrics, this.scheduler);
    const registry = options.registry ?? builtinEndpointTypes.with(options.endpointTypes ?? []);
    const endpoints = options.endpoints ?? config.endpoints.map((e) =>
      registry.create(e, {
        logger: this.logger,
        nodeId: this.nodeId,
        reconnectionWindow: config.session.reconnection_window,
        scheduler: this.scheduler,
      })
    );
    this.hub = new Hub(hubOptionsFromConfig(config, {
      store: this.store,
      endpoints,
      scheduler: this.scheduler,
      logger: this.logger,
      metrics: this.metrics,
      nodeId: this.nodeId,
      node: this.node,
    }));
    this.cleanup = new CleanupWorker({
      store: this.store,
      scheduler: this.scheduler,
      logger: this.logger,
      metrics: this.metrics,
      expire: (id) => this.hub.expire(id),
      interval: config.session.cleanup_interval,
    });
    this.metrics.gauge(
      "mediation_sessions",
      "Sessions in the store by state, across every node using it",
      async () =>
        Object.entries(await this.store.counts(this.scheduler.now())).map(([state, value]) => ({
          labels: { state },
          value,
        })),
    );
    this.metrics.gauge(
      "mediation_endpoint_up",
      "Whether the endpoint's broker is reachable (1) or not (0), as GET /readyz checks it",
      () =>
        Promise.all(
          [...this.hub.endpoints.values()].map(async (endpoint) => ({
            labels: { endpoint: endpoint.name },
            value: (await this.#health(endpoint)).ok ? 1 : 0,
          })),
        ),
    );
    this.#lag = registerProcessMetrics(this.metrics, { version: pkg.version, ...runtimeInfo() });
  }

  /**
   * Checks the session store, then starts every endpoint and the cleanup worker. A store that is
   * misconfigured (a non-temporary error, e.g. the wrong response encoding) stops start-up; one
   * that is only unreachable does not: new clients get 503 until it answers.
   */
  async start(): Promise<void> {
    try {
      await this.store.ping();
    } catch (error) {
      const e = GatewayError.from(error);
      if (!e.temporary) throw e;
      this.logger.warn(`[Engine] Session store not reachable yet; clients get 503 until it is: ${e.message}`);
    }
    const { host } = this.config.server;
    if (!this.auth.required && !["127.0.0.1", "::1", "localhost"].includes(host)) {
      this.logger.warn(
        `[Engine] auth.type is none and the gateway listens on ${host}: anyone who reaches it can use any client ID (docs/authentication.md)`,
      );
    }
    for (const endpoint of this.hub.endpoints.values()) await endpoint.start(this.hub);
    this.hub.start();
    this.cleanup.start();
    this.#lag.start();
    this.#started = true;
    this.logger.info(
      `[Engine] Node ${this.nodeId} started with endpoints ${this.hub.endpointNames.join(", ")}`,
    );
  }

  /**
   * Graceful stop: clients closed with 1001 and their sessions marked disconnected (consumers
   * suspended), cleanup stopped, endpoints flushed and closed, store closed.
   */
  async stop(): Promise<void> {
    await this.hub.shutdown();
    await this.cleanup.stop();
    for (const endpoint of this.hub.endpoints.values()) {
      await endpoint.stop().catch((e) => this.logger.error(`[Engine] Stopping ${endpoint.name} failed`, e));
    }
    await this.store.close();
    this.#lag.stop();
    this.#started = false;
  }

  /** Store and every endpoint reachable (GET /readyz). */
  async readiness(): Promise<Readiness> {
    const checks: Readiness["checks"] = {};
    try {
      await this.store.ping();
      checks.store = { ok: true };
    } catch (error) {
      checks.store = { ok: false, detail: GatewayError.from(error).message };
    }
    for (const endpoint of this.hub.endpoints.values()) {
      checks[`endpoint:${endpoint.name}`] = await this.#health(endpoint);
    }
    // Draining: not ready first, so a load balancer sends new clients elsewhere.
    if (this.hub.draining) {
      checks.drain = { ok: false, detail: "draining: new connections go to other nodes" };
    }
    const ok = this.#started && Object.values(checks).every((c) => c.ok);
    return { ok, checks };
  }

  /** An endpoint's readiness check; one that throws is not ready. */
  /** An endpoint's health; its detail redacted: a plugin's may name its broker as configured, credentials included. */
  async #health(endpoint: Endpoint): Promise<{ ok: boolean; detail?: string }> {
    const health = await Promise.resolve().then(() => endpoint.health()).catch((e) => ({
      ok: false,
      detail: GatewayError.from(e).message,
    }));
    return health.detail === undefined ? health : { ...health, detail: redact(health.detail) };
  }
}

export interface CreateEngineOptions extends Omit<EngineOptions, "registry"> {
  /** The config file; relative `endpoint_modules` are resolved from its folder. */
  configPath?: string;
  /** Or the config itself, as YAML (`endpoint_modules` relative to the working directory). */
  configText?: string;
  /** For `${ENV}` in the config. Default: the process environment. */
  env?: Record<string, string | undefined>;
}

/**
 * Loads a config (with its `endpoint_modules`) and builds the engine on it, with the built-in
 * endpoint types, those modules' and `endpointTypes`. Config warnings go to the engine's log.
 * Throws ConfigError for a bad config. Not started: `serve(engine, adapter)` or `engine.start()`.
 *
 * @example
 * import { createEngine, serve } from "mediation-engine";
 * import { denoAdapter } from "mediation-engine/adapters/deno";
 * import myEndpoint from "./my-endpoint.ts";
 * const engine = await createEngine({ configPath: "gateway.yaml", endpointTypes: [myEndpoint] });
 * await serve(engine, denoAdapter);
 */
export async function createEngine(options: CreateEngineOptions = {}): Promise<Engine> {
  const env = options.env ?? process.env;
  const { endpointTypes } = options;
  const { config, warnings, registry } = options.configText !== undefined
    ? await readConfig(options.configText, env, { endpointTypes })
    : await loadConfig(options.configPath ?? "./config.yaml", env, { endpointTypes });
  const engine = new Engine(config, { ...options, registry });
  for (const warning of warnings) engine.logger.warn(`[Config] ${warning}`);
  return engine;
}
