/**
 * CNCF distribution (Docker registry) notifications: an envelope
 * `{"events": [{id, timestamp, action, target: {mediaType, digest, repository, url, tag},
 * request: {host}}]}` sent to each `notifications.endpoints` entry. Only manifest pushes count
 * (a blob push is an event too); the registry host is the push request's `Host`, or the
 * endpoint URL's `?registry=` when pushers reach the registry under another name than the
 * ImageSyncs use.
 * @module
 */

import {
  malformed,
  MAX_EVENTS_PER_REQUEST,
  obj,
  type ParseContext,
  parseTime,
  type PushEvent,
  str,
} from "./event.ts";

const MANIFEST_TYPES = new Set([
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v1+prettyjws",
  "application/vnd.docker.distribution.manifest.v1+json",
]);

/** Whether a distribution event's target is a manifest (by media type, else by its URL). */
function isManifest(target: Record<string, unknown>): boolean {
  const mediaType = str(target, "mediaType");
  if (mediaType) return MANIFEST_TYPES.has(mediaType.split(";")[0].trim());
  return /\/manifests\//.test(str(target, "url") ?? "");
}

/** Reads a distribution notification envelope into its manifest pushes. */
export function parseDistribution(body: unknown, ctx: ParseContext): PushEvent[] {
  const events = (body as { events?: unknown })?.events;
  if (!Array.isArray(events)) {
    throw malformed("distribution", 'no "events" array (is this a registry notification envelope?)');
  }
  if (events.length > MAX_EVENTS_PER_REQUEST) {
    throw malformed(
      "distribution",
      `${events.length} events in one envelope; at most ${MAX_EVENTS_PER_REQUEST}`,
    );
  }
  const pushes: PushEvent[] = [];
  for (const [i, e] of events.entries()) {
    const action = str(e, "action");
    if (!action) throw malformed("distribution", `events[${i}] has no action`);
    if (action !== "push") continue;
    const target = obj(e, "target");
    const repository = str(target, "repository");
    if (!target || !repository) throw malformed("distribution", `events[${i}].target.repository is missing`);
    if (!isManifest(target)) continue;
    const urlHost = hostOf(str(target, "url"));
    const registry = ctx.registry ?? str(obj(e, "request"), "host") ?? urlHost;
    if (!registry) throw malformed("distribution", `events[${i}] names no registry host (request.host)`);
    pushes.push({
      source: "distribution",
      registry,
      repository,
      tag: str(target, "tag"),
      digest: str(target, "digest"),
      id: str(e, "id"),
      timestamp: parseTime((e as Record<string, unknown>).timestamp),
    });
  }
  return pushes;
}

function hostOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).host || undefined;
  } catch {
    return undefined;
  }
}
