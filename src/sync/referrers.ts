/**
 * Carrying referrers with the images (`spec.copyReferrers`, ours): after a tag is copied, or
 * found up to date, its source digest's referrers (signatures, attestations, SBOMs, scan
 * reports — and their own referrers) are copied by digest, and cosign's `sha256-<hex>.sig`,
 * `.att`, `.sbom` tags with them. Only what the destination lacks moves, so a referrer added
 * at the source later arrives on the next sync; the price for an image without referrers is
 * one referrers read at the source (plus three tag HEADs for cosign's tags when no artifact
 * type filter is set). A dry run plans without writing.
 *
 * The destination must hold the image at the source's digest: with a platform filter the
 * copied index is rewritten, the source digest's referrers do not apply and none are found.
 * @module
 */
import { Copier, type RegistryClient } from "../oci/mod.ts";
import { copyCosignTags, copyReferrers } from "../oci/referrers.ts";
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
  /** Receives the ReferrersCopied event. */
  emit: (e: SyncEvent) => void;
}

/**
 * The carrier of a sync: copies with its own copier (never a platform filter, so referrer
 * digests are preserved). A failure to carry fails the tag with reason ReferrerCopyFailed
 * (the image itself stays synced).
 */
export function referrerCarrier(
  clients: { source: RegistryClient; destination: RegistryClient },
  config: CopyReferrersConfig,
  opts: ReferrerCarrierOptions,
): ReferrerCarrier {
  const copier = new Copier(clients, { concurrency: opts.concurrency });
  const artifactTypes = config.artifactTypes?.length ? config.artifactTypes : undefined;
  // Learned from the first listing: a source without the referrers API is asked for the
  // fallback tag directly afterwards (one read per tag, not two).
  let sourceApi: boolean | undefined;
  return async (job, t, signal) => {
    if (t.action === "failed" || !t.sourceDigest) return t;
    const src = job.source.withDigest(t.sourceDigest);
    const dst = job.destination.withDigest(t.sourceDigest);
    try {
      const carried = await copyReferrers({ ...clients, copier }, src, dst, {
        artifactTypes,
        dryRun: opts.dryRun,
        signal,
        sourceApi,
      });
      sourceApi ??= carried.sourceApi;
      const tags = artifactTypes
        ? { tags: [], bytesMoved: 0 }
        : await copyCosignTags({ source: clients.source, copier }, src, dst, { dryRun: opts.dryRun, signal });
      const moved = [...carried.referrers, ...tags.tags].filter((r) => r.action !== "up-to-date").length;
      const summary = {
        copied: moved,
        upToDate: carried.referrers.length + tags.tags.length - moved,
        bytesMoved: carried.bytesMoved + tags.bytesMoved,
        ...(carried.fallbackTags.length ? { fallbackTags: carried.fallbackTags } : {}),
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
            ...new Set(
              carried.referrers.filter((r) => r.action !== "up-to-date").map((r) => r.artifactType ?? ""),
            ),
          ].filter((a) => a !== ""),
          cosignTags: tags.tags.filter((c) => c.action !== "up-to-date").map((c) => c.tag),
          bytesMoved: summary.bytesMoved,
        });
      }
      return { ...t, referrers: summary, bytesMoved: t.bytesMoved + summary.bytesMoved };
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
