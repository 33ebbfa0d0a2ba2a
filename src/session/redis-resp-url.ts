/**
 * What a `redis://` / `rediss://` URL says to the RESP transport (redis-resp.ts). Apart from it so
 * the config schema reads URLs without loading the Redis client.
 */

/** host, port, credentials and db of a redis:// url (what it leaves out is undefined). */
export function respUrl(text: string) {
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
