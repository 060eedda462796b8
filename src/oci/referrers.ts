/**
 * OCI 1.1 referrers: the artifacts (signatures, SBOMs, scan reports, attestations) whose
 * manifest names another manifest as its `subject`.
 *
 * Listing asks the referrers API (`GET /v2/<name>/referrers/<digest>`, `artifactType` filter,
 * `OCI-Filters-Applied`, `Link` pagination) and falls back to the referrers tag schema (an
 * index tagged `sha256-<hex>`) when the registry answers 404. Cosign's older tag conventions
 * (`sha256-<hex>.sig`, `.att`, `.sbom`) are looked up separately with
 * {@linkcode findCosignTags}. Pushing a manifest with a subject also updates the fallback index
 * (read, merge, write, keeping every entry) on registries without the API.
 *
 * Every answer is bounded (bytes per page, pages, entries) and validated: a registry
 * returning junk gets an {@linkcode OciError} with reason `Protocol`, never a crash.
 * @module
 */

import { repositoryScope } from "./auth.ts";
import { sha256Digest } from "./blobs.ts";
import type { CallOptions, RegistryClient } from "./client.ts";
import { OciError } from "./errors.ts";
import { MAX_MANIFEST_BYTES, OCI_INDEX, OCI_MANIFEST } from "./manifest.ts";
import { digestProblem, Reference } from "./reference.ts";
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

/** Cosign's tag suffixes: signatures, attestations, SBOMs. */
export type CosignTagKind = "sig" | "att" | "sbom";

/** Cosign's tag for a digest's signatures/attestations/SBOM: `sha256-<hex>.sig` and so on. */
export function cosignTag(digest: string, kind: CosignTagKind): string {
  return `${referrersTag(digest)}.${kind}`;
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

function subjectOf(ref: Reference): string {
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

function stringMap(value: unknown, where: string): Record<string, string> {
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

function tooMany(context: string, limit: number): OciError {
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
async function readFallbackIndex(
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

/** One of cosign's tags found next to an image. */
export interface CosignTagRef {
  /** Which kind: signatures, attestations or SBOM. */
  kind: CosignTagKind;
  /** The tag, e.g. `sha256-<hex>.sig`. */
  tag: string;
  /** The manifest digest the tag points to. */
  digest: string;
  /** Its media type. */
  mediaType: string;
  /** Its size in bytes. */
  size: number;
}

/**
 * Looks up cosign's `sha256-<hex>.sig|.att|.sbom` tags for `subject` (pinned by digest) in
 * its repository. Returns the ones that exist, in that order.
 */
export async function findCosignTags(
  client: RegistryClient,
  subject: Reference,
  opts: CallOptions & { kinds?: readonly CosignTagKind[] } = {},
): Promise<CosignTagRef[]> {
  const digest = subjectOf(subject);
  const kinds = opts.kinds ?? ["sig", "att", "sbom"] as const;
  const heads = await Promise.all(kinds.map(async (kind) => {
    const tag = cosignTag(digest, kind);
    const head = await client.headManifest(subject.withTag(tag), opts);
    return head && { kind, tag, digest: head.digest, mediaType: head.mediaType, size: head.size };
  }));
  return heads.filter((h): h is CosignTagRef => h !== undefined);
}

/** What {@linkcode pushReferrer} did. */
export interface PushReferrerResult {
  /** Digest of the pushed referrer manifest. */
  digest: string;
  /** The subject digest the manifest names. */
  subject: string;
  /** The fallback tag updated (registries without the referrers API), if any. */
  fallbackTag?: string;
}

/** Options for {@linkcode pushReferrer}. */
export interface PushReferrerOptions extends CallOptions {
  /**
   * Whether the destination serves the referrers API, when the caller already knows (for
   * example from {@linkcode listReferrers}'s `source`); asked of the registry otherwise.
   */
  api?: boolean;
}

/** The descriptor a manifest with a subject gets in a referrers index. */
export function referrerDescriptor(
  manifest: { bytes: Uint8Array; mediaType: string },
  context: string,
): { descriptor: Referrer; subject: string } {
  if (manifest.bytes.byteLength > MAX_MANIFEST_BYTES) {
    throw new OciError("ManifestTooLarge", `${context} is larger than ${MAX_MANIFEST_BYTES} bytes`);
  }
  let json: Record<string, unknown>;
  try {
    const v = JSON.parse(new TextDecoder().decode(manifest.bytes));
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object");
    json = v;
  } catch (e) {
    throw new OciError("ManifestInvalid", `${context}: not a JSON object (${(e as Error).message})`);
  }
  const subject = json.subject as Record<string, unknown> | undefined;
  if (typeof subject !== "object" || subject === null || typeof subject.digest !== "string") {
    throw new OciError("ManifestInvalid", `${context}: the manifest has no subject`);
  }
  const problem = digestProblem(subject.digest);
  if (problem) throw new OciError("ManifestInvalid", `${context}: subject digest: ${problem}`);
  const descriptor: Referrer = {
    mediaType: manifest.mediaType,
    digest: sha256Digest(manifest.bytes),
    size: manifest.bytes.byteLength,
  };
  // The spec: artifactType, else the config's media type for image manifests.
  const config = json.config as Record<string, unknown> | undefined;
  const artifactType = typeof json.artifactType === "string"
    ? json.artifactType
    : manifest.mediaType === OCI_MANIFEST && typeof config?.mediaType === "string"
    ? config.mediaType
    : undefined;
  if (artifactType) descriptor.artifactType = artifactType;
  if (json.annotations !== undefined) {
    try {
      descriptor.annotations = stringMap(json.annotations, "annotations");
    } catch {
      throw new OciError("ManifestInvalid", `${context}: annotations must map strings to strings`);
    }
  }
  return { descriptor, subject: subject.digest };
}

/**
 * Pushes a manifest that has a `subject` to `dst`'s repository by digest. On a registry
 * without the referrers API it also adds the manifest to the `sha256-<hex>` fallback index:
 * read, merge (every existing entry kept, this one replaced by digest), write. The referrer
 * is pushed before the index, so the index never names a manifest that is not there.
 */
export async function pushReferrer(
  client: RegistryClient,
  dst: Reference,
  manifest: { bytes: Uint8Array; mediaType: string },
  opts: PushReferrerOptions = {},
): Promise<PushReferrerResult> {
  const context = `registry ${dst.registry}: referrer for ${dst.name}`;
  const { descriptor, subject } = referrerDescriptor(manifest, context);
  const ref = new Reference({
    registry: dst.registry,
    repository: dst.repository,
    digest: descriptor.digest,
  });
  await client.putManifest(ref, manifest, opts);
  const api = opts.api ?? await hasReferrersApi(client, ref.withDigest(subject), opts);
  if (api) return { digest: descriptor.digest, subject };
  const tag = referrersTag(subject);
  await addToFallbackIndex(client, ref.withTag(tag), descriptor, opts);
  return { digest: descriptor.digest, subject, fallbackTag: tag };
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

/**
 * Adds (or replaces, by digest) one entry in the fallback index at `tagRef`, keeping every
 * other entry and every other field of the index. Returns false when it was already there.
 */
export async function addToFallbackIndex(
  client: RegistryClient,
  tagRef: Reference,
  entry: Referrer,
  opts: CallOptions = {},
): Promise<boolean> {
  const context = `registry ${tagRef.registry}: referrers tag ${tagRef}`;
  const current = await readFallbackIndex(client, tagRef, opts);
  const json: Record<string, unknown> = current
    ? { ...current.json }
    : { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] };
  // Validate what is there before rewriting it.
  const existing = current ? parseReferrersIndex(current.bytes, context) : [];
  const raw = current && Array.isArray(current.json.manifests) ? current.json.manifests as unknown[] : [];
  const same = existing.findIndex((e) => e.digest === entry.digest);
  if (same >= 0 && JSON.stringify(existing[same]) === JSON.stringify(entry)) return false;
  const manifests = raw.filter((_, i) => i !== same);
  if (manifests.length + 1 > MAX_REFERRERS) throw tooMany(context, MAX_REFERRERS);
  manifests.push(entry);
  json.manifests = manifests;
  json.mediaType ??= OCI_INDEX;
  json.schemaVersion ??= 2;
  const bytes = new TextEncoder().encode(JSON.stringify(json));
  if (bytes.byteLength > MAX_MANIFEST_BYTES) {
    throw new OciError(
      "ManifestTooLarge",
      `${context}: the merged index would exceed ${MAX_MANIFEST_BYTES} bytes`,
    );
  }
  await client.putManifest(tagRef, { bytes, mediaType: OCI_INDEX }, opts);
  return true;
}

/** Default depth of referrers copied: referrers of referrers (a signature on an SBOM) and so on. */
export const DEFAULT_REFERRER_DEPTH = 4;
/** Default most referrers copied for one image (over all depths). */
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
      const listed = await listReferrers(clients.source, src.withDigest(parent), {
        signal: opts.signal,
        api: result.sourceApi ?? opts.sourceApi,
      });
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
        if (result.referrers.length >= max) {
          throw new OciError(
            "Protocol",
            `registry ${src.registry}: more than ${max} referrers to copy for ${src}; refusing an unbounded copy`,
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

/** One cosign tag handled by {@linkcode copyCosignTags}. */
export interface CopiedCosignTag {
  /** The tag, e.g. `sha256-<hex>.sig`. */
  tag: string;
  /** Its manifest digest. */
  digest: string;
  /** What happened to it. */
  action: "copied" | "up-to-date" | "would-copy";
}

/**
 * Copies cosign's `sha256-<hex>.sig|.att|.sbom` tags of `src` (pinned by digest) to the same
 * tags in `dst`'s repository: signatures made in cosign's tag layout travel with the image.
 * A tag already at the same digest is left alone; a changed one (a new signature added) is
 * overwritten with the source's.
 */
export async function copyCosignTags(
  clients: { source: RegistryClient; copier: ManifestCopier },
  src: Reference,
  dst: Reference,
  opts: CallOptions & { dryRun?: boolean; kinds?: readonly CosignTagKind[] } = {},
): Promise<{ tags: CopiedCosignTag[]; bytesMoved: number }> {
  const found = await findCosignTags(clients.source, src, opts);
  const out: CopiedCosignTag[] = [];
  let bytesMoved = 0;
  for (const t of found) {
    const r = await clients.copier.copy(
      src.withTag(t.tag),
      new Reference({
        registry: dst.registry,
        repository: dst.repository,
        tag: t.tag,
      }),
      { dryRun: opts.dryRun, signal: opts.signal },
    );
    bytesMoved += r.bytesMoved;
    out.push({
      tag: t.tag,
      digest: r.digest,
      action: r.upToDate ? "up-to-date" : opts.dryRun ? "would-copy" : "copied",
    });
  }
  return { tags: out, bytesMoved };
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
