/**
 * Reconciling one ImageSync, level-based and idempotent as upstream Portager does it: read
 * the object, decide from spec + status + clock (invalid schedule → Ready=False; sync-now
 * annotation → remove it, Event SyncNowTriggered, sync; generation ≠ observedGeneration →
 * sync; otherwise the schedule decides from nextSyncTime), then write Syncing=True once, sync,
 * and write the final status once. nextSyncTime advances only on success; a failure is
 * retried with the queue's per-key backoff.
 * @module
 */

import {
  API_VERSION,
  type Condition,
  formatProblems,
  type ImageStatus,
  type ImageSync,
  type ImageSyncSpec,
  type ImageSyncStatus,
  KIND,
  nextRun,
  parseSchedule,
  SYNC_NOW_ANNOTATION,
  type TagStatus,
  validateImageSyncSpec,
} from "../api/mod.ts";
import type { EventObject, EventType } from "../kube/mod.ts";
import type { Metrics } from "../metrics/mod.ts";
import type { Logger } from "../server/log.ts";
import { findCondition, kubeTime, READY, setCondition, SYNCING } from "./conditions.ts";

/** An ImageSync as stored by the apiserver (metadata fields Portager relies on are present). */
export interface StoredImageSync extends ImageSync {
  metadata: ImageSync["metadata"] & {
    namespace: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    deletionTimestamp?: string;
  };
}

/** One tag's outcome as the sync use case reports it (a subset of src/sync's TagResult). */
export interface TagOutcome {
  tag: string;
  synced: boolean;
  sourceDigest?: string;
  action: "copied" | "up-to-date" | "would-copy" | "failed";
  error?: string;
  reason?: string;
  bytesMoved?: number;
  blobsMounted?: number;
  blobsSkipped?: number;
  verified?: boolean;
  validationError?: string;
}

/** The sync report fields the controller reads (a subset of src/sync's SyncReport). */
export interface SyncOutcome {
  images: Array<
    { name: string; sourceRepository: string; destinationRepository: string; tags: TagOutcome[] }
  >;
  totalImages: number;
  syncedImages: number;
  failedImages: number;
  bytesMoved: number;
  /** Registry requests retried, when the sync reports it. */
  retries?: number;
}

/** A notable step reported by the sync (tags resolved, repository ensured, ...), turned into an Event. */
export interface SyncNotice {
  type: EventType;
  reason: string;
  message: string;
}

/** Runs one sync of a spec: src/sync's syncImageSync with credentials bound. */
export type SyncRunner = (
  spec: ImageSyncSpec,
  options: { signal: AbortSignal; previous?: ImageSyncStatus; onNotice: (n: SyncNotice) => void },
) => Promise<SyncOutcome>;

/** Raised by the credential loader; its message names the Secret and registry, never content. */
export class AuthFailedError extends Error {
  readonly reason = "AuthFailed";
  constructor(message: string) {
    super(message);
    this.name = "AuthFailedError";
  }
}

/** What reconcile needs from the outside world. */
export interface ReconcileDeps {
  imagesyncs: {
    get(namespace: string, name: string, options?: { signal?: AbortSignal }): Promise<ImageSync | undefined>;
    removeAnnotation(
      namespace: string,
      name: string,
      options: { annotation: string; signal?: AbortSignal },
    ): Promise<ImageSync>;
    updateStatus(
      current: ImageSync,
      build: (obj: ImageSync) => Partial<ImageSyncStatus>,
      options?: { signal?: AbortSignal },
    ): Promise<ImageSync | undefined>;
  };
  /** Reads credentials fresh and returns a runner for this ImageSync; throws AuthFailedError. */
  prepareSync(obj: StoredImageSync, spec: ImageSyncSpec, signal: AbortSignal): Promise<SyncRunner>;
  recorder: { record(target: EventObject, type: EventType, reason: string, message: string): void };
  metrics?: Metrics;
  logger: Logger;
  now?: () => Date;
  /** Called with the object after every status write (to refresh the informer cache). */
  observe?: (obj: ImageSync) => void;
}

/** What the worker does next with the key. */
export interface ReconcileResult {
  /** Reconcile again after this long (the next scheduled sync). */
  requeueAfterMs?: number;
  /** The sync failed: retry with backoff. */
  error?: Error;
}

/** Why a sync runs. */
export type SyncTrigger = "sync-now" | "spec-changed" | "first-sync" | "schedule" | "retry" | "interrupted";

/** The decision of one reconcile, from the object and the clock alone. */
export type Decision =
  | { kind: "invalid"; reason: "InvalidSchedule" | "InvalidSpec"; message: string }
  | { kind: "sync"; trigger: SyncTrigger; spec: ImageSyncSpec }
  | { kind: "wait"; requeueAfterMs: number };

/** Ready reasons that a retry cannot fix without a spec change. */
const TERMINAL_REASONS = new Set(["InvalidSchedule", "InvalidSpec"]);

/** Decides what to do with `obj` at `now`; `syncNow` says the sync-now annotation was set. */
export function decide(obj: ImageSync, options: { now: Date; syncNow: boolean }): Decision {
  const schedule = obj.spec?.schedule ?? "";
  try {
    parseSchedule(schedule);
  } catch (err) {
    return {
      kind: "invalid",
      reason: "InvalidSchedule",
      message: `invalid schedule: ${(err as Error).message}`,
    };
  }
  const v = validateImageSyncSpec(obj.spec);
  if (!v.ok) return { kind: "invalid", reason: "InvalidSpec", message: formatProblems(v.problems) };
  const spec = v.value;
  if (options.syncNow) return { kind: "sync", trigger: "sync-now", spec };
  const st = obj.status ?? {};
  const generation = obj.metadata.generation;
  if (st.observedGeneration === undefined || st.observedGeneration !== generation) {
    return {
      kind: "sync",
      trigger: st.observedGeneration === undefined ? "first-sync" : "spec-changed",
      spec,
    };
  }
  const syncing = findCondition(st.conditions, SYNCING);
  // only this operator writes Syncing=True, one reconcile per object at a time: seeing it
  // here means a previous process stopped mid-sync
  if (syncing && (syncing.status === "True" || syncing.reason === "Interrupted")) {
    return { kind: "sync", trigger: "interrupted", spec };
  }
  const ready = findCondition(st.conditions, READY);
  if (ready && ready.status === "False" && !TERMINAL_REASONS.has(ready.reason)) {
    return { kind: "sync", trigger: "retry", spec };
  }
  if (!st.nextSyncTime) return { kind: "sync", trigger: "schedule", spec };
  const next = Date.parse(st.nextSyncTime);
  if (!Number.isFinite(next) || next <= options.now.getTime()) {
    return { kind: "sync", trigger: "schedule", spec };
  }
  return { kind: "wait", requeueAfterMs: next - options.now.getTime() };
}

function shortDigest(d: string | undefined): string {
  if (!d) return "";
  const [alg, hex] = d.split(":", 2);
  return hex && hex.length > 8 ? `${alg}:${hex.slice(0, 8)}` : d;
}

/** Builds status.images from a report, keeping a failed tag's previous lastSyncTime. */
export function imageStatuses(
  report: SyncOutcome,
  previous: ImageSyncStatus | undefined,
  now: Date,
): ImageStatus[] {
  const prevTags = new Map<string, TagStatus>();
  for (const img of previous?.images ?? []) {
    for (const t of img.tags ?? []) prevTags.set(`${img.name}\u0000${t.tag}`, t);
  }
  return report.images.map((img) => ({
    name: img.name,
    tags: img.tags.map((t) => {
      const ts: TagStatus = { tag: t.tag, synced: t.synced };
      if (t.sourceDigest) ts.sourceDigest = t.sourceDigest;
      const prev = prevTags.get(`${img.name}\u0000${t.tag}`);
      if (t.synced) ts.lastSyncTime = kubeTime(now);
      else if (prev?.lastSyncTime) ts.lastSyncTime = prev.lastSyncTime;
      if (t.error) ts.error = t.error;
      if (t.reason && !t.synced) ts.reason = t.reason;
      if (t.verified !== undefined) ts.verified = t.verified;
      if (t.validationError) ts.validationError = t.validationError;
      return ts;
    }),
  }));
}

function sameCondition(
  a: Condition | undefined,
  b: { status: string; reason: string; message: string },
): boolean {
  return !!a && a.status === b.status && a.reason === b.reason && a.message === b.message;
}

/** Reconciles ImageSyncs; one instance serves all keys. */
export class Reconciler {
  #d: ReconcileDeps;
  #now: () => Date;

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
    this.#d.recorder.record(this.#target(obj), type, reason, message);
  }

  async #writeStatus(
    obj: StoredImageSync,
    build: (cur: ImageSync) => Partial<ImageSyncStatus>,
    signal?: AbortSignal,
  ): Promise<StoredImageSync | undefined> {
    const stored = await this.#d.imagesyncs.updateStatus(obj, build, { signal });
    if (stored) this.#d.observe?.(stored);
    return stored as StoredImageSync | undefined;
  }

  /**
   * Reconciles `namespace/name`. `signal` aborting means shutdown: an in-flight sync is
   * interrupted and recorded as such.
   */
  async reconcile(namespace: string, name: string, signal: AbortSignal): Promise<ReconcileResult> {
    const log = this.#d.logger.child({ imagesync: `${namespace}/${name}` });
    let obj = await this.#d.imagesyncs.get(namespace, name) as StoredImageSync | undefined;
    if (!obj || obj.metadata.deletionTimestamp) {
      this.#d.metrics?.forget(namespace, name);
      return {};
    }
    obj.metadata.namespace ??= namespace;
    const generation = obj.metadata.generation;
    let syncNow = obj.metadata.annotations?.[SYNC_NOW_ANNOTATION] === "true";
    const decision = decide(obj, { now: this.#now(), syncNow });

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
          }, {
            now,
          });
          if (findCondition(conditions, SYNCING)?.status === "True") {
            conditions = setCondition(conditions, {
              type: SYNCING,
              status: "False",
              reason: decision.reason,
              message: "not syncing: the spec is invalid",
              observedGeneration: generation,
            }, { now });
          }
          return { conditions, observedGeneration: generation };
        });
      }
      if (syncNow) await this.#removeSyncNow(obj, signal);
      return {};
    }

    if (syncNow) {
      obj = await this.#removeSyncNow(obj, signal) ?? obj;
      this.#event(obj, "Normal", "SyncNowTriggered", "Immediate sync triggered via annotation");
      syncNow = true;
    }

    if (decision.kind === "wait") {
      log.debug("sync not due yet", {
        nextSyncTime: obj.status?.nextSyncTime,
        requeueAfterMs: decision.requeueAfterMs,
      });
      return { requeueAfterMs: decision.requeueAfterMs };
    }
    return await this.#sync(obj, decision.spec, decision.trigger, signal, log);
  }

  async #removeSyncNow(obj: StoredImageSync, signal: AbortSignal): Promise<StoredImageSync | undefined> {
    const stored = await this.#d.imagesyncs.removeAnnotation(obj.metadata.namespace, obj.metadata.name, {
      annotation: SYNC_NOW_ANNOTATION,
      signal,
    }) as StoredImageSync;
    this.#d.observe?.(stored);
    return stored;
  }

  async #sync(
    obj: StoredImageSync,
    spec: ImageSyncSpec,
    trigger: SyncTrigger,
    signal: AbortSignal,
    log: Logger,
  ): Promise<ReconcileResult> {
    const { namespace, name } = obj.metadata;
    const generation = obj.metadata.generation;
    const started = performance.now();
    log.info("syncing", { trigger, generation, images: spec.images.length });

    let run: SyncRunner;
    try {
      run = await this.#d.prepareSync(obj, spec, signal);
    } catch (err) {
      const reason = err instanceof AuthFailedError ? "AuthFailed" : "SyncFailed";
      const message = (err as Error).message;
      log.warn("cannot start sync", { reason, error: err });
      this.#event(obj, "Warning", reason, message);
      await this.#writeStatus(obj, (cur) => ({
        conditions: setCondition(cur.status?.conditions, {
          type: READY,
          status: "False",
          reason,
          message,
          observedGeneration: generation,
        }, { now: this.#now() }),
        observedGeneration: generation,
      }));
      this.#d.metrics?.syncTotal.inc({ name, namespace, status: "failure" });
      return { error: err as Error };
    }

    const imageCount = spec.images.length;
    const syncingObj = await this.#writeStatus(obj, (cur) => ({
      conditions: setCondition(cur.status?.conditions, {
        type: SYNCING,
        status: "True",
        reason: "SyncInProgress",
        message: `Syncing ${imageCount} image(s) (${trigger})`,
        observedGeneration: generation,
      }, { now: this.#now() }),
    }), signal);
    if (!syncingObj) return {}; // deleted meanwhile
    obj = syncingObj;

    let report: SyncOutcome;
    try {
      report = await run(spec, {
        signal,
        previous: obj.status,
        onNotice: (n) => this.#event(obj, n.type, n.reason, n.message),
      });
    } catch (err) {
      if (signal.aborted) return await this.#interrupted(obj, log);
      const message = `sync failed: ${(err as Error).message}`;
      log.error("sync failed", { error: err });
      this.#event(obj, "Warning", "SyncFailed", message);
      await this.#writeStatus(obj, (cur) => {
        const now = this.#now();
        let conditions = setCondition(cur.status?.conditions, {
          type: SYNCING,
          status: "False",
          reason: "SyncComplete",
          message: "Image sync finished",
          observedGeneration: generation,
        }, { now });
        conditions = setCondition(conditions, {
          type: READY,
          status: "False",
          reason: (err as { reason?: string }).reason ?? "SyncFailed",
          message,
          observedGeneration: generation,
        }, { now });
        return { conditions, observedGeneration: generation, lastSyncTime: kubeTime(now) };
      });
      this.#d.metrics?.syncTotal.inc({ name, namespace, status: "failure" });
      return { error: err as Error };
    }
    // a sync cut short by shutdown leaves its status to the next operator
    if (signal.aborted && report.failedImages > 0) return await this.#interrupted(obj, log);

    const now = this.#now();
    const ok = report.failedImages === 0;
    for (const img of report.images) {
      for (const t of img.tags) {
        const src = `${img.sourceRepository}:${t.tag}`;
        const dst = `${img.destinationRepository}:${t.tag}`;
        if (t.action === "copied") {
          this.#event(
            obj,
            "Normal",
            "ImageSynced",
            `Synced ${src} → ${dst} (digest: ${shortDigest(t.sourceDigest)})`,
          );
        } else if (t.action === "up-to-date") {
          this.#event(
            obj,
            "Normal",
            "ImageSkipped",
            `Image ${src} already up-to-date (digest: ${shortDigest(t.sourceDigest)})`,
          );
        } else if (t.action === "failed") {
          this.#event(
            obj,
            "Warning",
            "SyncFailed",
            `Failed to sync ${src} to ${dst}: ${t.error ?? t.reason ?? "error"}`,
          );
        }
      }
    }
    const next = ok ? nextRun(spec.schedule, now) : undefined;
    const images = imageStatuses(report, obj.status, now);
    const stored = await this.#writeStatus(obj, (cur) => {
      let conditions = setCondition(cur.status?.conditions, {
        type: SYNCING,
        status: "False",
        reason: "SyncComplete",
        message: "Image sync finished",
        observedGeneration: generation,
      }, { now });
      conditions = setCondition(
        conditions,
        ok
          ? {
            type: READY,
            status: "True",
            reason: "SyncSucceeded",
            message: `All ${report.totalImages} image(s) synced successfully`,
            observedGeneration: generation,
          }
          : {
            type: READY,
            status: "False",
            reason: "SyncFailed",
            message: `${report.failedImages} of ${report.totalImages} image(s) failed to sync${
              firstFailure(report) ? `: ${firstFailure(report)}` : ""
            }`,
            observedGeneration: generation,
          },
        { now },
      );
      const status: Partial<ImageSyncStatus> = {
        conditions,
        images,
        totalImages: report.totalImages,
        syncedImages: report.syncedImages,
        failedImages: report.failedImages,
        lastSyncTime: kubeTime(now),
        observedGeneration: generation,
      };
      // nextSyncTime advances only on success; on failure the backoff retry decides
      if (next) status.nextSyncTime = kubeTime(next);
      return status;
    });
    this.#event(
      obj,
      "Normal",
      "SyncComplete",
      `Sync complete: ${report.syncedImages} synced, ${report.failedImages} failed, ${report.totalImages} total`,
    );
    this.#observeMetrics(obj, report, ok, (performance.now() - started) / 1000);
    log.info("sync finished", {
      trigger,
      total: report.totalImages,
      synced: report.syncedImages,
      failed: report.failedImages,
      bytes: report.bytesMoved,
      nextSyncTime: next ? kubeTime(next) : undefined,
    });
    if (!stored) return {};
    if (!ok) return { error: new Error(`${report.failedImages} image(s) failed to sync`) };
    return { requeueAfterMs: Math.max(0, next!.getTime() - this.#now().getTime()) };
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

  #observeMetrics(obj: StoredImageSync, r: SyncOutcome, ok: boolean, seconds: number): void {
    const m = this.#d.metrics;
    if (!m) return;
    let copied = 0, skipped = 0, failed = 0, mounted = 0, blobsSkipped = 0, verified = 0;
    const validationFailed: Record<string, number> = {};
    const tags: Array<{ source: string; destination: string; tag: string; digest: string }> = [];
    for (const img of r.images) {
      for (const t of img.tags) {
        if (t.action === "copied" || t.action === "would-copy") copied++;
        else if (t.action === "up-to-date") skipped++;
        else failed++;
        mounted += t.blobsMounted ?? 0;
        blobsSkipped += t.blobsSkipped ?? 0;
        if (t.verified) verified++;
        if (t.reason === "ValidationUnavailable" || t.validationError) {
          const gate = /cosign/i.test(t.validationError ?? "")
            ? "cosign"
            : /vulnerab/i.test(t.validationError ?? "")
            ? "vulnerability"
            : /sbom/i.test(t.validationError ?? "")
            ? "sbom"
            : "unknown";
          validationFailed[gate] = (validationFailed[gate] ?? 0) + 1;
        }
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
      status: ok ? "success" : "failure",
      durationSeconds: seconds,
      imagesCopied: copied,
      imagesSkipped: skipped,
      imagesFailed: failed,
      total: r.totalImages,
      synced: r.syncedImages,
      bytesCopied: r.bytesMoved,
      blobsMounted: mounted,
      blobsSkipped,
      imagesVerified: verified,
      validationFailed,
      tags,
    });
    if (r.retries) m.observeRetry(namespace, name, { kind: "registry", count: r.retries });
  }
}

function firstFailure(r: SyncOutcome): string | undefined {
  for (const img of r.images) {
    for (const t of img.tags) {
      if (t.action === "failed") return `${img.name}:${t.tag}: ${t.error ?? t.reason ?? "failed"}`;
    }
  }
  return undefined;
}
