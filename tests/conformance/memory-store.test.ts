import { MemorySessionStore } from "../../src/session/memory.ts";
import { sessionStoreContract } from "./session-store-contract.ts";

sessionStoreContract("memory", () => {
  const store = new MemorySessionStore();
  return Promise.resolve({ store, peer: store });
});
