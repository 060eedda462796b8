/**
 * Limits on what one sync may cost: its total time, and what a registry may make it wait for
 * or hold in memory. The operator's, `serve`'s and `sync -f`'s flags set them (docs/CONFIGURATION.md);
 * the registry client and the copier apply them. Unset fields keep the engine's defaults
 * (`src/oci`'s `DEFAULT_*` constants), so a bounded default always applies.
 * @module
 */

/**
 * The deadline of one whole sync that `run` and `serve` apply unless told otherwise: one hour.
 * A sync still running then is stopped and fails with reason Timeout, so one slow ImageSync
 * never holds a sync worker for ever; the next sync continues where it stopped (what was
 * copied is up to date).
 */
export const DEFAULT_SYNC_TIMEOUT_MS = 60 * 60 * 1000;

/** What one sync may cost; every field is optional. */
export interface SyncLimits {
  /**
   * Deadline of the whole sync (ms): when it passes, copies in flight are cancelled, no further
   * tag starts, and the sync fails with reason Timeout. Unset or 0: none.
   */
  syncTimeoutMs?: number;
  /** Total time of any registry request except blob transfers (ms); default the client's (2 min). */
  requestDeadlineMs?: number;
  /** Slowest blob transfer accepted (bytes per second); 0 turns the check off; default the client's (1 KiB/s). */
  minBytesPerSecond?: number;
  /** Manifests one copy may read, the tagged one included; default the copier's (1000). */
  maxManifests?: number;
  /** Manifest bytes a sync's copier may hold at once; default the copier's (8 MiB). */
  maxManifestBytes?: number;
  /** Most tags one tag listing may return; default the client's (100000). */
  maxTags?: number;
}

/** `3600000` → `1h`, `90000` → `1m30s`: a duration as the flags are written. */
export function formatDurationMs(ms: number): string {
  if (ms < 1000 || ms % 1000 !== 0) return `${ms}ms`;
  let s = ms / 1000;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${s ? `${s}s` : ""}`;
}
