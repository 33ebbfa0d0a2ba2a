/** The session store contract lives in src/conformance/session-store/ (exported as `./conformance`); the store tests import it from here. */
export * from "../../src/conformance/session-store/contract.ts";
