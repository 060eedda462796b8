/**
 * The run step of a sync: the planned tags, a few at a time, each compared by digest, gated
 * when a gate is enabled, then copied (or planned, in a dry run) through one batch copier so a
 * blob shared by several tags moves once. A tag's failure becomes its result, never a throw.
 * @module
 */
import type { Copier, CopyOptions, ManifestHead, Reference } from "../oci/mod.ts";
import { type SyncEvent, tagEvent, verifiedEvent } from "./events.ts";
import { type GateCheck, unavailableGates } from "./gates.ts";
import {
  failedTag,
  type Failure,
  failureOf,
  type GateName,
  type ImageResult,
  type TagResult,
} from "./result.ts";

/**
 * Tags worked on at once unless the caller says otherwise. A tag's first step is its manifest
 * check (a HEAD on each side: tiny, latency-bound), so this is the manifest-check concurrency;
 * blob and manifest transfers stay bounded separately by the Copier the tags share
 * (`concurrency`, default 4). With 25 ms each way to both registries, 200 unchanged tags took
 * 7.4 s at 4 (B2L in docs/PERFORMANCE.md).
 */
export const DEFAULT_TAG_CONCURRENCY = 16;

/** One tag to sync, and the slot of its result. */
export interface TagJob {
  /** `images[].name`. */
  image: string;
  /** The image's result; the tag's result goes to `result.tags[slot]`. */
  result: ImageResult;
  /** Index of this tag in `result.tags`. */
  slot: number;
  /** The tag. */
  tag: string;
  /** Source reference with the tag. */
  source: Reference;
  /** Destination reference with the tag. */
  destination: Reference;
  /** `images[].platforms`: copy only these platforms (the destination gets a smaller index). */
  platforms?: string[];
  /** What the previous sync recorded for this tag (digests at both ends). */
  previous?: { sourceDigest: string; destinationDigest?: string };
}

/** A registry as the run step uses it (a `RegistryClient`, or a fake in tests). */
export interface DigestReader {
  /** The manifest digest at `ref`, undefined when absent. */
  headManifest(ref: Reference, opts?: { signal?: AbortSignal }): Promise<ManifestHead | undefined>;
}

/** What the run step needs. */
export interface RunContext {
  /** The batch copier for a job (a `Copier` per platform filter, or a fake in tests). */
  copierFor: (job: TagJob) => Pick<Copier, "copy">;
  /** `destination.overwrite`: with never, a destination tag at another digest is left (TagConflict). */
  overwrite?: "always" | "never";
  /** The source registry (digests, for gated tags). */
  source: DigestReader;
  /** The destination registry (digests, for gated tags). */
  destination: DigestReader;
  /** Enabled validation gates. */
  gates: GateName[];
  /** Runs the gates; default: every enabled gate is unavailable. */
  checkGates?: GateCheck;
  /** Plan only. */
  dryRun: boolean;
  /** Tags worked on at once. */
  tagConcurrency: number;
  /** Clock (lastSyncTime). */
  now: () => Date;
  /** Receives the per-tag events. */
  emit: (e: SyncEvent) => void;
  /** Stops starting new tags. */
  signal?: AbortSignal;
  /** Aborts copies in flight. */
  cancelInFlight?: AbortSignal;
  /**
   * The caller records each tag's digests in its status (the operator): a tag without a record
   * is taken as new at the destination and its source manifest read with one GET beside the
   * destination HEAD ({@linkcode CopyOptions.likelyNew}). Without it (the CLI) every tag is
   * HEADed first.
   */
  tagsRecorded?: boolean;
  /** Told when a tag's copy starts and ends (maps copier progress to its tag). */
  onCopy?: (job: TagJob, active: boolean) => void;
  /** `spec.copyReferrers`: carries a finished tag's referrers (`referrers.ts`). */
  carryReferrers?: (job: TagJob, t: TagResult, signal?: AbortSignal) => Promise<TagResult>;
}

const ABORTED: Failure = { reason: "Aborted", message: "the sync was stopped before this tag was attempted" };

/**
 * Runs `jobs`, writing each result into its image's slot and emitting its event. Returns
 * whether `signal` stopped it before every tag was attempted.
 */
export async function runTags(jobs: readonly TagJob[], ctx: RunContext): Promise<{ aborted: boolean }> {
  let next = 0;
  let aborted = false;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++];
      const tags = job.result.tags;
      if (ctx.signal?.aborted) {
        aborted = true;
        tags[job.slot] = failedTag(job.tag, tags[job.slot], ABORTED);
        continue;
      }
      let t = await syncTag(job, ctx);
      if (ctx.carryReferrers) t = await ctx.carryReferrers(job, t, ctx.cancelInFlight);
      t.lastSyncTime = ctx.now().toISOString();
      tags[job.slot] = t;
      ctx.emit(tagEvent(job.image, t, ctx.dryRun));
    }
  };
  const workers = Math.min(Math.max(1, Math.floor(ctx.tagConcurrency)), Math.max(1, jobs.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return { aborted };
}

/**
 * One tag: compare digests (HEADs) when a gate, a platform filter or `overwrite: never` needs
 * them first, then the gates, then the copy.
 */
async function syncTag(job: TagJob, ctx: RunContext): Promise<TagResult> {
  const base = job.result.tags[job.slot];
  const copier = ctx.copierFor(job);
  try {
    const pre = await precheck(job, ctx, copier);
    if ("action" in pre) return pre;
    const gated = pre.known && ctx.gates.length > 0 ? await runGates(job, ctx, pre.known.source) : undefined;
    if (gated && "action" in gated) return gated;
    return await copy(job, ctx, { copier, known: pre.known, verified: gated?.verified });
  } catch (e) {
    return {
      ...failedTag(job.tag, base, failureOf(e)),
      failedStep: readsSourceDigest(e, job) ? "source-digest" : "copy",
    };
  } finally {
    ctx.onCopy?.(job, false);
  }
}

/** The tag's result as up to date at `sourceDigest` (and the destination's, when it differs). */
function upToDate(base: TagResult, sourceDigest: string, destinationDigest?: string): TagResult {
  return {
    ...base,
    synced: true,
    action: "up-to-date",
    sourceDigest,
    ...(destinationDigest && destinationDigest !== sourceDigest ? { destinationDigest } : {}),
  };
}

/**
 * Digests at both ends (HEADs) when something must be decided before the copy: the tag's
 * final result when it is decided here (up to date, source missing, TagConflict), else both
 * digests (undefined when nothing needed a look).
 */
async function precheck(
  job: TagJob,
  ctx: RunContext,
  copier: Pick<Copier, "copy">,
): Promise<TagResult | { known?: CopyOptions["known"] }> {
  const base = job.result.tags[job.slot];
  if (ctx.gates.length === 0 && !job.platforms && ctx.overwrite !== "never") return {};
  const digests = await compareDigests(job, ctx);
  if ("failure" in digests) {
    return { ...failedTag(job.tag, base, digests.failure), failedStep: "source-digest" };
  }
  if (digests.destination === digests.source) return upToDate(base, digests.source);
  // a filtered index has its own digest: unchanged at both ends since the last sync is up to
  // date without reading the source's index (HEADs only)
  const prev = job.previous;
  if (
    job.platforms && digests.destination && prev?.sourceDigest === digests.source &&
    prev.destinationDigest === digests.destination
  ) {
    return upToDate(base, digests.source, digests.destination);
  }
  if (ctx.overwrite === "never" && digests.destination) {
    const conflict = await tagConflict(job, { copier, digests, signal: ctx.cancelInFlight });
    if (conflict === "up-to-date") return upToDate(base, digests.source, digests.destination);
    return {
      ...failedTag(job.tag, base, conflict),
      failedStep: "copy",
      sourceDigest: digests.source,
      destinationDigest: digests.destination,
    };
  }
  return { known: digests };
}

/** The validation gates on the source digest, before any blob moves: the failed result, or verified. */
async function runGates(
  job: TagJob,
  ctx: RunContext,
  sourceDigest: string,
): Promise<TagResult | { verified: true }> {
  const base = job.result.tags[job.slot];
  const verdict = await (ctx.checkGates ?? unavailableGates)({
    source: job.source,
    digest: sourceDigest,
    gates: ctx.gates,
    signal: ctx.cancelInFlight,
  });
  if (verdict) {
    return {
      ...failedTag(job.tag, base, {
        reason: verdict.reason,
        message: `validation failed: ${verdict.message}`,
      }),
      ...(verdict.cves ? { cves: verdict.cves } : {}),
      failedStep: "gate",
      sourceDigest,
      verified: false,
      gates: ctx.gates,
      failedGate: verdict.gate,
      validationError: verdict.message,
    };
  }
  ctx.emit(verifiedEvent(job.image, { ...base, sourceDigest }, ctx.dryRun));
  return { verified: true };
}

/** The copy (or its plan, in a dry run). */
async function copy(
  job: TagJob,
  ctx: RunContext,
  opts: { copier: Pick<Copier, "copy">; known?: CopyOptions["known"]; verified?: boolean },
): Promise<TagResult> {
  const base = job.result.tags[job.slot];
  ctx.onCopy?.(job, true);
  // digests the precheck read are not asked again; else a tag the status never recorded is
  // most likely new at the destination
  const r = await opts.copier.copy(job.source, job.destination, {
    dryRun: ctx.dryRun,
    signal: ctx.cancelInFlight,
    ...opts.known ? { known: opts.known } : { likelyNew: ctx.tagsRecorded === true && !job.previous },
  });
  const gated = opts.verified === undefined ? {} : { verified: opts.verified, gates: ctx.gates };
  // with a platform filter the copier's digest is the filtered index's; the source's is the HEAD's
  const source = opts.known?.source ?? r.digest;
  if (r.upToDate) return { ...upToDate(base, source, r.digest), ...gated };
  return {
    ...base,
    ...gated,
    synced: !ctx.dryRun,
    action: ctx.dryRun ? "would-copy" : "copied",
    sourceDigest: source,
    ...(r.digest !== source ? { destinationDigest: r.digest } : {}),
    bytesMoved: r.bytesMoved,
    blobsCopied: r.blobsCopied,
    blobsMounted: r.blobsMounted,
    blobsSkipped: r.blobsSkipped,
  };
}

/** Whether `e` is about the source tag itself (its manifest digest), not a blob or the destination. */
function readsSourceDigest(e: unknown, job: TagJob): boolean {
  return (e as { reference?: unknown })?.reference === job.source.toString();
}

/**
 * Source and destination digests of a tag (HEADs only, both in flight at once: one round trip;
 * destination undefined when absent).
 */
async function compareDigests(
  job: TagJob,
  ctx: RunContext,
): Promise<{ source: string; destination?: string } | { failure: Failure }> {
  const signal = ctx.cancelInFlight;
  const there = ctx.destination.headManifest(job.destination, { signal });
  there.catch(() => {}); // awaited below unless the source fails first
  const head = await ctx.source.headManifest(job.source, { signal });
  if (!head) return { failure: { reason: "NotFound", message: `source ${job.source} not found` } };
  const dst = await there;
  return dst ? { source: head.digest, destination: dst.digest } : { source: head.digest };
}

/**
 * `overwrite: never` and the destination tag exists at another digest than the source's:
 * the TagConflict to report, or "up-to-date" when a platform filter's index is what is there
 * (known from a dry-run copy, which writes nothing).
 */
async function tagConflict(
  job: TagJob,
  opts: {
    copier: Pick<Copier, "copy">;
    digests: { source: string; destination?: string };
    signal?: AbortSignal;
  },
): Promise<Failure | "up-to-date"> {
  let wanted = opts.digests.source;
  if (job.platforms) {
    const plan = await opts.copier.copy(job.source, job.destination, { dryRun: true, signal: opts.signal });
    if (plan.upToDate) return "up-to-date";
    wanted = plan.digest;
  }
  return {
    reason: "TagConflict",
    message: `destination ${job.destination} is at ${opts.digests.destination}, not ${wanted}; ` +
      `destination.overwrite is never, so it is left as it is`,
  };
}
