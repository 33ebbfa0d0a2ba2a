// @ts-check
/**
 * Reconnect back-off (exponential, full jitter, capped) and the platform's timers.
 */
/** @import { BackoffOptions, Timers } from "../mod.d.ts" */

export const BACKOFF_DEFAULTS = Object.freeze({ initialMs: 500, maxMs: 30_000, stableMs: 10_000 });

/**
 * The delay before retry number `attempt` (0 first): a uniform draw under
 * min(maxMs, initialMs * 2^attempt) ("full jitter"), so clients dropped together do not come
 * back together.
 *
 * @example
 * backoffDelay(3, { initialMs: 500, maxMs: 30_000 }); // somewhere in [0, 4000)
 * @param {number} attempt
 * @param {BackoffOptions} [options]
 * @param {() => number} [random]
 * @returns {number}
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  const initialMs = options.initialMs ?? BACKOFF_DEFAULTS.initialMs;
  const maxMs = options.maxMs ?? BACKOFF_DEFAULTS.maxMs;
  const cap = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}

/** The platform's clock and timers. @type {Timers} */
export const platformTimers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clear: (id) => globalThis.clearTimeout(/** @type {number} */ (id)),
};
