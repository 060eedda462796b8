/**
 * Manifest media types and parsing: what a manifest references (blobs, child manifests),
 * Docker schema1 refusal, platform filters. Manifest bytes are always kept exactly as served
 * so digests are preserved.
 * @module
 */

import { OciError } from "./errors.ts";
import { digestProblem } from "./reference.ts";

/** OCI image manifest. */
export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
/** OCI image index. */
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
/** Docker image manifest, schema 2. */
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
/** Docker manifest list (multi-arch). */
export const DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
/** Docker schema 1 manifest (refused). */
export const DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json";
/** Signed Docker schema 1 manifest (refused). */
export const DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/** Media types we accept, in the Accept header of manifest requests. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  OCI_INDEX,
  OCI_MANIFEST,
  DOCKER_MANIFEST_LIST,
  DOCKER_MANIFEST,
];

/** The Accept header for manifest requests. */
export const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(", ");

/** Largest manifest we read (4 MiB, the distribution default limit). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** An OCI platform. */
export interface Platform {
  /** Operating system, e.g. "linux". */
  os: string;
  /** CPU architecture, e.g. "amd64". */
  architecture: string;
  /** Variant, e.g. "v8" for arm64. */
  variant?: string;
}

/** A content descriptor: what a manifest points at. */
export interface Descriptor {
  /** Media type of the target. */
  mediaType: string;
  /** Digest of the target. */
  digest: string;
  /** Size of the target in bytes. */
  size: number;
  /** Platform, for index entries. */
  platform?: Platform;
  /** Alternate URLs: set on foreign / non-distributable layers. */
  urls?: string[];
  /** Annotations. */
  annotations?: Record<string, string>;
}

/** A parsed manifest: its kind, the blobs it references and (for indexes) its children. */
export interface ParsedManifest {
  /** The effective media type. */
  mediaType: string;
  /** True for OCI indexes and Docker manifest lists. */
  isIndex: boolean;
  /** Config and layer blobs to copy (image manifests); empty for indexes. */
  blobs: Descriptor[];
  /** Child manifests (indexes); empty for image manifests. */
  manifests: Descriptor[];
  /** The decoded JSON, for callers that need more fields. */
  json: Record<string, unknown>;
}

/** True for index/list media types. */
export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === OCI_INDEX || mediaType === DOCKER_MANIFEST_LIST;
}

/** True for layers that registries do not hold (Windows foreign layers and the like). */
export function isNonDistributable(d: Descriptor): boolean {
  return /foreign|nondistributable/.test(d.mediaType);
}

function asDescriptor(v: unknown, where: string, context: string): Descriptor {
  if (typeof v !== "object" || v === null) {
    throw new OciError("ManifestInvalid", `${context}: ${where} is not a descriptor object`);
  }
  const o = v as Record<string, unknown>;
  if (typeof o.digest !== "string" || typeof o.size !== "number") {
    throw new OciError(
      "ManifestInvalid",
      `${context}: ${where} lacks a digest or size`,
    );
  }
  const problem = contentDigestProblem(o.digest);
  if (problem) {
    // The digest goes into URLs (`/blobs/<digest>`): a path in its place must never get that far.
    throw new OciError("ManifestInvalid", `${context}: ${where} has an invalid digest: ${problem}`);
  }
  if (!Number.isSafeInteger(o.size) || o.size < 0) {
    throw new OciError("ManifestInvalid", `${context}: ${where} has an invalid size ${o.size}`);
  }
  const d: Descriptor = {
    mediaType: typeof o.mediaType === "string" ? o.mediaType : "",
    digest: o.digest,
    size: o.size,
  };
  if (typeof o.platform === "object" && o.platform !== null) {
    const p = o.platform as Record<string, unknown>;
    d.platform = {
      os: String(p.os ?? ""),
      architecture: String(p.architecture ?? ""),
      ...(typeof p.variant === "string" ? { variant: p.variant } : {}),
    };
  }
  if (Array.isArray(o.urls)) d.urls = o.urls.map(String);
  if (typeof o.annotations === "object" && o.annotations !== null) {
    d.annotations = o.annotations as Record<string, string>;
  }
  return d;
}

/**
 * Why a digest from a manifest cannot be used, or undefined when it can: it must be sha256
 * (64 hex) or sha512 (128 hex) — the algorithms we can verify — with nothing else in it.
 */
export function contentDigestProblem(digest: string): string | undefined {
  const problem = digestProblem(digest);
  if (problem) return problem;
  const algorithm = digest.slice(0, digest.indexOf(":"));
  if (algorithm !== "sha256" && algorithm !== "sha512") {
    return `"${digest}" uses the algorithm "${algorithm}"; only sha256 and sha512 are supported`;
  }
  return undefined;
}

/** Options for {@linkcode parseManifest}. */
export interface ParseManifestOptions {
  /** The response's Content-Type, used when the document does not state its mediaType. */
  contentType?: string | null;
  /** Names the manifest in error messages, e.g. "registry r: manifest r/x:1". */
  context: string;
}

/**
 * Parses manifest bytes. The document's own `mediaType` wins over the Content-Type. Schema 1
 * and unknown types are refused with UnsupportedMediaType.
 */
export function parseManifest(bytes: Uint8Array, opts: ParseManifestOptions): ParsedManifest {
  const { contentType, context } = opts;
  let json: Record<string, unknown>;
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object");
    json = v as Record<string, unknown>;
  } catch {
    // Not the parser's message: it quotes the input, which may be anything a redirect reached.
    throw new OciError("ManifestInvalid", `${context}: the manifest is not a JSON object`);
  }
  const header = (contentType ?? "").split(";")[0].trim();
  const declared = typeof json.mediaType === "string" ? json.mediaType : "";
  let mediaType = declared || header;
  if (json.schemaVersion === 1 || mediaType === DOCKER_SCHEMA1 || mediaType === DOCKER_SCHEMA1_SIGNED) {
    throw new OciError(
      "UnsupportedMediaType",
      `${context}: Docker schema 1 manifests are deprecated and not supported; ` +
        "re-push the image with a current Docker or buildkit to get a schema 2 / OCI manifest",
    );
  }
  if (!MANIFEST_MEDIA_TYPES.includes(mediaType)) {
    // OCI documents may omit mediaType and registries may send a generic Content-Type.
    if (Array.isArray(json.manifests)) mediaType = OCI_INDEX;
    else if (json.config !== undefined && Array.isArray(json.layers)) mediaType = OCI_MANIFEST;
    else {
      throw new OciError(
        "UnsupportedMediaType",
        `${context}: unsupported manifest media type "${mediaType || "(none)"}"; expected one of ` +
          MANIFEST_MEDIA_TYPES.join(", "),
      );
    }
  }
  if (isIndexMediaType(mediaType)) {
    if (!Array.isArray(json.manifests)) {
      throw new OciError("ManifestInvalid", `${context}: the index has no "manifests" list`);
    }
    const manifests = json.manifests.map((m, i) => asDescriptor(m, `manifests[${i}]`, context));
    return { mediaType, isIndex: true, blobs: [], manifests, json };
  }
  if (!Array.isArray(json.layers) || json.config === undefined) {
    throw new OciError("ManifestInvalid", `${context}: the image manifest has no config or layers`);
  }
  const blobs = [
    asDescriptor(json.config, "config", context),
    ...json.layers.map((l, i) => asDescriptor(l, `layers[${i}]`, context)),
  ].filter((d) => !isNonDistributable(d));
  return { mediaType, isIndex: false, blobs, manifests: [], json };
}

/** Parses "os/arch[/variant]" as used in `platforms` options. */
export function parsePlatform(s: string): Platform {
  const parts = s.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p.length === 0)) {
    throw new OciError(
      "InvalidReference",
      `invalid platform "${s}": expected os/architecture or os/architecture/variant, e.g. linux/arm64`,
    );
  }
  return parts.length === 3
    ? { os: parts[0], architecture: parts[1], variant: parts[2] }
    : { os: parts[0], architecture: parts[1] };
}

/** Whether an index entry's platform matches a wanted platform (variant only checked when wanted). */
export function platformMatches(have: Platform | undefined, want: Platform): boolean {
  if (!have) return false;
  if (have.os !== want.os || have.architecture !== want.architecture) return false;
  return want.variant === undefined || have.variant === want.variant;
}

/** Formats a platform as "os/arch[/variant]". */
export function formatPlatform(p: Platform | undefined): string {
  if (!p) return "unknown";
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/**
 * Selects index children matching any of the platform strings, in source order. Returns all
 * children when `platforms` is empty.
 */
export function selectChildren(manifests: Descriptor[], platforms: readonly string[]): Descriptor[] {
  if (platforms.length === 0) return manifests;
  const wanted = platforms.map(parsePlatform);
  return manifests.filter((m) => wanted.some((w) => platformMatches(m.platform, w)));
}

/**
 * Writes a new index that keeps every field of the source index but lists only `children`.
 * Used when a platform filter drops children: the result's digest differs from the source's.
 */
export function filteredIndexBytes(json: Record<string, unknown>, children: Descriptor[]): Uint8Array {
  const keep = new Set(children.map((c) => c.digest));
  const source = json.manifests as unknown[];
  const manifests = source.filter((m) => keep.has(String((m as Record<string, unknown>).digest)));
  return new TextEncoder().encode(JSON.stringify({ ...json, manifests }));
}
