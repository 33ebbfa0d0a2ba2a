/**
 * `${NAME}` and `${NAME:-default}` interpolation of environment variables in config strings.
 * It runs on the parsed YAML tree, so problems name the key path they occur at.
 */

const REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export interface Interpolation {
  value: unknown;
  /** Key path -> names of unset variables used there (replaced by ""). */
  missing: Map<string, string[]>;
}

export function interpolateEnv(
  value: unknown,
  env: Record<string, string | undefined>,
  path = "",
  missing = new Map<string, string[]>(),
): Interpolation {
  if (typeof value === "string") {
    const out = value.replace(REF, (_, name: string, fallback?: string) => {
      const found = env[name];
      if (found !== undefined && found !== "") return found;
      if (fallback !== undefined) return fallback;
      missing.set(path, [...(missing.get(path) ?? []), name]);
      return "";
    });
    return { value: out, missing };
  }
  if (Array.isArray(value)) {
    return {
      value: value.map((item, i) => interpolateEnv(item, env, `${path}[${i}]`, missing).value),
      missing,
    };
  }
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      out[key] = interpolateEnv(item, env, path ? `${path}.${key}` : key, missing).value;
    }
    return { value: out, missing };
  }
  return { value, missing };
}
