/**
 * The contract kits (`mediation-engine/conformance`): the suites every built-in plugin passes, for
 * a third-party one to run against itself under `deno test` or `bun test`.
 * - `endpointContract(name, setup)`: an endpoint type (endpoint-contract.ts; docs/writing-an-endpoint.md).
 * - `sessionStoreContract(kind, setup)`: a session store (session-store/; docs/writing-a-store.md).
 *
 * @example
 * ```ts
 * import { endpointContract, sessionStoreContract } from "mediation-engine/conformance";
 * ```
 */
export * from "./endpoint-contract.ts";
export * from "./session-store/contract.ts";
