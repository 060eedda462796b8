/**
 * ImageSync objects in the cluster: list/watch (all namespaces or one), get, remove an
 * annotation, and write status through the status subresource with a JSON merge patch that
 * carries the resourceVersion, retrying on 409 Conflict from a fresh read.
 * @module
 */

import { GROUP, type ImageSync, type ImageSyncStatus, PLURAL, VERSION } from "../api/mod.ts";
import { isKubeReason, type KubeClient, type KubeStatus, type WatchEvent } from "./client.ts";
import type { ListWatcher } from "./informer.ts";
import { unlessNotFound } from "./not_found.ts";

/** The API path of ImageSyncs: all namespaces, one namespace, or one object (+ subresource). */
export function imageSyncPath(namespace?: string, name?: string, subresource?: string): string {
  let p = `/apis/${GROUP}/${VERSION}`;
  if (namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${PLURAL}`;
  if (name) p += `/${encodeURIComponent(name)}`;
  if (subresource) p += `/${subresource}`;
  return p;
}

/** ImageSyncs asked for per page when listing (as client-go's pager asks for 500). */
export const LIST_PAGE_SIZE = 500;

/** Options of {@linkcode ImageSyncClient.list}. */
export interface ListOptions {
  /** Aborts the requests. */
  signal?: AbortSignal;
  /** Stop after this many objects (the result says `truncated`); default all. */
  maxItems?: number;
  /** Reduces each object as it is read. */
  keep?: (obj: ImageSync) => ImageSync;
  /** Only the ImageSyncs this label selector picks (the apiserver filters). */
  labelSelector?: string;
}

/** Options of {@linkcode ImageSyncClient.updateStatus}. */
export interface UpdateStatusOptions {
  /** Conflict retries after the first attempt; default 5. */
  retries?: number;
  /** Aborts the requests. */
  signal?: AbortSignal;
}

/** Reads and writes ImageSyncs. */
export class ImageSyncClient {
  /** The client used. */
  readonly kube: KubeClient;

  /** Creates the ImageSync API over `kube`. */
  constructor(kube: KubeClient) {
    this.kube = kube;
  }

  /**
   * A ListWatcher over one namespace, or all namespaces when `namespace` is undefined; with
   * `labelSelector`, list and watch ask the apiserver for the ImageSyncs it picks only (one that
   * stops matching arrives as DELETED, one that starts matching as ADDED).
   */
  listWatcher(namespace?: string, options: { labelSelector?: string } = {}): ListWatcher<ImageSync> {
    const path = imageSyncPath(namespace);
    const kube = this.kube;
    const labelSelector = options.labelSelector || undefined;
    const list = (signal?: AbortSignal) => this.list(namespace, { signal, labelSelector });
    const scope = namespace ? `${PLURAL} in ${namespace}` : `${PLURAL} in all namespaces`;
    return {
      description: labelSelector ? `${scope} matching ${labelSelector}` : scope,
      list,
      watch(resourceVersion, signal) {
        return kube.watch<ImageSync | KubeStatus>(path, {
          query: {
            labelSelector,
            resourceVersion,
            allowWatchBookmarks: true,
            // client-go spreads watch lifetimes over 5–10 minutes so they don't all end at once
            timeoutSeconds: 300 + Math.floor(Math.random() * 300),
          },
          signal,
        }) as Promise<AsyncGenerator<WatchEvent<ImageSync | KubeStatus>>>;
      },
    };
  }

  /**
   * The ImageSyncs of one namespace (all when undefined), read page by page (`limit` /
   * `continue`, {@linkcode LIST_PAGE_SIZE} a page). With `maxItems`, reading stops once that many
   * were read and `truncated` says so; `keep` reduces each object as its page arrives (so a
   * caller that needs only the spec does not hold `managedFields` and status of thousands).
   */
  async list(
    namespace: string | undefined,
    options: ListOptions = {},
  ): Promise<{ items: ImageSync[]; resourceVersion: string; truncated: boolean }> {
    const path = imageSyncPath(namespace);
    const items: ImageSync[] = [];
    let cont: string | undefined;
    let resourceVersion = "";
    const max = options.maxItems ?? Infinity;
    do {
      const page = await this.kube.request<
        { items?: ImageSync[]; metadata?: { resourceVersion?: string; continue?: string } }
      >("GET", path, {
        query: { labelSelector: options.labelSelector, limit: LIST_PAGE_SIZE, continue: cont },
        signal: options.signal,
      });
      for (const obj of page.items ?? []) {
        if (items.length >= max) return { items, resourceVersion, truncated: true };
        items.push(options.keep ? options.keep(obj) : obj);
      }
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      cont = page.metadata?.continue || undefined;
    } while (cont);
    return { items, resourceVersion, truncated: false };
  }

  /** The ImageSync `namespace/name`, or undefined if it does not exist. */
  async get(
    namespace: string,
    name: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<ImageSync | undefined> {
    return await unlessNotFound(this.kube.request<ImageSync>("GET", imageSyncPath(namespace, name), options));
  }

  /** Removes one annotation with a merge patch (null deletes the key); returns the stored object. */
  removeAnnotation(
    namespace: string,
    name: string,
    options: { annotation: string; signal?: AbortSignal },
  ): Promise<ImageSync> {
    return this.#patchAnnotation(namespace, name, options.annotation, null, options.signal);
  }

  /**
   * Sets one annotation with a merge patch (e.g. sync-now: whichever process owns the
   * ImageSync sees the change through its watch); returns the stored object.
   */
  setAnnotation(
    namespace: string,
    name: string,
    options: { annotation: string; value: string; signal?: AbortSignal },
  ): Promise<ImageSync> {
    return this.#patchAnnotation(namespace, name, options.annotation, options.value, options.signal);
  }

  #patchAnnotation(
    namespace: string,
    name: string,
    annotation: string,
    value: string | null,
    signal?: AbortSignal,
  ): Promise<ImageSync> {
    return this.kube.request<ImageSync>("PATCH", imageSyncPath(namespace, name), {
      body: { metadata: { annotations: { [annotation]: value } } },
      contentType: "application/merge-patch+json",
      signal,
    });
  }

  /** Merge-patches `status` of the object at `resourceVersion` (409 Conflict if it moved on). */
  patchStatus(
    obj: ImageSync,
    status: Partial<ImageSyncStatus>,
    options: { signal?: AbortSignal } = {},
  ): Promise<ImageSync> {
    const md = obj.metadata;
    return this.kube.request<ImageSync>("PATCH", imageSyncPath(md.namespace, md.name, "status"), {
      body: { metadata: { resourceVersion: md.resourceVersion }, status },
      contentType: "application/merge-patch+json",
      signal: options.signal,
    });
  }

  /**
   * Writes the status computed by `build` from the current object; on 409 Conflict reads the
   * object again and rebuilds, so fields like condition transition times are computed against
   * what is stored. Returns the stored object, or undefined if the ImageSync is gone.
   */
  async updateStatus(
    current: ImageSync,
    build: (obj: ImageSync) => Partial<ImageSyncStatus>,
    options: UpdateStatusOptions = {},
  ): Promise<ImageSync | undefined> {
    const retries = options.retries ?? 5;
    let obj = current;
    for (let attempt = 0;; attempt++) {
      try {
        return await this.patchStatus(obj, build(obj), { signal: options.signal });
      } catch (err) {
        if (isKubeReason(err, "NotFound")) return undefined;
        if (!isKubeReason(err, "Conflict") || attempt >= retries) throw err;
        const fresh = await this.get(obj.metadata.namespace!, obj.metadata.name!, { signal: options.signal });
        if (!fresh) return undefined;
        obj = fresh;
      }
    }
  }
}
