/**
 * The part of ImageSync status a sync determines (per-tag results and counts), built the same
 * way by the operator and `portager serve`. Conditions and nextSyncTime are the caller's; the
 * condition's words come from `format.ts`.
 * @module
 */
import type { ImageStatus, ImageSyncStatus, TagStatus } from "../api/mod.ts";
import { tagStatusError } from "./format.ts";
import type { SyncReport } from "./result.ts";

/** Status fields that come from a sync report. */
export type SyncStatusFields = Required<
  Pick<ImageSyncStatus, "images" | "totalImages" | "syncedImages" | "failedImages" | "lastSyncTime">
>;

/** Per-image, per-tag status and the counts, from a (non dry-run) report. */
export function statusFromReport(report: SyncReport): SyncStatusFields {
  const images: ImageStatus[] = report.images.map((image) => ({
    name: image.name,
    tags: image.tags.map((t) => {
      const tag: TagStatus = { tag: t.tag, synced: t.synced };
      if (t.sourceDigest) tag.sourceDigest = t.sourceDigest;
      if (t.destinationDigest) tag.destinationDigest = t.destinationDigest;
      if (t.lastSyncTime) tag.lastSyncTime = t.lastSyncTime;
      const error = tagStatusError(t);
      if (error) tag.error = error;
      if (t.reason) tag.reason = t.reason;
      if (t.verified !== undefined) tag.verified = t.verified;
      if (t.validationError) tag.validationError = t.validationError;
      return tag;
    }),
  }));
  return {
    images,
    totalImages: report.totalImages,
    syncedImages: report.syncedImages,
    failedImages: report.failedImages,
    lastSyncTime: report.finishedAt,
  };
}
