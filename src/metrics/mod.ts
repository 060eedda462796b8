/**
 * Prometheus metrics of the operator, with upstream Portager's names, labels (`name`,
 * `namespace`) and help texts, plus bytes/blobs/queue/retry metrics of our own, on a
 * private prom-client Registry (never the global one, so tests and several operators in one
 * process do not share counters). The only module that imports prom-client.
 * @module
 */

import { Counter, Gauge, Registry } from "prom-client";
import { CompactHistogram } from "./histogram.ts";

/** Outcome label of `portage_sync_total`, as upstream: `success` or `failure`. */
export type SyncOutcome = "success" | "failure";

/** What one finished sync of an ImageSync contributes to the metrics. */
export interface SyncObservation {
  /** The ImageSync's namespace. */
  namespace: string;
  /** The ImageSync's name (label `name`, as upstream). */
  name: string;
  /** Whether the sync succeeded. */
  status: SyncOutcome;
  /** Wall time of the sync. */
  durationSeconds: number;
  /** Tags copied (or that would be copied in a dry run). */
  imagesCopied: number;
  /** Tags already up to date. */
  imagesSkipped: number;
  /**
   * Tags that failed (and images whose tags could not be resolved), validation-gate refusals
   * included, as the status's `failedImages` and `portage_image_info`'s `failed` count them;
   * `portage_images_failed_total` leaves the gate refusals out, as upstream does.
   */
  imagesFailed: number;
  /** Tags in the sync, for `portage_image_info`. */
  total: number;
  /** Tags synced or up to date, for `portage_image_info`. */
  synced: number;
  /** Blob bytes uploaded. */
  bytesCopied: number;
  /** Blobs cross-repository mounted. */
  blobsMounted: number;
  /** Blobs the destination already had. */
  blobsSkipped: number;
  /** Tags whose validation gates passed. */
  imagesVerified?: number;
  /** Validation-gate refusals by `gate` label value (upstream's: `validation`). */
  validationFailed?: Record<string, number>;
  /** Tags now in sync at the destination, for `portage_tag_info`. */
  tags: Array<{ source: string; destination: string; tag: string; digest: string }>;
  /**
   * When the sync finished (RFC 3339, the status's `lastSyncTime`): a successful one sets
   * `portager_last_success_timestamp_seconds`; default now.
   */
  finishedAt?: string;
}

/**
 * What the transfer-budget gauges read at each scrape: the process's budget of blob and
 * manifest transfers (`--max-transfers`), a `Limiter` of src/oci without a parent.
 */
export interface TransferBudgetReading {
  /** Transfers in flight (tasks holding a slot of the budget). */
  readonly active: number;
  /** Transfers their copier let through that wait for a slot of the budget. */
  readonly waiting: number;
  /** The budget's size. */
  readonly max: number;
}

/** The labels every per-ImageSync series has, as upstream. */
export type NameNs = "name" | "namespace";

/** The operator's metrics. */
export class Metrics {
  /** The registry to expose on /metrics. */
  readonly registry: Registry;
  /** portage_sync_total{name,namespace,status}. */
  readonly syncTotal: Counter<NameNs | "status">;
  /** portage_sync_duration_seconds{name,namespace}. */
  readonly syncDuration: CompactHistogram<NameNs>;
  /** portage_images_copied_total{name,namespace}. */
  readonly imagesCopied: Counter<NameNs>;
  /** portage_images_skipped_total{name,namespace}. */
  readonly imagesSkipped: Counter<NameNs>;
  /** portage_images_failed_total{name,namespace}. */
  readonly imagesFailed: Counter<NameNs>;
  /** portage_image_info{name,namespace,synced,failed,total}. */
  readonly imageInfo: Gauge<NameNs | "synced" | "failed" | "total">;
  /** portage_images_verified_total{name,namespace}. */
  readonly imagesVerified: Counter<NameNs>;
  /** portage_images_validation_failed_total{name,namespace,gate}. */
  readonly imagesValidationFailed: Counter<NameNs | "gate">;
  /** portage_tag_info{name,namespace,source,destination,tag,digest}. */
  readonly tagInfo: Gauge<NameNs | "source" | "destination" | "tag" | "digest">;
  /** portage_bytes_copied_total{name,namespace}. */
  readonly bytesCopied: Counter<NameNs>;
  /** portage_blobs_mounted_total{name,namespace}. */
  readonly blobsMounted: Counter<NameNs>;
  /** portage_blobs_skipped_total{name,namespace}. */
  readonly blobsSkipped: Counter<NameNs>;
  /** portage_queue_depth. */
  readonly queueDepth: Gauge;
  /** portage_retries_total{name,namespace,kind}. */
  readonly retries: Counter<NameNs | "kind">;
  /** portage_leader. */
  readonly isLeader: Gauge;
  /** portage_sync_start_failures_total{name,namespace,reason}: syncs that could not start. */
  readonly syncStartFailures: Counter<NameNs | "reason">;
  /** The reasons counted per ImageSync, so its series can be removed. */
  #startFailureReasons = new Map<string, Set<string>>();
  /** portager_webhook_requests_total{source,result}: push notifications received, accepted, rejected. */
  readonly webhookRequests: Counter<"source" | "result">;
  /** portager_registry_ratelimit_remaining{registry}: requests left in a registry's rate-limit window. */
  readonly registryRateLimitRemaining: Gauge<"registry">;
  /** Reads the registries' rate-limit budgets when /metrics is scraped. */
  #rateLimits?: () => Iterable<{ registry: string; remaining: number }>;
  /** portager_transfers_in_flight: blob and manifest transfers holding a slot of the process's budget. */
  readonly transfersInFlight: Gauge;
  /** portager_transfers_waiting: transfers waiting for a slot of the budget (not for their copier's own limit). */
  readonly transfersWaiting: Gauge;
  /** portager_transfers_max: the budget's size (`--max-transfers`). */
  readonly transfersMax: Gauge;
  /** The budget the transfer gauges read at each scrape. */
  #transfers?: TransferBudgetReading;
  /** `portage_shard_imagesyncs{shard,shards[,selector]}`: ImageSyncs this shard owns (sharded operators only). */
  readonly shardImageSyncs: Gauge;
  /** portager_last_success_timestamp_seconds{name,namespace}: when the last successful sync finished. */
  readonly lastSuccess: Gauge<NameNs>;
  /** portager_schedule_interval_seconds{name,namespace}: time between two scheduled syncs. */
  readonly scheduleInterval: Gauge<NameNs>;
  /** The last success per ImageSync in ms, so an older time read from a status never moves it back. */
  #lastSuccessMs = new Map<string, number>();
  /** Label sets of the info gauges per ImageSync, so stale series can be removed. */
  #imageInfo = new Map<string, Record<string, string>>();
  #tagInfo = new Map<string, Map<string, Record<string, string>>>();

  constructor() {
    const registers = [this.registry = new Registry()];
    const labelNames = ["name", "namespace"] as const;
    this.syncTotal = new Counter({
      name: "portage_sync_total",
      help: "Total number of ImageSync reconcile completions",
      labelNames: ["name", "namespace", "status"],
      registers,
    });
    this.syncDuration = new CompactHistogram({
      name: "portage_sync_duration_seconds",
      help: "Duration of ImageSync reconcile cycles in seconds",
      labelNames,
      buckets: [1, 5, 10, 30, 60, 120, 300],
      registers,
    });
    this.imagesCopied = new Counter({
      name: "portage_images_copied_total",
      help: "Total number of individual images copied",
      labelNames,
      registers,
    });
    this.imagesSkipped = new Counter({
      name: "portage_images_skipped_total",
      help: "Total number of images skipped (digest match)",
      labelNames,
      registers,
    });
    this.imagesFailed = new Counter({
      name: "portage_images_failed_total",
      help: "Total number of individual image copy failures",
      labelNames,
      registers,
    });
    this.imageInfo = new Gauge({
      name: "portage_image_info",
      help: "Current state snapshot per ImageSync resource",
      labelNames: ["name", "namespace", "synced", "failed", "total"],
      registers,
    });
    this.imagesVerified = new Counter({
      name: "portage_images_verified_total",
      help: "Total number of images that passed pre-sync validation",
      labelNames,
      registers,
    });
    this.imagesValidationFailed = new Counter({
      name: "portage_images_validation_failed_total",
      help: "Total number of images that failed pre-sync validation",
      labelNames: ["name", "namespace", "gate"],
      registers,
    });
    this.tagInfo = new Gauge({
      name: "portage_tag_info",
      help: "A tag in sync at the destination, with its digest (value is always 1)",
      labelNames: ["name", "namespace", "source", "destination", "tag", "digest"],
      registers,
    });
    this.bytesCopied = new Counter({
      name: "portage_bytes_copied_total",
      help: "Bytes of blobs and manifests uploaded to destination registries",
      labelNames,
      registers,
    });
    this.blobsMounted = new Counter({
      name: "portage_blobs_mounted_total",
      help: "Blobs cross-repository mounted at the destination instead of uploaded",
      labelNames,
      registers,
    });
    this.blobsSkipped = new Counter({
      name: "portage_blobs_skipped_total",
      help: "Blobs the destination already had",
      labelNames,
      registers,
    });
    this.queueDepth = new Gauge({
      name: "portage_queue_depth",
      help: "ImageSyncs waiting in the work queue",
      registers,
    });
    this.retries = new Counter({
      name: "portage_retries_total",
      help:
        "Retries: reconciles requeued with backoff (kind=reconcile), registry requests retried (kind=registry)",
      labelNames: ["name", "namespace", "kind"],
      registers,
    });
    this.isLeader = new Gauge({
      name: "portage_leader",
      help: "1 when this instance holds the leader lease or runs without leader election",
      registers,
    });
    this.webhookRequests = new Counter({
      name: "portager_webhook_requests_total",
      help: "Push notifications on the webhook endpoint by source and result (received, accepted, rejected)",
      labelNames: ["source", "result"],
      registers,
    });
    const rateLimits = () => this.#rateLimits?.() ?? [];
    this.registryRateLimitRemaining = new Gauge({
      name: "portager_registry_ratelimit_remaining",
      help:
        "Requests left in a registry's rate-limit window, as its last response said (ratelimit-remaining)",
      labelNames: ["registry"],
      registers,
      collect() {
        this.reset();
        for (const b of rateLimits()) this.set({ registry: b.registry }, b.remaining);
      },
    });
    // read from the budget when scraped: no cost per transfer
    const transfers = () => this.#transfers;
    const budgetGauge = (name: string, help: string, read: (b: TransferBudgetReading) => number) =>
      new Gauge({
        name,
        help: `${help} (--max-transfers)`,
        registers,
        collect() {
          const budget = transfers();
          this.set(budget ? read(budget) : 0);
        },
      });
    this.transfersInFlight = budgetGauge(
      "portager_transfers_in_flight",
      "Blob and manifest transfers in flight under the process's budget",
      (b) => b.active,
    );
    this.transfersWaiting = budgetGauge(
      "portager_transfers_waiting",
      "Blob and manifest transfers waiting for a slot of the process's budget, " +
        "not those waiting for their sync's own concurrency",
      (b) => b.waiting,
    );
    this.transfersMax = budgetGauge(
      "portager_transfers_max",
      "Size of the process's budget of blob and manifest transfers",
      (b) => b.max,
    );
    this.syncStartFailures = new Counter({
      name: "portage_sync_start_failures_total",
      help: "Syncs that could not start (credentials, Secrets: reason AuthFailed, …); " +
        "not in portage_sync_total, as upstream",
      labelNames: ["name", "namespace", "reason"],
      registers,
    });
    this.lastSuccess = new Gauge({
      name: "portager_last_success_timestamp_seconds",
      help: "When the last successful sync of the ImageSync finished, Unix seconds " +
        "(after a restart: its status's lastSyncTime while Ready is True)",
      labelNames,
      registers,
    });
    this.scheduleInterval = new Gauge({
      name: "portager_schedule_interval_seconds",
      help: "Seconds between two scheduled syncs of the ImageSync (@every: the interval; " +
        "cron: between its next two runs)",
      labelNames,
      registers,
    });
    this.shardImageSyncs = new Gauge({
      name: "portage_shard_imagesyncs",
      help:
        "ImageSyncs owned by this shard (label shard: its index, shards: the shard count, selector: its --watch-label-selector)",
      labelNames: ["shard", "shards", "selector"],
      registers,
    });
  }

  /** Records one finished sync. */
  observeSync(o: SyncObservation): void {
    const l = { name: o.name, namespace: o.namespace };
    this.syncTotal.inc({ ...l, status: o.status });
    this.syncDuration.observe(l, o.durationSeconds);
    this.imagesCopied.inc(l, o.imagesCopied);
    this.imagesSkipped.inc(l, o.imagesSkipped);
    // upstream counts a gate's refusal in validation_failed_total only, not in images_failed_total
    let refused = 0;
    for (const n of Object.values(o.validationFailed ?? {})) refused += n;
    this.imagesFailed.inc(l, Math.max(0, o.imagesFailed - refused));
    this.bytesCopied.inc(l, o.bytesCopied);
    this.blobsMounted.inc(l, o.blobsMounted);
    this.blobsSkipped.inc(l, o.blobsSkipped);
    if (o.imagesVerified) this.imagesVerified.inc(l, o.imagesVerified);
    for (const [gate, n] of Object.entries(o.validationFailed ?? {})) {
      if (n > 0) this.imagesValidationFailed.inc({ ...l, gate }, n);
    }
    const key = `${o.namespace}/${o.name}`;
    if (o.status === "success") {
      const at = o.finishedAt ? Date.parse(o.finishedAt) : NaN;
      this.#setLastSuccess(key, l, Number.isFinite(at) ? at : Date.now());
    }
    // one snapshot series per ImageSync (upstream keeps every old one; we replace it)
    const info = { ...l, synced: String(o.synced), failed: String(o.imagesFailed), total: String(o.total) };
    const oldInfo = this.#imageInfo.get(key);
    if (oldInfo) this.imageInfo.remove(oldInfo);
    this.imageInfo.set(info, 1);
    this.#imageInfo.set(key, info);

    const previous = this.#tagInfo.get(key) ?? new Map<string, Record<string, string>>();
    const next = new Map<string, Record<string, string>>();
    for (const t of o.tags) next.set(`${t.source}\u0000${t.destination}\u0000${t.tag}`, { ...l, ...t });
    for (const [k, labels] of previous) {
      const now = next.get(k);
      // a tag that failed this time keeps its last known digest
      if (!now && o.status !== "success") {
        next.set(k, labels);
        continue;
      }
      if (!now || now.digest !== labels.digest) this.tagInfo.remove(labels);
    }
    for (const labels of next.values()) this.tagInfo.set(labels, 1);
    this.#tagInfo.set(key, next);
  }

  /**
   * Records a sync that could not start: its credentials or Secrets failed (reason `AuthFailed`)
   * or another error came before any tag. Upstream counts such a reconcile in no `portage_*`
   * series (not in `portage_sync_total`, whose failure ratio dashboards read), so neither do we;
   * `portage_sync_start_failures_total` is ours, for alerts.
   */
  observeStartFailure(namespace: string, name: string, reason: string): void {
    this.syncStartFailures.inc({ name, namespace, reason });
    const key = `${namespace}/${name}`;
    const reasons = this.#startFailureReasons.get(key) ?? new Set<string>();
    reasons.add(reason);
    this.#startFailureReasons.set(key, reasons);
  }

  /**
   * Records an ImageSync's schedule (at every reconcile of a valid spec), and the time of its
   * last successful sync when known from elsewhere (its status, after a restart or a leader
   * change): with `portager_last_success_timestamp_seconds` the stale alert is exact per
   * ImageSync. A last success older than the one already recorded is ignored.
   */
  observeSchedule(
    namespace: string,
    name: string,
    options: { intervalSeconds: number; lastSuccess?: Date },
  ): void {
    const l = { name, namespace };
    if (Number.isFinite(options.intervalSeconds)) this.scheduleInterval.set(l, options.intervalSeconds);
    const at = options.lastSuccess?.getTime();
    if (at !== undefined && Number.isFinite(at)) this.#setLastSuccess(`${namespace}/${name}`, l, at);
  }

  #setLastSuccess(key: string, l: Record<NameNs, string>, atMs: number): void {
    if ((this.#lastSuccessMs.get(key) ?? -Infinity) >= atMs) return;
    this.#lastSuccessMs.set(key, atMs);
    this.lastSuccess.set(l, atMs / 1000);
  }

  /** Counts retries (kind `reconcile` or `registry`). */
  observeRetry(namespace: string, name: string, options: { kind?: string; count?: number } = {}): void {
    const n = options.count ?? 1;
    if (n > 0) this.retries.inc({ namespace, name, kind: options.kind ?? "reconcile" }, n);
  }

  /** Where `portager_registry_ratelimit_remaining` reads the budgets from at each scrape. */
  watchRateLimits(read: () => Iterable<{ registry: string; remaining: number }>): void {
    this.#rateLimits = read;
  }

  /**
   * Where `portager_transfers_in_flight`, `portager_transfers_waiting` and
   * `portager_transfers_max` read the process's transfer budget at each scrape.
   */
  watchTransfers(budget: TransferBudgetReading): void {
    this.#transfers = budget;
  }

  /** Drops the per-object series of a deleted ImageSync. */
  forget(namespace: string, name: string): void {
    const l = { namespace, name };
    for (
      const m of [
        this.syncDuration,
        this.imagesCopied,
        this.imagesSkipped,
        this.imagesFailed,
        this.imagesVerified,
        this.bytesCopied,
        this.blobsMounted,
        this.blobsSkipped,
        this.lastSuccess,
        this.scheduleInterval,
      ]
    ) m.remove(l);
    for (const status of ["success", "failure"]) this.syncTotal.remove({ ...l, status });
    for (const kind of ["reconcile", "registry"]) this.retries.remove({ ...l, kind });
    for (const gate of ["validation", "cosign", "vulnerability", "sbom"]) {
      this.imagesValidationFailed.remove({ ...l, gate });
    }
    const key = `${namespace}/${name}`;
    this.#lastSuccessMs.delete(key);
    for (const reason of this.#startFailureReasons.get(key) ?? []) {
      this.syncStartFailures.remove({ ...l, reason });
    }
    this.#startFailureReasons.delete(key);
    const info = this.#imageInfo.get(key);
    if (info) this.imageInfo.remove(info);
    this.#imageInfo.delete(key);
    for (const labels of this.#tagInfo.get(key)?.values() ?? []) this.tagInfo.remove(labels);
    this.#tagInfo.delete(key);
  }

  /** The Prometheus text exposition. */
  expose(): Promise<string> {
    return this.registry.metrics();
  }

  /** Content-Type of {@linkcode Metrics.expose}'s output. */
  get contentType(): string {
    return this.registry.contentType;
  }
}

/** Creates a fresh set of metrics on its own registry. */
export function createMetrics(): Metrics {
  return new Metrics();
}
export { type ReconcileOutcome, RuntimeMetrics, runtimeMetrics } from "./runtime.ts";
