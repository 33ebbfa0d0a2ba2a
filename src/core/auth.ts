/**
 * The Authenticator port: who a request is, from its credential (DESIGN.md section 6).
 */

/** An authenticated caller. */
export interface Principal {
  /** Who: sessions belong to their subject (another subject can neither resume nor take over). */
  subject: string;
  /** The credential's claims (JWT payload), for the client-ID claim and ACLs. */
  claims: Record<string, unknown>;
  /** When the credential stops being valid, in ms since the epoch (a live connection closes then). */
  expiresAt?: number;
}

export interface Authenticator {
  /** Whether a request without a credential is refused. */
  readonly required: boolean;
  /**
   * The principal a credential stands for, or undefined when authentication is off. Rejects with
   * GatewayError UNAUTHENTICATED (HTTP 401) for a missing, malformed, forged, expired or
   * otherwise unacceptable credential.
   */
  authenticate(credential: string | undefined): Promise<Principal | undefined>;
}
