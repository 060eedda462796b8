/**
 * Which tags of an image to sync, as upstream Portager does it: the explicit `tags` first (in
 * the order written), then the source's tags that satisfy `semver`, newest first, at most
 * `maxTags` of them (default 10; 0 = unlimited; explicit tags are not counted), without
 * duplicates. Tags that are not versions never match a constraint.
 *
 * When the constraint is invalid or the source's tags cannot be listed, {@linkcode resolveTags}
 * keeps the explicit tags and the semver matches among the tags of the previous sync, and says
 * why in `error`: resolution, with its fallback, lives here only.
 * @module
 */
import { DEFAULT_MAX_TAGS, type ImageSpec, matchingTags, SemverConstraint } from "../api/mod.ts";
import { type Failure, failureOf } from "./result.ts";

/** The outcome of tag resolution for one image. */
export interface ResolvedTags {
  /** Tags to sync, in order: explicit, then semver matches. */
  tags: string[];
  /** The explicit tags, deduplicated. */
  explicit: string[];
  /** Semver matches kept (newest first, limited by maxTags). */
  matched: string[];
  /** How many tags matched before the maxTags limit. */
  totalMatches: number;
}

/** Appends `more` to `first`, dropping duplicates while keeping first occurrences in order. */
export function mergeTags(first: readonly string[], more: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const tag of [...first, ...more]) {
    if (!seen.has(tag)) {
      seen.add(tag);
      out.push(tag);
    }
  }
  return out;
}

/**
 * Resolves an image's tags against the tags its source repository has (`available`; pass
 * undefined when the image has no semver). Throws `SemverError` for an invalid constraint.
 */
export function resolveImageTags(image: ImageSpec, available: readonly string[] | undefined): ResolvedTags {
  const explicit = mergeTags(image.tags ?? [], []);
  if (!image.semver || image.semver.trim() === "" || !available) {
    return { tags: explicit, explicit, matched: [], totalMatches: 0 };
  }
  return matchAgainst(image, explicit, SemverConstraint.parse(image.semver), available);
}

function matchAgainst(
  image: ImageSpec,
  explicit: string[],
  constraint: SemverConstraint,
  available: readonly string[],
): ResolvedTags {
  const all = matchingTags(available, constraint);
  const limit = image.maxTags ?? DEFAULT_MAX_TAGS;
  const matched = limit > 0 ? all.slice(0, limit) : all;
  return { tags: mergeTags(explicit, matched), explicit, matched, totalMatches: all.length };
}

/** Tag resolution of one image, with the fallback when it failed. */
export interface TagResolution extends ResolvedTags {
  /** Why semver resolution failed (`matched` then holds the previous sync's matches, if any). */
  error?: Failure;
}

/** Options for {@linkcode resolveTags}. */
export interface ResolveTagsOptions {
  /** Lists the source repository's tags (called only when the image has a valid constraint). */
  listTags: () => Promise<string[]>;
  /** The image's tags in the previous sync's status: the fallback when listing fails. */
  previousTags?: readonly string[];
}

/**
 * Resolves an image's tags: explicit tags, plus semver matches among the listed tags. Never
 * throws for a bad constraint or a failed listing: the result then keeps the explicit tags,
 * the previous sync's matches (listing failed) and the failure in `error`.
 */
export async function resolveTags(image: ImageSpec, options: ResolveTagsOptions): Promise<TagResolution> {
  const explicit = mergeTags(image.tags ?? [], []);
  if (!image.semver || image.semver.trim() === "") return resolveImageTags(image, undefined);
  let constraint: SemverConstraint;
  try {
    constraint = SemverConstraint.parse(image.semver);
  } catch (e) {
    return { tags: explicit, explicit, matched: [], totalMatches: 0, error: failureOf(e, "InvalidSemver") };
  }
  try {
    return matchAgainst(image, explicit, constraint, await options.listTags());
  } catch (e) {
    const kept = matchAgainst(image, explicit, constraint, options.previousTags ?? []);
    return { ...kept, error: failureOf(e) };
  }
}
