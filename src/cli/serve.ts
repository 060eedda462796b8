/**
 * `portager serve -f DIR`: keep the ImageSyncs in a folder (or files) on their schedules with
 * no cluster. It runs the operator's own reconciler (src/controller) over a file-backed store:
 * the files are the spec, a small state file (src/cli/state.ts) holds the status. So the
 * decisions are the operator's: a new or changed spec syncs now, otherwise the schedule
 * decides from nextSyncTime, which advances only on success; failures retry with backoff; a
 * sync cut short by a kill resumes on restart. The folder is watched; a removed file drops
 * its ImageSyncs. `/metrics`, `/healthz` and `/readyz` are served as by the operator.
 * @module
 */
import { type ImageSync, type ImageSyncSpec, type ImageSyncStatus, SYNC_NOW_ANNOTATION } from "../api/mod.ts";
import { ExponentialBackoff, WorkQueue } from "../controller/queue.ts";
import {
  type ReconcileDeps,
  Reconciler,
  type StoredImageSync,
  type SyncRunner,
} from "../controller/reconcile.ts";
import type { EventObject, EventType } from "../kube/events.ts";
import { createMetrics, type Metrics } from "../metrics/mod.ts";
import { type MetricsServer, startServer } from "../server/http.ts";
import { createLogger, type Logger, parseLogFormat } from "../server/log.ts";
import { syncImageSync } from "../sync/mod.ts";
import { type FlagSpec, formatFlags, parseArgs, UsageError } from "./args.ts";
import type { FileCredentials } from "./auth.ts";
import { parseDuration } from "./common.ts";
import { formatLoadProblem, type LoadedImageSync, loadImageSyncs } from "./load.ts";
import {
  defaultStatePath,
  readState,
  type ServeState,
  specHash,
  stableHash,
  StateFileError,
  writeState,
} from "./state.ts";
import { COMMON_FLAGS, type CommonSettings, commonSettings, logLevelFlag } from "./sync.ts";

const FLAGS: FlagSpec[] = [
  {
    name: "file",
    short: "f",
    type: "string",
    multiple: true,
    help: "folder of ImageSync *.yaml/*.yml/*.json files, or a file (repeatable); watched for changes",
  },
  ...COMMON_FLAGS,
  {
    name: "state-file",
    type: "string",
    env: "PORTAGER_STATE_FILE",
    help: "where last results are kept across restarts (default $XDG_STATE_HOME/portager/state.json, " +
      "else ./.portager-state.json)",
  },
  {
    name: "metrics-addr",
    type: "string",
    env: "METRICS_ADDR",
    default: ":8080",
    help: "listen address for /metrics, /healthz, /readyz (port 0 picks a free one)",
  },
  {
    name: "max-concurrent-syncs",
    type: "string",
    env: "MAX_CONCURRENT_SYNCS",
    default: "2",
    help: "ImageSyncs synced at the same time",
  },
  {
    name: "grace-period",
    type: "string",
    env: "GRACE_PERIOD",
    default: "30s",
    help: "how long in-flight syncs may finish after SIGINT/SIGTERM",
  },
  { name: "log-format", type: "string", env: "LOG_FORMAT", default: "text", help: "text or json (stderr)" },
  {
    name: "log-level",
    type: "string",
    env: "LOG_LEVEL",
    default: "info",
    help: "debug, info, warn or error",
  },
  { name: "help", short: "h", type: "boolean", help: "show this help" },
];

const HELP = `Usage: portager serve -f DIR [flags]

Keeps every ImageSync in DIR (*.yaml, *.yml, *.json; or the files named) on its schedule, with
no cluster, deciding like the operator: a new or changed spec syncs now; otherwise the schedule
decides (cron or "@every <duration>"); nextSyncTime advances only on success and failures retry
with backoff. DIR is watched: an edited file resyncs, a removed one is dropped, and a file with
problems is reported while its last good version keeps running. Last results live in a state
file, so a restart does not sync again what is not due. SIGINT/SIGTERM stop gracefully.

Flags:
${formatFlags(FLAGS)}

Examples:
  portager serve -f ./imagesyncs/ --metrics-addr 127.0.0.1:9090
  portager serve -f ./imagesyncs/ --secret dst-creds=./dst-secret.yaml --state-file /var/lib/portager/state.json
  curl -s localhost:8080/metrics | grep portage_sync_total`;

function splitKey(key: string): [string, string] {
  const slash = key.indexOf("/");
  return [key.slice(0, slash), key.slice(slash + 1)];
}

interface Entry {
  object: StoredImageSync;
  file: string;
  hash: string;
  /** Hash of the metadata as read, to tell a newly written annotation from a reload. */
  metaHash: string;
  generation: number;
}

/**
 * The file-backed stand-in for the apiserver: objects come from files, status lives in the
 * state file (written after every change, one write at a time).
 */
class FileStore {
  readonly #entries = new Map<string, Entry>();
  readonly #statePath: string;
  readonly #state: ServeState;
  readonly #log: Logger;
  #writing: Promise<void> = Promise.resolve();
  #persistent = true;
  #lastWriteError?: string;

  constructor(statePath: string, state: ServeState, log: Logger) {
    this.#statePath = statePath;
    this.#state = state;
    this.#log = log;
  }

  keys(): string[] {
    return [...this.#entries.keys()];
  }

  fileOf(key: string): string | undefined {
    return this.#entries.get(key)?.file;
  }

  /** Adds or updates an ImageSync; says whether it should be reconciled now and why. */
  upsert(item: LoadedImageSync): "loaded" | "changed" | "sync-now" | undefined {
    const hash = specHash(item.object.spec as ImageSyncSpec);
    const current = this.#entries.get(item.key);
    const saved = this.#state.imageSyncs[item.key];
    const metaHash = stableHash(item.object.metadata);
    if (current && current.hash === hash) {
      const touched = current.metaHash !== metaHash;
      current.file = item.file;
      current.metaHash = metaHash;
      current.object.metadata.annotations = item.object.metadata.annotations;
      // the sync-now annotation, newly written into the file, syncs now (the reconciler removes
      // it from memory; the file keeps it until the user edits it again)
      return touched && item.object.metadata.annotations?.[SYNC_NOW_ANNOTATION] === "true"
        ? "sync-now"
        : undefined;
    }
    // the spec's "generation": bumped whenever the spec differs from the one last seen
    let generation: number;
    if (current) generation = current.generation + 1;
    else if (saved && saved.specHash === hash) generation = saved.generation ?? 1;
    else generation = (saved?.generation ?? 0) + 1;
    const [namespace, name] = splitKey(item.key);
    const status = current?.object.status ?? saved?.status;
    const object: StoredImageSync = {
      ...item.object,
      metadata: { ...item.object.metadata, namespace, name, generation },
      status: status ? structuredClone(status) : undefined,
    };
    this.#entries.set(item.key, { object, file: item.file, hash, metaHash, generation });
    this.#state.imageSyncs[item.key] = {
      specHash: hash,
      generation,
      file: item.file,
      status: object.status ?? {},
    };
    this.persist();
    return current ? "changed" : "loaded";
  }

  remove(key: string): void {
    this.#entries.delete(key);
    delete this.#state.imageSyncs[key];
    this.persist();
  }

  /** Drops saved state of ImageSyncs no file defines any more. */
  prune(): void {
    let changed = false;
    for (const key of Object.keys(this.#state.imageSyncs)) {
      if (!this.#entries.has(key)) {
        delete this.#state.imageSyncs[key];
        changed = true;
      }
    }
    if (changed) this.persist();
  }

  persist(): void {
    if (!this.#persistent) return;
    const snapshot = structuredClone(this.#state);
    this.#writing = this.#writing.then(() => writeState(this.#statePath, snapshot)).then(() => {
      if (this.#lastWriteError) this.#log.info("the state file is written again", { path: this.#statePath });
      this.#lastWriteError = undefined;
    }, (err) => {
      // say it once per distinct failure, not on every status change
      const message = (err as Error).message;
      if (message !== this.#lastWriteError) {
        this.#log.error("cannot write the state file; a restart will not know the last results", {
          path: this.#statePath,
          error: message,
        });
      }
      this.#lastWriteError = message;
    });
  }

  /** Turns persistence off (no permission to write): the state lives in memory only. */
  disablePersistence(): void {
    this.#persistent = false;
  }

  flush(): Promise<void> {
    return this.#writing;
  }

  // --- what the reconciler needs (ReconcileDeps["imagesyncs"]) ---

  get(namespace: string, name: string): Promise<ImageSync | undefined> {
    const e = this.#entries.get(`${namespace}/${name}`);
    return Promise.resolve(e ? structuredClone(e.object) : undefined);
  }

  removeAnnotation(namespace: string, name: string, options: { annotation: string }): Promise<ImageSync> {
    const e = this.#entries.get(`${namespace}/${name}`);
    if (!e) return Promise.reject(new Error(`ImageSync ${namespace}/${name} is gone`));
    // the file keeps it: in file mode the annotation syncs whenever the file is (re)loaded
    if (e.object.metadata.annotations) delete e.object.metadata.annotations[options.annotation];
    return Promise.resolve(structuredClone(e.object));
  }

  updateStatus(
    current: ImageSync,
    build: (obj: ImageSync) => Partial<ImageSyncStatus>,
  ): Promise<ImageSync | undefined> {
    const key = `${current.metadata.namespace}/${current.metadata.name}`;
    const e = this.#entries.get(key);
    if (!e) return Promise.resolve(undefined);
    const status: ImageSyncStatus = { ...(e.object.status ?? {}), ...build(structuredClone(e.object)) };
    e.object.status = status;
    const saved = this.#state.imageSyncs[key];
    if (saved) saved.status = structuredClone(status);
    this.persist();
    return Promise.resolve(structuredClone(e.object));
  }
}

/** Events become log lines: there is no apiserver to record them. */
function logRecorder(log: Logger): ReconcileDeps["recorder"] {
  return {
    record(target: EventObject, event: { type: EventType; reason: string; message: string }) {
      const fields = { imagesync: `${target.namespace}/${target.name}`, reason: event.reason };
      if (event.type === "Warning") log.warn(event.message, fields);
      else log.info(event.message, fields);
    },
  };
}

function prepareSync(settings: CommonSettings, credentials: FileCredentials): ReconcileDeps["prepareSync"] {
  return async (obj, spec) => {
    // --secret files and Docker's config were read at start; errors carry reason AuthFailed
    const creds = await credentials.forSpec(spec, obj.metadata.namespace);
    const run: SyncRunner = (s, opts) =>
      syncImageSync(s, {
        sourceCredentials: creds.source,
        destinationCredentials: creds.destination,
        repositories: creds.repositories,
        concurrency: settings.concurrency,
        insecureRegistries: settings.insecureRegistries,
        caCerts: settings.caCerts,
        userAgent: "portager-serve",
        previous: opts.previous,
        signal: opts.signal,
        cancelInFlight: opts.cancelInFlight,
        onEvent: opts.onEvent,
        onRetry: () => opts.onRetry(),
      });
    return run;
  };
}

/** Runs `portager serve` until SIGINT/SIGTERM; returns the exit code. */
export async function serveCommand(args: string[]): Promise<number> {
  const { flags, positional } = parseArgs(args, FLAGS);
  if (flags.help) {
    console.log(HELP);
    return 0;
  }
  if (positional.length > 0) {
    throw new UsageError(`unexpected argument "${positional[0]}" (folders go after -f: -f ${positional[0]})`);
  }
  const level = logLevelFlag(flags["log-level"]);
  let format;
  try {
    format = parseLogFormat(flags["log-format"] as string);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const settings = await commonSettings(flags, "serve");
  if (settings.files.includes("-")) throw new UsageError("serve reads folders and files, not standard input");
  const workers = Number(flags["max-concurrent-syncs"]);
  if (!Number.isInteger(workers) || workers < 1) {
    throw new UsageError(
      `--max-concurrent-syncs must be a whole number ≥ 1, got "${flags["max-concurrent-syncs"]}"`,
    );
  }
  const gracePeriodMs = parseDuration(flags["grace-period"] as string, "--grace-period");
  const statePath = (flags["state-file"] as string | undefined) || defaultStatePath();
  for (const path of settings.files) {
    try {
      await Deno.stat(path);
    } catch (err) {
      throw new UsageError(`cannot read ${path}: ${(err as Error).message}`);
    }
  }
  let state;
  try {
    state = await readState(statePath);
  } catch (err) {
    if (err instanceof StateFileError) {
      console.error(`portager: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const log = createLogger({ level, format });
  const metrics = createMetrics();
  const store = new FileStore(statePath, state, log);
  const dir = statePath.includes("/") ? statePath.slice(0, statePath.lastIndexOf("/")) || "/" : ".";
  if ((await Deno.permissions.query({ name: "write", path: dir })).state !== "granted") {
    // e.g. a binary compiled without --allow-write: keep serving, remember in memory only
    log.warn(
      "no permission to write the state file; results are kept in memory only and a restart will " +
        "sync what it cannot tell is done (run with --allow-write)",
      { path: statePath },
    );
    store.disablePersistence();
  }
  await new Server(settings, {
    store,
    metrics,
    log,
    workers,
    gracePeriodMs,
    metricsAddr: flags["metrics-addr"] as string,
  })
    .run();
  return 0;
}

interface ServerOptions {
  store: FileStore;
  metrics: Metrics;
  log: Logger;
  workers: number;
  gracePeriodMs: number;
  metricsAddr: string;
}

class Server {
  readonly #settings: CommonSettings;
  readonly #o: ServerOptions;
  readonly #queue: WorkQueue;
  readonly #reconciler: Reconciler;
  /** Aborted at shutdown: start no new tags. */
  readonly #stopStarting = new AbortController();
  /** Aborted when the grace period is over: cut copies in flight. */
  readonly #cancelInFlight = new AbortController();
  #ready = false;

  constructor(settings: CommonSettings, options: ServerOptions) {
    this.#settings = settings;
    this.#o = options;
    this.#queue = new WorkQueue({
      backoff: new ExponentialBackoff(),
      onDepth: (d) => options.metrics.queueDepth.set(d),
    });
    this.#reconciler = new Reconciler({
      imagesyncs: options.store,
      prepareSync: prepareSync(settings, settings.credentials),
      recorder: logRecorder(options.log),
      metrics: options.metrics,
      logger: options.log,
    });
  }

  /** Reloads every file; new or changed specs are queued now, vanished ones dropped. */
  async reload(): Promise<void> {
    const { store, log } = this.#o;
    const result = await loadImageSyncs(this.#settings.files);
    const troubled = new Set(result.problems.map((p) => p.file));
    for (const p of result.problems) log.error(`invalid input: ${formatLoadProblem(p)}`, { file: p.file });
    const seen = new Set<string>();
    for (const item of result.imageSyncs) {
      seen.add(item.key);
      const why = store.upsert(item);
      if (why) {
        const what =
          { loaded: "ImageSync loaded", changed: "ImageSync changed", "sync-now": "sync-now requested" }[why];
        log.info(what, { imagesync: item.key, file: item.file });
        this.#queue.add(item.key);
      }
    }
    for (const key of store.keys()) {
      if (seen.has(key)) continue;
      const file = store.fileOf(key);
      // a file being edited may be half-written or broken: keep its last good ImageSyncs
      if (file !== undefined && troubled.has(file) && (await exists(file))) {
        log.warn("keeping the last valid version until the file is fixed", { imagesync: key, file });
        continue;
      }
      store.remove(key);
      this.#queue.cancelTimer(key);
      this.#queue.forget(key);
      const [ns, name] = splitKey(key);
      this.#o.metrics.forget(ns, name);
      log.info("ImageSync removed", { imagesync: key, file });
    }
  }

  async #worker(id: number): Promise<void> {
    const q = this.#queue;
    while (true) {
      const key = await q.get();
      if (key === undefined) return;
      const [ns, name] = splitKey(key);
      const log = this.#o.log.child({ imagesync: key, worker: id });
      try {
        const res = await this.#reconciler.reconcile(ns, name, {
          signal: this.#stopStarting.signal,
          cancelInFlight: this.#cancelInFlight.signal,
        }).catch((err) => ({
          error: err as Error,
          requeueAfterMs: undefined,
        }));
        if (res.error) {
          if (!q.shuttingDown) {
            const delay = q.addRateLimited(key);
            this.#o.metrics.observeRetry(ns, name);
            log.warn("sync failed; retrying with backoff", { error: res.error.message, retryInMs: delay });
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

  async #watch(signal: AbortSignal): Promise<void> {
    const { log } = this.#o;
    const dirs = new Set<string>();
    for (const path of this.#settings.files) {
      const info = await Deno.stat(path);
      // watch a file's folder: editors replace files by rename, which a file watch loses
      dirs.add(
        info.isDirectory ? path : (path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : "."),
      );
    }
    const watcher = Deno.watchFs([...dirs], { recursive: false });
    const close = () => {
      try {
        watcher.close();
      } catch { /* already closed */ }
    };
    signal.addEventListener("abort", close, { once: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    let reloading = Promise.resolve();
    try {
      for await (const event of watcher) {
        if (event.kind === "access") continue;
        log.debug("files changed", { kind: event.kind, paths: event.paths });
        // editors write in several steps: reload once things settle
        if (timer !== undefined) clearTimeout(timer);
        timer = setTimeout(() => {
          timer = undefined;
          reloading = reloading.then(() => this.reload()).catch((err) =>
            log.error("reload failed", { error: err })
          );
        }, 250);
      }
    } catch (err) {
      // e.g. the folder was deleted: keep serving what is loaded, on its schedule
      if (!signal.aborted) log.error("stopped watching for file changes", { error: (err as Error).message });
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      signal.removeEventListener("abort", close);
      await reloading;
    }
  }

  async run(): Promise<void> {
    const { log, metrics, store } = this.#o;
    const stopped = new AbortController();
    const stop = () => stopped.abort();
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    let server: MetricsServer | undefined;
    try {
      server = await startServer(this.#o.metricsAddr, {
        metrics: async () => ({ body: await metrics.expose(), contentType: metrics.contentType }),
        ready: () => (this.#ready ? { ok: true } : { ok: false, detail: "loading ImageSyncs" }),
        logger: log,
        onListening: (a) =>
          log.info("serving /metrics /healthz /readyz", { address: `${a.hostname}:${a.port}` }),
      });
      metrics.isLeader.set(1);
      log.info("starting portager serve", { files: this.#settings.files, workers: this.#o.workers });
      await this.reload();
      store.prune();
      const loops = Array.from({ length: this.#o.workers }, (_, i) => this.#worker(i));
      const watching = this.#watch(stopped.signal).catch((err) =>
        log.error("cannot watch for file changes", { error: (err as Error).message })
      );
      this.#ready = true;
      await new Promise<void>((resolve) => {
        if (stopped.signal.aborted) resolve();
        stopped.signal.addEventListener("abort", () => resolve(), { once: true });
      });
      log.info("shutting down", { gracePeriodMs: this.#o.gracePeriodMs, inFlight: this.#queue.inFlight });
      this.#ready = false;
      await watching;
      this.#queue.shutDown();
      this.#stopStarting.abort(new Error("shutdown"));
      const all = Promise.all(loops);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finished = await Promise.race([
        all.then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), this.#o.gracePeriodMs))),
      ]);
      clearTimeout(timer);
      if (!finished) {
        log.warn("grace period over; interrupting in-flight syncs", { inFlight: this.#queue.inFlight });
        this.#cancelInFlight.abort(new Error("grace period over"));
        await all;
      }
    } finally {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
      await store.flush();
      await server?.shutdown();
    }
    log.info("stopped");
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
