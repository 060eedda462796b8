/**
 * The limit and trust flags of `run`, `serve` and `sync -f`, and what they turn into: the
 * sync's {@linkcode SyncLimits} (a deadline per sync, per registry request, a minimum blob
 * transfer rate, caps on manifests and tags) and the Sigstore trusted root for keyless checks.
 * Every value is checked here, so a bad one is a usage error at start, not a failure of every
 * sync later.
 * @module
 */

import {
  DEFAULT_MAX_MANIFEST_BYTES,
  DEFAULT_MAX_MANIFESTS,
  DEFAULT_MAX_TAGS,
  DEFAULT_MAX_TRANSFERS,
  DEFAULT_MIN_BYTES_PER_SECOND,
  DEFAULT_REQUEST_DEADLINE_MS,
} from "../oci/mod.ts";
import { DEFAULT_SYNC_TIMEOUT_MS, formatDurationMs, type SyncLimits } from "../sync/options.ts";
import { type FlagSpec, UsageError } from "./args.ts";
import { parseDuration } from "./common.ts";

/** Environment variable naming the Sigstore trusted root (also read by src/sync as a fallback). */
export const TRUSTED_ROOT_FLAG_ENV = "PORTAGER_SIGSTORE_TRUSTED_ROOT";

/** `8388608` → `8Mi`: a byte count as the flags accept it. */
function formatSize(n: number): string {
  for (const [unit, size] of [["Gi", 1 << 30], ["Mi", 1 << 20], ["Ki", 1 << 10]] as const) {
    if (n >= size && n % size === 0) return `${n / size}${unit}`;
  }
  return String(n);
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  Ki: 1 << 10,
  Mi: 1 << 20,
  Gi: 1 << 30,
};

/**
 * Parses a byte count: a whole number with an optional Kubernetes quantity suffix (k, M, G,
 * Ki, Mi, Gi) and an optional `B`, e.g. `1024`, `8Mi`, `64KiB`; a usage error naming `flag`.
 */
export function parseSize(value: string, flag: string): number {
  const m = /^(\d+)(k|K|M|G|Ki|Mi|Gi)?B?$/.exec(value.trim());
  const n = m ? Number(m[1]) * SIZE_UNITS[m[2] ?? ""] : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new UsageError(`${flag} must be a byte count like 1024, 64Ki or 8Mi, got "${value}"`);
  }
  return n;
}

/** A whole number ≥ 1; a usage error naming `flag`. */
function parseCount(value: string, flag: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`${flag} must be a whole number ≥ 1, got "${value}"`);
  }
  return n;
}

/**
 * The flags; `syncTimeout` is the default of `--sync-timeout` (`run` and `serve`: one hour;
 * `sync -f`: none, as an interactive run is stopped with Ctrl-C).
 */
export function limitFlags(options: { syncTimeout?: string } = {}): FlagSpec[] {
  return [
    {
      name: "sync-timeout",
      type: "string",
      env: "PORTAGER_SYNC_TIMEOUT",
      ...(options.syncTimeout ? { default: options.syncTimeout } : {}),
      help: "deadline of one ImageSync's sync: past it copies stop and the sync fails with reason " +
        `Timeout, freeing its worker; 0 for none${options.syncTimeout ? "" : " (default none)"}`,
    },
    {
      name: "request-timeout",
      type: "string",
      env: "PORTAGER_REQUEST_TIMEOUT",
      default: formatDurationMs(DEFAULT_REQUEST_DEADLINE_MS),
      help: "total time of a registry request other than a blob transfer (manifests, tokens, tag pages)",
    },
    {
      name: "min-transfer-rate",
      type: "string",
      env: "PORTAGER_MIN_TRANSFER_RATE",
      default: String(DEFAULT_MIN_BYTES_PER_SECOND),
      help: "slowest blob transfer accepted, bytes per second over 30 s (e.g. 1024, 64Ki); 0 turns it off",
    },
    {
      name: "max-manifests",
      type: "string",
      env: "PORTAGER_MAX_MANIFESTS",
      default: String(DEFAULT_MAX_MANIFESTS),
      help: "manifests one tag's image may have (an index and its children); more fails the tag " +
        "with ManifestTreeTooLarge",
    },
    {
      name: "max-manifest-bytes",
      type: "string",
      env: "PORTAGER_MAX_MANIFEST_BYTES",
      default: formatSize(DEFAULT_MAX_MANIFEST_BYTES),
      help:
        "manifest bytes one sync may hold in memory at once; more fails the tag with ManifestTreeTooLarge",
    },
    {
      name: "max-tags",
      type: "string",
      env: "PORTAGER_MAX_TAGS",
      default: String(DEFAULT_MAX_TAGS),
      help: "tags one tag listing may return; more fails the image's tag resolution with TagListTooLarge",
    },
    {
      name: "sigstore-trusted-root",
      type: "string",
      env: TRUSTED_ROOT_FLAG_ENV,
      help: "Sigstore trusted_root.json for keyless cosign checks (private Sigstore, air-gapped " +
        "clusters); default the Sigstore public-good root",
    },
  ];
}

/**
 * `--max-transfers` of the long-running commands (`run`, `serve`): the process's budget of
 * blob and manifest transfers in flight, shared by the syncs it runs at once, on top of each
 * sync's own limit. `sync -f` has none of its own: one ImageSync at a time, its `--concurrency`
 * is the process's budget.
 */
export const MAX_TRANSFERS_FLAG: FlagSpec = {
  name: "max-transfers",
  type: "string",
  env: "PORTAGER_MAX_TRANSFERS",
  default: String(DEFAULT_MAX_TRANSFERS),
  help: "blob and manifest transfers in flight at once over all the syncs of this process (each sync " +
    "also keeps to its own limit); raise --max-concurrent-syncs without raising the memory the transfers take",
};

/** The value of {@linkcode MAX_TRANSFERS_FLAG}: a whole number ≥ 1, else a usage error. */
export function maxTransfers(flags: Record<string, unknown>): number {
  const value = flags["max-transfers"] as string | undefined;
  return value === undefined ? DEFAULT_MAX_TRANSFERS : parseCount(value, "--max-transfers");
}

/** What the flags of {@linkcode limitFlags} set. */
export interface LimitSettings {
  /** The sync's limits. */
  limits: SyncLimits;
  /** The trusted root's path, when given. */
  trustedRootPath?: string;
}

/**
 * The settings from parsed flags; bad values, and a trusted root that cannot be read, are
 * usage errors naming the flag.
 */
export async function limitSettings(flags: Record<string, unknown>): Promise<LimitSettings> {
  const str = (name: string) => flags[name] as string | undefined;
  const limits: SyncLimits = {};
  const syncTimeout = str("sync-timeout");
  if (syncTimeout !== undefined && syncTimeout.trim() !== "0") {
    limits.syncTimeoutMs = parseDuration(syncTimeout.trim(), "--sync-timeout");
  }
  const requestTimeout = str("request-timeout");
  if (requestTimeout !== undefined) {
    limits.requestDeadlineMs = parseDuration(requestTimeout.trim(), "--request-timeout");
  }
  const rate = str("min-transfer-rate");
  if (rate !== undefined) limits.minBytesPerSecond = parseSize(rate, "--min-transfer-rate");
  const manifests = str("max-manifests");
  if (manifests !== undefined) limits.maxManifests = parseCount(manifests, "--max-manifests");
  const manifestBytes = str("max-manifest-bytes");
  if (manifestBytes !== undefined) {
    limits.maxManifestBytes = parseSize(manifestBytes, "--max-manifest-bytes");
    if (limits.maxManifestBytes < 1) {
      throw new UsageError(`--max-manifest-bytes must be ≥ 1, got "${manifestBytes}"`);
    }
  }
  const tags = str("max-tags");
  if (tags !== undefined) limits.maxTags = parseCount(tags, "--max-tags");
  const trustedRootPath = str("sigstore-trusted-root") || undefined;
  if (trustedRootPath !== undefined) {
    try {
      const info = await Deno.stat(trustedRootPath);
      if (!info.isFile) throw new Error("not a file");
    } catch (err) {
      throw new UsageError(
        `--sigstore-trusted-root: cannot read ${trustedRootPath}: ${(err as Error).message}` +
          " (the operator's image may read only under /etc/portager and /var/run/secrets)",
      );
    }
  }
  return { limits, trustedRootPath };
}

/** The default of `--sync-timeout` for the long-running commands. */
export const DEFAULT_SYNC_TIMEOUT = formatDurationMs(DEFAULT_SYNC_TIMEOUT_MS);
