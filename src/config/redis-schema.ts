/**
 * `session.redis` of config.yaml: plain Redis over RESP, a Redis Cluster, a Sentinel-managed
 * primary, or the Upstash REST API, checked across keys (one transport's keys only with it) and
 * turned into the store's transport options.
 */
import * as v from "valibot";
import { duration, expected, isMapping, show, strict, text, wholeNumber } from "./values.ts";
import { respUrl } from "../session/redis-resp-url.ts";

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
const nodeList = (what: string) =>
  v.pipe(
    v.array(redisAddr, expected(`a list of "host:port" (${what})`)),
    v.minLength(1, expected(`at least one "host:port" (${what})`)),
  );
/** A password may be empty (the seed's `password: ""`): no AUTH. */
const redisPassword = v.string(expected("a string"));

/** Keys of each transport, refused with the other. */
const RESP_ONLY = ["username", "password", "db"] as const;
const REST_ONLY = ["token", "encoding"] as const;
const SENTINEL_ONLY = ["name", "sentinelPassword"] as const;
/** Where the store is: exactly one of these (`url` and `addr` count as one). */
const TARGETS = ["cluster", "sentinels"] as const;

const node = (addr: string) => {
  const { host, port } = respUrl(`redis://${addr}`);
  return { host, port };
};

const isRest = (url: unknown) => typeof url === "string" && /^https?:/i.test(url);

/**
 * `session.redis`: plain Redis over RESP (`addr`, or a `redis://` / `rediss://` url, with
 * `username`, `password`, `db`) or the Upstash REST API (an `http(s)://` url with `token` and
 * `encoding`). Exactly one of `url` and `addr`; each transport's keys only with it. The output
 * names its transport, as RedisSessionStoreOptions takes it.
 */
export const RedisSchema = v.pipe(
  strict({
    url: v.optional(redisUrl),
    addr: v.optional(redisAddr),
    /** Some of a Redis Cluster's nodes (needs `shards`). */
    cluster: v.optional(nodeList("nodes of the cluster")),
    /** Redis Sentinel: some of the sentinels, and the master group's `name`. */
    sentinels: v.optional(nodeList("sentinels")),
    name: v.optional(text("the sentinels' master group name")),
    sentinelPassword: v.optional(redisPassword),
    /** TLS to every node (with addr, cluster or sentinels; a url says it with rediss://). */
    tls: v.optional(v.boolean(expected("true or false"))),
    /** The sharded layout's number of shards (src/session/redis-layout.ts). */
    shards: v.optional(wholeNumber("a number of shards (1 to 16384)", 1, 16384)),
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
    const targets = [
      ...("url" in redis ? ["url"] : "addr" in redis ? ["addr"] : []),
      ...TARGETS.filter((k) => k in redis),
    ];
    if (targets.length > 1) {
      return addIssue({
        message: `expected one of addr (or url), cluster and sentinels, got ${targets.join(" and ")}`,
        path: at(targets[1]),
      });
    }
    if (targets.length === 0) {
      return addIssue({
        message:
          `expected "host:port" (plain Redis), or url: ${REDIS_URL}, or cluster or sentinels (a list of "host:port"), got nothing`,
        path: at("addr"),
      });
    }
    if (!("sentinels" in redis)) {
      for (const key of SENTINEL_ONLY.filter((k) => k in redis)) {
        addIssue({ message: "only with sentinels", path: at(key) });
      }
    } else if (!("name" in redis)) {
      addIssue({ message: "expected the sentinels' master group name, got nothing", path: at("name") });
    }
    if ("shards" in redis && typeof redis.keyPrefix === "string" && /[{}]/.test(redis.keyPrefix)) {
      addIssue({
        message: "expected a key prefix without { or } with shards: the shard's hash tag follows it",
        path: at("keyPrefix"),
      });
    }
    if ("cluster" in redis) {
      if (!("shards" in redis)) {
        addIssue({
          message:
            "expected a number of shards (e.g. 16) with cluster, got nothing: every script's keys must share one slot",
          path: at("shards"),
        });
      }
      if ("db" in redis) addIssue({ message: "a Redis Cluster has database 0 only", path: at("db") });
    }
    if ("url" in redis && "tls" in redis) {
      addIssue({ message: "a url says TLS with rediss:// (or https://)", path: at("tls") });
    }
    if (!("url" in redis) && !("addr" in redis)) {
      for (const key of REST_ONLY.filter((k) => k in redis)) {
        addIssue({ message: `only for the REST API (an http(s):// url)`, path: at(key) });
      }
      return;
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
  v.transform((redis) => {
    const { url, addr, token, encoding, username, password, db, keyPrefix, timeout } = redis;
    const layout = redis.shards === undefined ? { keyPrefix } : { keyPrefix, shards: redis.shards };
    if (url !== undefined && isRest(url)) {
      return {
        transport: "rest" as const,
        url,
        token: token!,
        encoding: encoding ?? "base64",
        ...layout,
        timeout,
      };
    }
    if (redis.cluster) {
      return {
        transport: "cluster" as const,
        cluster: redis.cluster.map(node),
        tls: redis.tls ?? false,
        username,
        password: password ?? "",
        ...layout,
        timeout,
      };
    }
    if (redis.sentinels) {
      return {
        transport: "sentinel" as const,
        sentinels: redis.sentinels.map(node),
        name: redis.name!,
        sentinelPassword: redis.sentinelPassword ?? "",
        tls: redis.tls ?? false,
        username,
        password: password ?? "",
        db: db ?? 0,
        ...layout,
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
      tls: redis.tls ?? at.tls,
      username: username ?? at.username,
      password: password ?? at.password ?? "",
      db: db ?? at.db ?? 0,
      ...layout,
      timeout,
    };
  }),
);
