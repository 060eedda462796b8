/**
 * The operator's peak RSS (VmHWM) while it copies LARGE images, at several `--max-concurrent-syncs`:
 * what the default's memory allows. Each ImageSync copies its own repository of one image (same
 * bytes in every repository, so the source registry holds them once), in the shipped form (the
 * bundle `deno task compile` embeds, its flags and the image's ENV), runs interleaved.
 *
 * ```sh
 * deno run -A bench/b4_syncs.ts [--runs 3] [--syncs 10] [--concurrency 2,4] [--shape 4x50,40x1]
 * ```
 *
 * A shape is `<layers>x<MiB>` or `<layers>x<KiB>k`. Prints one line per run and a summary per shape and concurrency.
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
  scaleRun,
  startAuditedCluster,
} from "./b5_scale.ts";
import { buildBundleForm, denoDir } from "./tools.ts";

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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: "string", default: "3" },
      syncs: { type: "string", default: "10" },
      concurrency: { type: "string", default: "2,4" },
      shape: { type: "string", default: "4x50,40x1" },
    },
  });
  const runs = Number(values.runs);
  const syncs = Number(values.syncs);
  const concurrencies = values.concurrency.split(",").map(Number);
  const shapes = values.shape.split(",").map(parseShape);
  if (![runs, syncs, ...concurrencies].every((n) => Number.isInteger(n) && n >= 1)) {
    throw new Error("--runs, --syncs and each --concurrency must be whole numbers ≥ 1");
  }
  const log = (s: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
  const scratch = await Deno.makeTempDir({ prefix: "portager-b4syncs-" });
  const formEnv = { DENO_DIR: await denoDir() };
  const portager = await buildBundleForm(scratch, formEnv);
  log(`Portager: ${portager.describe}`);
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
        const peaks = new Map<number, number[]>();
        const times = new Map<number, number[]>();
        for (let r = 0; r < runs; r++) {
          for (const n of concurrencies) {
            const run = await scaleRun(ctx, env, concurrencyVariant(portager, n), index++);
            const line =
              `${label}, ${syncs} ImageSyncs, --max-concurrent-syncs ${n}: ${run.ready}/${syncs} Ready in ${
                (run.readyMs / 1000).toFixed(1)
              } s, peak RSS ${(run.peakRssKiB / 1024).toFixed(1)} MiB, idle ${
                (run.idleRssKiB / 1024).toFixed(1)
              } MiB${run.failed.length ? `, failed: ${run.failed[0].message}` : ""}`;
            log(line);
            lines.push(line);
            peaks.set(n, [...peaks.get(n) ?? [], run.peakRssKiB / 1024]);
            times.set(n, [...times.get(n) ?? [], run.readyMs / 1000]);
          }
        }
        for (const n of concurrencies) {
          const p = peaks.get(n)!, t = times.get(n)!;
          lines.push(
            `SUMMARY ${label} at ${n}: peak ${Math.min(...p).toFixed(1)}–${
              Math.max(...p).toFixed(1)
            } MiB, time ${Math.min(...t).toFixed(1)}–${Math.max(...t).toFixed(1)} s (${runs} runs)`,
          );
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
