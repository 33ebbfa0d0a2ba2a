/**
 * The Logger port, and a console logger with a level threshold.
 * Messages keep the seed's formats (`[Binding] ...`, `[CleanupWorker] ...`): users grep for them.
 */

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string, error?: unknown): void;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export function consoleLogger(level: LogLevel = "info"): Logger {
  const on = (l: LogLevel) => RANK[l] >= RANK[level];
  return {
    debug: (m) => on("debug") && console.debug(`DEBUG ${m}`),
    info: (m) => on("info") && console.info(`INFO ${m}`),
    warn: (m) => on("warn") && console.warn(`WARN ${m}`),
    error: (m, e) => on("error") && console.error(`ERROR ${m}${e ? `: ${describe(e)}` : ""}`),
  };
}

/** A logger that keeps lines in memory, for tests that check what was logged. */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    debug: (m) => lines.push(`DEBUG ${m}`),
    info: (m) => lines.push(`INFO ${m}`),
    warn: (m) => lines.push(`WARN ${m}`),
    error: (m, e) => lines.push(`ERROR ${m}${e ? `: ${describe(e)}` : ""}`),
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
