/**
 * V8 flag sets for the operator, measured interleaved (issue 16, B4/B5): for each set, B5's
 * 1000 ImageSyncs → all Ready (time, operator CPU per ImageSync, peak VmHWM, idle RSS after), one
 * operator with `--big` ImageSyncs (peak), and a copy (default: B4's 1 GiB at concurrency 8; peak, CPU). The
 * sets run in rotation (A, B, C, A, B, C, …) on one apiserver and one source registry, so a
 * machine shared with other work moves every set alike.
 *
 *   deno run -A bench/v8_flags.ts --sets "shipped;--max-semi-space-size=1;…" [--rounds 4]
 *     [--count 1000] [--big 3000] [--big-rounds 2] [--concurrency 2]
 *     [--copy-runs 3] [--copy-shape 8x128] [--copy-concurrency 8]
 *
 * A set is `shipped` (the compile task's flags as they are) or its comma-separated V8 flags,
 * which replace the compile task's `--v8-flags` (empty: none), either with an optional "@N" for
 * `--max-concurrent-syncs N` (2 vs 4 interleaved: "shipped@2;shipped@4"). Prints one line per run and a
 * summary per set (min–max and median).
 * @module
 */

import { parseArgs } from "node:util";
import { pushImage } from "../tests/harness/fixtures.ts";
import { pool } from "./b2_unchanged.ts";
import { parseShape } from "./b4_syncs.ts";
import { portagerSync } from "./commands.ts";
import { expectDigests, runOk, withRegistry } from "./context.ts";
import { median } from "./measure.ts";
import type { BaselineContext } from "./baseline.ts";
import type { BenchContext } from "./context.ts";
import {
  concurrencyVariant,
  type Operator,
  SA_NAME,
  SA_NAMESPACE,
  type ScaleEnv,
  type ScaleForm,
  scaleRun,
  startAuditedCluster,
} from "./b5_scale.ts";
import { buildBundleForm, denoDir, type PortagerForm, withOnlyV8Flags } from "./tools.ts";

/**
 * The forms of `sets`: "shipped", or comma-separated V8 flags replacing the shipped ones; either
 * may end in "@N" for `--max-concurrent-syncs N` (default: the operator's, 2).
 */
export function flagSetForms(shipped: PortagerForm, sets: string[]): ScaleForm[] {
  return sets.map((text) => {
    const [set, at] = text.split("@").map((s) => s.trim());
    const form = set === "shipped"
      ? shipped
      : withOnlyV8Flags(shipped, set.split(",").map((f) => f.trim()).filter((f) => f));
    if (at === undefined) return form;
    if (!/^[1-9]\d*$/.test(at)) throw new Error(`"@${at}" in the set "${text}" is not a concurrency`);
    return { ...concurrencyVariant(form, Number(at)), form: `${form.form} @${at}` };
  });
}

/** "min–max (median m, n runs)" of `values`, each with `digits` decimals. */
export function spread(values: number[], digits = 1): string {
  if (!values.length) return "—";
  const f = (n: number) => n.toFixed(digits);
  return `${f(Math.min(...values))}–${f(Math.max(...values))} (median ${
    f(median(values))
  }, ${values.length} runs)`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sets: { type: "string", default: "shipped" },
      rounds: { type: "string", default: "4" },
      count: { type: "string", default: "1000" },
      big: { type: "string", default: "0" },
      "big-rounds": { type: "string", default: "2" },
      "copy-runs": { type: "string", default: "0" },
      "copy-shape": { type: "string", default: "8x128" },
      "copy-concurrency": { type: "string", default: "8" },
      concurrency: { type: "string", default: "2" },
    },
  });
  const shape = parseShape(values["copy-shape"]);
  const [rounds, count, big, bigRounds, copyRuns, concurrency, copyConcurrency] = [
    values.rounds,
    values.count,
    values.big,
    values["big-rounds"],
    values["copy-runs"],
    values.concurrency,
    values["copy-concurrency"],
  ].map(Number);
  if (
    ![rounds, count, big, bigRounds, copyRuns, concurrency, copyConcurrency].every((n) =>
      Number.isInteger(n) && n >= 0
    )
  ) {
    throw new Error(
      "--rounds, --count, --big, --big-rounds, --copy-runs, --concurrency and --copy-concurrency are whole numbers (--copy-concurrency 0: sync's default)",
    );
  }
  const log = (s: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
  const scratch = await Deno.makeTempDir({ prefix: "portager-v8flags-" });
  const portager = await buildBundleForm(scratch, { DENO_DIR: await denoDir() });
  const forms = flagSetForms(portager, values.sets.split(";"));
  for (const f of forms) log(`set ${f.form}: ${f.args.find((a) => a.startsWith("--v8-flags=")) ?? "(none)"}`);
  const ctx: BenchContext & BaselineContext = {
    quick: false, // 20 s settle, 10 s idle sample, as B5
    runs: rounds,
    portager,
    portagerSource: portager,
    peers: [],
    scratch,
    log,
  };
  const stats = new Map<string, Record<string, number[]>>();
  const add = (form: string, key: string, v: number) => {
    const s = stats.get(form) ?? {};
    (s[key] ??= []).push(v);
    stats.set(form, s);
  };
  const scaleForm = (f: ScaleForm): ScaleForm =>
    concurrency === 2 || f.runArgs ? f : { ...concurrencyVariant(f, concurrency), form: f.form };
  try {
    if (rounds > 0 || big > 0) {
      const { kube, auditLines } = await startAuditedCluster(ctx, "v8f-");
      const operators: Operator[] = [];
      try {
        await withRegistry(async (source) => {
          const total = Math.max(count, big);
          log(`pushing ${total} small images`);
          const names = Array.from({ length: total }, (_, i) => `app-${String(i).padStart(4, "0")}`);
          const digests = new Map<string, string>();
          const push = async (name: string) => {
            const pushed = await pushImage(source, { repository: `bench/${name}`, tag: "1.0" }, {
              seed: 5000 + Number(name.slice(4)),
              layers: [1024],
            });
            digests.set(name, pushed.digest);
          };
          await pool(names, 8, push);
          const token = await kube.tokenFor(SA_NAMESPACE, SA_NAME, { expirationSeconds: 7200 });
          const kubeconfig = await kube.kubeconfigForToken(token, { namespace: SA_NAMESPACE });
          const envOf = (n: number): ScaleEnv => ({
            kube,
            source,
            kubeconfig,
            names: names.slice(0, n),
            digests,
            auditLines,
            operators,
          });
          let index = 0;
          const phases = [{ n: count, rounds, key: "" }, {
            n: big,
            rounds: big > 0 ? bigRounds : 0,
            key: `${big}: `,
          }];
          for (const { n, rounds, key } of phases) {
            for (let r = 0; r < rounds; r++) {
              for (const f of forms) {
                const run = await scaleRun(ctx, envOf(n), scaleForm(f), index++);
                const cpu = run.cpuMs / Math.max(1, run.ready);
                add(f.form, `${key}time s`, run.ready === n ? run.readyMs / 1000 : NaN);
                add(f.form, `${key}CPU ms/ImageSync`, cpu);
                add(f.form, `${key}peak MiB`, run.peakRssKiB / 1024);
                add(f.form, `${key}idle MiB`, run.idleRssKiB / 1024);
                add(f.form, `${key}idle anon MiB`, run.idleAnonKiB / 1024);
                console.log(
                  `RUN ${n} ${f.form}: ${run.ready}/${n} in ${(run.readyMs / 1000).toFixed(2)} s, CPU ${
                    cpu.toFixed(2)
                  } ms/ImageSync, peak ${(run.peakRssKiB / 1024).toFixed(1)} MiB, idle ${
                    (run.idleRssKiB / 1024).toFixed(1)
                  } MiB (anon ${(run.idleAnonKiB / 1024).toFixed(1)})`,
                );
              }
            }
          }
        });
      } finally {
        await kube.stop();
      }
    }
    if (copyRuns > 0) {
      await withRegistry(async (a) => {
        const repository = "bench/b4";
        log(`pushing an image of ${shape.label}`);
        const pushed = await pushImage(a, { repository, tag: "v1" }, {
          seed: 404,
          layers: Array(shape.layers).fill(shape.bytes),
        });
        const key = `copy ${shape.label} at ${copyConcurrency || "default"}`;
        for (let r = 0; r < copyRuns; r++) {
          for (const f of forms) {
            await withRegistry(async (b) => {
              const dir = `${scratch}/copy`;
              await Deno.mkdir(dir, { recursive: true });
              const inv = portagerSync(f, {
                source: a.host,
                destination: b.host,
                images: [{ name: repository, tags: ["v1"] }],
              }, { scratch: dir, concurrency: copyConcurrency || undefined });
              const res = await runOk(inv, { sampleMs: 10, cpu: true });
              await expectDigests(b.url, [{ repository, tag: "v1", digest: pushed.digest }]);
              add(f.form, `${key}: peak MiB`, (res.peakRssKiB ?? NaN) / 1024);
              add(f.form, `${key}: CPU s`, (res.cpuMs ?? NaN) / 1000);
              add(f.form, `${key}: time s`, res.ms / 1000);
              console.log(
                `RUN ${key} ${f.form}: ${(res.ms / 1000).toFixed(2)} s, CPU ${
                  ((res.cpuMs ?? NaN) / 1000).toFixed(2)
                } s, peak ${((res.peakRssKiB ?? NaN) / 1024).toFixed(1)} MiB`,
              );
            });
          }
        }
      });
    }
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
  for (const f of forms) {
    console.log(`SUMMARY ${f.form}`);
    for (const [k, v] of Object.entries(stats.get(f.form) ?? {})) console.log(`  ${k}: ${spread(v, 2)}`);
  }
}

if (import.meta.main) await main();
