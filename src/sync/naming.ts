/**
 * Where an image of a spec comes from and goes to, as upstream Portager v0.5 names them:
 *
 * - source: `source.registry + "/" + images[].name`, normalized like Docker, so source
 *   `docker.io` with image `nginx` reads `docker.io/library/nginx`;
 * - destination: `destination.registry + "/" + (repositoryPrefix + "/")? + images[].name`,
 *   with the name exactly as written (no implicit `library/`): source `docker.io/library`,
 *   image `nginx`, prefix `mirror` → `<destination>/mirror/nginx`; image `library/nginx`
 *   from source `docker.io` → `<destination>/mirror/library/nginx`.
 * @module
 */
import { type ImageSpec, type ImageSyncSpec, repositoryPathProblem, splitRegistry } from "../api/mod.ts";
import { isDockerHub, OciError, parseReference, Reference } from "../oci/mod.ts";

/** The repositories one image of a spec is copied between. */
export interface ImageRepositories {
  /** Source repository (no tag). */
  source: Reference;
  /** Destination repository (no tag). */
  destination: Reference;
  /** The destination repository's path under its registry host (what ECR calls the repository name). */
  destinationPath: string;
}

/** Joins the non-empty parts of a repository path. */
function join(...parts: Array<string | undefined>): string {
  return parts.filter((p) => p !== undefined && p !== "").join("/");
}

/**
 * A repository reference for an explicit host: Docker Hub hosts get Docker's normalization
 * (`nginx` → `library/nginx`); any other host is taken as a host even without a dot or port
 * (`registry/team/app` is host `registry`, not a Docker Hub namespace).
 */
function repositoryRef(host: string, path: string): Reference {
  if (isDockerHub(host)) {
    return parseReference(join("docker.io", path), { defaultTag: false });
  }
  const problem = repositoryPathProblem(path, "repository");
  if (problem) {
    throw new OciError("InvalidReference", `invalid reference "${host}/${path}": ${problem}`, {
      registry: host,
      reference: `${host}/${path}`,
    });
  }
  return new Reference({ registry: host, repository: path });
}

/**
 * Source and destination repositories for `image`. Throws `OciError` (InvalidReference)
 * quoting the combined name when it is not a valid reference.
 */
export function imageRepositories(spec: ImageSyncSpec, image: ImageSpec): ImageRepositories {
  const src = splitRegistry(spec.source.registry);
  const source = repositoryRef(src.host, join(src.path, image.name));
  const dst = splitRegistry(spec.destination.registry);
  const destinationPath = join(dst.path, spec.destination.repositoryPrefix, image.name);
  const destination = repositoryRef(dst.host, destinationPath);
  return { source, destination, destinationPath: destination.repository };
}
