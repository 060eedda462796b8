/**
 * Helpers shared by the commands: durations, list flags, CA bundles.
 * @module
 */
import { UsageError } from "./args.ts";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a Go-style duration such as `30s`, `1m30s` or `500ms` into milliseconds. */
export function parseDuration(value: string, flag: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let total = 0;
  let consumed = 0;
  for (const m of value.matchAll(re)) {
    if (m.index !== consumed) break;
    total += Number(m[1]) * UNIT_MS[m[2]];
    consumed += m[0].length;
  }
  if (consumed === 0 || consumed !== value.length) {
    throw new UsageError(`${flag} must be a duration like 30s, 2m or 1h30m, got "${value}"`);
  }
  return total;
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
