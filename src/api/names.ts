/**
 * Naming rules for the registry and repository fields of an ImageSync, from the distribution
 * spec's reference grammar: a registry is `host[:port][/path]` without a scheme; repository
 * path components are lowercase `[a-z0-9]+` joined by `.`, `_`, `__` or `-`; tags are
 * `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. Each check returns a message or undefined.
 * @module
 */

const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const HOST_RE = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`,
);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** The longest repository name (path under the registry) registries accept. */
export const MAX_REPOSITORY_LENGTH = 255;

/** A registry field split into its host and the optional repository path prefix after it. */
export interface RegistryParts {
  /** `host[:port]`, e.g. `ghcr.io` or `127.0.0.1:5000`. */
  host: string;
  /** Path prefix under the host (`my-org` in `cgr.dev/my-org`), or "". */
  path: string;
}

/** Splits `cgr.dev/my-org` into host `cgr.dev` and path `my-org`. */
export function splitRegistry(registry: string): RegistryParts {
  const i = registry.indexOf("/");
  return i < 0 ? { host: registry, path: "" } : { host: registry.slice(0, i), path: registry.slice(i + 1) };
}

function pathComponentProblem(component: string, what: string): string | undefined {
  if (component === "") {
    return `${what} has an empty path component (check for "//" or a leading or trailing "/")`;
  }
  if (PATH_COMPONENT_RE.test(component)) return undefined;
  if (PATH_COMPONENT_RE.test(component.toLowerCase())) {
    return `${what} must be lowercase: "${component}" has capital letters`;
  }
  return `${what} component "${component}" may only hold lowercase letters, digits and single ".", "_", ` +
    `"__" or "-" separators between them`;
}

/** Checks a repository path such as `library/nginx`; `what` names the field in the message. */
export function repositoryPathProblem(path: string, what = "repository name"): string | undefined {
  if (path === "") return `${what} is empty`;
  if (/\s/.test(path)) return `${what} must not contain spaces`;
  const at = path.indexOf("@");
  if (at >= 0) return `${what} must not include a digest ("${path.slice(at)}")`;
  const lastColon = path.lastIndexOf(":");
  if (lastColon >= 0) {
    return `${what} must not include a tag (":${path.slice(lastColon + 1)}"): list tags under tags`;
  }
  if (path.length > MAX_REPOSITORY_LENGTH) {
    return `${what} is ${path.length} characters; registries accept at most ${MAX_REPOSITORY_LENGTH}`;
  }
  for (const component of path.split("/")) {
    const problem = pathComponentProblem(component, what);
    if (problem) return problem;
  }
  return undefined;
}

/** Checks a registry field such as `ghcr.io`, `127.0.0.1:5000` or `cgr.dev/my-org`. */
export function registryProblem(registry: string): string | undefined {
  if (registry === "") return "registry is empty";
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(registry);
  if (scheme) {
    const rest = registry.slice(scheme[0].length).replace(/\/+$/, "");
    return `registry must not include a scheme: write "${rest}", not "${registry}"`;
  }
  if (/\s/.test(registry)) return "registry must not contain spaces";
  if (registry.endsWith("/")) {
    return `registry must not end with "/": write "${registry.replace(/\/+$/, "")}"`;
  }
  const { host, path } = splitRegistry(registry);
  if (!HOST_RE.test(host)) {
    return `registry host "${host}" is not a host name with an optional port (like ghcr.io or ` +
      `registry.example.com:5000)`;
  }
  if (path !== "") return repositoryPathProblem(path, "registry path");
  return undefined;
}

/** Checks an image tag against the distribution spec's tag grammar. */
export function tagProblem(tag: string): string | undefined {
  if (tag === "") return "tag is empty";
  if (TAG_RE.test(tag)) return undefined;
  if (tag.length > 128) return `tag "${tag.slice(0, 20)}…" is longer than 128 characters`;
  return `tag "${tag}" may only hold letters, digits, "_", "." and "-", and must not start with "." or "-"`;
}
