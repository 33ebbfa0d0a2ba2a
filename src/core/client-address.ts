/**
 * Whose address a request is: the TCP peer's, unless the peer is a proxy the operator trusts
 * (`server.trusted_proxies`), in which case its `Forwarded` (RFC 7239) or `X-Forwarded-For`
 * header names the client. Runtime-free: addresses are parsed here, not by the runtime.
 *
 * The chain a header carries is read from the right: each trusted proxy appends the address it
 * got the request from, so the right-most address that is not a trusted proxy is the client;
 * everything to its left was written by that client and is not believed. A header that cannot be
 * read where it matters is ignored, and the peer's address is used.
 */

/** An address range: the first `bits` bits of `bytes` (4 bytes for IPv4, 16 for IPv6). */
export interface Cidr {
  readonly bytes: Uint8Array;
  readonly bits: number;
}

/** The bytes of an IPv4 or IPv6 address (an IPv4-mapped IPv6 address as its IPv4), or undefined. */
export function parseIp(text: string): Uint8Array | undefined {
  const v4 = parseIpv4(text);
  if (v4) return v4;
  const v6 = parseIpv6(text);
  if (!v6) return undefined;
  return isV4Mapped(v6) ? v6.slice(12) : v6;
}

/**
 * `10.0.0.0/8`, `2001:db8::/32`, or a single address (`/32` or `/128` implied). Undefined when
 * it is none of them, or has host bits set past its prefix (`10.0.0.1/8`, most likely a typo).
 *
 * @example
 * parseCidr("10.0.0.0/8"); // { bytes: Uint8Array [10, 0, 0, 0], bits: 8 }
 */
export function parseCidr(text: string): Cidr | undefined {
  const [address, prefix, extra] = text.trim().split("/");
  if (extra !== undefined) return undefined;
  const bytes = parseIpv4(address) ?? parseIpv6(address);
  if (!bytes) return undefined;
  const max = bytes.length * 8;
  if (prefix !== undefined && !/^\d{1,3}$/.test(prefix)) return undefined;
  const bits = prefix === undefined ? max : Number(prefix);
  if (bits > max) return undefined;
  for (let bit = bits; bit < max; bit++) {
    if (bytes[bit >> 3] & (0x80 >> (bit & 7))) return undefined;
  }
  // `::ffff:10.0.0.0/104` is the IPv4 range 10.0.0.0/8: peers are compared as IPv4.
  if (bytes.length === 16 && bits >= 96 && isV4Mapped(bytes)) {
    return { bytes: bytes.slice(12), bits: bits - 96 };
  }
  return { bytes, bits };
}

/** Whether `address` (bytes from parseIp) is in `cidr`. */
export function inCidr(address: Uint8Array, cidr: Cidr): boolean {
  if (address.length !== cidr.bytes.length) return false;
  for (let bit = 0; bit < cidr.bits; bit += 8) {
    const left = Math.min(8, cidr.bits - bit);
    const mask = (0xff << (8 - left)) & 0xff;
    if ((address[bit >> 3] & mask) !== (cidr.bytes[bit >> 3] & mask)) return false;
  }
  return true;
}

/** An address as text, one spelling per address: `10.0.0.1`, `2001:db8::1` (RFC 5952). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  // The longest run of two or more zero groups (the first of equals) becomes "::".
  let best = -1, bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let end = i;
    while (end < 8 && groups[end] === 0) end++;
    if (end - i > bestLength) [best, bestLength] = [i, end - i];
    i = end;
  }
  const hex = (from: number, to: number) => groups.slice(from, to).map((g) => g.toString(16)).join(":");
  return best < 0 ? hex(0, 8) : `${hex(0, best)}::${hex(best + bestLength, 8)}`;
}

/** The headers a proxy may name the client in. */
export interface ForwardingHeaders {
  forwarded?: string | null;
  xForwardedFor?: string | null;
}

/**
 * Decides whose address a request is, from the peers in `server.trusted_proxies`.
 *
 * @example
 * const proxies = new TrustedProxies(["10.0.0.0/8"]);
 * proxies.clientAddress("10.1.2.3", { xForwardedFor: "198.51.100.7, 10.0.0.9" }); // "198.51.100.7"
 * proxies.clientAddress("192.0.2.1", { xForwardedFor: "198.51.100.7" }); // "192.0.2.1": not a proxy
 */
export class TrustedProxies {
  readonly #ranges: Cidr[];

  /** `ranges` are valid CIDRs (the config schema checked them); an invalid one throws. */
  constructor(ranges: readonly string[]) {
    this.#ranges = ranges.map((range) => {
      const cidr = parseCidr(range);
      if (!cidr) throw new Error(`not a CIDR: ${range}`);
      return cidr;
    });
  }

  /** Whether the peer at `address` is a trusted proxy. */
  trusts(address: string): boolean {
    const bytes = parseIp(address);
    return bytes !== undefined && this.#trusts(bytes);
  }

  /**
   * The client's address: the peer's (normalised), or, from a trusted peer, the right-most
   * address of its `Forwarded` header (else its `X-Forwarded-For`) that is not a trusted proxy
   * (the left-most one when all are). Undefined only when the runtime did not tell the peer.
   */
  clientAddress(peer: string | undefined, headers: ForwardingHeaders): string | undefined {
    const peerBytes = peer === undefined ? undefined : parseIp(peer);
    if (!peerBytes) return peer;
    const own = formatIp(peerBytes);
    if (this.#ranges.length === 0 || !this.#trusts(peerBytes)) return own;
    const chain = headers.forwarded != null
      ? forwardedFor(headers.forwarded)
      : headers.xForwardedFor != null
      ? splitList(headers.xForwardedFor)
      : [];
    let client: Uint8Array | undefined;
    for (let i = chain.length - 1; i >= 0; i--) {
      const hop = chain[i] === undefined ? undefined : parseHop(chain[i]!);
      // Unreadable where it matters (this hop was written by a proxy we trust): believe none of it.
      if (!hop) return own;
      client = hop;
      if (!this.#trusts(hop)) break;
    }
    return client ? formatIp(client) : own;
  }

  #trusts(bytes: Uint8Array): boolean {
    return this.#ranges.some((cidr) => inCidr(bytes, cidr));
  }
}

/** `a, b , c` -> ["a", "b", "c"]. */
function splitList(header: string): string[] {
  return header.split(",").map((part) => part.trim());
}

/**
 * The `for=` value of every element of a `Forwarded` header, in order; undefined for an element
 * without a readable one. Elements split on commas outside quoted strings.
 */
export function forwardedFor(header: string): (string | undefined)[] {
  const elements: string[] = [];
  let current = "", quoted = false;
  for (let i = 0; i < header.length; i++) {
    const char = header[i];
    if (quoted && char === "\\") {
      current += char + (header[++i] ?? "");
      continue;
    }
    if (char === '"') quoted = !quoted;
    if (char === "," && !quoted) {
      elements.push(current);
      current = "";
    } else current += char;
  }
  elements.push(current);
  return elements.map(forValue);
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The `for` parameter of one element (`for=192.0.2.60;proto=http`), unquoted. */
function forValue(element: string): string | undefined {
  let found: string | undefined;
  for (const pair of element.split(";")) {
    const trimmed = pair.trim();
    if (trimmed === "") continue;
    const equals = trimmed.indexOf("=");
    if (equals <= 0) return undefined;
    const name = trimmed.slice(0, equals).trim().toLowerCase();
    let value = trimmed.slice(equals + 1).trim();
    if (value.startsWith('"')) {
      if (value.length < 2 || !value.endsWith('"')) return undefined;
      value = value.slice(1, -1).replace(/\\(.)/g, "$1");
    } else if (!TOKEN.test(value)) return undefined;
    if (name === "for") {
      if (found !== undefined) return undefined;
      found = value;
    }
  }
  return found;
}

/**
 * One hop's address: `192.0.2.43`, `192.0.2.43:47011`, `2001:db8::1`, `[2001:db8::1]:4711`.
 * Undefined for anything else (`unknown`, an obfuscated `_name`, garbage).
 */
function parseHop(text: string): Uint8Array | undefined {
  const withPort = text.match(/^\[([^\]]+)\](?::(\d{1,5}))?$/) ??
    text.match(/^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/);
  if (!withPort) return parseIp(text);
  return withPort[2] !== undefined && Number(withPort[2]) > 65535 ? undefined : parseIp(withPort[1]);
}

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    // No leading zeros: "010" reads as octal to some tools, as decimal to others.
    if (!/^(0|[1-9]\d{0,2})$/.test(parts[i])) return undefined;
    const n = Number(parts[i]);
    if (n > 255) return undefined;
    bytes[i] = n;
  }
  return bytes;
}

function parseIpv6(text: string): Uint8Array | undefined {
  // A zone (`fe80::1%eth0`) says which interface, not which host: it is dropped.
  const address = text.replace(/%[0-9A-Za-z._~-]+$/, "");
  if (!/^[0-9A-Fa-f:.]+$/.test(address) || !address.includes(":")) return undefined;
  const halves = address.split("::");
  if (halves.length > 2) return undefined;
  const groups = (half: string): number[] | undefined => {
    if (half === "") return [];
    const out: number[] = [];
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (i === parts.length - 1 && part.includes(".")) {
        const v4 = parseIpv4(part);
        if (!v4) return undefined;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9A-Fa-f]{1,4}$/.test(part)) out.push(parseInt(part, 16));
      else return undefined;
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return undefined;
  // An embedded IPv4 may only end the address.
  if (halves.length === 2 && halves[0].includes(".")) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array(halves.length === 2 ? missing : 0).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[i * 2] = group >> 8;
    bytes[i * 2 + 1] = group & 0xff;
  });
  return bytes;
}

function isV4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}
