/**
 * "Sync one ImageSync spec once", shared by the operator and the no-cluster modes: resolve
 * tags (explicit + semver), compare digests, copy through one batch copier, report per tag,
 * and emit upstream-named events. Takes a plain spec and credential resolvers; never sees a
 * Kubernetes object.
 *
 * ```ts
 * const report = await syncImageSync(spec, { sourceCredentials, destinationCredentials, onEvent });
 * const status = { ...statusFromReport(report), nextSyncTime: nextRun(spec.schedule, new Date()) };
 * ```
 * @module
 */
export {
  enabledGates,
  type ImageResult,
  SyncError,
  syncImageSync,
  type SyncOptions,
  type SyncProgress,
  type SyncReport,
  type TagAction,
  type TagResult,
} from "./sync.ts";
export {
  formatBytes,
  type ImageSkippedEvent,
  type ImageSyncedEvent,
  type RepoEnsuredEvent,
  shortDigest,
  type SyncEvent,
  type SyncFailedEvent,
  type TagResolutionFailedEvent,
  type TagsResolvedEvent,
} from "./events.ts";
export { type ImageRepositories, imageRepositories } from "./naming.ts";
export { mergeTags, type ResolvedTags, resolveImageTags } from "./tags.ts";
export { statusFromReport, summaryMessage, type SyncStatusFields } from "./status.ts";
// The schedule and semver grammar live with the API schema; re-exported for callers of sync.
export { matchingTags, nextRun, parseSchedule, SemverConstraint } from "../api/mod.ts";
