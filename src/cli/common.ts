/**
 * Helpers shared by the commands: durations, list flags, CA bundles.
 * @module
 */
import { parseGoDuration } from "../api/mod.ts";
import { UsageError } from "./args.ts";

/**
 * Parses a flag's Go-style duration such as `30s`, `1m30s` or `500ms` into milliseconds, with
 * the schedule's parser; a sign or a bare number is a usage error naming the flag.
 */
export function parseDuration(value: string, flag: string): number {
  const problem = `${flag} must be a duration like 30s, 2m or 1h30m, got "${value}"`;
  if (!/^\d/.test(value) || value === "0") throw new UsageError(problem);
  try {
    return parseGoDuration(value);
  } catch {
    throw new UsageError(problem);
  }
}

/** Flattens repeated and comma-separated list flags, dropping empty entries. */
export function splitList(values: string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean);
}

/** Reads PEM CA bundles; an unreadable file is a usage error naming it. */
export async function readCaFiles(paths: string[] | undefined): Promise<string[]> {
  const out: string[] = [];
  for (const path of splitList(paths)) {
    try {
      out.push(await Deno.readTextFile(path));
    } catch (err) {
      throw new UsageError(`cannot read CA file ${path}: ${(err as Error).message}`);
    }
  }
  return out;
}
