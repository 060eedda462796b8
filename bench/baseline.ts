/**
 * The baseline of issue 16's ratios: the operator as it was when the issue was filed, built
 * from `git archive <commit>` into the bench's scratch folder and run in the form that tree
 * shipped (its own bundle task, its own compile task's runtime flags, its own image ENV), so
 * B5 measures it in the same run, on the same apiserver and registries, as today's operator.
 *
 * The commit is fc7475b, the last of session 1 (2026-11-26 20:53 UTC): issue 16 quotes
 * figures of that tree (PERFORMANCE.md's "121–123 MiB", written at e0bce5f) and session 2,
 * whose first commit (4bcf2ac) has fc7475b as its parent, is where work on the issue began
 * (its first issue-16 commit, 65b91bc, comes after commits for issues 12–15 that are not part
 * of the issue's "today").
 *
 * Dependencies come from Deno's global cache (`nodeModulesDir: none`), with the old tree's own
 * lock file frozen: nothing is fetched when the cache holds the locked versions.
 * @module
 */

import type { BenchContext } from "./context.ts";
import { runMeasured } from "./measure.ts";
import {
  bundleCommandOf,
  compileEntryOf,
  compileFlagsOf,
  DENO,
  imageEnvOf,
  type PortagerForm,
  ROOT,
  shellWords,
} from "./tools.ts";

/** The tree issue 16's "today" refers to (see the module doc for why this commit). */
export const BASELINE_COMMIT = "fc7475b62d0a6916f204974710e63b4e618aa070";

/** What {@linkcode runB5}'s context may carry: the baseline's commit, or none to skip it. */
export interface BaselineContext {
  /** Commit (or any git revision) of the baseline operator; undefined skips the baseline row. */
  baseline?: string;
}

/** How a tree's `deno task bundle` is run into a scratch folder, and what `deno compile` would run. */
export interface BundlePlan {
  /** Arguments of `deno` that build the bundle (output redirected, lock file frozen). */
  args: string[];
  /** The file the compiled binary runs (absolute, inside the output folder). */
  entry: string;
  /** The compile task's runtime flags (permissions, V8 flags, `--no-code-cache`). */
  flags: string[];
}

/**
 * The bundle and compile commands of a tree's deno.json `tasks`, redirected into `outdir`: a
 * single-file bundle (`--output=dist/portager.js`, as at the baseline) or a split one
 * (`--outdir=dist/bundle --code-splitting`, as today). Throws when the tasks are not one of
 * those shapes or the compile task does not embed the bundle's output.
 */
export function bundlePlan(tasks: Record<string, string>, outdir: string): BundlePlan {
  const bundle = (tasks.bundle ?? "").split("&&").map((s) => s.trim()).find((s) =>
    s.startsWith("deno bundle")
  );
  const compile = tasks.compile ?? "";
  if (!bundle) throw new Error(`the tree has no deno bundle task: ${tasks.bundle}`);
  const flags = compileFlagsOf(compile);
  if (!flags.length) throw new Error(`the tree's compile task has no deno compile step: ${compile}`);
  let args: string[];
  let entry: string;
  if (bundle.includes("--outdir=")) {
    const split = bundleCommandOf(bundle, outdir);
    args = split.args;
    entry = `${outdir}/${compileEntryOf(compile, split.dir)}`;
  } else {
    const words = shellWords(bundle).slice(1);
    const output = words.find((w) => w.startsWith("--output="))?.slice("--output=".length);
    const compiled = shellWords(
      compile.split("&&").map((s) => s.trim()).find((s) => s.startsWith("deno compile")) ?? "",
    ).at(-1);
    if (!output || compiled !== output) {
      throw new Error(`deno compile does not embed the bundle's output (${output}): ${compile}`);
    }
    entry = `${outdir}/${output.split("/").at(-1)}`;
    args = words.map((w) => w.startsWith("--output=") ? `--output=${entry}` : w);
  }
  return { args: [args[0], "--frozen", ...args.slice(1)], entry, flags };
}

async function ok(what: string, r: Promise<{ code: number; stderr: string }>): Promise<void> {
  const done = await r;
  if (done.code !== 0) throw new Error(`${what} failed (${done.code}):\n${done.stderr.slice(-1500)}`);
}

/**
 * Builds the operator of `commit` in the form its tree shipped: `git archive` into
 * `<scratch>/baseline-<commit>`, its bundle task run there (its lock file frozen, Deno's cache
 * only), and run as its compile task's binary would (no config, the task's runtime flags, the
 * image's ENV from its Dockerfile). `env` is the bench's own (DENO_DIR). Throws with the
 * failing step's output.
 */
export async function buildBaselineForm(
  commit: string,
  opts: { scratch: string; env: Record<string, string> },
): Promise<PortagerForm> {
  const rev = await runMeasured("git", ["rev-parse", "--verify", "--short", `${commit}^{commit}`], {
    cwd: ROOT,
  });
  if (rev.code !== 0) throw new Error(`commit ${commit} is not in this clone (a shallow clone?)`);
  const short = rev.stdout.trim();
  const tree = `${opts.scratch}/baseline-${short}`;
  await Deno.mkdir(tree, { recursive: true });
  await ok("git archive", runMeasured("git", ["archive", "--output", `${tree}.tar`, short], { cwd: ROOT }));
  await ok("tar", runMeasured("tar", ["-xf", `${tree}.tar`, "-C", tree]));
  const json = JSON.parse(await Deno.readTextFile(`${tree}/deno.json`));
  const plan = bundlePlan(json.tasks ?? {}, `${tree}/dist`);
  await ok(`deno ${plan.args.join(" ")}`, runMeasured(DENO, plan.args, { cwd: tree, timeoutMs: 300_000 }));
  const imageEnv = imageEnvOf(await Deno.readTextFile(`${tree}/Dockerfile`));
  const env = { ...opts.env, ...imageEnv };
  const args = ["run", "--no-config", "--no-prompt", ...plan.flags, plan.entry];
  // as for today's bundle: the first `deno run` of a script caches its analysis; warm it
  const warm = await runMeasured(DENO, [...args, "version"], { env, timeoutMs: 60_000 });
  if (warm.code !== 0) throw new Error(`the baseline bundle does not run:\n${warm.stderr.slice(-1500)}`);
  return {
    form: `baseline ${short}`,
    cmd: DENO,
    args,
    describe: `the operator at ${short} (issue 16's "today"): ${
      Object.entries(imageEnv).map(([k, v]) => `${k}=${v} `).join("")
    }deno run ${plan.flags.join(" ")} ${plan.entry.slice(tree.length + 1)}, its own bundle and compile flags`,
    env,
  };
}

/**
 * The baseline form for a case, built into the bench's scratch folder, or why there is none
 * (skipped with `--baseline none`, or the build failed: the case goes on without it and says so).
 */
export async function baselineFor(
  ctx: BenchContext & BaselineContext,
): Promise<{ form?: PortagerForm; problem?: string }> {
  if (!ctx.baseline) return { problem: "skipped (--baseline none)" };
  try {
    const form = await buildBaselineForm(ctx.baseline, {
      scratch: ctx.scratch,
      env: "DENO_DIR" in ctx.portager.env ? { DENO_DIR: ctx.portager.env.DENO_DIR } : {},
    });
    ctx.log(`baseline: ${form.describe}`);
    return { form };
  } catch (e) {
    const problem = `could not be built: ${(e as Error).message}`;
    ctx.log(`baseline ${ctx.baseline} ${problem}`);
    return { problem };
  }
}

/** What {@linkcode vsBaseline} reads of one B5 run. */
export interface RunFigures {
  /** The form's name ({@linkcode PortagerForm.form}). */
  form: string;
  /** How many ImageSyncs became Ready. */
  ready: number;
  /** Created → all Ready, ms. */
  readyMs: number;
  /** Apiserver requests from start to all Ready. */
  requests: { total: number };
  /** Operator CPU (utime + stime) over the same span, ms, when measured. */
  cpuMs?: number;
  /** The stack's CPU per ImageSync by role, with its `total` (bench/stack_cpu.ts), when measured. */
  stackCpuPer?: { total?: number };
}

/**
 * One note per run of today's forms, as ratios to the baseline's run (`baseline`): time to all
 * Ready, apiserver requests and, when both were measured, operator CPU and the whole stack's
 * CPU per ImageSync (steadier than time on a shared machine). Empty when the
 * baseline or a form did not get all `count` Ready (a ratio of unequal work means nothing).
 */
export function vsBaseline(
  runs: RunFigures[],
  baseline: string,
  count: number,
  cores = navigator.hardwareConcurrency,
): string[] {
  const base = runs.find((r) => r.form === baseline);
  if (!base) return [];
  if (base.ready !== count) return [`${baseline}: not all Ready (${base.ready}/${count}), no ratio`];
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
  return runs.filter((r) => r !== base && r.ready === count).map((r) => {
    const parts = [
      `time to all Ready ${ratio(r.readyMs, base.readyMs)} (${(r.readyMs / 1000).toFixed(1)} s vs ${
        (base.readyMs / 1000).toFixed(1)
      } s)`,
      `apiserver requests ${ratio(r.requests.total, base.requests.total)}`,
    ];
    if (r.cpuMs !== undefined && base.cpuMs !== undefined) {
      parts.push(`operator CPU ${ratio(r.cpuMs, base.cpuMs)}`);
    }
    const [stack, baseStack] = [r.stackCpuPer?.total, base.stackCpuPer?.total];
    if (stack !== undefined && baseStack !== undefined) {
      parts.push(`the stack's CPU per ImageSync ${ratio(stack, baseStack)} (${stack} vs ${baseStack} ms)`);
      // every process of the stack shares these cores: with all of them busy the whole time,
      // `count` ImageSyncs cannot be Ready sooner than their CPU divided by the cores
      const boundMs = (count * stack) / Math.max(1, cores);
      parts.push(
        `CPU bound ${(boundMs / 1000).toFixed(1)} s = ${
          ratio(boundMs, base.readyMs)
        } (${count} × ${stack} ms ÷ ${cores} cores: no sooner even with every core busy throughout)`,
      );
    }
    return `${r.form} vs ${baseline}: ${parts.join(", ")}`;
  });
}
