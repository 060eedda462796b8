/**
 * A child process whose stdout is read line by line, for the harness's line-speaking tools
 * (the referrers registry, the leader-election peer): collect the lines, wait for one that
 * matches, stop with a grace period.
 * @module
 */

import { pumpLines } from "./process.ts";

/** The line wait ran out of time or the process ended first; `reason` says which. */
export class LineWaitError extends Error {
  /** Stable machine-readable reason. */
  readonly reason: "LineTimeout" | "ProcessExited";
  /** Creates the error; `output` is the tail of what the process printed. */
  constructor(reason: "LineTimeout" | "ProcessExited", message: string, output: string[]) {
    super(`${message}\n--- output ---\n${output.slice(-40).join("\n")}`);
    this.name = "LineWaitError";
    this.reason = reason;
  }
}

/** Options for {@linkcode LineProcess.waitFor}. */
export interface WaitForOptions {
  /** Give up after this long (default 30 s). */
  timeoutMs?: number;
  /** Index in `stdout` to start looking from (default 0: any line so far counts). */
  since?: number;
}

/** A running child process; its stdout and stderr lines are kept in order. */
export interface LineProcess {
  /** The process id. */
  readonly pid: number;
  /** Every stdout line so far (the live array: do not modify). */
  readonly stdout: readonly string[];
  /** Every stderr line so far. */
  readonly stderr: readonly string[];
  /** Resolves with the exit status; the pipes are drained by then. */
  readonly status: Promise<Deno.CommandStatus>;
  /** True once the process has exited. */
  exited(): boolean;
  /**
   * Resolves with the index in `stdout` of the first line at or after `since` that equals
   * `line` (a string) or matches it (a RegExp). Rejects with LineWaitError on timeout or exit.
   */
  waitFor(line: string | RegExp, opts?: WaitForOptions): Promise<number>;
  /** Sends `signal` (default SIGTERM), waits up to `graceMs` (default 5 s), then SIGKILL. */
  stop(opts?: { signal?: Deno.Signal; graceMs?: number }): Promise<Deno.CommandStatus>;
}

/** Spawns `cmd` with `args` and a clean environment (`env` plus PATH). */
export function spawnLineProcess(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string> } = {},
): LineProcess {
  const child = new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", ...opts.env },
  }).spawn();
  const stdout: string[] = [];
  const stderr: string[] = [];
  let done = false;
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  const pumps = Promise.all([
    pumpLines(child.stdout, (l) => {
      stdout.push(l);
      wake();
    }),
    pumpLines(child.stderr, (l) => stderr.push(l)),
  ]);
  const status = (async () => {
    const s = await child.status;
    await pumps;
    done = true;
    wake();
    return s;
  })();
  const matches = (l: string, line: string | RegExp) => typeof line === "string" ? l === line : line.test(l);
  const output = () => [...stdout, ...stderr.map((l) => `stderr: ${l}`)];

  function waitFor(line: string | RegExp, o: WaitForOptions = {}): Promise<number> {
    const timeoutMs = o.timeoutMs ?? 30_000;
    return new Promise<number>((resolve, reject) => {
      let next = o.since ?? 0;
      const check = () => {
        for (; next < stdout.length; next++) {
          if (matches(stdout[next], line)) {
            finish();
            resolve(next);
            return;
          }
        }
        if (done) {
          finish();
          reject(new LineWaitError("ProcessExited", `${cmd} exited before printing ${line}`, output()));
        }
      };
      const finish = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      const timer = setTimeout(() => {
        finish();
        reject(new LineWaitError("LineTimeout", `${cmd} printed no ${line} in ${timeoutMs} ms`, output()));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  }

  async function stop(o: { signal?: Deno.Signal; graceMs?: number } = {}) {
    if (!done) {
      try {
        child.kill(o.signal ?? "SIGTERM");
      } catch { /* already gone */ }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const exited = await Promise.race([
        status.then(() => true),
        new Promise<boolean>((r) => timer = setTimeout(() => r(false), o.graceMs ?? 5000)),
      ]);
      clearTimeout(timer);
      if (!exited) {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }
    }
    return await status;
  }

  return { pid: child.pid, stdout, stderr, status, exited: () => done, waitFor, stop };
}
