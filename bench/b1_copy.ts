/**
 * B1 cold copy: one image from registry A to a fresh registry B, in two shapes (a few large
 * layers, many small ones), by Portager and each peer, against two floors: the same blobs
 * uploaded straight from files in parallel, and every blob streamed GET A → PUT B in
 * parallel. Each run gets a new, empty destination registry; the cells are medians.
 * @module
 */

import { buildImage, pushImage } from "../tests/harness/fixtures.ts";
import { type ImageRef, peerCopy, portagerSync, regctlConfig } from "./commands.ts";
import {
  type BenchContext,
  type CaseResult,
  expectDigests,
  peer,
  ratio,
  runOk,
  seconds,
  type Table,
  withRegistry,
} from "./context.ts";
import { median, type RunResult } from "./measure.ts";
import { DENO, ROOT, sizeFlagsCounterpart, sizeFlagsNote } from "./tools.ts";
import { stackCpu } from "./stack_cpu.ts";

const MiB = 1024 * 1024;

/**
 * Runs per B1 cell for `runs` (the bench's `--runs`): 2 × runs − 1, so 9 in the recorded run.
 * A copy takes half a second and pairs of the same two programs move ±10 % between runs on two
 * cores, so B1's medians need more samples than the minute-long cases to decide cells a few
 * per cent apart.
 */
function b1Runs(runs: number): number {
  return Math.max(1, 2 * runs - 1);
}

/** The two image shapes of B1. */
export function shapes(quick: boolean): Array<{ name: string; layers: number[]; seed: number }> {
  const large = quick ? 25 : 50;
  const small = quick ? 20 : 40;
  return [
    { name: `${4} × ${large} MiB`, layers: Array(4).fill(large * MiB), seed: 101 },
    { name: `${small} × 1 MiB`, layers: Array(small).fill(MiB), seed: 202 },
  ];
}

interface Cell {
  program: string;
  shape: string;
  ms: number[];
  peakRssKiB: number[];
  /** User + system CPU per run (GNU time's rusage), ms. */
  cpuMs: number[];
  /** CPU the two registries (A and B) spent during each run (/proc stat before and after), ms. */
  registryCpuMs: number[];
  error?: string;
}

/** CPU seconds per GiB copied: `cpuMs` spent moving `bytes`. */
export function cpuPerGiB(cpuMs: number, bytes: number): number {
  return cpuMs / 1000 / (bytes / (1024 * MiB));
}

/** Median over runs of the registries' CPU plus the program's, ms (NaN without samples). */
function stackMs(cell: Cell): number {
  const n = Math.min(cell.cpuMs.length, cell.registryCpuMs.length);
  if (n === 0 || cell.error) return NaN;
  return median(Array.from({ length: n }, (_, i) => cell.cpuMs[i] + cell.registryCpuMs[i]));
}

/** Runs B1. */
export async function runB1(ctx: BenchContext): Promise<CaseResult> {
  /** The shipped form with or without B4/B5's V8 size flag, measured here too: what it costs a copy. */
  const counterpart = sizeFlagsCounterpart(ctx.portager);
  const counterpartRow = `portager (${counterpart.form.replace(/^bundle, /, "")})`;
  const programs = [
    "portager",
    counterpartRow,
    "skopeo",
    "crane",
    "regctl",
    "floor: upload",
    "floor: stream",
  ];
  const runs = b1Runs(ctx.runs);
  const cells: Cell[] = [];
  const unavailable = new Map<string, string>();
  for (const name of ["skopeo", "crane", "regctl"]) {
    const p = peer(ctx, name);
    if (p.missing) unavailable.set(name, p.missing);
  }
  await withRegistry(async (a) => {
    for (const shape of shapes(ctx.quick)) {
      const repository = `bench/b1-${shape.seed}`;
      const src: ImageRef = { host: a.host, repository, tag: "v1" };
      ctx.log(`B1 ${shape.name}: pushing the source image`);
      const pushed = await pushImage(a, { repository, tag: "v1" }, {
        seed: shape.seed,
        layers: shape.layers,
      });
      // the floor's upload reads the same blobs from files
      const built = await buildImage({ seed: shape.seed, layers: shape.layers });
      const dir = `${ctx.scratch}/b1-${shape.seed}`;
      await Deno.mkdir(dir, { recursive: true });
      const blobFiles: string[] = [];
      for (const b of built.blobs) {
        const file = `${dir}/${b.digest.replace(":", "-")}`;
        await Deno.writeFile(file, b.bytes);
        blobFiles.push(file);
      }
      const manifestFile = `${dir}/manifest.json`;
      await Deno.writeFile(manifestFile, built.manifestBytes);

      for (let i = 0; i < runs; i++) {
        // rotate the order each run so no program always goes first (page cache, CPU boost)
        const order = programs.slice(i % programs.length).concat(programs.slice(0, i % programs.length));
        for (const program of order) {
          if (unavailable.has(program)) continue;
          let cell = cells.find((c) => c.program === program && c.shape === shape.name);
          if (!cell) {
            cells.push(
              cell = { program, shape: shape.name, ms: [], peakRssKiB: [], cpuMs: [], registryCpuMs: [] },
            );
          }
          if (cell.error) continue;
          await withRegistry(async (b) => {
            const dst: ImageRef = { host: b.host, repository, tag: "v1" };
            const scratch = `${ctx.scratch}/home-${program.replace(/\W+/g, "-")}`;
            await Deno.mkdir(scratch, { recursive: true });
            let r: RunResult;
            // the registries' CPU from here to the run's end: B is up and idle, A holds the image
            const registriesBefore = stackCpu().registries ?? 0;
            try {
              if (program === "portager" || program === counterpartRow) {
                r = await runOk(
                  portagerSync(program === counterpartRow ? counterpart : ctx.portager, {
                    source: a.host,
                    destination: b.host,
                    images: [{ name: repository, tags: ["v1"] }],
                  }, { scratch }),
                  { cpu: true },
                );
              } else if (program === "floor: upload") {
                r = await runOk({
                  cmd: DENO,
                  args: [
                    "run",
                    "-A",
                    `${ROOT}/bench/floor.ts`,
                    "upload",
                    b.url,
                    repository,
                    "v1",
                    manifestFile,
                    ...blobFiles,
                  ],
                }, { cpu: true });
              } else if (program === "floor: stream") {
                r = await runOk({
                  cmd: DENO,
                  args: ["run", "-A", `${ROOT}/bench/floor.ts`, "stream", a.url, b.url, repository, "v1"],
                }, { cpu: true });
              } else {
                if (program === "regctl") regctlConfig([a.host, b.host], { scratch });
                r = await runOk(peerCopy(peer(ctx, program), src, dst, { scratch }), { cpu: true });
              }
              const registriesCpu = (stackCpu().registries ?? 0) - registriesBefore;
              await expectDigests(b.url, [{ repository, tag: "v1", digest: pushed.digest }]);
              cell!.ms.push(r.ms);
              if (r.peakRssKiB !== undefined) cell!.peakRssKiB.push(r.peakRssKiB);
              if (r.cpuMs !== undefined) {
                cell!.cpuMs.push(r.cpuMs);
                cell!.registryCpuMs.push(registriesCpu);
              }
            } catch (e) {
              cell!.error = (e as Error).message.split("\n").slice(0, 3).join(" ");
              ctx.log(`B1 ${program} ${shape.name} failed: ${(e as Error).message}`);
            }
          });
        }
      }
      ctx.log(
        `B1 ${shape.name}: ${
          cells.filter((c) => c.shape === shape.name).map((c) => `${c.program} ${seconds(median(c.ms))}`)
            .join(", ")
        }`,
      );
    }
  });

  const shapeNames = shapes(ctx.quick).map((s) => s.name);
  const cellOf = (program: string, shape: string) =>
    cells.find((c) => c.program === program && c.shape === shape);
  /** One row per program; per shape, `columns` filled by `render` from the program's cell and Portager's. */
  const perShape = (
    columns: (shape: string) => string[],
    render: (
      cell: Cell | undefined,
      base: Cell | undefined,
      ctx: { program: string; shape: string },
    ) => string[],
  ): Table => ({
    columns: ["program", ...shapeNames.flatMap(columns)],
    rows: programs.map((program) => [
      program,
      ...shapeNames.flatMap((shape) =>
        render(cellOf(program, shape), cellOf("portager", shape), { program, shape })
      ),
    ]),
  });
  const table = perShape((s) => [s, "vs Portager"], (cell, base, { program }) => {
    if (unavailable.has(program)) return ["not available", "—"];
    if (!cell || cell.error) return [`failed: ${cell?.error ?? "not run"}`, "—"];
    const m = median(cell.ms);
    return [seconds(m), ratio(m, base && !base.error ? median(base.ms) : NaN)];
  });
  const bytesOf = new Map(shapes(ctx.quick).map((s) => [s.name, s.layers.reduce((a, b) => a + b, 0)]));
  const cpuTable = perShape(
    (s) => [`${s}: CPU`, "per copied GiB", "vs Portager"],
    (cell, base, { shape }) => {
      if (!cell || cell.error || cell.cpuMs.length === 0) return ["—", "—", "—"];
      const cpu = median(cell.cpuMs);
      const per = cpuPerGiB(cpu, bytesOf.get(shape)!);
      const basePer = base && base.cpuMs.length ? cpuPerGiB(median(base.cpuMs), bytesOf.get(shape)!) : NaN;
      return [seconds(cpu), `${per.toFixed(2)} s/GiB`, ratio(per, basePer)];
    },
  );
  const stackTable = perShape(
    (s) => [`${s}: registries' CPU`, "+ program's", "vs Portager"],
    (cell, base) => {
      if (!cell || cell.error || cell.registryCpuMs.length === 0) return ["—", "—", "—"];
      const stack = stackMs(cell);
      return [seconds(median(cell.registryCpuMs)), seconds(stack), ratio(stack, base ? stackMs(base) : NaN)];
    },
  );
  return {
    id: "B1",
    title: "Cold copy A → fresh B (wall time, median; CPU beside it)",
    tables: [table, cpuTable, stackTable],
    notes: [
      `${runs} run(s) per cell (2 × --runs − 1), median; every run copies into a new, empty registry; program order rotates per run.`,
      "Each program at its default concurrency: Portager 8 blobs (sync -f's default; the operator copies 4 per sync), skopeo up to 6 layers (no switch in 1.9), crane GOMAXPROCS (= cores), regctl 3 requests per host.",
      "floor: upload = the blob files PUT to B all at once from one Deno process; floor: stream = every blob streamed GET A → PUT B at once, no digest checks.",
      sizeFlagsNote(ctx.portager, { row: counterpartRow }),
      "Ratios: time ÷ Portager's time (below 1 = faster than Portager).",
      "CPU = user + system time of the process and its children from wait4 (each program runs under GNU time, which also gives its exact peak RSS), median over runs; per copied GiB = CPU ÷ the layers' bytes.",
      "registries' CPU = what registries A and B spent while the program ran (utime + stime from /proc, 10 ms steps), median; + program's = the median over runs of registries' and the program's CPU together: on two cores the copy's wall time follows this whole stack's CPU, not the program's alone.",
    ],
    data: { shapes: shapes(ctx.quick), cells },
  };
}
