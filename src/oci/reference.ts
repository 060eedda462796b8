/**
 * Image references parsed and normalized the way Docker does (`alpine` →
 * `docker.io/library/alpine:latest`), plus the scheme rules for talking to a registry.
 * @module
 */

import { OciError } from "./errors.ts";

/** Docker Hub's canonical name in references. */
export const DOCKER_HUB = "docker.io";
/** Docker Hub's API endpoint host (what `docker.io` is reached at). */
export const DOCKER_HUB_API = "registry-1.docker.io";
/**
 * Every host name Docker Hub is known by, in the order Docker's config lookup tries them
 * (`index.docker.io` is the key `docker login` writes).
 */
export const DOCKER_HUB_HOSTS: readonly string[] = ["index.docker.io", DOCKER_HUB, DOCKER_HUB_API];

/** Whether a registry host (any case, no port) is one of Docker Hub's names. */
export function isDockerHub(host: string): boolean {
  return DOCKER_HUB_HOSTS.includes(host.toLowerCase());
}

/** A registry host as written in references: Docker Hub's names become `docker.io`, others stay. */
export function normalizeRegistryHost(host: string): string {
  return isDockerHub(host) ? DOCKER_HUB : host;
}

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_AND_PORT =
  /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const HEX64 = /^[a-f0-9]{64}$/;
const HEX128 = /^[a-f0-9]{128}$/;
const MAX_NAME_LENGTH = 255;

/** The parts of a reference, for {@linkcode Reference}'s constructor. */
export interface ReferenceParts {
  /** Registry as written in references (`docker.io`, `ghcr.io`, `127.0.0.1:5000`). */
  registry: string;
  /** Repository path inside the registry (`library/alpine`). */
  repository: string;
  /** Tag, when the reference names one. */
  tag?: string;
  /** Digest (`sha256:<64 hex>`), when the reference pins one. */
  digest?: string;
}

/** A parsed, normalized image reference: registry, repository and a tag and/or digest. */
export class Reference {
  /** Registry as written in references; Docker Hub is `docker.io`. */
  readonly registry: string;
  /** Repository path, e.g. `library/alpine`. */
  readonly repository: string;
  /** Tag, if any. */
  readonly tag?: string;
  /** Digest, if any. When both are set the digest is what gets fetched. */
  readonly digest?: string;

  /** Builds a reference from already-valid parts (use {@linkcode parseReference} for input). */
  constructor(parts: ReferenceParts) {
    this.registry = parts.registry;
    this.repository = parts.repository;
    if (parts.tag !== undefined) this.tag = parts.tag;
    if (parts.digest !== undefined) this.digest = parts.digest;
  }

  /** `registry/repository`, without tag or digest. */
  get name(): string {
    return `${this.registry}/${this.repository}`;
  }

  /** The host the registry API is reached at (`docker.io` → `registry-1.docker.io`). */
  get apiHost(): string {
    return registryApiHost(this.registry);
  }

  /** What to ask the registry for: the digest when pinned, else the tag (or `latest`). */
  get identifier(): string {
    return this.digest ?? this.tag ?? "latest";
  }

  /** The same repository with this tag and no digest. */
  withTag(tag: string): Reference {
    if (!TAG.test(tag)) {
      throw new OciError("InvalidReference", `invalid tag "${tag}" for ${this.name}: ${TAG_RULE}`, {
        reference: `${this.name}:${tag}`,
      });
    }
    return new Reference({ registry: this.registry, repository: this.repository, tag });
  }

  /** The same repository pinned to this digest, with no tag. */
  withDigest(digest: string): Reference {
    const problem = digestProblem(digest);
    if (problem) {
      throw new OciError("InvalidReference", `invalid digest for ${this.name}: ${problem}`, {
        reference: `${this.name}@${digest}`,
      });
    }
    return new Reference({ registry: this.registry, repository: this.repository, digest });
  }

  /** The full normalized form, e.g. `docker.io/library/alpine:latest`. */
  toString(): string {
    let s = this.name;
    if (this.tag !== undefined) s += `:${this.tag}`;
    if (this.digest !== undefined) s += `@${this.digest}`;
    return s;
  }
}

/** Options for {@linkcode parseReference}. */
export interface ParseReferenceOptions {
  /**
   * Tag to assume when the reference has neither tag nor digest. Defaults to `latest`
   * (Docker's rule); `false` leaves the tag unset, for repository-only references.
   */
  defaultTag?: string | false;
}

/** Whether a string is a valid tag (what may follow `:` in a reference, and go into a manifest URL). */
export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

const TAG_RULE = "a tag is 1 to 128 letters, digits, '_', '.' or '-' and must not start with '.' or '-'";

/** Returns why a digest string is invalid, or undefined if it is fine. */
export function digestProblem(digest: string): string | undefined {
  if (!DIGEST.test(digest)) {
    return `"${digest}" is not a digest; expected "sha256:" followed by 64 lowercase hex characters`;
  }
  const [algorithm, hex] = digest.split(":", 2);
  if (algorithm === "sha256" && !HEX64.test(hex)) {
    return `"${digest}" is not a valid sha256 digest; expected 64 lowercase hex characters`;
  }
  if (algorithm === "sha512" && !HEX128.test(hex)) {
    return `"${digest}" is not a valid sha512 digest; expected 128 lowercase hex characters`;
  }
  return undefined;
}

/**
 * Parses an image reference like Docker: `alpine`, `ghcr.io/o/r:1.2`, `host:5000/r@sha256:…`,
 * `name:tag@digest`. Throws {@linkcode OciError} (reason InvalidReference) quoting the input.
 */
export function parseReference(ref: string, opts: ParseReferenceOptions = {}): Reference {
  function fail(problem: string): never {
    throw new OciError("InvalidReference", `invalid reference "${ref}": ${problem}`, {
      reference: ref,
    });
  }
  if (ref.length === 0) fail("it is empty");
  if (ref.trim() !== ref) fail("it has leading or trailing whitespace");
  if (/\s/.test(ref)) fail("it contains whitespace");
  if (/^[a-z]+:\/\//i.test(ref)) {
    fail("a reference has no URL scheme; write host/repository:tag");
  }

  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const problem = digestProblem(digest);
    if (problem) fail(`digest ${problem}`);
  }

  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.indexOf(":", lastSlash + 1);
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) fail(`tag "${tag}" is not valid: ${TAG_RULE}`);
  }
  if (rest.length === 0) fail("the repository name is missing");
  if (HEX64.test(rest)) {
    fail("a 64-character hexadecimal string is an image ID, not a repository name");
  }

  let registry: string;
  let repository: string;
  const slash = rest.indexOf("/");
  const first = slash >= 0 ? rest.slice(0, slash) : "";
  if (
    slash < 0 ||
    (!first.includes(".") && !first.includes(":") && first !== "localhost" &&
      first.toLowerCase() === first)
  ) {
    registry = DOCKER_HUB;
    repository = rest;
  } else {
    registry = first;
    repository = rest.slice(slash + 1);
    if (!DOMAIN_AND_PORT.test(registry)) {
      fail(`registry host "${registry}" is not a valid host name or host:port`);
    }
  }
  if (DOCKER_HUB_HOSTS.includes(registry)) registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !repository.includes("/")) repository = `library/${repository}`;

  if (repository.length === 0) fail("the repository name is missing");
  if (repository.toLowerCase() !== repository) {
    fail(`repository "${repository}" must be lowercase`);
  }
  for (const component of repository.split("/")) {
    if (!PATH_COMPONENT.test(component)) {
      fail(
        `repository path component "${component}" is not valid: use lowercase letters and ` +
          "digits, separated by '.', '_', '__' or '-'",
      );
    }
  }
  if (registry.length + 1 + repository.length > MAX_NAME_LENGTH) {
    fail(`the name is longer than ${MAX_NAME_LENGTH} characters`);
  }
  if (tag === undefined && digest === undefined && opts.defaultTag !== false) {
    tag = opts.defaultTag ?? "latest";
  }
  return new Reference({ registry, repository, tag, digest });
}

/** The host a registry's API is reached at: `docker.io` → `registry-1.docker.io`, else itself. */
export function registryApiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

/** Splits `host:port` / `[v6]:port` into the bare host name (brackets removed) and port. */
export function splitHostPort(host: string): { hostname: string; port?: string } {
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    const hostname = host.slice(1, end);
    const port = host.slice(end + 1).startsWith(":") ? host.slice(end + 2) : undefined;
    return port ? { hostname, port } : { hostname };
  }
  const colon = host.lastIndexOf(":");
  if (colon >= 0 && host.indexOf(":") === colon) {
    return { hostname: host.slice(0, colon), port: host.slice(colon + 1) };
  }
  return { hostname: host };
}

/** True for the loopback names we speak plain HTTP to without being told: localhost, 127.0.0.1, ::1. */
export function isLoopbackHost(host: string): boolean {
  const { hostname } = splitHostPort(host);
  return hostname === "localhost" || hostname === "127.0.0.1" || hostname === "::1";
}

/**
 * Whether plain HTTP may be used for a registry host: loopback names, or a host listed in
 * `insecureRegistries` (an entry without a port matches every port of that host).
 */
export function allowsPlainHttp(host: string, insecureRegistries: readonly string[] = []): boolean {
  if (isLoopbackHost(host)) return true;
  const { hostname } = splitHostPort(host);
  for (const entry of insecureRegistries) {
    const e = entry.replace(/^https?:\/\//, "").replace(/\/+$/, "");
    if (e === host) return true;
    if (splitHostPort(e).port === undefined && splitHostPort(e).hostname === hostname) return true;
  }
  return false;
}
