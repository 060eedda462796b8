/**
 * The small state file of `portager serve`: per ImageSync the hash of the spec last synced and
 * the status the operator would have written (lastSyncTime, nextSyncTime, per-tag results),
 * so a restarted `serve` keeps its schedule instead of syncing everything again. The copier
 * skips up-to-date tags by digest anyway; the file keeps the timing and the tag history.
 *
 * Written atomically (temporary file, then rename), so a kill never leaves half a file.
 * @module
 */
import type { ImageSyncSpec, ImageSyncStatus } from "../api/mod.ts";
import { sha256Hex } from "../oci/digest.ts";

/** Version of the state file format. */
export const STATE_VERSION = 1;

/** What `serve` remembers of one ImageSync. */
export interface StateEntry {
  /** {@linkcode specHash} of the spec the status belongs to; a different spec syncs now. */
  specHash: string;
  /** The file-mode `metadata.generation`: bumped each time the spec changes. */
  generation?: number;
  /** The file the ImageSync was read from. */
  file?: string;
  /** The status as the operator would write it. */
  status: ImageSyncStatus;
}

/** The whole state file. */
export interface ServeState {
  version: typeof STATE_VERSION;
  /** By `namespace/name`. */
  imageSyncs: Record<string, StateEntry>;
}

/** Thrown when the state file exists but cannot be used; `reason` is "InvalidStateFile". */
export class StateFileError extends Error {
  /** Stable reason. */
  readonly reason = "InvalidStateFile";
  /** The state file's path. */
  readonly path: string;

  /** Creates the error for `path`. */
  constructor(path: string, message: string) {
    super(`state file ${path}: ${message}`);
    this.name = "StateFileError";
    this.path = path;
  }
}

/** An empty state. */
export function emptyState(): ServeState {
  return { version: STATE_VERSION, imageSyncs: {} };
}

/**
 * Where the state file lives by default: `$XDG_STATE_HOME/portager/state.json` when
 * XDG_STATE_HOME is set, else `./.portager-state.json`.
 */
export function defaultStatePath(env: (name: string) => string | undefined = (n) => Deno.env.get(n)): string {
  const xdg = env("XDG_STATE_HOME");
  if (xdg) return `${xdg.replace(/\/+$/, "")}/portager/state.json`;
  return "./.portager-state.json";
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value as Record<string, unknown>).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = canonical(v);
    }
    return out;
  }
  return value;
}

/** A stable hash of a spec (key order does not matter): the file-mode stand-in for `generation`. */
export function specHash(spec: ImageSyncSpec): string {
  return stableHash(spec);
}

/** A stable hash of any JSON value; object key order does not matter. */
export function stableHash(value: unknown): string {
  return sha256Hex(JSON.stringify(canonical(value))).slice(0, 32);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Reads the state file; a missing file is an empty state, a malformed one a StateFileError. */
export async function readState(path: string): Promise<ServeState> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return emptyState();
    throw new StateFileError(path, `cannot read: ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new StateFileError(path, `not JSON (${(err as Error).message}); move it away to start afresh`);
  }
  if (!isRecord(data) || data.version !== STATE_VERSION || !isRecord(data.imageSyncs)) {
    throw new StateFileError(path, `not a portager state file of version ${STATE_VERSION}`);
  }
  const state = emptyState();
  for (const [key, entry] of Object.entries(data.imageSyncs)) {
    if (isRecord(entry) && typeof entry.specHash === "string" && isRecord(entry.status)) {
      state.imageSyncs[key] = {
        specHash: entry.specHash,
        generation: typeof entry.generation === "number" ? entry.generation : undefined,
        file: typeof entry.file === "string" ? entry.file : undefined,
        status: entry.status as ImageSyncStatus,
      };
    }
  }
  return state;
}

/** Writes the state file atomically (a temporary file beside it, then rename). */
export async function writeState(path: string, state: ServeState): Promise<void> {
  const slash = path.lastIndexOf("/");
  if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true });
  const tmp = `${path}.${Deno.pid}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(state, null, 2) + "\n", { mode: 0o600 });
  await Deno.rename(tmp, path);
}
