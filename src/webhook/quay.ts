/**
 * Quay repository-push notifications (method "Webhook POST"): `{"repository": "ns/app",
 * "docker_url": "quay.io/ns/app", "updated_tags": ["latest", "1.0"]}`. Quay neither signs nor
 * sets headers and sends no id or time: the endpoint URL carries the token (`?token=`), and a
 * replay costs at most one coalesced sync.
 * @module
 */

import {
  malformed,
  MAX_EVENTS_PER_REQUEST,
  type ParseContext,
  type PushEvent,
  splitImageUrl,
  str,
} from "./event.ts";

/** Reads a Quay push notification into one push per updated tag. */
export function parseQuay(body: unknown, ctx: ParseContext): PushEvent[] {
  const url = splitImageUrl(str(body, "docker_url") ?? "");
  const repository = url?.repository ?? str(body, "repository");
  const tags = (body as { updated_tags?: unknown })?.updated_tags;
  if (!repository || !Array.isArray(tags)) {
    throw malformed("quay", "repository/docker_url or updated_tags is missing");
  }
  if (tags.length > MAX_EVENTS_PER_REQUEST) {
    throw malformed(
      "quay",
      `${tags.length} updated tags in one notification; at most ${MAX_EVENTS_PER_REQUEST}`,
    );
  }
  const registry = ctx.registry ?? url?.registry ?? "quay.io";
  return tags.filter((t): t is string => typeof t === "string" && t !== "").map((tag) => ({
    source: "quay" as const,
    registry,
    repository,
    tag,
  }));
}
