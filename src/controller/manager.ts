/**
 * The manager: the one runtime of both long-running modes, as controller-runtime's manager.
 * It takes a *store* (where ImageSyncs are read, status written, Events recorded and Secrets
 * read: the apiserver in src/kube, or a folder + state file in src/filestore) and an *event
 * source* (which keys changed: informers, or the folder watch), and runs the rest the same way
 * for both: a de-duplicating work queue, N workers running the reconciler, per-key backoff
 * after a failure, requeue at the next scheduled sync, an optional leader gate (only the
 * leader works), the /metrics /healthz /readyz server, and a graceful shutdown — stop taking
 * work, let in-flight syncs finish within the grace period, then cancel them, flush the store.
 *
 * ```ts
 * const manager = new Manager({ store, source, logger, http: { metricsAddr: ":8080" } });
 * await manager.run(signal); // resolves after the graceful shutdown
 * ```
 * @module
 */

import type { ImageSync } from "../api/mod.ts";
import { createMetrics, type Metrics, type RuntimeMetrics, runtimeMetrics } from "../metrics/mod.ts";
import { registryBudgets, sleep } from "../oci/mod.ts";
import { startWebhookServer, type WebhookOptions, type WebhookServer } from "../webhook/mod.ts";
import type { MetricsServer, ProbeResult } from "../server/http.ts";
import type { Logger } from "../log/mod.ts";
import { LeaderElector, type LeaderElectorOptions } from "./leader.ts";
import type { GateResult, ShardIdentity } from "./shard.ts";
import { ExponentialBackoff, WorkQueue } from "./queue.ts";
import { type ReconcileDeps, Reconciler } from "./reconcile.ts";
import { type HttpOptions, startHttpServers } from "./servers.ts";
import type { EventSource, KeySink, RemovalReason, Store } from "./store.ts";
import { makePrepareSync, type SyncSettings } from "./sync_runner.ts";

export type { HttpOptions } from "./servers.ts";
export type { EventSource, KeySink, RemovalReason, Store } from "./store.ts";

/** ImageSyncs synced at the same time unless told otherwise. */
export const DEFAULT_WORKERS = 2;
/** How long in-flight syncs may run after shutdown began, unless told otherwise. */
export const DEFAULT_GRACE_PERIOD_MS = 30_000;
/** Sync requests (annotation patches) a push's burst sends at once. */
const MAX_SYNC_REQUESTS = 4;

/** Options of {@linkcode Manager}. */
export interface ManagerOptions {
  /** Where ImageSyncs live. */
  store: Store;
  /** Which keys changed. */
  source: EventSource;
  /** Structured logger. */
  logger: Logger;
  /** Metrics registry; default a new one. */
  metrics?: Metrics;
  /** Workers (ImageSyncs synced at the same time); default {@linkcode DEFAULT_WORKERS}. */
  workers?: number;
  /** How long in-flight syncs may run after the signal; default {@linkcode DEFAULT_GRACE_PERIOD_MS}. */
  gracePeriodMs?: number;
  /** Per-key backoff after a failed sync; default 5 s doubling. */
  backoffBaseMs?: number;
  /** Longest backoff; default 5 min. */
  backoffMaxMs?: number;
  /** Only the holder of this Lease works; unset: always work. */
  leaderElection?: Omit<LeaderElectorOptions, "logger" | "onStartedLeading" | "onStoppedLeading">;
  /**
   * Sharding (with `leaderElection` on the shard's Lease): the leader works only while `gate`
   * is open, checked every retry period (see src/controller/shard.ts for the handover rule).
   * The event source must deliver only this shard's keys.
   */
  shard?: ShardIdentity & {
    gate: { check(signal?: AbortSignal): Promise<GateResult> };
    labelSelector?: string;
  };
  /** How syncs run: registries, CAs, tenancy rules. */
  sync?: SyncSettings;
  /** Replaces credentials + src/sync (tests). */
  prepareSync?: ReconcileDeps["prepareSync"];
  /** The HTTP servers; unset: none. */
  http?: HttpOptions;
  /** Clock, for tests. */
  now?: () => Date;
  /** The push-notification endpoint (src/webhook) on its own port; unset: none. */
  webhook?: ManagerWebhookOptions;
}

/** Where the webhook endpoint listens, and its secret and limits. */
export interface ManagerWebhookOptions extends Omit<WebhookOptions, "count" | "logger"> {
  /** Listen address, e.g. `:8082`; port 0 picks a free port. */
  bindAddress: string;
  /** Called once it listens. */
  onListening?: (addr: { hostname: string; port: number }) => void;
}

interface Term {
  queue: WorkQueue;
  loops: Promise<void>[];
  /** Aborted when this term stops taking work: syncs start no new tags. */
  stopStarting: AbortController;
  /** Aborted when copies in flight must stop (grace period over). */
  cancelInFlight: AbortController;
}

/**
 * The abort reason of a sync cancelled because its ImageSync left this process's set: deleted,
 * or relabeled out of this shard's `--watch-label-selector` (its new shard syncs it).
 */
export class SyncCancelledError extends Error {
  /** Stable reason. */
  readonly reason = "SyncCancelled";
  /** Creates the reason for `key`. */
  constructor(key: string) {
    super(`sync of ${key} cancelled: the ImageSync was deleted or left this shard`);
    this.name = "SyncCancelledError";
  }
}

/** The end of "sync cancelled: " for each reason. */
const CANCELLED_BECAUSE: Record<RemovalReason, string> = {
  deleted: "the ImageSync was deleted",
  unselected:
    "the ImageSync left this shard (relabeled out of --watch-label-selector; its new shard syncs it)",
  "deleted-or-unselected": "the ImageSync was deleted or left this shard",
};

function splitKey(key: string): [string, string] {
  const i = key.indexOf("/");
  return [key.slice(0, i), key.slice(i + 1)];
}

/** Runs reconcile over a store and an event source; see the module doc. */
export class Manager {
  readonly #o: ManagerOptions;
  readonly #log: Logger;
  /** The metrics registry in use. */
  readonly metrics: Metrics;
  readonly #reconciler: Reconciler;
  readonly #workers: number;
  #term?: Term;
  #elector?: LeaderElector;
  #stopping?: Promise<void>;
  /** Keys a push asked to sync now, with what was pushed (taken when their reconcile starts). */
  readonly #requested = new Map<string, string>();
  #wakeGate?: () => void;
  /** Aborted when the HTTP servers stop (ends the certificate watch). */
  readonly #httpStop = new AbortController();
  /** Sharding: the term the closed gate is draining (the Lease stays held until it ends). */
  #draining?: Promise<void>;
  /** The cancel switch of each reconcile in flight, by key (a set: a draining term may overlap a new one). */
  readonly #running = new Map<string, Set<AbortController>>();

  /** controller-runtime's series (reconciles, work queue, leader status, process). */
  readonly runtime: RuntimeMetrics;

  /** Creates a manager; `run` starts it. */
  constructor(options: ManagerOptions) {
    this.#o = options;
    this.#log = options.logger;
    this.metrics = options.metrics ?? createMetrics();
    this.metrics.watchRateLimits(() => registryBudgets.snapshot());
    this.#workers = Math.max(1, options.workers ?? DEFAULT_WORKERS);
    this.runtime = runtimeMetrics(this.metrics.registry);
    this.runtime.setMaxConcurrent(this.#workers);
    this.runtime.watchInFlight(() => this.#term?.queue.inFlightSeconds() ?? []);
    const store = options.store;
    this.#reconciler = new Reconciler({
      imagesyncs: store.imagesyncs,
      recorder: store.recorder,
      prepareSync: options.prepareSync ??
        makePrepareSync({ loadSecret: store.loadSecret, fallback: store.fallbackCredentials }, {
          ...options.sync,
          logger: this.#log,
          metrics: this.metrics,
        }),
      metrics: this.metrics,
      logger: this.#log,
      now: options.now,
      observe: options.source.observe ? (obj) => options.source.observe!(obj) : undefined,
      cached: options.source.cached ? (ns, name) => options.source.cached!(ns, name) : undefined,
    });
  }

  /**
   * Queues `namespace/name` to sync now, whatever its schedule says, as the sync-now annotation
   * does; asked again before that sync starts, it still syncs once. `requestedBy` (e.g. "a push
   * of host/repo:tag (harbor webhook)") goes into the SyncNowTriggered Event. False on a standby.
   */
  syncNow(key: string, requestedBy: string): boolean {
    const term = this.#term;
    if (!term) return false;
    if (!this.#requested.has(key)) this.#requested.set(key, requestedBy);
    term.queue.add(key);
    return true;
  }

  /**
   * Syncs the ImageSyncs a push matched, now, wherever they are synced: queued here when this
   * instance works and its event source owns the key; otherwise requested through the store
   * (the sync-now annotation) for the process that does — the leader when this is a standby,
   * the owning shard when sharded. Without store requests (file mode) the key is queued here.
   */
  async syncMatched(
    matches: Array<{ key: string; requestedBy: string }>,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    const request = this.#o.store.requestSync?.bind(this.#o.store);
    const owned = this.#term && request ? new Set(this.#o.source.keys()) : undefined;
    const remote: typeof matches = [];
    const dropped: string[] = [];
    for (const m of matches) {
      if (this.#term && (!request || owned!.has(m.key))) this.syncNow(m.key, m.requestedBy);
      else if (request) remote.push(m);
      else dropped.push(m.key);
    }
    if (dropped.length > 0) {
      this.#log.warn("pushes matched while this instance is not syncing (starting or stopping); dropped", {
        imagesyncs: dropped,
      });
    }
    if (!request || remote.length === 0) return;
    let next = 0;
    const requester = async () => {
      while (next < remote.length && !options.signal?.aborted) {
        const { key, requestedBy } = remote[next++];
        const [ns, name] = splitKey(key);
        try {
          const found = await request(ns, name, { signal: options.signal });
          if (found) {
            this.#log.info("push matched an ImageSync another instance syncs; sync-now annotation set", {
              imagesync: key,
              push: requestedBy,
            });
          } else this.#log.debug("push matched an ImageSync that is gone", { imagesync: key });
        } catch (err) {
          this.#log.error("cannot request the sync of a pushed ImageSync", { imagesync: key, error: err });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(MAX_SYNC_REQUESTS, remote.length) }, requester));
  }

  /**
   * Whether pushes can be taken: this instance works, or (not shutting down) the store can pass
   * a sync request on to the one that does.
   */
  get acceptingPushes(): boolean {
    return this.#term !== undefined || (this.#o.store.requestSync !== undefined && !this.#stopping);
  }

  /**
   * Every ImageSync stored (what pushes are matched against): the store's own bounded read
   * when it has one (the apiserver's paged LIST), else each key the event source knows.
   */
  async list(signal?: AbortSignal): Promise<ImageSync[]> {
    if (this.#o.store.listImageSyncs) return await this.#o.store.listImageSyncs({ signal });
    const keys = [...this.#o.source.keys()];
    const out: ImageSync[] = [];
    let next = 0;
    const reader = async () => {
      while (next < keys.length && !signal?.aborted) {
        const [ns, name] = splitKey(keys[next++]);
        const obj = await this.#o.store.imagesyncs.get(ns, name, { signal });
        if (obj) out.push({ ...obj, metadata: { ...obj.metadata, namespace: obj.metadata.namespace ?? ns } });
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, keys.length) }, reader));
    return out;
  }

  /** Whether workers are running (always, without leader election; else while leader). */
  get working(): boolean {
    return this.#term !== undefined;
  }

  /** Keys being reconciled right now. */
  get inFlight(): number {
    return this.#term?.queue.inFlight ?? 0;
  }

  /** Readiness: the source is ready, and leader election works (leader or healthy standby). */
  ready(): ProbeResult {
    const source = this.#o.source.ready();
    if (!source.ok) return source;
    const e = this.#elector;
    if (e && !e.isLeader && !e.healthy) return { ok: false, detail: "leader election not working" };
    return { ok: true };
  }

  #sink: KeySink = {
    add: (key) => this.#term?.queue.add(key),
    remove: (key, why = "deleted") => {
      const q = this.#term?.queue;
      q?.cancelTimer(key);
      q?.forget(key);
      this.#requested.delete(key);
      const [ns, name] = splitKey(key);
      this.#reconciler.forget(ns, name);
      this.#cancelRunning(key, why);
    },
  };

  /**
   * Cancels the reconcile of `key` in flight, if any (its object is gone from this process's
   * set): its copies stop, and it writes nothing more about the object (status, Events, metrics).
   * A reconcile started later for the same key (re-created, or relabeled back) is not affected.
   * Then logs why, once `why` is known (a function is asked only when a sync was cancelled).
   */
  #cancelRunning(key: string, why: RemovalReason | (() => Promise<RemovalReason>)): void {
    const runs = this.#running.get(key);
    if (!runs) return;
    this.#running.delete(key);
    for (const run of runs) run.abort(new SyncCancelledError(key));
    const known = typeof why === "function"
      ? why().catch(() => "deleted-or-unselected" as const)
      : Promise.resolve(why);
    void known.then((w) =>
      this.#log.info(`sync cancelled: ${CANCELLED_BECAUSE[w]}`, { imagesync: key, why: w })
    );
  }

  /** A per-key signal for one reconcile of `key`, aborted by {@linkcode Manager.#cancelRunning}. */
  #trackRun(key: string): { signal: AbortSignal; end: () => void } {
    const run = new AbortController();
    let runs = this.#running.get(key);
    if (!runs) this.#running.set(key, runs = new Set());
    runs.add(run);
    return {
      signal: run.signal,
      end: () => {
        const now = this.#running.get(key);
        now?.delete(run);
        if (now?.size === 0) this.#running.delete(key);
      },
    };
  }

  async #worker(term: Term, id: number): Promise<void> {
    const q = term.queue;
    while (true) {
      const key = await q.get();
      if (key === undefined) return;
      const [ns, name] = splitKey(key);
      const log = this.#log.child({ imagesync: key, worker: id });
      const removal = this.#trackRun(key);
      try {
        let res;
        let thrown = false;
        const ended = this.runtime.reconcileStarted();
        const requestedBy = this.#requested.get(key);
        this.#requested.delete(key);
        try {
          res = await this.#reconciler.reconcile(ns, name, {
            signal: AbortSignal.any([term.stopStarting.signal, removal.signal]),
            cancelInFlight: AbortSignal.any([term.cancelInFlight.signal, removal.signal]),
            removed: removal.signal,
            requestedBy,
          });
        } catch (err) {
          // reconcile itself failed (the store refused a read or write), not the sync
          res = { error: err as Error, requeueAfterMs: undefined };
          thrown = true;
        }
        if (removal.signal.aborted) {
          // the object left while it was reconciled: whatever happened is nobody's failure now,
          // and a retry or its metrics would bring back a key that was forgotten
          ended("success");
          log.debug("reconcile of a removed ImageSync ended", { error: res.error?.message });
          continue;
        }
        // controller-runtime's results: a zero delay re-queues at once ("requeue")
        ended(
          res.error
            ? "error"
            : res.requeueAfterMs === undefined
            ? "success"
            : res.requeueAfterMs > 0
            ? "requeue_after"
            : "requeue",
          {
            thrown: thrown ? res.error : undefined,
            timedOut: !thrown && (res.error as { reason?: string } | undefined)?.reason === "Timeout",
          },
        );
        if (res.error) {
          if (!q.shuttingDown) {
            const delay = q.addRateLimited(key);
            this.metrics.observeRetry(ns, name);
            log.warn(`${thrown ? "reconcile" : "sync"} failed; retrying with backoff`, {
              error: thrown ? res.error : res.error.message,
              retryInMs: delay,
            });
          }
        } else {
          q.forget(key);
          if (res.requeueAfterMs !== undefined) {
            q.addAfter(key, res.requeueAfterMs);
            log.info("next sync scheduled", {
              nextSyncTime: new Date(Date.now() + res.requeueAfterMs).toISOString(),
            });
          }
        }
      } finally {
        removal.end();
        q.done(key);
      }
    }
  }

  #startWorking(): void {
    if (this.#term || this.#stopping) return;
    const queue = new WorkQueue({
      backoff: new ExponentialBackoff({ baseMs: this.#o.backoffBaseMs, maxMs: this.#o.backoffMaxMs }),
      onDepth: (d) => {
        this.metrics.queueDepth.set(d);
        this.runtime.setDepth(d);
      },
      metrics: this.runtime.queueHooks(),
    });
    const term: Term = {
      queue,
      loops: [],
      stopStarting: new AbortController(),
      cancelInFlight: new AbortController(),
    };
    this.#term = term;
    term.loops = Array.from({ length: this.#workers }, (_, i) => this.#worker(term, i));
    for (const key of this.#o.source.keys()) queue.add(key);
    this.metrics.isLeader.set(1);
  }

  /** Stops taking work; in-flight reconciles get `graceMs`, then their syncs are cancelled. */
  async #stopWorking(graceMs: number): Promise<void> {
    const term = this.#term;
    if (!term) return;
    this.#term = undefined;
    this.metrics.isLeader.set(0);
    term.queue.shutDown();
    term.stopStarting.abort(new Error("shutdown"));
    const loops = Promise.all(term.loops);
    const timer = new AbortController();
    const finished = await Promise.race([
      loops.then(() => true),
      sleep(graceMs, timer.signal).then(() => false, () => false),
    ]);
    timer.abort();
    if (!finished) {
      this.#log.warn("grace period over; interrupting in-flight syncs", {
        inFlight: term.queue.inFlight,
        gracePeriodMs: graceMs,
      });
      term.cancelInFlight.abort(new Error("grace period over"));
      await loops;
    }
  }

  /**
   * Sharding: while leader, checks the gate every `periodMs` (at once on becoming leader);
   * starts working when it is open, stops taking work (in-flight syncs finish within the grace
   * period, the Lease still held) when it closes.
   */
  async #runGate(periodMs: number, signal: AbortSignal): Promise<void> {
    const shard = this.#o.shard!;
    const labels: Record<string, string> = { shard: String(shard.index), shards: String(shard.shards) };
    if (shard.labelSelector) labels.selector = shard.labelSelector;
    let lastDetail = "";
    while (!signal.aborted) {
      let owned = 0;
      for (const _ of this.#o.source.keys()) owned++;
      this.metrics.shardImageSyncs.set(labels, owned);
      if (this.#elector?.isLeader && !this.#stopping) {
        let res: GateResult;
        try {
          res = await shard.gate.check(signal);
        } catch (err) {
          if (signal.aborted) break;
          res = { open: false, blockers: [`cannot list the shard Leases: ${(err as Error).message}`] };
        }
        const detail = res.blockers.join("; ");
        if (res.open && this.#elector.isLeader && !this.#term && !this.#stopping) {
          this.#log.info("shard gate open: working", labels);
          this.#startWorking();
        } else if (!res.open && detail !== lastDetail) {
          this.#log.warn("shard gate closed: not syncing until these Leases are released or expire", {
            ...labels,
            blockers: res.blockers,
          });
        }
        lastDetail = detail;
        if (!res.open && this.#term) {
          this.#draining = this.#stopWorking(this.#o.gracePeriodMs ?? DEFAULT_GRACE_PERIOD_MS);
          await this.#draining;
        }
      }
      const wake = new AbortController();
      this.#wakeGate = () => wake.abort();
      const stop = () => wake.abort();
      signal.addEventListener("abort", stop, { once: true });
      await sleep(periodMs, wake.signal).catch(() => {}); // woken early
      signal.removeEventListener("abort", stop);
      this.#wakeGate = undefined;
    }
  }

  /**
   * Runs until `signal` aborts, then shuts down gracefully: stop taking work, in-flight syncs
   * get the grace period, the store is flushed, the Lease released, the source and the HTTP
   * servers stopped. Rejects only when start-up fails (e.g. the listen address is taken).
   */
  async run(signal: AbortSignal): Promise<void> {
    const servers: Array<MetricsServer | WebhookServer> = await startHttpServers(this.#o.http, {
      metrics: this.metrics,
      ready: () => this.ready(),
      logger: this.#log,
      stop: this.#httpStop,
    });
    const hook = this.#o.webhook;
    if (hook) {
      try {
        servers.push(
          await startWebhookServer(hook.bindAddress, {
            list: (s) => this.list(s),
            syncNow: (matches, s) => this.syncMatched(matches, { signal: s }),
            accepting: () => this.acceptingPushes,
          }, {
            ...hook,
            logger: this.#log,
            count: (source, result) => this.metrics.webhookRequests.inc({ source, result }),
            onListening: (a) => {
              this.#log.info("serving /webhook/<source>", { address: `${a.hostname}:${a.port}` });
              hook.onListening?.(a);
            },
          }),
        );
      } catch (err) {
        this.#httpStop.abort();
        await Promise.all(servers.map((s) => s.shutdown()));
        throw err;
      }
    }
    const sourceStop = new AbortController();
    const source = this.#o.source.run(this.#sink, sourceStop.signal).catch((err) =>
      this.#log.error("the event source stopped", { error: err })
    );
    const electorStop = new AbortController();
    let electing: Promise<void> = Promise.resolve();
    const le = this.#o.leaderElection;
    if (le) {
      this.runtime.setLeader(le.name, false);
      this.#elector = new LeaderElector({
        ...le,
        logger: this.#log,
        onStartedLeading: () => {
          this.runtime.setLeader(le.name, true);
          if (this.#o.shard) this.#wakeGate?.();
          else this.#startWorking();
        },
        // leadership lost: another instance may take over, so stop syncing at once
        onStoppedLeading: () => {
          this.runtime.setLeader(le.name, false);
          void this.#stopWorking(0);
        },
      });
      electing = this.#elector.run(electorStop.signal);
      if (this.#o.shard) {
        const gating = this.#runGate(le.retryPeriodMs ?? 2_000, electorStop.signal);
        electing = Promise.all([electing, gating]).then(() => {});
      }
    } else {
      this.#startWorking();
    }

    await new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
    });

    const gracePeriodMs = this.#o.gracePeriodMs ?? DEFAULT_GRACE_PERIOD_MS;
    this.#log.info("shutting down", { gracePeriodMs, inFlight: this.inFlight });
    this.#stopping = this.#stopWorking(gracePeriodMs);
    await this.#stopping;
    await this.#draining;
    this.#log.debug("workers stopped; stopping the event source");
    sourceStop.abort();
    await source;
    await this.#o.store.close();
    // release the lease only after in-flight syncs ended, so a standby does not overlap them
    electorStop.abort();
    await electing;
    this.#log.debug("stopping the HTTP servers");
    this.#httpStop.abort();
    await Promise.all(servers.map((s) => s.shutdown()));
  }
}
