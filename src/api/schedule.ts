/**
 * ImageSync schedules, as upstream Portager accepts them (robfig/cron's standard parser):
 * a 5-field cron expression (`0 *\/6 * * *`), a descriptor (`@hourly`, `@daily`, `@midnight`,
 * `@weekly`, `@monthly`, `@yearly`, `@annually`) or `@every <Go duration>` (`30s`, `5m`,
 * `1h30m`). Cron runs in UTC unless the expression starts with `CRON_TZ=<zone>` or `TZ=<zone>`.
 *
 * `nextRun` is pure so the controller and `portager serve` decide the same way: for `@every`
 * the next run is the last sync plus the interval; for cron it is the next matching minute.
 *
 * Cron fields are checked and iterated by cron-parser (with luxon, ~8 ms of start-up CPU and the
 * bundle's CommonJS shim), which this module does not import: `./cron.ts` installs it. A module
 * that needs cron schedules imports `./cron.ts` (the controller) or awaits
 * {@linkcode loadCronParser} first (`portager sync -f` only when a document has a cron
 * schedule, so an `@every` copy never loads it). Parsing a cron expression before either throws
 * a plain Error naming the fix; `@every` schedules and descriptors parse without it.
 * @module
 */
import { ValueError, valueProblem } from "./value_error.ts";

/** A parsed schedule. */
export type Schedule =
  | {
    /** `@every <duration>`: a constant interval after the last sync. */
    kind: "every";
    /** Interval in milliseconds: whole seconds, at least one (`@every 500ms` runs every 1s). */
    intervalMs: number;
    /** The schedule as written. */
    text: string;
  }
  | {
    /** A cron expression (descriptors are expanded to one). */
    kind: "cron";
    /** The 5-field expression, e.g. `0 0 * * *` for `@daily`. */
    expression: string;
    /** IANA time zone the fields are read in; "UTC" unless `CRON_TZ=` says otherwise. */
    timeZone: string;
    /** The schedule as written. */
    text: string;
  };

/** Raised for a schedule that cannot be parsed; `reason` is the condition reason upstream uses. */
export class ScheduleError extends ValueError {
  /** Always "InvalidSchedule". */
  override readonly reason = "InvalidSchedule";
  /** Always "ScheduleError". */
  override readonly name = "ScheduleError";
}

const DESCRIPTORS: Record<string, string> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *",
};

/** What this module needs of cron-parser's `CronExpressionParser` (installed by `./cron.ts`). */
export interface CronParser {
  /** Parses a 6-field expression (seconds first); throws an Error saying what is wrong. */
  parse(
    expression: string,
    options: { tz: string; currentDate?: Date },
  ): { next(): { toDate(): Date } };
}

let cronParser: CronParser | undefined;

/** Makes `parser` the one cron expressions are checked and iterated with (called by `./cron.ts`). */
export function installCronParser(parser: CronParser): void {
  cronParser = parser;
}

/** Loads cron-parser (a chunk of its own in the bundle) so cron schedules can be parsed; idempotent. */
export async function loadCronParser(): Promise<void> {
  if (!cronParser) await import("./cron.ts");
}

function cron(): CronParser {
  if (!cronParser) {
    throw new Error(
      "cron schedules need cron-parser: await loadCronParser() or import src/api/cron.ts before parsing one",
    );
  }
  return cronParser;
}

/**
 * Whether parsing `text` needs cron-parser ({@linkcode loadCronParser}): anything but an
 * `@every` schedule or a bare descriptor such as `@daily` (those parse without it).
 */
export function needsCronParser(text: string): boolean {
  const trimmed = text.trim();
  return !trimmed.startsWith("@every") && !Object.hasOwn(DESCRIPTORS, trimmed);
}

/** The shortest `@every` interval; shorter ones run at it, as upstream's robfig/cron does. */
const MIN_EVERY_MS = 1000;

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "\u00b5s": 1e-3, // micro sign, as Go accepts
  "\u03bcs": 1e-3, // Greek mu
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a Go duration string (`300ms`, `1.5h`, `2h45m`) into milliseconds, as Go's
 * `time.ParseDuration` does; throws an Error whose message says what is wrong.
 */
export function parseGoDuration(text: string): number {
  let rest = text;
  let sign = 1;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    sign = rest[0] === "-" ? -1 : 1;
    rest = rest.slice(1);
  }
  if (rest === "0") return 0;
  if (rest === "") throw new Error(`invalid duration "${text}"`);
  let total = 0;
  while (rest.length > 0) {
    const m = /^(\d*(?:\.\d*)?)([^\d.]*)/.exec(rest)!;
    const [whole, num, unit] = m;
    if (num === "" || num === "." || whole === "") throw new Error(`invalid duration "${text}"`);
    if (unit === "") throw new Error(`missing unit in duration "${text}" (use h, m, s or ms)`);
    const ms = UNIT_MS[unit];
    if (ms === undefined) {
      const hint = unit === "d" ? "; write 24h for a day" : "";
      throw new Error(`unknown unit "${unit}" in duration "${text}" (use h, m, s, ms${hint})`);
    }
    total += Number(num) * ms;
    rest = rest.slice(whole.length);
  }
  return sign * total;
}

function parseTimeZone(text: string, zone: string): string {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return zone;
  } catch {
    throw new ScheduleError(text, `unknown time zone "${zone}" in schedule "${text}"`);
  }
}

/**
 * The interval robfig/cron's `Every` runs at (upstream's scheduler): whole seconds, anything
 * under one second (zero and negative included) rounded up to one second.
 */
function everyInterval(ms: number): number {
  return Math.max(MIN_EVERY_MS, ms - (ms % MIN_EVERY_MS));
}

/** Parses a schedule; throws {@linkcode ScheduleError} with a message a user can act on. */
export function parseSchedule(text: string): Schedule {
  const trimmed = text.trim();
  if (trimmed === "") {
    throw new ScheduleError(
      text,
      `schedule is empty: use a cron expression like "0 */6 * * *" or "@every 1h"`,
    );
  }
  if (trimmed.startsWith("@every")) {
    const arg = trimmed.slice("@every".length).trim();
    if (arg === "" || /\s/.test(arg)) {
      throw new ScheduleError(text, `"@every" needs one duration, like "@every 30m" or "@every 1h30m"`);
    }
    let ms: number;
    try {
      ms = parseGoDuration(arg);
    } catch (e) {
      throw new ScheduleError(text, `invalid schedule "${text}": ${(e as Error).message}`);
    }
    return { kind: "every", intervalMs: everyInterval(ms), text };
  }
  let timeZone = "UTC";
  let expr = trimmed;
  const tz = /^(?:CRON_TZ|TZ)=(\S+)\s+(.*)$/.exec(trimmed);
  if (tz) {
    timeZone = parseTimeZone(text, tz[1]);
    expr = tz[2].trim();
  }
  if (expr.startsWith("@")) {
    const expanded = DESCRIPTORS[expr];
    if (!expanded) {
      throw new ScheduleError(
        text,
        `unknown schedule descriptor "${expr}": use @hourly, @daily, @weekly, @monthly, @yearly ` +
          `or "@every <duration>"`,
      );
    }
    // a descriptor's expansion is a valid expression: checked without cron-parser
    if (!tz) return { kind: "cron", expression: expanded, timeZone, text };
    expr = expanded;
  }
  const fields = expr.split(/\s+/);
  if (fields.length !== 5) {
    throw new ScheduleError(
      text,
      `invalid schedule "${text}": a cron expression has 5 fields (minute hour day-of-month month ` +
        `day-of-week), found ${fields.length}`,
    );
  }
  const parser = cron();
  try {
    // cron-parser wants a seconds field; ours are minute-resolution like upstream's.
    parser.parse(`0 ${fields.join(" ")}`, { tz: timeZone });
  } catch (e) {
    throw new ScheduleError(text, `invalid schedule "${text}": ${(e as Error).message}`);
  }
  return { kind: "cron", expression: fields.join(" "), timeZone, text };
}

/** Returns why `text` is not a valid schedule, or undefined when it is. */
export function scheduleProblem(text: string): string | undefined {
  return valueProblem(text, parseSchedule);
}

/**
 * When the next sync is due after a sync at `from`: `from` + interval for `@every`, else the
 * first cron time strictly after `from`. Throws {@linkcode ScheduleError} for a bad schedule.
 */
export function nextRun(schedule: string | Schedule, from: Date): Date {
  const s = typeof schedule === "string" ? parseSchedule(schedule) : schedule;
  if (s.kind === "every") return new Date(from.getTime() + s.intervalMs);
  const it = cron().parse(`0 ${s.expression}`, { tz: s.timeZone, currentDate: from });
  return it.next().toDate();
}
