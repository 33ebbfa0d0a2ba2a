import assert from "node:assert/strict";
import { test } from "node:test";
import {
  formatIp,
  forwardedFor,
  inCidr,
  parseCidr,
  parseIp,
  TrustedProxies,
} from "../../src/core/client-address.ts";

const ip = (text: string) => {
  const bytes = parseIp(text);
  assert.ok(bytes, text);
  return bytes;
};
const cidr = (text: string) => {
  const range = parseCidr(text);
  assert.ok(range, text);
  return range;
};

test("client address: IPv4 and IPv6 addresses parse, one spelling each", () => {
  assert.equal(formatIp(ip("10.0.0.1")), "10.0.0.1");
  assert.equal(formatIp(ip("2001:DB8:0:0:0:0:0:1")), "2001:db8::1");
  assert.equal(formatIp(ip("2001:db8::0:1")), "2001:db8::1");
  assert.equal(formatIp(ip("::")), "::");
  assert.equal(formatIp(ip("::1")), "::1");
  assert.equal(formatIp(ip("1::")), "1::");
  // The first of two equal zero runs is the one shortened; a single zero group is not.
  assert.equal(formatIp(ip("2001:0:0:1:0:0:0:1")), "2001:0:0:1::1");
  assert.equal(formatIp(ip("2001:db8:0:1:1:1:1:1")), "2001:db8:0:1:1:1:1:1");
  // An IPv4-mapped IPv6 peer (a dual-stack socket's view of an IPv4 client) is that IPv4 address.
  assert.equal(formatIp(ip("::ffff:127.0.0.2")), "127.0.0.2");
  assert.equal(formatIp(ip("::ffff:7f00:2")), "127.0.0.2");
  assert.equal(formatIp(ip("fe80::1%eth0")), "fe80::1");
  for (
    const bad of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "256.0.0.1",
      "01.2.3.4",
      "1.2.3.4 ",
      "a.b.c.d",
      "1:2:3:4:5:6:7:8:9",
      "1::2::3",
      "12345::",
      "1.2.3.4::",
      ":::",
      "::g",
      "unknown",
      "_hidden",
    ]
  ) {
    assert.equal(parseIp(bad), undefined, bad);
  }
});

test("client address: CIDRs match the addresses in their range only", () => {
  assert.ok(inCidr(ip("10.200.3.4"), cidr("10.0.0.0/8")));
  assert.ok(!inCidr(ip("11.0.0.1"), cidr("10.0.0.0/8")));
  assert.ok(inCidr(ip("192.168.1.127"), cidr("192.168.1.64/26")));
  assert.ok(!inCidr(ip("192.168.1.128"), cidr("192.168.1.64/26")));
  assert.ok(inCidr(ip("127.0.0.1"), cidr("127.0.0.1")));
  assert.ok(!inCidr(ip("127.0.0.2"), cidr("127.0.0.1")));
  assert.ok(inCidr(ip("1.2.3.4"), cidr("0.0.0.0/0")));
  assert.ok(inCidr(ip("2001:db8:ffff::1"), cidr("2001:db8::/32")));
  assert.ok(!inCidr(ip("2001:db9::1"), cidr("2001:db8::/32")));
  assert.ok(inCidr(ip("fd00::1:2"), cidr("fd00::/127")) === false);
  assert.ok(inCidr(ip("fd00::1"), cidr("fd00::/127")));
  // IPv4 and IPv6 never match each other, except through the IPv4-mapped form.
  assert.ok(!inCidr(ip("10.0.0.1"), cidr("::/0")));
  assert.ok(!inCidr(ip("::1"), cidr("0.0.0.0/0")));
  assert.ok(inCidr(ip("::ffff:10.1.1.1"), cidr("10.0.0.0/8")));
  assert.ok(inCidr(ip("10.1.1.1"), cidr("::ffff:10.0.0.0/104")));
  for (
    const bad of [
      "10.0.0.0/33",
      "10.0.0.1/8",
      "10.0.0.0/",
      "10.0.0.0/8/1",
      "10.0.0.0/-1",
      "::/129",
      "x/8",
      "",
    ]
  ) {
    assert.equal(parseCidr(bad), undefined, bad);
  }
});

test("client address: Forwarded (RFC 7239) elements give their for= values", () => {
  assert.deepEqual(forwardedFor('for="_gazonk"'), ["_gazonk"]);
  assert.deepEqual(forwardedFor('For="[2001:db8:cafe::17]:4711"'), ["[2001:db8:cafe::17]:4711"]);
  assert.deepEqual(forwardedFor("for=192.0.2.60;proto=http;by=203.0.113.43"), ["192.0.2.60"]);
  assert.deepEqual(forwardedFor("for=192.0.2.43, for=198.51.100.17"), ["192.0.2.43", "198.51.100.17"]);
  // A comma inside a quoted string does not split elements.
  assert.deepEqual(forwardedFor('for="a,b";proto=https, for=10.0.0.1'), ["a,b", "10.0.0.1"]);
  // Elements without a readable for=: undefined, each on its own.
  assert.deepEqual(forwardedFor("proto=https, for=10.0.0.1"), [undefined, "10.0.0.1"]);
  assert.deepEqual(forwardedFor("for, for=10.0.0.1"), [undefined, "10.0.0.1"]);
  assert.deepEqual(forwardedFor('for="10.0.0.1, for=10.0.0.2'), [undefined]);
  assert.deepEqual(forwardedFor("for=10.0.0.1;for=10.0.0.2"), [undefined]);
  assert.deepEqual(forwardedFor("for=[::1]"), [undefined]);
});

test("client address: only a trusted peer's headers are read, right to left", () => {
  const proxies = new TrustedProxies(["10.0.0.0/8", "2001:db8::/32"]);
  const xff = (peer: string, header: string) => proxies.clientAddress(peer, { xForwardedFor: header });
  // An untrusted peer's headers are not believed: it cannot claim an address.
  assert.equal(xff("198.51.100.9", "203.0.113.5"), "198.51.100.9");
  assert.equal(proxies.clientAddress("198.51.100.9", { forwarded: "for=203.0.113.5" }), "198.51.100.9");
  // A trusted peer names the client; the proxies it went through are skipped.
  assert.equal(xff("10.0.0.1", "203.0.113.5"), "203.0.113.5");
  assert.equal(xff("10.0.0.1", "203.0.113.5, 10.9.9.9, 2001:db8::7"), "203.0.113.5");
  // What the client wrote to the left of the first untrusted hop does not count, garbage or not.
  assert.equal(xff("10.0.0.1", "1.1.1.1, garbage, 203.0.113.5"), "203.0.113.5");
  assert.equal(xff("10.0.0.1", "1.1.1.1, 203.0.113.5, 10.2.2.2"), "203.0.113.5");
  // Every hop trusted: the left-most is the client.
  assert.equal(xff("10.0.0.1", "10.3.3.3, 10.2.2.2"), "10.3.3.3");
  // No header: the peer.
  assert.equal(proxies.clientAddress("10.0.0.1", {}), "10.0.0.1");
  // Hops with ports, IPv6 in brackets, IPv4-mapped forms; every address in one spelling.
  assert.equal(xff("10.0.0.1", "203.0.113.5:5555"), "203.0.113.5");
  assert.equal(xff("10.0.0.1", "[2001:DB9::1]:443"), "2001:db9::1");
  assert.equal(xff("::ffff:10.0.0.1", "::ffff:203.0.113.5"), "203.0.113.5");
  assert.equal(proxies.clientAddress("::ffff:198.51.100.9", {}), "198.51.100.9");
  // Forwarded wins over X-Forwarded-For when both are there.
  assert.equal(
    proxies.clientAddress("10.0.0.1", {
      forwarded: 'for=192.0.2.60;proto=https, for="[2001:db8::5]"',
      xForwardedFor: "203.0.113.5",
    }),
    "192.0.2.60",
  );
  assert.equal(proxies.clientAddress(undefined, { xForwardedFor: "203.0.113.5" }), undefined);
});

test("client address: a header unreadable where it matters is ignored, and the peer used", () => {
  const proxies = new TrustedProxies(["10.0.0.0/8"]);
  const xff = (header: string) => proxies.clientAddress("10.0.0.1", { xForwardedFor: header });
  const fwd = (header: string) => proxies.clientAddress("10.0.0.1", { forwarded: header });
  for (
    const bad of [
      "",
      "garbage",
      "203.0.113.5, garbage",
      "unknown",
      "203.0.113.5,",
      "999.1.1.1",
      "1.2.3.4:99999",
    ]
  ) {
    assert.equal(xff(bad), "10.0.0.1", bad);
  }
  for (
    const bad of [
      "",
      "for=unknown",
      'for="_hidden"',
      "proto=https",
      "for=203.0.113.5, proto=https",
      'for="203.0.113.5',
      "for=203.0.113.5;for=203.0.113.6",
      "for=[2001:db8::1]",
      "for==",
    ]
  ) {
    assert.equal(fwd(bad), "10.0.0.1", bad);
  }
  // No trusted proxies at all: every peer is the client, whatever it sends.
  assert.equal(new TrustedProxies([]).clientAddress("10.0.0.1", { xForwardedFor: "1.2.3.4" }), "10.0.0.1");
  assert.throws(() => new TrustedProxies(["10.0.0.0/33"]), /not a CIDR/);
});
