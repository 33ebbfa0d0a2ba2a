/**
 * Builds the configured SessionStore.
 */
import type { Logger } from "../core/logger.ts";
import type { Metrics } from "../core/metrics.ts";
import type { Scheduler } from "../core/scheduler.ts";
import type { SessionStore } from "../core/session.ts";
import type { Config } from "../config/schema.ts";
import { MemorySessionStore } from "./memory.ts";
import { RedisSessionStore } from "./redis.ts";

export function createSessionStore(
  config: Config["session"],
  logger: Logger,
  metrics: Metrics,
  scheduler: Scheduler,
): SessionStore {
  switch (config.type) {
    case "memory":
      return new MemorySessionStore();
    case "redis": {
      const redis = config.redis!;
      const roundTrips = metrics.counter(
        "mediation_store_round_trips_total",
        "Requests to the session store",
      );
      return new RedisSessionStore({
        ...redis,
        scheduler,
        onUnreadable: (clientId, problem) =>
          logger.error(`[SessionStore] Skipping unreadable session record of ${clientId}: ${problem}`),
        onRoundTrip: () => roundTrips.inc(),
        report: (level, message) => logger[level](message),
      });
    }
  }
}
