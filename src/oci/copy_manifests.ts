/**
 * The manifest side of a copy: what the destination tag should point at (step 1, with the
 * platform filter), the source's manifest tree read by digest under the copier's caps (step 3),
 * and the child manifests pushed deepest first (step 6). The `Copier` runs these steps in
 * order; the blob side is `copy_blobs.ts`.
 * @module
 */

import { sha256Digest } from "./blobs.ts";
import type { FetchedManifest, RegistryClient } from "./client.ts";
import { type Limiter, settleAll } from "./copy_blobs.ts";
import { OciError } from "./errors.ts";
import { type Descriptor, filteredIndexBytes, formatPlatform, selectChildren } from "./manifest.ts";
import { isDockerHub, type Reference } from "./reference.ts";

/** How deep indexes may nest inside an index. */
export const MAX_INDEX_DEPTH = 8;

/** What the destination tag should point at, found in step 1. */
export interface Target {
  /** Digest of the manifest to push under the tag. */
  digest: string;
  /** The source's top manifest, when step 1 already had to read it. */
  root?: FetchedManifest;
  /** The bytes to push under the tag when they differ from the root's (a filtered index). */
  pushBytes?: Uint8Array;
  /** The children to copy (the platform filter's choice). */
  children?: Descriptor[];
  /** Whether a platform filter made a new, smaller index. */
  indexRewritten: boolean;
}

/** A child manifest to push by digest: only what the push needs, not its parsed JSON. */
export interface ChildManifest {
  /** Its digest (it is pushed by digest). */
  digest: string;
  /** Its media type. */
  mediaType: string;
  /** Its bytes, exactly as read. */
  bytes: Uint8Array;
}

/** The source's manifest tree, read in step 3. */
export interface ManifestTree {
  /** The top manifest. */
  root: FetchedManifest;
  /** Bytes pushed under the tag. */
  pushBytes: Uint8Array;
  /** Child manifests by depth (0 = the root's children). */
  levels: ChildManifest[][];
  /** Every blob of the tree, by digest. */
  blobs: Map<string, Descriptor>;
}

/** What the steps of one copy share: the caller's signal plus a sibling abort, and what it holds. */
export interface CopyScope {
  /** Ends the copy's requests: the caller's signal or the sibling abort. */
  signal: AbortSignal;
  /** Aborted when one of the copy's parallel steps failed (or when the copy ends). */
  inner: AbortController;
  /** Manifests read and manifest bytes held by this copy (released when it ends). */
  budget: { manifests: number; bytes: number };
}

/**
 * The caps on the manifests a copier's copies read: per copy in number, per copier in bytes
 * held at once (by the sizes their descriptors declare, counted before they are read).
 */
export class ManifestCaps {
  readonly #maxManifests: number;
  readonly #maxBytes: number;
  /** Manifest bytes the copies of this copier hold right now. */
  #heldBytes = 0;

  /** Caps of `maxManifests` per copy and `maxBytes` held at once over all copies. */
  constructor(opts: { maxManifests: number; maxBytes: number }) {
    this.#maxManifests = opts.maxManifests;
    this.#maxBytes = opts.maxBytes;
  }

  /**
   * Counts manifests against the caps before they are read (by declared size; the read is
   * bounded by it): per copy in number, per copier in bytes held at once. Over a cap the copy
   * fails with ManifestTreeTooLarge.
   */
  spend(src: Reference, budget: CopyScope["budget"], add: { manifests: number; bytes: number }): void {
    const maxManifests = this.#maxManifests;
    const maxBytes = this.#maxBytes;
    budget.manifests += add.manifests;
    const held = this.#heldBytes + add.bytes;
    let over: string | undefined;
    if (budget.manifests > maxManifests) {
      over = `more than ${maxManifests} manifests (the maxManifests limit)`;
    } else if (held > maxBytes) {
      const beside = held > budget.bytes + add.bytes ? " with the copies beside it" : "";
      over = `${held} bytes of manifests to hold${beside}, more than the ${maxBytes} allowed ` +
        "(the maxManifestBytes limit)";
    }
    if (over) {
      throw new OciError("ManifestTreeTooLarge", `source ${src}: the image's manifest tree has ${over}`, {
        registry: src.registry,
        reference: src.toString(),
      });
    }
    this.#heldBytes = held;
    budget.bytes += add.bytes;
  }

  /** Gives back what a copy held, once it ended. */
  release(budget: CopyScope["budget"]): void {
    this.#heldBytes -= budget.bytes;
  }
}

/**
 * Step 1: what should the destination point at? Reads the root only when a platform filter
 * needs it or the tag is likely new at the destination (see `CopyOptions.likelyNew`): then one
 * GET by tag, on a registry whose manifest GETs are unmetered and not Docker Hub; otherwise a
 * HEAD. `known.source` is a digest the caller read a moment ago.
 */
export async function resolveTarget(
  source: RegistryClient,
  src: Reference,
  opts: {
    platforms: string[];
    signal?: AbortSignal;
    likelyNew?: boolean;
    known?: { source: string };
  },
): Promise<Target> {
  const { platforms, signal, known } = opts;
  if (platforms.length > 0) {
    const root = await source.getManifest(known ? src.withDigest(known.source) : src, { signal });
    if (!root.manifest.isIndex) return { digest: root.digest, root, indexRewritten: false };
    const all = root.manifest.manifests;
    const children = selectChildren(all, platforms);
    if (children.length === 0) {
      throw new OciError(
        "NoMatchingPlatform",
        `source ${src} offers ${all.map((m) => formatPlatform(m.platform)).join(", ")}; ` +
          `none matches ${platforms.join(", ")}`,
        { registry: src.registry, reference: src.toString() },
      );
    }
    if (children.length === all.length) {
      return { digest: root.digest, root, children, indexRewritten: false };
    }
    const pushBytes = filteredIndexBytes(root.manifest.json, children);
    return { digest: sha256Digest(pushBytes), root, pushBytes, children, indexRewritten: true };
  }
  if (src.digest) return { digest: src.digest, indexRewritten: false };
  if (known) return { digest: known.source, indexRewritten: false };
  const notFound = () =>
    new OciError(
      "NotFound",
      `registry ${src.registry}: source image ${src} not found`,
      { registry: src.registry, reference: src.toString(), status: 404 },
    );
  if (opts.likelyNew && !isDockerHub(src.registry) && source.pullsUnmetered(src.registry)) {
    try {
      const root = await source.getManifest(src, { signal });
      return { digest: root.digest, root, indexRewritten: false };
    } catch (e) {
      // the same failure as the HEAD's, whichever request found the tag missing
      if (e instanceof OciError && e.reason === "NotFound") throw notFound();
      // a refusal (403, a bad manifest) goes the HEAD's way below, so it is told as before:
      // the tag's digest unreadable, or the copy failed reading the manifest by digest
      if (!(e instanceof OciError) || e.retryable || signal?.aborted) throw e;
    }
  }
  const head = await source.headManifest(src, { signal });
  if (!head) throw notFound();
  return { digest: head.digest, indexRewritten: false };
}

/**
 * Step 3: reads the manifest tree, by digest so a moving tag cannot mix two versions; a level
 * of children at a time (each child once, at the `limiter`), counted against `caps` before it
 * is read, indexes nested at most {@linkcode MAX_INDEX_DEPTH} deep.
 */
export async function readTree(
  source: RegistryClient,
  src: Reference,
  opts: { target: Target; scope: CopyScope; caps: ManifestCaps; limiter: Limiter },
): Promise<ManifestTree> {
  const { target, scope, caps, limiter } = opts;
  const root = target.root ??
    await source.getManifest(src.withDigest(target.digest), { signal: scope.signal });
  const tree: ManifestTree = {
    root,
    pushBytes: target.pushBytes ?? root.bytes,
    levels: [],
    blobs: new Map(),
  };
  for (const b of root.manifest.blobs) tree.blobs.set(b.digest, b);
  caps.spend(src, scope.budget, { manifests: 1, bytes: root.size + (target.pushBytes?.byteLength ?? 0) });
  let children = target.children ?? root.manifest.manifests;
  for (let depth = 0; children.length > 0; depth++) {
    if (depth > MAX_INDEX_DEPTH) {
      throw new OciError(
        "ManifestInvalid",
        `source ${src}: indexes nested more than ${MAX_INDEX_DEPTH} deep`,
        {
          registry: src.registry,
          reference: src.toString(),
        },
      );
    }
    const unique = [...new Map(children.map((c) => [c.digest, c])).values()];
    caps.spend(src, scope.budget, {
      manifests: unique.length,
      bytes: unique.reduce((n, c) => n + c.size, 0),
    });
    const fetched = await settleAll(
      unique.map((c) =>
        limiter.run(
          (slot) =>
            source.getManifest(src.withDigest(c.digest), {
              signal: scope.signal,
              size: c.size,
              duringWait: slot.pause,
            }),
          { signal: scope.signal },
        )
      ),
      scope.inner,
    );
    tree.levels[depth] = fetched.map(({ digest, mediaType, bytes }) => ({ digest, mediaType, bytes }));
    children = [];
    for (const m of fetched) {
      for (const b of m.manifest.blobs) tree.blobs.set(b.digest, b);
      children.push(...m.manifest.manifests);
    }
  }
  return tree;
}

/**
 * Step 6: child manifests, deepest first, by digest, at the `limiter`; one the destination
 * already has (its HEAD) is not written. Returns how many were written.
 */
export async function pushChildren(
  destination: RegistryClient,
  dst: Reference,
  opts: { levels: ChildManifest[][]; scope: CopyScope; limiter: Limiter },
): Promise<number> {
  const { levels, scope, limiter } = opts;
  let pushed = 0;
  for (let depth = levels.length - 1; depth >= 0; depth--) {
    const written = await settleAll(
      levels[depth].map((m) =>
        limiter.run(async (slot) => {
          const ref = dst.withDigest(m.digest);
          const call = { signal: scope.signal, duringWait: slot.pause };
          if (await destination.headManifest(ref, call)) return 0;
          await destination.putManifest(ref, m, call);
          return 1;
        }, { signal: scope.signal })
      ),
      scope.inner,
    );
    pushed += written.reduce((a: number, b) => a + b, 0);
  }
  return pushed;
}
