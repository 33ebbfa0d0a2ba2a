/**
 * The gateway's command line: `--config PATH` (or `--config=PATH`) and `-h` / `--help`. Anything
 * else stops start-up (exit 2): a flag the gateway does not know, such as `--port 9000`, is not
 * ignored while the gateway starts on another port.
 */
import { fileURLToPath } from "node:url";

/** What the command line asks for. */
export interface CommandLine {
  /** `-h` / `--help`: print the usage and exit 0 (whatever else was given). */
  help: boolean;
  /** `--config PATH`; undefined when not given (then `$MEDIATION_CONFIG`, else `./config.yaml`). */
  config?: string;
}

/** A command line the gateway cannot run with; main.ts prints it with USAGE_HINT and exits 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** The line after a UsageError's message. */
export const USAGE_HINT = "Run with --help for the options.";

/**
 * Reads the arguments after the script name.
 *
 * @example
 * commandLine(["--config", "gateway.yaml"]) // { help: false, config: "gateway.yaml" }
 * commandLine(["--port", "9000"]) // throws UsageError: unknown option --port
 */
export function commandLine(args: readonly string[]): CommandLine {
  if (args.some((a) => a === "-h" || a === "--help")) return { help: true };
  let config: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--config" || arg.startsWith("--config=")) {
      const value = arg === "--config" ? args[++i] : arg.slice("--config=".length);
      // `--config --other` is a missing path, not a file named "--other" (`--config=-x` names one).
      if (!value || (arg === "--config" && value.startsWith("-"))) {
        throw new UsageError(`--config: expected a file path, got ${value ? value : "nothing"}`);
      }
      if (config !== undefined) throw new UsageError("--config: given twice");
      config = value;
    } else if (arg.startsWith("-")) {
      const name = arg.split("=")[0];
      throw new UsageError(
        `unknown option ${name}: the gateway takes --config PATH and --help; ports, hosts and the rest are set in the config file`,
      );
    } else {
      throw new UsageError(
        `unexpected argument ${JSON.stringify(arg)}: the config file is given as --config PATH`,
      );
    }
  }
  return { help: false, config };
}

/** `-h` / `--help`: what the gateway is, its options, the environment it reads, and where the docs are. */
export function usage(): string {
  const readme = fileURLToPath(new URL("../../README.md", import.meta.url));
  return `Mediation engine: an event gateway between WebSocket, SSE and HTTP clients and MQTT, Kafka and
NATS JetStream brokers, with sessions that survive disconnects.

Usage:
  deno run --allow-net --allow-read --allow-env --allow-sys src/main.ts [--config PATH]
  bun run src/main.ts [--config PATH]
  node src/main.ts [--config PATH]

Options:
  --config PATH, --config=PATH  the config file (YAML); default $MEDIATION_CONFIG, else ./config.yaml
  -h, --help                    print this and exit

Environment:
  MEDIATION_CONFIG   the config file when --config is not given
  any NAME the config refers to as \${NAME} or \${NAME:-default}

Exit codes: 0 after a graceful shutdown (SIGINT, SIGTERM), 1 when start-up fails, 2 for a bad
command line or configuration.

Everything else (the config keys, ports, authentication, production use): ${readme}
`;
}
