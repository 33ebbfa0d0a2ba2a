/**
 * The session store contract (`mediation-engine/conformance`): what every SessionStore must do
 * (the rules on src/core/session.ts), as node:test cases that run under `deno test` and
 * `bun test` alike. Every built-in store passes it (MemorySessionStore, RedisSessionStore on each
 * transport), and the author of another store runs the same suite against theirs, by area:
 * records (compare-and-set writes), expiry (the expiry index and cleanup claims), ownership
 * (connect, leases, release, counts), the publish dedupe ledger and the SSE replay log. Each case
 * gets a fresh harness: two stores over the same data stand for two nodes.
 *
 * @example
 * ```ts
 * // my-store.test.ts
 * import { sessionStoreContract } from "mediation-engine/conformance";
 * sessionStoreContract("my-store", async () => {
 *   const prefix = `contract-${crypto.randomUUID()}`;
 *   return { store: new MyStore(prefix), peer: new MyStore(prefix), close: () => dropAll(prefix) };
 * });
 * ```
 */
import { expiryCases } from "./expiry.ts";
import type { StoreHarness } from "./fixtures.ts";
import { storeCases } from "./fixtures.ts";
import { ledgerCases } from "./ledger.ts";
import { ownershipCases } from "./ownership.ts";
import { recordCases } from "./records.ts";
import { replayCases } from "./replay.ts";

export type { StoreCases, StoreHarness } from "./fixtures.ts";
export { expiryCases, ledgerCases, ownershipCases, recordCases, replayCases, storeCases };

/** Registers every case of the contract, `<kind> store: <case>`, each on a fresh `setup()`. */
export function sessionStoreContract(kind: string, setup: () => Promise<StoreHarness>): void {
  const cases = storeCases(kind, setup);
  recordCases(cases);
  expiryCases(cases);
  ownershipCases(cases);
  ledgerCases(cases);
  replayCases(cases);
}
