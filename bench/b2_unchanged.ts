/**
 * B2 unchanged sync: many images × 4 tags that are already in sync at the destination.
 * The work is all checking; the cells are wall time and HTTP requests made to each registry
 * (from the registries' own access logs). Peers: skopeo sync and regsync once; crane and
 * regctl have no multi-image sync and are listed as such.
 *
 * The latency variant runs the same programs through toxiproxy with 25 ms added each way in
 * front of both registries (a real registry is 20–100 ms away; on loopback a HEAD costs a
 * millisecond and hides the strategy), beside a floor row emulating the upstream operator's
 * strategy: one HEAD pair (source, destination) after the other (`bench/floor.ts heads`).
 * @module
 */

import type { RegistryServer } from "../tests/harness/registry.ts";
import { startToxiproxy, type ToxiProxy } from "../tests/harness/toxiproxy.ts";
import { pushImage } from "../tests/harness/fixtures.ts";
import { type Invocation, portagerSync, regsyncOnce, skopeoSync, type SyncJob } from "./commands.ts";
import {
  type BenchContext,
  type CaseResult,
  catalog,
  countRequests,
  expectDigests,
  peer,
  ratio,
  runOk,
  seconds,
  type Table,
  withRegistry,
} from "./context.ts";
import { median } from "./measure.ts";
import { DENO, ROOT } from "./tools.ts";

/** Latency added each way (client → registry and back) in the latency variant. */
export const B2_LATENCY_MS = 25;

/** Runs `fn` on every item with at most `limit` in flight. */
export async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

interface Row {
  program: string;
  ms: number[];
  sourceRequests?: number;
  destinationRequests?: number;
  byMethod?: Record<string, number>;
  error?: string;
}

async function requestsDuring(
  regs: RegistryServer[],
  fn: () => Promise<void>,
): Promise<Array<{ total: number; byMethod: Record<string, number> }>> {
  const before = await Promise.all(regs.map((r) => r.flushLog()));
  await fn();
  const after = await Promise.all(regs.map((r) => r.flushLog()));
  return regs.map((_, i) => countRequests(after[i].slice(before[i].length)));
}

/** Runs B2: on loopback, then with latency (two results, B2 and B2L). */
export async function runB2(ctx: BenchContext): Promise<CaseResult[]> {
  const imageCount = ctx.quick ? 10 : 50;
  const tags = ["t0", "t1", "t2", "t3"];
  const rows = (): Row[] => [
    { program: "portager", ms: [] },
    { program: "skopeo sync", ms: [] },
    { program: "regsync once", ms: [] },
  ];
  const direct = rows();
  const slow = [...rows(), { program: "floor: sequential HEAD pairs", ms: [] }];
  const latencyRuns = Math.min(ctx.runs, 3);
  await withRegistry((a) =>
    withRegistry(async (b) => {
      ctx.log(`B2: pushing ${imageCount} × ${tags.length} images to both registries`);
      const images = Array.from({ length: imageCount }, (_, i) => `bench/b2-${String(i).padStart(3, "0")}`);
      const want: Array<{ repository: string; tag: string; digest: string }> = [];
      const work = images.flatMap((repository, i) =>
        tags.map((tag, t) => ({ repository, tag, seed: 2000 + i * 10 + t }))
      );
      await pool(work, 8, async (w) => {
        const opts = { seed: w.seed, layers: [2048, 4096] };
        const pushed = await pushImage(a, { repository: w.repository, tag: w.tag }, opts);
        await pushImage(b, { repository: w.repository, tag: w.tag }, opts);
        want.push({ repository: w.repository, tag: w.tag, digest: pushed.digest });
      });
      const scratch = `${ctx.scratch}/b2`;
      await Deno.mkdir(scratch, { recursive: true });
      const repositories = await catalog(b.url);
      const measure = async (
        table: Row[],
        hosts: { source: string; destination: string },
        runs: number,
        slowOnce = false,
      ) => {
        const job: SyncJob = { ...hosts, images: images.map((name) => ({ name, tags })) };
        const invocations: Record<string, () => Invocation> = {
          "portager": () => portagerSync(ctx.portager, job, { scratch }),
          "skopeo sync": () => skopeoSync(peer(ctx, "skopeo"), job, { scratch }),
          "regsync once": () => regsyncOnce(peer(ctx, "regsync"), job, { scratch }),
          "floor: sequential HEAD pairs": () => ({
            cmd: DENO,
            args: [
              "run",
              "-A",
              `${ROOT}/bench/floor.ts`,
              "heads",
              `http://${hosts.source}`,
              `http://${hosts.destination}`,
              ...images.flatMap((name) => tags.map((t) => `${name}:${t}`)),
            ],
          }),
        };
        const missing: Record<string, string | undefined> = {
          "skopeo sync": peer(ctx, "skopeo").missing,
          "regsync once": peer(ctx, "regsync").missing,
        };
        for (let i = 0; i < runs; i++) {
          for (const row of table) {
            if (missing[row.program]) row.error = `not available: ${missing[row.program]}`;
            if (row.error) continue;
            // skopeo sync GETs every manifest one after the other: over a minute with latency
            if (slowOnce && row.program === "skopeo sync" && row.ms.length > 0) continue;
            try {
              let ms = 0;
              const [src, dst] = await requestsDuring([a, b], async () => {
                ms = (await runOk(invocations[row.program]())).ms;
              });
              await expectDigests(b.url, want);
              const after = await catalog(b.url);
              if (after.join() !== repositories.join()) {
                throw new Error(
                  `wrote other repositories: ${after.filter((r) => !repositories.includes(r))}`,
                );
              }
              row.ms.push(ms);
              row.sourceRequests = src.total;
              row.destinationRequests = dst.total;
              row.byMethod = Object.fromEntries(
                Object.keys({ ...src.byMethod, ...dst.byMethod }).map((m) => [
                  m,
                  (src.byMethod[m] ?? 0) + (dst.byMethod[m] ?? 0),
                ]),
              );
            } catch (e) {
              row.error = `failed: ${(e as Error).message.split("\n").slice(0, 3).join(" ")}`;
              ctx.log(`B2 ${row.program} failed: ${(e as Error).message.slice(-3000)}`);
            }
          }
        }
      };
      await measure(direct, { source: a.host, destination: b.host }, ctx.runs);
      ctx.log(`B2: the same through toxiproxy, ${B2_LATENCY_MS} ms each way in front of both registries`);
      const toxi = await startToxiproxy();
      try {
        const proxies: ToxiProxy[] = [];
        for (const [name, reg] of [["b2-source", a], ["b2-destination", b]] as const) {
          const proxy = await toxi.createProxy(name, reg.host);
          for (const stream of ["upstream", "downstream"] as const) {
            await proxy.addToxic({
              name: `latency-${stream}`,
              type: "latency",
              stream,
              attributes: { latency: B2_LATENCY_MS },
            });
          }
          proxies.push(proxy);
        }
        await measure(slow, { source: proxies[0].host, destination: proxies[1].host }, latencyRuns, true);
      } finally {
        await toxi.stop();
      }
    })
  );
  const cannot: Array<[string, string]> = [
    ["crane", `no sync command: one \`crane copy\` process per tag (${imageCount * tags.length} here)`],
    ["regctl", "no sync command: one `regctl image copy` per tag; regsync is regclient's sync"],
  ];
  const title = `Unchanged sync: ${imageCount} images × ${tags.length} tags already in sync`;
  return [
    {
      id: "B2",
      title,
      tables: [b2Table(direct, cannot)],
      notes: [
        `${ctx.runs} run(s), median wall time; requests counted from both registries' access logs during the run (the same every run).`,
        "Portager: one ImageSync listing every image and its tags; skopeo sync: a YAML source with the same tags; regsync: one repository entry per image allowing exactly those tags (it lists the source tags first).",
        "Each program at its default concurrency.",
      ],
      data: { imageCount, tags, rows: direct },
    },
    {
      id: "B2L",
      title: `${title}, ${B2_LATENCY_MS} ms added each way`,
      tables: [b2Table(slow, cannot)],
      notes: [
        `The same registries and programs through toxiproxy (latency toxic of ${B2_LATENCY_MS} ms on both directions of every connection, in front of both registries); ${latencyRuns} run(s), median (skopeo sync: one run, it takes over a minute).`,
        "floor: sequential HEAD pairs = the upstream operator's strategy, emulated (its binary cannot be built here): a /v2/ ping on each side, then for each tag a HEAD of the source manifest and then of the destination's, one pair after the other, on kept-alive connections.",
      ],
      data: { imageCount, tags, latencyMs: B2_LATENCY_MS, rows: slow },
    },
  ];
}

/** B2's table: wall time and requests per program, ratios to Portager's. */
function b2Table(rows: Row[], cannot: Array<[string, string]>): Table {
  const base = rows[0];
  const baseMs = base.error ? NaN : median(base.ms);
  const baseReq = (base.sourceRequests ?? NaN) + (base.destinationRequests ?? NaN);
  return {
    columns: [
      "program",
      "wall time",
      "vs Portager",
      "requests (source + destination)",
      "vs Portager",
      "by method",
    ],
    rows: [
      ...rows.map((r) => {
        if (r.error) return [r.program, r.error, "—", "—", "—", "—"];
        const total = r.sourceRequests! + r.destinationRequests!;
        return [
          r.program,
          seconds(median(r.ms)),
          ratio(median(r.ms), baseMs),
          `${total} (${r.sourceRequests} + ${r.destinationRequests})`,
          ratio(total, baseReq),
          Object.entries(r.byMethod ?? {}).map(([m, n]) => `${m} ${n}`).join(", "),
        ];
      }),
      ...cannot.map(([name, why]) => [name, `cannot: ${why}`, "—", "—", "—", "—"]),
    ],
  };
}
