/**
 * The manager's two contracts with where ImageSyncs live: a *store* (read ImageSyncs, write
 * status, remove the sync-now annotation, record Events, read Secrets) and an *event source*
 * (which keys changed, and optionally a watch cache that reconcile reads). The apiserver
 * (src/kube + the informers of ./operator.ts) and file mode (src/filestore) implement both.
 * @module
 */

import type { ImageSync } from "../api/mod.ts";
import type { SecretLoader } from "../credentials/mod.ts";
import type { CredentialResolver } from "../oci/mod.ts";
import type { ProbeResult } from "../server/http.ts";
import type { EventSink, ImageSyncAccess } from "./reconcile.ts";

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

/**
 * Why a key left the event source: `deleted`, `unselected` (still there, but relabeled out of
 * this shard's label selector: another process owns it now), or `deleted-or-unselected` when
 * the source could not tell.
 */
export type RemovalReason = "deleted" | "unselected" | "deleted-or-unselected";

/** What an event source tells the manager. */
export interface KeySink {
  /** `namespace/name` changed (or is new): reconcile it. */
  add(key: string): void;
  /**
   * `namespace/name` is gone: drop its timers, backoff and metrics, and cancel its sync in
   * flight, which then writes nothing more about it. `why` (default `deleted`) is only logged;
   * a function (e.g. one apiserver read) is called only when a sync was cancelled.
   */
  remove(key: string, why?: RemovalReason | (() => Promise<RemovalReason>)): void;
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
