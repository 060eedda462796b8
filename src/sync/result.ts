/**
 * What a sync reports: per-tag and per-image results and the whole report, as data (reasons,
 * references, digests, counts, gates). No sentence is made here; `format.ts` makes the words.
 * @module
 */

/** What happened (or, in a dry run, would happen) to one tag. */
export type TagAction = "copied" | "up-to-date" | "would-copy" | "failed";

/** Where a tag failed: reading the source's digest, a validation gate, or the copy itself. */
export type FailedStep = "source-digest" | "gate" | "copy";

/** A validation gate, by the name its metric label uses. */
export type GateName = "cosign" | "vulnerability" | "sbom";

/** A failure: a stable reason and the error's own text (not a sentence about the tag). */
export interface Failure {
  /** Stable reason: NotFound, Unauthorized, InvalidSemver, RepoCreationFailed, … */
  reason: string;
  /** The error's message. */
  message: string;
}

/** The result of one tag. */
export interface TagResult {
  /** The tag. */
  tag: string;
  /** True when the destination has the tag at the source's digest (copied or up to date). */
  synced: boolean;
  /** What happened. */
  action: TagAction;
  /** Source manifest digest, when known. */
  sourceDigest?: string;
  /** Destination manifest digest when it is not the source's (a platform filter's smaller index). */
  destinationDigest?: string;
  /** The error's text, when it failed (or would fail). */
  error?: string;
  /** Stable failure reason: NotFound, Unauthorized, DigestMismatch, ValidationUnavailable, Aborted, … */
  reason?: string;
  /** Where it failed (absent when it did not, or failed before it ran). */
  failedStep?: FailedStep;
  /** Source reference. */
  source: string;
  /** Destination reference. */
  destination: string;
  /** Blob bytes moved (planned in a dry run). */
  bytesMoved: number;
  /** Blobs streamed (or to stream). */
  blobsCopied: number;
  /** Blobs mounted from another repository (or to mount). */
  blobsMounted: number;
  /** Blobs already present. */
  blobsSkipped: number;
  /** When the tag was checked or copied (ISO 8601), absent for tags not attempted. */
  lastSyncTime?: string;
  /** Whether the validation gates passed (only set when a gate is enabled). */
  verified?: boolean;
  /** The enabled gates this tag went through (only set when a gate is enabled). */
  gates?: GateName[];
  /** The gate that stopped the tag. */
  failedGate?: GateName;
  /** Why that gate stopped it. */
  validationError?: string;
  /** Vulnerability gate: the findings at or above the threshold that stopped the tag. */
  cves?: { id: string; severity: string }[];
  /** `spec.copyReferrers`: referrers and cosign tags carried (planned, in a dry run) with the tag. */
  referrers?: {
    /** Copied (or to copy) now. */
    copied: number;
    /** Already at the destination. */
    upToDate: number;
    /** Their blob bytes (included in `bytesMoved`). */
    bytesMoved: number;
    /** Fallback tags written at a destination without the referrers API. */
    fallbackTags?: string[];
  };
}

/** What selects an image's tags from the source's tag list, and what it selected. */
export interface TagSelection {
  /** The semver constraint ("" when none). */
  constraint: string;
  /** `tagPatterns`, when set. */
  tagPatterns?: string[];
  /** `excludeTagPatterns`, when set. */
  excludeTagPatterns?: string[];
  /** Matches kept. */
  matched: string[];
  /** Set when listing tags (or a constraint or pattern) failed; `matched` then comes from `previous`. */
  error?: Failure;
}

/** The result of one image (one `images[]` entry). */
export interface ImageResult {
  /** `images[].name`. */
  name: string;
  /** Source repository, e.g. `docker.io/library/nginx`. */
  sourceRepository: string;
  /** Destination repository, e.g. `registry.example.com/mirror/nginx`. */
  destinationRepository: string;
  /** Per-tag results in resolution order (explicit tags, then matches newest first). */
  tags: TagResult[];
  /** Tags selected from the source's list, when the image has semver or tagPatterns. */
  selection?: TagSelection;
  /** Set when the destination repository could not be created (all tags then fail). */
  repositoryError?: Failure;
}

/** The outcome of a whole sync. */
export interface SyncReport {
  /** Per-image results, in spec order. */
  images: ImageResult[];
  /** Tags considered (upstream's totalImages: image+tag combinations). */
  totalImages: number;
  /** Tags copied or already up to date. */
  syncedImages: number;
  /**
   * Failures as upstream counts them: tags that failed (would fail, in a dry run) plus images
   * whose semver tags could not be resolved.
   */
  failedImages: number;
  /** Tags copied (would be copied, in a dry run). */
  copiedImages: number;
  /** Tags already up to date. */
  upToDateImages: number;
  /** Images whose semver / pattern tags could not be resolved. */
  resolutionFailures: number;
  /** Blob bytes moved (planned, in a dry run). */
  bytesMoved: number;
  /** Blobs streamed. */
  blobsCopied: number;
  /** Blobs mounted. */
  blobsMounted: number;
  /** Blobs already present. */
  blobsSkipped: number;
  /** True when nothing failed (no tag, no semver resolution) and the sync ran to its end: Ready=True. */
  ok: boolean;
  /** Whether this was a dry run. */
  dryRun: boolean;
  /** Whether `signal` stopped the sync before every tag was attempted. */
  aborted: boolean;
  /** When the sync started (ISO 8601). */
  startedAt: string;
  /** When it finished (ISO 8601). */
  finishedAt: string;
}

/** A tag not yet attempted, between `source` and `destination` (references with the tag). */
export function pendingTag(tag: string, refs: { source: string; destination: string }): TagResult {
  return {
    tag,
    synced: false,
    action: "failed",
    source: refs.source,
    destination: refs.destination,
    bytesMoved: 0,
    blobsCopied: 0,
    blobsMounted: 0,
    blobsSkipped: 0,
  };
}

/** A tag that failed with `failure`. */
export function failedTag(
  tag: string,
  refs: { source: string; destination: string },
  failure: Failure,
): TagResult {
  return { ...pendingTag(tag, refs), reason: failure.reason, error: failure.message };
}

/** The stable reason of an error (its `reason` field), or `fallback`. */
export function reasonOf(e: unknown, fallback = "Unknown"): string {
  const r = (e as { reason?: unknown })?.reason;
  return typeof r === "string" && r !== "" ? r : fallback;
}

/** An error as a {@linkcode Failure}. */
export function failureOf(e: unknown, fallback = "Unknown"): Failure {
  return { reason: reasonOf(e, fallback), message: e instanceof Error ? e.message : String(e) };
}

/** Facts of the whole run that the per-image results do not hold. */
export interface RunFacts {
  /** Whether this was a dry run. */
  dryRun: boolean;
  /** Whether the sync was stopped before every tag was attempted. */
  aborted: boolean;
  /** When it started (ISO 8601). */
  startedAt: string;
  /** When it finished (ISO 8601). */
  finishedAt: string;
}

/** Adds up the per-image results into the report. */
export function summarize(images: ImageResult[], facts: RunFacts): SyncReport {
  const tags = images.flatMap((i) => i.tags);
  const sum = (f: (t: TagResult) => number) => tags.reduce((n, t) => n + f(t), 0);
  const count = (f: (t: TagResult) => boolean) => tags.filter(f).length;
  const resolutionFailures = images.filter((i) => i.selection?.error).length;
  // upstream counts an image whose tags cannot be resolved as one failure
  const failedImages = count((t) => t.action === "failed") + resolutionFailures;
  return {
    images,
    totalImages: tags.length,
    syncedImages: count((t) => t.synced),
    failedImages,
    copiedImages: count((t) => t.action === "copied" || t.action === "would-copy"),
    upToDateImages: count((t) => t.action === "up-to-date"),
    resolutionFailures,
    bytesMoved: sum((t) => t.bytesMoved),
    blobsCopied: sum((t) => t.blobsCopied),
    blobsMounted: sum((t) => t.blobsMounted),
    blobsSkipped: sum((t) => t.blobsSkipped),
    ok: failedImages === 0 && !facts.aborted,
    ...facts,
  };
}

/**
 * The Ready condition's reason after a sync: SyncSucceeded; RepoCreationFailed when a
 * destination repository could not be created (upstream's alert key); TagConflict when every
 * failure is a tag `destination.overwrite: never` left; else SyncFailed.
 */
export function readyReason(
  report: SyncReport,
): "SyncSucceeded" | "SyncFailed" | "RepoCreationFailed" | "TagConflict" {
  if (report.ok) return "SyncSucceeded";
  if (report.images.some((i) => i.repositoryError?.reason === "RepoCreationFailed")) {
    return "RepoCreationFailed";
  }
  const failed = report.images.flatMap((i) => i.tags.filter((t) => t.action === "failed"));
  const conflictsOnly = failed.length > 0 && failed.every((t) => t.reason === "TagConflict") &&
    report.resolutionFailures === 0 && !report.aborted;
  return conflictsOnly ? "TagConflict" : "SyncFailed";
}
