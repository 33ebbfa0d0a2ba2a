/**
 * What a listener may have besides its address: TLS (`server.tls`), and the proxies whose
 * forwarding headers it believes (`server.trusted_proxies`). A mapping of its own so another
 * listener (the admin API's) can take the same `tls:` keys.
 */
import * as v from "valibot";
import { parseCidr } from "../core/client-address.ts";
import { expected, strict, text } from "./values.ts";

/**
 * `tls: { cert, key }`: PEM files (the certificate chain, the private key) read at start and
 * again on SIGHUP. Paths, not contents, so the key is never part of the config's text.
 */
export const TlsSchema = v.optional(
  strict({
    cert: text("a path to a PEM certificate file"),
    key: text("a path to a PEM private key file"),
  }),
);

export type TlsConfig = NonNullable<v.InferOutput<typeof TlsSchema>>;

const CIDR = 'a CIDR like "10.0.0.0/8" or "2001:db8::/32", or an address';

/** Peers whose `Forwarded` / `X-Forwarded-For` headers are believed (docs/operations.md). */
export const TrustedProxiesSchema = v.optional(
  v.array(
    v.pipe(v.string(expected(CIDR)), v.check((range) => parseCidr(range) !== undefined, expected(CIDR))),
    expected("a list of CIDRs"),
  ),
  [],
);
