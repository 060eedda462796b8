/**
 * Carrying referrers with the images (`spec.copyReferrers`, ours): after a tag is copied, or
 * found up to date, its source digest's referrers (signatures, attestations, SBOMs, scan
 * reports — and their own referrers) are copied by digest, and cosign's `sha256-<hex>.sig`,
 * `.att`, `.sbom` tags with them — for a multi-arch image also those of each platform manifest
 * the copy kept (`cosign sign --recursive`, `oras attach` to one platform). Only what the
 * destination lacks moves, so a referrer added at the source later arrives on the next sync.
 * The price for an image without referrers, per subject (the image's digest, and each kept
 * platform manifest), is one referrers read at the source (plus three tag HEADs for cosign's
 * tags when no artifact type filter is set), and one read of the image's manifest at the
 * destination the first time this process sees its digest. A dry run plans without writing.
 *
 * With a platform filter that drops children the copied index is rewritten: the source
 * index's own referrers do not apply to it and are not carried; its platform manifests' are.
 * @module
 */
import { Copier, type Limiter, type Reference, type RegistryClient } from "../oci/mod.ts";
import {
  type CopiedReferrer,
  copyCosignTags,
  copyReferrers,
  type CosignTagRef,
  findCosignTags,
  listReferrers,
  referrerChildren,
  ReferrerChildrenCache,
  type ReferrerList,
} from "../oci/referrers.ts";
import type { SyncEvent } from "./events.ts";
import { failureOf, type TagResult } from "./result.ts";
import type { TagJob } from "./run.ts";

/** `spec.copyReferrers`. */
export interface CopyReferrersConfig {
  /** Copy referrers with the images. */
  enabled: boolean;
  /** Only these artifact types (and then no cosign tags); all when absent. */
  artifactTypes?: string[];
}

/** Carries a finished tag's referrers; returns the tag's result with `referrers` set. */
export type ReferrerCarrier = (job: TagJob, t: TagResult, signal?: AbortSignal) => Promise<TagResult>;

/** Options for {@linkcode referrerCarrier}. */
export interface ReferrerCarrierOptions {
  /** Plan only. */
  dryRun: boolean;
  /** Transfers in flight at once for referrer blobs. */
  concurrency?: number;
  /** The process's transfer budget, shared with the sync's other copiers (`CopierOptions.budget`). */
  budget?: Limiter;
  /** Receives the ReferrersCopied event. */
  emit: (e: SyncEvent) => void;
}

/** Subjects whose source listings are read at once for one tag (the image and its platform manifests). */
const LISTING_CONCURRENCY = 4;

/**
 * Children of indexes known by digest, shared by every sync of the process: an unchanged
 * multi-arch image costs no read of its index after the first sync (content is immutable under
 * its digest). At most 2048 entries, each at most 64 digests (typically a few).
 */
const CHILDREN = new ReferrerChildrenCache();

/** What the source holds for one subject (the image, or one of its platform manifests). */
interface SubjectAtSource {
  digest: string;
  listed: ReferrerList;
  cosignTags: CosignTagRef[];
}

/**
 * The carrier of a sync: copies with its own copier (never a platform filter, so referrer
 * digests are preserved). The referrers of the image's digest are carried when the destination
 * holds that digest (not when a platform filter rewrote the index), and those of each platform
 * manifest the destination's index lists, i.e. the ones the copy kept (`referrerChildren`: at
 * most 64). Every subject's listing and cosign tag lookups are read first, a few at once; then
 * the subjects' referrers are copied one after another, under one referrer bound for the whole
 * image, while their cosign tags are copied (or compared) a few at once. A failure to carry fails the tag with reason ReferrerCopyFailed (the image
 * itself stays synced).
 */
export function referrerCarrier(
  clients: { source: RegistryClient; destination: RegistryClient },
  config: CopyReferrersConfig,
  opts: ReferrerCarrierOptions,
): ReferrerCarrier {
  const copier = new Copier(clients, { concurrency: opts.concurrency, budget: opts.budget });
  const artifactTypes = config.artifactTypes?.length ? config.artifactTypes : undefined;
  // Learned from the first listing: a source without the referrers API is asked for the
  // fallback tag directly afterwards (one read per subject, not two; the subjects of the
  // first tags in flight may each meet the 404 once).
  let sourceApi: boolean | undefined;
  const atSource = async (src: Reference, signal?: AbortSignal): Promise<SubjectAtSource> => {
    const [listed, cosignTags] = await Promise.all([
      listReferrers(clients.source, src, { signal, api: sourceApi }),
      artifactTypes ? [] : findCosignTags(clients.source, src, { signal }),
    ]);
    sourceApi ??= listed.source === "api";
    return { digest: src.digest!, listed, cosignTags };
  };
  return async (job, t, signal) => {
    if (t.action === "failed" || !t.sourceDigest) return t;
    const src = job.source.withDigest(t.sourceDigest);
    const dst = job.destination.withDigest(t.sourceDigest);
    try {
      // The platform manifests the destination holds, read there (the source may count a
      // manifest GET against a pull limit, as Docker Hub does); a dry run that would copy
      // reads the source's index and applies the filter as the copy would.
      const planned = t.action === "would-copy";
      const children = await referrerChildren(
        planned ? clients.source : clients.destination,
        planned ? src : job.destination.withDigest(t.destinationDigest ?? t.sourceDigest),
        { platforms: planned ? job.platforms : undefined, signal, cache: CHILDREN },
      );
      // a platform filter that dropped children wrote another index: the source index's
      // referrers name a subject the destination does not have
      const own = !t.destinationDigest || t.destinationDigest === t.sourceDigest;
      const subjects = [...(own ? [t.sourceDigest] : []), ...children];
      const found = await mapLimit(subjects, LISTING_CONCURRENCY, (d) => atSource(src.withDigest(d), signal));
      // Referrers one subject after another, so the image's bound holds before each copy; cosign's
      // tags (at most three per subject, each copied whole or compared by HEAD) meanwhile.
      const referrers: CopiedReferrer[] = [];
      const fallbackTags = new Set<string>();
      let bytesMoved = 0;
      const [tagCopies] = await settled([
        mapLimit(
          found.filter((f) => f.cosignTags.length > 0),
          LISTING_CONCURRENCY,
          (f) =>
            copyCosignTags({ source: clients.source, copier }, src.withDigest(f.digest), dst, {
              dryRun: opts.dryRun,
              signal,
              found: f.cosignTags,
            }),
        ),
        (async () => {
          for (const f of found) {
            if (f.listed.referrers.length === 0) continue;
            const carried = await copyReferrers(
              { ...clients, copier },
              src.withDigest(f.digest),
              dst.withDigest(f.digest),
              {
                artifactTypes,
                dryRun: opts.dryRun,
                signal,
                sourceApi,
                listed: f.listed,
                counted: referrers.length,
              },
            );
            referrers.push(...carried.referrers);
            carried.fallbackTags.forEach((tag) => fallbackTags.add(tag));
            bytesMoved += carried.bytesMoved;
          }
        })(),
      ]);
      const cosignTags = tagCopies.flatMap((c) => c.tags);
      bytesMoved += tagCopies.reduce((sum, c) => sum + c.bytesMoved, 0);
      const moved = [...referrers, ...cosignTags].filter((r) => r.action !== "up-to-date").length;
      const summary = {
        copied: moved,
        upToDate: referrers.length + cosignTags.length - moved,
        bytesMoved,
        ...(fallbackTags.size ? { fallbackTags: [...fallbackTags] } : {}),
      };
      if (moved > 0) {
        opts.emit({
          type: "ReferrersCopied",
          warning: false,
          image: job.image,
          tag: job.tag,
          source: t.source,
          destination: t.destination,
          dryRun: opts.dryRun,
          digest: t.sourceDigest,
          copied: moved,
          artifactTypes: [
            ...new Set(referrers.filter((r) => r.action !== "up-to-date").map((r) => r.artifactType ?? "")),
          ].filter((a) => a !== ""),
          cosignTags: cosignTags.filter((c) => c.action !== "up-to-date").map((c) => c.tag),
          bytesMoved,
        });
      }
      return { ...t, referrers: summary, bytesMoved: t.bytesMoved + bytesMoved };
    } catch (e) {
      const f = failureOf(e);
      return {
        ...t,
        action: "failed",
        reason: "ReferrerCopyFailed",
        error: `copying referrers of ${src} failed: ${f.message}`,
      };
    }
  };
}

/**
 * Waits for every promise (nothing left running when this returns) and returns their values,
 * or throws the first rejection in argument order.
 */
async function settled<A, B>(promises: [Promise<A>, Promise<B>]): Promise<[A, B]> {
  const [a, b] = await Promise.allSettled(promises);
  if (a.status === "rejected") throw a.reason;
  if (b.status === "rejected") throw b.reason;
  return [a.value, b.value];
}

/** `fn` over `items` with at most `limit` at once; results in input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
