/**
 * Copying the referrers of an image, recursively (referrers of referrers), by digest, with
 * the fallback index kept up to date on destinations without the referrers API.
 * @module
 */

import type { CallOptions, RegistryClient } from "./client.ts";
import { OciError } from "./errors.ts";
import { Reference } from "./reference.ts";
import {
  hasReferrersApi,
  listReferrers,
  type Referrer,
  type ReferrerList,
  referrersTag,
  subjectOf,
} from "./referrers_list.ts";
import { addToFallbackIndex, referrerDescriptor } from "./referrers_push.ts";

/** Default depth of referrers copied: referrers of referrers (a signature on an SBOM) and so on. */
export const DEFAULT_REFERRER_DEPTH = 4;
/** Default most referrers copied for one image (over all depths, and its platform manifests'). */
export const DEFAULT_MAX_COPIED_REFERRERS = 200;

/** One referrer handled by {@linkcode copyReferrers}. */
export interface CopiedReferrer {
  /** Digest of the referrer manifest (the same at both ends). */
  digest: string;
  /** Its artifact type, from its manifest. */
  artifactType?: string;
  /** The digest it refers to. */
  subject: string;
  /** 1 for a referrer of the image, 2 for a referrer of a referrer, … */
  depth: number;
  /** What happened to it. */
  action: "copied" | "up-to-date" | "would-copy";
}

/** What {@linkcode copyReferrers} did (or, in a dry run, would do). */
export interface CopyReferrersResult {
  /** Referrers handled, in the order they were reached (breadth first). */
  referrers: CopiedReferrer[];
  /** Whether the destination serves the referrers API (asked only when something was copied). */
  destinationApi?: boolean;
  /** Fallback tags written at the destination. */
  fallbackTags: string[];
  /** Blob bytes moved for referrers (planned in a dry run). */
  bytesMoved: number;
  /** Whether the source answered through the referrers API (false: the fallback tag). */
  sourceApi?: boolean;
}

/** Options for {@linkcode copyReferrers}. */
export interface CopyReferrersOptions extends CallOptions {
  /** Only referrers of these artifact types (at every depth); all when absent or empty. */
  artifactTypes?: readonly string[];
  /** How deep to follow referrers of referrers (default {@linkcode DEFAULT_REFERRER_DEPTH}). */
  maxDepth?: number;
  /** Most referrers copied (default {@linkcode DEFAULT_MAX_COPIED_REFERRERS}); more is an error. */
  maxReferrers?: number;
  /** Plan only: read both registries, write nothing. */
  dryRun?: boolean;
  /** `false` when the source is known to lack the referrers API (see {@linkcode ListReferrersOptions.api}). */
  sourceApi?: boolean;
  /** The source's referrers of `src` itself, when already listed (unfiltered): not listed again. */
  listed?: ReferrerList;
  /**
   * Referrers already handled for the same image by earlier calls (its other platform
   * manifests): they count against `maxReferrers`, so the bound holds for the whole image.
   */
  counted?: number;
}

/** A manifest copier, as {@linkcode copyReferrers} uses it (the OCI `Copier`). */
export interface ManifestCopier {
  /** Copies `src` (pinned by digest) to `dst` (pinned by the same digest), blobs first. */
  copy(
    src: Reference,
    dst: Reference,
    opts: { dryRun?: boolean; signal?: AbortSignal },
  ): Promise<{ digest: string; upToDate?: boolean; bytesMoved: number }>;
}

/**
 * Copies the referrers of `src` (an image pinned by digest) to `dst`'s repository,
 * recursively (referrers of referrers up to `maxDepth`), each by digest so digests are
 * preserved: blobs first, then the manifest, then — on a destination without the referrers
 * API — its entry in the `sha256-<hex>` fallback index. `dst` must already hold the subject at
 * the same digest. Referrers already at the destination are not copied again, so a referrer
 * added at the source later (a new signature on an unchanged image) arrives on the next sync.
 * The `copier` must copy manifests unchanged (no platform filter).
 */
export async function copyReferrers(
  clients: { source: RegistryClient; destination: RegistryClient; copier: ManifestCopier },
  src: Reference,
  dst: Reference,
  opts: CopyReferrersOptions = {},
): Promise<CopyReferrersResult> {
  const subject = subjectOf(src);
  if (dst.digest !== undefined && dst.digest !== subject) {
    throw new OciError(
      "InvalidReference",
      `referrers of ${src} can only be copied to the same digest, not ${dst.digest}`,
      { reference: dst.toString() },
    );
  }
  const maxDepth = opts.maxDepth ?? DEFAULT_REFERRER_DEPTH;
  const max = opts.maxReferrers ?? DEFAULT_MAX_COPIED_REFERRERS;
  const counted = opts.counted ?? 0;
  const types = opts.artifactTypes?.length ? new Set(opts.artifactTypes) : undefined;
  const dstRepo = new Reference({ registry: dst.registry, repository: dst.repository, digest: subject });
  const result: CopyReferrersResult = {
    referrers: [],
    fallbackTags: [],
    bytesMoved: 0,
  };
  let api: boolean | undefined;
  const seen = new Set<string>([subject]);
  let level = [subject];
  for (let depth = 1; depth <= maxDepth && level.length > 0; depth++) {
    const next: string[] = [];
    for (const parent of level) {
      const listed = depth === 1 && opts.listed ? opts.listed : await listReferrers(
        clients.source,
        src.withDigest(parent),
        { signal: opts.signal, api: result.sourceApi ?? opts.sourceApi },
      );
      result.sourceApi ??= listed.source === "api";
      // The price of carrying referrers for an image without any: this one read.
      if (listed.referrers.length === 0) continue;
      const there = await listOrEmpty(clients.destination, dstRepo.withDigest(parent), opts);
      const present = new Set(there.map((r) => r.digest));
      for (const r of listed.referrers) {
        if (seen.has(r.digest)) continue;
        seen.add(r.digest);
        // The listed artifactType may be missing or the config's (go-containerregistry's
        // fallback index): read the manifest for the real one.
        const fetched = await clients.source.getManifest(src.withDigest(r.digest), opts);
        const { descriptor, subject: named } = referrerDescriptor(
          { bytes: fetched.bytes, mediaType: fetched.mediaType },
          `registry ${src.registry}: referrer ${src.name}@${r.digest}`,
        );
        if (named !== parent) {
          throw new OciError(
            "Protocol",
            `registry ${src.registry}: ${src.name}@${r.digest} is listed as a referrer of ${parent} but its subject is ${named}`,
            { registry: src.registry },
          );
        }
        if (types && !types.has(descriptor.artifactType ?? "")) continue;
        if (counted + result.referrers.length >= max) {
          throw new OciError(
            "Protocol",
            `registry ${src.registry}: more than ${max} referrers to copy for ${src}` +
              `${counted > 0 ? " and the other manifests of its image" : ""}; refusing an unbounded copy`,
            { registry: src.registry },
          );
        }
        const item: CopiedReferrer = {
          digest: r.digest,
          subject: parent,
          depth,
          action: present.has(r.digest) ? "up-to-date" : opts.dryRun ? "would-copy" : "copied",
          ...(descriptor.artifactType ? { artifactType: descriptor.artifactType } : {}),
        };
        if (item.action !== "up-to-date") {
          const copied = await clients.copier.copy(src.withDigest(r.digest), dstRepo.withDigest(r.digest), {
            dryRun: opts.dryRun,
            signal: opts.signal,
          });
          result.bytesMoved += copied.bytesMoved;
          if (!opts.dryRun) {
            api ??= await hasReferrersApi(clients.destination, dstRepo, opts);
            if (!api) {
              const tagRef = dstRepo.withTag(referrersTag(parent));
              if (await addToFallbackIndex(clients.destination, tagRef, descriptor, opts)) {
                if (!result.fallbackTags.includes(tagRef.tag!)) result.fallbackTags.push(tagRef.tag!);
              }
            }
          }
        }
        result.referrers.push(item);
        next.push(r.digest);
      }
    }
    level = next;
  }
  if (api !== undefined) result.destinationApi = api;
  return result;
}

/** The destination's referrers of a digest, or none when its repository does not exist yet. */
async function listOrEmpty(
  client: RegistryClient,
  subject: Reference,
  opts: CallOptions,
): Promise<Referrer[]> {
  try {
    return (await listReferrers(client, subject, opts)).referrers;
  } catch (e) {
    if (e instanceof OciError && e.reason === "NotFound") return [];
    throw e;
  }
}
