/**
 * What every benchmark case gets (the programs, the scratch folder, the run settings) and
 * what it gives back (a table for stdout and docs, raw numbers for the JSON results), plus
 * small helpers shared by the cases: registries on 127.0.0.1, digest checks, request counts.
 * @module
 */

import { type RegistryServer, startRegistry } from "../tests/harness/registry.ts";
import type { Invocation } from "./commands.ts";
import { CommandError, runMeasured, type RunOptions, type RunResult } from "./measure.ts";
import type { Peer, PortagerForm } from "./tools.ts";

/** Settings and programs shared by every case. */
export interface BenchContext {
  /** --quick: smaller shapes and fewer runs, the whole suite under two minutes. */
  quick: boolean;
  /** Runs per measured cell (median taken). */
  runs: number;
  /** Portager as shipped (the bundle), or the source form if the bundle cannot be built. */
  portager: PortagerForm;
  /** Portager from source (main.ts), for the B4 comparison of forms. */
  portagerSource: PortagerForm;
  /** Why the bundle could not be used, if it could not. */
  bundleProblem?: string;
  /** The peers, available or not. */
  peers: Peer[];
  /** A scratch folder, removed at the end. */
  scratch: string;
  /** Progress messages (stderr). */
  log(message: string): void;
}

/** A markdown table. */
export interface Table {
  /** Column headers. */
  columns: string[];
  /** Cells, row by row. */
  rows: string[][];
}

/** What one case reports. */
export interface CaseResult {
  /** "B1" … "B5". */
  id: string;
  /** One-line title. */
  title: string;
  /** Tables for stdout and docs/PERFORMANCE.md. */
  tables: Table[];
  /** Footnotes: settings, caveats, what a peer cannot do. */
  notes: string[];
  /** Raw measurements for bench/results/<date>.json. */
  data: unknown;
}

/** Finds a peer by name. */
export function peer(ctx: BenchContext, name: string): Peer {
  const p = ctx.peers.find((x) => x.name === name);
  if (!p) throw new Error(`unknown peer ${name}`);
  return p;
}

/** Runs an invocation; a failure is returned (not thrown) with its output. */
export async function run(inv: Invocation, opts: RunOptions = {}): Promise<RunResult> {
  return await runMeasured(inv.cmd, inv.args, { ...opts, env: { ...inv.env, ...opts.env } });
}

/** Runs an invocation and throws a CommandError on failure. */
export async function runOk(inv: Invocation, opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(inv, opts);
  if (r.code !== 0) throw new CommandError(`${inv.cmd} ${inv.args.join(" ")}`, r);
  return r;
}

/** Starts a plain-HTTP registry, runs `fn`, and always stops it. */
export async function withRegistry<T>(fn: (reg: RegistryServer) => Promise<T>): Promise<T> {
  const reg = await startRegistry("plain");
  try {
    return await fn(reg);
  } finally {
    await reg.stop();
  }
}

const ACCEPT = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");

/** The digest a registry serves for repository:tag (undefined when absent). */
export async function manifestDigest(
  url: string,
  repository: string,
  tag: string,
): Promise<string | undefined> {
  const res = await fetch(`${url}/v2/${repository}/manifests/${tag}`, {
    method: "HEAD",
    headers: { accept: ACCEPT },
  });
  await res.body?.cancel();
  if (res.status === 404) return undefined;
  if (res.status !== 200) {
    throw new Error(`HEAD ${url}/v2/${repository}/manifests/${tag}: HTTP ${res.status}`);
  }
  return res.headers.get("docker-content-digest") ?? undefined;
}

/** Checks that the destination serves `digest` under each repository:tag; throws naming the first that does not. */
export async function expectDigests(
  url: string,
  want: Array<{ repository: string; tag: string; digest: string }>,
): Promise<void> {
  for (const w of want) {
    const got = await manifestDigest(url, w.repository, w.tag);
    if (got !== w.digest) {
      throw new Error(`${url}/${w.repository}:${w.tag} is ${got ?? "missing"}, expected ${w.digest}`);
    }
  }
}

/** The repository names a registry lists in /v2/_catalog. */
export async function catalog(url: string): Promise<string[]> {
  const res = await fetch(`${url}/v2/_catalog?n=1000`);
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`GET ${url}/v2/_catalog: HTTP ${res.status}`);
  }
  return ((await res.json()).repositories ?? []).sort();
}

/** Request counts by method from access-log lines ("METHOD /path STATUS"). */
export function countRequests(lines: string[]): { total: number; byMethod: Record<string, number> } {
  const byMethod: Record<string, number> = {};
  for (const l of lines) {
    const m = l.split(" ")[0];
    byMethod[m] = (byMethod[m] ?? 0) + 1;
  }
  return { total: lines.length, byMethod };
}

/** Formats milliseconds as seconds with two decimals. */
export function seconds(ms: number): string {
  return Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : "—";
}

/** Formats KiB as MiB with one decimal. */
export function mib(kib: number | undefined): string {
  return kib === undefined || !Number.isFinite(kib) ? "—" : `${(kib / 1024).toFixed(1)} MiB`;
}

/** "×1.23" ratio of `value` to `base`. */
export function ratio(value: number, base: number): string {
  return Number.isFinite(value) && Number.isFinite(base) && base > 0 ? `×${(value / base).toFixed(2)}` : "—";
}
