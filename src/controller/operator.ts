/**
 * `runOperator`: wires the pieces of the Kubernetes operator together — informers feeding a
 * de-duplicating work queue, `maxConcurrentSyncs` workers running the reconciler, leader
 * election on a Lease, the Event recorder, metrics and the /metrics /healthz /readyz server —
 * and shuts them down gracefully when the signal aborts: stop taking work, let in-flight syncs
 * finish within the grace period, flush Events, release the Lease.
 * @module
 */

import type { ImageSync } from "../api/mod.ts";
import { SYNC_NOW_ANNOTATION } from "../api/mod.ts";
import {
  EventRecorder,
  ImageSyncClient,
  Informer,
  KubeClient,
  LeaseClient,
  loadKubeConfig,
  objectKey,
} from "../kube/mod.ts";
import { createMetrics, type Metrics } from "../metrics/mod.ts";
import { type MetricsServer, startServer } from "../server/http.ts";
import type { Logger } from "../server/log.ts";
import { LeaderElector } from "./leader.ts";
import { ExponentialBackoff, WorkQueue } from "./queue.ts";
import { Reconciler, type StoredImageSync } from "./reconcile.ts";
import { makePrepareSync } from "./sync_runner.ts";

/** Options of {@linkcode runOperator}. */
export interface OperatorOptions {
  /** kubeconfig path; default KUBECONFIG, in-cluster, ~/.kube/config. */
  kubeconfig?: string;
  /** kubeconfig context. */
  context?: string;
  /** Watch only these namespaces; default all. */
  namespaces?: string[];
  /** ImageSyncs synced at the same time; default 2. */
  maxConcurrentSyncs?: number;
  /** Elect a leader through a Lease; only the leader reconciles. */
  leaderElection: boolean;
  /** Lease name; default "portager-leader". */
  leaseName?: string;
  /** Lease namespace; default the service account's namespace in-cluster, else "default". */
  leaseNamespace?: string;
  /** This instance's identity in the Lease; default hostname + random suffix. */
  identity?: string;
  /** Listen address of /metrics /healthz /readyz; default ":8080"; port 0 picks a free port. */
  metricsAddr?: string;
  /** Called once the metrics server listens, with the chosen port. */
  onListening?: (addr: { hostname: string; port: number }) => void;
  /** Registry hosts allowed over plain HTTP. */
  insecureRegistries?: string[];
  /** Extra PEM CA certificates trusted for registries. */
  caCerts?: string[];
  /** Structured logger for everything the operator does. */
  logger: Logger;
  /** Aborting it shuts the operator down gracefully. */
  signal: AbortSignal;
  /** How long in-flight syncs may run after the signal; default 30 s. */
  gracePeriodMs?: number;
  /** Leader election timings (client-go defaults: 15 s, 10 s, 2 s). */
  leaseDurationMs?: number;
  /** Leader steps down when it could not renew for this long (default 10 s). */
  renewDeadlineMs?: number;
  /** Interval of acquire/renew attempts (default 2 s). */
  retryPeriodMs?: number;
  /** Per-key backoff after a failed sync; default 5 s doubling to 5 min. */
  backoffBaseMs?: number;
  /** Longest backoff after repeated failures (default 5 min). */
  backoffMaxMs?: number;
  /** Blob copies in flight per sync; default the sync engine's. */
  copyConcurrency?: number;
  /** Metrics registry to use (tests); default a new one. */
  metrics?: Metrics;
}

/**
 * What the operator's informer cache keeps of an ImageSync: the metadata its watch handlers
 * and the work queue read. Reconcile always GETs the object fresh, so spec, status and
 * `managedFields` (together ~95 % of the object) would only cost memory: 1000 ImageSyncs held
 * whole are ~4.5 MiB of heap, this view ~0.2 MiB.
 */
export interface CachedImageSync {
  /** Identity, version and the fields the update predicates compare. */
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    deletionTimestamp?: string;
    /** Only the sync-now annotation, when set. */
    annotations?: Record<string, string>;
  };
}

/** The informer transform of the operator: an ImageSync reduced to {@linkcode CachedImageSync}. */
export function cachedView(obj: ImageSync): CachedImageSync {
  const md = obj.metadata as ImageSync["metadata"] & {
    uid?: string;
    resourceVersion?: string;
    deletionTimestamp?: string;
  };
  const view: CachedImageSync["metadata"] = { name: md.name };
  if (md.namespace !== undefined) view.namespace = md.namespace;
  if (md.uid !== undefined) view.uid = md.uid;
  if (md.resourceVersion !== undefined) view.resourceVersion = md.resourceVersion;
  if (md.generation !== undefined) view.generation = md.generation;
  if (md.deletionTimestamp !== undefined) view.deletionTimestamp = md.deletionTimestamp;
  const syncNow = md.annotations?.[SYNC_NOW_ANNOTATION];
  if (syncNow !== undefined) view.annotations = { [SYNC_NOW_ANNOTATION]: syncNow };
  return { metadata: view };
}

/** Whether an update event should trigger a reconcile (upstream's predicates, plus deletion). */
export function shouldEnqueueUpdate(previous: CachedImageSync, current: CachedImageSync): boolean {
  const prevMeta = previous.metadata;
  const curMeta = current.metadata;
  if (prevMeta.generation !== curMeta.generation) return true;
  if (
    curMeta.annotations?.[SYNC_NOW_ANNOTATION] === "true" &&
    prevMeta.annotations?.[SYNC_NOW_ANNOTATION] !== "true"
  ) return true;
  return !!curMeta.deletionTimestamp && !prevMeta.deletionTimestamp;
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf("/");
  return [key.slice(0, i), key.slice(i + 1)];
}

function sleep(ms: number): { promise: Promise<void>; cancel: () => void } {
  let t: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<void>((r) => t = setTimeout(r, ms));
  return { promise, cancel: () => clearTimeout(t) };
}

/** Runs the operator until `options.signal` aborts, then shuts down gracefully. */
export async function runOperator(options: OperatorOptions): Promise<void> {
  const log = options.logger;
  const metrics = options.metrics ?? createMetrics();
  const conn = loadKubeConfig({ kubeconfig: options.kubeconfig, context: options.context });
  const kube = new KubeClient(conn, { userAgent: "portager-operator" });
  const identity = options.identity ?? `${safeHostname()}-${crypto.randomUUID().slice(0, 8)}`;
  const leaseNamespace = options.leaseNamespace ?? conn.namespace ?? "default";
  const leaseName = options.leaseName ?? "portager-leader";
  const workers = Math.max(1, options.maxConcurrentSyncs ?? 2);
  const gracePeriodMs = options.gracePeriodMs ?? 30_000;
  log.info("starting operator", {
    server: conn.server,
    context: conn.contextName,
    namespaces: options.namespaces?.length ? options.namespaces : "all",
    leaderElection: options.leaderElection,
    identity,
    maxConcurrentSyncs: workers,
  });

  const imagesyncs = new ImageSyncClient(kube);
  const recorder = new EventRecorder(kube, { instance: identity, logger: log });
  const informerAbort = new AbortController();
  // per leadership term: `stopStarting` aborts when we stop taking work (syncs start no new
  // tags), `cancelInFlight` when copies in flight must stop (grace period over)
  let term = { stopStarting: new AbortController(), cancelInFlight: new AbortController() };
  let queue: WorkQueue | undefined;
  let workerLoops: Promise<void>[] = [];
  const informers: Informer<ImageSync, CachedImageSync>[] = [];
  const backoff = () =>
    new ExponentialBackoff({ baseMs: options.backoffBaseMs, maxMs: options.backoffMaxMs });

  const reconciler = new Reconciler({
    imagesyncs,
    prepareSync: makePrepareSync(kube, {
      insecureRegistries: options.insecureRegistries,
      caCerts: options.caCerts,
      concurrency: options.copyConcurrency,
      logger: log,
    }),
    recorder,
    metrics,
    logger: log,
    observe: (obj) => {
      for (const inf of informers) {
        if (inf.get(objectKey(obj as StoredImageSync))) inf.observe(obj as StoredImageSync);
      }
    },
  });

  const enqueue = (obj: CachedImageSync) => queue?.add(objectKey(obj));
  const handlers = {
    onAdd: (obj: CachedImageSync) => enqueue(obj),
    onUpdate: (prev: CachedImageSync, cur: CachedImageSync) => {
      if (shouldEnqueueUpdate(prev, cur)) enqueue(cur);
    },
    onDelete: (obj: CachedImageSync) => {
      const key = objectKey(obj);
      queue?.cancelTimer(key);
      queue?.forget(key);
      metrics.forget(obj.metadata.namespace ?? "", obj.metadata.name);
      log.info("ImageSync deleted", { imagesync: key });
    },
  };
  const scopes = options.namespaces?.length ? options.namespaces : [undefined];
  for (const ns of scopes) {
    informers.push(
      new Informer(imagesyncs.listWatcher(ns), handlers, { logger: log, transform: cachedView }),
    );
  }

  async function worker(q: WorkQueue, id: number): Promise<void> {
    while (true) {
      const key = await q.get();
      if (key === undefined) return;
      const [ns, name] = splitKey(key);
      const wlog = log.child({ imagesync: key, worker: id });
      try {
        const res = await reconciler.reconcile(ns, name, {
          signal: term.stopStarting.signal,
          cancelInFlight: term.cancelInFlight.signal,
        }).catch((err) => ({
          error: err as Error,
          requeueAfterMs: undefined,
        }));
        if (res.error) {
          if (!q.shuttingDown) {
            const delay = q.addRateLimited(key);
            metrics.observeRetry(ns, name);
            wlog.warn("reconcile failed; retrying with backoff", { error: res.error, retryInMs: delay });
          }
        } else {
          q.forget(key);
          if (res.requeueAfterMs !== undefined) q.addAfter(key, res.requeueAfterMs);
        }
      } finally {
        q.done(key);
      }
    }
  }

  function startWorkers(): void {
    if (queue) return;
    term = { stopStarting: new AbortController(), cancelInFlight: new AbortController() };
    const q = new WorkQueue({ backoff: backoff(), onDepth: (d) => metrics.queueDepth.set(d) });
    queue = q;
    workerLoops = Array.from({ length: workers }, (_, i) => worker(q, i));
    for (const inf of informers) for (const obj of inf.list()) q.add(objectKey(obj));
    metrics.isLeader.set(1);
  }

  /** Stops taking work; in-flight reconciles get `graceMs`, then their syncs are aborted. */
  async function stopWorkers(graceMs: number): Promise<void> {
    const q = queue;
    if (!q) return;
    const { stopStarting, cancelInFlight } = term;
    const loops = Promise.all(workerLoops);
    queue = undefined;
    workerLoops = [];
    metrics.isLeader.set(0);
    q.shutDown();
    stopStarting.abort(new Error("shutdown"));
    const timer = sleep(graceMs);
    const finished = await Promise.race([loops.then(() => true), timer.promise.then(() => false)]);
    timer.cancel();
    if (!finished) {
      log.warn("grace period over; interrupting in-flight syncs", {
        inFlight: q.inFlight,
        gracePeriodMs: graceMs,
      });
      cancelInFlight.abort(new Error("grace period over"));
      await loops;
    }
  }

  let elector: LeaderElector | undefined;
  const electorAbort = new AbortController();
  let electorRun: Promise<void> = Promise.resolve();
  if (options.leaderElection) {
    elector = new LeaderElector({
      leases: new LeaseClient(kube),
      namespace: leaseNamespace,
      name: leaseName,
      identity,
      leaseDurationMs: options.leaseDurationMs,
      renewDeadlineMs: options.renewDeadlineMs,
      retryPeriodMs: options.retryPeriodMs,
      logger: log,
      onStartedLeading: () => startWorkers(),
      // leadership lost: another instance may take over, so stop syncing at once
      onStoppedLeading: () => void stopWorkers(0),
    });
  }

  const ready = () => {
    const watching = informers.every((i) => i.established);
    if (!watching) return { ok: false, detail: "watch not established" };
    if (elector && !elector.isLeader && !elector.healthy) {
      return { ok: false, detail: "leader election not working" };
    }
    return { ok: true };
  };

  let server: MetricsServer | undefined;
  try {
    server = await startServer(options.metricsAddr ?? ":8080", {
      metrics: async () => ({ body: await metrics.expose(), contentType: metrics.contentType }),
      ready,
      logger: log,
      onListening: (a) => {
        log.info("serving /metrics /healthz /readyz", { address: `${a.hostname}:${a.port}` });
        options.onListening?.(a);
      },
    });
  } catch (err) {
    kube.close();
    throw err;
  }

  const informerRuns = informers.map((inf) => inf.run(informerAbort.signal));
  if (elector) electorRun = elector.run(electorAbort.signal);
  else startWorkers();

  // wait for the shutdown signal
  await new Promise<void>((resolve) => {
    if (options.signal.aborted) return resolve();
    options.signal.addEventListener("abort", () => resolve(), { once: true });
  });

  log.info("shutting down", { gracePeriodMs });
  await stopWorkers(gracePeriodMs);
  log.debug("workers stopped; flushing Events");
  await recorder.close();
  // release the lease only after in-flight syncs ended, so a standby does not overlap them
  electorAbort.abort();
  await electorRun;
  log.debug("leader election stopped; closing watches");
  informerAbort.abort();
  await Promise.all(informerRuns);
  log.debug("watches closed; stopping the HTTP server");
  await server.shutdown();
  kube.close();
  log.info("operator stopped");
}

function safeHostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "portager";
  }
}
