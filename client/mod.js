// @ts-self-types="./mod.d.ts"
/**
 * The gateway's client library (types and documentation: mod.d.ts; client/README.md).
 *
 * @module
 */
export { connect } from "./src/ws-client.js";
export { connectSse } from "./src/sse-client.js";
export { backoffDelay } from "./src/backoff.js";
export { ClientError, CLOSE_CODES, CloseCode } from "./src/errors.js";
