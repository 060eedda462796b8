/**
 * Listing the referrers of a subject: the referrers API (`GET /v2/<name>/referrers/<digest>`,
 * `artifactType` filter, `OCI-Filters-Applied`, `Link` pagination), falling back to the
 * referrers tag schema (an index tagged `sha256-<hex>`) when the registry answers 404; the
 * parsing and validation of referrers indexes; and reading referrer manifests for their real
 * artifact type.
 *
 * Every answer is bounded (bytes per page, pages, entries) and validated: a registry
 * returning junk gets an {@linkcode OciError} with reason `Protocol`, never a crash.
 * @module
 */

import { repositoryScope } from "./auth.ts";
import type { CallOptions, RegistryClient } from "./client.ts";
import { OciError } from "./errors.ts";
import { MAX_MANIFEST_BYTES, OCI_INDEX } from "./manifest.ts";
import { digestProblem, type Reference } from "./reference.ts";
import { nextLinkTarget } from "./tags.ts";

/** Most referrers pages followed for one subject. */
export const MAX_REFERRER_PAGES = 100;
/** Most referrers collected for one subject (over all pages). */
export const MAX_REFERRERS = 10_000;

/** A referrer: a descriptor of a manifest whose `subject` is the listed digest. */
export interface Referrer {
  /** Media type of the referrer manifest (usually the OCI image manifest). */
  mediaType: string;
  /** Digest of the referrer manifest. */
  digest: string;
  /** Size of the referrer manifest in bytes. */
  size: number;
  /** What kind of artifact it is, e.g. `application/spdx+json`. */
  artifactType?: string;
  /** Annotations copied from the referrer manifest. */
  annotations?: Record<string, string>;
}

/** The referrers of one subject and where they came from. */
export interface ReferrerList {
  /** The referrers (already filtered when an artifact type was asked for). */
  referrers: Referrer[];
  /** `api`: the registry's referrers API; `tag`: the `sha256-<hex>` fallback index. */
  source: "api" | "tag";
}

/** Options for {@linkcode listReferrers}. */
export interface ListReferrersOptions extends CallOptions {
  /** Only referrers of this artifact type (filtered by the registry when it can, else here). */
  artifactType?: string;
  /** Most pages followed (default {@linkcode MAX_REFERRER_PAGES}). */
  maxPages?: number;
  /** Most referrers accepted (default {@linkcode MAX_REFERRERS}); more is an error. */
  maxReferrers?: number;
  /**
   * `false` when the registry is known to lack the referrers API (an earlier listing came from
   * the fallback tag): the fallback tag is read directly, saving the 404.
   */
  api?: boolean;
}

/** The tag of the referrers tag schema for a digest: `sha256:abc…` → `sha256-abc…`. */
export function referrersTag(digest: string): string {
  checkDigest(digest, "subject");
  return digest.replace(":", "-");
}

function checkDigest(digest: string, what: string, context?: string): void {
  const problem = digestProblem(digest);
  if (problem) {
    throw new OciError(
      context ? "Protocol" : "InvalidReference",
      context ? `${context}: ${what} has an invalid digest: ${problem}` : `${what}: ${problem}`,
    );
  }
}

/** The digest a reference names, as a referrers subject; an `InvalidReference` error without one. */
export function subjectOf(ref: Reference): string {
  if (!ref.digest) {
    throw new OciError("InvalidReference", `${ref} names no digest; referrers are listed by digest`, {
      reference: ref.toString(),
    });
  }
  checkDigest(ref.digest, `subject of ${ref.name}`);
  return ref.digest;
}

/**
 * Validates one entry of a referrers index. Throws a `Protocol` error naming the entry when
 * it is not a descriptor (digest, size, media type) — the index came from a remote party.
 */
export function parseReferrer(value: unknown, where: string): Referrer {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new OciError("Protocol", `${where} is not a descriptor object`);
  }
  const o = value as Record<string, unknown>;
  if (typeof o.digest !== "string") throw new OciError("Protocol", `${where} has no digest`);
  checkDigest(o.digest, "it", where);
  if (typeof o.size !== "number" || !Number.isSafeInteger(o.size) || o.size < 0) {
    throw new OciError("Protocol", `${where} has no valid size`);
  }
  if (typeof o.mediaType !== "string" || o.mediaType === "") {
    throw new OciError("Protocol", `${where} has no mediaType`);
  }
  const r: Referrer = { mediaType: o.mediaType, digest: o.digest, size: o.size };
  if (o.artifactType !== undefined) {
    if (typeof o.artifactType !== "string") {
      throw new OciError("Protocol", `${where}: artifactType is not a string`);
    }
    r.artifactType = o.artifactType;
  }
  if (o.annotations !== undefined) r.annotations = stringMap(o.annotations, `${where}: annotations`);
  return r;
}

/** Validates a JSON object mapping strings to strings (annotations); a `Protocol` error otherwise. */
export function stringMap(value: unknown, where: string): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new OciError("Protocol", `${where} is not an object`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") throw new OciError("Protocol", `${where}: "${k}" is not a string`);
    out[k] = v;
  }
  return out;
}

/** Parses a referrers index document (API page or fallback tag) into its entries. */
export function parseReferrersIndex(bytes: Uint8Array, context: string): Referrer[] {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new OciError("Protocol", `${context}: the referrers index is not JSON`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new OciError("Protocol", `${context}: the referrers index is not a JSON object`);
  }
  const manifests = (json as Record<string, unknown>).manifests;
  // An empty index may omit the list; anything else must be one.
  if (manifests === undefined || manifests === null) return [];
  if (!Array.isArray(manifests)) {
    throw new OciError("Protocol", `${context}: the referrers index's "manifests" is not a list`);
  }
  return manifests.map((m, i) => parseReferrer(m, `${context}: manifests[${i}]`));
}

/** The `Protocol` error for a referrers list over its bound. */
export function tooMany(context: string, limit: number): OciError {
  return new OciError(
    "Protocol",
    `${context}: more than ${limit} referrers; refusing to read an unbounded list`,
  );
}

/**
 * Lists the referrers of `subject` (a reference pinned by digest). Uses the referrers API and
 * falls back to the `sha256-<hex>` tag index when the registry answers 404; a missing fallback
 * index means no referrers.
 */
export async function listReferrers(
  client: RegistryClient,
  subject: Reference,
  opts: ListReferrersOptions = {},
): Promise<ReferrerList> {
  const digest = subjectOf(subject);
  if (opts.api === false) return await listFallback(client, subject, opts);
  const maxPages = opts.maxPages ?? MAX_REFERRER_PAGES;
  const maxReferrers = opts.maxReferrers ?? MAX_REFERRERS;
  const context = `registry ${subject.registry}: referrers of ${subject.name}@${digest}`;
  const query = opts.artifactType ? `?${new URLSearchParams({ artifactType: opts.artifactType })}` : "";
  let path: string | undefined = `/v2/${subject.repository}/referrers/${digest}${query}`;
  const seen = new Set<string>();
  const referrers: Referrer[] = [];
  let filtered = true;
  let pages = 0;
  while (path) {
    if (seen.has(path)) throw new OciError("Protocol", `${context}: the pagination links loop`);
    if (++pages > maxPages) {
      throw new OciError("Protocol", `${context}: more than ${maxPages} pages; refusing to follow further`);
    }
    seen.add(path);
    // only the first page's 404 means "no referrers API"
    const res = await requestReferrers(client, subject, { path, notFound: pages === 1, signal: opts.signal });
    if (res.status === 404) {
      await res.discard();
      return await listFallback(client, subject, opts);
    }
    const tooLarge = () =>
      new OciError("ManifestTooLarge", `${context}: a page is larger than ${MAX_MANIFEST_BYTES} bytes`, {
        registry: subject.registry,
      });
    if (Number(res.headers.get("content-length") ?? "0") > MAX_MANIFEST_BYTES) {
      await res.discard();
      throw tooLarge();
    }
    const page = parseReferrersIndex(await res.bytes(MAX_MANIFEST_BYTES, tooLarge), context);
    if (referrers.length + page.length > maxReferrers) throw tooMany(context, maxReferrers);
    referrers.push(...page);
    const applied = (res.headers.get("oci-filters-applied") ?? "").split(",").map((s) => s.trim());
    if (!applied.includes("artifactType")) filtered = false;
    const next = nextLinkTarget(res.headers.get("link"));
    path = next ? sameOriginPath(next, res.url, context) : undefined;
  }
  return {
    referrers: opts.artifactType && !filtered
      ? referrers.filter((r) => r.artifactType === opts.artifactType)
      : referrers,
    source: "api",
  };
}

/** A `Link` target as a path on the registry; a link to another host is refused. */
function sameOriginPath(target: string, base: string, context: string): string {
  const from = new URL(base);
  let to: URL;
  try {
    to = new URL(target, from);
  } catch {
    throw new OciError("Protocol", `${context}: invalid pagination link "${target}"`);
  }
  if (to.origin !== from.origin) {
    throw new OciError(
      "Protocol",
      `${context}: the pagination link points to another host (${to.host}); not following it`,
    );
  }
  return `${to.pathname}${to.search}`;
}

async function listFallback(
  client: RegistryClient,
  subject: Reference,
  opts: ListReferrersOptions,
): Promise<ReferrerList> {
  const digest = subjectOf(subject);
  const index = await readFallbackIndex(client, subject.withTag(referrersTag(digest)), opts);
  const max = opts.maxReferrers ?? MAX_REFERRERS;
  const context = `registry ${subject.registry}: referrers tag ${subject.name}:${referrersTag(digest)}`;
  const all = index ? parseReferrersIndex(index.bytes, context) : [];
  if (all.length > max) throw tooMany(context, max);
  return {
    referrers: opts.artifactType ? all.filter((r) => r.artifactType === opts.artifactType) : all,
    source: "tag",
  };
}

/** The fallback index at a tag: its bytes and JSON, or undefined when the tag does not exist. */
export async function readFallbackIndex(
  client: RegistryClient,
  tagRef: Reference,
  opts: CallOptions,
): Promise<{ bytes: Uint8Array; json: Record<string, unknown> } | undefined> {
  try {
    const got = await client.getManifest(tagRef, opts);
    if (!got.manifest.isIndex) {
      throw new OciError(
        "Protocol",
        `registry ${tagRef.registry}: ${tagRef} should be a referrers index but is a ${got.mediaType}`,
        { registry: tagRef.registry, reference: tagRef.toString() },
      );
    }
    return { bytes: got.bytes, json: got.manifest.json };
  } catch (e) {
    if (e instanceof OciError && e.reason === "NotFound") return undefined;
    throw e;
  }
}

/** Whether the registry serves the referrers API (a 404 means it does not). */
export async function hasReferrersApi(
  client: RegistryClient,
  subject: Reference,
  opts: CallOptions = {},
): Promise<boolean> {
  const res = await requestReferrers(client, subject, { notFound: true, signal: opts.signal });
  await res.discard();
  return res.status !== 404;
}

/**
 * One GET of the referrers API for `subject`: `path` is a page (default the first, unfiltered);
 * with `notFound` a 404 is an answer, not an error.
 */
function requestReferrers(
  client: RegistryClient,
  subject: Reference,
  opts: { path?: string; notFound: boolean; signal?: AbortSignal },
) {
  const digest = subjectOf(subject);
  return client.transport.request(subject.registry, {
    method: "GET",
    path: opts.path ?? `/v2/${subject.repository}/referrers/${digest}`,
    scopes: [repositoryScope(subject.repository, ["pull"])],
    headers: { accept: OCI_INDEX },
    accept: opts.notFound ? [404] : [],
    reference: `${subject.name}@${digest}`,
    action: "list referrers of",
    signal: opts.signal,
  });
}

/** The empty config media type go-containerregistry writes as fallback-index artifactType. */
export const EMPTY_CONFIG_MEDIA_TYPE = "application/vnd.oci.empty.v1+json";

/**
 * Fills in the real artifact type of referrers whose listed type is missing or the empty
 * config's (go-containerregistry, hence cosign and crane, writes the config's media type into
 * fallback indexes), by reading at most `max` of their manifests. Others are returned as is.
 */
export async function resolveArtifactTypes(
  client: RegistryClient,
  subject: Reference,
  referrers: readonly Referrer[],
  opts: CallOptions & { max?: number } = {},
): Promise<Referrer[]> {
  let budget = opts.max ?? 20;
  const out: Referrer[] = [];
  for (const r of referrers) {
    if ((r.artifactType && r.artifactType !== EMPTY_CONFIG_MEDIA_TYPE) || budget <= 0) {
      out.push(r);
      continue;
    }
    budget--;
    const got = await client.getManifest(subject.withDigest(r.digest), opts);
    const json = got.manifest.json;
    const config = json.config as { mediaType?: unknown } | undefined;
    const artifactType = typeof json.artifactType === "string"
      ? json.artifactType
      : typeof config?.mediaType === "string"
      ? config.mediaType
      : r.artifactType;
    out.push(artifactType ? { ...r, artifactType } : r);
  }
  return out;
}
