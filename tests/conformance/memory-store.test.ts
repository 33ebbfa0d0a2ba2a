import { MemorySessionStore } from "../../src/session/memory.ts";
import { sessionStoreContract } from "./session-store-contract.ts";

sessionStoreContract("memory", () => Promise.resolve({ store: new MemorySessionStore() }));
