/**
 * List + watch with a local cache, in client-go's reflector style: list to get a
 * resourceVersion, watch from it with bookmarks, resume from the last seen version when the
 * stream ends, relist on 410 Gone, and back off on errors. After a relist, objects that
 * vanished meanwhile are reported as deleted. Objects are passed through a transform on the way
 * in (client-go's SetTransform), so the cache keeps only what its user reads: by default every
 * object loses `metadata.managedFields`, which is about half of a small object's size.
 * @module
 */

import type { Logger } from "../log/mod.ts";
import { isKubeReason, KubeError, type KubeStatus, type WatchEvent } from "./client.ts";
import { sleep } from "../oci/mod.ts";

/** The metadata the informer relies on. */
export interface InformerObject {
  /** Name, namespace and resourceVersion. */
  metadata: { name: string; namespace?: string; resourceVersion?: string; uid?: string };
}

/**
 * The default transform: the object without `metadata.managedFields` (server-side apply
 * bookkeeping nobody in this process reads; ~1 KB of a 2 KB ImageSync). Returns a shallow copy,
 * or the object itself when it has none.
 */
export function stripManagedFields<T extends InformerObject>(obj: T): T {
  const md = obj.metadata as T["metadata"] & { managedFields?: unknown };
  if (!md || md.managedFields === undefined) return obj;
  const { managedFields: _, ...rest } = md;
  return { ...obj, metadata: rest };
}

/** Lists and watches one kind of object in one scope. */
export interface ListWatcher<T> {
  /** Human name for logs, e.g. "imagesyncs in team-a". */
  readonly description: string;
  /** Lists every object and the collection's resourceVersion. */
  list(signal: AbortSignal): Promise<{ items: T[]; resourceVersion: string }>;
  /** Opens a watch from `resourceVersion`. */
  watch(resourceVersion: string, signal: AbortSignal): Promise<AsyncIterable<WatchEvent<T | KubeStatus>>>;
}

/** Callbacks of an informer; they must not throw and should return quickly. */
export interface InformerHandlers<T> {
  /** A new object appeared. */
  onAdd?(obj: T): void;
  /** An object changed. */
  onUpdate?(previous: T, current: T): void;
  /** An object went away. */
  onDelete?(obj: T): void;
}

/** Options of {@linkcode Informer}. */
export interface InformerOptions<T = InformerObject, C = T> {
  /**
   * What the cache keeps of each object (list items, watch events, `observe`d objects), applied
   * before anything is stored or handed to a handler; default {@linkcode stripManagedFields}.
   * It must keep `metadata.name`, `namespace` and `resourceVersion`.
   */
  transform?: (obj: T) => C;
  /**
   * Which objects this informer handles at all (e.g. a shard's own, by namespace/name); the
   * others are neither cached nor handed to a handler. Default: all.
   */
  keep?: (obj: InformerObject) => boolean;
  /** Where list and watch problems are logged. */
  logger?: Logger;
  /** First error backoff; default 1 s, doubling to `maxBackoffMs` (default 30 s). */
  baseBackoffMs?: number;
  /** Longest error backoff; default 30 s. */
  maxBackoffMs?: number;
}

/** `namespace/name` (or `name` for cluster-scoped objects). */
export function objectKey(obj: InformerObject): string {
  return obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name;
}

/**
 * Keeps a cache of the objects of a ListWatcher current and calls handlers on changes. `T` is
 * what the API returns, `C` what the cache keeps of it (see {@linkcode InformerOptions.transform}).
 */
export class Informer<T extends InformerObject, C extends InformerObject = T> {
  #lw: ListWatcher<T>;
  #handlers: InformerHandlers<C>;
  #transform: (obj: T) => C;
  #keep?: (obj: InformerObject) => boolean;
  #cache = new Map<string, C>();
  #log?: Logger;
  #base: number;
  #max: number;
  #synced = false;
  #watching = false;
  #resourceVersion = "";
  #watchEndedAt = 0;
  /** Counts list calls (initial + relists), for tests and logs. */
  lists = 0;

  /** Creates an informer; call `run` to start it. */
  constructor(lw: ListWatcher<T>, handlers: InformerHandlers<C>, options: InformerOptions<T, C> = {}) {
    this.#lw = lw;
    this.#handlers = handlers;
    this.#transform = options.transform ?? (stripManagedFields as unknown as (obj: T) => C);
    this.#keep = options.keep;
    this.#log = options.logger;
    this.#base = options.baseBackoffMs ?? 1_000;
    this.#max = options.maxBackoffMs ?? 30_000;
  }

  /** True once the first list has filled the cache. */
  get synced(): boolean {
    return this.#synced;
  }

  /** True while a watch stream is open. */
  get watching(): boolean {
    return this.#watching;
  }

  /**
   * True when the cache is synced and a watch is open, or was open moments ago (a watch
   * that the server ended is reopened at once; this does not flap during that).
   */
  get established(): boolean {
    return this.#synced && (this.#watching || Date.now() - this.#watchEndedAt < 30_000);
  }

  /** The last resourceVersion seen. */
  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  /** The cached object with `key`. */
  get(key: string): C | undefined {
    return this.#cache.get(key);
  }

  /** All cached objects. */
  list(): C[] {
    return [...this.#cache.values()];
  }

  /**
   * Updates the cache with an object this process just wrote (a newer resourceVersion than the
   * cached one), as the watch will: `onUpdate` is called with both, so a change the write
   * carried in (a spec edited meanwhile, read back after a conflict) is not missed when its own
   * watch event, now older than the cache, is skipped. Objects not cached are left out.
   */
  observe(obj: T): void {
    const key = objectKey(obj);
    const prev = this.#cache.get(key);
    if (!prev || !newer(obj, prev)) return;
    const cur = this.#transform(obj);
    this.#cache.set(key, cur);
    this.#call(() => this.#handlers.onUpdate?.(prev, cur));
  }

  #replace(items: T[]): void {
    const seen = new Set<string>();
    for (const item of items) {
      if (this.#keep && !this.#keep(item)) continue;
      const obj = this.#transform(item);
      const key = objectKey(obj);
      seen.add(key);
      const prev = this.#cache.get(key);
      // an object this process wrote after the list's snapshot stays as written
      if (prev && olderThan(obj, prev)) continue;
      this.#cache.set(key, obj);
      if (!prev) this.#call(() => this.#handlers.onAdd?.(obj));
      else if (prev.metadata.resourceVersion !== obj.metadata.resourceVersion) {
        this.#call(() => this.#handlers.onUpdate?.(prev, obj));
      }
    }
    for (const [key, prev] of this.#cache) {
      if (!seen.has(key)) {
        this.#cache.delete(key);
        this.#call(() => this.#handlers.onDelete?.(prev));
      }
    }
  }

  #call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#log?.error("informer handler failed", { error: err });
    }
  }

  #apply(ev: WatchEvent<T | KubeStatus>): void {
    const raw = ev.object as T;
    if (!raw?.metadata) return;
    if (raw.metadata.resourceVersion) this.#resourceVersion = raw.metadata.resourceVersion;
    if (ev.type === "BOOKMARK") return;
    if (this.#keep && !this.#keep(raw)) return;
    const obj = this.#transform(raw);
    const key = objectKey(obj);
    const prev = this.#cache.get(key);
    if (ev.type === "DELETED") {
      this.#cache.delete(key);
      this.#call(() => this.#handlers.onDelete?.(obj));
      return;
    }
    // older than what `observe` put there (a write of ours that the watch has not reached
    // yet): the cache never goes back, so an annotation already removed does not return
    if (prev && olderThan(obj, prev)) return;
    this.#cache.set(key, obj);
    if (prev) this.#call(() => this.#handlers.onUpdate?.(prev, obj));
    else this.#call(() => this.#handlers.onAdd?.(obj));
  }

  /** Lists and watches until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    let needList = true;
    const backoff = async () => {
      const ms = Math.min(this.#max, this.#base * 2 ** Math.min(failures, 20));
      failures++;
      // jitter: ±20 %
      await sleep(ms * (0.8 + Math.random() * 0.4), signal).catch(() => {}); // aborted: the loop ends
    };
    while (!signal.aborted) {
      if (needList) {
        try {
          this.lists++;
          const { items, resourceVersion } = await this.#lw.list(signal);
          if (signal.aborted) break;
          this.#replace(items);
          this.#resourceVersion = resourceVersion;
          this.#synced = true;
          needList = false;
        } catch (err) {
          if (signal.aborted) break;
          this.#log?.warn("list failed; retrying", { what: this.#lw.description, error: err });
          await backoff();
          continue;
        }
      }
      let stream: AsyncIterable<WatchEvent<T | KubeStatus>>;
      try {
        stream = await this.#lw.watch(this.#resourceVersion, signal);
      } catch (err) {
        if (signal.aborted) break;
        if (isKubeReason(err, "Gone") || isKubeReason(err, "Expired")) {
          this.#log?.info("watch resourceVersion expired; relisting", { what: this.#lw.description });
          needList = true;
          continue;
        }
        this.#log?.warn("watch failed; retrying", { what: this.#lw.description, error: err });
        await backoff();
        continue;
      }
      this.#watching = true;
      let broke: unknown;
      try {
        for await (const ev of stream) {
          if (ev.type === "ERROR") {
            const st = ev.object as KubeStatus;
            if (st.code === 410 || st.reason === "Expired" || st.reason === "Gone") {
              this.#log?.info("watch expired (410 Gone); relisting", { what: this.#lw.description });
              needList = true;
            } else {
              broke = new KubeError(st.message ?? "watch error", {
                reason: st.reason ?? "Unknown",
                status: st.code ?? 0,
              });
            }
            break;
          }
          this.#apply(ev);
          failures = 0;
        }
      } catch (err) {
        broke = err;
      }
      this.#watching = false;
      this.#watchEndedAt = Date.now();
      if (signal.aborted) break;
      if (broke !== undefined) {
        this.#log?.warn("watch broke; resuming", { what: this.#lw.description, error: broke });
        await backoff();
      }
      // the server ended the watch (timeoutSeconds): resume from the last resourceVersion
    }
    this.#watching = false;
  }
}

function newer(a: InformerObject, b: InformerObject): boolean {
  const x = Number(a.metadata.resourceVersion);
  const y = Number(b.metadata.resourceVersion);
  // resourceVersions are opaque; etcd-backed ones are integers, which we may compare
  if (Number.isFinite(x) && Number.isFinite(y)) return x > y;
  return a.metadata.resourceVersion !== b.metadata.resourceVersion;
}

/** Whether `a` is known to be older than `b`: only integer resourceVersions are compared. */
function olderThan(a: InformerObject, b: InformerObject): boolean {
  if (!a.metadata.resourceVersion || !b.metadata.resourceVersion) return false;
  const x = Number(a.metadata.resourceVersion);
  const y = Number(b.metadata.resourceVersion);
  return Number.isFinite(x) && Number.isFinite(y) && x < y;
}
