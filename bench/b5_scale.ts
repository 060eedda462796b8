/**
 * B5 scale, and the operator half of B4: 1000 ImageSyncs (one small tag each, distinct
 * repositories) created on the harness apiserver (etcd + kube-apiserver) → all Ready, with
 * the operator running as shipped (the bundle) under the deploy/rbac.yaml ServiceAccount.
 * Measured: time from the first create to all Ready, apiserver requests per ImageSync (from
 * the apiserver's audit log, counting only the operator's ServiceAccount), then the
 * operator's idle RSS while it watches the 1000 synced ImageSyncs — for the bundle and, in a
 * second operator started on the same objects, the source form.
 * @module
 */

import { loadAll } from "js-yaml";
import { type KubeCluster, startKube } from "../tests/harness/kube.ts";
import { pushImage } from "../tests/harness/fixtures.ts";
import { freePort } from "../tests/harness/ports.ts";
import { sleep } from "../tests/harness/process.ts";
import type { RegistryServer } from "../tests/harness/registry.ts";
import { pool } from "./b2_unchanged.ts";
import { withReadAccess } from "./commands.ts";
import { refusedB4, TARGET_MIB } from "./b4_memory.ts";
import {
  type BenchContext,
  type CaseResult,
  expectDigests,
  mib,
  seconds,
  type Table,
  withRegistry,
} from "./context.ts";
import { median, readMemory } from "./measure.ts";
import { type ReadyCount, watchReady } from "./ready_watch.ts";
import {
  DENO,
  type PortagerForm,
  ROOT,
  shippedFormProblem,
  sizeFlagsCounterpart,
  sizeFlagsNote,
} from "./tools.ts";
import { type BaselineContext, baselineFor, vsBaseline } from "./baseline.ts";
import { processCpuMs } from "./b6_shards.ts";
import { formatStackCpu, type StackCpu, stackCpu, stackCpuPer } from "./stack_cpu.ts";

/** Namespace of the operator's ServiceAccount (deploy/rbac.yaml's). */
export const SA_NAMESPACE = "portager-system";
/** The operator's ServiceAccount. */
export const SA_NAME = "portager";
/** The ServiceAccount's user name in the audit log. */
export const SA_USER = `system:serviceaccount:${SA_NAMESPACE}:${SA_NAME}`;
/** API path of the ImageSync group. */
export const GROUP_PATH = "/apis/portager.portager.io/v1alpha1";

const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
`;

/** One audit event, the fields we read. */
interface AuditEvent {
  auditID: string;
  stage: string;
  verb: string;
  user?: { username?: string };
  objectRef?: { resource?: string; subresource?: string };
}

/**
 * Counts the requests of `username` in audit-log lines (one per auditID; a watch logs
 * ResponseStarted and ResponseComplete), by "verb resource[/subresource]".
 */
export function countAudit(
  lines: string[],
  username: string,
): { total: number; byKind: Record<string, number> } {
  const seen = new Set<string>();
  const byKind: Record<string, number> = {};
  for (const line of lines) {
    if (!line.trim()) continue;
    let e: AuditEvent;
    try {
      e = JSON.parse(line);
    } catch {
      continue;
    }
    if (e.user?.username !== username || seen.has(e.auditID)) continue;
    seen.add(e.auditID);
    const resource = e.objectRef?.resource ?? "(none)";
    const kind = `${e.verb} ${resource}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ""}`;
    byKind[kind] = (byKind[kind] ?? 0) + 1;
  }
  return { total: seen.size, byKind };
}

/** An admin request that must succeed (409 Conflict passes: the object exists); returns the JSON body. */
export async function ok(kube: KubeCluster, path: string, init?: RequestInit): Promise<unknown> {
  const headers = new Headers(init?.headers);
  if (init?.body) headers.set("content-type", "application/json");
  const res = await kube.adminFetch(path, { ...init, headers });
  const text = await res.text();
  if (!res.ok && res.status !== 409) {
    throw new Error(`${init?.method ?? "GET"} ${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
  }
  return text ? JSON.parse(text) : undefined;
}

function readYamlObjects(file: string): Array<Record<string, unknown>> {
  return (loadAll(Deno.readTextFileSync(`${ROOT}/${file}`)) as Array<Record<string, unknown> | null>)
    .filter((o): o is Record<string, unknown> => o !== null && typeof o === "object");
}

/**
 * etcd + kube-apiserver with an audit log (`<prefix>audit.log` in the scratch folder), the CRD,
 * the operator's namespace and deploy/rbac.yaml applied; the ImageSync API served.
 */
export async function startAuditedCluster(
  ctx: BenchContext,
  prefix: string,
): Promise<{ kube: KubeCluster; auditLines: () => Promise<string[]> }> {
  const policy = `${ctx.scratch}/${prefix}audit-policy.yaml`;
  const auditLog = `${ctx.scratch}/${prefix}audit.log`;
  await Deno.writeTextFile(policy, AUDIT_POLICY);
  const kube = await startKube({
    apiserverArgs: [
      `--audit-policy-file=${policy}`,
      `--audit-log-path=${auditLog}`,
      "--audit-log-format=json",
      "--audit-log-mode=blocking",
    ],
    printTiming: false,
  });
  try {
    for (const o of readYamlObjects("deploy/crd.yaml")) await kube.apply(o);
    await ok(kube, "/api/v1/namespaces", {
      method: "POST",
      body: JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: SA_NAMESPACE } }),
    });
    for (const o of readYamlObjects("deploy/rbac.yaml")) await kube.apply(o);
    for (let i = 0;; i++) {
      const res = await kube.adminFetch(`${GROUP_PATH}/imagesyncs`);
      await res.body?.cancel();
      if (res.status === 200) break;
      if (i > 120) throw new Error(`the ImageSync CRD was not served: HTTP ${res.status}`);
      await sleep(250);
    }
  } catch (e) {
    await kube.stop();
    throw e;
  }
  const auditLines = async () => (await Deno.readTextFile(auditLog).catch(() => "")).split("\n");
  return { kube, auditLines };
}

/** A running operator process with its output drained into memory. */
export interface Operator {
  child: Deno.ChildProcess;
  output: string[];
  drained: Promise<void>;
  metricsPort: number;
}

/** A form B5 runs: a Portager form, or one with extra flags of `run` (its default's alternatives). */
export interface ScaleForm extends PortagerForm {
  /** Flags of `run` after the bench's own (a later flag wins). */
  runArgs?: string[];
}

/** Starts `portager run` in `form` with the bench's flags (plus `opts.args`), output drained. */
export function startOperator(
  form: PortagerForm,
  kubeconfig: string,
  opts: { registries: string[]; namespace: string; scratch: string; args?: string[] },
): Operator {
  const metricsPort = freePort();
  const child = new Deno.Command(form.cmd, {
    args: [
      // the image's binary reads only /var/run/secrets and /etc/portager (in-cluster config);
      // outside a pod it must read its --kubeconfig
      ...withReadAccess(form.args, kubeconfig),
      "run",
      `--kubeconfig=${kubeconfig}`,
      `--metrics-addr=127.0.0.1:${metricsPort}`,
      "--log-format=json",
      "--log-level=warn",
      `--insecure-registry=${opts.registries.join(",")}`,
      `--namespace=${opts.namespace}`,
      "--grace-period=5s",
      ...opts.args ?? [],
    ],
    // only what the bench means to set: the machine's own (SSL_CERT_FILE, KUBECONFIG, …) would
    // reach the operator's flags through their environment fallbacks
    env: { ...form.env, HOME: opts.scratch, NO_COLOR: "1", PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output: string[] = [];
  const drain = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
      output.push(...chunk.split("\n").filter((l) => l));
      if (output.length > 400) output.splice(0, output.length - 200);
    }
  };
  return {
    child,
    output,
    drained: Promise.all([drain(child.stdout), drain(child.stderr)]).then(() => {}),
    metricsPort,
  };
}

/** SIGTERM, SIGKILL after 15 s; waits for the exit and the output. */
export async function stopOperator(op: Operator): Promise<void> {
  try {
    op.child.kill("SIGTERM");
  } catch {
    // already gone
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const exited = await Promise.race([
    op.child.status.then(() => true),
    new Promise<boolean>((r) => timer = setTimeout(() => r(false), 15_000)),
  ]);
  clearTimeout(timer);
  if (!exited) {
    try {
      op.child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  await op.child.status;
  await op.drained;
}

async function waitReadyz(op: Operator, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${op.metricsPort}/readyz`);
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      throw new Error(
        `operator not ready on /readyz within ${deadlineMs} ms:\n${op.output.slice(-20).join("\n")}`,
      );
    }
    await sleep(250);
  }
}

/** Samples VmRSS every second for `ms` and returns the medians (KiB, all and anonymous) and the peak so far. */
async function idleRss(
  pid: number,
  ms: number,
): Promise<{ rssKiB: number; anonKiB: number; hwmKiB: number }> {
  const samples: number[] = [];
  const anon: number[] = [];
  let hwm = 0;
  for (let t = 0; t < ms; t += 1000) {
    const m = readMemory(pid);
    if (m) {
      samples.push(m.rss);
      if (m.anon !== undefined) anon.push(m.anon);
      hwm = m.hwm;
    }
    await sleep(1000);
  }
  return { rssKiB: median(samples), anonKiB: median(anon), hwmKiB: hwm };
}

/** What one operator form did in B5 and at idle. */
export interface ScaleRun {
  form: string;
  namespace: string;
  ready: number;
  failed: Array<{ name: string; message: string }>;
  createMs: number;
  readyMs: number;
  /** CPU (utime + stime, ms) of the operator from the first create to all Ready. */
  cpuMs: number;
  /** CPU per ImageSync (ms) of the stack's processes by role over the same span (bench/stack_cpu.ts). */
  stackCpuPer: StackCpu;
  requests: { total: number; byKind: Record<string, number> };
  /** VmRSS (KiB) a few seconds after /readyz, before any ImageSync existed. */
  emptyRssKiB?: number;
  /** Median VmRSS (KiB) watching the synced ImageSyncs after the settle. */
  idleRssKiB: number;
  /** Median RssAnon (KiB) over the same samples: VmRSS without the mapped executable and libraries. */
  idleAnonKiB: number;
  /** VmHWM (KiB): the peak over the whole run. */
  peakRssKiB: number;
  idleRequests: number;
}

/** What every {@linkcode scaleRun} shares: the apiserver, the source registry and its images. */
export interface ScaleEnv {
  kube: KubeCluster;
  source: RegistryServer;
  kubeconfig: string;
  names: string[];
  digests: Map<string, string>;
  auditLines: () => Promise<string[]>;
  operators: Operator[];
}

/**
 * One operator form: fresh namespace (`bench-<index>`) and destination, create every ImageSync,
 * wait for Ready, then idle. Exported for interleaved A/B runs of forms (several per form).
 */
export async function scaleRun(
  ctx: BenchContext,
  env: ScaleEnv,
  form: ScaleForm,
  index: number,
): Promise<ScaleRun> {
  const { kube, names } = env;
  const count = names.length;
  const settleMs = ctx.quick ? 5_000 : 20_000;
  const sampleMs = ctx.quick ? 3_000 : 10_000;
  const namespace = `bench-${index}`;
  return await withRegistry(async (dst) => {
    await ok(kube, "/api/v1/namespaces", {
      method: "POST",
      body: JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } }),
    });
    const scratch = `${ctx.scratch}/b5-${form.form}`;
    await Deno.mkdir(scratch, { recursive: true });
    ctx.log(`B5 (${form.form}): starting the operator`);
    const startLines = (await env.auditLines()).length;
    const op = startOperator(form, env.kubeconfig, {
      registries: [env.source.host, dst.host],
      namespace,
      scratch,
      args: form.runArgs,
    });
    env.operators.push(op);
    try {
      await waitReadyz(op, 60_000);
      await sleep(3_000);
      const empty = readMemory(op.child.pid);

      ctx.log(`B5 (${form.form}): creating ${count} ImageSyncs`);
      const cpu0 = processCpuMs(op.child.pid) ?? NaN;
      const stack0 = stackCpu(op.child.pid);
      const t0 = performance.now();
      await pool(names, 8, async (name) => {
        await ok(kube, `${GROUP_PATH}/namespaces/${namespace}/imagesyncs`, {
          method: "POST",
          body: JSON.stringify({
            apiVersion: "portager.portager.io/v1alpha1",
            kind: "ImageSync",
            metadata: { name, namespace },
            spec: {
              schedule: "@every 24h",
              source: { registry: env.source.host },
              destination: { registry: dst.host, auth: { method: "anonymous" } },
              images: [{ name: `bench/${name}`, tags: ["1.0"] }],
            },
          }),
        });
      });
      const tCreated = performance.now();
      const deadline = Date.now() + (ctx.quick ? 180_000 : 1_200_000);
      let state: ReadyCount = { ready: 0, failed: [] };
      let lastLog = performance.now();
      const readiness = await watchReady(kube, `${GROUP_PATH}/namespaces/${namespace}/imagesyncs`);
      for (;;) {
        state = readiness.count();
        if (state.ready === count) break;
        if (state.ready + state.failed.length === count && state.failed.length > 0) break;
        if (Date.now() > deadline) break;
        if (performance.now() - lastLog > 15_000) {
          lastLog = performance.now();
          ctx.log(
            `B5 (${form.form}): ${state.ready}/${count} Ready after ${seconds(performance.now() - t0)}`,
          );
        }
        await sleep(100);
      }
      const tReady = performance.now();
      const cpuMs = (processCpuMs(op.child.pid) ?? NaN) - cpu0;
      const stack = stackCpuPer(stack0, stackCpu(op.child.pid), Math.max(1, state.ready));
      await readiness.close();
      const requests = countAudit((await env.auditLines()).slice(startLines), SA_USER);
      if (state.ready === count) {
        // spot-check the copies
        const step = Math.max(1, Math.floor(count / 20));
        await expectDigests(
          dst.url,
          names.filter((_, i) => i % step === 0).map((n) => ({
            repository: `bench/${n}`,
            tag: "1.0",
            digest: env.digests.get(n)!,
          })),
        );
      }
      ctx.log(
        `B5 (${form.form}): ${state.ready}/${count} Ready in ${seconds(tReady - t0)}; CPU ${
          seconds(cpuMs)
        }; requests ${requests.total}`,
      );

      // a floor has no idle behaviour worth measuring (B4 shows only Portager's forms)
      const floor = isFloor(form.form);
      if (!floor) ctx.log(`B4 (${form.form}): operator idle, settling ${settleMs / 1000} s`);
      await sleep(floor ? 0 : settleMs);
      const idleFrom = (await env.auditLines()).length;
      const idle = await idleRss(op.child.pid, floor ? 1000 : sampleMs);
      const idleRequests = countAudit((await env.auditLines()).slice(idleFrom), SA_USER).total;
      const run: ScaleRun = {
        form: form.form,
        namespace,
        ready: state.ready,
        failed: state.failed.slice(0, 10),
        createMs: tCreated - t0,
        readyMs: tReady - t0,
        cpuMs,
        stackCpuPer: stack,
        requests,
        idleRssKiB: idle.rssKiB,
        idleAnonKiB: idle.anonKiB,
        peakRssKiB: idle.hwmKiB,
        idleRequests,
      };
      if (empty) run.emptyRssKiB = empty.rss;
      return run;
    } finally {
      await stopOperator(op);
      env.operators.splice(env.operators.indexOf(op), 1);
    }
  });
}

function overTarget(kib: number): string {
  return kib / 1024 <= TARGET_MIB ? "within" : `above by ${(kib / 1024 - TARGET_MIB).toFixed(0)} MiB`;
}

/** `runs` with those of the `shipped` form first, the others in their order. */
export function shippedFirst<T extends { form: string }>(runs: T[], shipped: string): T[] {
  return [...runs.filter((r) => r.form === shipped), ...runs.filter((r) => r.form !== shipped)];
}

/** Whether a B5 form name is one of the floor rows ({@linkcode floorForm}). */
export function isFloor(form: string): boolean {
  return form.startsWith("floor");
}

/** Whether B4's memory table shows a form: Portager at its defaults (not a floor, not a variant). */
function inB4(form: string): boolean {
  return !isFloor(form) && !form.includes("--max-concurrent-syncs");
}

/** Concurrencies of B5's floor rows: the operator's default (2) and a higher one. */
export const FLOOR_CONCURRENCIES = [2, 8];

/**
 * B5's floor as a form of `portager run`: bench/b5_floor.ts, the least an operator must do per
 * ImageSync (manifest GET, blob GETs, POST + PUT per blob, manifest PUT, one status patch), at
 * `concurrency` syncs at a time. Not the shipped form: B4's memory rows never include it.
 */
export function floorForm(env: Record<string, string>, concurrency: number): PortagerForm {
  return {
    form: `floor, concurrency ${concurrency}`,
    cmd: DENO,
    args: [
      "run",
      "--no-prompt",
      "-A",
      `--config=${ROOT}/deno.json`,
      `${ROOT}/bench/b5_floor.ts`,
      `--concurrency=${concurrency}`,
    ],
    describe: `bench/b5_floor.ts --concurrency=${concurrency}`,
    env,
  };
}

/** `--max-concurrent-syncs` values B5 can run beside the default (2), when `B5_FORMS` names them. */
export const CONCURRENCY_VARIANTS = [1, 4, 8];

/** `form` with another `--max-concurrent-syncs`: "bundle, --max-concurrent-syncs 4". */
export function concurrencyVariant(form: PortagerForm, n: number): ScaleForm {
  return {
    ...form,
    form: `${form.form}, --max-concurrent-syncs ${n}`,
    runArgs: [`--max-concurrent-syncs=${n}`],
  };
}

/**
 * The forms B5 runs, in order: `forms`, or when the comma-separated `B5_FORMS` is set (form
 * names, e.g. "bundle,floor, concurrency 8,bundle" — for interleaved comparisons; a name may
 * repeat) those of `forms` and `extra` it names, in its order.
 */
export function selectForms(
  forms: ScaleForm[],
  extra: ScaleForm[] = [],
  only = Deno.env.get("B5_FORMS"),
): ScaleForm[] {
  if (!only) return forms;
  const all = [...forms, ...extra];
  return only.split(/,(?! )/).map((s) => s.trim()).flatMap((name) =>
    all.filter((f) => f.form === name).slice(0, 1)
  );
}

/** Runs B5 and the operator half of B4, for the bundle and (when it differs) the source form. */
export async function runB5(ctx: BenchContext & BaselineContext): Promise<CaseResult[]> {
  const count = ctx.quick ? 100 : 1000;
  const baseline = await baselineFor(ctx);
  ctx.log(`B5: starting etcd + kube-apiserver`);
  const { kube, auditLines } = await startAuditedCluster(ctx, "b5-");
  const operators: Operator[] = [];
  try {
    const ran = await withRegistry(async (source) => {
      ctx.log(`B5: pushing ${count} small images`);
      const names = Array.from({ length: count }, (_, i) => `app-${String(i).padStart(4, "0")}`);
      const digests = new Map<string, string>();
      await pool(names, 8, async (name) => {
        const pushed = await pushImage(source, { repository: `bench/${name}`, tag: "1.0" }, {
          seed: 5000 + Number(name.slice(4)),
          layers: [1024],
        });
        digests.set(name, pushed.digest);
      });
      const token = await kube.tokenFor(SA_NAMESPACE, SA_NAME, { expirationSeconds: 7200 });
      const kubeconfig = await kube.kubeconfigForToken(token, { namespace: SA_NAMESPACE });
      const env: ScaleEnv = { kube, source, kubeconfig, names, digests, auditLines, operators };
      // the shipped form sits between its two comparisons, so each pair runs back to back: the
      // form without --optimize-for-size just before it, the baseline (the B5 goal's ratio) just
      // after (round 6: run 12 minutes apart, the counterpart's row had looked 19 % faster)
      const forms = selectForms([
        sizeFlagsCounterpart(ctx.portager),
        ctx.portager,
        ...(baseline.form ? [baseline.form] : []),
        ...FLOOR_CONCURRENCIES.map((n) => floorForm(ctx.portagerSource.env, n)),
        ...(ctx.portager.form === "bundle" ? [ctx.portagerSource] : []),
      ], CONCURRENCY_VARIANTS.map((n) => concurrencyVariant(ctx.portager, n)));
      const out: ScaleRun[] = [];
      for (const [i, form] of forms.entries()) out.push(await scaleRun(ctx, env, form, i));
      return out;
    });
    const runOrder = ran.map((r) => r.form).join(" → ");
    // the tables list the shipped form first, whatever the order the forms ran in
    const runs = shippedFirst(ran, ctx.portager.form);

    const per = (n: number) => (n / count).toFixed(2);
    const b5: Table = {
      columns: [
        "program",
        `${count} ImageSyncs created → all Ready`,
        "operator CPU",
        "CPU per ImageSync",
        "apiserver requests",
        "per ImageSync",
        "by kind (top 5)",
      ],
      rows: [
        ...runs.map((r) => [
          isFloor(r.form)
            ? `${r.form.replace("floor,", "floor: ideal operator,")}`
            : `portager run (${r.form})`,
          r.ready === count
            ? seconds(r.readyMs)
            : `not all Ready: ${r.ready}/${count} (${r.failed[0]?.message ?? "timeout"})`,
          seconds(r.cpuMs),
          `${(r.cpuMs / Math.max(1, r.ready)).toFixed(1)} ms`,
          String(r.requests.total),
          per(r.requests.total),
          Object.entries(r.requests.byKind).sort((x, y) => y[1] - x[1]).slice(0, 5).map(([k, n]) =>
            `${k} ${n}`
          )
            .join(", "),
        ]),
        [
          "skopeo, crane, regctl, regsync",
          "cannot: no Kubernetes controller (no ImageSync API)",
          "—",
          "—",
          "—",
          "—",
          "—",
        ],
      ],
    };
    const b4: Table = {
      columns: [
        "program",
        "idle RSS, no ImageSyncs",
        `idle RSS, watching ${count} synced`,
        "of which anonymous",
        `vs ${TARGET_MIB} MiB target`,
        "peak RSS (whole run)",
        `peak vs ${TARGET_MIB} MiB`,
      ],
      rows: [
        ...runs.filter((r) => inB4(r.form)).map((r) => [
          `portager run (${r.form})`,
          mib(r.emptyRssKiB),
          mib(r.idleRssKiB),
          mib(r.idleAnonKiB),
          overTarget(r.idleRssKiB),
          mib(r.peakRssKiB),
          overTarget(r.peakRssKiB),
        ]),
        ["skopeo, crane, regctl, regsync", "cannot: no operator mode", "—", "—", "—", "—", "—"],
      ],
    };
    const settle = ctx.quick ? 5 : 20;
    const b4Title = `Memory: operator RSS syncing and watching ${count} ImageSyncs`;
    const problem = shippedFormProblem(ctx.portager);
    return [
      problem ? refusedB4(b4Title, problem) : {
        id: "B4",
        title: b4Title,
        tables: [b4],
        notes: [
          `"no ImageSyncs": VmRSS 3 s after /readyz answered, before any object existed. "watching ${count} synced": after all were Ready and a ${settle} s settle, the median of VmRSS sampled every second for ${
            ctx.quick ? 3 : 10
          } s. "of which anonymous": RssAnon over the same samples — VmRSS less the pages of the deno executable and libraries mapped from disk (~45 MiB here), which the kernel can drop and re-read under memory pressure. Peak = VmHWM over the whole run, including the sync of all ${count}.`,
          `Operator requests while idle-sampling: ${
            runs.filter((r) => inB4(r.form)).map((r) => `${r.form} ${r.idleRequests}`).join(", ")
          }.`,
          sizeFlagsNote(ctx.portager),
        ],
        data: runs.filter((r) => inB4(r.form)).map((r) => ({
          form: r.form,
          emptyRssKiB: r.emptyRssKiB,
          idleRssKiB: r.idleRssKiB,
          idleAnonKiB: r.idleAnonKiB,
          peakRssKiB: r.peakRssKiB,
        })),
      },
      {
        id: "B5",
        title: `Scale: ${count} ImageSyncs (one small tag each) → all Ready`,
        tables: [b5],
        notes: [
          `Operator = \`portager run --kubeconfig\` with the deploy/rbac.yaml ServiceAccount's token, --namespace of its run (each form gets a fresh namespace and destination registry), default --max-concurrent-syncs (2); each ImageSync copies its own 1-layer image to its own repository.`,
          `Time from the first create (${count} POSTs, 8 at a time, took ${
            runs.map((r) => seconds(r.createMs)).join(" / ")
          }) to all Ready; Ready followed with one watch (the bench's own LIST + WATCH).`,
          `Forms ran one after another in this order, each pair compared back to back: ${runOrder}.`,
          "Operator CPU: utime + stime of the operator process (/proc/<pid>/stat) over the same span, per ImageSync Ready.",
          ...runs.map((r) => `Stack CPU per ImageSync, ${r.form}: ${formatStackCpu(r.stackCpuPer)}.`),
          // B4 leaves variants out; their peak is what a change of the default would cost
          ...runs.filter((r) => !inB4(r.form) && !isFloor(r.form)).map((r) =>
            `Peak RSS (VmHWM, whole run), ${r.form}: ${mib(r.peakRssKiB)}.`
          ),
          `Floor: bench/b5_floor.ts, an "ideal operator" on the same stack — one LIST + WATCH of the namespace, then per ImageSync at the given concurrency only a source manifest GET, per blob a GET and an upload POST + PUT (streamed), the manifest PUT and one status merge patch to Ready; no existence checks, pings, Events, retries or metrics. If its time is above half the baseline's, no operator on this stack reaches issue 16's ≤ 0.50×.`,
          "Requests: the apiserver's audit log, ServiceAccount user only, from operator start to all Ready (one per request; a watch counts once).",
          ...baseline.form
            ? [`Baseline: ${baseline.form.describe}.`, ...vsBaseline(runs, baseline.form.form, count)]
            : [`Baseline ${baseline.problem}.`],
        ],
        data: runs,
      },
    ];
  } finally {
    for (const op of [...operators]) await stopOperator(op);
    await kube.stop();
  }
}
