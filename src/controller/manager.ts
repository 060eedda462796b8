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
import type { SecretLoader } from "../credentials/mod.ts";
import type { CredentialResolver } from "../oci/mod.ts";
import { createMetrics, type Metrics, type RuntimeMetrics, runtimeMetrics } from "../metrics/mod.ts";
import { registryBudgets, sleep } from "../oci/mod.ts";
import { startWebhookServer, type WebhookOptions, type WebhookServer } from "../webhook/mod.ts";
import { type MetricsServer, type ProbeResult, startServer } from "../server/http.ts";
import type { Logger } from "../log/mod.ts";
import { LeaderElector, type LeaderElectorOptions } from "./leader.ts";
import type { GateResult, ShardIdentity } from "./shard.ts";
import { ExponentialBackoff, WorkQueue } from "./queue.ts";
import { type EventSink, type ImageSyncAccess, type ReconcileDeps, Reconciler } from "./reconcile.ts";
import { makePrepareSync, type SyncSettings } from "./sync_runner.ts";

/** ImageSyncs synced at the same time unless told otherwise. */
export const DEFAULT_WORKERS = 2;
/** How long in-flight syncs may run after shutdown began, unless told otherwise. */
export const DEFAULT_GRACE_PERIOD_MS = 30_000;
/** Sync requests (annotation patches) a push's burst sends at once. */
const MAX_SYNC_REQUESTS = 4;

/**
 * Where ImageSyncs live: the store contract of the manager. The apiserver (src/kube's
 * `KubeStore`) and file mode (src/filestore's `FileStore`) implement it.
 */
export interface Store {
  /** Reads ImageSyncs, removes the sync-now annotation, writes status. */
  imagesyncs: ImageSyncAccess;
  /** Where Events go (the apiserver's Events; log lines in file mode). */
  recorder: EventSink;
  /** Reads a Secret named by a spec, fresh for every sync. */
  loadSecret: SecretLoader;
  /** Credentials where a spec names no Secret or one the store does not have (file mode). */
  fallbackCredentials?: CredentialResolver;
  /** Flushes what is buffered (Events, the state file); called once at shutdown. */
  close(): Promise<void>;
  /**
   * Every ImageSync stored, with its spec, in one bounded read (the apiserver: paged LISTs);
   * what pushes are matched against. Unset: each key the event source knows is read.
   */
  listImageSyncs?(options: { signal?: AbortSignal }): Promise<ImageSync[]>;
  /**
   * Asks whichever process owns `namespace/name` to sync it now (the apiserver: the sync-now
   * annotation); false when it is gone. Unset (file mode): no other process exists, so this one
   * queues the key itself.
   */
  requestSync?(namespace: string, name: string, options?: { signal?: AbortSignal }): Promise<boolean>;
}

/** What an event source tells the manager. */
export interface KeySink {
  /** `namespace/name` changed (or is new): reconcile it. */
  add(key: string): void;
  /** `namespace/name` is gone: drop its timers, backoff and metrics. */
  remove(key: string): void;
}

/** Which keys to reconcile, and when: informers, or the folder watch. */
export interface EventSource {
  /** Delivers changes to `sink` until `signal` aborts; resolves once stopped. */
  run(sink: KeySink, signal: AbortSignal): Promise<void>;
  /** Every key known now (queued when this instance starts working, e.g. becomes leader). */
  keys(): Iterable<string>;
  /** Readiness of the source (watch established, files loaded). */
  ready(): ProbeResult;
  /** Called with the object after every write by reconcile (to refresh a cache). */
  observe?(obj: ImageSync): void;
  /**
   * The object as cached by the source (informers), which reconcile then reads instead of the
   * store: it must be kept current by the watch and `observe`. Unset: reconcile reads the store.
   */
  cached?(namespace: string, name: string): ImageSync | undefined;
}

/** Where /metrics and the probes listen. */
export interface HttpOptions {
  /** /metrics (and the probes too when `healthProbeAddr` is unset); port 0 picks a free port. */
  metricsAddr?: string;
  /** /healthz /readyz on their own port; unset: served with /metrics. */
  healthProbeAddr?: string;
  /** Called once the metrics server listens. */
  onListening?: (addr: { hostname: string; port: number }) => void;
  /** Called once the probe server listens (when it is separate). */
  onProbesListening?: (addr: { hostname: string; port: number }) => void;
  /** No probes at all (controller-runtime's `--health-probe-bind-address=0`). */
  probesOff?: boolean;
  /** Serve /metrics over HTTPS with this certificate and key (PEM). */
  metricsTls?: { cert: string; key: string };
  /** With `metricsTls`: offer HTTP/2 too; default false. */
  http2?: boolean;
  /** Checks /metrics requests (authentication and authorization); undefined lets one through. */
  metricsAuthorize?: (req: Request) => Promise<Response | undefined>;
  /**
   * Re-reads the metrics certificate every `intervalMs` (default 10 s) and serves a changed one
   * to new connections, as controller-runtime's certwatcher does for a rotated Secret.
   */
  metricsTlsReload?: { load(): Promise<{ cert: string; key: string }>; intervalMs?: number };
}

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
  shard?: ShardIdentity & { gate: { check(signal?: AbortSignal): Promise<GateResult> } };
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
    remove: (key) => {
      const q = this.#term?.queue;
      q?.cancelTimer(key);
      q?.forget(key);
      this.#requested.delete(key);
      const [ns, name] = splitKey(key);
      this.#reconciler.forget(ns, name);
    },
  };

  async #worker(term: Term, id: number): Promise<void> {
    const q = term.queue;
    while (true) {
      const key = await q.get();
      if (key === undefined) return;
      const [ns, name] = splitKey(key);
      const log = this.#log.child({ imagesync: key, worker: id });
      try {
        let res;
        let thrown = false;
        const ended = this.runtime.reconcileStarted();
        const requestedBy = this.#requested.get(key);
        this.#requested.delete(key);
        try {
          res = await this.#reconciler.reconcile(ns, name, {
            signal: term.stopStarting.signal,
            cancelInFlight: term.cancelInFlight.signal,
            requestedBy,
          });
        } catch (err) {
          // reconcile itself failed (the store refused a read or write), not the sync
          res = { error: err as Error, requeueAfterMs: undefined };
          thrown = true;
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
    const labels = { shard: String(shard.index), shards: String(shard.shards) };
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

  async #startHttp(): Promise<MetricsServer[]> {
    const http = this.#o.http;
    if (!http?.metricsAddr && !http?.healthProbeAddr) return [];
    const servers: MetricsServer[] = [];
    const metrics = async () => ({
      body: await this.metrics.expose(),
      contentType: this.metrics.contentType,
    });
    const ready = () => this.ready();
    const separate = http.healthProbeAddr !== undefined || http.probesOff === true;
    try {
      if (http.metricsAddr) {
        const what = separate ? "/metrics" : "/metrics /healthz /readyz";
        const scheme = http.metricsTls ? "https" : "http";
        const server = await startServer(http.metricsAddr, {
          metrics,
          ready: separate ? undefined : ready,
          probes: !separate,
          tls: http.metricsTls,
          http2: http.http2,
          authorize: http.metricsAuthorize,
          logger: this.#log,
          onListening: (a) => {
            this.#log.info(`serving ${what}`, {
              address: `${a.hostname}:${a.port}`,
              scheme,
              access: http.metricsAuthorize ? "TokenReview+SubjectAccessReview" : "anyone",
            });
            http.onListening?.(a);
          },
        });
        servers.push(server);
        if (http.metricsTls && http.metricsTlsReload) {
          void this.#watchCertificate(server, http.metricsTls, http.metricsTlsReload);
        }
      }
      if (http.healthProbeAddr) {
        servers.push(
          await startServer(http.healthProbeAddr, {
            ready,
            logger: this.#log,
            onListening: (a) => {
              this.#log.info("serving /healthz /readyz", { address: `${a.hostname}:${a.port}` });
              http.onProbesListening?.(a);
            },
          }),
        );
      }
    } catch (err) {
      this.#httpStop.abort();
      await Promise.all(servers.map((s) => s.shutdown()));
      throw err;
    }
    return servers;
  }

  /** Serves a rotated metrics certificate to new connections; stops with the HTTP servers. */
  async #watchCertificate(
    server: MetricsServer,
    current: { cert: string; key: string },
    reload: NonNullable<HttpOptions["metricsTlsReload"]>,
  ): Promise<void> {
    if (!server.reloadTls) {
      this.#log.warn(
        "the metrics certificate is not reloaded with --enable-http2; a rotated one needs a restart",
      );
      return;
    }
    let failed = "";
    while (!this.#httpStop.signal.aborted) {
      await sleep(reload.intervalMs ?? 10_000, this.#httpStop.signal).catch(() => {});
      if (this.#httpStop.signal.aborted) return;
      try {
        const next = await reload.load();
        failed = "";
        if (next.cert === current.cert && next.key === current.key) continue;
        server.reloadTls(next);
        current = next;
        this.#log.info("serving a rotated metrics certificate");
      } catch (err) {
        // say it once per distinct failure; the certificate in use stays
        const message = (err as Error).message;
        if (message !== failed) this.#log.warn("cannot reload the metrics certificate", { error: message });
        failed = message;
      }
    }
  }

  /**
   * Runs until `signal` aborts, then shuts down gracefully: stop taking work, in-flight syncs
   * get the grace period, the store is flushed, the Lease released, the source and the HTTP
   * servers stopped. Rejects only when start-up fails (e.g. the listen address is taken).
   */
  async run(signal: AbortSignal): Promise<void> {
    const servers: Array<MetricsServer | WebhookServer> = await this.#startHttp();
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
