/**
 * The config.yaml schema (DESIGN.md section 9), in valibot. Every problem message reads
 * "expected ..., got ..." (or "unknown key ...") so start-up can print one line per problem with
 * its key path. Every mapping is strict. Defaults live here and nowhere else, except an endpoint
 * type's: those are in its definition (src/endpoints/<type>/definition.ts), and the `endpoints`
 * entries are assembled from the registered definitions. Value schemas are in values.ts; the parts
 * with rules of their own in redis-schema.ts, auth-schema.ts and endpoint-schema.ts.
 *
 * Just over 300 lines: the top-level config sections, each small; the parts with rules of their
 * own are in the files named above.
 */
import * as v from "valibot";
import {
  boolean,
  duration,
  expected,
  isMapping,
  name,
  positiveInt,
  show,
  strict,
  text,
  wholeNumber,
} from "./values.ts";
import { AuthSchema } from "./auth-schema.ts";
import { TlsSchema, TrustedProxiesSchema } from "./listener-schema.ts";
import { definitionChecks, endpointSchema } from "./endpoint-schema.ts";
import { RedisSchema } from "./redis-schema.ts";
import type { EndpointRegistry } from "../endpoints/registry.ts";

export { show } from "./values.ts";
export type { AclConfig, EndpointConfig } from "./endpoint-schema.ts";

const routePath = v.pipe(
  v.string(expected('a path like "/ws"')),
  v.regex(/^\/[A-Za-z0-9._~\/-]*$/, expected('a path like "/ws"')),
);

const ServerSchema = v.optional(
  strict({
    host: v.optional(text(), "0.0.0.0"),
    port: v.optional(wholeNumber("a port number 0-65535", 0, 65535), 8080),
    node_id: v.optional(
      v.pipe(text(), v.regex(/^[A-Za-z0-9._:-]{1,64}$/, expected("a node ID of A-Z a-z 0-9 . _ : -"))),
    ),
    idle_timeout: duration("60s"),
    /**
     * A connection that has not sent its whole request (headers, and a body if any) this long
     * after it opened is dropped (slowloris). Applied on Node; Bun has its own, fixed, and Deno none.
     */
    header_timeout: duration("10s"),
    max_buffered_bytes: positiveInt(1024 * 1024),
    /**
     * A client whose unsent bytes stay past max_buffered_bytes this long is closed (WebSocket 1008
     * "too slow"; an SSE stream ends). Its session is kept for the reconnection window.
     */
    slow_client_timeout: duration("30s"),
    shutdown_timeout: duration("10s"),
    sse_ping_interval: duration("15s"),
    /** The `retry:` every SSE stream starts with: how soon a browser's EventSource comes back. */
    sse_retry: duration("1000ms"),
    /** HTTPS and WSS on this port: `{ cert, key }`, PEM file paths (reloaded on SIGHUP). */
    tls: TlsSchema,
    /**
     * Proxies (CIDRs) whose `Forwarded` / `X-Forwarded-For` name the client: its address for the
     * per-address limits and the logs. Nobody else's are believed.
     */
    trusted_proxies: TrustedProxiesSchema,
    /** `GET /console`: the browser console (one page on the client library). Off unless asked for. */
    console: boolean(false),
    /**
     * Origins (`https://app.example`) whose pages may connect and publish; `*` for any. Others
     * are refused unless the request carries a credential (auth on).
     */
    allowed_origins: v.optional(
      v.array(
        v.pipe(
          v.string(expected('an origin like "https://app.example", or "*"')),
          v.regex(/^(\*|https?:\/\/[^\s/]+)$/, expected('an origin like "https://app.example", or "*"')),
        ),
        expected("a list of origins"),
      ),
      [],
    ),
  }),
  {},
);

/** A bearer token of the admin API: at least 16 characters, so it cannot be guessed. */
const adminToken = v.pipe(
  v.string(expected("a token of at least 16 characters")),
  v.minLength(16, expected("a token of at least 16 characters")),
);

/**
 * `admin:` (docs/operations.md "Admin API"): the admin API and the operator's page on a listener
 * of their own, with bearer tokens and TLS (`admin.tls`) of their own. Off unless `enabled`.
 */
const AdminSchema = v.pipe(
  v.optional(
    strict({
      enabled: boolean(false),
      host: v.optional(text(), "127.0.0.1"),
      port: v.optional(wholeNumber("a port number 0-65535", 0, 65535), 9090),
      /**
       * Who may call it: tokens (`${ENV}`), each a string (named by its place, `#1`, in the log)
       * or `{ name, token }` (named by its name).
       */
      tokens: v.optional(
        v.array(
          v.union([
            adminToken,
            strict({ name: text("a name"), token: adminToken }),
          ], expected("a token of at least 16 characters, or { name, token }")),
          expected("a list of tokens"),
        ),
        [],
      ),
      /** How long a drain spreads its 1001s over before the node exits. */
      drain_time: duration("30s"),
      /** HTTPS for the admin listener: PEM files, read at start and again on SIGHUP, as `server.tls`. */
      tls: TlsSchema,
    }),
    {},
  ),
  v.forward(
    v.check(
      (a) => !a.enabled || a.tokens.length > 0,
      "expected at least one token (admin.enabled is true), got nothing",
    ),
    ["tokens"],
  ),
  v.forward(
    v.check(
      (a) =>
        new Set(a.tokens.map((t, i) => (typeof t === "string" ? `#${i + 1}` : t.name))).size ===
          a.tokens.length,
      "expected unique token names",
    ),
    ["tokens"],
  ),
);

const sessionTimes = {
  reconnection_window: duration("5m"),
  cleanup_interval: duration("30s"),
  /** How long a node's hold on its connected sessions lasts without renewal. */
  lease: duration("15s"),
};

const SessionSchema = v.pipe(
  v.optional(
    v.variant("type", [
      // `redis:` is accepted and ignored (with a warning, see configWarnings): the seed's config
      // keeps it next to `type: memory`.
      strict({
        type: v.optional(v.literal("memory"), "memory"),
        ...sessionTimes,
        redis: v.optional(v.unknown()),
      }),
      strict({ type: v.literal("redis"), ...sessionTimes, redis: v.optional(RedisSchema) }),
    ], (issue) => `expected ${issue.path ? '"memory" or "redis"' : "a mapping"}, got ${show(issue.input)}`),
    {},
  ),
  v.forward(
    v.check(
      (s) => s.type !== "redis" || s.redis !== undefined,
      "expected a mapping with addr (plain Redis) or url (session.type is redis), got nothing",
    ),
    ["redis"],
  ),
  v.forward(
    v.check(
      (s) => s.lease >= 1000,
      (i) => `expected at least 1s, got ${show((i.input as { lease: number }).lease)} ms`,
    ),
    ["lease"],
  ),
  /** With `type: memory`, nothing of an ignored `redis:` is kept. */
  v.transform((session) => {
    if (session.type === "redis") return session;
    const { redis: _ignored, ...memory } = session;
    return memory as typeof memory & { redis?: undefined };
  }),
);

const EntrypointSchema = v.variant("type", [
  strict({ name, type: v.literal("websocket"), path: v.optional(routePath, "/ws") }),
  strict({ name, type: v.literal("sse"), path: v.optional(routePath, "/sse") }),
  strict({ name, type: v.literal("http"), path: v.optional(routePath, "/publish") }),
], expected('an entrypoint of type "websocket", "sse" or "http"'));

const PolicySchema = v.optional(
  strict({
    max_message_bytes: positiveInt(65_536),
    /** Deepest JSON nesting of a client frame's data, and of a delivered payload sent as JSON. */
    max_json_depth: positiveInt(64),
    /** Publishes a second per client (bursts of twice as many); past it RATE_LIMITED. */
    publishes_per_second: positiveInt(1000),
    /** Payload bytes a second per client (bursts of twice as many). */
    publish_bytes_per_second: positiveInt(4 * 1024 * 1024),
    /** Publishes of one connection waiting for their broker at once. */
    max_pending_publishes: positiveInt(256),
    /** New connections a second per subject (bursts of twice as many). */
    connections_per_second: positiveInt(50),
    /**
     * New connections a second per client address (bursts of twice as many). Behind a load
     * balancer every client has its address: raise it there, or rely on the per-subject bound.
     */
    connections_per_second_per_address: positiveInt(1000),
    /** Most sessions one authenticated subject may hold at once (auth on). */
    sessions_per_subject: positiveInt(1000),
  }),
  {},
);

/** End-to-end delivery (DESIGN.md section 5). */
const DeliverySchema = v.optional(
  strict({
    /** Unacknowledged messages per client and endpoint on an `ack=1` connection. */
    max_in_flight: positiveInt(1000),
    /** Publish ids remembered per session, so a retried publish is not sent twice. */
    dedupe_ids: positiveInt(1000),
    /** How long a publish id is remembered. */
    dedupe_window: duration("5m"),
    /** Bytes of sent SSE events kept per session for Last-Event-ID replay. */
    replay_bytes: positiveInt(1024 * 1024),
  }),
  {},
);

const LogSchema = v.optional(
  strict({
    level: v.optional(
      v.picklist(["debug", "info", "warn", "error"], expected('"debug", "info", "warn" or "error"')),
      "info",
    ),
    /** `text`: a line for people; `json`: one object a line (docs/operations.md "Logs"). */
    format: v.optional(v.picklist(["text", "json"], expected('"text" or "json"')), "text"),
  }),
  {},
);

const DEFAULT_ENTRYPOINTS = [
  { name: "ws", type: "websocket" as const, path: "/ws" },
  { name: "sse", type: "sse" as const, path: "/sse" },
  { name: "http", type: "http" as const, path: "/publish" },
];

function buildConfigSchema(registry: EndpointRegistry) {
  return v.pipe(
    strict({
      server: ServerSchema,
      admin: AdminSchema,
      session: SessionSchema,
      entrypoints: v.optional(
        v.array(EntrypointSchema, expected("a list of entrypoints")),
        DEFAULT_ENTRYPOINTS,
      ),
      /**
       * Modules with endpoint types from outside the repo, each default-exporting an
       * EndpointDefinition (or a list of them): paths relative to the config file, or URLs. Loaded
       * by loadConfig before the rest of the config is checked.
       */
      endpoint_modules: v.optional(
        v.array(text("a module path"), expected("a list of module paths")),
        [],
      ),
      endpoints: v.pipe(
        v.array(endpointSchema(registry), expected("a list of endpoints")),
        v.minLength(1, expected("at least one endpoint")),
        definitionChecks(registry),
      ),
      auth: AuthSchema,
      policy: PolicySchema,
      delivery: DeliverySchema,
      log: LogSchema,
    }),
    v.forward(
      v.check(
        (c) => new Set(c.endpoints.map((e) => e.name)).size === c.endpoints.length,
        (issue) =>
          `expected unique endpoint names, got ${
            show((issue.input as { endpoints: { name: string }[] }).endpoints.map((e) => e.name))
          }`,
      ),
      ["endpoints"],
    ),
  );
}

const schemas = new WeakMap<EndpointRegistry, ReturnType<typeof buildConfigSchema>>();

/**
 * The config schema with the endpoint types of `registry` (built once per registry; load.ts
 * passes the built-in types and those of `endpoint_modules`). Given, not defaulted, so this file
 * loads no endpoint type and no broker client.
 */
export function configSchema(registry: EndpointRegistry): ReturnType<typeof buildConfigSchema> {
  let schema = schemas.get(registry);
  if (!schema) schemas.set(registry, schema = buildConfigSchema(registry));
  return schema;
}

export type Config = v.InferOutput<ReturnType<typeof buildConfigSchema>>;

/**
 * What a valid config says that start-up ignores, one line each, for the log: `input` is the
 * config as written (after `${ENV}`), `config` what the schema made of it.
 */
export function configWarnings(input: unknown, config: Config): string[] {
  const session = isMapping(input) ? input.session : undefined;
  const warnings: string[] = [];
  if (config.session.type === "memory" && isMapping(session) && session.redis !== undefined) {
    warnings.push("session.redis is ignored: session.type is memory");
  }
  return warnings;
}
export type EntrypointConfig = Config["entrypoints"][number];
