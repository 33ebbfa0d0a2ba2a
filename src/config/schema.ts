/**
 * The config.yaml schema (DESIGN.md section 9), in valibot. Every problem message reads
 * "expected ..., got ..." (or "unknown key ...") so start-up can print one line per problem with
 * its key path. Every mapping is strict. Defaults live here and nowhere else, except an endpoint
 * type's: those are in its definition (src/endpoints/<type>/definition.ts), and the `endpoints`
 * entries are assembled from the registered definitions. Value schemas are in values.ts.
 */
import * as v from "valibot";
import { closestKey } from "./keys.ts";
import { boolean, duration, expected, name, positiveInt, show, strict, text, wholeNumber } from "./values.ts";
import { builtinEndpointTypes } from "../endpoints/registry.ts";
import type { EndpointRegistry } from "../endpoints/registry.ts";

export { show } from "./values.ts";

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
    /**
     * Origins (`https://app.example`) whose pages may connect and publish; `*` for any. Others
     * are refused unless the request carries a credential (auth on).
     */
    /** `GET /console`: the browser console (one page on the client library). Off unless asked for. */
    console: boolean(false),
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

/**
 * `session.redis`: plain Redis over RESP (`addr`, or a `redis://` / `rediss://` url, with
 * `username`, `password`, `db`) or the Upstash REST API (an `http(s)://` url with `token` and
 * `encoding`). Exactly one of `url` and `addr`; each transport's keys only with it. The output
 * names its transport, as RedisSessionStoreOptions takes it.
 */
const REDIS_URL = "a redis://, rediss:// or http(s):// URL";

const redisUrl = v.pipe(
  text(REDIS_URL),
  v.regex(/^(rediss?|https?):\/\/\S+$/, expected(REDIS_URL)),
  v.check((url) => URL.canParse(url), expected(REDIS_URL)),
);
const redisAddr = v.pipe(
  v.string(expected('a "host:port"')),
  v.regex(/^(\[[0-9A-Fa-f:.]+\]|[^\s:/@\[\]]+):\d{1,5}$/, expected('a "host:port"')),
);
/** A password may be empty (the seed's `password: ""`): no AUTH. */
const redisPassword = v.string(expected("a string"));

/** Keys of each transport, refused with the other. */
const RESP_ONLY = ["username", "password", "db"] as const;
const REST_ONLY = ["token", "encoding"] as const;

const isMapping = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

const isRest = (url: unknown) => typeof url === "string" && /^https?:/i.test(url);

/** host, port, credentials and db of a redis:// url (what it leaves out is undefined). */
function respUrl(text: string) {
  const url = new URL(text);
  const db = url.pathname.replace(/^\//, "");
  return {
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port: url.port ? Number(url.port) : 6379,
    tls: url.protocol === "rediss:",
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    db: db === "" ? undefined : Number(db),
  };
}

const RedisSchema = v.pipe(
  strict({
    url: v.optional(redisUrl),
    addr: v.optional(redisAddr),
    token: v.optional(text("the REST token")),
    /** `base64` (Upstash's default) or `none` for REST proxies that do not encode responses. */
    encoding: v.optional(v.picklist(["base64", "none"], expected('"base64" or "none"'))),
    username: v.optional(text("an ACL user name")),
    password: v.optional(redisPassword),
    db: v.optional(wholeNumber("a database number (0 or more)", 0)),
    keyPrefix: v.optional(
      v.pipe(
        v.string(expected("a key prefix")),
        v.regex(/^[^\s~]*$/, expected("a key prefix without spaces or ~")),
      ),
      "mediation:session:",
    ),
    /** Longest wait for one round trip before the store counts as unreachable. */
    timeout: duration("3s"),
  }),
  v.rawCheck(({ dataset, addIssue }) => {
    const redis = dataset.value;
    if (!isMapping(redis)) return;
    const at = (key: string): [v.ObjectPathItem] => [
      { type: "object", origin: "value", input: redis, key, value: redis[key] },
    ];
    if ("url" in redis && "addr" in redis) {
      return addIssue({ message: "expected url or addr, got both", path: at("addr") });
    }
    if (!("url" in redis) && !("addr" in redis)) {
      return addIssue({
        message: `expected "host:port" (plain Redis), or url: ${REDIS_URL}, got nothing`,
        path: at("addr"),
      });
    }
    // Which transport a url that is not one selects cannot be told: its own problem says enough.
    if ("url" in redis && !v.is(redisUrl, redis.url)) return;
    if (isRest(redis.url)) {
      if (!("token" in redis)) {
        addIssue({ message: "expected the REST token, got nothing", path: at("token") });
      }
      for (const key of RESP_ONLY.filter((k) => k in redis)) {
        addIssue({
          message: `only for plain Redis (addr, or a redis:// url); the REST API at url takes token`,
          path: at(key),
        });
      }
      return;
    }
    for (const key of REST_ONLY.filter((k) => k in redis)) {
      addIssue({
        message: `only for the REST API (an http(s):// url); plain Redis takes password (and username)`,
        path: at(key),
      });
    }
    if (typeof redis.url === "string" && URL.canParse(redis.url)) {
      const fromUrl = respUrl(redis.url);
      for (const key of RESP_ONLY.filter((k) => k in redis && fromUrl[k] !== undefined)) {
        addIssue({ message: `expected it in url or here, got both`, path: at(key) });
      }
      if (fromUrl.db !== undefined && !(Number.isInteger(fromUrl.db) && fromUrl.db >= 0)) {
        addIssue({
          message: `expected a database number as the url's path (/0), got ${show(redis.url)}`,
          path: at("url"),
        });
      }
    }
  }),
  v.transform(({ url, addr, token, encoding, username, password, db, keyPrefix, timeout }) => {
    if (url !== undefined && isRest(url)) {
      return {
        transport: "rest" as const,
        url,
        token: token!,
        encoding: encoding ?? "base64",
        keyPrefix,
        timeout,
      };
    }
    const at = url !== undefined
      ? respUrl(url)
      : { ...respUrl(`redis://${addr}`), username: undefined, password: undefined, db: undefined };
    return {
      transport: "resp" as const,
      host: at.host,
      port: at.port,
      tls: at.tls,
      username: username ?? at.username,
      password: password ?? at.password ?? "",
      db: db ?? at.db ?? 0,
      keyPrefix,
      timeout,
    };
  }),
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

/** `*`, `subject:<s>`, `role:<r>` (in the `roles` claim), `claim:<name>=<value>`. */
const aclRule = v.pipe(
  v.string(expected('a rule: "*", "subject:<s>", "role:<r>" or "claim:<name>=<value>"')),
  v.regex(
    /^(\*|subject:.+|role:.+|claim:[^=]+=.*)$/,
    expected('a rule: "*", "subject:<s>", "role:<r>" or "claim:<name>=<value>"'),
  ),
);

/**
 * Who may publish to and subscribe to an endpoint, and with which binding params: a param named
 * here must be one of the values of the named claim (`room: rooms` = the token's `rooms` claim).
 * Without an acl an endpoint is open to every client the gateway admits.
 */
const AclSchema = v.optional(strict({
  publish: v.optional(v.array(aclRule, expected("a list of rules"))),
  subscribe: v.optional(v.array(aclRule, expected("a list of rules"))),
  params: v.optional(v.record(v.string(), text("a claim name"), expected("a mapping of param: claim"))),
}));

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

const JwtSchema = v.pipe(
  strict({
    /** HS256/384/512 shared secret. */
    secret: v.optional(text("the HMAC secret")),
    /** A PEM public key (RS/PS/ES/EdDSA). */
    public_key: v.optional(text("a PEM public key")),
    /** A JWKS endpoint; keys are cached and fetched again for an unknown `kid` (rotation). */
    jwks_url: v.optional(
      v.pipe(text("an http(s):// URL"), v.regex(/^https?:\/\/\S+$/, expected("an http(s):// URL"))),
    ),
    /** How long fetched JWKS keys are used before they are fetched again. */
    jwks_cache: duration("10m"),
    /** Algorithms accepted; default by key: HS256 (secret), RS256 (public_key), the key's own (JWKS). */
    algorithms: v.optional(
      v.array(
        v.picklist(
          [
            "HS256",
            "HS384",
            "HS512",
            "RS256",
            "RS384",
            "RS512",
            "PS256",
            "PS384",
            "PS512",
            "ES256",
            "ES384",
            "ES512",
            "EdDSA",
          ],
          expected("a JWT algorithm like HS256, RS256, ES256 or EdDSA"),
        ),
      ),
    ),
    issuer: v.optional(text("the expected issuer")),
    audience: v.optional(text("the expected audience")),
    /** The claim that names the subject a session belongs to. */
    subject_claim: v.optional(text("a claim name"), "sub"),
    /** A claim whose value is the client ID (instead of the header or query parameter). */
    client_id_claim: v.optional(text("a claim name")),
  }),
  v.check(
    (j) => [j.secret, j.public_key, j.jwks_url].filter((k) => k !== undefined).length === 1,
    "expected exactly one of secret, public_key, jwks_url",
  ),
);

const AuthSchema = v.pipe(
  v.optional(
    strict({
      type: v.optional(
        v.picklist(["none", "jwt", "api_key"], expected('"none", "jwt" or "api_key"')),
        "none",
      ),
      jwt: v.optional(JwtSchema),
      api_keys: v.optional(
        v.array(
          strict({ key: text("the API key"), subject: text("the subject it authenticates as") }),
          expected("a list of { key, subject }"),
        ),
      ),
    }),
    {},
  ),
  v.forward(
    v.check(
      (a) => a.type !== "jwt" || a.jwt !== undefined,
      "expected a jwt mapping (auth.type is jwt), got nothing",
    ),
    ["jwt"],
  ),
  v.forward(
    v.check(
      (a) => a.type !== "api_key" || (a.api_keys?.length ?? 0) > 0,
      "expected at least one { key, subject } (auth.type is api_key)",
    ),
    ["api_keys"],
  ),
);

const LogSchema = v.optional(
  strict({
    level: v.optional(
      v.picklist(["debug", "info", "warn", "error"], expected('"debug", "info", "warn" or "error"')),
      "info",
    ),
    /** `text`: a line for people; `json`: one object a line (README "Logging"). */
    format: v.optional(v.picklist(["text", "json"], expected('"text" or "json"')), "text"),
  }),
  {},
);

const DEFAULT_ENTRYPOINTS = [
  { name: "ws", type: "websocket" as const, path: "/ws" },
  { name: "sse", type: "sse" as const, path: "/sse" },
  { name: "http", type: "http" as const, path: "/publish" },
];

/** Who may publish and subscribe to an endpoint, and with which params (src/policy/auth.ts). */
export type AclConfig = v.InferOutput<typeof AclSchema>;

/**
 * An endpoint entry as the engine gets it: `name`, `type`, `acl` (every type has them) and its
 * type's options with every default filled in (EndpointDefinition.options).
 */
export type EndpointConfig = { name: string; type: string; acl?: AclConfig; [key: string]: unknown };

/** One entry of `endpoints`, of any registered type: the definition's keys plus the core ones, strict. */
function endpointSchema(registry: EndpointRegistry): v.GenericSchema<unknown, EndpointConfig> {
  const types = registry.types;
  const options = registry.definitions.map((d) =>
    strict({ name, type: v.literal(d.type), ...d.options, acl: AclSchema })
  );
  const list = types.length === 1
    ? `"${types[0]}"`
    : `${types.slice(0, -1).map((t) => `"${t}"`).join(", ")} or "${types.at(-1)}"`;
  const entry = v.variant("type", options, (issue) => {
    const close = typeof issue.input === "string" && issue.path ? closestKey(issue.input, types) : undefined;
    return `expected an endpoint of type ${list}, got ${show(issue.input)}${
      close ? ` (did you mean "${close}"?)` : ""
    }`;
  });
  return entry as unknown as v.GenericSchema<unknown, EndpointConfig>;
}

/** Problems of the definitions' own checks across one entry's keys (EndpointDefinition.check). */
function definitionChecks(registry: EndpointRegistry) {
  return v.rawCheck<EndpointConfig[]>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    dataset.value.forEach((entry, index) => {
      for (const { key, message } of registry.get(entry.type)?.check?.(entry) ?? []) {
        addIssue({
          message,
          path: [
            { type: "array", origin: "value", input: dataset.value, key: index, value: entry },
            { type: "object", origin: "value", input: entry, key, value: entry[key] },
          ],
        });
      }
    });
  });
}

function buildConfigSchema(registry: EndpointRegistry) {
  return v.pipe(
    strict({
      server: ServerSchema,
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

/** The config schema with the endpoint types of `registry` (built once per registry). */
export function configSchema(
  registry: EndpointRegistry = builtinEndpointTypes,
): ReturnType<typeof buildConfigSchema> {
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
