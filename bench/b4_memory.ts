/**
 * B4 memory, copy half: peak RSS (VmHWM) of the process copying a 1 GiB image (8 layers)
 * with concurrency 8, for Portager as shipped (the bundle), Portager from source, and the
 * peers. The operator's idle RSS (the other half of B4) is measured with B5, which already
 * has 1000 ImageSyncs on an apiserver.
 * @module
 */

import { pushImage } from "../tests/harness/fixtures.ts";
import { type ImageRef, type Invocation, peerCopy, portagerSync, regctlConfig } from "./commands.ts";
import {
  type BenchContext,
  type CaseResult,
  expectDigests,
  mib,
  peer,
  runOk,
  seconds,
  type Table,
  withRegistry,
} from "./context.ts";
import { median } from "./measure.ts";
import { shippedFormProblem, sizeFlagsCounterpart, sizeFlagsNote } from "./tools.ts";

const MiB = 1024 * 1024;

/** Upstream Portager's Helm memory limit, our target. */
export const TARGET_MIB = 128;

interface Row {
  program: string;
  concurrency: string;
  peakKiB: number[];
  ms: number[];
  error?: string;
}

/** B4's answer when the Portager being measured is not the shipped form: no figures at all. */
export function refusedB4(title: string, problem: string): CaseResult {
  return {
    id: "B4",
    title,
    tables: [{ columns: ["program", "result"], rows: [["portager", `refused: ${problem}`]] }],
    notes: [
      "B4 reports memory only for the form `deno task compile` ships (its bundle with its runtime flags); fix the bundle build and run it again.",
    ],
    data: { refused: problem },
  };
}

/** Runs the copy half of B4. */
export async function runB4Copy(ctx: BenchContext): Promise<CaseResult> {
  const layerMiB = ctx.quick ? 32 : 128;
  const layers = Array(8).fill(layerMiB * MiB);
  const totalMiB = layerMiB * 8;
  const concurrency = 8;
  const runs = Math.min(ctx.runs, 3);
  const repository = "bench/b4";
  const problem = shippedFormProblem(ctx.portager);
  if (problem) return refusedB4(`Memory: peak RSS copying ${totalMiB} MiB with concurrency 8`, problem);
  const forms = [
    ctx.portager,
    ctx.portagerSource,
    sizeFlagsCounterpart(ctx.portager),
  ];
  const rows: Row[] = [
    ...forms.map((f) => ({ program: `portager (${f.form})`, concurrency: "8", peakKiB: [], ms: [] })),
    { program: "skopeo", concurrency: "default (no switch)", peakKiB: [], ms: [] },
    { program: "crane", concurrency: "8 (--jobs)", peakKiB: [], ms: [] },
    { program: "regctl", concurrency: "8 (reqConcurrent)", peakKiB: [], ms: [] },
  ];
  await withRegistry(async (a) => {
    ctx.log(`B4: pushing a ${totalMiB} MiB image`);
    const pushed = await pushImage(a, { repository, tag: "v1" }, { seed: 404, layers });
    const src: ImageRef = { host: a.host, repository, tag: "v1" };
    for (let i = 0; i < runs; i++) {
      for (const row of rows) {
        const name = row.program.split(" ")[0];
        const p = name === "portager" ? undefined : peer(ctx, name);
        if (p?.missing) row.error = `not available: ${p.missing}`;
        if (row.error) continue;
        await withRegistry(async (b) => {
          const scratch = `${ctx.scratch}/b4-${name}`;
          await Deno.mkdir(scratch, { recursive: true });
          const dst: ImageRef = { host: b.host, repository, tag: "v1" };
          let inv: Invocation;
          if (p) {
            if (name === "regctl") regctlConfig([a.host, b.host], { scratch, concurrency });
            inv = peerCopy(p, src, dst, {
              scratch,
              concurrency: name === "skopeo" ? undefined : concurrency,
            });
          } else {
            const form = forms.find((f) => row.program === `portager (${f.form})`)!;
            inv = portagerSync(form, {
              source: a.host,
              destination: b.host,
              images: [{ name: repository, tags: ["v1"] }],
            }, { scratch, concurrency });
          }
          try {
            const r = await runOk(inv, { sampleMs: 10 });
            await expectDigests(b.url, [{ repository, tag: "v1", digest: pushed.digest }]);
            if (r.peakRssKiB !== undefined) row.peakKiB.push(r.peakRssKiB);
            row.ms.push(r.ms);
          } catch (e) {
            row.error = `failed: ${(e as Error).message.split("\n").slice(0, 3).join(" ")}`;
            ctx.log(`B4 ${row.program} failed: ${(e as Error).message.slice(-3000)}`);
          }
        });
      }
      ctx.log(`B4 run ${i + 1}: ${rows.map((r) => `${r.program} ${mib(r.peakKiB.at(-1))}`).join(", ")}`);
    }
  });
  const table: Table = {
    columns: ["program", "concurrency", "peak RSS (max of runs)", `vs ${TARGET_MIB} MiB target`, "wall time"],
    rows: rows.map((r) => {
      if (r.error) return [r.program, r.concurrency, r.error, "—", "—"];
      const peak = Math.max(...r.peakKiB);
      return [
        r.program,
        r.concurrency,
        mib(peak),
        r.program.startsWith("portager")
          ? (peak / 1024 <= TARGET_MIB ? "within" : `above by ${(peak / 1024 - TARGET_MIB).toFixed(0)} MiB`)
          : "—",
        seconds(median(r.ms)),
      ];
    }),
  };
  const notes = [
    `Copy of one ${totalMiB} MiB image (8 × ${layerMiB} MiB layers) into a fresh registry; ${runs} run(s); peak RSS = the child's VmHWM from /proc/<pid>/status, sampled every 10 ms.`,
    `Portager (bundle) = ${ctx.portager.describe}; the compiled binary embeds this bundle in the same runtime. The source form runs main.ts with the same flags.`,
    sizeFlagsNote(ctx.portager),
  ];
  return {
    id: "B4",
    title: `Memory: peak RSS copying ${
      totalMiB >= 1024 ? `${totalMiB / 1024} GiB` : `${totalMiB} MiB`
    } with concurrency 8`,
    tables: [table],
    notes,
    data: { totalMiB, layerMiB, concurrency, rows },
  };
}
