/**
 * The platform manifests of an index whose referrers travel with it: `cosign sign --recursive`
 * signs every child of a multi-arch index, `oras attach` can attach to one platform's manifest,
 * and a user verifying that platform's image at the destination needs those referrers there.
 *
 * {@linkcode referrerChildren} names the children to look at — the ones a platform filter keeps,
 * at most {@linkcode DEFAULT_MAX_REFERRER_CHILDREN} — reading the index once per digest when the
 * caller keeps a {@linkcode ReferrerChildrenCache} (an index's bytes never change under its
 * digest, so neither do its children).
 * @module
 */

import type { CallOptions, RegistryClient } from "./client.ts";
import { OciError } from "./errors.ts";
import { selectChildren } from "./manifest.ts";
import type { Reference } from "./reference.ts";
import { subjectOf } from "./referrers_list.ts";

/** Default most children of one index whose referrers are looked at; more is an error. */
export const DEFAULT_MAX_REFERRER_CHILDREN = 64;
/** Default entries of a {@linkcode ReferrerChildrenCache}. */
export const DEFAULT_CHILDREN_CACHE_ENTRIES = 2048;

/**
 * Children of indexes by digest and platform filter, least recently used dropped first. Keys
 * are content digests, so an entry holds for any registry and any later sync; each entry is at
 * most the children bound's digests (an image manifest's is empty).
 */
export class ReferrerChildrenCache {
  readonly #entries = new Map<string, readonly string[]>();
  readonly #max: number;

  /** A cache of at most `maxEntries` indexes (default {@linkcode DEFAULT_CHILDREN_CACHE_ENTRIES}). */
  constructor(maxEntries = DEFAULT_CHILDREN_CACHE_ENTRIES) {
    this.#max = Math.max(0, Math.floor(maxEntries));
  }

  /** The children recorded for `key`, refreshed as most recently used. */
  get(key: string): readonly string[] | undefined {
    const hit = this.#entries.get(key);
    if (hit === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, hit);
    return hit;
  }

  /** Records `children` for `key`, dropping the least recently used entry when full. */
  set(key: string, children: readonly string[]): void {
    if (this.#max === 0) return;
    this.#entries.delete(key);
    this.#entries.set(key, children);
    if (this.#entries.size > this.#max) this.#entries.delete(this.#entries.keys().next().value!);
  }

  /** Entries held. */
  get size(): number {
    return this.#entries.size;
  }
}

/** Options for {@linkcode referrerChildren}. */
export interface ReferrerChildrenOptions extends CallOptions {
  /** The platform filter the image was copied with: only the children it keeps. */
  platforms?: readonly string[];
  /** Most children looked at (default {@linkcode DEFAULT_MAX_REFERRER_CHILDREN}); more is an error. */
  maxChildren?: number;
  /** Answers already known by digest; the index is read only on a miss. */
  cache?: ReferrerChildrenCache;
}

/**
 * The digests of the children of the index at `image` (pinned by digest) that a copy with
 * `platforms` keeps, in index order; none for an image manifest. Reads the manifest (digest
 * verified, at most 4 MiB) unless the cache knows it. An index with more children to look at
 * than `maxChildren` gets a `ManifestTreeTooLarge` error naming the way out (a platform filter).
 */
export async function referrerChildren(
  client: RegistryClient,
  image: Reference,
  opts: ReferrerChildrenOptions = {},
): Promise<readonly string[]> {
  const digest = subjectOf(image);
  const platforms = opts.platforms ?? [];
  const max = opts.maxChildren ?? DEFAULT_MAX_REFERRER_CHILDREN;
  const key = `${digest} ${[...platforms].sort().join(",")}`;
  const known = opts.cache?.get(key);
  if (known) return known;
  const got = await client.getManifest(image, { signal: opts.signal });
  const children = got.manifest.isIndex ? selectChildren(got.manifest.manifests, platforms) : [];
  if (children.length > max) {
    throw new OciError(
      "ManifestTreeTooLarge",
      `registry ${image.registry}: ${image} lists ${children.length} platform manifests; the referrers of at ` +
        `most ${max} are carried — narrow images[].platforms to the platforms you need`,
      { registry: image.registry, reference: image.toString() },
    );
  }
  const digests = children.map((c) => c.digest);
  opts.cache?.set(key, digests);
  return digests;
}
