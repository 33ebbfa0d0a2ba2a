/**
 * Loads the configuration: the file named by `--config PATH`, else `MEDIATION_CONFIG`, else
 * `./config.yaml`; YAML, then `${ENV}` interpolation, then the valibot schema.
 */
import { readFile } from "node:fs/promises";
import * as v from "valibot";
import { parse as parseYaml } from "yaml";
import { interpolateEnv } from "./env.ts";
import { ConfigSchema, configWarnings } from "./schema.ts";
import type { Config } from "./schema.ts";

/** Everything wrong with a config, one problem a line (`key.path: expected ..., got ...`). */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly source: string, readonly problems: string[]) {
    super(`invalid configuration in ${source}:\n${problems.map((p) => `  ${p}`).join("\n")}`);
  }
}

/** The config file path from the command line and environment. */
export function configPath(args: string[], env: Record<string, string | undefined>): string {
  const i = args.findIndex((a) => a === "--config" || a.startsWith("--config="));
  if (i >= 0) {
    const value = args[i].includes("=") ? args[i].slice("--config=".length) : args[i + 1];
    if (!value) throw new ConfigError("command line", ["--config: expected a file path, got nothing"]);
    return value;
  }
  return env.MEDIATION_CONFIG || "./config.yaml";
}

/** A valid config, and what in it is ignored (one line each, for the log). */
export interface LoadedConfig {
  config: Config;
  warnings: string[];
}

/** Reads and validates a config file. Throws ConfigError listing every problem. */
export async function loadConfig(
  path: string,
  env: Record<string, string | undefined>,
): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(path, [`cannot read the file: ${(error as Error).message}`]);
  }
  return parseConfig(text, env, path);
}

/** Validates config text (YAML). Throws ConfigError listing every problem. */
export function parseConfig(
  text: string,
  env: Record<string, string | undefined>,
  source = "config",
): LoadedConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    throw new ConfigError(source, [`not valid YAML: ${(error as Error).message.split("\n")[0]}`]);
  }
  const { value, missing } = interpolateEnv(raw ?? {}, env);
  const result = v.safeParse(ConfigSchema, value);
  if (result.success) return { config: result.output, warnings: configWarnings(value, result.output) };
  const problems = result.issues.map((issue) => {
    const path = issuePath(issue);
    const unset = missing.get(path);
    const hint = unset ? ` (environment variable ${unset.join(", ")} is not set)` : "";
    return `${path || "(top level)"}: ${issue.message}${hint}`;
  });
  throw new ConfigError(source, [...new Set(problems)]);
}

/** `endpoints[1].type`-style key path of a valibot issue. */
function issuePath(issue: v.BaseIssue<unknown>): string {
  let path = "";
  for (const item of issue.path ?? []) {
    const key = item.key as string | number;
    path += typeof key === "number" ? `[${key}]` : path ? `.${key}` : key;
  }
  return path;
}
