/**
 * The client library keeps its own copy of the gateway's tables (it runs in browsers, without the
 * server's modules): close codes and whether a client reconnects on each, which error codes are
 * temporary, the error codes and the frames of the wire protocol. The copies must agree: at run
 * time where the copy is a value, through the compiler where it is a type (`deno test` checks
 * types, so a type that drifts fails this file there).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ClientError,
  CLOSE_CODES as CLIENT_CLOSE_CODES,
  CloseCode as ClientCloseCode,
  connect,
} from "../../client/mod.js";
import type * as Client from "../../client/mod.js";
import { CLOSE_CODES, CloseCode, ERROR_CODES, GatewayError } from "../../src/core/errors.ts";
import type { ErrorCode } from "../../src/core/errors.ts";
import type { ClientFrame, ServerFrame } from "../../src/core/protocol.ts";
import { VirtualClock } from "../../src/core/virtual-clock.ts";

/** True only when A and B are the same type (not merely assignable both ways: optional keys count). */
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;

/** What decides a client's behaviour in a close-code entry (the meaning's text is a literal type on the server). */
type Decisions<T> = { [N in keyof T]: T[N] extends { code: infer C; reconnect: infer R } ? [C, R] : never };

test("client tables: every gateway close code is the client's, with the same number", () => {
  for (const [name, code] of Object.entries(CloseCode)) {
    assert.equal((ClientCloseCode as Record<string, number>)[name], code, name);
  }
  // Both ways: the client names no code the gateway lacks, but ABNORMAL (the platform's 1006).
  const { ABNORMAL, ...sent } = ClientCloseCode;
  assert.equal(ABNORMAL, 1006);
  assert.deepEqual(sent, CloseCode);
});

test("client tables: the close code table (code, reconnect, meaning) is the gateway's, entry by entry", () => {
  const { ABNORMAL, ...sent } = CLIENT_CLOSE_CODES;
  assert.deepEqual(sent, CLOSE_CODES);
  assert.equal(ABNORMAL.reconnect, true);
  // mod.d.ts's declaration of the table says the same codes and decisions.
  const declared: Same<
    Decisions<Omit<typeof Client.CLOSE_CODES, "ABNORMAL">>,
    Decisions<typeof CLOSE_CODES>
  > = true;
  assert.equal(declared, true);
  // Which codes stop a client, spelled out for the docs' table.
  assert.deepEqual(
    Object.values(CLOSE_CODES).filter((c) => !c.reconnect).map((c) => c.code),
    [4401, 4404, 4409, 4500],
  );
});

test("client tables: the client library reconnects on exactly the close codes the table says", async () => {
  for (const [name, { code, reconnect }] of Object.entries(CLOSE_CODES)) {
    const sockets: FakeSocket[] = [];
    class FakeSocket {
      readyState = 0;
      onmessage: ((event: { data: string }) => void) | null = null;
      onclose: ((event: { code: number; reason: string }) => void) | null = null;
      readonly url: string;
      constructor(url: string) {
        this.url = url;
        sockets.push(this);
      }
      send() {}
      close() {
        this.readyState = 3;
      }
    }
    const clock = new VirtualClock();
    const client = connect({
      url: "ws://gateway.test/ws",
      clientId: "tables",
      timers: clock,
      random: () => 0,
      WebSocket: FakeSocket as unknown as typeof WebSocket,
    });
    const retries: boolean[] = [];
    client.on("disconnected", (d) => retries.push(d.willRetry));
    client.on("error", () => {});
    await clock.advance(0);
    const ws = sockets[0];
    assert.ok(ws, name);
    ws.readyState = 1;
    ws.onmessage?.({
      data: JSON.stringify(
        {
          type: "welcome",
          clientId: "tables",
          resumed: false,
          recovered: true,
          ack: true,
          endpoints: [],
        } satisfies ServerFrame,
      ),
    });
    assert.equal(client.state, "connected", name);
    ws.readyState = 3;
    ws.onclose?.({ code, reason: name === "PERMANENT_ERROR" ? "STORE_UNAVAILABLE: unreadable" : "" });
    await clock.advance(0);
    assert.deepEqual(retries, [reconnect], `${name} (${code})`);
    // Read again: the assertion above narrowed `client.state` for the compiler.
    const state: string = (client as { state: string }).state;
    assert.equal(state === "closed", !reconnect, `${name} (${code}): ${state}`);
    await clock.advance(60_000);
    assert.equal(sockets.length, reconnect ? 2 : 1, `${name} (${code}): sockets opened`);
    await client.close();
  }
});

test("client tables: the client's error codes and frames are the gateway's (checked by the compiler)", () => {
  const same: {
    errorCodes: Same<Client.WireErrorCode, ErrorCode>;
    clientFrames: Same<Client.ClientFrame, ClientFrame>;
    serverFrames: Same<Client.ServerFrame, ServerFrame>;
    frameTypes: Same<
      Client.ServerFrame["type"] | Client.ClientFrame["type"],
      ServerFrame["type"] | ClientFrame["type"]
    >;
  } = { errorCodes: true, clientFrames: true, serverFrames: true, frameTypes: true };
  assert.deepEqual(Object.values(same), [true, true, true, true]);
  // A message frame says `redelivered`, which the gateway writes (message-frame.ts).
  const message: Extract<ServerFrame, { type: "message" }> = {
    type: "message",
    endpoint: "chat",
    id: "1.1",
    data: null,
    redelivered: true,
  };
  assert.equal(message.redelivered, true);
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
  assert.deepEqual(codes, ERROR_CODES);

  for (const code of codes) {
    assert.equal(new ClientError(code, "").temporary, new GatewayError(code, "").temporary, code);
  }
  // The gateway's word wins: an unreadable stored session is STORE_UNAVAILABLE and permanent.
  assert.equal(new ClientError("STORE_UNAVAILABLE", "", { temporary: false }).temporary, false);
  assert.equal(new GatewayError("STORE_UNAVAILABLE", "", { temporary: false }).temporary, false);
});
