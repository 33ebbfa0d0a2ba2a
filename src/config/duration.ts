/**
 * Durations: "250ms", "30s", "5m", "1h30m", "2d", or (from code) a number of milliseconds. The
 * config takes a number only as 0: elsewhere it needs its unit (values.ts `duration`).
 */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

/**
 * Milliseconds for a duration, or undefined if it is not one.
 *
 * @example
 * parseDuration("1h30m") // 5_400_000
 */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== "string" || !WHOLE.test(value.trim())) return undefined;
  let total = 0;
  for (const [, amount, unit] of value.trim().matchAll(PART)) total += Number(amount) * UNIT_MS[unit];
  return Math.round(total);
}
