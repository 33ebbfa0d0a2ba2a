/**
 * The Logger port, and a console logger with a level threshold, a timestamp on every line and
 * two formats: `text` (one line for people, an error's stack indented below it) and `json` (one
 * object a line, for log shippers).
 * Messages keep the seed's formats (`[Binding] ...`, `[CleanupWorker] ...`): users grep for them.
 * In JSON the `[Component]` prefix becomes the `component` field.
 */

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "text" | "json";

/**
 * Structured fields of a line: `client`, `endpoint`, `node`, `transport`, `reason`, ... In text
 * they follow the message as `key=value`; in JSON they are keys of the object. Undefined ones
 * are left out.
 */
export type LogFields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  /** `error` keeps its message and stack trace (text: indented below the line; JSON: `stack`). */
  error(message: string, error?: unknown, fields?: LogFields): void;
}

/** One line before it is formatted. */
export interface LogRecord {
  /** Milliseconds since the epoch. */
  time: number;
  level: LogLevel;
  message: string;
  fields: LogFields;
  error?: unknown;
}

/**
 * Where a formatted line goes. Every line the console logger prints passes through here, final,
 * once: the one place to hook a last filter (e.g. secret redaction) on all log output.
 */
export type LineWriter = (level: LogLevel, line: string) => void;

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export interface ConsoleLoggerOptions {
  format?: LogFormat;
  /** Default: the console (debug/info to stdout, warn/error to stderr). */
  write?: LineWriter;
  /** The wall clock of the timestamps. Default: Date.now. */
  now?: () => number;
}

/**
 * @example
 * const log = consoleLogger("info", { format: "json" });
 * log.info("[WS] Connection opened", { client: "c1", transport: "ws" });
 * // {"time":"2026-01-01T00:00:00.000Z","level":"info","component":"WS","msg":"Connection opened","client":"c1","transport":"ws"}
 */
export function consoleLogger(level: LogLevel = "info", options: ConsoleLoggerOptions = {}): Logger {
  const format = options.format === "json" ? formatJson : formatText;
  const write = options.write ?? writeConsole;
  const now = options.now ?? Date.now;
  return recordLogger((record) => {
    if (RANK[record.level] >= RANK[level]) write(record.level, format(record));
  }, now);
}

/** The default LineWriter. */
export function writeConsole(level: LogLevel, line: string): void {
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else if (level === "info") console.info(line);
  else console.debug(line);
}

/**
 * A logger that keeps lines in memory, for tests that check what was logged: `lines` as
 * `LEVEL message[: error message]` (no time, no fields), `records` with everything.
 */
export function memoryLogger(): Logger & { lines: string[]; records: LogRecord[] } {
  const lines: string[] = [];
  const records: LogRecord[] = [];
  const logger = recordLogger((record) => {
    records.push(record);
    const e = record.error;
    lines.push(`${record.level.toUpperCase()} ${record.message}${e ? `: ${errorMessage(e)}` : ""}`);
  }, Date.now);
  return Object.assign(logger, { lines, records });
}

/**
 * A logger that adds `bound` to every line's fields (a line's own fields win).
 *
 * @example
 * const log = withFields(engine.logger, { client: "c1", transport: "ws" });
 * log.info("[WS] Connection opened");
 */
export function withFields(logger: Logger, bound: LogFields): Logger {
  // The line's own fields first (in text they read best next to the message), then the bound.
  const merge = (fields?: LogFields) => (fields ? { ...fields, ...bound, ...fields } : bound);
  return {
    debug: (m, f) => logger.debug(m, merge(f)),
    info: (m, f) => logger.info(m, merge(f)),
    warn: (m, f) => logger.warn(m, merge(f)),
    error: (m, e, f) => logger.error(m, e, merge(f)),
  };
}

function recordLogger(emit: (record: LogRecord) => void, now: () => number): Logger {
  const log = (level: LogLevel) => (message: string, fields?: LogFields) =>
    emit({ time: now(), level, message, fields: fields ?? {} });
  return {
    debug: log("debug"),
    info: log("info"),
    warn: log("warn"),
    error: (message, error, fields) =>
      emit({ time: now(), level: "error", message, fields: fields ?? {}, error }),
  };
}

/** `2026-01-01T00:00:00.000Z INFO [WS] Connection opened client=c1 transport=ws`, stack below. */
export function formatText(record: LogRecord): string {
  let line = `${new Date(record.time).toISOString()} ${record.level.toUpperCase()} ${record.message}`;
  if (record.error !== undefined) line += `: ${errorMessage(record.error)}`;
  for (const [key, value] of Object.entries(record.fields)) {
    if (value === undefined) continue;
    const text = String(value);
    line += ` ${key}=${/^[^\s"=]+$/.test(text) ? text : JSON.stringify(text)}`;
  }
  const stack = stackOf(record.error);
  return stack ? `${line}\n${stack.split("\n").map((l) => `    ${l.trim()}`).join("\n")}` : line;
}

const COMPONENT = /^\[([^\]]+)\] ?/;

/** One JSON object: time, level, component, msg, the fields, error and stack. */
export function formatJson(record: LogRecord): string {
  const component = record.message.match(COMPONENT);
  const out: Record<string, unknown> = {
    time: new Date(record.time).toISOString(),
    level: record.level,
    ...(component ? { component: component[1] } : {}),
    msg: component ? record.message.slice(component[0].length) : record.message,
  };
  for (const [key, value] of Object.entries(record.fields)) {
    if (value !== undefined && !(key in out)) out[key] = value;
  }
  if (record.error !== undefined) {
    out.error = errorMessage(record.error);
    const stack = stackOf(record.error);
    if (stack) out.stack = stack;
  }
  return JSON.stringify(out);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The stack frames of an error (its first line, the message, is on the log line already), and
 * those of its causes, each after a `caused by:` line.
 */
function stackOf(error: unknown): string | undefined {
  const parts: string[] = [];
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const frames = (e.stack ?? "").split("\n").filter((l) => /^\s+at\s|^\s*\S+@\S+:\d+/.test(l));
    if (depth > 0) parts.push(`caused by: ${e.name}: ${e.message}`);
    parts.push(...frames.map((l) => l.trim()));
  }
  return parts.length ? parts.join("\n") : undefined;
}
