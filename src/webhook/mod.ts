/**
 * Push-triggered syncs: an HTTP endpoint (its own port, off by default) that receives registry
 * push notifications — CNCF distribution, Harbor, Docker Hub, GitHub packages, Quay — and
 * queues every ImageSync whose source matches the pushed repository and tag to sync now,
 * through the same queue as the sync-now annotation (a standby or a shard that does not own
 * the ImageSync sets that annotation, for the instance that syncs it). Authenticated with one shared secret
 * (HMAC where the sender signs, a header or URL token otherwise); bounded bodies; a replay
 * window; flood control by a token bucket and by coalescing each burst into one sync per
 * ImageSync. See docs/WEBHOOKS.md.
 *
 * ```ts
 * const secret = await WebhookSecret.load({ file: "/etc/portager/webhook/secret" });
 * const server = await startWebhookServer(":8082", { list, syncNow, accepting }, { secret });
 * ```
 * @module
 */

export {
  authenticate,
  githubSignature,
  MIN_SECRET_LENGTH,
  SECRET_REFRESH_MS,
  type SecretSourceOptions,
  WebhookSecret,
  WebhookSecretError,
} from "./auth.ts";
export { WebhookError, type WebhookErrorReason } from "./errors.ts";
export { MAX_EVENTS_PER_REQUEST, type PushEvent, WEBHOOK_SOURCES, type WebhookSource } from "./event.ts";
export { type Match, matchPushes } from "./match.ts";
export { DEFAULT_REPLAY_WINDOW_MS, ReplayGuard, type ReplayGuardOptions } from "./replay.ts";
export {
  DEFAULT_BODY_TIMEOUT_MS,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_IN_FLIGHT,
  describePush,
  startWebhookServer,
  type SyncRequest,
  WebhookEndpoint,
  type WebhookOptions,
  type WebhookResult,
  type WebhookServer,
  type WebhookTarget,
} from "./server.ts";
export {
  Coalescer,
  DEFAULT_BURST,
  DEFAULT_COALESCE_MS,
  DEFAULT_RATE_PER_SECOND,
  TokenBucket,
} from "./throttle.ts";
