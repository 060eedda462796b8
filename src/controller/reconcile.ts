/**
 * Reconciling one ImageSync, level-based and idempotent as upstream Portager does it: read
 * the object (from the watch cache when the event source keeps one: no apiserver read),
 * decide from spec + status + clock (./decide.ts: invalid schedule → Ready=False; sync-now
 * annotation → remove it, Event SyncNowTriggered, sync; generation ≠ observedGeneration →
 * sync; otherwise the schedule decides from nextSyncTime), then sync — writing Syncing=True once
 * if the sync outlasts {@linkcode SYNCING_DELAY_MS}, so a quick sync writes its status once —
 * and write the final status once. nextSyncTime advances only on success; a failure is
 * retried with the queue's per-key backoff.
 * @module
 */

import {
  API_VERSION,
  type Condition,
  type ImageSync,
  type ImageSyncSpec,
  type ImageSyncStatus,
  KIND,
  nextRun,
  SYNC_NOW_ANNOTATION,
} from "../api/mod.ts";
import type { EventObject, EventRecord, EventType } from "../kube/mod.ts";
import type { Metrics } from "../metrics/mod.ts";
import type { Logger } from "../log/mod.ts";
import {
  eventMessage,
  readyMessage,
  readyReason,
  statusFromReport,
  syncCompleteMessage,
  SyncError,
  type SyncEvent,
  type SyncReport,
} from "../sync/mod.ts";
import { findCondition, kubeTime, READY, setCondition, SYNCING } from "./conditions.ts";
import { decide, scheduleIntervalSeconds, SpecChecks, type SyncTrigger } from "./decide.ts";
import { capStatusMessages } from "./status_caps.ts";

/** An ImageSync as stored by the apiserver (metadata fields Portager relies on are present). */
export interface StoredImageSync extends ImageSync {
  /** Metadata with the fields the apiserver always sets. */
  metadata: ImageSync["metadata"] & {
    namespace: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    deletionTimestamp?: string;
  };
}

/** Runs one sync of a spec: src/sync's syncImageSync with this ImageSync's credentials bound. */
export type SyncRunner = (
  spec: ImageSyncSpec,
  options: {
    /** Aborted: start no more tags (shutdown began). */
    signal: AbortSignal;
    /** Aborted: cancel copies in flight (grace period over). */
    cancelInFlight: AbortSignal;
    previous?: ImageSyncStatus;
    onEvent: (e: SyncEvent) => void;
    /** Called for each registry request retry. */
    onRetry: () => void;
  },
) => Promise<SyncReport>;

/**
 * Reads and writes ImageSyncs: the object half of a store (src/kube's ImageSyncClient, or
 * file mode's folder + state file).
 */
export interface ImageSyncAccess {
  /** The object, or undefined when it does not exist. */
  get(namespace: string, name: string, options?: { signal?: AbortSignal }): Promise<ImageSync | undefined>;
  /** Removes one annotation (sync-now) and returns the object as stored. */
  removeAnnotation(
    namespace: string,
    name: string,
    options: { annotation: string; signal?: AbortSignal },
  ): Promise<ImageSync>;
  /** Writes status fields built from the current object; undefined when it is gone. */
  updateStatus(
    current: ImageSync,
    build: (obj: ImageSync) => Partial<ImageSyncStatus>,
    options?: { signal?: AbortSignal },
  ): Promise<ImageSync | undefined>;
}

/** Where Events go: src/kube's EventRecorder, or log lines in file mode. */
export interface EventSink {
  /** Records one Event about `target`. */
  record(target: EventObject, event: EventRecord): void;
}

/** What reconcile needs from the outside world: a store's objects and Events, credentials, metrics. */
export interface ReconcileDeps {
  /** Reads and writes ImageSyncs. */
  imagesyncs: ImageSyncAccess;
  /** Reads credentials fresh and returns a runner for this ImageSync; throws an error with reason AuthFailed. */
  prepareSync(obj: StoredImageSync, spec: ImageSyncSpec, signal: AbortSignal): Promise<SyncRunner>;
  /** Records Events. */
  recorder: EventSink;
  /** Metrics to update after each sync. */
  metrics?: Metrics;
  /** Logger; reconcile adds the object's key. */
  logger: Logger;
  /** Clock, for tests. */
  now?: () => Date;
  /** Called with the object after every status write (to refresh the informer cache). */
  observe?: (obj: ImageSync) => void;
  /**
   * Reads the object from a watch cache (the informer's, which `observe` keeps ahead of the
   * watch) instead of `imagesyncs.get`: no apiserver read per reconcile, as controller-runtime's
   * cached client. Unset: every reconcile reads the store.
   */
  cached?: (namespace: string, name: string) => ImageSync | undefined;
  /** How long a sync runs before Syncing=True is written; default {@linkcode SYNCING_DELAY_MS}, 0: at once. */
  syncingDelayMs?: number;
}

/**
 * A sync still running after this long gets Syncing=True written; a quicker one writes only its
 * result (one status write per sync instead of two: issue 16's B5).
 */
export const SYNCING_DELAY_MS = 2_000;

/** What the worker does next with the key. */
export interface ReconcileResult {
  /** Reconcile again after this long (the next scheduled sync). */
  requeueAfterMs?: number;
  /** The sync failed: retry with backoff. */
  error?: Error;
}

function sameCondition(
  a: Condition | undefined,
  b: { status: string; reason: string; message: string },
): boolean {
  return !!a && a.status === b.status && a.reason === b.reason && a.message === b.message;
}

/** Signals of one reconcile. */
export interface ReconcileSignals {
  /** Aborted when shutdown begins (or leadership is lost): start no new tags. */
  signal: AbortSignal;
  /** Aborted when copies in flight must stop (grace period over). */
  cancelInFlight: AbortSignal;
  /** Set when a registry push asked for a sync now (the webhook): what was pushed, for the Event. */
  requestedBy?: string;
  /**
   * Aborted when the ImageSync left this process's set while it is reconciled (deleted, or
   * relabeled out of this shard's selector): besides stopping the sync (the manager folds it
   * into `signal` and `cancelInFlight`), nothing more is written about it — no status, no
   * Event, no metric — since it is gone or another process owns it now.
   */
  removed?: AbortSignal;
}

/** Reconciles ImageSyncs; one instance serves all keys. */
export class Reconciler {
  #d: ReconcileDeps;
  #now: () => Date;
  /** Each ImageSync's spec, checked once per generation. */
  readonly #checks = new SpecChecks();

  /** Creates a reconciler over its dependencies. */
  constructor(deps: ReconcileDeps) {
    this.#d = deps;
    this.#now = deps.now ?? (() => new Date());
  }

  #target(obj: StoredImageSync): EventObject {
    return {
      apiVersion: API_VERSION,
      kind: KIND,
      name: obj.metadata.name,
      namespace: obj.metadata.namespace,
      uid: obj.metadata.uid,
      resourceVersion: obj.metadata.resourceVersion,
    };
  }

  #event(obj: StoredImageSync, type: EventType, reason: string, message: string): void {
    this.#d.recorder.record(this.#target(obj), { type, reason, message });
  }

  async #writeStatus(
    obj: StoredImageSync,
    build: (cur: ImageSync) => Partial<ImageSyncStatus>,
    options: { signal?: AbortSignal } = {},
  ): Promise<StoredImageSync | undefined> {
    const stored = await this.#d.imagesyncs.updateStatus(
      obj,
      (cur) => capStatusMessages(build(cur)),
      options,
    );
    if (stored) this.#d.observe?.(stored);
    return stored as StoredImageSync | undefined;
  }

  /** Reconciles `namespace/name`. */
  async reconcile(namespace: string, name: string, signals: ReconcileSignals): Promise<ReconcileResult> {
    const log = this.#d.logger.child({ imagesync: `${namespace}/${name}` });
    const found = this.#d.cached
      ? this.#d.cached(namespace, name)
      : await this.#d.imagesyncs.get(namespace, name);
    if (!found || (found as StoredImageSync).metadata.deletionTimestamp) {
      this.forget(namespace, name);
      return {};
    }
    // a copy: a cached object is shared with the cache
    let obj = {
      ...found,
      metadata: { ...found.metadata, namespace: found.metadata.namespace ?? namespace },
    } as StoredImageSync;
    const generation = obj.metadata.generation;
    const annotated = obj.metadata.annotations?.[SYNC_NOW_ANNOTATION] === "true";
    const syncNow = annotated || signals.requestedBy !== undefined;
    const checked = this.#checks.check(`${namespace}/${name}`, obj);
    const decision = decide(obj, { now: this.#now(), syncNow, checked });

    if (decision.kind === "invalid") {
      const ready = findCondition(obj.status?.conditions, READY);
      const cond = { status: "False" as const, reason: decision.reason, message: decision.message };
      if (!sameCondition(ready, cond) || obj.status?.observedGeneration !== generation) {
        log.warn("ImageSync is invalid", { reason: decision.reason, message: decision.message });
        this.#event(obj, "Warning", decision.reason, decision.message);
        await this.#writeStatus(obj, (cur) => {
          const now = this.#now();
          let conditions = setCondition(cur.status?.conditions, {
            type: READY,
            ...cond,
            observedGeneration: generation,
          }, { now });
          if (findCondition(conditions, SYNCING)?.status === "True") {
            conditions = setCondition(conditions, {
              type: SYNCING,
              status: "False",
              reason: decision.reason,
              message: "Not syncing: the spec is invalid",
              observedGeneration: generation,
            }, { now });
          }
          return { conditions, observedGeneration: generation };
        });
      }
      // the annotation is consumed either way, so fixing the spec does not sync twice
      if (annotated) await this.#removeSyncNow(obj);
      return {};
    }

    this.#observeSchedule(obj);
    if (annotated) {
      obj = await this.#removeSyncNow(obj);
      if (signals.removed?.aborted) return this.#cancelled(log);
      this.#event(obj, "Normal", "SyncNowTriggered", "Immediate sync triggered via annotation");
    } else if (signals.requestedBy !== undefined) {
      this.#event(obj, "Normal", "SyncNowTriggered", `Immediate sync triggered by ${signals.requestedBy}`);
    }

    if (decision.kind === "wait") {
      log.debug("sync not due yet", {
        nextSyncTime: obj.status?.nextSyncTime,
        requeueAfterMs: decision.requeueAfterMs,
      });
      return { requeueAfterMs: decision.requeueAfterMs };
    }
    return await this.#sync(obj, decision.spec, decision.trigger, signals, log);
  }

  /** Forgets `namespace/name` (it is gone): its metrics and its checked spec. */
  forget(namespace: string, name: string): void {
    this.#checks.forget(`${namespace}/${name}`);
    this.#d.metrics?.forget(namespace, name);
  }

  /** The schedule's interval and, while Ready is True, the last success (status) for the stale alert. */
  #observeSchedule(obj: StoredImageSync): void {
    const ready = findCondition(obj.status?.conditions, READY);
    const last = ready?.status === "True" ? obj.status?.lastSyncTime : undefined;
    this.#d.metrics?.observeSchedule(obj.metadata.namespace, obj.metadata.name, {
      intervalSeconds: scheduleIntervalSeconds(obj.spec.schedule, this.#now()),
      lastSuccess: last ? new Date(last) : undefined,
    });
  }

  async #removeSyncNow(obj: StoredImageSync): Promise<StoredImageSync> {
    const stored = await this.#d.imagesyncs.removeAnnotation(obj.metadata.namespace, obj.metadata.name, {
      annotation: SYNC_NOW_ANNOTATION,
    }) as StoredImageSync;
    this.#d.observe?.(stored);
    return stored;
  }

  /** Ready=False with `reason`, Syncing=False when it was True, in one write. */
  async #fail(
    obj: StoredImageSync,
    failure: { reason: string; message: string; removed?: AbortSignal },
    extra: Partial<ImageSyncStatus> = {},
  ) {
    const { reason, message } = failure;
    const generation = obj.metadata.generation;
    await this.#writeStatus(obj, (cur) => {
      const now = this.#now();
      let conditions = cur.status?.conditions;
      if (findCondition(conditions, SYNCING)?.status === "True") {
        conditions = syncFinished(conditions, generation, now);
      }
      conditions = setCondition(conditions, {
        type: READY,
        status: "False",
        reason,
        message,
        observedGeneration: generation,
      }, { now });
      return { ...extra, conditions, observedGeneration: generation };
    }, { signal: failure.removed });
  }

  async #sync(
    obj: StoredImageSync,
    spec: ImageSyncSpec,
    trigger: SyncTrigger,
    signals: ReconcileSignals,
    log: Logger,
  ): Promise<ReconcileResult> {
    const { namespace, name } = obj.metadata;
    const generation = obj.metadata.generation;
    const started = performance.now();
    const removed = signals.removed;
    /** The ImageSync left this process's set: the sync is cancelled and nothing more is written. */
    const gone = () => removed?.aborted === true;
    log.info("syncing", { trigger, generation, images: spec.images.length });

    let run: SyncRunner;
    try {
      run = await this.#d.prepareSync(obj, spec, signals.signal);
    } catch (err) {
      if (gone()) return this.#cancelled(log);
      const reason = reasonOf(err, "SyncFailed");
      const message = (err as Error).message;
      log.warn("cannot start sync", { reason, error: err });
      this.#event(obj, "Warning", reason, message);
      await this.#fail(obj, { reason, message, removed });
      this.#d.metrics?.observeStartFailure(namespace, name, reason);
      return { error: err as Error };
    }
    if (gone()) return this.#cancelled(log);

    const imageCount = spec.images.length;
    let syncingWrite: Promise<StoredImageSync | undefined | "failed"> | undefined;
    const markSyncing = () => {
      if (gone()) return;
      syncingWrite = this.#writeStatus(obj, (cur) => ({
        conditions: setCondition(cur.status?.conditions, {
          type: SYNCING,
          status: "True",
          reason: "SyncInProgress",
          message: `Syncing ${imageCount} image(s) (trigger: ${trigger})`,
          observedGeneration: generation,
        }, { now: this.#now() }),
      }), { signal: removed }).catch((err) => {
        if (!gone()) log.warn("could not write Syncing=True", { error: err });
        return "failed" as const;
      });
    };
    const delayMs = this.#d.syncingDelayMs ?? SYNCING_DELAY_MS;
    const syncingTimer = delayMs > 0 ? setTimeout(markSyncing, delayMs) : undefined;
    if (delayMs <= 0) markSyncing();
    /** Stops the timer; a Syncing=True write in flight lands before any later write. */
    const settleSyncing = async () => {
      clearTimeout(syncingTimer);
      const written = await syncingWrite;
      if (written && written !== "failed") obj = written;
    };

    let retries = 0;
    let report: SyncReport;
    try {
      report = await run(spec, {
        signal: signals.signal,
        cancelInFlight: signals.cancelInFlight,
        previous: obj.status,
        // a tag ended by the cancel is no news about a removed ImageSync
        onEvent: (e) => {
          if (!gone()) this.#event(obj, e.warning ? "Warning" : "Normal", e.type, eventMessage(e));
        },
        onRetry: () => retries++,
      });
    } catch (err) {
      await settleSyncing();
      if (gone()) return this.#cancelled(log);
      if (signals.signal.aborted) return await this.#interrupted(obj, log);
      const reason = reasonOf(err, "SyncFailed");
      const message = (err as Error).message;
      log.error("sync failed", { reason, error: err });
      this.#event(obj, "Warning", reason, message);
      await this.#fail(obj, { reason, message, removed }, { lastSyncTime: kubeTime(this.#now()) });
      // credentials refused before any tag did not start a sync (upstream's AuthFailed); a sync
      // stopped by its deadline, or by an unexpected error, did and failed
      if (err instanceof SyncError && reason !== "Timeout") {
        this.#d.metrics?.observeStartFailure(namespace, name, reason);
      } else this.#d.metrics?.syncTotal.inc({ name, namespace, status: "failure" });
      if (retries) this.#d.metrics?.observeRetry(namespace, name, { kind: "registry", count: retries });
      return { error: err as Error };
    }
    await settleSyncing();
    if (gone()) return this.#cancelled(log);
    // a sync cut short by shutdown (tags not started, or copies cancelled when the grace
    // period ended) is not a failure of the ImageSync: the next operator resumes it
    if (report.aborted || (signals.signal.aborted && !report.ok)) return await this.#interrupted(obj, log);

    const now = this.#now();
    const next = report.ok ? nextRun(spec.schedule, now) : undefined;
    const fields = statusFromReport(report);
    const summary = readyMessage(report);
    const stored = await this.#writeStatus(obj, (cur) => {
      let conditions = syncFinished(cur.status?.conditions, generation, now);
      conditions = setCondition(conditions, {
        type: READY,
        status: report.ok ? "True" : "False",
        reason: readyReason(report),
        message: summary,
        observedGeneration: generation,
      }, { now });
      const status: Partial<ImageSyncStatus> = { ...fields, conditions, observedGeneration: generation };
      // nextSyncTime advances only on success; on failure the backoff retry decides
      if (next) status.nextSyncTime = kubeTime(next);
      return status;
    }, { signal: removed });
    // removed while the write was out: it is gone or another's, its metrics already forgotten
    if (gone()) return this.#cancelled(log);
    this.#event(
      obj,
      "Normal",
      "SyncComplete",
      syncCompleteMessage(report),
    );
    this.#observeMetrics(obj, report, (performance.now() - started) / 1000, retries);
    log.info("sync finished", {
      trigger,
      total: report.totalImages,
      copied: report.copiedImages,
      upToDate: report.upToDateImages,
      failed: report.failedImages,
      bytes: report.bytesMoved,
      nextSyncTime: next ? kubeTime(next) : undefined,
    });
    if (!stored) return {};
    if (!report.ok) return { error: new Error(summary) };
    return { requeueAfterMs: Math.max(0, next!.getTime() - this.#now().getTime()) };
  }

  /**
   * The end of a sync whose ImageSync left this process's set mid-way (the manager logged the
   * cancel): no status, Event or metric — it is gone, or its new owner writes them.
   */
  #cancelled(log: Logger): ReconcileResult {
    log.debug("cancelled sync ended; nothing written about the removed ImageSync");
    return {};
  }

  async #interrupted(obj: StoredImageSync, log: Logger): Promise<ReconcileResult> {
    log.warn("sync interrupted by shutdown; it resumes when an operator starts again");
    try {
      await this.#writeStatus(obj, (cur) => ({
        conditions: setCondition(cur.status?.conditions, {
          type: SYNCING,
          status: "False",
          reason: "Interrupted",
          message: "Sync interrupted by operator shutdown; it resumes on restart",
          observedGeneration: obj.metadata.generation,
        }, { now: this.#now() }),
      }));
    } catch (err) {
      log.warn("could not record the interruption", { error: err });
    }
    return {};
  }

  #observeMetrics(obj: StoredImageSync, r: SyncReport, seconds: number, retries: number): void {
    const m = this.#d.metrics;
    if (!m) return;
    let verified = 0;
    const validationFailed: Record<string, number> = {};
    const tags: Array<{ source: string; destination: string; tag: string; digest: string }> = [];
    for (const img of r.images) {
      for (const t of img.tags) {
        if (t.verified) verified++;
        // upstream labels every gate failure gate="validation" (the gate is in the Event and status)
        if (t.failedGate) validationFailed.validation = (validationFailed.validation ?? 0) + 1;
        if (t.synced && t.sourceDigest) {
          tags.push({
            source: img.sourceRepository,
            destination: img.destinationRepository,
            tag: t.tag,
            digest: t.sourceDigest,
          });
        }
      }
    }
    const { name, namespace } = obj.metadata;
    m.observeSync({
      name,
      namespace,
      status: r.ok ? "success" : "failure",
      durationSeconds: seconds,
      imagesCopied: r.copiedImages,
      imagesSkipped: r.upToDateImages,
      imagesFailed: r.failedImages,
      total: r.totalImages,
      synced: r.syncedImages,
      bytesCopied: r.bytesMoved,
      blobsMounted: r.blobsMounted,
      blobsSkipped: r.blobsSkipped,
      imagesVerified: verified,
      validationFailed,
      tags,
      finishedAt: r.finishedAt,
    });
    if (retries) m.observeRetry(namespace, name, { kind: "registry", count: retries });
  }
}

function reasonOf(err: unknown, fallback: string): string {
  const r = (err as { reason?: unknown })?.reason;
  return typeof r === "string" && r ? r : fallback;
}

/** Conditions with Syncing=False/SyncComplete: the sync of `generation` has ended. */
function syncFinished(
  conditions: readonly Condition[] | undefined,
  generation: number | undefined,
  now: Date,
): Condition[] {
  return setCondition(conditions, {
    type: SYNCING,
    status: "False",
    reason: "SyncComplete",
    message: "Image sync finished",
    observedGeneration: generation,
  }, { now });
}
