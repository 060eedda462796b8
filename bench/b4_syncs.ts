/**
 * The operator's peak RSS (VmHWM) while it copies LARGE images, at several `--max-concurrent-syncs`:
 * what the default's memory allows. Each ImageSync copies its own repository of one image (same
 * bytes in every repository, so the source registry holds them once), in the shipped form (the
 * bundle `deno task compile` embeds, its flags and the image's ENV), runs interleaved.
 *
 * ```sh
 * deno run -A bench/b4_syncs.ts [--runs 3] [--syncs 10] [--concurrency 2,4] [--max-transfers 8,64] [--shape 4x50,40x1]
 * ```
 *
 * A shape is `<layers>x<MiB>` or `<layers>x<KiB>k`. Every pair of `--concurrency` (the operator's
 * `--max-concurrent-syncs`) and `--max-transfers` (its transfer budget; unset: the operator's
 * default, no flag) is a form; the forms run in turn within each run (A, B, A, B…), so the
 * machine's load falls on all of them. Prints one line per run (time to all Ready, the
 * operator's CPU and apiserver requests, peak and idle RSS) and a summary per shape and form.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { pushImage } from "../tests/harness/fixtures.ts";
import { pool } from "./b2_unchanged.ts";
import type { BaselineContext } from "./baseline.ts";
import type { BenchContext } from "./context.ts";
import { withRegistry } from "./context.ts";
import {
  concurrencyVariant,
  type Operator,
  SA_NAME,
  SA_NAMESPACE,
  type ScaleEnv,
  type ScaleForm,
  type ScaleRun,
  scaleRun,
  startAuditedCluster,
} from "./b5_scale.ts";
import { buildBundleForm, denoDir, type PortagerForm } from "./tools.ts";

const MiB = 1024 * 1024;

/** A shape of image: `layers` layers of `bytes` bytes each, named `label`. */
export interface Shape {
  layers: number;
  bytes: number;
  label: string;
}

/** Parses "4x50" into 4 layers of 50 MiB, "40x1025k" into 40 layers of 1025 KiB. */
export function parseShape(text: string): Shape {
  const m = /^(\d+)x(\d+)(k?)$/.exec(text.trim());
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) {
    throw new Error(`a shape is <layers>x<MiB> or <layers>x<KiB>k, e.g. 4x50; got "${text}"`);
  }
  const [layers, n, kib] = [Number(m[1]), Number(m[2]), m[3] === "k"];
  return { layers, bytes: n * (kib ? 1024 : MiB), label: `${layers} × ${n} ${kib ? "KiB" : "MiB"}` };
}

/**
 * `form` at `--max-concurrent-syncs n` and, when `budget` is set, `--max-transfers budget`;
 * `label` names both ("8:8" style figures in the summary: "syncs 8, transfers 8").
 */
export function transfersVariant(
  form: PortagerForm,
  n: number,
  budget?: number,
): ScaleForm & { label: string } {
  const base = concurrencyVariant(form, n);
  if (budget === undefined) return { ...base, label: `syncs ${n}` };
  return {
    ...base,
    form: `${base.form}, --max-transfers ${budget}`,
    runArgs: [...base.runArgs ?? [], `--max-transfers=${budget}`],
    label: `syncs ${n}, transfers ${budget}`,
  };
}

/** One run's figures: Ready count and time, the operator's CPU and apiserver requests, RSS. */
function runLine(run: ScaleRun, syncs: number): string {
  const kinds = Object.entries(run.requests.byKind).map(([k, n]) => `${k} ${n}`).join(", ");
  // the stack's CPU (registries, apiserver, etcd, operator) bounds a loopback copy's time
  const stack = (role: string) => ((run.stackCpuPer[role] ?? 0) * Math.max(1, run.ready) / 1000).toFixed(2);
  return `${run.ready}/${syncs} Ready in ${(run.readyMs / 1000).toFixed(1)} s, CPU ${
    (run.cpuMs / 1000).toFixed(2)
  } s (stack ${stack("total")} s, registries ${
    stack("registries")
  } s), apiserver requests ${run.requests.total} (${kinds}), peak RSS ${
    (run.peakRssKiB / 1024).toFixed(1)
  } MiB, idle ${(run.idleRssKiB / 1024).toFixed(1)} MiB${
    run.failed.length ? `, failed: ${run.failed[0].message}` : ""
  }`;
}

/** The machine's 1-minute load average (other processes share it: the figures move with it). */
async function loadAverage(): Promise<string> {
  return (await Deno.readTextFile("/proc/loadavg").catch(() => "?")).split(" ")[0];
}

/** min–max of `values` with `digits` decimals. */
function range(values: number[], digits = 1): string {
  return `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`;
}

/** A form's runs: ranges of peak, time to all Ready, CPU and apiserver requests. */
function summary(runs: ScaleRun[]): string {
  return `peak ${range(runs.map((r) => r.peakRssKiB / 1024))} MiB, time ${
    range(runs.map((r) => r.readyMs / 1000))
  } s, CPU ${range(runs.map((r) => r.cpuMs / 1000), 2)} s, stack CPU ${
    range(runs.map((r) => (r.stackCpuPer.total ?? 0) * Math.max(1, r.ready) / 1000), 2)
  } s, requests ${range(runs.map((r) => r.requests.total), 0)} (${runs.length} runs)`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: "string", default: "3" },
      syncs: { type: "string", default: "10" },
      concurrency: { type: "string", default: "2,4" },
      "max-transfers": { type: "string" },
      shape: { type: "string", default: "4x50,40x1" },
    },
  });
  const runs = Number(values.runs);
  const syncs = Number(values.syncs);
  const concurrencies = values.concurrency.split(",").map(Number);
  const budgets = values["max-transfers"]?.split(",").map(Number) ?? [undefined];
  const shapes = values.shape.split(",").map(parseShape);
  if (
    ![runs, syncs, ...concurrencies, ...budgets.map((b) => b ?? 1)].every((n) =>
      Number.isInteger(n) && n >= 1
    )
  ) {
    throw new Error("--runs, --syncs, each --concurrency and each --max-transfers must be whole numbers ≥ 1");
  }
  const log = (s: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
  const scratch = await Deno.makeTempDir({ prefix: "portager-b4syncs-" });
  const formEnv = { DENO_DIR: await denoDir() };
  const portager = await buildBundleForm(scratch, formEnv);
  log(`Portager: ${portager.describe}`);
  const forms = concurrencies.flatMap((n) => budgets.map((b) => transfersVariant(portager, n, b)));
  const ctx: BenchContext & BaselineContext = {
    quick: true, // 5 s settle, 3 s idle sample after all Ready: the peak is the copy's
    runs,
    portager,
    portagerSource: portager,
    peers: [],
    scratch,
    log,
  };
  const { kube, auditLines } = await startAuditedCluster(ctx, "b4s-");
  const operators: Operator[] = [];
  const lines: string[] = [];
  let index = 0;
  try {
    await withRegistry(async (source) => {
      const token = await kube.tokenFor(SA_NAMESPACE, SA_NAME, { expirationSeconds: 7200 });
      const kubeconfig = await kube.kubeconfigForToken(token, { namespace: SA_NAMESPACE });
      for (const [s, shape] of shapes.entries()) {
        const label = shape.label;
        log(`pushing ${syncs} images of ${label}`);
        const names = Array.from({ length: syncs }, (_, i) => `big${s}-${String(i).padStart(3, "0")}`);
        const digests = new Map<string, string>();
        await pool(names, 2, async (name) => {
          const pushed = await pushImage(source, { repository: `bench/${name}`, tag: "1.0" }, {
            seed: 7000 + s,
            layers: Array(shape.layers).fill(shape.bytes),
          });
          digests.set(name, pushed.digest);
        });
        const env: ScaleEnv = { kube, source, kubeconfig, names, digests, auditLines, operators };
        const byForm = new Map<string, ScaleRun[]>();
        for (let r = 0; r < runs; r++) {
          for (const form of forms) {
            const run = await scaleRun(ctx, env, form, index++);
            const line = `${label}, ${syncs} ImageSyncs, ${form.label}: ${
              runLine(run, syncs)
            }, load ${await loadAverage()}`;
            log(line);
            lines.push(line);
            byForm.set(form.label, [...byForm.get(form.label) ?? [], run]);
          }
        }
        for (const form of forms) {
          lines.push(`SUMMARY ${label} at ${form.label}: ${summary(byForm.get(form.label)!)}`);
        }
      }
    });
  } finally {
    await kube.stop();
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
  console.log(lines.join("\n"));
}

if (import.meta.main) await main();
