/**
 * Portager's benchmarks side by side with skopeo, crane, regctl and regsync (issue 8):
 * B1 cold copy, B2 unchanged sync (also with latency), B3 shared layers, B4 memory, B5 scale,
 * B6 throughput vs shard count. Everything runs on 127.0.0.1 against real registries (and etcd +
 * kube-apiserver for B4's operator, B5 and B6).
 *
 *   deno run -A bench/run.ts [--quick] [--only B1,B3] [--runs N] [--no-build] [--no-save]
 *                            [--baseline <commit>|none]
 *
 * B5 also runs the operator of `--baseline` (default: issue 16's, bench/baseline.ts) and reports
 * today's forms as ratios to it; `--baseline none` skips it.
 *
 * Prints a markdown table per case on stdout, writes bench/results/<date>.json, and (unless
 * --no-save) the latest tables into docs/PERFORMANCE.md between its result markers.
 * @module
 */

import { parseArgs } from "node:util";
import type { BenchContext, CaseResult } from "./context.ts";
import { runB1 } from "./b1_copy.ts";
import { runB2 } from "./b2_unchanged.ts";
import { runB3 } from "./b3_shared.ts";
import { runB4Copy } from "./b4_memory.ts";
import { runB5 } from "./b5_scale.ts";
import { runB6 } from "./b6_shards.ts";
import { machineInfo, markdownReport } from "./report.ts";
import { buildBundleForm, buildVersion, denoDir, denoVersion, findPeers, ROOT, sourceForm } from "./tools.ts";
import { runMeasured } from "./measure.ts";
import { BASELINE_COMMIT, type BaselineContext } from "./baseline.ts";

const CASES: Record<string, (ctx: BenchContext) => Promise<CaseResult[]>> = {
  B1: async (ctx) => [await runB1(ctx)],
  B2: async (ctx) => await runB2(ctx),
  B3: async (ctx) => [await runB3(ctx)],
  B4: async (ctx) => [await runB4Copy(ctx)],
  B5: async (ctx) => await runB5(ctx),
  B6: async (ctx) => [await runB6(ctx)],
};

const MARK_BEGIN = "<!-- bench:results:begin -->";
const MARK_END = "<!-- bench:results:end -->";

function log(message: string): void {
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

async function versionOf(cmd: string, args: string[], pattern: RegExp): Promise<string> {
  try {
    const r = await runMeasured(cmd, args, { timeoutMs: 20_000 });
    return (r.stdout + r.stderr).match(pattern)?.[1] ?? "unknown";
  } catch {
    return "unavailable";
  }
}

/** Replaces the text between the result markers of docs/PERFORMANCE.md (adds them if absent). */
export function spliceResults(doc: string, results: string): string {
  const begin = doc.indexOf(MARK_BEGIN);
  const end = doc.indexOf(MARK_END);
  const block = `${MARK_BEGIN}\n\n${results.trimEnd()}\n\n${MARK_END}`;
  if (begin < 0 || end < begin) return `${doc.trimEnd()}\n\n${block}\n`;
  return doc.slice(0, begin) + block + doc.slice(end + MARK_END.length);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      runs: { type: "string" },
      "no-build": { type: "boolean", default: false },
      "no-save": { type: "boolean", default: false },
      baseline: { type: "string", default: BASELINE_COMMIT },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(
      "Usage: deno run -A bench/run.ts [--quick] [--only B1,B2,…] [--runs N] [--no-build] [--no-save] [--baseline <commit>|none]",
    );
    return 0;
  }
  const only = values.only ? values.only.toUpperCase().split(",").map((s) => s.trim()) : Object.keys(CASES);
  for (const id of only) {
    if (!CASES[id]) {
      console.error(`unknown case ${id}; cases are ${Object.keys(CASES).join(", ")}`);
      return 2;
    }
  }
  const quick = values.quick;
  const runs = values.runs ? Number(values.runs) : quick ? 1 : 5;
  if (!Number.isInteger(runs) || runs < 1) {
    console.error(`--runs must be a whole number ≥ 1`);
    return 2;
  }

  const started = performance.now();
  const scratch = await Deno.makeTempDir({ prefix: "portager-bench-" });
  try {
    const peers = await findPeers({ build: !values["no-build"], log });
    for (const p of peers) log(p.path ? `${p.name} ${p.version}: ${p.path}` : `${p.name}: ${p.missing}`);
    const formEnv = { DENO_DIR: await denoDir() };
    let portager = sourceForm(formEnv);
    let bundleProblem: string | undefined;
    try {
      portager = await buildBundleForm(scratch, formEnv);
      log(`Portager: ${portager.describe}`);
    } catch (e) {
      bundleProblem = (e as Error).message;
      log(`the bundle could not be built; measuring the source form instead:\n${bundleProblem}`);
    }
    const ctx: BenchContext & BaselineContext = {
      quick,
      runs,
      portager,
      portagerSource: sourceForm(formEnv),
      bundleProblem,
      peers,
      scratch,
      log,
      baseline: values.baseline === "none" ? undefined : values.baseline,
    };

    const results: CaseResult[] = [];
    for (const id of only) {
      log(`${id} …`);
      const t0 = performance.now();
      try {
        results.push(...await CASES[id](ctx));
      } catch (e) {
        log(`${id} failed: ${(e as Error).stack}`);
        results.push({
          id,
          title: "failed",
          tables: [],
          notes: [`the case failed: ${(e as Error).message.split("\n")[0]}`],
          data: { error: String((e as Error).stack) },
        });
      }
      log(`${id} took ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    }

    results.sort((x, y) => x.id.localeCompare(y.id)); // B5 also reports B4's operator half
    const versions: Record<string, string> = {
      deno: await denoVersion(),
      portager: portager.form === "bundle" ? "bundle (deno task bundle)" : "source (main.ts)",
    };
    for (const p of peers) versions[p.name] = p.version ?? "unavailable";
    versions["docker-registry"] = await versionOf(
      "/usr/bin/docker-registry",
      ["--version"],
      /(v?\d+\.\d+\.\d+\S*)/,
    );
    if (only.includes("B5") || only.includes("B4")) versions["kube-apiserver"] = buildVersion("KUBE_VERSION");
    const machine = machineInfo(versions);
    const date = new Date().toISOString().slice(0, 10);
    const secs = (performance.now() - started) / 1000;
    const markdown = markdownReport(results, { date, quick, machine, seconds: secs });
    console.log(markdown);

    if (!values["no-save"]) {
      await Deno.mkdir(`${ROOT}/bench/results`, { recursive: true });
      const suffix = quick ? "-quick" : only.length < Object.keys(CASES).length ? `-${only.join("")}` : "";
      const file = `${ROOT}/bench/results/${date}${suffix}.json`;
      await Deno.writeTextFile(
        file,
        JSON.stringify({ date, quick, runs, only, seconds: secs, machine, bundleProblem, results }, null, 2) +
          "\n",
      );
      log(`wrote ${file}`);
      if (!quick && only.length === Object.keys(CASES).length) {
        const docFile = `${ROOT}/docs/PERFORMANCE.md`;
        const doc = await Deno.readTextFile(docFile).catch(() => "# Performance\n");
        await Deno.writeTextFile(docFile, spliceResults(doc, markdown));
        log(`updated ${docFile}`);
      }
    }
    return results.some((r) => r.title === "failed") ? 1 : 0;
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) Deno.exit(await main());
