/**
 * Cosign's older tag conventions for signatures, attestations and SBOMs (`sha256-<hex>.sig`,
 * `.att`, `.sbom` next to the image): naming, finding and copying those tags.
 * @module
 */

import type { CallOptions, RegistryClient } from "./client.ts";
import { Reference } from "./reference.ts";
import type { ManifestCopier } from "./referrers_copy.ts";
import { referrersTag, subjectOf } from "./referrers_list.ts";

/** Cosign's tag suffixes: signatures, attestations, SBOMs. */
export type CosignTagKind = "sig" | "att" | "sbom";

/** Cosign's tag for a digest's signatures/attestations/SBOM: `sha256-<hex>.sig` and so on. */
export function cosignTag(digest: string, kind: CosignTagKind): string {
  return `${referrersTag(digest)}.${kind}`;
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
 * overwritten with the source's. `found`: the tags {@linkcode findCosignTags} already returned
 * for `src` (not looked up again).
 */
export async function copyCosignTags(
  clients: { source: RegistryClient; copier: ManifestCopier },
  src: Reference,
  dst: Reference,
  opts: CallOptions & { dryRun?: boolean; kinds?: readonly CosignTagKind[]; found?: CosignTagRef[] } = {},
): Promise<{ tags: CopiedCosignTag[]; bytesMoved: number }> {
  const found = opts.found ?? await findCosignTags(clients.source, src, opts);
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
