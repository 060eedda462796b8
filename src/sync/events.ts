/**
 * What a sync reports as it goes, named as upstream Portager names its Kubernetes Events
 * (TagsResolved, TagResolutionFailed, RepoEnsured, ImageSynced, ImageSkipped, SyncFailed).
 * The controller turns them into (aggregated) Events, the CLI into log lines; each carries a
 * ready-made `message` and whether it is a warning.
 * @module
 */

/** Fields every event has. */
interface EventBase {
  /** Kubernetes Event type: Warning for failures, Normal otherwise. */
  warning: boolean;
  /** One line for humans, in upstream's wording. */
  message: string;
  /** The `images[].name` the event is about (absent for whole-sync events). */
  image?: string;
}

/** Semver resolution picked tags for an image. */
export interface TagsResolvedEvent extends EventBase {
  /** Event reason. */
  type: "TagsResolved";
  /** The image. */
  image: string;
  /** The semver constraint. */
  constraint: string;
  /** Tags kept, newest first. */
  tags: string[];
  /** Matches before the maxTags limit. */
  totalMatches: number;
}

/** Listing tags or parsing the constraint failed for an image. */
export interface TagResolutionFailedEvent extends EventBase {
  /** Event reason. */
  type: "TagResolutionFailed";
  /** The image. */
  image: string;
  /** The semver constraint. */
  constraint: string;
  /** Stable reason of the failure (NotFound, Unauthorized, InvalidSemver, …). */
  reason: string;
}

/** A destination repository was checked and created if missing (createDestinationRepos). */
export interface RepoEnsuredEvent extends EventBase {
  /** Event reason. */
  type: "RepoEnsured";
  /** Repository path under the destination registry. */
  repository: string;
  /** True when it was created now, false when it already existed. */
  created: boolean;
}

/** Fields of the per-tag events. */
interface TagEventBase extends EventBase {
  /** The image. */
  image: string;
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
  bytesMoved: number;
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
}

/** Anything a sync reports. */
export type SyncEvent =
  | TagsResolvedEvent
  | TagResolutionFailedEvent
  | RepoEnsuredEvent
  | ImageSyncedEvent
  | ImageSkippedEvent
  | SyncFailedEvent;

/** Shortens a digest for messages: `sha256:0123456789ab…` → `sha256:01234567`. */
export function shortDigest(digest: string): string {
  const [alg, hex] = digest.split(":", 2);
  return hex && hex.length > 8 ? `${alg}:${hex.slice(0, 8)}` : digest;
}

/** Formats a byte count for messages (`1.5 MB`). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let v = n;
  let i = -1;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}
