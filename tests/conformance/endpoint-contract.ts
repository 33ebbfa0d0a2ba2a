/** The endpoint contract kit lives in src/conformance/ (exported as `./conformance`); the tests import it from here. */
export * from "../../src/conformance/endpoint-contract.ts";
