/**
 * Schemas of config values (numbers, durations, booleans, names, lists of `host:port`), in
 * valibot, each with problems that read `expected ..., got ...`. The config schema is built from
 * them, and so is every endpoint type's (src/endpoints/<type>/definition.ts): an endpoint's keys
 * take `${ENV}` values and report problems like every other key.
 *
 * Values from `${ENV}` interpolation are strings: where a number, duration or boolean is expected,
 * a string spelling one is taken as that ("8080", "true"), and validated as usual.
 * Nowhere else is a string turned into anything: `password: ${PASS}` stays a string.
 */
import * as v from "valibot";
import { parseDuration } from "./duration.ts";
import { strict as strictMapping } from "./keys.ts";

/** A config value as a problem line shows it: JSON, cut at 60 characters; `nothing` for a missing one. */
export function show(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** A YAML mapping (not a list, not null), as the config holds it before its schema ran. */
export const isMapping = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * `expected <what>, got <input>` for any issue: the message every check of a value gives.
 *
 * @example
 * v.picklist(["latest", "earliest"], expected('"latest" or "earliest"'))
 */
export const expected = (what: string) => (issue: v.BaseIssue<unknown>) =>
  `expected ${what}, got ${show(issue.input)}`;

/**
 * A mapping whose every key is known: an unknown one is a problem with the closest known key
 * (keys.ts). `what` names the mapping in `expected <what>, got 5`.
 */
export const strict = <const TEntries extends v.ObjectEntries>(
  entries: TEntries,
  what = "a mapping",
  hidden: readonly string[] = [],
) => strictMapping(entries, what, show, hidden);

const NUMBER_TEXT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$/;

/** "8080" (as `${ENV}` gives it) -> 8080; anything else is left for the next check to judge. */
export const fromNumberText = (input: unknown): unknown =>
  typeof input === "string" && NUMBER_TEXT.test(input.trim()) ? Number(input.trim()) : input;

/** "true" / "false" (as `${ENV}` gives them) -> true / false; anything else is left as it is. */
const fromBooleanText = (input: unknown): unknown => {
  const word = typeof input === "string" ? input.trim().toLowerCase() : undefined;
  return word === "true" ? true : word === "false" ? false : input;
};

/** A whole number from `min` to `max`, also written as a string. Required: wrap in v.optional for a default. */
export const wholeNumber = (what: string, min: number, max = Infinity) =>
  v.pipe(
    v.unknown(),
    v.transform(fromNumberText),
    v.number(expected(what)),
    v.integer(expected(what)),
    v.minValue(min, expected(what)),
    v.maxValue(max, expected(what)),
  );

/** One of a few numbers (qos, protocol_version), also written as a string. */
export const numberOf = <const TOptions extends readonly number[]>(options: TOptions, what: string) =>
  v.pipe(v.unknown(), v.transform(fromNumberText), v.picklist(options, expected(what)));

/**
 * What a bare number where a duration is expected says: which unit to write. A bare number is
 * refused, since `idle_timeout: 60` means 60 s to most people and 60 ms to the old parser; only 0
 * is taken (zero in any unit).
 */
const durationProblem = (issue: v.BaseIssue<unknown>): string => {
  const number = fromNumberText(issue.input);
  return typeof number === "number" && Number.isFinite(number) && number > 0
    ? `expected a duration with a unit, like "${number}s" or "${number}ms", got ${show(issue.input)}`
    : `expected a duration like "5m", got ${show(issue.input)}`;
};

/** A bare 0 (or "0" from `${ENV}`) is zero; any other number needs its unit. */
const durationMs = (input: unknown): number | undefined => {
  const number = fromNumberText(input);
  if (typeof number === "number") return number === 0 ? 0 : undefined;
  return parseDuration(input);
};

/**
 * A duration (`250ms`, `30s`, `5m`, `1h30m`, or `0`), in ms, `fallback` when not given. A number
 * without a unit other than 0 is a problem that names the unit to write (`"60s"` or `"60ms"`).
 */
export const duration = (fallback: string) =>
  v.pipe(
    v.optional(v.union([v.string(), v.number()], expected('a duration like "5m"')), fallback),
    v.check((d) => durationMs(d) !== undefined, durationProblem),
    v.transform((d) => durationMs(d)!),
  );

/** A positive whole number, `fallback` when not given. */
export const positiveInt = (fallback: number) =>
  v.optional(wholeNumber("a positive whole number", 1), fallback);

/** true or false (also "true" / "false"), `fallback` when not given. */
export const boolean = (fallback: boolean) =>
  v.optional(
    v.pipe(v.unknown(), v.transform(fromBooleanText), v.boolean(expected("true or false"))),
    fallback,
  );

/** A non-empty string. Required: wrap in v.optional for a default. */
export const text = (what = "a non-empty string") =>
  v.pipe(v.string(expected(what)), v.minLength(1, expected(what)));

/** A topic (subject) template with `{clientId}` and binding params (src/endpoints/template.ts). */
export const topicTemplate = (what = "a topic template") => text(what);

/** A `host:port`. */
export const hostPort = v.pipe(
  v.string(expected('a "host:port"')),
  v.regex(/^[^\s:]+:\d{1,5}$/, expected('a "host:port"')),
);

/** A list of at least one `item`. */
export const nonEmptyList = <TItem extends v.GenericSchema>(item: TItem, what: string) =>
  v.pipe(v.array(item, expected(`a list of ${what}`)), v.minLength(1, expected(`at least one ${what}`)));

/** A name of `[A-Za-z0-9_-]`, 1-64 characters (endpoints, entrypoints). */
export const name = v.pipe(
  v.string(expected("a name of A-Z a-z 0-9 _ -")),
  v.regex(/^[A-Za-z0-9_-]{1,64}$/, expected("a name of A-Z a-z 0-9 _ -")),
);
