/**
 * Prometheus metrics of the operator, with upstream Portager's names and labels, on a
 * private prom-client Registry (never the global one, so tests and several operators in one
 * process do not share counters). The only module that imports prom-client.
 * @module
 */

import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** Outcome label of `portage_sync_total`. */
export type SyncOutcome = "success" | "failure" | "partial";

/** What one finished sync of an ImageSync contributes to the metrics. */
export interface SyncObservation {
  namespace: string;
  imagesync: string;
  status: SyncOutcome;
  durationSeconds: number;
  /** Tags copied (or that would be copied in a dry run). */
  imagesCopied: number;
  /** Tags already up to date. */
  imagesSkipped: number;
  /** Tags that failed. */
  imagesFailed: number;
  bytesCopied: number;
  blobsMounted: number;
  blobsSkipped: number;
  /** Tags now in sync, for `portage_image_info`. */
  images: Array<{ source: string; destination: string; tag: string; digest: string }>;
}

/** The operator's metrics. */
export class Metrics {
  /** The registry to expose on /metrics. */
  readonly registry: Registry;
  readonly syncTotal: Counter<"imagesync" | "namespace" | "status">;
  readonly syncDuration: Histogram<"imagesync" | "namespace">;
  readonly imagesCopied: Counter<"imagesync" | "namespace">;
  readonly imagesSkipped: Counter<"imagesync" | "namespace">;
  readonly imagesFailed: Counter<"imagesync" | "namespace">;
  readonly imageInfo: Gauge<
    "imagesync" | "namespace" | "source" | "destination" | "tag" | "digest"
  >;
  readonly bytesCopied: Counter<"imagesync" | "namespace">;
  readonly blobsMounted: Counter<"imagesync" | "namespace">;
  readonly blobsSkipped: Counter<"imagesync" | "namespace">;
  readonly queueDepth: Gauge;
  readonly retries: Counter<"imagesync" | "namespace" | "kind">;
  readonly isLeader: Gauge;
  /** Label sets of portage_image_info per ImageSync, so stale digests can be removed. */
  #info = new Map<string, Map<string, Record<string, string>>>();

  constructor() {
    const registers = [this.registry = new Registry()];
    const syncLabels = ["imagesync", "namespace"] as const;
    this.syncTotal = new Counter({
      name: "portage_sync_total",
      help: "Syncs of an ImageSync, by outcome.",
      labelNames: ["imagesync", "namespace", "status"],
      registers,
    });
    this.syncDuration = new Histogram({
      name: "portage_sync_duration_seconds",
      help: "Wall time of one sync of an ImageSync.",
      labelNames: syncLabels,
      buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
      registers,
    });
    this.imagesCopied = new Counter({
      name: "portage_images_copied_total",
      help: "Image tags copied to the destination.",
      labelNames: syncLabels,
      registers,
    });
    this.imagesSkipped = new Counter({
      name: "portage_images_skipped_total",
      help: "Image tags skipped because the destination already had the source digest.",
      labelNames: syncLabels,
      registers,
    });
    this.imagesFailed = new Counter({
      name: "portage_images_failed_total",
      help: "Image tags that failed to sync.",
      labelNames: syncLabels,
      registers,
    });
    this.imageInfo = new Gauge({
      name: "portage_image_info",
      help: "A tag in sync at the destination, with its digest (value is always 1).",
      labelNames: ["imagesync", "namespace", "source", "destination", "tag", "digest"],
      registers,
    });
    this.bytesCopied = new Counter({
      name: "portage_bytes_copied_total",
      help: "Bytes of blobs and manifests uploaded to destinations.",
      labelNames: syncLabels,
      registers,
    });
    this.blobsMounted = new Counter({
      name: "portage_blobs_mounted_total",
      help: "Blobs cross-repository mounted at the destination instead of uploaded.",
      labelNames: syncLabels,
      registers,
    });
    this.blobsSkipped = new Counter({
      name: "portage_blobs_skipped_total",
      help: "Blobs the destination already had.",
      labelNames: syncLabels,
      registers,
    });
    this.queueDepth = new Gauge({
      name: "portage_queue_depth",
      help: "ImageSyncs waiting in the work queue.",
      registers,
    });
    this.retries = new Counter({
      name: "portage_retries_total",
      help:
        "Retries: reconciles requeued with backoff (kind=reconcile), registry requests retried (kind=registry).",
      labelNames: ["imagesync", "namespace", "kind"],
      registers,
    });
    this.isLeader = new Gauge({
      name: "portage_leader",
      help: "1 when this instance holds the leader lease (or runs without leader election).",
      registers,
    });
  }

  /** Records one finished sync. */
  observeSync(o: SyncObservation): void {
    const l = { imagesync: o.imagesync, namespace: o.namespace };
    this.syncTotal.inc({ ...l, status: o.status });
    this.syncDuration.observe(l, o.durationSeconds);
    this.imagesCopied.inc(l, o.imagesCopied);
    this.imagesSkipped.inc(l, o.imagesSkipped);
    this.imagesFailed.inc(l, o.imagesFailed);
    this.bytesCopied.inc(l, o.bytesCopied);
    this.blobsMounted.inc(l, o.blobsMounted);
    this.blobsSkipped.inc(l, o.blobsSkipped);
    const key = `${o.namespace}/${o.imagesync}`;
    const previous = this.#info.get(key) ?? new Map<string, Record<string, string>>();
    const next = new Map<string, Record<string, string>>();
    for (const img of o.images) {
      const labels = { ...l, ...img };
      next.set(`${img.source}\u0000${img.destination}\u0000${img.tag}`, labels);
    }
    for (const [k, labels] of previous) {
      const now = next.get(k);
      // a tag that failed this time keeps its last known digest
      if (!now && o.status !== "success") {
        next.set(k, labels);
        continue;
      }
      if (!now || now.digest !== labels.digest) this.imageInfo.remove(labels);
    }
    for (const labels of next.values()) this.imageInfo.set(labels, 1);
    this.#info.set(key, next);
  }

  /** Counts retries (kind `reconcile` or `registry`). */
  observeRetry(namespace: string, imagesync: string, options: { kind?: string; count?: number } = {}): void {
    const n = options.count ?? 1;
    if (n > 0) this.retries.inc({ namespace, imagesync, kind: options.kind ?? "reconcile" }, n);
  }

  /** Drops the per-object series of a deleted ImageSync. */
  forget(namespace: string, imagesync: string): void {
    const l = { namespace, imagesync };
    for (
      const m of [
        this.syncDuration,
        this.imagesCopied,
        this.imagesSkipped,
        this.imagesFailed,
        this.bytesCopied,
        this.blobsMounted,
        this.blobsSkipped,
      ]
    ) m.remove(l);
    for (const status of ["success", "failure", "partial"]) this.syncTotal.remove({ ...l, status });
    for (const kind of ["reconcile", "registry"]) this.retries.remove({ ...l, kind });
    const key = `${namespace}/${imagesync}`;
    for (const labels of this.#info.get(key)?.values() ?? []) this.imageInfo.remove(labels);
    this.#info.delete(key);
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
