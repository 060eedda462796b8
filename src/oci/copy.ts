/**
 * The copier: copies an image or a whole index from one repository to another, blobs first,
 * then child manifests, then the tagged manifest last, so a tag never points to an incomplete
 * image. One {@linkcode Copier} is one batch: a blob needed by several copies is moved once.
 *
 * Platform filter: when `platforms` is set and the source is an index, only the matching
 * children are copied and a new index listing just those children (every other field kept)
 * is pushed under the tag; its digest then differs from the source's. When every child
 * matches, the source index is pushed unchanged. A single-image source is copied as is.
 *
 * This module orchestrates the steps of a copy and holds a batch's state: the manifests' steps
 * (target, tree, child pushes) are in `copy_manifests.ts`, the blobs' steps of one copy in
 * `copy_blob_steps.ts`, and the batch's blob plans and transfers in `copy_blobs.ts`.
 * @module
 */

import type { ManifestHead, RegistryClient } from "./client.ts";
import { OciError } from "./errors.ts";
import type { Reference } from "./reference.ts";
import type { RetryPolicy } from "./retry.ts";
import { isDeadline } from "./send.ts";
import {
  type BlobBatch,
  type CopyBlobs,
  copyBlobs,
  type CopyProgress,
  planBlobs,
} from "./copy_blob_steps.ts";
import { BlobMover, type BlobPlan, Limiter } from "./copy_blobs.ts";
import {
  type CopyScope,
  ManifestCaps,
  type ManifestTree,
  pushChildren,
  readTree,
  resolveTarget,
  type Target,
} from "./copy_manifests.ts";

export {
  type BlobPlan,
  Limiter,
  type LimiterOptions,
  type LimiterRunOptions,
  type LimiterSlot,
} from "./copy_blobs.ts";
export type { CopyProgress } from "./copy_blob_steps.ts";

/** Blob and manifest transfers in flight at once per batch, unless {@linkcode CopierOptions.concurrency} says otherwise. */
export const DEFAULT_CONCURRENCY = 4;
/**
 * Blob and manifest transfers in flight at once over every sync of a long-running process
 * (`portager run`, `portager serve`), unless configured otherwise: 8, the two syncs of the
 * default `--max-concurrent-syncs` times {@linkcode DEFAULT_CONCURRENCY}, so the defaults move
 * exactly what they did before the budget. More syncs at once then add the latency-bound work
 * (tag and blob checks, manifest reads) but not the transfers, whose buffers are the memory.
 * Shared as a {@linkcode Limiter} given to each copier as {@linkcode CopierOptions.budget}.
 */
export const DEFAULT_MAX_TRANSFERS = 8;
/**
 * Blob existence checks (HEADs) in flight at once per batch, unless
 * {@linkcode CopierOptions.checkConcurrency} says otherwise (16, as for tags' manifest checks
 * in a sync). A check moves no bytes and costs one round trip: behind the transfer limit, the
 * checks of an image with 40 blobs took 10 round trips before the first byte moved (B1 in
 * docs/PERFORMANCE.md).
 */
export const DEFAULT_CHECK_CONCURRENCY = 16;
/**
 * Manifests one copy may read (the tagged one and every child, 1000): real multi-arch images
 * with attestations have a few dozen.
 */
export const DEFAULT_MAX_MANIFESTS = 1000;
/**
 * Manifest bytes one {@linkcode Copier} (one sync) may hold in memory at once, over the copies
 * it runs side by side (8 MiB, by the sizes their descriptors declare; twice the largest
 * manifest accepted). Real image trees take kilobytes; a crafted index of large children must
 * not take the operator's memory (the chart's limit is 128 MiB; parsing costs about four
 * times the bytes).
 */
export const DEFAULT_MAX_MANIFEST_BYTES = 8 * 1024 * 1024;

/** Options for {@linkcode Copier}. */
export interface CopierOptions {
  /** Blob and manifest transfers in flight at once, across all copies of this batch (default {@linkcode DEFAULT_CONCURRENCY}). */
  concurrency?: number;
  /**
   * A limiter shared by several copiers (the process's transfer budget, e.g.
   * `new Limiter(DEFAULT_MAX_TRANSFERS)`): each blob or manifest transfer of this batch holds
   * one of its slots too, so all the copiers sharing it never run more transfers at once than
   * its size, whatever their own `concurrency`. A cancelled copy leaves its queue.
   */
  budget?: Limiter;
  /** Blob existence checks (HEADs) in flight at once, across all copies of this batch (default {@linkcode DEFAULT_CHECK_CONCURRENCY}). */
  checkConcurrency?: number;
  /** How blob transfers are restarted after a retryable failure (default: the destination client's policy). */
  retry?: RetryPolicy;
  /** Manifests one copy may read, the tagged one included (default {@linkcode DEFAULT_MAX_MANIFESTS}). */
  maxManifests?: number;
  /** Manifest bytes this copier may hold at once over its copies (default {@linkcode DEFAULT_MAX_MANIFEST_BYTES}). */
  maxManifestBytes?: number;
  /** Copy only these platforms of an index ("linux/amd64", "linux/arm64/v8"); see the module doc. */
  platforms?: string[];
  /** Called as blob bytes move. */
  onProgress?: (e: CopyProgress) => void;
}

/** Per-copy options. */
export interface CopyOptions {
  /** Plan only: read source and destination, write nothing. */
  dryRun?: boolean;
  /** Cancels the copy. */
  signal?: AbortSignal;
  /**
   * The caller has no record of this tag at the destination, so it is most likely absent
   * there: the source manifest is read with one GET by tag (its digest hashed from the bytes)
   * beside the destination HEAD, not a HEAD and then a GET by digest — one request and one
   * round trip less for a new tag, the same count (a manifest body more) when the destination
   * turns out to have it. Only for a source whose manifest GETs announced no rate limit so far
   * ({@linkcode RegistryClient.pullsUnmetered}), never for Docker Hub: where a GET counts as
   * a pull and a HEAD does not, the HEAD first is what keeps the budget.
   */
  likelyNew?: boolean;
  /**
   * Digests the caller read a moment ago (HEADs of both tags, e.g. for `overwrite: never` or
   * before validation gates): the copy does not ask again and copies exactly `source`.
   * `destination` undefined means the destination tag is absent.
   */
  known?: { source: string; destination?: string };
}

/** The outcome of one copy. */
export interface CopyResult {
  /** Digest of the manifest the destination tag now points to (or would). */
  digest: string;
  /** Its media type. */
  mediaType: string;
  /** Blob bytes streamed from source to destination (planned bytes for a dry run). */
  bytesMoved: number;
  /** Blobs streamed. */
  blobsCopied: number;
  /** Blobs mounted from another repository of the destination registry. */
  blobsMounted: number;
  /** Blobs already present (or moved by another copy of this batch). */
  blobsSkipped: number;
  /** The destination already had this digest under the tag: nothing was read or written. */
  upToDate: boolean;
  /** Whether this was a dry run. */
  dryRun: boolean;
  /** Manifests written (children and the tagged one). */
  manifestsPushed: number;
  /** True when a platform filter made the copier write a new, smaller index. */
  indexRewritten: boolean;
  /** Per-blob plan/outcome. */
  blobs: BlobPlan[];
}

/**
 * Copies images between registries. Give one client (used for both sides) or a source and a
 * destination client (different credentials). Reuse one instance for a batch of copies so
 * shared blobs move once; concurrent `copy` calls are fine.
 */
export class Copier {
  readonly #source: RegistryClient;
  readonly #destination: RegistryClient;
  readonly #opts: CopierOptions;
  /** Bounds the blob and manifest transfers of this batch. */
  readonly #limiter: Limiter;
  /**
   * The batch's blob plans and transfers (a blob moves once per batch) and the limit on its
   * blob existence checks, apart from the transfers.
   */
  readonly #batch: BlobBatch;
  /** The caps on the manifests this batch's copies read and hold. */
  readonly #caps: ManifestCaps;
  /**
   * Destination repositories (`registry/repository`) this batch need not ask about again: one
   * had a tag, or answered the repository probe with anything but "unknown". Only that fact is
   * kept: "does not exist" holds until the batch's first write there, so it is asked per copy.
   */
  readonly #existing = new Set<string>();

  /** Creates a copier for one batch. */
  constructor(
    clients: RegistryClient | { source: RegistryClient; destination: RegistryClient },
    opts: CopierOptions = {},
  ) {
    if ("source" in clients) {
      this.#source = clients.source;
      this.#destination = clients.destination;
    } else {
      this.#source = clients;
      this.#destination = clients;
    }
    this.#opts = opts;
    this.#limiter = new Limiter(opts.concurrency ?? DEFAULT_CONCURRENCY, { parent: opts.budget });
    this.#caps = new ManifestCaps({
      maxManifests: opts.maxManifests ?? DEFAULT_MAX_MANIFESTS,
      maxBytes: opts.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES,
    });
    this.#batch = {
      mover: new BlobMover({ source: this.#source, destination: this.#destination }, {
        retry: opts.retry ?? this.#destination.retry,
        limiter: this.#limiter,
      }),
      checks: new Limiter(opts.checkConcurrency ?? DEFAULT_CHECK_CONCURRENCY),
    };
  }

  /**
   * Copies `src` (tag or digest) to `dst` (tag, or digest-only), preserving digests. If the
   * destination already points at the source digest, returns `upToDate` having read no blob.
   */
  async copy(src: Reference, dst: Reference, opts: CopyOptions = {}): Promise<CopyResult> {
    const dryRun = opts.dryRun ?? false;
    // A tag's destination HEAD does not depend on the source: ask both sides at once (one
    // round trip for an unchanged tag, not two; B2L in docs/PERFORMANCE.md). Cancelled when
    // the source cannot be resolved.
    const early = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, early.signal]) : early.signal;
    const known = opts.known;
    const dstHead = dst.tag === undefined
      ? undefined
      : known
      ? Promise.resolve(known.destination ? { digest: known.destination, mediaType: "", size: 0 } : undefined)
      : this.#destination.headManifest(dst.withTag(dst.tag), { signal });
    dstHead?.catch(() => {}); // awaited below; a rejection before then is not unhandled
    // A tag absent at the destination may be its repository's first: ask whether the
    // repository exists at all; if not, no blob can be there to check (see copyBlobs). A
    // likely-new tag asks in the first round trip, beside the HEADs (its source manifest is
    // read by then, so a later probe would be a round trip more); others once the HEAD says the
    // tag is absent, beside the reading of the source's manifests.
    const repository = `${dst.registry}/${dst.repository}`;
    const mayProbe = dst.tag !== undefined && !this.#existing.has(repository);
    const probeRepository = () =>
      this.#destination.repositoryUnknown(dst, { signal }).then((unknown) => {
        if (!unknown) this.#existing.add(repository);
        return unknown;
      }).catch(() => false);
    const probe = opts.likelyNew && mayProbe ? probeRepository() : undefined;
    let target: Target;
    try {
      target = await resolveTarget(this.#source, src, {
        platforms: this.#opts.platforms ?? [],
        signal: opts.signal,
        likelyNew: opts.likelyNew,
        known,
      });
    } catch (err) {
      early.abort();
      throw err;
    }
    if (dst.digest && dst.digest !== target.digest) {
      early.abort();
      throw new OciError(
        "InvalidReference",
        `destination ${dst} pins digest ${dst.digest} but the source ${src} is ${target.digest}`,
        { reference: dst.toString() },
      );
    }
    const pushRef = dst.tag !== undefined ? dst.withTag(dst.tag) : dst.withDigest(target.digest);
    const current = await (dstHead ?? this.#destination.headManifest(pushRef, { signal: opts.signal }));
    const upToDate = this.#upToDate(target, dryRun, current);
    if (upToDate) {
      early.abort(); // the probe, if still out
      return upToDate;
    }
    // a tag there (at another digest) means the repository is
    if (current !== undefined) this.#existing.add(repository);
    const newRepository = current === undefined && mayProbe
      ? probe ?? probeRepository()
      : Promise.resolve(false);

    const inner = new AbortController();
    const scope: CopyScope = {
      signal: opts.signal ? AbortSignal.any([opts.signal, inner.signal]) : inner.signal,
      inner,
      budget: { manifests: 0, bytes: 0 },
    };
    try {
      const tree = await readTree(this.#source, src, {
        target,
        scope,
        caps: this.#caps,
        limiter: this.#limiter,
      });
      const blobs = [...tree.blobs.values()];
      const result: CopyResult = {
        digest: target.digest,
        mediaType: tree.root.mediaType,
        bytesMoved: 0,
        blobsCopied: 0,
        blobsMounted: 0,
        blobsSkipped: 0,
        upToDate: false,
        dryRun,
        manifestsPushed: 0,
        indexRewritten: target.indexRewritten,
        blobs: blobs.map(({ digest, size }) => ({ digest, size, action: "copy" })),
      };
      const work: CopyBlobs = {
        src,
        dst,
        blobs,
        newRepository: await newRepository,
        signal: scope.signal,
        inner: scope.inner,
        tally: result,
      };
      if (dryRun) {
        await planBlobs(this.#batch, work);
        return result;
      }
      // the destination tag is absent or elsewhere, so the image is new there and so, almost
      // always, is its config blob: no destination check before its upload (one request and
      // one round trip of that blob less; a tag added to an image already there uploads its
      // small config again). Same-registry copies keep the check, which can lead to a mount.
      const config = !tree.root.manifest.isIndex && src.registry !== dst.registry
        ? tree.root.manifest.blobs[0]?.digest
        : undefined;
      await copyBlobs(this.#batch, {
        ...work,
        ref: pushRef.toString(),
        unchecked: config,
        onProgress: (e) => this.#opts.onProgress?.(e),
      });
      this.#existing.add(repository); // blobs are there now (a registry may still say unknown)
      result.manifestsPushed += await pushChildren(this.#destination, dst, {
        levels: tree.levels,
        scope,
        limiter: this.#limiter,
      });
      await this.#pushTag(pushRef, tree, scope.signal);
      result.manifestsPushed++;
      return result;
    } catch (e) {
      throw cancelled(e, { src, dst, signal: opts.signal });
    } finally {
      inner.abort();
      early.abort();
      this.#caps.release(scope.budget);
    }
  }

  /** Step 2: the result when the destination (`current`, its HEAD) already points at the target. */
  #upToDate(target: Target, dryRun: boolean, current?: ManifestHead): CopyResult | undefined {
    if (current?.digest !== target.digest) return undefined;
    return {
      digest: target.digest,
      mediaType: current.mediaType || target.root?.mediaType || "",
      bytesMoved: 0,
      blobsCopied: 0,
      blobsMounted: 0,
      blobsSkipped: 0,
      upToDate: true,
      dryRun,
      manifestsPushed: 0,
      indexRewritten: target.indexRewritten,
      blobs: [],
    };
  }

  /** Step 7: the tagged manifest, last, so the tag never points to an incomplete image. */
  async #pushTag(pushRef: Reference, tree: ManifestTree, signal: AbortSignal): Promise<void> {
    await this.#destination.putManifest(pushRef, { bytes: tree.pushBytes, mediaType: tree.root.mediaType }, {
      signal,
    });
  }
}

/**
 * The error a copy ends in when its caller's signal stopped it mid-way (a wait, not a request,
 * was interrupted): Timeout for a deadline (`AbortSignal.timeout`), Aborted otherwise. Other
 * errors pass unchanged.
 */
function cancelled(e: unknown, ctx: { src: Reference; dst: Reference; signal?: AbortSignal }): unknown {
  if (e instanceof OciError || !ctx.signal?.aborted || e !== ctx.signal.reason) return e;
  const deadline = isDeadline(e);
  return new OciError(
    deadline ? "Timeout" : "Aborted",
    `copy of ${ctx.src} to ${ctx.dst} ${deadline ? "stopped: the deadline passed" : "was cancelled"}`,
    { registry: ctx.src.registry, reference: ctx.src.toString(), cause: e },
  );
}
