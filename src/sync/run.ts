/**
 * The run step of a sync: the planned tags, a few at a time, each compared by digest, gated
 * when a gate is enabled, then copied (or planned, in a dry run) through one batch copier so a
 * blob shared by several tags moves once. A tag's failure becomes its result, never a throw.
 * @module
 */
import type { Copier, ManifestHead, Reference } from "../oci/mod.ts";
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

/** Tags worked on at once unless the caller says otherwise. */
export const DEFAULT_TAG_CONCURRENCY = 4;

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
 * them first, gate, copy.
 */
async function syncTag(job: TagJob, ctx: RunContext): Promise<TagResult> {
  const base = job.result.tags[job.slot];
  const signal = ctx.cancelInFlight;
  const copier = ctx.copierFor(job);
  const upToDate = (sourceDigest: string, destinationDigest?: string): TagResult => ({
    ...base,
    synced: true,
    action: "up-to-date",
    sourceDigest,
    ...(destinationDigest && destinationDigest !== sourceDigest ? { destinationDigest } : {}),
  });
  try {
    let verified: boolean | undefined;
    let sourceDigest: string | undefined;
    if (ctx.gates.length > 0 || job.platforms || ctx.overwrite === "never") {
      const digests = await compareDigests(job, ctx);
      if ("failure" in digests) {
        return { ...failedTag(job.tag, base, digests.failure), failedStep: "source-digest" };
      }
      sourceDigest = digests.source;
      if (digests.destination === digests.source) return upToDate(digests.source);
      // a filtered index has its own digest: unchanged at both ends since the last sync is
      // up to date without reading the source's index (HEADs only)
      const prev = job.previous;
      if (
        job.platforms && digests.destination && prev?.sourceDigest === digests.source &&
        prev.destinationDigest === digests.destination
      ) {
        return upToDate(digests.source, digests.destination);
      }
      if (ctx.overwrite === "never" && digests.destination) {
        const conflict = await tagConflict(job, { copier, digests, signal });
        if (conflict === "up-to-date") return upToDate(digests.source, digests.destination);
        return {
          ...failedTag(job.tag, base, conflict),
          failedStep: "copy",
          sourceDigest: digests.source,
          destinationDigest: digests.destination,
        };
      }
    }
    if (ctx.gates.length > 0 && sourceDigest) {
      const verdict = await (ctx.checkGates ?? unavailableGates)({
        source: job.source,
        digest: sourceDigest,
        gates: ctx.gates,
        signal,
      });
      if (verdict) {
        return {
          ...failedTag(job.tag, base, {
            reason: verdict.reason,
            message: `validation failed: ${verdict.message}`,
          }),
          ...(verdict.cves ? { cves: verdict.cves } : {}),
          failedStep: "gate",
          sourceDigest: sourceDigest,
          verified: false,
          gates: ctx.gates,
          failedGate: verdict.gate,
          validationError: verdict.message,
        };
      }
      verified = true;
      ctx.emit(verifiedEvent(job.image, { ...base, sourceDigest }, ctx.dryRun));
    }
    ctx.onCopy?.(job, true);
    const r = await copier.copy(job.source, job.destination, { dryRun: ctx.dryRun, signal });
    const gated = verified === undefined ? {} : { verified, gates: ctx.gates };
    // with a platform filter the copier's digest is the filtered index's; the source's is the HEAD's
    const digests = {
      sourceDigest: sourceDigest ?? r.digest,
      ...(sourceDigest && r.digest !== sourceDigest ? { destinationDigest: r.digest } : {}),
    };
    if (r.upToDate) return { ...base, ...gated, synced: true, action: "up-to-date", ...digests };
    return {
      ...base,
      ...gated,
      synced: !ctx.dryRun,
      action: ctx.dryRun ? "would-copy" : "copied",
      ...digests,
      bytesMoved: r.bytesMoved,
      blobsCopied: r.blobsCopied,
      blobsMounted: r.blobsMounted,
      blobsSkipped: r.blobsSkipped,
    };
  } catch (e) {
    return {
      ...failedTag(job.tag, base, failureOf(e)),
      failedStep: readsSourceDigest(e, job) ? "source-digest" : "copy",
    };
  } finally {
    ctx.onCopy?.(job, false);
  }
}

/** Whether `e` is about the source tag itself (its manifest digest), not a blob or the destination. */
function readsSourceDigest(e: unknown, job: TagJob): boolean {
  return (e as { reference?: unknown })?.reference === job.source.toString();
}

/** Source and destination digests of a tag (HEADs only; destination undefined when absent). */
async function compareDigests(
  job: TagJob,
  ctx: RunContext,
): Promise<{ source: string; destination?: string } | { failure: Failure }> {
  const signal = ctx.cancelInFlight;
  const head = await ctx.source.headManifest(job.source, { signal });
  if (!head) return { failure: { reason: "NotFound", message: `source ${job.source} not found` } };
  const there = await ctx.destination.headManifest(job.destination, { signal });
  return there ? { source: head.digest, destination: there.digest } : { source: head.digest };
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
