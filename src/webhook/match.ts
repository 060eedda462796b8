/**
 * Which ImageSyncs a push concerns. The source repository is named as src/sync names it
 * (`source.registry` + `images[].name`, Docker Hub normalized), so `docker.io` + `nginx`
 * matches a push of `library/nginx` to Docker Hub. The tag must be one the image would sync:
 * listed in `tags`, or satisfying its `semver` constraint; an image with tag filters this
 * module does not evaluate matches on the repository alone (a sync too many costs HEADs, a
 * sync too few a stale mirror). A push by digest alone names no tag and matches nothing.
 * @module
 */

import { type ImageSpec, type ImageSync, SemverConstraint } from "../api/mod.ts";
import { normalizeRegistryHost } from "../oci/mod.ts";
import { imageRepositories } from "../sync/mod.ts";
import type { PushEvent } from "./event.ts";

/** An ImageSync to sync now, and the first push that asked for it. */
export interface Match {
  /** `namespace/name`. */
  key: string;
  /** The push that matched. */
  push: PushEvent;
}

function normalizedRepository(push: PushEvent): string {
  const host = normalizeRegistryHost(push.registry.toLowerCase());
  const repo = push.repository.toLowerCase();
  return `${host}/${host === "docker.io" && !repo.includes("/") ? `library/${repo}` : repo}`;
}

function tagWanted(image: ImageSpec, tag: string): boolean {
  if (image.tags?.includes(tag)) return true;
  const extra = image as ImageSpec & { tagPatterns?: unknown[] };
  if (Array.isArray(extra.tagPatterns) && extra.tagPatterns.length > 0) return true;
  if (image.semver && image.semver.trim() !== "") {
    try {
      return SemverConstraint.parse(image.semver).matches(tag);
    } catch {
      return false;
    }
  }
  return false;
}

/** The source repositories (`host/path`) of an ImageSync's images, with the image; invalid names skipped. */
function sources(obj: ImageSync): Array<{ repository: string; image: ImageSpec }> {
  const spec = obj.spec;
  const out: Array<{ repository: string; image: ImageSpec }> = [];
  if (!spec?.source?.registry || !Array.isArray(spec.images)) return out;
  for (const image of spec.images) {
    try {
      const src = imageRepositories(spec, image).source;
      out.push({ repository: `${src.registry.toLowerCase()}/${src.repository}`, image });
    } catch {
      // an invalid name is reported by reconcile; it matches no push
    }
  }
  return out;
}

/** The ImageSyncs (once each) whose source matches one of `pushes`. */
export function matchPushes(pushes: PushEvent[], imagesyncs: Iterable<ImageSync>): Match[] {
  const wanted = new Map<string, PushEvent[]>();
  for (const p of pushes) {
    if (p.tag === undefined) continue;
    const repo = normalizedRepository(p);
    wanted.set(repo, [...(wanted.get(repo) ?? []), p]);
  }
  const matches: Match[] = [];
  if (wanted.size === 0) return matches;
  for (const obj of imagesyncs) {
    const key = `${obj.metadata.namespace ?? "default"}/${obj.metadata.name}`;
    const hit = sources(obj).flatMap(({ repository, image }) =>
      (wanted.get(repository) ?? []).filter((p) =>
        tagWanted(image, p.tag!)
      )
    )[0];
    if (hit) matches.push({ key, push: hit });
  }
  return matches;
}
