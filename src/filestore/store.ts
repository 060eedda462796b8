/**
 * File mode's store for the manager: ImageSyncs come from files (a folder, or files named),
 * their status lives in a small state file (./state.ts), Events become log lines, and Secrets
 * are stood in by whatever the caller's loader returns (`--secret` files, Docker's config).
 * It is also its own event source: files are loaded at start and reloaded when the folder
 * changes; a new or changed spec (its "generation" bumped) or a sync-now annotation newly
 * written into a file is queued; a removed file drops its ImageSyncs; a file with problems
 * is reported while its last good version keeps running.
 * @module
 */

import { type ImageSync, type ImageSyncSpec, type ImageSyncStatus, SYNC_NOW_ANNOTATION } from "../api/mod.ts";
import type { SecretLoader } from "../credentials/mod.ts";
import type { CredentialResolver } from "../oci/mod.ts";
import type { ProbeResult } from "../server/http.ts";
import type { Logger } from "../log/mod.ts";
import { type ServeState, specHash, stableHash, writeState } from "./state.ts";

/** One ImageSync as read from a file. */
export interface FileImageSync {
  /** `namespace/name`. */
  key: string;
  /** The file it came from. */
  file: string;
  /** The object as written in the file. */
  object: ImageSync;
}

/** What one load of the files found. */
export interface FileLoad {
  /** The ImageSyncs read. */
  imageSyncs: FileImageSync[];
  /** Files with problems, each with one line saying what is wrong. */
  problems: Array<{ file: string; message: string }>;
}

/** Options of {@linkcode FileStore}. */
export interface FileStoreOptions {
  /** Folders or files holding ImageSyncs; folders (and files' folders) are watched. */
  files: string[];
  /** Reads every file (the CLI's loader: YAML, multi-document, validation). */
  load(files: string[]): Promise<FileLoad>;
  /** The state file's path. */
  statePath: string;
  /** Its content as read at start (see ./state.ts `readState`). */
  state: ServeState;
  /** Whether the state file may be written; false keeps it in memory only. */
  persist?: boolean;
  /** Stand-ins for Secrets. */
  loadSecret: SecretLoader;
  /** Credentials where no Secret is named or none is stood in (Docker's config). */
  fallbackCredentials?: CredentialResolver;
  /** Logger (also receives the Events). */
  logger: Logger;
  /** How long the folder must be quiet before a reload; default 250 ms. */
  settleMs?: number;
}

interface Entry {
  object: ImageSync & { metadata: { namespace: string; generation: number } };
  file: string;
  hash: string;
  /** Hash of the metadata as read, to tell a newly written annotation from a reload. */
  metaHash: string;
  generation: number;
}

function splitKey(key: string): [string, string] {
  const slash = key.indexOf("/");
  return [key.slice(0, slash), key.slice(slash + 1)];
}

function folderOf(path: string): string {
  return path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The folder + state file store; see the module doc. */
export class FileStore {
  readonly #o: FileStoreOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #log: Logger;
  #writing: Promise<void> = Promise.resolve();
  #persistent: boolean;
  #lastWriteError?: string;
  #loaded = false;
  /** Reads and writes the ImageSyncs held (the reconciler's side of the store). */
  readonly imagesyncs: {
    get(namespace: string, name: string): Promise<ImageSync | undefined>;
    removeAnnotation(namespace: string, name: string, options: { annotation: string }): Promise<ImageSync>;
    updateStatus(
      current: ImageSync,
      build: (obj: ImageSync) => Partial<ImageSyncStatus>,
    ): Promise<ImageSync | undefined>;
  };
  /** Events become log lines: there is no apiserver to record them. */
  readonly recorder: {
    record(
      target: { namespace?: string; name: string },
      event: { type: "Normal" | "Warning"; reason: string; message: string },
    ): void;
  };
  /** Stand-ins for Secrets. */
  readonly loadSecret: SecretLoader;
  /** Docker's config, for what no stand-in answers. */
  readonly fallbackCredentials?: CredentialResolver;

  /** Creates the store; the manager's `run` loads the files. */
  constructor(options: FileStoreOptions) {
    this.#o = options;
    this.#log = options.logger;
    this.#persistent = options.persist ?? true;
    this.loadSecret = options.loadSecret;
    this.fallbackCredentials = options.fallbackCredentials;
    this.imagesyncs = {
      get: (ns, name) => Promise.resolve(this.#copy(`${ns}/${name}`)),
      removeAnnotation: (ns, name, opts) => {
        const e = this.#entries.get(`${ns}/${name}`);
        if (!e) return Promise.reject(new Error(`ImageSync ${ns}/${name} is gone`));
        // the file keeps it: in file mode the annotation syncs whenever the file is (re)written
        if (e.object.metadata.annotations) delete e.object.metadata.annotations[opts.annotation];
        return Promise.resolve(structuredClone(e.object));
      },
      updateStatus: (current, build) => {
        const key = `${current.metadata.namespace}/${current.metadata.name}`;
        const e = this.#entries.get(key);
        if (!e) return Promise.resolve(undefined);
        const status: ImageSyncStatus = { ...(e.object.status ?? {}), ...build(structuredClone(e.object)) };
        e.object.status = status;
        const saved = this.#o.state.imageSyncs[key];
        if (saved) saved.status = structuredClone(status);
        this.#persist();
        return Promise.resolve(structuredClone(e.object));
      },
    };
    const log = this.#log;
    this.recorder = {
      record(target, event) {
        const fields = { imagesync: `${target.namespace}/${target.name}`, reason: event.reason };
        if (event.type === "Warning") log.warn(event.message, fields);
        else log.info(event.message, fields);
      },
    };
  }

  #copy(key: string): ImageSync | undefined {
    const e = this.#entries.get(key);
    return e ? structuredClone(e.object) : undefined;
  }

  /** Keys of the ImageSyncs held. */
  keys(): Iterable<string> {
    return [...this.#entries.keys()];
  }

  /** Ready once the files were loaded. */
  ready(): ProbeResult {
    return this.#loaded ? { ok: true } : { ok: false, detail: "loading ImageSyncs" };
  }

  /** Adds or updates an ImageSync; says whether it should be reconciled now and why. */
  #upsert(item: FileImageSync): "loaded" | "changed" | "sync-now" | undefined {
    const hash = specHash(item.object.spec as ImageSyncSpec);
    const current = this.#entries.get(item.key);
    const saved = this.#o.state.imageSyncs[item.key];
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
    const object: Entry["object"] = {
      ...item.object,
      metadata: { ...item.object.metadata, namespace, name, generation },
      status: status ? structuredClone(status) : undefined,
    };
    this.#entries.set(item.key, { object, file: item.file, hash, metaHash, generation });
    this.#o.state.imageSyncs[item.key] = {
      specHash: hash,
      generation,
      file: item.file,
      status: object.status ?? {},
    };
    this.#persist();
    return current ? "changed" : "loaded";
  }

  #remove(key: string): void {
    this.#entries.delete(key);
    delete this.#o.state.imageSyncs[key];
    this.#persist();
  }

  /** Drops saved state of ImageSyncs no file defines any more. */
  #prune(): void {
    let changed = false;
    for (const key of Object.keys(this.#o.state.imageSyncs)) {
      if (!this.#entries.has(key)) {
        delete this.#o.state.imageSyncs[key];
        changed = true;
      }
    }
    if (changed) this.#persist();
  }

  #persist(): void {
    if (!this.#persistent) return;
    const path = this.#o.statePath;
    const snapshot = structuredClone(this.#o.state);
    this.#writing = this.#writing.then(() => writeState(path, snapshot)).then(() => {
      if (this.#lastWriteError) this.#log.info("the state file is written again", { path });
      this.#lastWriteError = undefined;
    }, (err) => {
      // say it once per distinct failure, not on every status change
      const message = (err as Error).message;
      if (message !== this.#lastWriteError) {
        this.#log.error("cannot write the state file; a restart will not know the last results", {
          path,
          error: message,
        });
      }
      this.#lastWriteError = message;
    });
  }

  /** Reloads every file; new or changed specs go to `sink`, vanished ones are dropped. */
  async reload(sink: { add(key: string): void; remove(key: string): void }): Promise<void> {
    const log = this.#log;
    const result = await this.#o.load(this.#o.files);
    const troubled = new Set(result.problems.map((p) => p.file));
    for (const p of result.problems) log.error(`invalid input: ${p.message}`, { file: p.file });
    const seen = new Set<string>();
    for (const item of result.imageSyncs) {
      seen.add(item.key);
      const why = this.#upsert(item);
      if (why) {
        const what =
          { loaded: "ImageSync loaded", changed: "ImageSync changed", "sync-now": "sync-now requested" }[why];
        log.info(what, { imagesync: item.key, file: item.file });
        sink.add(item.key);
      }
    }
    for (const [key, entry] of [...this.#entries]) {
      if (seen.has(key)) continue;
      // a file being edited may be half-written or broken: keep its last good ImageSyncs
      if (troubled.has(entry.file) && (await exists(entry.file))) {
        log.warn("keeping the last valid version until the file is fixed", {
          imagesync: key,
          file: entry.file,
        });
        continue;
      }
      this.#remove(key);
      sink.remove(key);
      log.info("ImageSync removed", { imagesync: key, file: entry.file });
    }
  }

  /** Loads the files, then reloads whenever their folders change, until `signal` aborts. */
  async run(sink: { add(key: string): void; remove(key: string): void }, signal: AbortSignal): Promise<void> {
    await this.reload(sink);
    this.#prune();
    this.#loaded = true;
    if (signal.aborted) return;
    await this.#watch(sink, signal).catch((err) =>
      this.#log.error("cannot watch for file changes", { error: (err as Error).message })
    );
  }

  async #watch(
    sink: { add(key: string): void; remove(key: string): void },
    signal: AbortSignal,
  ): Promise<void> {
    const log = this.#log;
    const dirs = new Set<string>();
    for (const path of this.#o.files) {
      const info = await Deno.stat(path);
      // watch a file's folder: editors replace files by rename, which a file watch loses
      dirs.add(info.isDirectory ? path : folderOf(path));
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
          reloading = reloading.then(() => this.reload(sink)).catch((err) =>
            log.error("reload failed", { error: err })
          );
        }, this.#o.settleMs ?? 250);
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

  /** Waits until every state write so far is done. */
  close(): Promise<void> {
    return this.#writing;
  }
}
