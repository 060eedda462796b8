/**
 * The decision of one reconcile, from the object and the clock alone (`decide()` is pure): an
 * invalid schedule or spec is reported; sync-now, a new generation, an interrupted sync or a
 * failed one sync now; otherwise the schedule decides from `nextSyncTime`. A spec is checked
 * once per generation ({@linkcode SpecChecks}), not on every reconcile.
 * @module
 */

import {
  formatProblems,
  type ImageSync,
  type ImageSyncSpec,
  nextRun,
  parseSchedule,
  validateImageSyncSpec,
} from "../api/mod.ts";
// installs cron-parser: cron schedules parse synchronously here (`portager sync` loads it only on demand)
import "../api/cron.ts";
import { findCondition, READY, SYNCING } from "./conditions.ts";

/** Why a sync runs. */
export type SyncTrigger = "sync-now" | "spec-changed" | "first-sync" | "schedule" | "retry" | "interrupted";

/** The decision of one reconcile, from the object and the clock alone. */
export type Decision =
  | { kind: "invalid"; reason: "InvalidSchedule" | "InvalidSpec"; message: string }
  | { kind: "sync"; trigger: SyncTrigger; spec: ImageSyncSpec }
  | { kind: "wait"; requeueAfterMs: number };

/** Ready reasons that a retry cannot fix without a spec change. */
const TERMINAL_REASONS = new Set(["InvalidSchedule", "InvalidSpec"]);

/** A spec checked: its schedule parsed and the spec validated (defaults applied), or why not. */
export type SpecCheck =
  | { ok: false; reason: "InvalidSchedule" | "InvalidSpec"; message: string }
  | { ok: true; spec: ImageSyncSpec };

/** Checks `obj`'s schedule and spec (the zod schema: the costly part of a reconcile's decision). */
export function checkSpec(obj: ImageSync): SpecCheck {
  const schedule = obj.spec?.schedule ?? "";
  try {
    parseSchedule(schedule);
  } catch (err) {
    const message = (err as Error).message;
    return {
      ok: false,
      reason: "InvalidSchedule",
      // the parser's messages already say 'invalid schedule "<text>": …'
      message: /^invalid schedule\b/.test(message) ? message : `invalid schedule: ${message}`,
    };
  }
  const v = validateImageSyncSpec(obj.spec);
  if (!v.ok) return { ok: false, reason: "InvalidSpec", message: formatProblems(v.problems) };
  return { ok: true, spec: v.value };
}

/**
 * Decides what to do with `obj` at `now`; `syncNow` says the sync-now annotation was set.
 * `checked` is {@linkcode checkSpec}'s answer for this object when already known (see
 * {@linkcode SpecChecks}).
 */
export function decide(
  obj: ImageSync,
  options: { now: Date; syncNow: boolean; checked?: SpecCheck },
): Decision {
  const checked = options.checked ?? checkSpec(obj);
  if (!checked.ok) return { kind: "invalid", reason: checked.reason, message: checked.message };
  const spec = checked.spec;
  if (options.syncNow) return { kind: "sync", trigger: "sync-now", spec };
  const st = obj.status ?? {};
  const generation = obj.metadata.generation;
  if (st.observedGeneration === undefined || st.observedGeneration !== generation) {
    return {
      kind: "sync",
      trigger: st.observedGeneration === undefined ? "first-sync" : "spec-changed",
      spec,
    };
  }
  const syncing = findCondition(st.conditions, SYNCING);
  // only this operator writes Syncing=True, one reconcile per object at a time: seeing it
  // here means a previous process stopped mid-sync
  if (syncing && (syncing.status === "True" || syncing.reason === "Interrupted")) {
    return { kind: "sync", trigger: "interrupted", spec };
  }
  const ready = findCondition(st.conditions, READY);
  if (ready && ready.status === "False" && !TERMINAL_REASONS.has(ready.reason)) {
    return { kind: "sync", trigger: "retry", spec };
  }
  if (!st.nextSyncTime) return { kind: "sync", trigger: "schedule", spec };
  const next = Date.parse(st.nextSyncTime);
  if (!Number.isFinite(next) || next <= options.now.getTime()) {
    return { kind: "sync", trigger: "schedule", spec };
  }
  return { kind: "wait", requeueAfterMs: next - options.now.getTime() };
}

/**
 * Seconds between two scheduled syncs at `from`: the interval of `@every`; for cron, the time
 * between its next two runs (so `@daily` is 86400; `0 9 * * 1-5` on a Thursday afternoon is 3 days,
 * Friday to Monday).
 */
export function scheduleIntervalSeconds(schedule: string, from: Date): number {
  const s = parseSchedule(schedule);
  if (s.kind === "every") return s.intervalMs / 1000;
  const first = nextRun(s, from);
  return (nextRun(s, first).getTime() - first.getTime()) / 1000;
}

/**
 * {@linkcode checkSpec}'s answers by ImageSync, kept while its uid and generation stay the same:
 * the apiserver bumps the generation on every spec change (file mode does the same), so a spec
 * is validated once per generation. An object without a generation is checked every time.
 */
export class SpecChecks {
  readonly #by = new Map<string, { uid?: string; generation: number; check: SpecCheck }>();

  /** The check of `obj` (stored as `key`), from memory when its uid and generation are unchanged. */
  check(key: string, obj: ImageSync & { metadata: { uid?: string } }): SpecCheck {
    const generation = obj.metadata.generation;
    if (generation === undefined) return checkSpec(obj);
    const uid = obj.metadata.uid;
    const known = this.#by.get(key);
    if (known && known.generation === generation && known.uid === uid) return known.check;
    const check = checkSpec(obj);
    this.#by.set(key, { uid, generation, check });
    return check;
  }

  /** Drops what is known of `key` (the ImageSync is gone). */
  forget(key: string): void {
    this.#by.delete(key);
  }

  /** How many are remembered. */
  get size(): number {
    return this.#by.size;
  }
}
