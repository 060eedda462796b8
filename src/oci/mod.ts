/**
 * Portager's OCI registry client and copy engine, built on web APIs only (fetch, streams) so it
 * runs inside one compiled binary. Imports nothing from the rest of Portager.
 *
 * ```ts
 * import { Copier, parseReference, RegistryClient } from "./mod.ts";
 * const client = new RegistryClient({ credentials });
 * const result = await new Copier(client).copy(parseReference("alpine:3"), parseReference("ghcr.io/me/alpine:3"));
 * ```
 * @module
 */

// every export of auth.ts is public (TokenCache's options and entries included)
export * from "./auth.ts";
export { basicAuth } from "./basic.ts";
export { digestLike, sha256Digest, verifyingStream, type VerifyOptions } from "./blobs.ts";
export { preloadStreamingHash } from "./digest.ts";
export {
  type BlobStream,
  type CallOptions,
  type FetchedManifest,
  type ManifestHead,
  RegistryClient,
  type RegistryClientOptions,
} from "./client.ts";
export {
  type BlobPlan,
  Copier,
  type CopierOptions,
  type CopyOptions,
  type CopyProgress,
  type CopyResult,
  DEFAULT_CONCURRENCY,
  DEFAULT_MAX_MANIFEST_BYTES,
  DEFAULT_MAX_MANIFESTS,
  DEFAULT_MAX_TRANSFERS,
  Limiter,
  type LimiterOptions,
  type LimiterRunOptions,
  type LimiterSlot,
} from "./copy.ts";
export { OciError, type OciErrorOptions, type OciErrorReason, redactUrls } from "./errors.ts";
export {
  type Descriptor,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  isIndexMediaType,
  MANIFEST_MEDIA_TYPES,
  OCI_INDEX,
  OCI_MANIFEST,
  type ParsedManifest,
  parseManifest,
  parsePlatform,
  type Platform,
} from "./manifest.ts";
export {
  allowsPlainHttp,
  DOCKER_HUB,
  DOCKER_HUB_API,
  DOCKER_HUB_HOSTS,
  isDockerHub,
  isValidTag,
  normalizeRegistryHost,
  parseReference,
  type ParseReferenceOptions,
  Reference,
  type ReferenceParts,
  registryApiHost,
} from "./reference.ts";
export { DEFAULT_MAX_TAG_LIST_BYTES, DEFAULT_MAX_TAGS } from "./tag_list.ts";
export { nextLinkTarget, parseLinkHeader } from "./tags.ts";
export {
  DEFAULT_ATTEMPTS,
  parseRetryAfter,
  type RetryEvent,
  RetryPolicy,
  type RetryPolicyOptions,
  type RetryReason,
} from "./retry.ts";
export {
  DEFAULT_MIN_BYTES_PER_SECOND,
  DEFAULT_RATE_WINDOW_MS,
  DEFAULT_REQUEST_DEADLINE_MS,
  DEFAULT_TIMEOUT_MS,
  type HttpSenderOptions,
  type WaitWrapper,
} from "./send.ts";
export { sleep } from "./sleep.ts";
export {
  countsAgainstLimit,
  DEFAULT_RATE_LIMIT_MAX_WAIT_MS,
  DEFAULT_RATE_LIMIT_RESERVE,
  parseRateLimitHeaders,
  RateLimitBudgets,
  type RateLimitBudgetsOptions,
  type RateLimitInfo,
  RateLimitSender,
  type RateLimitSenderOptions,
  registryBudgets,
} from "./rate_limit.ts";
export { type TransportOptions } from "./transport.ts";
export { type MountResult } from "./upload.ts";
