/**
 * The authenticators of `auth.type`: none, jwt (HS secret, a PEM public key, or a JWKS URL with
 * caching and key rotation; on hono's JWT utilities), and api_key.
 */
import { decode, verify } from "hono/jwt";
import { GatewayError } from "../core/errors.ts";
import type { Authenticator, Principal } from "../core/auth.ts";
import type { Scheduler } from "../core/scheduler.ts";
import type { Config } from "../config/schema.ts";

type AuthConfig = Config["auth"];
type JwtConfig = NonNullable<AuthConfig["jwt"]>;

/** Builds the configured authenticator. */
export function createAuthenticator(config: AuthConfig, scheduler: Scheduler): Authenticator {
  switch (config.type) {
    case "none":
      return { required: false, authenticate: () => Promise.resolve(undefined) };
    case "api_key":
      return new ApiKeyAuthenticator(config.api_keys ?? []);
    case "jwt":
      return new JwtAuthenticator(config.jwt!, scheduler);
  }
}

const unauthenticated = (message: string) => new GatewayError("UNAUTHENTICATED", message);

/** Keys from config (secrets from ${ENV}), each standing for its subject. */
class ApiKeyAuthenticator implements Authenticator {
  readonly required = true;
  #keys: Map<string, string>;

  constructor(keys: Array<{ key: string; subject: string }>) {
    this.#keys = new Map(keys.map((k) => [k.key, k.subject]));
  }

  authenticate(credential: string | undefined): Promise<Principal> {
    if (!credential) return Promise.reject(unauthenticated("an API key is required"));
    const subject = this.#keys.get(credential);
    if (subject === undefined) return Promise.reject(unauthenticated("unknown API key"));
    return Promise.resolve({ subject, claims: { sub: subject } });
  }
}

interface Jwk extends JsonWebKey {
  kid?: string;
  alg?: string;
}

/** JSON Web Tokens: signature, issuer, audience, expiry and not-before checked. */
class JwtAuthenticator implements Authenticator {
  readonly required = true;
  #keys?: { fetched: number; keys: Jwk[] };
  #fetching?: Promise<Jwk[]>;

  private readonly config: JwtConfig;
  private readonly scheduler: Scheduler;
  constructor(config: JwtConfig, scheduler: Scheduler) {
    this.config = config;
    this.scheduler = scheduler;
  }

  async authenticate(credential: string | undefined): Promise<Principal> {
    if (!credential) throw unauthenticated("a token is required (Authorization: Bearer, or ?token=)");
    let header: { alg?: string; kid?: string };
    try {
      header = decode(credential).header as { alg?: string; kid?: string };
    } catch {
      throw unauthenticated("malformed token");
    }
    const alg = header.alg ?? "";
    if (!this.#algorithms().includes(alg)) {
      throw unauthenticated(`token algorithm ${alg || "(none)"} is not accepted`);
    }
    const key = await this.#key(header.kid, alg);
    let payload: Record<string, unknown>;
    try {
      payload = await verify(credential, key as never, {
        alg: alg as "HS256",
        ...(this.config.issuer ? { iss: this.config.issuer } : {}),
        ...(this.config.audience ? { aud: this.config.audience } : {}),
      }) as Record<string, unknown>;
    } catch (error) {
      throw unauthenticated(`invalid token: ${this.#reason(error)}`);
    }
    const subject = payload[this.config.subject_claim];
    if (typeof subject !== "string" || subject === "") {
      throw unauthenticated(`token has no "${this.config.subject_claim}" claim`);
    }
    const exp = payload.exp;
    return { subject, claims: payload, ...(typeof exp === "number" ? { expiresAt: exp * 1000 } : {}) };
  }

  /**
   * What was wrong with a token, by the class of hono's error: its messages quote the token
   * itself (`token (eyJ...) expired`), and a credential is never echoed, to the client or the log.
   */
  #reason(error: unknown): string {
    switch ((error as Error | undefined)?.name) {
      case "JwtTokenExpired":
        return "token expired";
      case "JwtTokenNotBefore":
        return "token not valid yet (nbf)";
      case "JwtTokenIssuedAt":
        return "token issued in the future (iat)";
      case "JwtTokenSignatureMismatched":
        return "signature does not match";
      case "JwtTokenIssuer":
        return `issuer is not ${JSON.stringify(this.config.issuer)}`;
      case "JwtTokenAudience":
      case "JwtPayloadRequiresAud":
        return `audience is not ${JSON.stringify(this.config.audience)}`;
      case "JwtHeaderInvalid":
        return "malformed header";
      case "JwtAlgorithmMismatch":
      case "JwtAlgorithmNotAllowed":
      case "JwtAlgorithmNotImplemented":
      case "JwtSymmetricAlgorithmNotAllowed":
        return "algorithm not accepted";
      case "JwtTokenInvalid":
        return "malformed token";
      default:
        return "token could not be verified";
    }
  }

  #algorithms(): string[] {
    if (this.config.algorithms) return this.config.algorithms;
    if (this.config.secret !== undefined) return ["HS256"];
    if (this.config.public_key !== undefined) return ["RS256"];
    return ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];
  }

  /** The key to check a token with: the secret, the PEM, or the JWKS key of its `kid`. */
  async #key(kid: string | undefined, alg: string): Promise<string | Jwk> {
    if (this.config.secret !== undefined) return this.config.secret;
    if (this.config.public_key !== undefined) return this.config.public_key;
    let keys = await this.#jwks(false);
    let key = keys.find((k) => k.kid === kid);
    // An unknown kid may be a rotated-in key: fetched again once.
    if (!key) key = (keys = await this.#jwks(true)).find((k) => k.kid === kid);
    if (!key) throw unauthenticated(`no key ${JSON.stringify(kid ?? null)} in the JWKS`);
    if (key.alg && key.alg !== alg) throw unauthenticated(`key ${kid} is for ${key.alg}, not ${alg}`);
    return key;
  }

  /** The JWKS keys, cached for jwks_cache; `fresh` refetches unless fetched within REFETCH_MIN_MS. */
  async #jwks(fresh: boolean): Promise<Jwk[]> {
    const now = this.scheduler.now();
    const cached = this.#keys;
    const age = cached ? now - cached.fetched : Infinity;
    if (cached && age < this.config.jwks_cache && (!fresh || age < REFETCH_MIN_MS)) return cached.keys;
    this.#fetching ??= this.#fetch().finally(() => (this.#fetching = undefined));
    return await this.#fetching;
  }

  async #fetch(): Promise<Jwk[]> {
    const url = this.config.jwks_url!;
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json() as { keys?: unknown };
      if (!Array.isArray(body.keys)) throw new Error('no "keys" array');
      this.#keys = { fetched: this.scheduler.now(), keys: body.keys as Jwk[] };
      return this.#keys.keys;
    } catch (error) {
      // The keys held so far keep working while the JWKS endpoint is down.
      if (this.#keys) return this.#keys.keys;
      throw new GatewayError("UPSTREAM_UNAVAILABLE", `JWKS ${url} unreachable: ${(error as Error).message}`);
    }
  }
}

/** An unknown `kid` refetches the JWKS at most this often, in ms (so forged kids cannot flood it). */
const REFETCH_MIN_MS = 1000;
