/**
 * The registry API's paths and scopes that several operations share: a blob's path (refusing
 * a digest that is not one), an upload Location with its digest, and the scopes of a write.
 * @module
 */

import { repositoryScope } from "./auth.ts";
import { OciError } from "./errors.ts";
import { contentDigestProblem } from "./manifest.ts";
import type { Reference } from "./reference.ts";

/** The scopes of a write to `ref`'s repository: `pull,push` (a write reads, too). */
export function pushPull(ref: Reference): string[] {
  return [repositoryScope(ref.repository, ["pull", "push"])];
}

/**
 * `/v2/<repository>/blobs/<digest>`, refusing a digest that is not one (it goes into the URL:
 * `../../` in its place would reach another path with this registry's credentials).
 */
export function blobPath(repo: Reference, digest: string): string {
  const problem = contentDigestProblem(digest);
  if (problem) {
    throw new OciError("InvalidReference", `invalid blob digest for ${repo.name}: ${problem}`, {
      registry: repo.registry,
      reference: repo.name,
    });
  }
  return `/v2/${repo.repository}/blobs/${digest}`;
}

/** Adds `digest=` to an upload Location, keeping its other query parameters. */
export function withDigest(location: string, digest: string): string {
  const absolute = /^[a-z][a-z0-9+.-]*:\/\//i.test(location);
  const url = new URL(location, "http://placeholder.invalid");
  url.searchParams.set("digest", digest);
  return absolute ? url.href : `${url.pathname}${url.search}`;
}
