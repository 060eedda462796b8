/**
 * `runOperator`: the Kubernetes operator as wiring only — the manager (src/controller's
 * queue, workers, backoff, grace period, leader gate, probes) over the apiserver store
 * (src/kube's `KubeStore`) with informers as its event source (upstream's predicates: a
 * generation change, the sync-now annotation, deletion).
 * @module
 */

import type { ImageSync } from "../api/mod.ts";
import { SYNC_NOW_ANNOTATION } from "../api/mod.ts";
import {
  AccessReviewer,
  type ImageSyncClient,
  Informer,
  KubeClient,
  KubeStore,
  LeaseClient,
  loadKubeConfig,
  objectKey,
} from "../kube/mod.ts";
import { createMetrics, type Metrics, runtimeMetrics } from "../metrics/mod.ts";
import type { ManagerWebhookOptions } from "./manager.ts";
import { authFilter } from "../server/authn.ts";
import type { ProbeResult } from "../server/http.ts";
import { selfSignedCertificate } from "../server/self_signed.ts";
import type { Logger } from "../log/mod.ts";
import { parseAllowedRegistries } from "../credentials/allowed_registries.ts";
import { preloadStreamingHash } from "../oci/mod.ts";
import {
  DEFAULT_WORKERS,
  type EventSource,
  type HttpOptions,
  type KeySink,
  Manager,
  type RemovalReason,
} from "./manager.ts";
import type { StoredImageSync } from "./reconcile.ts";
import { type LabelRequirement, parseLabelSelector, selects } from "./label_selector.ts";
import { shardElection, type ShardIdentity } from "./shard.ts";
import type { SyncSettings } from "./sync_runner.ts";

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
  /** Lease name; default {@linkcode DEFAULT_LEASE_NAME}, upstream's. */
  leaseName?: string;
  /** Lease namespace; default the service account's namespace in-cluster, else "default". */
  leaseNamespace?: string;
  /** This instance's identity in the Lease; default hostname + random suffix. */
  identity?: string;
  /**
   * Legacy: one plain-HTTP server for /metrics /healthz /readyz (port 0 picks a free port).
   * Used when neither `metricsBindAddress` nor `healthProbeBindAddress` is given; default ":8080".
   */
  metricsAddr?: string;
  /** controller-runtime's metrics address: /metrics alone, HTTPS with authn/authz unless `metricsSecure` is false; "0" off. */
  metricsBindAddress?: string;
  /** controller-runtime's probe address: /healthz /readyz alone; "0" off. */
  healthProbeBindAddress?: string;
  /** Serve `metricsBindAddress` over HTTPS with TokenReview/SubjectAccessReview; default true. */
  metricsSecure?: boolean;
  /** Offer HTTP/2 on the HTTPS metrics server; default false. */
  enableHttp2?: boolean;
  /** Folder of the metrics certificate; unset: a self-signed one is made at start. */
  metricsCertPath?: string;
  /** Certificate file name in `metricsCertPath`; default "tls.crt". */
  metricsCertName?: string;
  /** Key file name in `metricsCertPath`; default "tls.key". */
  metricsCertKey?: string;
  /** Called once the metrics server listens, with the chosen port. */
  onListening?: (addr: { hostname: string; port: number }) => void;
  /** Called once the separate probe server listens. */
  onProbesListening?: (addr: { hostname: string; port: number }) => void;
  /** Whether a secretRef may name another namespace than its ImageSync's; default false. */
  allowCrossNamespaceRefs?: boolean;
  /** Namespaces whose ImageSyncs may use the operator's cloud identity (ecr, gar); default all. */
  cloudIdentityNamespaces?: string[];
  /**
   * Host patterns (`*` wildcards, optional port) of the registries ImageSyncs may name; an
   * ImageSync naming another is refused as RegistryNotAllowed. Default: every registry.
   */
  allowedRegistries?: string[];
  /** Registry hosts allowed over plain HTTP. */
  insecureRegistries?: string[];
  /** Extra PEM CA certificates trusted for registries. */
  caCerts?: string[];
  /** What one sync may cost: its deadline, request deadlines, transfer rate, manifest and tag caps. */
  syncLimits?: SyncSettings["limits"];
  /** A Sigstore `trusted_root.json` for keyless cosign checks (--sigstore-trusted-root). */
  trustedRootPath?: string;
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
  /**
   * Blob and manifest transfers in flight at once over every sync of this process, on top of
   * `copyConcurrency` per sync (`--max-transfers`); default `DEFAULT_MAX_TRANSFERS` (8).
   */
  maxTransfers?: number;
  /**
   * Run as shard `index` of `shards` (needs `leaderElection`): only the ImageSyncs whose
   * FNV-1a hash of namespace/name falls in this shard, elected on `<leaseName>-shard-<index>`.
   */
  shard?: ShardIdentity;
  /**
   * Watch only the ImageSyncs this label selector picks (`--watch-label-selector`, as Flux's
   * shards; needs `leaderElection`): the apiserver filters list and watch, and the process
   * elects on the selector's own Lease (src/controller/shard.ts). With `shard`, the hash splits
   * what the selector picks.
   */
  watchLabelSelector?: string;
  /** Metrics registry to use (tests); default a new one. */
  metrics?: Metrics;
  /** The push-notification endpoint (src/webhook); unset: off. */
  webhook?: ManagerWebhookOptions;
}

/**
 * What the operator's informer cache keeps of an ImageSync: what reconcile reads (spec, status,
 * identity, generation, annotations and labels) — reconcile reads the cache, as
 * controller-runtime's reconcilers do, not the apiserver. Dropped: `managedFields` and kubectl's
 * last-applied-configuration annotation (each about as large as the spec, and read by nobody
 * here), and the rest of the metadata.
 */
export type CachedImageSync = StoredImageSync;

/** kubectl's copy of the last applied object, in every `kubectl apply`'d object's annotations. */
const LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration";

/** The informer transform of the operator: an ImageSync reduced to {@linkcode CachedImageSync}. */
export function cachedView(obj: ImageSync): CachedImageSync {
  const md = obj.metadata as StoredImageSync["metadata"];
  const view: StoredImageSync["metadata"] = { name: md.name } as StoredImageSync["metadata"];
  if (md.namespace !== undefined) view.namespace = md.namespace;
  if (md.uid !== undefined) view.uid = md.uid;
  if (md.resourceVersion !== undefined) view.resourceVersion = md.resourceVersion;
  if (md.generation !== undefined) view.generation = md.generation;
  if (md.deletionTimestamp !== undefined) view.deletionTimestamp = md.deletionTimestamp;
  if (md.labels !== undefined) view.labels = md.labels;
  if (md.annotations !== undefined) {
    const { [LAST_APPLIED_ANNOTATION]: _, ...rest } = md.annotations;
    if (Object.keys(rest).length > 0) view.annotations = rest;
  }
  const out: CachedImageSync = { apiVersion: obj.apiVersion, kind: obj.kind, metadata: view, spec: obj.spec };
  if (obj.status !== undefined) out.status = obj.status;
  return out;
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

/**
 * The operator's event source: one informer per watched namespace (or one for all), keeping
 * the {@linkcode cachedView} of each ImageSync and passing on the changes that matter.
 */
export class InformerSource implements EventSource {
  readonly #informers: Informer<ImageSync, CachedImageSync>[] = [];
  #sink?: KeySink;

  /** Creates the informers; `run` starts them. */
  constructor(
    imagesyncs: ImageSyncClient,
    options: {
      namespaces?: string[];
      logger: Logger;
      owns?: (key: string) => boolean;
      labelSelector?: string;
    },
  ) {
    const log = options.logger;
    const selector = options.labelSelector ? parseLabelSelector(options.labelSelector) : undefined;
    const add = (obj: CachedImageSync) => this.#sink?.add(objectKey(obj));
    const handlers = {
      onAdd: add,
      onUpdate: (prev: CachedImageSync, cur: CachedImageSync) => {
        if (shouldEnqueueUpdate(prev, cur)) add(cur);
      },
      onDelete: (obj: CachedImageSync) => {
        const key = objectKey(obj);
        // with a selector, relabeling an ImageSync out of it reads as a delete (another shard's
        // now), and the DELETED event carries the object as it was before: whether it still
        // exists is read only if a sync was cancelled, for the log
        this.#sink?.remove(key, selector ? () => stillThere(imagesyncs, obj, selector) : "deleted");
        log.info(options.labelSelector ? "ImageSync deleted or no longer selected" : "ImageSync deleted", {
          imagesync: key,
        });
      },
    };
    const scopes = options.namespaces?.length ? options.namespaces : [undefined];
    for (const ns of scopes) {
      this.#informers.push(
        new Informer(imagesyncs.listWatcher(ns, { labelSelector: options.labelSelector }), handlers, {
          logger: log,
          transform: cachedView,
          keep: options.owns ? (obj) => options.owns!(objectKey(obj)) : undefined,
        }),
      );
    }
  }

  /** Runs the informers until `signal` aborts. */
  async run(sink: KeySink, signal: AbortSignal): Promise<void> {
    this.#sink = sink;
    await Promise.all(this.#informers.map((inf) => inf.run(signal)));
  }

  /** Every cached ImageSync's key. */
  *keys(): Iterable<string> {
    for (const inf of this.#informers) for (const obj of inf.list()) yield objectKey(obj);
  }

  /** Ready once every watch is established. */
  ready(): ProbeResult {
    return this.#informers.every((i) => i.established)
      ? { ok: true }
      : { ok: false, detail: "watch not established" };
  }

  /** The cached ImageSync `namespace/name` (what reconcile reads), undefined when none is cached. */
  cached(namespace: string, name: string): ImageSync | undefined {
    const key = `${namespace}/${name}`;
    for (const inf of this.#informers) {
      const obj = inf.get(key);
      if (obj) return obj;
    }
    return undefined;
  }

  /** Refreshes the cache with an object reconcile just wrote. */
  observe(obj: ImageSync): void {
    for (const inf of this.#informers) {
      if (inf.get(objectKey(obj as StoredImageSync))) inf.observe(obj as StoredImageSync);
    }
  }
}

/** How long the read telling a relabel from a delete may take. */
const REMOVAL_READ_TIMEOUT_MS = 5_000;

/**
 * Why `obj` left a selector shard's watch: `unselected` when it still exists (same uid) with
 * labels the selector refuses, `deleted` when it is gone (or was re-created).
 */
async function stillThere(
  imagesyncs: ImageSyncClient,
  obj: CachedImageSync,
  selector: LabelRequirement[],
): Promise<RemovalReason> {
  const now = await imagesyncs.get(obj.metadata.namespace, obj.metadata.name, {
    signal: AbortSignal.timeout(REMOVAL_READ_TIMEOUT_MS),
  }) as CachedImageSync | undefined;
  if (!now || now.metadata.uid !== obj.metadata.uid || now.metadata.deletionTimestamp) return "deleted";
  return selects(selector, now.metadata.labels) ? "deleted-or-unselected" : "unselected";
}

/** upstream Portager's LeaderElectionID: the Lease both elect on, so they never lead at once. */
export const DEFAULT_LEASE_NAME = "c8073f84.portager.io";

function enabled(addr: string | undefined): addr is string {
  return addr !== undefined && addr !== "" && addr !== "0";
}

/** Where the operator listens, and how /metrics is protected. */
async function httpOptions(options: OperatorOptions, kube: KubeClient): Promise<HttpOptions> {
  const upstream = options.metricsBindAddress !== undefined || options.healthProbeBindAddress !== undefined;
  if (!upstream) return { metricsAddr: options.metricsAddr ?? ":8080", onListening: options.onListening };
  const http: HttpOptions = {
    onListening: options.onListening,
    onProbesListening: options.onProbesListening,
    healthProbeAddr: enabled(options.healthProbeBindAddress) ? options.healthProbeBindAddress : undefined,
    probesOff: !enabled(options.healthProbeBindAddress),
  };
  if (!enabled(options.metricsBindAddress)) return http;
  http.metricsAddr = options.metricsBindAddress;
  if (options.metricsSecure ?? true) {
    http.metricsTls = await metricsCertificate(options);
    // a mounted Secret is rotated in place (cert-manager): serve the new one when it changes
    if (options.metricsCertPath) http.metricsTlsReload = { load: () => metricsCertificate(options) };
    http.http2 = options.enableHttp2 ?? false;
    http.metricsAuthorize = authFilter(new AccessReviewer(kube), { logger: options.logger });
  }
  return http;
}

/** The metrics server's certificate: from `metricsCertPath`, else self-signed now. */
async function metricsCertificate(options: OperatorOptions): Promise<{ cert: string; key: string }> {
  const dir = options.metricsCertPath;
  if (!dir) return await selfSignedCertificate(["localhost", "127.0.0.1", "::1", safeHostname()]);
  const path = (name: string) => `${dir.replace(/\/+$/, "")}/${name}`;
  const certFile = path(options.metricsCertName || "tls.crt");
  const keyFile = path(options.metricsCertKey || "tls.key");
  try {
    return { cert: await Deno.readTextFile(certFile), key: await Deno.readTextFile(keyFile) };
  } catch (err) {
    throw new Error(
      `cannot read the metrics certificate ${certFile} / ${keyFile}: ${(err as Error).message}`,
    );
  }
}

/** Runs the operator until `options.signal` aborts, then shuts down gracefully. */
export async function runOperator(options: OperatorOptions): Promise<void> {
  const log = options.logger;
  // The Node layer is loaded here anyway (prom-client, kube): with the native hash loaded every
  // blob streams, holding less of it than reading small ones whole (B4 in docs/PERFORMANCE.md).
  await preloadStreamingHash();
  const conn = loadKubeConfig({ kubeconfig: options.kubeconfig, context: options.context });
  const metrics = options.metrics ?? createMetrics();
  const runtime = runtimeMetrics(metrics.registry);
  const apiHost = new URL(conn.server).host;
  const kube = new KubeClient(conn, {
    userAgent: "portager-operator",
    onResponse: (method, code) => runtime.restRequest(apiHost, method, code),
  });
  const identity = options.identity ?? `${safeHostname()}-${crypto.randomUUID().slice(0, 8)}`;
  const workers = Math.max(1, options.maxConcurrentSyncs ?? DEFAULT_WORKERS);
  log.info("starting operator", {
    server: conn.server,
    context: conn.contextName,
    namespaces: options.namespaces?.length ? options.namespaces : "all",
    leaderElection: options.leaderElection,
    identity,
    maxConcurrentSyncs: workers,
  });
  let http: HttpOptions;
  try {
    http = await httpOptions(options, kube);
  } catch (err) {
    kube.close();
    throw err;
  }
  const store = new KubeStore(kube, { identity, logger: log, namespaces: options.namespaces });
  const election = options.leaderElection
    ? {
      leases: new LeaseClient(kube),
      namespace: options.leaseNamespace ?? conn.namespace ?? "default",
      name: options.leaseName ?? DEFAULT_LEASE_NAME,
      identity,
      leaseDurationMs: options.leaseDurationMs,
      renewDeadlineMs: options.renewDeadlineMs,
      retryPeriodMs: options.retryPeriodMs,
    }
    : undefined;
  // a selector alone makes this process shard 0 of 1 of what the selector picks
  const selector = options.watchLabelSelector?.trim() || undefined;
  const shard = options.shard ?? (selector ? { shards: 1, index: 0 } : undefined);
  if (shard && !election) {
    kube.close();
    throw new RangeError("sharding needs leader election: each shard elects on its own Lease");
  }
  let sharded: ReturnType<typeof shardElection> | undefined;
  try {
    sharded = shard && election ? shardElection(election, { ...shard, labelSelector: selector }) : undefined;
  } catch (err) {
    kube.close();
    throw err;
  }
  if (sharded) {
    log.info("sharded", {
      ...shard,
      labelSelector: sharded.labelSelector,
      lease: sharded.leaderElection.name,
    });
  }
  const manager = new Manager({
    store,
    source: new InformerSource(store.imagesyncs, {
      namespaces: options.namespaces,
      logger: log,
      owns: sharded?.owns,
      labelSelector: sharded?.labelSelector,
    }),
    logger: log,
    metrics,
    webhook: options.webhook,
    workers,
    gracePeriodMs: options.gracePeriodMs,
    backoffBaseMs: options.backoffBaseMs,
    backoffMaxMs: options.backoffMaxMs,
    leaderElection: sharded?.leaderElection ?? election,
    shard: sharded?.shard,
    sync: {
      insecureRegistries: options.insecureRegistries,
      caCerts: options.caCerts,
      concurrency: options.copyConcurrency,
      maxTransfers: options.maxTransfers,
      userAgent: "portager-operator",
      allowCrossNamespaceRefs: options.allowCrossNamespaceRefs ?? false,
      cloudIdentityNamespaces: options.cloudIdentityNamespaces,
      allowedRegistries: options.allowedRegistries === undefined
        ? undefined
        : parseAllowedRegistries(options.allowedRegistries),
      limits: options.syncLimits,
      trustedRootPath: options.trustedRootPath,
    },
    http,
  });
  try {
    await manager.run(options.signal);
  } finally {
    kube.close();
  }
  log.info("operator stopped");
}

function safeHostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "portager";
  }
}
