/**
 * Which ImageSyncs a push concerns. The source repository is named as src/sync names it
 * (`source.registry` + `images[].name`, Docker Hub normalized), so `docker.io` + `nginx`
 * matches a push of `library/nginx` to Docker Hub. The tag must be one the image would sync,
 * decided by src/sync's tag rule: listed in `tags`, or selected by `semver` and
 * `tagPatterns`/`excludeTagPatterns` (`maxTags` is left to the sync: a push of an older
 * version costs one sync of HEADs). A push by digest alone names no tag and matches nothing.
 * @module
 */

import type { ImageSpec, ImageSync } from "../api/mod.ts";
import { normalizeRegistryHost } from "../oci/mod.ts";
import { imageRepositories, resolveImageTags } from "../sync/mod.ts";
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

/** Whether the image would sync `tag`, by src/sync's own rule (explicit tags, semver, tag patterns). */
function tagWanted(image: ImageSpec, tag: string): boolean {
  try {
    return resolveImageTags(image, [tag]).tags.includes(tag);
  } catch {
    // an invalid constraint or pattern is reported by the sync; it matches no push
    return false;
  }
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
