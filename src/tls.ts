/**
 * The certificate and key of a listener with `tls:` (config/listener-schema.ts): read from their
 * PEM files and checked before any runtime sees them, at start (a problem stops start-up) and on
 * SIGHUP (a problem keeps the certificate being served). Outside src/core: it reads files.
 *
 * Nothing of the key is ever put in a message: problems name the file and what is wrong with it.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type { TlsConfig } from "./config/listener-schema.ts";

/** What a runtime's TLS listener takes, and what the logs may say about it. */
export interface TlsMaterial {
  /** The certificate chain, PEM. */
  readonly cert: string;
  /** The private key, PEM. A secret: never logged. */
  readonly key: string;
  /** The leaf certificate, for the log: subject, serial, expiry and SHA-256 fingerprint. */
  readonly summary: string;
}

/**
 * Reads and checks `tls`: both files readable, the certificate a PEM certificate, the key an
 * unencrypted PEM private key, and the key the certificate's. `where` names the config key in
 * messages (`server.tls`).
 *
 * @example
 * const material = loadTls({ cert: "/etc/gateway/tls.crt", key: "/etc/gateway/tls.key" }, "server.tls");
 */
export function loadTls(tls: TlsConfig, where: string): TlsMaterial {
  const cert = readPem(tls.cert, `${where}.cert`);
  const key = readPem(tls.key, `${where}.key`);
  let leaf: X509Certificate;
  try {
    if (!cert.includes("-----BEGIN CERTIFICATE-----")) throw new Error("no PEM certificate");
    leaf = new X509Certificate(cert);
  } catch {
    throw new Error(`${where}.cert: ${tls.cert} holds no readable PEM certificate`);
  }
  if (key.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----") || /Proc-Type: 4,ENCRYPTED/.test(key)) {
    throw new Error(`${where}.key: ${tls.key} is encrypted; give the key without a passphrase`);
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) throw new Error("no PEM key");
    privateKey = createPrivateKey(key);
  } catch {
    throw new Error(`${where}.key: ${tls.key} holds no readable PEM private key`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new Error(`${where}: the key in ${tls.key} is not the key of the certificate in ${tls.cert}`);
  }
  return { cert, key, summary: describe(leaf) };
}

/**
 * `subject="CN=gw.example" serial=1A2B expires="..." sha256=AB:CD:...`: public facts only. The
 * serial is written whole bytes, as `openssl x509 -serial` prints it (`serialNumber` drops a
 * leading zero digit), so an operator can grep for what openssl shows.
 */
function describe(leaf: X509Certificate): string {
  const subject = leaf.subject.replaceAll("\n", ", ");
  const serial = leaf.serialNumber.length % 2 ? `0${leaf.serialNumber}` : leaf.serialNumber;
  return `subject="${subject}" serial=${serial} expires="${leaf.validTo}" sha256=${leaf.fingerprint256}`;
}

function readPem(path: string, where: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const problem = code === "ENOENT"
      ? "no such file"
      : code === "EACCES"
      ? "permission denied"
      : code === "EISDIR"
      ? "a directory, not a file"
      : "cannot be read";
    throw new Error(`${where}: ${path}: ${problem}`);
  }
}
