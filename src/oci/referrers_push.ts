/**
 * Pushing a manifest that names a `subject`: its referrers-index descriptor, the push by
 * digest, and — on registries without the referrers API — the read-merge-write of the
 * `sha256-<hex>` fallback index, keeping every entry already there.
 * @module
 */

import { sha256Digest } from "./blobs.ts";
import type { CallOptions, RegistryClient } from "./client.ts";
import { OciError } from "./errors.ts";
import { MAX_MANIFEST_BYTES, OCI_INDEX, OCI_MANIFEST } from "./manifest.ts";
import { digestProblem, Reference } from "./reference.ts";
import {
  hasReferrersApi,
  MAX_REFERRERS,
  parseReferrersIndex,
  readFallbackIndex,
  type Referrer,
  referrersTag,
  stringMap,
  tooMany,
} from "./referrers_list.ts";

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
