/**
 * Structured logging for the operator: JSON or text lines, four levels, child loggers with
 * bound fields, and redaction of anything that looks like a credential — a password, token or
 * Authorization header must never reach a log line.
 * @module
 */

/** Log levels, least to most severe. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Output format: one JSON object per line, or `time LEVEL msg key=value ...`. */
export type LogFormat = "json" | "text";

/** Fields attached to a log line. Values are redacted and serialised safely. */
export type LogFields = Record<string, unknown>;

/** A structured logger. */
export interface Logger {
  /** The lowest level that is written. */
  readonly level: LogLevel;
  /** Detail useful when debugging. */
  debug(msg: string, fields?: LogFields): void;
  /** Normal operation. */
  info(msg: string, fields?: LogFields): void;
  /** Something went wrong but the program carries on. */
  warn(msg: string, fields?: LogFields): void;
  /** Something failed. */
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

/** Options for {@linkcode createLogger}. */
export interface LoggerOptions {
  /** Lowest level written; default `info`. */
  level?: LogLevel;
  /** Default `json`. */
  format?: LogFormat;
  /** Where lines go; default stderr. Receives one line without the trailing newline. */
  write?: (line: string) => void;
  /** Clock for timestamps; default `new Date()`. */
  now?: () => Date;
}

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Parses a level name (case-insensitive); a RangeError names the accepted values. */
export function parseLogLevel(value: string): LogLevel {
  const v = value.toLowerCase();
  if (v === "warning") return "warn";
  if (v in LEVELS) return v as LogLevel;
  throw new RangeError(`unknown log level "${value}" (want debug, info, warn or error)`);
}

/** Parses a format name; a RangeError names the accepted values. */
export function parseLogFormat(value: string): LogFormat {
  const v = value.toLowerCase();
  if (v === "json" || v === "text") return v;
  throw new RangeError(`unknown log format "${value}" (want json or text)`);
}

const REDACTED = "[REDACTED]";

const SECRET_KEY =
  /^(password|passwd|pass|pwd|token|access_?token|refresh_?token|id_?token|identity_?token|registry_?token|bearer|authorization|proxy-authorization|auth|api_?key|secret_?key|secret_?access_?key|private_?key|client_?key|client_?key_?data|key_?data|cookie|set-cookie|\.?dockerconfigjson|credentials?)$/i;

const STRING_PATTERNS: Array<[RegExp, string]> = [
  // Authorization header values
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{4,}/g, `$1 ${REDACTED}`],
  // URL userinfo: scheme://user:password@host
  [/([a-z][a-z0-9+.-]*:\/\/[^/\s:@]+):[^@\s/]+@/gi, `$1:${REDACTED}@`],
  // JWTs
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, REDACTED],
  // key=value / "key":"value" pairs that carry secrets
  [
    /((?:password|passwd|token|access_token|refresh_token|identitytoken|registrytoken|auth|api_key|apikey)["']?\s*[:=]\s*["']?)([^"'\s,&}]{1,})/gi,
    `$1${REDACTED}`,
  ],
];

/** Masks credential-looking substrings (Bearer/Basic values, URL passwords, JWTs, key=value). */
export function redactString(s: string): string {
  let out = s;
  for (const [re, repl] of STRING_PATTERNS) out = out.replace(re, repl);
  return out;
}

/**
 * Returns a copy of `value` safe to log: values under credential-like keys are replaced,
 * strings are scrubbed with {@linkcode redactString}, errors become `{name, message, reason}`.
 */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 8) return "[…]";
  if (typeof value === "string") return redactString(value);
  if (value === null || typeof value !== "object") {
    if (typeof value === "bigint") return value.toString();
    if (typeof value === "function" || typeof value === "symbol") return String(value);
    return value;
  }
  if (value instanceof Error) {
    const out: Record<string, unknown> = { name: value.name, message: redactString(value.message) };
    const reason = (value as { reason?: unknown }).reason;
    if (typeof reason === "string") out.reason = reason;
    return out;
  }
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Uint8Array) return `<${value.byteLength} bytes>`;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value instanceof Headers) {
    const out: Record<string, unknown> = {};
    value.forEach((v, k) => out[k] = SECRET_KEY.test(k) ? REDACTED : redactString(v));
    return out;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (SECRET_KEY.test(k) && v !== undefined && v !== null && typeof v !== "boolean") {
      out[k] = REDACTED;
    } else {
      out[k] = redact(v, depth + 1);
    }
  }
  return out;
}

function textValue(v: unknown): string {
  if (typeof v === "string") return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (v === undefined) return "undefined";
  return JSON.stringify(v) ?? String(v);
}

class StructuredLogger implements Logger {
  readonly level: LogLevel;
  #format: LogFormat;
  #write: (line: string) => void;
  #now: () => Date;
  #fields: LogFields;

  constructor(opts: Required<LoggerOptions>, fields: LogFields) {
    this.level = opts.level;
    this.#format = opts.format;
    this.#write = opts.write;
    this.#now = opts.now;
    this.#fields = fields;
  }

  #log(level: LogLevel, msg: string, fields?: LogFields): void {
    if (LEVELS[level] < LEVELS[this.level]) return;
    const merged = redact({ ...this.#fields, ...fields }) as LogFields;
    const time = this.#now().toISOString();
    const message = redactString(msg);
    let line: string;
    if (this.#format === "json") {
      line = JSON.stringify({ time, level, msg: message, ...merged });
    } else {
      const parts = [time, level.toUpperCase().padEnd(5), message];
      for (const [k, v] of Object.entries(merged)) {
        if (v !== undefined) parts.push(`${k}=${textValue(v)}`);
      }
      line = parts.join(" ");
    }
    try {
      this.#write(line);
    } catch {
      // a broken log sink must not take the operator down
    }
  }

  debug(msg: string, fields?: LogFields): void {
    this.#log("debug", msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.#log("info", msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.#log("warn", msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.#log("error", msg, fields);
  }
  child(fields: LogFields): Logger {
    return new StructuredLogger(
      { level: this.level, format: this.#format, write: this.#write, now: this.#now },
      { ...this.#fields, ...fields },
    );
  }
}

const encoder = new TextEncoder();

function writeStderr(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

/** Creates a logger; lines go to stderr unless `write` is given. */
export function createLogger(options: LoggerOptions = {}): Logger {
  return new StructuredLogger({
    level: options.level ?? "info",
    format: options.format ?? "json",
    write: options.write ?? writeStderr,
    now: options.now ?? (() => new Date()),
  }, {});
}
