/**
 * Clients for the chaos tests (tests/conformance/chaos*.test.ts): each keeps one client ID, is
 * bound to one endpoint, receives a numbered stream `{"n":1}`, `{"n":2}`, ..., and when its
 * connection breaks comes back after a random 0-500 ms with the same ID (binding again only if
 * the welcome says `resumed:false`). What arrived is booked per `n`, with each copy's delivery id
 * and `redelivered` flag, so a test can count losses and duplicates.
 *
 * The reconnect loop and the bookkeeping are transport-free (`ChaosClient`); a kind of client
 * implements `connection()`, one connection from open to close. `WsChaosClient` is the
 * multiplexed WebSocket, with or without end-to-end acks (`ack=1`); `SseChaosClient` is an SSE
 * stream over fetch that comes back with `Last-Event-ID`.
 *
 * `runChaos` drives one scenario (clients up, the proxies' monkeys on while the streams are
 * published, then a drain), `paceNumbered` paces a numbered stream per client, and
 * `chaosSummary` is the one line a person reads.
 *
 * The parts, each in its file: chaos-client.ts (the reconnect loop and bookkeeping),
 * chaos-ws-client.ts, chaos-sse-client.ts, chaos-run.ts (scenarios and their verdicts).
 */
export * from "./chaos-client.ts";
export * from "./chaos-ws-client.ts";
export * from "./chaos-sse-client.ts";
export * from "./chaos-run.ts";
