/**
 * The controller: the manager (work queue, workers, backoff, grace period, leader gate,
 * probes) that runs reconcile over a store and an event source, and `runOperator`, the
 * manager wired to the apiserver. File mode (src/filestore) plugs in the same way.
 *
 * ```ts
 * const ac = new AbortController();
 * Deno.addSignalListener("SIGTERM", () => ac.abort());
 * await runOperator({ leaderElection: true, logger: createLogger(), signal: ac.signal });
 * ```
 * @module
 */

export {
  type CachedImageSync,
  cachedView,
  InformerSource,
  type OperatorOptions,
  runOperator,
  shouldEnqueueUpdate,
} from "./operator.ts";
export {
  DEFAULT_GRACE_PERIOD_MS,
  DEFAULT_WORKERS,
  type EventSource,
  type HttpOptions,
  type KeySink,
  Manager,
  type ManagerOptions,
  type Store,
} from "./manager.ts";
export { checkSpec, decide, type Decision, type SpecCheck, SpecChecks, type SyncTrigger } from "./decide.ts";
export {
  type EventSink,
  type ImageSyncAccess,
  type ReconcileDeps,
  Reconciler,
  type ReconcileResult,
  type ReconcileSignals,
  type StoredImageSync,
  type SyncRunner,
} from "./reconcile.ts";
export { type ConditionUpdate, findCondition, kubeTime, READY, setCondition, SYNCING } from "./conditions.ts";
export { ExponentialBackoff, WorkQueue, type WorkQueueOptions } from "./queue.ts";
export { LeaderElector, type LeaderElectorOptions, type LeaseAccess } from "./leader.ts";
export {
  type GateResult,
  MAX_SHARDS,
  SHARD_COUNT_ANNOTATION,
  SHARD_GROUP_LABEL,
  shardElection,
  ShardGate,
  type ShardIdentity,
  shardLeaseName,
  shardOf,
} from "./shard.ts";
export { makePrepareSync, type SecretSource, type SyncSettings } from "./sync_runner.ts";
export { createLogger, type LogFormat, type Logger, type LogLevel } from "../log/mod.ts";
