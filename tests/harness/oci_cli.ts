/**
 * The registry CLIs users sign, attach and inspect images with — `cosign`, `oras`, `crane` —
 * built from their Go modules by scripts/build-tools.sh and run here with a clean environment:
 * a throw-away HOME (so no ~/.docker/config.json, cosign cache or oras credential store of the
 * machine leaks in), PATH, and only the variables a test passes.
 *
 * ```ts
 * const keys = await cosign(["generate-key-pair"], { cwd: dir, env: { COSIGN_PASSWORD: "pw" }, check: true });
 * const { stdout } = await crane(["digest", `${reg.host}/app:v1`], { check: true });
 * ```
 *
 * Registries on 127.0.0.1 are spoken to over plain HTTP by all three (go-containerregistry and
 * oras-go treat loopback hosts as insecure; oras needs `--plain-http`).
 * @module
 */

import { toolPath } from "./tools.ts";

/** What a CLI run produced. */
export interface CliResult {
  /** The exit code (non-zero on failure). */
  code: number;
  /** Everything it wrote to stdout. */
  stdout: string;
  /** Everything it wrote to stderr. */
  stderr: string;
}

/** Options for {@linkcode cosign}, {@linkcode oras} and {@linkcode crane}. */
export interface CliOptions {
  /** Extra environment, e.g. `{ COSIGN_PASSWORD: "…" }` (HOME and PATH are set already). */
  env?: Record<string, string>;
  /** Working directory (default: the throw-away HOME). */
  cwd?: string;
  /** Bytes for stdin (default: none, stdin is closed). */
  stdin?: string | Uint8Array;
  /** Kill the tool and throw CliError("CliTimeout") after this long (default 120 s). */
  timeoutMs?: number;
  /** Throw CliError("CliFailed") when the exit code is not 0 (default false). */
  check?: boolean;
}

/** A CLI failed (with `check`) or timed out; `reason` is CliFailed or CliTimeout. */
export class CliError extends Error {
  /** Stable machine-readable reason. */
  readonly reason: "CliFailed" | "CliTimeout";
  /** Creates the error for `tool` run with `args`; secrets among the args are masked. */
  constructor(
    reason: "CliFailed" | "CliTimeout",
    readonly tool: string,
    args: string[],
    readonly result: CliResult,
  ) {
    super(
      `${tool} ${maskArgs(args).join(" ")} ${
        reason === "CliTimeout" ? "timed out" : `exited ${result.code}`
      }\n--- stderr ---\n${result.stderr.trim()}\n--- stdout ---\n${result.stdout.trim()}`,
    );
    this.name = "CliError";
    this.reason = reason;
  }
}

const SECRET_FLAGS = new Set(["-p", "--password", "--registry-password", "--identity-token"]);

/** The args with the value of any password-like flag replaced by "***". */
function maskArgs(args: string[]): string[] {
  return args.map((a, i) => {
    if (i > 0 && SECRET_FLAGS.has(args[i - 1])) return "***";
    const eq = a.indexOf("=");
    return eq > 0 && SECRET_FLAGS.has(a.slice(0, eq)) ? `${a.slice(0, eq)}=***` : a;
  });
}

async function runTool(
  tool: "cosign" | "oras" | "crane",
  args: string[],
  opts: CliOptions,
): Promise<CliResult> {
  const bin = toolPath(tool);
  const home = await Deno.makeTempDir({ prefix: `portager-${tool}-home-` });
  try {
    const controller = new AbortController();
    const child = new Deno.Command(bin, {
      args,
      cwd: opts.cwd ?? home,
      clearEnv: true,
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOME: home,
        DOCKER_CONFIG: `${home}/.docker`,
        ...opts.env,
      },
      stdin: opts.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      signal: controller.signal,
    }).spawn();
    if (opts.stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(
        typeof opts.stdin === "string" ? new TextEncoder().encode(opts.stdin) : opts.stdin,
      );
      await w.close();
    }
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, opts.timeoutMs ?? 120_000);
    const out = await child.output().finally(() => clearTimeout(timer));
    const result: CliResult = {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
    if (timedOut) throw new CliError("CliTimeout", tool, args, result);
    if (opts.check && result.code !== 0) throw new CliError("CliFailed", tool, args, result);
    return result;
  } finally {
    await Deno.remove(home, { recursive: true }).catch(() => {});
  }
}

/**
 * Runs `cosign` (sigstore/cosign v2). Key-based signing without a transparency log:
 * `["sign", "--key", keyFile, "--tlog-upload=false", "--yes", ref]` with COSIGN_PASSWORD in `env`.
 */
export function cosign(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return runTool("cosign", args, opts);
}

/**
 * Runs `oras` (oras-project/oras). Attach a referrer:
 * `["attach", "--plain-http", "--artifact-type", type, ref, "file:mediaType"]` with `cwd` set
 * to the folder holding the file.
 */
export function oras(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return runTool("oras", args, opts);
}

/** Runs `crane` (go-containerregistry), e.g. `["digest", ref]` or `["copy", src, dst]`. */
export function crane(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return runTool("crane", args, opts);
}
