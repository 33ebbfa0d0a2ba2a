/**
 * The client library keeps its own copy of the gateway's close codes and of which error codes are
 * temporary (it runs in browsers, without the server's modules): the copies must agree.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ClientError, CloseCode as ClientCloseCode } from "../../client/mod.js";
import { CloseCode, GatewayError } from "../../src/core/errors.ts";
import type { ErrorCode } from "../../src/core/errors.ts";

test("client tables: every gateway close code is the client's, with the same number", () => {
  for (const [name, code] of Object.entries(CloseCode)) {
    assert.equal((ClientCloseCode as Record<string, number>)[name], code, name);
  }
});

test("client tables: without the gateway's word, a code is temporary for the client as for the gateway", () => {
  // A Record, so the compiler says when a code is added and not listed here.
  const all: Record<ErrorCode, true> = {
    BAD_FRAME: true,
    BAD_REQUEST: true,
    BAD_CLIENT_ID: true,
    UNAUTHENTICATED: true,
    UNKNOWN_ENDPOINT: true,
    FORBIDDEN: true,
    TOO_LARGE: true,
    RATE_LIMITED: true,
    UPSTREAM_UNAVAILABLE: true,
    OUTCOME_UNKNOWN: true,
    TAKEN_OVER: true,
    STORE_UNAVAILABLE: true,
    INTERNAL: true,
  };
  const codes = Object.keys(all) as ErrorCode[];

  for (const code of codes) {
    assert.equal(new ClientError(code, "").temporary, new GatewayError(code, "").temporary, code);
  }
  // The gateway's word wins: an unreadable stored session is STORE_UNAVAILABLE and permanent.
  assert.equal(new ClientError("STORE_UNAVAILABLE", "", { temporary: false }).temporary, false);
});
