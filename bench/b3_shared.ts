/**
 * B3 shared layers: 10 tags of one repository that share 3 base layers, copied into a fresh
 * registry. The cell is bytes uploaded ÷ unique bytes: 1.00 means every blob crossed the
 * wire once. Uploaded bytes are read from the destination's access log: each completed
 * upload (`PUT …?digest=…` answered 201) counts the size of that blob.
 * @module
 */

import { type PushedImage, pushImage } from "../tests/harness/fixtures.ts";
import { type Invocation, portagerSync, regsyncOnce, skopeoSync, type SyncJob } from "./commands.ts";
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
import { median } from "./measure.ts";

const MiB = 1024 * 1024;

/**
 * Bytes uploaded according to access-log lines: the sizes of the blobs whose uploads
 * completed (`PUT /v2/…/blobs/uploads/…digest=sha256:… 201`), and the count of mounts.
 */
export function uploadedBytes(
  lines: string[],
  sizes: Map<string, number>,
): { bytes: number; uploads: number; mounts: number; unknown: number } {
  let bytes = 0;
  let uploads = 0;
  let mounts = 0;
  let unknown = 0;
  for (const line of lines) {
    const [method, uri, status] = line.split(" ");
    if (!uri?.includes("/blobs/uploads/")) continue;
    const query = new URLSearchParams(uri.slice(uri.indexOf("?") + 1));
    if (method === "PUT" && status === "201") {
      const digest = query.get("digest") ?? "";
      const size = sizes.get(digest);
      if (size === undefined) unknown++;
      else bytes += size;
      uploads++;
    } else if (method === "POST" && status === "201" && query.has("mount")) {
      mounts++;
    }
  }
  return { bytes, uploads, mounts, unknown };
}

interface Row {
  program: string;
  ms: number[];
  bytes?: number;
  uploads?: number;
  mounts?: number;
  error?: string;
}

/** Runs B3. */
export async function runB3(ctx: BenchContext): Promise<CaseResult> {
  const tagCount = 10;
  const shared = ctx.quick ? [4 * MiB, 2 * MiB, 1 * MiB] : [16 * MiB, 8 * MiB, 4 * MiB];
  const own = ctx.quick ? [256 * 1024] : [1 * MiB];
  const repository = "bench/b3";
  const tags = Array.from({ length: tagCount }, (_, i) => `t${i}`);
  const rows: Row[] = [
    { program: "portager", ms: [] },
    { program: "skopeo sync", ms: [] },
    { program: "crane copy --all-tags", ms: [] },
    { program: "regsync once", ms: [] },
  ];
  const peerOf: Record<string, string> = {
    "skopeo sync": "skopeo",
    "crane copy --all-tags": "crane",
    "regsync once": "regsync",
  };
  let unique = 0;
  await withRegistry(async (a) => {
    ctx.log(`B3: pushing ${tagCount} tags sharing ${shared.length} base layers`);
    const pushed: PushedImage[] = [];
    for (const [i, tag] of tags.entries()) {
      pushed.push(
        await pushImage(a, { repository, tag }, { seed: 3000 + i, layers: own, sharedLayers: shared }),
      );
    }
    const sizes = new Map<string, number>();
    for (const p of pushed) for (const b of p.blobs) sizes.set(b.digest, b.size);
    unique = [...sizes.values()].reduce((s, n) => s + n, 0);
    const want = pushed.map((p, i) => ({ repository, tag: tags[i], digest: p.digest }));
    const scratch = `${ctx.scratch}/b3`;
    await Deno.mkdir(scratch, { recursive: true });

    for (let i = 0; i < ctx.runs; i++) {
      for (const row of rows) {
        const p = peerOf[row.program] ? peer(ctx, peerOf[row.program]) : undefined;
        if (p?.missing) row.error = `not available: ${p.missing}`;
        if (row.error) continue;
        await withRegistry(async (b) => {
          const job: SyncJob = { source: a.host, destination: b.host, images: [{ name: repository, tags }] };
          const inv: Invocation = row.program === "portager"
            ? portagerSync(ctx.portager, job, { scratch })
            : row.program === "skopeo sync"
            ? skopeoSync(p!, job, { scratch })
            : row.program === "regsync once"
            ? regsyncOnce(p!, job, { scratch })
            : {
              cmd: p!.path!,
              args: [
                "copy",
                "--all-tags",
                "--insecure",
                `${a.host}/${repository}`,
                `${b.host}/${repository}`,
              ],
              env: { HOME: scratch },
            };
          try {
            const r = await runOk(inv);
            await expectDigests(b.url, want);
            const up = uploadedBytes(await b.flushLog(), sizes);
            row.ms.push(r.ms);
            row.bytes = up.bytes;
            row.uploads = up.uploads;
            row.mounts = up.mounts;
          } catch (e) {
            row.error = `failed: ${(e as Error).message.split("\n").slice(0, 3).join(" ")}`;
            ctx.log(`B3 ${row.program} failed: ${(e as Error).message.slice(-3000)}`);
          }
        });
      }
    }
  });
  const baseMs = rows[0].error ? NaN : median(rows[0].ms);
  const table: Table = {
    columns: ["program", "uploaded ÷ unique bytes", "blob uploads", "wall time", "vs Portager"],
    rows: [
      ...rows.map((r) =>
        r.error ? [r.program, r.error, "—", "—", "—"] : [
          r.program,
          (r.bytes! / unique).toFixed(2),
          String(r.uploads),
          seconds(median(r.ms)),
          ratio(median(r.ms), baseMs),
        ]
      ),
      [
        "regctl",
        "cannot: copies one image per `regctl image copy`; regsync is regclient's multi-tag copy",
        "—",
        "—",
        "—",
      ],
    ],
  };
  const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
  return {
    id: "B3",
    title: `Shared layers: ${tagCount} tags sharing ${shared.length} base layers`,
    tables: [table],
    notes: [
      `Base layers ${shared.map(mib).join(" + ")}, one own layer of ${mib(own[0])} per tag; unique bytes ${
        mib(unique)
      } (${tagCount * 2 + shared.length} blobs).`,
      "Uploaded bytes = sizes of the blobs whose uploads completed at the destination (from its access log); a fresh destination each run.",
      `${ctx.runs} run(s), median wall time; each program at its default concurrency.`,
    ],
    data: { tagCount, shared, own, unique, rows },
  };
}
