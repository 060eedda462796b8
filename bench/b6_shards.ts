/**
 * B6 throughput vs shard count: the same N ImageSyncs (3000; 150 with --quick) created → all
 * Ready, handled by 1, 2 and 3 shards of `portager run --shards S --shard-index i` (one
 * replica per shard; each shard elects on its own Lease). Cells: time, ImageSyncs per second,
 * the operators' CPU (user + system, summed over the shards) and apiserver requests (audit log).
 *
 * On this machine (2 cores shared by the apiserver, etcd, the registries and the operators) the
 * CPU is the shared limit, so the figures show the cost of sharding as much as its gain; on a
 * cluster each shard has its own node share.
 * @module
 */

import { pushImage } from "../tests/harness/fixtures.ts";
import { sleep } from "../tests/harness/process.ts";
import { pool } from "./b2_unchanged.ts";
import {
  countAudit,
  GROUP_PATH,
  ok,
  type Operator,
  SA_NAME,
  SA_NAMESPACE,
  SA_USER,
  startAuditedCluster,
  startOperator,
  stopOperator,
} from "./b5_scale.ts";
import {
  type BenchContext,
  type CaseResult,
  mib,
  ratio,
  seconds,
  type Table,
  withRegistry,
} from "./context.ts";
import { readMemory } from "./measure.ts";
import { watchReady } from "./ready_watch.ts";

/** Shard counts measured. */
export const SHARD_COUNTS = [1, 2, 3];

/** CPU time (user + system, ms) of a live process from /proc/<pid>/stat; undefined once gone. */
export function processCpuMs(pid: number): number | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  return parseStatCpuMs(text);
}

/** utime + stime of a /proc/<pid>/stat line, in ms (USER_HZ = 100 on Linux). */
export function parseStatCpuMs(stat: string): number | undefined {
  // the command name (field 2) may hold spaces and parentheses: fields start after the last ")"
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) * 10 : undefined;
}

/** Waits until the shard works: `portage_leader 1` on its /metrics (leader, gate open). */
async function waitWorking(p: Operator, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      const text = await (await fetch(`http://127.0.0.1:${p.metricsPort}/metrics`)).text();
      if (/^portage_leader 1$/m.test(text)) return;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      throw new Error(`shard not working within ${deadlineMs} ms:\n${p.output.slice(-20).join("\n")}`);
    }
    await sleep(250);
  }
}

interface ShardRun {
  shards: number;
  ready: number;
  readyMs: number;
  cpuMs: number;
  requests: { total: number; byKind: Record<string, number> };
  perShard: number[];
  /** VmHWM (KiB) of each shard's process, all Ready. */
  peakRssKiB: number[];
  /** VmRSS (KiB) of each shard's process when all were Ready. */
  rssKiB: number[];
  error?: string;
}

/** Runs B6. */
export async function runB6(ctx: BenchContext): Promise<CaseResult> {
  const count = ctx.quick ? 150 : 3000;
  ctx.log("B6: starting etcd + kube-apiserver");
  const { kube, auditLines } = await startAuditedCluster(ctx, "b6-");
  const post = (path: string, body: unknown) =>
    ok(kube, path, { method: "POST", body: JSON.stringify(body) });
  const runs: ShardRun[] = [];
  const live: Operator[] = [];
  try {
    await withRegistry(async (source) => {
      // sharding lists the group's Leases (deploy/rbac.yaml grants get/create/update only)
      await kube.apply({
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "Role",
        metadata: { name: "portager-shard-leases", namespace: SA_NAMESPACE },
        rules: [{ apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["list"] }],
      });
      await kube.apply({
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name: "portager-shard-leases", namespace: SA_NAMESPACE },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "portager-shard-leases" },
        subjects: [{ kind: "ServiceAccount", name: SA_NAME, namespace: SA_NAMESPACE }],
      });
      await pushImage(source, { repository: "bench/app", tag: "1.0" }, { seed: 6000, layers: [1024] });
      const token = await kube.tokenFor(SA_NAMESPACE, SA_NAME, { expirationSeconds: 7200 });
      const kubeconfig = await kube.kubeconfigForToken(token, { namespace: SA_NAMESPACE });
      const names = Array.from({ length: count }, (_, i) => `app-${String(i).padStart(4, "0")}`);

      for (const shards of SHARD_COUNTS) {
        const namespace = `b6-${shards}`;
        const run: ShardRun = {
          shards,
          ready: 0,
          readyMs: NaN,
          cpuMs: NaN,
          requests: { total: 0, byKind: {} },
          perShard: [],
          peakRssKiB: [],
          rssKiB: [],
        };
        runs.push(run);
        await withRegistry(async (dst) => {
          await post("/api/v1/namespaces", {
            apiVersion: "v1",
            kind: "Namespace",
            metadata: { name: namespace },
          });
          const scratch = `${ctx.scratch}/b6-${shards}`;
          await Deno.mkdir(scratch, { recursive: true });
          ctx.log(`B6: ${shards} shard(s)`);
          const startLines = (await auditLines()).length;
          const procs = Array.from({ length: shards }, (_, index) =>
            startOperator(ctx.portager, kubeconfig, {
              registries: [source.host, dst.host],
              namespace,
              scratch,
              args: [
                "--leader-elect",
                `--lease-namespace=${SA_NAMESPACE}`,
                `--lease-name=b6-${shards}`,
                `--shards=${shards}`,
                `--shard-index=${index}`,
              ],
            }));
          live.push(...procs);
          try {
            for (const p of procs) await waitWorking(p, 60_000);
            const cpu0 = procs.map((p) => processCpuMs(p.child.pid) ?? 0);
            const t0 = performance.now();
            await pool(names, 8, async (name) => {
              await post(`${GROUP_PATH}/namespaces/${namespace}/imagesyncs`, {
                apiVersion: "portager.portager.io/v1alpha1",
                kind: "ImageSync",
                metadata: { name, namespace },
                spec: {
                  schedule: "@every 24h",
                  source: { registry: source.host },
                  destination: { registry: dst.host, repositoryPrefix: name, auth: { method: "anonymous" } },
                  images: [{ name: "bench/app", tags: ["1.0"] }],
                },
              });
            });
            const deadline = Date.now() + (ctx.quick ? 180_000 : 1_500_000);
            let lastLog = performance.now();
            const readiness = await watchReady(kube, `${GROUP_PATH}/namespaces/${namespace}/imagesyncs`);
            for (;;) {
              run.ready = readiness.count().ready;
              if (run.ready === count || Date.now() > deadline) break;
              if (performance.now() - lastLog > 15_000) {
                lastLog = performance.now();
                ctx.log(
                  `B6 (${shards}): ${run.ready}/${count} Ready after ${seconds(performance.now() - t0)}`,
                );
              }
              await sleep(100);
            }
            run.readyMs = performance.now() - t0;
            await readiness.close();
            run.cpuMs = procs.reduce((sum, p, i) => sum + (processCpuMs(p.child.pid) ?? NaN) - cpu0[i], 0);
            run.requests = countAudit((await auditLines()).slice(startLines), SA_USER);
            for (const p of procs) {
              const mem = readMemory(p.child.pid);
              run.peakRssKiB.push(mem?.hwm ?? NaN);
              run.rssKiB.push(mem?.rss ?? NaN);
              const text = await (await fetch(`http://127.0.0.1:${p.metricsPort}/metrics`)).text();
              run.perShard.push(Number(text.match(/^portage_shard_imagesyncs\{[^}]*\} (\d+)$/m)?.[1] ?? NaN));
            }
            if (run.ready !== count) run.error = `not all Ready: ${run.ready}/${count}`;
            ctx.log(
              `B6 (${shards}): ${run.ready}/${count} Ready in ${seconds(run.readyMs)}; CPU ${
                seconds(run.cpuMs)
              }`,
            );
          } finally {
            for (const p of procs) {
              await stopOperator(p);
              live.splice(live.indexOf(p), 1);
            }
          }
        });
      }
    });
  } finally {
    for (const p of [...live]) await stopOperator(p);
    await kube.stop();
  }
  const base = runs[0];
  const table: Table = {
    columns: [
      "shards",
      `${count} ImageSyncs created → all Ready`,
      "ImageSyncs/s",
      "vs 1 shard",
      "operator CPU (all shards)",
      "CPU per ImageSync",
      "apiserver requests",
      "ImageSyncs per shard",
      "RSS per shard, all Ready (peak)",
    ],
    rows: runs.map((r) =>
      r.error && r.ready === 0 ? [String(r.shards), r.error, "—", "—", "—", "—", "—", "—", "—"] : [
        String(r.shards),
        r.error ?? seconds(r.readyMs),
        (r.ready / (r.readyMs / 1000)).toFixed(1),
        ratio(base.readyMs, r.readyMs).replace("×", "speed ×"),
        seconds(r.cpuMs),
        `${(r.cpuMs / Math.max(1, r.ready)).toFixed(1)} ms`,
        String(r.requests.total),
        r.perShard.join(" / "),
        r.rssKiB.map((k, i) => `${mib(k)} (${mib(r.peakRssKiB[i])})`).join(" / "),
      ]
    ),
  };
  return {
    id: "B6",
    title: `Throughput vs shard count: ${count} ImageSyncs, 1 → ${SHARD_COUNTS.at(-1)} shards`,
    tables: [table],
    notes: [
      "One `portager run --shards S --shard-index i` process per shard (the shipped form), each electing on its own Lease; default --max-concurrent-syncs (2) per shard. Each ImageSync copies one small image to its own repository of a fresh destination registry.",
      "Time from the first create (8 POSTs at a time) to all Ready, followed with one LIST + WATCH (no polling); CPU = utime + stime of the operator processes over that span (/proc/<pid>/stat); requests = the apiserver's audit log, ServiceAccount user, from operator start.",
      "One shared 2-core machine: apiserver, etcd, registries and every shard compete for the same CPU, so the speed-up here is a floor of what separate nodes give.",
    ],
    data: { count, runs },
  };
}
