/**
 * The Kubernetes operator: `runOperator` (informers → work queue → reconcile, leader
 * election, metrics server, graceful shutdown) and its building blocks.
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
  type OperatorOptions,
  runOperator,
  shouldEnqueueUpdate,
} from "./operator.ts";
export {
  decide,
  type Decision,
  type ReconcileDeps,
  Reconciler,
  type ReconcileResult,
  type ReconcileSignals,
  type StoredImageSync,
  type SyncRunner,
  type SyncTrigger,
} from "./reconcile.ts";
export { type ConditionUpdate, findCondition, kubeTime, READY, setCondition, SYNCING } from "./conditions.ts";
export { ExponentialBackoff, WorkQueue, type WorkQueueOptions } from "./queue.ts";
export { LeaderElector, type LeaderElectorOptions } from "./leader.ts";
export { makePrepareSync, type PrepareSyncOptions, secretLoader } from "./sync_runner.ts";
export { createLogger, type LogFormat, type Logger, type LogLevel, nopLogger } from "../server/log.ts";
