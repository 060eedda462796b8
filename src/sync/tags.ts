/**
 * Which tags of an image to sync, as upstream Portager does it: the explicit `tags` first (in
 * the order written), then the source's tags that satisfy `semver`, newest first, at most
 * `maxTags` of them (default 10; 0 = unlimited; explicit tags are not counted), without
 * duplicates. Tags that are not versions never match a constraint.
 * @module
 */
import { DEFAULT_MAX_TAGS, type ImageSpec, matchingTags, SemverConstraint } from "../api/mod.ts";

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
  const constraint = SemverConstraint.parse(image.semver);
  const all = matchingTags(available, constraint);
  const limit = image.maxTags ?? DEFAULT_MAX_TAGS;
  const matched = limit > 0 ? all.slice(0, limit) : all;
  return { tags: mergeTags(explicit, matched), explicit, matched, totalMatches: all.length };
}
