/**
 * Builds the configured SessionStore.
 */
import type { SessionStore } from "../core/session.ts";
import type { Config } from "../config/schema.ts";
import { MemorySessionStore } from "./memory.ts";

export function createSessionStore(config: Config["session"]): SessionStore {
  switch (config.type) {
    case "memory":
      return new MemorySessionStore();
  }
}
