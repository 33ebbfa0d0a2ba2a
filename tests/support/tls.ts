/**
 * Certificates for TLS tests, made with openssl in a test's own folder: a CA, and server
 * certificates it signed for 127.0.0.1 and localhost (rustls, under Deno, refuses a self-signed
 * certificate that is its own CA as a server's). And what a TLS server serves, seen by openssl.
 */
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { request as httpsRequest } from "node:https";
import { Readable } from "node:stream";

export interface Leaf {
  cert: string;
  key: string;
  /** The certificate's serial number, upper-case hex as openssl prints it. */
  serial: string;
}

/**
 * Makes `ca.crt`/`ca.key` in `dir`; `leaf(name)` makes `<name>.crt`/`<name>.key` signed by it,
 * with a random serial or the hex `serial` given.
 */
export function testCa(
  dir: string,
): { caFile: string; ca: string; leaf(name: string, serial?: string): Leaf } {
  const caFile = join(dir, "ca.crt");
  const caKey = join(dir, "ca.key");
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"], [
    "-keyout",
    caKey,
    "-out",
    caFile,
    "-days",
    "2",
    "-subj",
    "/CN=mediation test CA",
  ]);
  const ext = join(dir, "leaf.ext");
  execFileSync("sh", [
    "-c",
    `printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > "${ext}"`,
  ]);
  return {
    caFile,
    ca: readFileSync(caFile, "utf8"),
    leaf(name, serial) {
      const cert = join(dir, `${name}.crt`);
      const key = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"], [
        "-keyout",
        key,
        "-out",
        csr,
        "-subj",
        `/CN=${name}`,
      ]);
      const serialArgs = serial ? ["-set_serial", `0x${serial}`] : ["-CAcreateserial"];
      openssl(["x509", "-req", "-in", csr, "-CA", caFile, "-CAkey", caKey, ...serialArgs], [
        "-days",
        "2",
        "-extfile",
        ext,
        "-out",
        cert,
      ]);
      const printed = execFileSync("openssl", ["x509", "-in", cert, "-noout", "-serial"], {
        encoding: "utf8",
      })
        .trim().replace(/^serial=/, "");
      return { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8"), serial: printed };
    },
  };
}

function openssl(command: string[], args: string[]): void {
  execFileSync("openssl", [...command, ...args], { stdio: ["ignore", "ignore", "pipe"] });
}

/**
 * The serial number of the certificate 127.0.0.1:`port` serves, after openssl verified it
 * against `caFile` (a certificate it does not trust is an error). Not blocking: the server may
 * be in this process.
 */
export function servedSerial(port: number, caFile: string): Promise<string> {
  const script = `echo | openssl s_client -connect 127.0.0.1:${port} -CAfile "${caFile}" ` +
    `-verify_return_error -verify_ip 127.0.0.1 2>/dev/null | openssl x509 -noout -serial`;
  return new Promise((resolve, reject) => {
    const child = spawn("sh", ["-c", script]);
    let out = "";
    child.stdout.on("data", (chunk) => out += chunk);
    child.on("close", (code) => {
      const serial = out.trim().match(/^serial=([0-9A-F]+)$/)?.[1];
      if (serial) resolve(serial);
      else reject(new Error(`openssl s_client: no verified certificate on port ${port} (exit ${code})`));
    });
  });
}

/** fetch that trusts `ca` (Deno: an HTTP client of its own; Bun: a `tls` option). */
export function trustingFetch(url: string, ca: string, init: RequestInit = {}): Promise<Response> {
  // Node's fetch (undici's) takes a CA only through an undici dispatcher, which Node does not
  // export: node:https takes it, and its answer is made a Response (the body streamed).
  if (!("Deno" in globalThis) && !("Bun" in globalThis)) {
    return new Promise((resolve, reject) => {
      const headers = Object.fromEntries(new Headers(init.headers).entries());
      const request = httpsRequest(url, { method: init.method ?? "GET", headers, ca }, (answer) => {
        const head = new Headers();
        for (const [name, value] of Object.entries(answer.headers)) {
          for (const one of [value ?? []].flat()) head.append(name, one);
        }
        resolve(
          new Response(Readable.toWeb(answer) as ReadableStream, {
            status: answer.statusCode,
            headers: head,
          }),
        );
      });
      request.on("error", reject);
      request.end(typeof init.body === "string" ? init.body : undefined);
    });
  }
  const extra = "Deno" in globalThis ? { client: Deno.createHttpClient({ caCerts: [ca] }) } : { tls: { ca } };
  return fetch(url, { ...init, ...extra } as RequestInit);
}
