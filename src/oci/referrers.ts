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
 *
 * This module gathers the parts: listing and parsing (`referrers_list.ts`), pushing with the
 * fallback-index merge (`referrers_push.ts`), recursive copying (`referrers_copy.ts`),
 * cosign's tags (`referrers_cosign.ts`) and the platform manifests of an index whose referrers
 * travel too (`referrers_children.ts`).
 * @module
 */

export {
  EMPTY_CONFIG_MEDIA_TYPE,
  hasReferrersApi,
  listReferrers,
  type ListReferrersOptions,
  MAX_REFERRER_PAGES,
  MAX_REFERRERS,
  parseReferrer,
  parseReferrersIndex,
  type Referrer,
  type ReferrerList,
  referrersTag,
  resolveArtifactTypes,
} from "./referrers_list.ts";
export {
  addToFallbackIndex,
  pushReferrer,
  type PushReferrerOptions,
  type PushReferrerResult,
  referrerDescriptor,
} from "./referrers_push.ts";
export {
  type CopiedReferrer,
  copyReferrers,
  type CopyReferrersOptions,
  type CopyReferrersResult,
  DEFAULT_MAX_COPIED_REFERRERS,
  DEFAULT_REFERRER_DEPTH,
  type ManifestCopier,
} from "./referrers_copy.ts";
export {
  DEFAULT_CHILDREN_CACHE_ENTRIES,
  DEFAULT_MAX_REFERRER_CHILDREN,
  referrerChildren,
  ReferrerChildrenCache,
  type ReferrerChildrenOptions,
} from "./referrers_children.ts";
export {
  type CopiedCosignTag,
  copyCosignTags,
  cosignTag,
  type CosignTagKind,
  type CosignTagRef,
  findCosignTags,
} from "./referrers_cosign.ts";
