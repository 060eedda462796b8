/**
 * The words of a sync, made once: Event messages, the Ready condition's message, log and CLI
 * text all come from the data of `result.ts` and `events.ts` through these functions, so a
 * digest or a byte count reads the same everywhere (8 hex digits as upstream, binary units).
 *
 * Event messages begin with upstream Portager v0.5's wording (scripts and alerts match on it);
 * our extra detail follows it.
 * @module
 */
import type { SyncEvent } from "./events.ts";
import type { SyncReport, TagResult } from "./result.ts";

/** Tags named in a message before it says "…". */
const PREVIEW_TAGS = 10;

/** Formats a byte count with binary units: `0 B`, `512 B`, `1.5 KiB`, `12.3 MiB`. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 1024) return `${Math.max(0, Math.round(n || 0))} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** Hex digits of a shortened digest: upstream v0.5's truncateDigest keeps 8. */
export const SHORT_DIGEST_HEX = 8;

/** Shortens `sha256:abcdef…` to its first 8 hex digits, as upstream's Events do (truncateDigest) ("" for none). */
export function shortDigest(digest: string | undefined): string {
  if (!digest) return "";
  const [alg, hex] = digest.split(":", 2);
  return hex ? `${alg}:${hex.slice(0, SHORT_DIGEST_HEX)}` : digest;
}

function preview(tags: readonly string[]): string {
  return tags.length > PREVIEW_TAGS ? `${tags.slice(0, PREVIEW_TAGS).join(", ")}, …` : tags.join(", ");
}

/** A string quoted as Go's `%q` quotes a printable one. */
function quote(text: string): string {
  return JSON.stringify(text);
}

/** The semver constraint as upstream quotes it; tag patterns after it, when set. */
function selectors(e: { constraint: string; tagPatterns?: string[]; excludeTagPatterns?: string[] }): string {
  const parts: string[] = [];
  if (e.constraint) parts.push(quote(e.constraint));
  if (e.tagPatterns?.length) parts.push(`tagPatterns ${e.tagPatterns.map(quote).join(" | ")}`);
  if (e.excludeTagPatterns?.length) parts.push(`not ${e.excludeTagPatterns.map(quote).join(" | ")}`);
  return parts.join(", ");
}

function blobPlan(
  e: { bytesMoved: number; blobsCopied: number; blobsMounted: number; blobsSkipped: number },
) {
  return `${formatBytes(e.bytesMoved)} in ${e.blobsCopied} blob(s), ${e.blobsMounted} mounted, ` +
    `${e.blobsSkipped} already there`;
}

/** The message of the Kubernetes Event (or log line) for a sync event. */
export function eventMessage(e: SyncEvent): string {
  switch (e.type) {
    case "TagsResolved": {
      const n = e.tags.length;
      return `Resolved ${n} tags for ${e.image} matching ${selectors(e)}` +
        (e.totalMatches > n ? ` (newest ${n} of ${e.totalMatches})` : "") +
        (n ? `: ${preview(e.tags)}` : "");
    }
    case "TagResolutionFailed":
      return `Failed to resolve tags for ${e.image} matching ${selectors(e)}: ${e.error}` +
        (e.keptTags.length ? ` (keeping ${e.keptTags.length} tag(s) resolved by the previous sync)` : "");
    case "RepoEnsured":
      return `ECR repository ${quote(e.repository)} exists or was created ` +
        `(${e.created ? "created now" : "it existed"} at ${e.registry})`;
    case "ImageSynced":
      return `${e.dryRun ? "Would copy" : "Synced"} ${e.source} → ${e.destination} ` +
        `(digest: ${shortDigest(e.digest)}), ` +
        (e.destinationDigest ? `platforms filtered to ${shortDigest(e.destinationDigest)}, ` : "") +
        blobPlan(e);
    case "TagConflict":
      return `${e.dryRun ? "Would leave" : "Left"} ${e.destination} at ${
        shortDigest(e.destinationDigest)
      }: the ` +
        `source ${e.source} is at ${shortDigest(e.sourceDigest)} and destination.overwrite is never`;
    case "ImageSkipped":
      return `Image ${e.source} already up-to-date (digest: ${shortDigest(e.digest)})`;
    case "ImageVerified":
      return `Validation passed for ${e.source} (digest: ${shortDigest(e.digest)})`;
    case "ValidationFailed":
      return `Validation failed for ${e.source}: ${e.validationError}`;
    case "ReferrersCopied":
      return `${e.dryRun ? "Would copy" : "Copied"} ${e.copied} referrer(s) of ${e.source} to ` +
        `${e.destination} (digest: ${shortDigest(e.digest)}` +
        (e.artifactTypes.length ? `; ${e.artifactTypes.join(", ")}` : "") +
        (e.cosignTags.length ? `; cosign tags ${e.cosignTags.join(", ")}` : "") +
        `; ${formatBytes(e.bytesMoved)})`;
    case "SyncFailed":
      if (e.step === "source-digest") {
        return `${
          e.dryRun ? "Would fail to get" : "Failed to get"
        } source digest for ${e.source}: ${e.error}`;
      }
      return `${
        e.dryRun ? "Would fail to copy" : "Failed to copy"
      } ${e.source} to ${e.destination}: ${e.error}`;
  }
}

/**
 * A tag's `error` in status, begun as upstream's: `failed to get source digest: …` when the
 * source tag could not be read, `copy failed: …` when the copy failed (a gate's failure already
 * reads `validation failed: …`; a TagConflict or a tag never attempted has no upstream form).
 */
export function tagStatusError(t: Pick<TagResult, "error" | "failedStep" | "reason">): string | undefined {
  if (!t.error) return undefined;
  if (t.failedStep === "source-digest") return `failed to get source digest: ${t.error}`;
  if (t.failedStep === "copy" && t.reason !== "TagConflict") return `copy failed: ${t.error}`;
  return t.error;
}

/** A one-line summary for the Ready condition message, as upstream words it. */
export function summaryMessage(report: SyncReport): string {
  const parts: string[] = [];
  if (report.failedImages > 0) {
    parts.push(`${report.failedImages} of ${report.totalImages} image(s) failed to sync`);
  } else if (report.resolutionFailures > 0 || report.aborted) {
    // not "All ... successfully" when tags could not even be resolved or the sync stopped early
    parts.push(`${report.syncedImages} of ${report.totalImages} image(s) synced`);
  } else {
    parts.push(`All ${report.totalImages} image(s) synced successfully`);
  }
  if (report.resolutionFailures > 0) {
    parts.push(`tag resolution failed for ${report.resolutionFailures} image(s)`);
  }
  if (report.aborted) parts.push("the sync was stopped early");
  return parts.join("; ");
}

/** The Ready condition's message: the summary, and when something failed, the first failure. */
export function readyMessage(report: SyncReport): string {
  const summary = summaryMessage(report);
  for (const img of report.images) {
    for (const t of img.tags) {
      if (t.action === "failed") {
        return `${summary}; first: ${img.name}:${t.tag}: ${t.error ?? t.reason ?? "failed"}`;
      }
    }
    if (img.selection?.error) return `${summary}; first: ${img.name}: ${img.selection.error.message}`;
  }
  return summary;
}

/** The message of the SyncComplete Event, as upstream words it. */
export function syncCompleteMessage(report: SyncReport): string {
  return `Sync complete: ${report.syncedImages} synced, ${report.failedImages} failed, ${report.totalImages} total`;
}
