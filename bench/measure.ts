/**
 * Running one benchmarked command: wall time and peak resident memory of the child process.
 *
 * Peak RSS is the kernel's high-water mark `VmHWM` from `/proc/<pid>/status`, sampled while
 * the child runs (the mark only grows, so a sample taken after the peak still sees it; only
 * growth in the last sampling interval before exit can be missed).
 * @module
 */

/** What one process run cost. */
export interface RunResult {
  /** Wall time from spawn to exit, in milliseconds. */
  ms: number;
  /** Exit code. */
  code: number;
  /** Standard output (text). */
  stdout: string;
  /** Standard error (text). */
  stderr: string;
  /** Peak resident set size (VmHWM) in KiB, or undefined if never sampled. */
  peakRssKiB?: number;
  /** The last sampled current RSS (VmRSS) in KiB. */
  lastRssKiB?: number;
  /** With `cpu`: user + system CPU time of the process (and its children), in ms, from wait4. */
  cpuMs?: number;
}

/** Options for {@linkcode runMeasured}. */
export interface RunOptions {
  /** Environment added to (or, with clearEnv, replacing) the bench's own. */
  env?: Record<string, string>;
  /** Start from an empty environment (PATH and HOME are still passed unless given). */
  clearEnv?: boolean;
  /** Working directory. */
  cwd?: string;
  /** VmHWM sampling period in ms (default 20). */
  sampleMs?: number;
  /** Bytes written to the child's standard input. */
  stdin?: string;
  /** Kill the child after this many ms (default 10 minutes); the run then fails. */
  timeoutMs?: number;
  /**
   * Measure CPU time: the command runs under GNU time (`/usr/bin/time`), whose wait4 rusage
   * gives user + system time and the peak RSS exactly (no sampling gap at exit).
   */
  cpu?: boolean;
}

/** GNU time's output format: user s, system s, max RSS KiB. */
const TIME_FORMAT = "portager-bench-rusage %U %S %M";

/** Parses (and removes) GNU time's line from stderr: CPU ms and peak RSS KiB. */
export function parseRusage(stderr: string): { cpuMs?: number; maxRssKiB?: number; stderr: string } {
  const m = stderr.match(/^portager-bench-rusage ([\d.]+) ([\d.]+) (\d+)$/m);
  if (!m) return { stderr };
  return {
    cpuMs: (Number(m[1]) + Number(m[2])) * 1000,
    maxRssKiB: Number(m[3]),
    stderr: stderr.replace(m[0], "").replace(/\n+$/, "\n"),
  };
}

/** Thrown when a benchmarked command fails; `reason` is always "CommandFailed". */
export class CommandError extends Error {
  /** Stable machine-readable reason. */
  readonly reason = "CommandFailed";
  /** Creates the error with the command line and the tail of its output. */
  constructor(readonly command: string, readonly result: RunResult) {
    const tail = (result.stderr.trim() || result.stdout.trim()).split("\n").slice(-15).join("\n");
    super(`${command} exited with ${result.code}:\n${tail}`);
    this.name = "CommandError";
  }
}

/** Memory of a process from /proc/<pid>/status, in KiB. */
export interface ProcMemory {
  /** VmHWM: peak resident set size. */
  hwm: number;
  /** VmRSS: resident set size now. */
  rss: number;
  /** RssAnon: the anonymous part of VmRSS (heaps, stacks) — not the mapped executable's pages. */
  anon?: number;
}

/** Reads VmHWM, VmRSS and RssAnon (KiB) of a live process; undefined once it has exited. */
export function readMemory(pid: number): ProcMemory | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return undefined;
  }
  return parseProcStatus(text);
}

/** Parses VmHWM, VmRSS and RssAnon (KiB) out of a /proc/<pid>/status text (undefined for a zombie). */
export function parseProcStatus(text: string): ProcMemory | undefined {
  const hwm = text.match(/^VmHWM:\s+(\d+) kB/m);
  const rss = text.match(/^VmRSS:\s+(\d+) kB/m);
  if (!hwm || !rss) return undefined;
  const m: ProcMemory = { hwm: Number(hwm[1]), rss: Number(rss[1]) };
  const anon = text.match(/^RssAnon:\s+(\d+) kB/m);
  if (anon) m.anon = Number(anon[1]);
  return m;
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
  return text;
}

/** Runs `cmd args…` to completion, timing it and sampling its peak RSS. */
export async function runMeasured(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const env = { ...opts.env };
  if (opts.clearEnv) {
    env.PATH ??= Deno.env.get("PATH") ?? "/usr/bin:/bin";
    env.HOME ??= Deno.env.get("HOME") ?? "/root";
  }
  if (opts.cpu) [cmd, args] = ["/usr/bin/time", ["-q", "-f", TIME_FORMAT, cmd, ...args]];
  const t0 = performance.now();
  const child = new Deno.Command(cmd, {
    args,
    env,
    clearEnv: opts.clearEnv ?? false,
    cwd: opts.cwd,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let peak: number | undefined;
  let last: number | undefined;
  const sample = () => {
    const m = readMemory(child.pid);
    if (m) {
      peak = Math.max(peak ?? 0, m.hwm);
      last = m.rss;
    }
  };
  sample();
  const sampler = setInterval(sample, opts.sampleMs ?? 20);
  let timedOut = false;
  const killer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, opts.timeoutMs ?? 600_000);
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const [stdout, stderr, status] = await Promise.all([
    collect(child.stdout),
    collect(child.stderr),
    child.status,
  ]);
  const ms = performance.now() - t0;
  clearInterval(sampler);
  clearTimeout(killer);
  const result: RunResult = {
    ms,
    code: timedOut ? 124 : status.code,
    stdout,
    stderr: timedOut ? `${stderr}\n(killed after ${opts.timeoutMs ?? 600_000} ms)` : stderr,
  };
  if (opts.cpu) {
    // the sampled pid is GNU time's: its rusage line has the command's own figures
    const r = parseRusage(result.stderr);
    result.stderr = r.stderr;
    if (r.cpuMs !== undefined) result.cpuMs = r.cpuMs;
    if (r.maxRssKiB !== undefined) result.peakRssKiB = r.maxRssKiB;
    return result;
  }
  if (peak !== undefined) result.peakRssKiB = peak;
  if (last !== undefined) result.lastRssKiB = last;
  return result;
}

/** Like {@linkcode runMeasured}, but throws a CommandError on a non-zero exit. */
export async function runChecked(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await runMeasured(cmd, args, opts);
  if (r.code !== 0) throw new CommandError(`${cmd} ${args.join(" ")}`, r);
  return r;
}

/** Median of some numbers (mean of the middle two for an even count). */
export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
