/**
 * Running the operator against the harness's apiserver, for integration tests: in-process
 * (`runOperator` with captured log lines and its own metrics registry) or as a child process
 * that can really be killed (`main.ts run`, or this module as entry point when a test needs
 * options the CLI does not expose, such as short leader-election timings). Plus the bounded
 * waits, object reads and Secret builders those tests share, and a credential-leak check.
 *
 * Child entry: `deno run -A tests/harness/operator.ts '<OperatorChildOptions as JSON>'`.
 * @module
 */

import { API_VERSION, crdObject, KIND, PLURAL } from "../../src/api/mod.ts";
import { createLogger, type OperatorOptions, runOperator } from "../../src/controller/mod.ts";
import { createMetrics, type Metrics } from "../../src/metrics/mod.ts";
import type { KubeCluster } from "./kube.ts";

/** The Deno binary running the tests (also used for child operators). */
export const DENO = Deno.execPath();
const REPO = new URL("../../", import.meta.url).pathname;

/** Sleeps `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Polls `probe` every `intervalMs` until it returns a value other than undefined, or throws
 * after `timeoutMs` with `what` and the last probe's detail (`describe`) in the message.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  opts: { timeoutMs?: number; intervalMs?: number; describe?: () => Promise<string> | string } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) {
      const detail = opts.describe ? `\n${await opts.describe()}` : "";
      throw new Error(`timed out after ${opts.timeoutMs ?? 30_000} ms waiting for ${what}${detail}`);
    }
    await sleep(opts.intervalMs ?? 150);
  }
}

/** A condition as stored in status. */
export interface StoredCondition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

/** An ImageSync as read back from the apiserver (loosely typed for assertions). */
export interface StoredObject {
  metadata: {
    name: string;
    namespace: string;
    generation?: number;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: Record<string, unknown>;
  status?: {
    conditions?: StoredCondition[];
    images?: Array<
      {
        name: string;
        tags?: Array<
          { tag: string; synced: boolean; sourceDigest?: string; error?: string; reason?: string }
        >;
      }
    >;
    observedGeneration?: number;
    totalImages?: number;
    syncedImages?: number;
    failedImages?: number;
    lastSyncTime?: string;
    nextSyncTime?: string;
  };
}

/** The API path of an ImageSync. */
export function imageSyncPath(namespace: string, name?: string): string {
  return `/apis/${API_VERSION}/namespaces/${namespace}/${PLURAL}${name ? `/${name}` : ""}`;
}

/** Reads an ImageSync as admin; undefined when it does not exist. */
export async function getImageSync(
  kube: KubeCluster,
  namespace: string,
  name: string,
): Promise<StoredObject | undefined> {
  const res = await kube.adminFetch(imageSyncPath(namespace, name));
  if (res.status === 404) {
    await res.body?.cancel();
    return undefined;
  }
  if (!res.ok) throw new Error(`GET ImageSync ${namespace}/${name} → ${res.status}: ${await res.text()}`);
  return await res.json();
}

/** The condition `type` of an object, if set. */
export function condition(obj: StoredObject | undefined, type: string): StoredCondition | undefined {
  return obj?.status?.conditions?.find((c) => c.type === type);
}

/**
 * Waits until the ImageSync's Ready condition satisfies `ok` for its current generation, and
 * returns the object. Default `ok`: any Ready condition at all.
 */
export function waitForReady(
  kube: KubeCluster,
  namespace: string,
  name: string,
  opts: { ok?: (c: StoredCondition, o: StoredObject) => boolean; timeoutMs?: number; logs?: () => string } =
    {},
): Promise<StoredObject> {
  let last: StoredObject | undefined;
  return waitFor(`ImageSync ${namespace}/${name} Ready`, async () => {
    last = await getImageSync(kube, namespace, name);
    const ready = condition(last, "Ready");
    if (!last || !ready) return undefined;
    if (ready.observedGeneration !== undefined && ready.observedGeneration !== last.metadata.generation) {
      return undefined;
    }
    return (opts.ok ?? (() => true))(ready, last) ? last : undefined;
  }, {
    timeoutMs: opts.timeoutMs ?? 60_000,
    intervalMs: 200,
    describe: () =>
      `last status: ${JSON.stringify(last?.status ?? null)}${
        opts.logs ? `\n--- operator log (tail) ---\n${opts.logs().split("\n").slice(-40).join("\n")}` : ""
      }`,
  });
}

/** A core/v1 Event as read back. */
export interface StoredEvent {
  type: string;
  reason: string;
  message: string;
  count?: number;
  /** The reporter as core/v1 Events name it (`kubectl describe`'s From). */
  source?: { component?: string };
  /** The reporter as events.k8s.io/v1 names it. */
  reportingComponent?: string;
  involvedObject: { kind: string; name: string; namespace: string };
}

/** Events about an object (or all Events of the namespace when `name` is absent). */
export async function eventsFor(kube: KubeCluster, namespace: string, name?: string): Promise<StoredEvent[]> {
  const q = name ? `?fieldSelector=${encodeURIComponent(`involvedObject.name=${name}`)}` : "";
  const res = await kube.adminFetch(`/api/v1/namespaces/${namespace}/events${q}`);
  if (!res.ok) throw new Error(`list events → ${res.status}: ${await res.text()}`);
  return ((await res.json()).items ?? []) as StoredEvent[];
}

/** Waits until an Event with `reason` about `name` exists, and returns it. */
export function waitForEvent(
  kube: KubeCluster,
  namespace: string,
  name: string,
  reason: string,
  opts: { timeoutMs?: number } = {},
): Promise<StoredEvent> {
  let seen: StoredEvent[] = [];
  return waitFor(`Event ${reason} for ${namespace}/${name}`, async () => {
    seen = await eventsFor(kube, namespace, name);
    return seen.find((e) => e.reason === reason);
  }, {
    timeoutMs: opts.timeoutMs ?? 15_000,
    describe: () => `events: ${JSON.stringify(seen.map((e) => [e.type, e.reason, e.message]))}`,
  });
}

/** An ImageSync object for `kube.apply`. */
export function imageSync(
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
): Record<string, unknown> {
  return { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace }, spec };
}

/** A `kubernetes.io/dockerconfigjson` Secret holding `auths` (host → user/password). */
export function dockerConfigSecret(
  namespace: string,
  name: string,
  auths: Record<string, { username: string; password: string }>,
): Record<string, unknown> {
  const entries: Record<string, { auth: string }> = {};
  for (const [host, c] of Object.entries(auths)) {
    entries[host] = { auth: btoa(`${c.username}:${c.password}`) };
  }
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace },
    type: "kubernetes.io/dockerconfigjson",
    data: { ".dockerconfigjson": btoa(JSON.stringify({ auths: entries })) },
  };
}

/** Creates a namespace (ignoring "already exists"). */
export async function createNamespace(kube: KubeCluster, name: string): Promise<void> {
  const res = await kube.adminFetch("/api/v1/namespaces", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name } }),
  });
  await res.body?.cancel();
  if (!res.ok && res.status !== 409) throw new Error(`create namespace ${name} → ${res.status}`);
}

/** Applies the ImageSync CRD generated from src/api. */
export async function applyCrd(kube: KubeCluster): Promise<void> {
  await kube.apply(crdObject());
}

/** Options of {@linkcode startOperator}. */
export interface InProcessOptions {
  namespaces?: string[];
  insecureRegistries?: string[];
  caCerts?: string[];
  maxConcurrentSyncs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  gracePeriodMs?: number;
  /** The push-notification endpoint, usually on `127.0.0.1:0`; its address is the operator's `webhookUrl`. */
  webhook?: OperatorOptions["webhook"];
  /** Elect a leader on this Lease; default no leader election. */
  leaderElection?: Pick<
    OperatorOptions,
    "identity" | "leaseNamespace" | "leaseName" | "leaseDurationMs" | "renewDeadlineMs" | "retryPeriodMs"
  >;
  /** Run as shard `index` of `shards` (needs `leaderElection`). */
  shard?: OperatorOptions["shard"];
  /** Watch only the ImageSyncs this label selector picks (needs `leaderElection`). */
  watchLabelSelector?: string;
}

/** An operator running in this process. */
export interface InProcessOperator {
  /** Every log line (JSON), in order. */
  lines: string[];
  /** Its metrics registry. */
  metrics: Metrics;
  /** Base URL of its /metrics /healthz /readyz server. */
  url: string;
  /** Base URL of its webhook endpoint (`…/webhook/<source>`), with `webhook` set. */
  webhookUrl?: string;
  /** The log as one text. */
  log(): string;
  /** Shuts it down (graceful) and waits until it stopped; rejects if it crashed. */
  stop(): Promise<void>;
  /** Whether runOperator has returned or thrown (it must not, while the test runs). */
  exited(): boolean;
}

/**
 * Starts `runOperator` in this process with the admin kubeconfig and a port-0 metrics server
 * (and, with `webhook`, its push endpoint: `webhookUrl`); resolves once both listen.
 */
export async function startOperator(
  kube: KubeCluster,
  opts: InProcessOptions = {},
): Promise<InProcessOperator> {
  const lines: string[] = [];
  const metrics = createMetrics();
  const ac = new AbortController();
  const listening = Promise.withResolvers<number>();
  const hookListening = Promise.withResolvers<number>();
  let done = false;
  const run = runOperator({
    kubeconfig: kube.kubeconfigPath,
    metricsAddr: "127.0.0.1:0",
    onListening: (a) => listening.resolve(a.port),
    logger: createLogger({ level: "debug", format: "json", write: (l) => lines.push(l) }),
    signal: ac.signal,
    metrics,
    namespaces: opts.namespaces,
    insecureRegistries: opts.insecureRegistries,
    caCerts: opts.caCerts,
    maxConcurrentSyncs: opts.maxConcurrentSyncs ?? 4,
    backoffBaseMs: opts.backoffBaseMs ?? 500,
    backoffMaxMs: opts.backoffMaxMs ?? 5_000,
    gracePeriodMs: opts.gracePeriodMs ?? 5_000,
    ...opts.leaderElection,
    leaderElection: opts.leaderElection !== undefined,
    shard: opts.shard,
    watchLabelSelector: opts.watchLabelSelector,
    webhook: opts.webhook && {
      ...opts.webhook,
      onListening: (a) => {
        hookListening.resolve(a.port);
        opts.webhook?.onListening?.(a);
      },
    },
  }).finally(() => done = true);
  const exited = run.then(() => -1);
  const port = await Promise.race([listening.promise, exited]);
  const hookPort = opts.webhook ? await Promise.race([hookListening.promise, exited]) : 0;
  if (port < 0 || hookPort < 0) throw new Error(`the operator exited at start-up:\n${lines.join("\n")}`);
  return {
    lines,
    metrics,
    url: `http://127.0.0.1:${port}`,
    webhookUrl: opts.webhook ? `http://127.0.0.1:${hookPort}` : undefined,
    log: () => lines.join("\n"),
    exited: () => done,
    async stop() {
      ac.abort();
      await run;
    },
  };
}

/** Options of the child entry point (JSON in argv[0]). */
export interface OperatorChildOptions {
  kubeconfig: string;
  identity: string;
  leaseNamespace: string;
  leaseName?: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  insecureRegistries?: string[];
  gracePeriodMs?: number;
  /** Run as shard `index` of `shards` (src/controller/shard.ts). */
  shard?: { shards: number; index: number };
  /** Watch only the ImageSyncs this label selector picks (`--watch-label-selector`). */
  watchLabelSelector?: string;
}

/** A child operator process whose output goes to `logFile`. */
export interface OperatorProcess {
  child: Deno.ChildProcess;
  logFile: string;
  /** The log so far. */
  log(): Promise<string>;
  /** Sends `signal` and waits for the exit. */
  kill(signal: Deno.Signal): Promise<Deno.CommandStatus>;
}

function spawnLogged(args: string[], logFile: string): OperatorProcess {
  // through sh so output goes straight to a file (no pipes to pump); exec keeps the pid
  const child = new Deno.Command("/bin/sh", {
    args: ["-c", 'log=$1; shift; exec "$@" >>"$log" 2>&1', "sh", logFile, ...args],
    cwd: REPO,
    stdin: "null",
    stdout: "null",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).spawn();
  let status: Deno.CommandStatus | undefined;
  child.status.then((s) => status = s);
  return {
    child,
    logFile,
    log: () => Deno.readTextFile(logFile).catch(() => ""),
    async kill(signal: Deno.Signal) {
      if (!status) {
        try {
          child.kill(signal);
        } catch { /* gone */ }
      }
      return await child.status;
    },
  };
}

/** Spawns `main.ts run` with `args` (after `run`), logging to `logFile`. */
export function spawnMainRun(args: string[], logFile: string): OperatorProcess {
  return spawnLogged([DENO, "run", "-A", "--quiet", `${REPO}main.ts`, "run", ...args], logFile);
}

/** Spawns this module as an operator with leader election and the given timings. */
export function spawnElectingOperator(opts: OperatorChildOptions, logFile: string): OperatorProcess {
  return spawnLogged(
    [DENO, "run", "-A", "--quiet", new URL(import.meta.url).pathname, JSON.stringify(opts)],
    logFile,
  );
}

/** Options of {@link spawnUpstreamOperator}. */
export interface UpstreamOperatorOptions {
  /** The child's environment. */
  env: Record<string, string>;
  /** Start the child with `env` alone (nothing inherited from the test). */
  clearEnv?: boolean;
}

/** An operator child on upstream's command line, its JSON log (stderr) kept in memory. */
export interface UpstreamOperator {
  /** Where "serving /metrics" said /metrics is served. */
  metrics: { address: string; scheme: string };
  /** The log so far. */
  log(): string;
  /** The log's last 40 lines, for failure messages. */
  tail(): string;
  /** GETs /metrics over plain HTTP, asserts 200 and returns the text. */
  scrape(): Promise<string>;
  /** Sends SIGTERM and waits for the exit and the end of the log. */
  stop(): Promise<void>;
}

/**
 * Spawns `main.ts` with upstream's flags `args` (no subcommand) and waits up to 30 s for the
 * "serving /metrics" log line; the child is stopped if that wait fails.
 */
export async function spawnUpstreamOperator(
  args: string[],
  opts: UpstreamOperatorOptions,
): Promise<UpstreamOperator> {
  const child = new Deno.Command(DENO, {
    args: ["run", "-A", "--quiet", `${REPO}main.ts`, ...args],
    clearEnv: opts.clearEnv,
    env: opts.env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const logging = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({
      write(chunk) {
        log += chunk;
      },
    }),
  );
  const tail = () => log.split("\n").slice(-40).join("\n");
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
    await logging.catch(() => {});
  };
  let metrics: { address: string; scheme: string };
  try {
    metrics = await waitFor("the metrics address in the log", () => {
      for (const line of log.split("\n")) {
        if (!line.startsWith("{")) continue;
        const l = JSON.parse(line);
        if (l.msg === "serving /metrics") return l as { address: string; scheme: string };
      }
    }, { timeoutMs: 30_000, describe: tail });
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    metrics,
    log: () => log,
    tail,
    async scrape() {
      const res = await fetch(`http://${metrics.address}/metrics`);
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new Error(`GET /metrics answered ${res.status}, want 200`);
      }
      return await res.text();
    },
    stop,
  };
}

/** Every way a secret may show up in text: as is, base64 (alone or in `user:secret`), URL-encoded. */
function secretForms(secret: string, user?: string): string[] {
  const forms = [secret, encodeURIComponent(secret)];
  if (secret.length >= 6) forms.push(btoa(secret).replace(/=+$/, ""));
  if (user !== undefined) forms.push(btoa(`${user}:${secret}`).replace(/=+$/, ""));
  return forms;
}

/**
 * Throws if any text contains one of the secrets (in any of its forms) or anything that looks
 * like a bearer token (a JWT); `where` names the texts in the message.
 */
export function assertNoSecrets(
  texts: Array<{ where: string; text: string }>,
  secrets: Array<{ secret: string; user?: string }>,
): void {
  const jwt = /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+/;
  for (const { where, text } of texts) {
    for (const s of secrets) {
      for (const f of secretForms(s.secret, s.user)) {
        if (f && text.includes(f)) {
          const at = text.indexOf(f);
          throw new Error(`a secret leaked into ${where}: …${text.slice(Math.max(0, at - 80), at)}[SECRET]…`);
        }
      }
    }
    const m = jwt.exec(text);
    if (m) {
      throw new Error(
        `a token leaked into ${where}: …${text.slice(Math.max(0, m.index - 80), m.index)}[JWT]…`,
      );
    }
  }
}

/** Every Event in the cluster and every ImageSync's status, as text for {@linkcode assertNoSecrets}. */
export async function clusterTexts(kube: KubeCluster): Promise<Array<{ where: string; text: string }>> {
  const events = await (await kube.adminFetch("/api/v1/events")).json();
  const syncs = await (await kube.adminFetch(`/apis/${API_VERSION}/${PLURAL}`)).json();
  return [
    { where: "Events", text: JSON.stringify(events.items ?? []) },
    {
      where: "ImageSync status",
      text: JSON.stringify((syncs.items ?? []).map((o: { status?: unknown }) => o.status ?? null)),
    },
  ];
}

if (import.meta.main) {
  const o = JSON.parse(Deno.args[0]) as OperatorChildOptions;
  const ac = new AbortController();
  Deno.addSignalListener("SIGTERM", () => ac.abort());
  await runOperator({
    kubeconfig: o.kubeconfig,
    identity: o.identity,
    leaderElection: true,
    leaseNamespace: o.leaseNamespace,
    leaseName: o.leaseName,
    leaseDurationMs: o.leaseDurationMs,
    renewDeadlineMs: o.renewDeadlineMs,
    retryPeriodMs: o.retryPeriodMs,
    metricsAddr: "127.0.0.1:0",
    insecureRegistries: o.insecureRegistries,
    gracePeriodMs: o.gracePeriodMs ?? 2_000,
    shard: o.shard,
    watchLabelSelector: o.watchLabelSelector,
    backoffBaseMs: 500,
    backoffMaxMs: 5_000,
    logger: createLogger({ level: "debug", format: "json" }),
    signal: ac.signal,
  });
}
