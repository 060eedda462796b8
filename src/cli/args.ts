/**
 * A small, explicit command-line flag parser: `--name value`, `--name=value`, boolean
 * `--flag`/`--no-flag`/`--flag=false`, repeatable flags, `-f` short aliases, and `--` to end
 * flags. Go's flag syntax is accepted too, so upstream's controller-runtime command lines
 * work unchanged: a long flag with one dash (`-leader-elect`, `-metrics-bind-address=:8443`)
 * and every boolean spelling of Go's `strconv.ParseBool`.
 * @module
 */

/** How one flag is parsed. */
export interface FlagSpec {
  /** Long name without dashes, e.g. `kubeconfig`. */
  name: string;
  /** One-letter alias without the dash, e.g. `f`. */
  short?: string;
  /** `string` takes a value; `boolean` does not. */
  type: "string" | "boolean";
  /** A repeatable flag collects every value in order. */
  multiple?: boolean;
  /** Environment variable used when the flag is absent. */
  env?: string;
  /** Default when neither the flag nor its environment variable is set. */
  default?: string | boolean;
  /** One line for `--help`. */
  help: string;
}

/** Parsed flags by long name, and the positional arguments. */
export interface ParsedArgs {
  flags: Record<string, string | boolean | string[] | undefined>;
  positional: string[];
}

/** A command line the user has to fix; the CLI prints it and exits with code 2. */
export class UsageError extends Error {
  /** Stable reason, as for every Portager error. */
  readonly reason = "InvalidArguments";
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const TRUE = new Set(["1", "t", "true", "yes", "y", "on"]);
const FALSE = new Set(["0", "f", "false", "no", "n", "off"]);

/** A boolean flag's value: Go's ParseBool spellings (any case) plus yes/no/on/off. */
function parseBool(value: string, what: string): boolean {
  const v = value.trim().toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw new UsageError(`${what} is a boolean (true or false), got "${value}"`);
}

/** Parses `argv` against `specs`; unknown flags and missing values are a UsageError. */
export function parseArgs(
  argv: string[],
  specs: FlagSpec[],
  options: { env?: (name: string) => string | undefined } = {},
): ParsedArgs {
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const byLong = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));
  const flags: ParsedArgs["flags"] = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positional.push(arg);
      continue;
    }
    let name: string;
    let inline: string | undefined;
    let spec: FlagSpec | undefined;
    let negated = false;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq === -1 ? undefined : arg.slice(eq + 1);
      spec = byLong.get(name);
      if (!spec && name.startsWith("no-")) {
        spec = byLong.get(name.slice(3));
        negated = spec?.type === "boolean";
        if (!negated) spec = undefined;
      }
    } else {
      // Go's syntax: one dash before a long name (`-kubeconfig x`, `-leader-elect=false`)
      const eq = arg.indexOf("=");
      const long = byLong.get(eq === -1 ? arg.slice(1) : arg.slice(1, eq));
      if (long && arg.length > 2) {
        spec = long;
        name = long.name;
        inline = eq === -1 ? undefined : arg.slice(eq + 1);
      } else {
        name = arg.slice(1, 2);
        inline = arg.length > 2 ? arg.slice(2).replace(/^=/, "") : undefined;
        spec = byShort.get(name);
      }
    }
    if (!spec) throw new UsageError(`unknown flag ${arg.split("=")[0]}`);
    if (spec.type === "boolean") {
      if (negated && inline !== undefined) throw new UsageError(`${arg.split("=")[0]} takes no value`);
      const value = inline === undefined ? !negated : parseBool(inline, `--${spec.name}`);
      flags[spec.name] = value;
      continue;
    }
    let value = inline;
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`flag --${spec.name} needs a value`);
      value = argv[++i];
    }
    if (spec.multiple) {
      const list = (flags[spec.name] as string[] | undefined) ?? [];
      list.push(value);
      flags[spec.name] = list;
    } else {
      flags[spec.name] = value;
    }
  }
  for (const spec of specs) {
    if (flags[spec.name] !== undefined) continue;
    const fromEnv = spec.env ? env(spec.env) : undefined;
    if (fromEnv !== undefined && fromEnv !== "") {
      if (spec.type === "boolean") flags[spec.name] = parseBool(fromEnv, `$${spec.env}`);
      else if (spec.multiple) flags[spec.name] = fromEnv.split(",").map((s) => s.trim()).filter(Boolean);
      else flags[spec.name] = fromEnv;
    } else if (spec.default !== undefined) {
      flags[spec.name] = spec.default;
    } else if (spec.multiple) {
      flags[spec.name] = [];
    }
  }
  return { flags, positional };
}

/** Renders the flag table for `--help`. */
export function formatFlags(specs: FlagSpec[]): string {
  const rows = specs.map((s) => {
    const left = `${s.short ? `-${s.short}, ` : "    "}--${s.name}${s.type === "string" ? " VALUE" : ""}`;
    const extras = [
      s.env ? `env ${s.env}` : "",
      s.default !== undefined && s.default !== "" ? `default ${s.default}` : "",
    ].filter(Boolean).join("; ");
    return [left, s.help + (extras ? ` (${extras})` : "")];
  });
  const width = Math.max(...rows.map((r) => r[0].length)) + 2;
  return rows.map(([l, r]) => `  ${l.padEnd(width)}${r}`).join("\n");
}
