/**
 * Semantic versions and constraints with the syntax of Masterminds/semver v3 (what upstream
 * Portager's `images[].semver` uses): `1.x`, `1.2.x`, `~1.3.0`, `^1.3.0`, `>= 1.22.0, < 1.23.0`,
 * `1.2 - 1.4`, `||`, and `v` prefixes. Tags are parsed leniently like Masterminds' `NewVersion`
 * (`1`, `1.2`, `v1.2.3`, `1.2.3-rc.1+build`); anything else is "not a version" and ignored.
 *
 * Pre-releases: a version with a pre-release (`1.3.0-rc.1`) matches only when the constraint
 * group names a pre-release on the same major.minor.patch (`>= 1.3.0-rc.0`), so `^1.2.0` never
 * picks up release candidates.
 *
 * This lives in `src/api` because the constraint grammar is part of the ImageSync API: the
 * schema rejects a constraint that does not parse, and `src/sync` resolves tags with it.
 * @module
 */

import { ValueError, valueProblem } from "./value_error.ts";

/** A parsed semantic version; segments are bigints so long numeric tags never lose precision. */
export interface SemVer {
  /** Major version. */
  major: bigint;
  /** Minor version (0 when the tag omitted it, as in `1`). */
  minor: bigint;
  /** Patch version (0 when the tag omitted it, as in `1.2`). */
  patch: bigint;
  /** Pre-release identifiers (`rc.1` → ["rc", 1n]); empty for a release. */
  prerelease: Array<string | bigint>;
  /** Build metadata after `+`, ignored when comparing. */
  build: string;
  /** The text it was parsed from, e.g. the tag `v1.2.3`. */
  original: string;
}

/** Raised for a constraint that does not parse; `reason` is stable for conditions and Events. */
export class SemverError extends ValueError {
  /** Always "InvalidSemver". */
  override readonly reason = "InvalidSemver";
  /** Always "SemverError". */
  override readonly name = "SemverError";
}

const MAX_UINT64 = (1n << 64n) - 1n;
const IDENT = "[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*";
const VERSION_RE = new RegExp(
  `^v?(\\d+)(?:\\.(\\d+))?(?:\\.(\\d+))?(?:-(${IDENT}))?(?:\\+(${IDENT}))?$`,
);
const PARTIAL_RE = new RegExp(
  `^v?(\\d+|[xX*])(?:\\.(\\d+|[xX*]))?(?:\\.(\\d+|[xX*]))?(?:-(${IDENT}))?(?:\\+(${IDENT}))?$`,
);

function segment(text: string | undefined): bigint | undefined {
  if (text === undefined) return 0n;
  const n = BigInt(text);
  return n > MAX_UINT64 ? undefined : n;
}

function parsePrerelease(text: string | undefined): Array<string | bigint> | undefined {
  if (!text) return [];
  const out: Array<string | bigint> = [];
  for (const id of text.split(".")) {
    if (/^\d+$/.test(id)) {
      // SemVer: numeric identifiers must not have leading zeros.
      if (id.length > 1 && id.startsWith("0")) return undefined;
      out.push(BigInt(id));
    } else {
      out.push(id);
    }
  }
  return out;
}

/**
 * Parses a tag as a version the way Masterminds' `NewVersion` does (`v` prefix, 1–3 numeric
 * segments, optional pre-release and build); returns undefined when the tag is not a version.
 */
export function parseVersion(text: string): SemVer | undefined {
  const m = VERSION_RE.exec(text);
  if (!m) return undefined;
  const major = segment(m[1]);
  const minor = segment(m[2]);
  const patch = segment(m[3]);
  const prerelease = parsePrerelease(m[4]);
  if (major === undefined || minor === undefined || patch === undefined || !prerelease) {
    return undefined;
  }
  return { major, minor, patch, prerelease, build: m[5] ?? "", original: text };
}

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function comparePrerelease(a: Array<string | bigint>, b: Array<string | bigint>): number {
  if (a.length === 0 || b.length === 0) {
    // A release sorts after any of its pre-releases.
    return a.length === b.length ? 0 : a.length === 0 ? 1 : -1;
  }
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i], y = b[i];
    if (typeof x === "bigint" && typeof y === "bigint") {
      const c = cmp(x, y);
      if (c !== 0) return c;
    } else if (typeof x === "bigint") {
      return -1; // numeric identifiers sort before alphanumeric ones
    } else if (typeof y === "bigint") {
      return 1;
    } else if (x !== y) {
      return x < y ? -1 : 1;
    }
  }
  return cmp(BigInt(a.length), BigInt(b.length));
}

/** Orders two versions by SemVer precedence (build metadata ignored): -1, 0 or 1. */
export function compareVersions(a: SemVer, b: SemVer): number {
  return cmp(a.major, b.major) || cmp(a.minor, b.minor) || cmp(a.patch, b.patch) ||
    comparePrerelease(a.prerelease, b.prerelease);
}

type Op = "=" | "!=" | ">" | "<" | ">=" | "<=" | "~" | "^";

/** One comparator: an operator and a (possibly wildcarded) version. */
interface Comparator {
  op: Op;
  /** The version with wildcards/missing parts as 0. */
  con: SemVer;
  /** The major part was a wildcard (`*`, `x`): matches any version for =, ~ and ^. */
  anyMajor: boolean;
  /** The minor part was a wildcard or missing (`1`, `1.x`). */
  minorDirty: boolean;
  /** The patch part was a wildcard or missing (`1.2`, `1.2.x`). */
  patchDirty: boolean;
  text: string;
}

const OPS: Array<[string, Op]> = [
  ["!=", "!="],
  [">=", ">="],
  ["=>", ">="],
  ["<=", "<="],
  ["=<", "<="],
  ["~>", "~"],
  [">", ">"],
  ["<", "<"],
  ["=", "="],
  ["~", "~"],
  ["^", "^"],
];

function isWild(part: string | undefined): boolean {
  return part === "x" || part === "X" || part === "*";
}

function parseComparator(op: Op, versionText: string, whole: string): Comparator {
  const m = PARTIAL_RE.exec(versionText);
  if (!m) {
    throw new SemverError(
      whole,
      `invalid semver constraint "${whole}": "${versionText}" is not a version ` +
        `(write e.g. 1.2.3, 1.2, 1.x or v1.2.3)`,
    );
  }
  const [, maj, min, pat, pre, build] = m;
  const anyMajor = isWild(maj);
  const minorDirty = !anyMajor && (min === undefined || isWild(min));
  const patchDirty = !anyMajor && !minorDirty && (pat === undefined || isWild(pat));
  const num = (s: string | undefined, zero: boolean) => (zero || s === undefined ? 0n : BigInt(s));
  const prerelease = parsePrerelease(pre);
  if (!prerelease) {
    throw new SemverError(
      whole,
      `invalid semver constraint "${whole}": pre-release "${pre}" has a number with a leading zero`,
    );
  }
  const major = num(maj, anyMajor);
  const minor = num(min, anyMajor || minorDirty);
  const patch = num(pat, anyMajor || minorDirty || patchDirty);
  for (const n of [major, minor, patch]) {
    if (n > MAX_UINT64) {
      throw new SemverError(whole, `invalid semver constraint "${whole}": number too large`);
    }
  }
  return {
    op,
    con: { major, minor, patch, prerelease, build: build ?? "", original: versionText },
    anyMajor,
    minorDirty,
    patchDirty,
    text: op === "=" ? versionText : `${op}${versionText}`,
  };
}

function tokenize(group: string, whole: string): Comparator[] {
  // Hyphen ranges ("1.2 - 1.4.5") become ">= 1.2, <= 1.4.5"; the spaces around "-" are required.
  const rewritten = group.replace(
    /(\S+)\s+-\s+(\S+)/g,
    (_all, a: string, b: string) => `>=${a} <=${b}`,
  );
  const out: Comparator[] = [];
  let rest = rewritten.trim();
  if (rest === "") {
    throw new SemverError(whole, `invalid semver constraint "${whole}": empty alternative`);
  }
  while (rest.length > 0) {
    let op: Op = "=";
    for (const [text, value] of OPS) {
      if (rest.startsWith(text)) {
        op = value;
        rest = rest.slice(text.length).trimStart();
        break;
      }
    }
    const m = /^[^\s,]+/.exec(rest);
    if (!m) {
      throw new SemverError(
        whole,
        `invalid semver constraint "${whole}": an operator must be followed by a version`,
      );
    }
    out.push(parseComparator(op, m[0], whole));
    rest = rest.slice(m[0].length);
    const sep = /^\s*,?\s*/.exec(rest)![0];
    rest = rest.slice(sep.length);
  }
  return out;
}

function tilde(v: SemVer, c: Comparator): boolean {
  if (c.anyMajor) return true;
  if (compareVersions(v, c.con) < 0) return false;
  if (v.major !== c.con.major) return false;
  return c.minorDirty || v.minor === c.con.minor;
}

function caret(v: SemVer, c: Comparator): boolean {
  if (c.anyMajor) return true;
  if (compareVersions(v, c.con) < 0) return false;
  if (c.con.major > 0n || c.minorDirty) return v.major === c.con.major;
  if (v.major > 0n) return false;
  if (c.con.minor > 0n || c.patchDirty) return v.minor === c.con.minor;
  if (v.minor > 0n) return false;
  return v.patch === c.con.patch;
}

function check(v: SemVer, c: Comparator): boolean {
  const dirty = c.anyMajor || c.minorDirty || c.patchDirty;
  switch (c.op) {
    case "=":
      return dirty ? tilde(v, c) : compareVersions(v, c.con) === 0;
    case "!=":
      if (!dirty) return compareVersions(v, c.con) !== 0;
      if (c.anyMajor) return false;
      if (v.major !== c.con.major) return true;
      if (c.minorDirty) return false;
      if (v.minor !== c.con.minor) return true;
      return comparePrerelease(v.prerelease, c.con.prerelease) !== 0;
    case ">":
      if (!dirty || c.anyMajor) return compareVersions(v, c.con) > 0;
      if (v.major !== c.con.major) return v.major > c.con.major;
      if (c.minorDirty) return false;
      return v.minor > c.con.minor;
    case "<":
      return compareVersions(v, c.con) < 0;
    case ">=":
      return compareVersions(v, c.con) >= 0;
    case "<=":
      if (!dirty) return compareVersions(v, c.con) <= 0;
      if (c.anyMajor) return true;
      if (v.major !== c.con.major) return v.major < c.con.major;
      return c.minorDirty || v.minor <= c.con.minor;
    case "~":
      return tilde(v, c);
    case "^":
      return caret(v, c);
  }
}

/** A parsed constraint: alternatives (`||`) of comparator groups that must all hold. */
export class SemverConstraint {
  /** The constraint as written. */
  readonly text: string;
  readonly #groups: Comparator[][];

  private constructor(text: string, groups: Comparator[][]) {
    this.text = text;
    this.#groups = groups;
  }

  /** Parses `text`; throws {@linkcode SemverError} with a message naming the bad part. */
  static parse(text: string): SemverConstraint {
    if (text.trim() === "") throw new SemverError(text, "semver constraint is empty");
    const groups = text.split("||").map((g) => tokenize(g, text));
    return new SemverConstraint(text, groups);
  }

  /** Whether `version` (a tag or parsed version) satisfies the constraint. */
  matches(version: SemVer | string): boolean {
    const v = typeof version === "string" ? parseVersion(version) : version;
    if (!v) return false;
    return this.#groups.some((group) => {
      if (v.prerelease.length > 0) {
        const named = group.some((c) =>
          c.con.prerelease.length > 0 && c.con.major === v.major && c.con.minor === v.minor &&
          c.con.patch === v.patch
        );
        if (!named) return false;
      }
      return group.every((c) => check(v, c));
    });
  }

  /** The normalized constraint, e.g. `>=1.22.0 <1.23.0 || ^2`. */
  toString(): string {
    return this.#groups.map((g) => g.map((c) => c.text).join(" ")).join(" || ");
  }
}

/** Parses a constraint, returning a message for the user instead of throwing. */
export function semverConstraintProblem(text: string): string | undefined {
  return valueProblem(text, SemverConstraint.parse);
}

/** Options for {@linkcode matchingTags}. */
export interface MatchingTagsOptions {
  /** Keep only the newest N matches; 0 or undefined keeps all. */
  limit?: number;
}

/**
 * The tags that satisfy `constraint`, newest first (equal versions ordered by tag text), at
 * most `limit` of them. Tags that are not versions are ignored.
 */
export function matchingTags(
  tags: Iterable<string>,
  constraint: SemverConstraint | string,
  opts: MatchingTagsOptions = {},
): string[] {
  const c = typeof constraint === "string" ? SemverConstraint.parse(constraint) : constraint;
  const matched: SemVer[] = [];
  for (const tag of tags) {
    const v = parseVersion(tag);
    if (v && c.matches(v)) matched.push(v);
  }
  matched.sort((a, b) =>
    compareVersions(b, a) || (a.original < b.original ? -1 : a.original > b.original ? 1 : 0)
  );
  const limit = opts.limit ?? 0;
  const kept = limit > 0 ? matched.slice(0, limit) : matched;
  return kept.map((v) => v.original);
}
