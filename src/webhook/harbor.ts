/**
 * Harbor webhooks (policy type "HTTP"): `{"type": "PUSH_ARTIFACT", "occur_at": <unix s>,
 * "event_data": {"resources": [{"digest", "tag", "resource_url": "harbor.example.com/library/app:1.0"}],
 * "repository": {"repo_full_name": "library/app"}}}`. Other event types (pull, delete, scan)
 * are accepted and ignored. The auth header the policy sets is checked by the endpoint.
 * @module
 */

import {
  malformed,
  MAX_EVENTS_PER_REQUEST,
  obj,
  type ParseContext,
  parseTime,
  type PushEvent,
  splitImageUrl,
  str,
} from "./event.ts";

/** Reads a Harbor webhook into its pushes (none for other event types). */
export function parseHarbor(body: unknown, ctx: ParseContext): PushEvent[] {
  const type = str(body, "type");
  if (!type) throw malformed("harbor", 'no "type" (is this a Harbor webhook?)');
  if (type !== "PUSH_ARTIFACT" && type !== "pushImage") return [];
  const data = obj(body, "event_data");
  const resources = (data as { resources?: unknown } | undefined)?.resources;
  if (!Array.isArray(resources) || resources.length === 0) {
    throw malformed("harbor", "event_data.resources is missing");
  }
  if (resources.length > MAX_EVENTS_PER_REQUEST) {
    throw malformed(
      "harbor",
      `${resources.length} resources in one event; at most ${MAX_EVENTS_PER_REQUEST}`,
    );
  }
  const repoFull = str(obj(data, "repository"), "repo_full_name");
  const occurAt = parseTime((body as Record<string, unknown>).occur_at);
  return resources.map((r, i) => {
    const url = splitImageUrl(str(r, "resource_url") ?? "");
    const repository = repoFull ?? url?.repository;
    const registry = ctx.registry ?? url?.registry;
    if (!repository || !registry) {
      throw malformed("harbor", `event_data.resources[${i}].resource_url is missing`);
    }
    const digest = str(r, "digest");
    const tag = str(r, "tag") ?? url?.tag;
    return {
      source: "harbor" as const,
      registry,
      repository,
      tag,
      digest,
      id: `${type}/${occurAt ?? ""}/${repository}/${tag ?? ""}/${digest ?? ""}`,
      timestamp: occurAt,
    };
  });
}
