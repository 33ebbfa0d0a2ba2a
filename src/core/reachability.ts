/**
 * Whether an endpoint's broker is reachable, and the back-off its reconnects follow: the one
 * policy every endpoint type applies to a broker that is down at start or goes away later (see
 * Endpoint.start). The endpoint keeps running, reports not ready (`/readyz`), retries after
 * `retryDelay(attempt)`, and logs one WARN when the broker goes down and one INFO when it is back,
 * however many connections or attempts fail in between.
 */
import type { Logger } from "./logger.ts";
import type { Scheduler } from "./scheduler.ts";

/** The first retry's delay, in ms; each next one doubles, up to RETRY_MAX_MS. */
export const RETRY_INITIAL_MS = 1000;
/** The longest wait between two attempts, in ms. */
export const RETRY_MAX_MS = 30_000;

/**
 * How long to wait before retry number `attempt` (0 for the first retry after a failure):
 * 1 s, 2 s, 4 s... up to 30 s.
 *
 * @example
 * scheduler.setTimeout(() => void this.#connect(), retryDelay(this.#attempts++));
 */
export function retryDelay(attempt: number): number {
  return Math.min(RETRY_MAX_MS, RETRY_INITIAL_MS * 2 ** Math.min(Math.max(0, attempt), 16));
}

export interface BrokerReachabilityOptions {
  /** The log tag, without brackets: `MQTT`, `NATS`, `Kafka`. */
  component: string;
  /** The endpoint's name. */
  endpoint: string;
  /** What is (un)reachable, as it may be logged: e.g. the broker's URL, credentials redacted. */
  target: string;
  logger: Logger;
  /** For how long it was down, in the INFO line. */
  scheduler: Scheduler;
}

/**
 * An endpoint's view of its broker: `starting` until the first connect succeeds or fails, then
 * `up` or `down`. Only a change of state is logged: many connections of one endpoint (a
 * producer pool) may each report the same outage, and a reconnect loop reports every attempt.
 *
 * @example
 * const reach = new BrokerReachability({ component: "NATS", endpoint: "events", target, logger, scheduler });
 * reach.down("connection refused"); // WARN, once
 * reach.down("connection refused"); // nothing
 * reach.up();                       // INFO, once
 */
export class BrokerReachability {
  #state: "starting" | "up" | "down" = "starting";
  #reason?: string;
  #since = 0;

  readonly options: BrokerReachabilityOptions;
  constructor(options: BrokerReachabilityOptions) {
    this.options = options;
  }

  /** True once connected, until a failure is reported. For `/readyz` and metrics. */
  get reachable(): boolean {
    return this.#state === "up";
  }

  get state(): "starting" | "up" | "down" {
    return this.#state;
  }

  /** Why it is down (the first failure of this outage), while it is down. */
  get reason(): string | undefined {
    return this.#state === "down" ? this.#reason : undefined;
  }

  /** The broker answered. Logs INFO if it was down; the first connect at start logs nothing here. */
  up(): void {
    const was = this.#state;
    this.#state = "up";
    if (was !== "down") return;
    const { component, endpoint, target, logger, scheduler } = this.options;
    const seconds = Math.round((scheduler.now() - this.#since) / 100) / 10;
    logger.info(`[${component}] Endpoint ${endpoint}: ${target} is reachable again (after ${seconds} s)`);
  }

  /** The broker did not answer or went away. Logs WARN only if it was not down already. */
  down(reason: string): void {
    if (this.#state === "down") return;
    this.#state = "down";
    this.#reason = reason;
    this.#since = this.options.scheduler.now();
    const { component, endpoint, target, logger } = this.options;
    logger.warn(
      `[${component}] Endpoint ${endpoint}: ${target} is unreachable (${reason}); retrying with back-off, not ready until it answers`,
    );
  }
}
