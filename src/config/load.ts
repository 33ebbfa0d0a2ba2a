/**
 * Loads the configuration: the file named by `--config PATH`, else `MEDIATION_CONFIG`, else
 * `./config.yaml`; YAML, then `${ENV}` interpolation, then the endpoint types of
 * `endpoint_modules`, then the valibot schema assembled from every registered endpoint type.
 */
import { readFile } from "node:fs/promises";
import process from "node:process";
import { dirname, isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import * as v from "valibot";
import { parse as parseYaml, YAMLError } from "yaml";
import type { EndpointDefinition } from "../endpoints/definition.ts";
import { builtinEndpointTypes } from "../endpoints/builtins.ts";
import { definitionProblem } from "../endpoints/registry.ts";
import type { EndpointRegistry } from "../endpoints/registry.ts";
import { commandLine } from "./command-line.ts";
import { interpolateEnv } from "./env.ts";
import { configSchema, configWarnings } from "./schema.ts";
import type { Config } from "./schema.ts";
import { isMapping } from "./values.ts";

/** Everything wrong with a config, one problem a line (`key.path: expected ..., got ...`). */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly source: string;
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    // A problem of several lines (a YAML code frame) keeps its columns: every line is indented.
    super(
      `invalid configuration in ${source}:\n${
        problems.map((p) => `  ${p.replaceAll("\n", "\n  ")}`).join("\n")
      }`,
    );
    this.source = source;
    this.problems = problems;
  }
}

/**
 * The config file path: `--config PATH` of the command line (command-line.ts, which throws
 * UsageError for anything it does not take), else `MEDIATION_CONFIG`, else `./config.yaml`.
 */
export function configPath(args: readonly string[], env: Record<string, string | undefined>): string {
  return commandLine(args).config ?? (env.MEDIATION_CONFIG || "./config.yaml");
}

/** A valid config, and what in it is ignored (one line each, for the log). */
export interface LoadedConfig {
  config: Config;
  warnings: string[];
  /** Every endpoint type the config was checked against: the engine makes its endpoints with them. */
  registry: EndpointRegistry;
}

export interface LoadOptions {
  /** Endpoint types besides the built-in ones and those of `endpoint_modules`. */
  endpointTypes?: EndpointDefinition[];
}

/**
 * Reads and validates a config file, loading the endpoint types its `endpoint_modules` name
 * (paths relative to the file). Throws ConfigError listing every problem.
 */
export async function loadConfig(
  path: string,
  env: Record<string, string | undefined>,
  options: LoadOptions = {},
): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(path, [`cannot read the file: ${(error as Error).message}`]);
  }
  return await readConfig(text, env, { ...options, source: path, base: dirname(resolve(path)) });
}

/**
 * Validates config text (YAML) after loading the endpoint types of its `endpoint_modules`
 * (relative to `base`, default the working directory). Throws ConfigError listing every problem.
 */
export async function readConfig(
  text: string,
  env: Record<string, string | undefined>,
  options: LoadOptions & { source?: string; base?: string } = {},
): Promise<LoadedConfig> {
  const source = options.source ?? "config";
  const { value, missing } = interpolated(text, env, source);
  const modules = v.safeParse(ModuleList, isMapping(value) ? value.endpoint_modules : undefined);
  const loaded = modules.success
    ? await loadEndpointModules(modules.output, options.base ?? process.cwd(), source)
    : [];
  let registry: EndpointRegistry;
  try {
    registry = builtinEndpointTypes.with([...loaded, ...(options.endpointTypes ?? [])]);
  } catch (error) {
    throw new ConfigError(source, [`endpoint_modules: ${(error as Error).message}`]);
  }
  return validate(value, missing, source, registry);
}

/**
 * Validates config text (YAML) against the endpoint types of `registry` (default: the built-in
 * ones); `endpoint_modules` is not loaded here (readConfig and loadConfig do that). Throws
 * ConfigError listing every problem.
 */
export function parseConfig(
  text: string,
  env: Record<string, string | undefined>,
  source = "config",
  registry: EndpointRegistry = builtinEndpointTypes,
): LoadedConfig {
  const { value, missing } = interpolated(text, env, source);
  return validate(value, missing, source, registry);
}

const ModuleList = v.array(v.pipe(v.string(), v.minLength(1)));

function interpolated(text: string, env: Record<string, string | undefined>, source: string) {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    throw new ConfigError(source, [yamlProblem(error, text)]);
  }
  return interpolateEnv(raw ?? {}, env);
}

/**
 * The YAML parser's message whole (its code frame shows the line and a caret under the column),
 * and when it stopped at the `{` of a `${...}` the hint to quote it: inside a flow mapping or list
 * YAML reads that `{` as the start of a mapping.
 */
function yamlProblem(error: unknown, text: string): string {
  const message = error instanceof Error ? error.message : String(error);
  const lines = message.split("\n").map((line) => line.trimEnd()).filter((line) => line !== "");
  const at = error instanceof YAMLError ? error.pos[0] : -1;
  if (at > 0 && text[at - 1] === "$" && text[at] === "{") {
    const reference = text.slice(at - 1).match(/^\$\{[^}\n]*\}?/)![0];
    lines.push(`quote it: inside { } or [ ], write "${reference}", not ${reference}`);
  }
  return `not valid YAML: ${lines.join("\n")}`;
}

function validate(
  value: unknown,
  missing: Map<string, string[]>,
  source: string,
  registry: EndpointRegistry,
): LoadedConfig {
  const result = v.safeParse(configSchema(registry), value);
  if (result.success) {
    return { config: result.output, warnings: configWarnings(value, result.output), registry };
  }
  const problems = result.issues.map((issue) => {
    const path = issuePath(issue);
    const unset = missing.get(path);
    const hint = unset ? ` (environment variable ${unset.join(", ")} is not set)` : "";
    return `${path || "(top level)"}: ${issue.message}${hint}`;
  });
  throw new ConfigError(source, [...new Set(problems)]);
}

/**
 * Imports each module (a path relative to `base`, or a URL / package specifier) and takes its
 * endpoint types: the default export, a definition or a list of them. A module that cannot be
 * loaded or exports no definition is a config problem at its index.
 */
async function loadEndpointModules(
  specifiers: string[],
  base: string,
  source: string,
): Promise<EndpointDefinition[]> {
  const problems: string[] = [];
  const definitions: EndpointDefinition[] = [];
  for (const [i, specifier] of specifiers.entries()) {
    const url = /^\.{0,2}\//.test(specifier) || isAbsolute(specifier)
      ? pathToFileURL(resolve(base, specifier)).href
      : specifier;
    let module: Record<string, unknown>;
    try {
      module = await import(url);
    } catch (error) {
      problems.push(`endpoint_modules[${i}]: cannot load ${specifier}: ${firstLine(error)}`);
      continue;
    }
    const exported = module.default;
    const list = Array.isArray(exported) ? exported : [exported];
    const bad = list.map(definitionProblem).find((p) => p !== undefined);
    if (exported === undefined || bad) {
      problems.push(
        `endpoint_modules[${i}]: expected ${specifier} to default-export an endpoint definition (defineEndpoint), got ${
          exported === undefined ? "no default export" : bad
        }`,
      );
      continue;
    }
    definitions.push(...list);
  }
  if (problems.length) throw new ConfigError(source, problems);
  return definitions;
}

const firstLine = (error: unknown) => String(error instanceof Error ? error.message : error).split("\n")[0];

/** `endpoints[1].type`-style key path of a valibot issue. */
function issuePath(issue: v.BaseIssue<unknown>): string {
  let path = "";
  for (const item of issue.path ?? []) {
    const key = item.key as string | number;
    path += typeof key === "number" ? `[${key}]` : path ? `.${key}` : key;
  }
  return path;
}
