/**
 * "Sync one ImageSync spec once", shared by the operator and the no-cluster modes: plan
 * (resolve tags, explicit + semver, ensure destination repositories), run (compare digests,
 * gate, copy through one batch copier), summarize (per-tag results and counts). Results and
 * events are data; `format.ts` makes their words. Takes a plain spec and credential
 * resolvers; never sees a Kubernetes object.
 *
 * ```ts
 * const report = await syncImageSync(spec, { sourceCredentials, destinationCredentials, onEvent });
 * const status = { ...statusFromReport(report), nextSyncTime: nextRun(spec.schedule, new Date()) };
 * const ready = readyMessage(report); // "All 3 image(s) synced successfully"
 * ```
 * @module
 */
export { SyncError, syncImageSync, type SyncOptions, type SyncProgress } from "./sync.ts";
export { DEFAULT_SYNC_TIMEOUT_MS, type SyncLimits } from "./options.ts";
export {
  type ClientLease,
  DEFAULT_CLIENT_CACHE_ENTRIES,
  DEFAULT_CLIENT_TTL_MS,
  RegistryClientCache,
  type RegistryClientCacheOptions,
} from "./client_cache.ts";
export {
  type Failure,
  type GateName,
  type ImageResult,
  readyReason,
  summarize,
  type SyncReport,
  type TagAction,
  type TagResult,
  type TagSelection,
} from "./result.ts";
export {
  enabledGates,
  type GateCheck,
  type GateRequest,
  type GateVerdict,
  unavailableGates,
} from "./gates.ts";
export {
  type ImageSkippedEvent,
  type ImageSyncedEvent,
  type RepoEnsuredEvent,
  type SyncEvent,
  type SyncFailedEvent,
  type TagConflictEvent,
  type TagResolutionFailedEvent,
  type TagsResolvedEvent,
} from "./events.ts";
// every export of format.ts is public: the words of results and events, made in one place
export * from "./format.ts";
export { type ImageRepositories, imageRepositories } from "./naming.ts";
export {
  listsSourceTags,
  mergeTags,
  type ResolvedTags,
  resolveImageTags,
  resolveTags,
  type ResolveTagsOptions,
  type TagResolution,
} from "./tags.ts";
export { statusFromReport, type SyncStatusFields } from "./status.ts";
// The schedule and semver grammar live with the API schema; re-exported for callers of sync.
export { matchingTags, nextRun, parseSchedule, SemverConstraint } from "../api/mod.ts";
