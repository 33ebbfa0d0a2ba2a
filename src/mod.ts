/**
 * The gateway as a library (`mediation-engine`): build an engine from a config with endpoint
 * types of your own, and serve it with a runtime's adapter (`mediation-engine/adapters/deno`,
 * `mediation-engine/adapters/bun`), as src/main.ts does.
 *
 * @example
 * import { createEngine, serve } from "mediation-engine";
 * import { denoAdapter } from "mediation-engine/adapters/deno";
 * import myEndpoint from "./my-endpoint.ts";
 * const engine = await createEngine({ configPath: "gateway.yaml", endpointTypes: [myEndpoint] });
 * await serve(engine, denoAdapter);
 */
export { createEngine, Engine } from "./engine.ts";
export type { CreateEngineOptions, EngineOptions } from "./engine.ts";
export { serve } from "./serve.ts";
export type { Adapter, Listening, Signal } from "./serve.ts";
export type { TlsMaterial } from "./tls.ts";
export { ConfigError, loadConfig, readConfig } from "./config/load.ts";
export type { Config } from "./config/schema.ts";
export type {
  Attach,
  Lease,
  LostLease,
  PublishReservation,
  ReplayEvent,
  Session,
  SessionState,
  SessionStore,
  Subscription,
  Taken,
} from "./core/session.ts";
export { builtinEndpointTypes } from "./endpoints/builtins.ts";
export { EndpointRegistry } from "./endpoints/registry.ts";
