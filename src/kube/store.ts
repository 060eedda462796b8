/**
 * The apiserver as the manager's store: ImageSyncs through their API (status subresource),
 * Events through the aggregating recorder, Secrets read fresh by name for every sync. A sync
 * can also be *requested* here (the sync-now annotation), for whichever process owns the
 * ImageSync: how a push that reached a standby or another shard gets synced.
 * @module
 */

import { type ImageSync, SYNC_NOW_ANNOTATION } from "../api/mod.ts";
import type { Logger } from "../log/mod.ts";
import { isKubeReason, type KubeClient } from "./client.ts";
import { EventRecorder } from "./events.ts";
import { ImageSyncClient } from "./imagesyncs.ts";
import { getSecret, type Secret } from "./secrets.ts";

/** The component Events are reported by: upstream's controller name, so its users' filters work. */
export const EVENT_COMPONENT = "imagesync-controller";

/**
 * The most ImageSyncs {@linkcode KubeStore.listImageSyncs} reads (10 000): past it, the rest
 * are left out (and the log says so) rather than holding an unbounded answer in memory.
 */
export const MAX_LISTED_IMAGESYNCS = 10_000;

/** Options of {@linkcode KubeStore}. */
export interface KubeStoreOptions {
  /** This instance's identity, recorded as the Events' reporting instance. */
  identity: string;
  /** Where Event write failures are logged. */
  logger?: Logger;
  /** The namespaces watched (listed by {@linkcode KubeStore.listImageSyncs}); default all. */
  namespaces?: string[];
}

/** ImageSyncs, Events and Secrets of one cluster. */
export class KubeStore {
  /** ImageSync reads, annotation removal, status writes. */
  readonly imagesyncs: ImageSyncClient;
  /** Events, aggregated. */
  readonly recorder: EventRecorder;
  readonly #kube: KubeClient;
  readonly #namespaces: Array<string | undefined>;
  readonly #log?: Logger;

  /** Creates the store over `kube`. */
  constructor(kube: KubeClient, options: KubeStoreOptions) {
    this.#kube = kube;
    this.#namespaces = options.namespaces?.length ? [...new Set(options.namespaces)] : [undefined];
    this.#log = options.logger;
    this.imagesyncs = new ImageSyncClient(kube);
    this.recorder = new EventRecorder(kube, {
      component: EVENT_COMPONENT,
      instance: options.identity,
      logger: options.logger,
    });
  }

  /** The Secret `namespace/name`, undefined when it does not exist; a refusal throws. */
  loadSecret = (ref: { namespace: string; name: string }): Promise<Secret | undefined> =>
    getSecret(this.#kube, ref);

  /**
   * Every ImageSync of the watched namespaces, read with paged LISTs (at most
   * {@linkcode MAX_LISTED_IMAGESYNCS}), reduced to name, namespace and spec: what a push is
   * matched against, on any replica (a standby's or a shard's cache holds no specs).
   */
  async listImageSyncs(options: { signal?: AbortSignal; maxItems?: number } = {}): Promise<ImageSync[]> {
    const max = options.maxItems ?? MAX_LISTED_IMAGESYNCS;
    const out: ImageSync[] = [];
    for (const [i, ns] of this.#namespaces.entries()) {
      if (out.length >= max) {
        this.#log?.warn("more ImageSyncs than are matched against pushes; the rest are left out", {
          limit: max,
          namespacesLeftOut: this.#namespaces.slice(i),
        });
        break;
      }
      const page = await this.imagesyncs.list(ns, {
        signal: options.signal,
        maxItems: max - out.length,
        keep: (o) => ({
          apiVersion: o.apiVersion,
          kind: o.kind,
          metadata: { name: o.metadata.name, namespace: o.metadata.namespace },
          spec: o.spec,
        }),
      });
      out.push(...page.items);
      if (page.truncated) {
        this.#log?.warn("more ImageSyncs than are matched against pushes; the rest are left out", {
          limit: max,
        });
        break;
      }
    }
    return out;
  }

  /**
   * Asks for a sync of `namespace/name` now through the apiserver: sets the sync-now
   * annotation, which the process that owns the ImageSync (the leader, or its shard's) sees
   * through its watch and consumes. False when the ImageSync is gone.
   */
  async requestSync(
    namespace: string,
    name: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<boolean> {
    try {
      await this.imagesyncs.setAnnotation(namespace, name, {
        annotation: SYNC_NOW_ANNOTATION,
        value: "true",
        signal: options.signal,
      });
      return true;
    } catch (err) {
      if (isKubeReason(err, "NotFound")) return false;
      throw err;
    }
  }

  /** Flushes pending Events. */
  close(): Promise<void> {
    return this.recorder.close();
  }
}
