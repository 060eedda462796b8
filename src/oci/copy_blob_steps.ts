/**
 * Steps 4 and 5 of one copy, the blobs: each blob of the image planned (skip, mount, copy) at
 * the batch's check limit and moved by the batch's {@linkcode BlobMover} as soon as its own
 * check answered, largest first, with progress; then what each turned out to be counted into
 * the copy's result. A dry run plans only. The `Copier` calls these between reading the
 * manifest tree (`copy_manifests.ts`) and pushing the manifests.
 * @module
 */

import {
  type BlobMover,
  type BlobPlan,
  type Limiter,
  type Outcome,
  type PlannedBlob,
  settleAll,
} from "./copy_blobs.ts";
import type { Descriptor } from "./manifest.ts";
import type { Reference } from "./reference.ts";

/** A progress report: bytes moved so far for one copy. */
export interface CopyProgress {
  /** The destination reference being written. */
  ref: string;
  /** Blob bytes moved so far by this copy (drops back if a blob upload restarts). */
  bytes: number;
  /**
   * Bytes this copy plans to move (blobs neither present nor mountable); absent until every
   * blob of the copy was checked (transfers start as their own checks answer).
   */
  totalBytes?: number;
  /** The blob the latest bytes belong to. */
  digest?: string;
}

/** What a batch's blob steps share: its blob mover and the limit on its blob checks. */
export interface BlobBatch {
  /** Plans and moves the batch's blobs (a blob moves once per batch). */
  mover: BlobMover;
  /** Bounds the batch's blob existence checks (HEADs), apart from its transfers. */
  checks: Limiter;
}

/** What one copy's blobs came to: the blob fields of the copy's result, filled in place. */
export interface BlobTally {
  /** Blob bytes streamed (planned bytes for a dry run). */
  bytesMoved: number;
  /** Blobs streamed. */
  blobsCopied: number;
  /** Blobs mounted. */
  blobsMounted: number;
  /** Blobs already present (or moved by another copy of the batch). */
  blobsSkipped: number;
  /** Per-blob plan/outcome, one entry per blob of {@linkcode CopyBlobs.blobs}. */
  blobs: BlobPlan[];
}

/** The blobs of one copy, as its blob steps take them. */
export interface CopyBlobs {
  /** The source image. */
  src: Reference;
  /** The destination it is copied to. */
  dst: Reference;
  /** Every blob of the image's tree, in the order the result lists them. */
  blobs: Descriptor[];
  /**
   * The destination said the repository does not exist (a probe answered 404 NAME_UNKNOWN):
   * blobs below `NEW_REPOSITORY_CHECK_MIN_SIZE` are not checked there.
   */
  newRepository: boolean;
  /** Ends the copy's requests. */
  signal: AbortSignal;
  /** Aborted when one blob's step failed, so its siblings stop. */
  inner: AbortController;
  /** Where the counts and per-blob plans go (the copy's result). */
  tally: BlobTally;
}

/**
 * Step 4 of a dry run: decides what to do with every blob, reading only (HEADs, at the check
 * limit; none for most blobs of a new repository, as in {@linkcode copyBlobs}), and counts the
 * plans into the tally.
 */
export async function planBlobs(batch: BlobBatch, work: CopyBlobs): Promise<void> {
  const { src, dst, tally } = work;
  const plans = await settleAll(
    work.blobs.map((d) =>
      batch.checks.run(() => batch.mover.plan(src, dst, d, true, work.signal, work.newRepository), {
        signal: work.signal,
      })
    ),
    work.inner,
  );
  plans.forEach((p, i) => {
    tally.blobs[i] = planEntry(p);
    if (p.action === "copy") {
      tally.blobsCopied++;
      tally.bytesMoved += p.size;
    } else if (p.action === "mount") tally.blobsMounted++;
    else tally.blobsSkipped++;
  });
}

/**
 * Steps 4 and 5: checks every blob at the destination (HEADs, at the check limit) and starts
 * each one's transfer as soon as its own check answered, not once all have; then counts what
 * each turned out to be. Largest first: checks go out in that order and transfers queue as
 * checks answer, so the blobs that take longest start first and a small one (the config)
 * does not hold a transfer slot while a large one waits (the copy ends when its last
 * transfer does). Progress carries `totalBytes` once every blob is planned. In a repository
 * the destination said does not exist (`newRepository`: a likely-new tag's probe answered
 * 404 NAME_UNKNOWN) blobs below NEW_REPOSITORY_CHECK_MIN_SIZE are not checked: one request
 * per blob and the round trips before the uploads less (B1 in docs/PERFORMANCE.md). The
 * `unchecked` blob is copied without a check.
 */
export async function copyBlobs(
  batch: BlobBatch,
  work: CopyBlobs & { ref: string; unchecked?: string; onProgress?: (e: CopyProgress) => void },
): Promise<void> {
  const { src, dst, blobs, tally } = work;
  let moved = 0;
  let unplanned = blobs.length;
  let planBytes = 0;
  let totalBytes: number | undefined;
  const progress = (digest: string, n: number) => {
    moved += n;
    try {
      work.onProgress?.({ ref: work.ref, bytes: moved, totalBytes, digest });
    } catch {
      // A progress display must never break a copy.
    }
  };
  const order = blobs.map((_, i) => i).sort((a, b) => blobs[b].size - blobs[a].size || a - b);
  const outcomes = new Array<Outcome | "skip">(blobs.length);
  await settleAll(
    order.map(async (i) => {
      const d = blobs[i];
      const p: PlannedBlob = d.digest === work.unchecked
        ? { digest: d.digest, size: d.size, descriptor: d, action: "copy" }
        : await batch.checks.run(
          () => batch.mover.plan(src, dst, d, false, work.signal, work.newRepository),
          { signal: work.signal },
        );
      tally.blobs[i] = planEntry(p);
      if (p.action === "copy") planBytes += p.size;
      if (--unplanned === 0) totalBytes = planBytes;
      outcomes[i] = await batch.mover.execute({
        src,
        dst,
        p,
        signal: work.signal,
        progress,
        onFallbackCopy: () => {
          planBytes += p.size;
          if (totalBytes !== undefined) totalBytes += p.size;
        },
      });
    }),
    work.inner,
  );
  outcomes.forEach((o, i) => {
    const entry = tally.blobs[i];
    if (o === "copied") {
      tally.blobsCopied++;
      tally.bytesMoved += entry.size;
      entry.action = "copy";
      delete entry.from;
    } else if (o === "mounted") {
      tally.blobsMounted++;
    } else {
      tally.blobsSkipped++;
      entry.action = "skip";
      delete entry.from;
    }
  });
}

/** A plan as the result lists it. */
function planEntry({ digest, size, action, from }: PlannedBlob): BlobPlan {
  return from === undefined ? { digest, size, action } : { digest, size, action, from };
}
