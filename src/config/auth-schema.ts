/** `auth` of config.yaml: none, JWT (a secret, a PEM public key or a JWKS URL) or API keys. */
import * as v from "valibot";
import { duration, expected, strict, text } from "./values.ts";

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

export const AuthSchema = v.pipe(
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
