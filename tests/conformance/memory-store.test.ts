// Imported by the package's name, as a third-party store's test would.
import { sessionStoreContract } from "mediation-engine/conformance";
import { MemorySessionStore } from "../../src/session/memory.ts";

sessionStoreContract("memory", () => {
  const store = new MemorySessionStore();
  return Promise.resolve({ store, peer: store });
});
