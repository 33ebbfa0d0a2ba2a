/**
 * Strict mappings: every key of a config mapping must be one the schema knows. An unknown key is
 * a problem at its own key path, with the closest known key when one is near (a typo).
 */
import * as v from "valibot";

/** Edit distance (insertions, deletions, substitutions, adjacent swaps), ignoring case. */
export function editDistance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The known key `key` was most likely meant as: the nearest within 2 edits (or a third of its
 * length for long keys), else a known key of 4+ characters it contains (`response_encoding`).
 */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const candidate of known) {
    const distance = editDistance(key, candidate);
    if (distance < bestDistance && distance < Math.max(key.length, candidate.length)) {
      best = candidate;
      bestDistance = distance;
    }
  }
  if (best) return best;
  const lower = key.toLowerCase();
  return known
    .filter((candidate) => candidate.length >= 4 && lower.includes(candidate.toLowerCase()))
    .sort((x, y) => y.length - x.length)[0];
}

/** `unknown key (did you mean "x"?)`, or the keys it could be when none is close. */
export function unknownKey(key: string, known: readonly string[]): string {
  const close = closestKey(key, known);
  return close
    ? `unknown key (did you mean "${close}"?)`
    : `unknown key (expected one of ${known.join(", ")})`;
}

const isMapping = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * A `v.strictObject` whose problems read like the rest of the config's:
 * - not a mapping: `expected <what>, got <input>`;
 * - a required key missing: the key's own problem with nothing (`expected an http(s):// URL, got nothing`);
 * - an unknown key: `unknown key (did you mean ...)`, for every unknown key, not only the first
 *   (v.strictObject stops at the first one).
 *
 * `hidden` keys are accepted by the mapping (a later check refuses them with its own reason) but
 * never offered as a did-you-mean.
 */
export function strict<const TEntries extends v.ObjectEntries>(
  entries: TEntries,
  what: string,
  show: (value: unknown) => string,
  hidden: readonly string[] = [],
): v.StrictObjectSchema<TEntries, (issue: v.StrictObjectIssue) => string> {
  const known = Object.keys(entries).filter((key) => !hidden.includes(key));
  const message = (issue: v.StrictObjectIssue): string => {
    const key = issue.path?.at(-1)?.key;
    if (issue.expected === "never") return unknownKey(String(issue.input), known);
    if (typeof key === "string" && key in entries) {
      const nothing = v.safeParse(entries[key], undefined);
      if (!nothing.success) return nothing.issues[0].message;
    }
    return `expected ${what}, got ${show(issue.input)}`;
  };
  const schema = v.strictObject(entries, message);
  /** Reports one unknown key (the mapping has no entries, so the message names the known ones). */
  const unknownOnly = v.strictObject(
    {},
    (issue: v.StrictObjectIssue) => unknownKey(String(issue.input), known),
  );
  const run = schema["~run"].bind(schema);
  const writable: { "~run": typeof run } = schema;
  writable["~run"] = (dataset, config) => {
    const input = dataset.value;
    const output = run(dataset, config);
    if (!isMapping(input) || config.abortEarly) return output;
    const unknown = Object.keys(input).filter((key) => !Object.hasOwn(entries, key));
    for (const key of unknown.slice(1)) {
      const { issues } = unknownOnly["~run"]({ value: { [key]: input[key] } }, config);
      for (const issue of issues ?? []) {
        const [item] = issue.path ?? [];
        if (item) Object.assign(item, { input });
        output.issues?.push(issue as (typeof output.issues)[number]);
      }
    }
    return output;
  };
  return schema;
}
