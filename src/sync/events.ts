/**
 * What a sync reports as it goes, named as upstream Portager names its Kubernetes Events
 * (TagsResolved, TagResolutionFailed, RepoEnsured, ImageSynced, ImageSkipped, SyncFailed).
 * Events are data — references, digests, counts, reasons, the error's own text; the words of
 * an Event, a log line or a CLI line are made from them by `format.ts` ({@linkcode
 * import("./format.ts").eventMessage}), once.
 * @module
 */
import type { FailedStep, GateName, TagResult } from "./result.ts";

/** Fields every event has. */
interface EventBase {
  /** Kubernetes Event type: Warning for failures, Normal otherwise. */
  warning: boolean;
  /** The `images[].name` the event is about. */
  image: string;
}

/** What selected tags from the source's list. */
interface SelectorFields {
  /** The semver constraint ("" when none). */
  constraint: string;
  /** `tagPatterns`, when set. */
  tagPatterns?: string[];
  /** `excludeTagPatterns`, when set. */
  excludeTagPatterns?: string[];
}

/** Semver (or tag pattern) resolution picked tags for an image. */
export interface TagsResolvedEvent extends EventBase, SelectorFields {
  /** Event reason. */
  type: "TagsResolved";
  /** Source repository whose tags were listed. */
  sourceRepository: string;
  /** Tags kept, newest first. */
  tags: string[];
  /** Matches before the maxTags limit. */
  totalMatches: number;
}

/** Listing tags or parsing the constraint or a pattern failed for an image. */
export interface TagResolutionFailedEvent extends EventBase, SelectorFields {
  /** Event reason. */
  type: "TagResolutionFailed";
  /** Source repository whose tags were to be listed. */
  sourceRepository: string;
  /** Stable reason of the failure (NotFound, Unauthorized, InvalidSemver, …). */
  reason: string;
  /** The error's text. */
  error: string;
  /** Tags kept from the previous sync's status instead (may be empty). */
  keptTags: string[];
}

/** A destination repository was checked and created if missing (createDestinationRepos). */
export interface RepoEnsuredEvent extends EventBase {
  /** Event reason. */
  type: "RepoEnsured";
  /** Repository path under the destination registry. */
  repository: string;
  /** The destination registry host. */
  registry: string;
  /** True when it was created now, false when it already existed. */
  created: boolean;
}

/** Fields of the per-tag events. */
interface TagEventBase extends EventBase {
  /** The tag. */
  tag: string;
  /** Source reference (`docker.io/library/nginx:1.27`). */
  source: string;
  /** Destination reference. */
  destination: string;
  /** Whether this is a dry-run plan rather than something done. */
  dryRun: boolean;
}

/** A tag was copied (or, in a dry run, would be). */
export interface ImageSyncedEvent extends TagEventBase {
  /** Event reason. */
  type: "ImageSynced";
  /** Manifest digest now at the destination. */
  digest: string;
  /** Blob bytes moved (planned bytes in a dry run). */
  /** The destination's digest when a platform filter wrote a smaller index. */
  destinationDigest?: string;
  bytesMoved: number;
  /** Blobs streamed (or to stream). */
  blobsCopied: number;
  /** Blobs mounted (or to mount). */
  blobsMounted: number;
  /** Blobs already at the destination. */
  blobsSkipped: number;
}

/** A tag was already up to date at the destination. */
export interface ImageSkippedEvent extends TagEventBase {
  /** Event reason. */
  type: "ImageSkipped";
  /** The digest both sides have. */
  digest: string;
}

/** A tag failed (or, in a dry run, would fail). */
export interface SyncFailedEvent extends TagEventBase {
  /** Event reason. */
  type: "SyncFailed";
  /** Stable reason (NotFound, Unauthorized, DigestMismatch, ValidationUnavailable, …). */
  reason: string;
  /** The error's text. */
  error: string;
  /** Where it failed: reading the source's digest, a gate, or the copy. */
  step?: FailedStep;
  /** The gate that stopped the tag, when one did. */
  failedGate?: GateName;
}

/** The validation gates passed for a tag about to be copied (upstream's ImageVerified). */
export interface ImageVerifiedEvent extends TagEventBase {
  /** Event reason. */
  type: "ImageVerified";
  /** The source digest the gates checked. */
  digest: string;
}

/** A validation gate stopped a tag (upstream's ValidationFailed); the tag was not copied. */
export interface ValidationFailedEvent extends TagEventBase {
  /** Event reason. */
  type: "ValidationFailed";
  /** The gate that failed. */
  gate: GateName;
  /** Upstream's validationError text, e.g. `cosign verification failed: …`. */
  validationError: string;
  /** Vulnerability gate: the findings at or above the threshold. */
  cves?: { id: string; severity: string }[];
}

/** Referrers (and cosign tags) were carried with a tag (`spec.copyReferrers`, ours). */
export interface ReferrersCopiedEvent extends TagEventBase {
  /** Event reason. */
  type: "ReferrersCopied";
  /** The image digest they refer to. */
  digest: string;
  /** How many were copied (would be, in a dry run). */
  copied: number;
  /** Their artifact types. */
  artifactTypes: string[];
  /** Cosign tags copied (`sha256-<hex>.sig`, …). */
  cosignTags: string[];
  /** Their blob bytes. */
  bytesMoved: number;
}

/** `destination.overwrite: never` left a destination tag that points to another digest. */
export interface TagConflictEvent extends TagEventBase {
  /** Event reason. */
  type: "TagConflict";
  /** The source's digest. */
  sourceDigest: string;
  /** The digest the destination tag keeps. */
  destinationDigest: string;
}

/** Anything a sync reports. */
export type SyncEvent =
  | TagConflictEvent
  | ReferrersCopiedEvent
  | ImageVerifiedEvent
  | ValidationFailedEvent
  | TagsResolvedEvent
  | TagResolutionFailedEvent
  | RepoEnsuredEvent
  | ImageSyncedEvent
  | ImageSkippedEvent
  | SyncFailedEvent;

/** The event for a tag whose validation gates passed, before its copy. */
export function verifiedEvent(
  image: string,
  t: Pick<TagResult, "tag" | "source" | "destination" | "sourceDigest">,
  dryRun: boolean,
): ImageVerifiedEvent {
  return {
    type: "ImageVerified",
    warning: false,
    image,
    tag: t.tag,
    source: t.source,
    destination: t.destination,
    dryRun,
    digest: t.sourceDigest ?? "",
  };
}

/**
 * The per-tag event for a finished tag: ImageSynced, ImageSkipped, TagConflict,
 * ValidationFailed or SyncFailed.
 */
export function tagEvent(image: string, t: TagResult, dryRun: boolean): SyncEvent {
  const base = { image, tag: t.tag, source: t.source, destination: t.destination, dryRun };
  switch (t.action) {
    case "failed":
      if (t.reason === "TagConflict" && t.sourceDigest && t.destinationDigest) {
        return {
          type: "TagConflict",
          warning: true,
          ...base,
          sourceDigest: t.sourceDigest,
          destinationDigest: t.destinationDigest,
        };
      }
      if (t.failedGate && t.validationError) {
        return {
          type: "ValidationFailed",
          warning: true,
          ...base,
          gate: t.failedGate,
          validationError: t.validationError,
          ...(t.cves ? { cves: t.cves } : {}),
        };
      }
      return {
        type: "SyncFailed",
        warning: true,
        ...base,
        reason: t.reason ?? "Unknown",
        error: t.error ?? "failed",
        ...(t.failedStep ? { step: t.failedStep } : {}),
        ...(t.failedGate ? { failedGate: t.failedGate } : {}),
      };
    case "up-to-date":
      return { type: "ImageSkipped", warning: false, ...base, digest: t.sourceDigest ?? "" };
    default:
      return {
        type: "ImageSynced",
        warning: false,
        ...base,
        digest: t.sourceDigest ?? "",
        ...(t.destinationDigest ? { destinationDigest: t.destinationDigest } : {}),
        bytesMoved: t.bytesMoved,
        blobsCopied: t.blobsCopied,
        blobsMounted: t.blobsMounted,
        blobsSkipped: t.blobsSkipped,
      };
  }
}
