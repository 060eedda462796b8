/**
 * Kubernetes-convention conditions: one entry per type; `lastTransitionTime` changes only
 * when `status` changes, so a Ready=True that stays True keeps the time it became True.
 * @module
 */

import type { Condition } from "../api/mod.ts";

/** Condition types of an ImageSync. */
export const READY = "Ready";
/** Set True while a sync runs. */
export const SYNCING = "Syncing";

/** A condition to set; `lastTransitionTime` is filled in by {@linkcode setCondition}. */
export interface ConditionUpdate {
  /** Ready or Syncing. */
  type: string;
  /** True, False or Unknown. */
  status: "True" | "False" | "Unknown";
  /** CamelCase reason, e.g. SyncSucceeded. */
  reason: string;
  /** Human-readable details. */
  message: string;
  /** The generation the condition was set for. */
  observedGeneration?: number;
}

/** Formats a time the way Kubernetes does for metav1.Time: RFC 3339, whole seconds, UTC. */
export function kubeTime(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * Returns `conditions` with `update` applied: the same type is replaced in place (keeping its
 * lastTransitionTime when the status is unchanged), a new type is appended.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate,
  options: { now: Date },
): Condition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === update.type);
  const prev = i >= 0 ? list[i] : undefined;
  const next: Condition = {
    type: update.type,
    status: update.status,
    reason: update.reason,
    message: update.message,
    lastTransitionTime: prev && prev.status === update.status && prev.lastTransitionTime
      ? prev.lastTransitionTime
      : kubeTime(options.now),
  };
  if (update.observedGeneration !== undefined) next.observedGeneration = update.observedGeneration;
  if (i >= 0) list[i] = next;
  else list.push(next);
  return list;
}

/** The condition of `type`, if present. */
export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}
