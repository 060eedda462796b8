/**
 * Which tags of an image to sync. Upstream Portager's rule, plus tag patterns:
 *
 * 1. the explicit `tags`, in the order written, always;
 * 2. when `semver` or `tagPatterns` is set, the source's tags are listed, and of those:
 *    a. only tags matching one of `tagPatterns` are kept (when set),
 *    b. tags matching one of `excludeTagPatterns` are dropped,
 *    c. only tags satisfying `semver` are kept (when set; tags that are not versions never do);
 * 3. these matches are ordered newest first — by version precedence; with patterns alone,
 *    tags that are versions first, then the others in reverse text order (dates, build
 *    numbers) — and the first `maxTags` kept (default 10; 0 = all; explicit tags not counted);
 * 4. explicit tags then the matches, without duplicates.
 *
 * When a constraint or pattern is invalid or the source's tags cannot be listed,
 * {@linkcode resolveTags} keeps the explicit tags and the matches among the tags of the
 * previous sync, and says why in `error`: resolution, with its fallback, lives here only.
 * @module
 */
import {
  compareVersions,
  DEFAULT_MAX_TAGS,
  type ImageSpec,
  matchingTags,
  parseVersion,
  SemverConstraint,
  TagPattern,
} from "../api/mod.ts";

import { type Failure, failureOf } from "./result.ts";

/** The outcome of tag resolution for one image. */
export interface ResolvedTags {
  /** Tags to sync, in order: explicit, then matches. */
  tags: string[];
  /** The explicit tags, deduplicated. */
  explicit: string[];
  /** Semver / pattern matches kept (newest first, limited by maxTags). */
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

/** What selects an image's tags from the source's list, parsed. */
interface Selectors {
  semver?: SemverConstraint;
  include: TagPattern[];
  exclude: TagPattern[];
}

/** The image's selectors, or undefined when it has none (explicit tags only). Throws for bad ones. */
function selectorsOf(image: ImageSpec): Selectors | undefined {
  const semver = image.semver && image.semver.trim() !== ""
    ? SemverConstraint.parse(image.semver)
    : undefined;
  const include = (image.tagPatterns ?? []).map((p) => TagPattern.parse(p));
  if (!semver && include.length === 0) return undefined;
  return { semver, include, exclude: (image.excludeTagPatterns ?? []).map((p) => TagPattern.parse(p)) };
}

/** Tags that are versions first, newest first; then the others in reverse text order. */
function newestFirst(tags: readonly string[]): string[] {
  const versions = tags.flatMap((t) => {
    const v = parseVersion(t);
    return v ? [{ t, v }] : [];
  });
  versions.sort((a, b) => compareVersions(b.v, a.v) || (a.t < b.t ? -1 : a.t > b.t ? 1 : 0));
  const others = tags.filter((t) => !parseVersion(t)).sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
  return [...versions.map((x) => x.t), ...others];
}

function select(
  image: ImageSpec,
  explicit: string[],
  sel: Selectors,
  available: readonly string[],
): ResolvedTags {
  const candidates = available.filter((t) =>
    (sel.include.length === 0 || sel.include.some((p) => p.matches(t))) &&
    !sel.exclude.some((p) => p.matches(t))
  );
  const all = sel.semver ? matchingTags(candidates, sel.semver) : newestFirst(candidates);
  const limit = image.maxTags ?? DEFAULT_MAX_TAGS;
  const matched = limit > 0 ? all.slice(0, limit) : all;
  return { tags: mergeTags(explicit, matched), explicit, matched, totalMatches: all.length };
}

/**
 * Resolves an image's tags against the tags its source repository has (`available`; pass
 * undefined when the image has no semver or tagPatterns). Throws `SemverError` or
 * `TagPatternError` for an invalid constraint or pattern.
 */
export function resolveImageTags(image: ImageSpec, available: readonly string[] | undefined): ResolvedTags {
  const explicit = mergeTags(image.tags ?? [], []);
  const sel = selectorsOf(image);
  if (!sel || !available) return { tags: explicit, explicit, matched: [], totalMatches: 0 };
  return select(image, explicit, sel, available);
}

/** Whether the image selects tags from the source's list (semver or tagPatterns). */
export function listsSourceTags(image: ImageSpec): boolean {
  return (!!image.semver && image.semver.trim() !== "") || (image.tagPatterns ?? []).length > 0;
}

/** Tag resolution of one image, with the fallback when it failed. */
export interface TagResolution extends ResolvedTags {
  /** Why resolution failed (`matched` then holds the previous sync's matches, if any). */
  error?: Failure;
}

/** Options for {@linkcode resolveTags}. */
export interface ResolveTagsOptions {
  /** Lists the source repository's tags (called only when the image has valid selectors). */
  listTags: () => Promise<string[]>;
  /** The image's tags in the previous sync's status: the fallback when listing fails. */
  previousTags?: readonly string[];
}

/**
 * Resolves an image's tags: explicit tags, plus matches among the listed tags. Never throws
 * for a bad constraint or pattern or a failed listing: the result then keeps the explicit
 * tags, the previous sync's matches (listing failed) and the failure in `error`.
 */
export async function resolveTags(image: ImageSpec, options: ResolveTagsOptions): Promise<TagResolution> {
  const explicit = mergeTags(image.tags ?? [], []);
  let sel: Selectors | undefined;
  try {
    sel = selectorsOf(image);
  } catch (e) {
    return { tags: explicit, explicit, matched: [], totalMatches: 0, error: failureOf(e, "InvalidSemver") };
  }
  if (!sel) return { tags: explicit, explicit, matched: [], totalMatches: 0 };
  try {
    return select(image, explicit, sel, await options.listTags());
  } catch (e) {
    return { ...select(image, explicit, sel, options.previousTags ?? []), error: failureOf(e) };
  }
}
