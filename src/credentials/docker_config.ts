/**
 * Docker config credentials (`~/.docker/config.json`, `kubernetes.io/dockerconfigjson` and
 * legacy `kubernetes.io/dockercfg` Secrets), looked up the way the Docker CLI does: the exact
 * key first, then any key that reduces to the same host once a `http://`/`https://` scheme and
 * a path are stripped (`https://ghcr.io/v1/` → `ghcr.io`). Docker Hub is stored under
 * `https://index.docker.io/v1/`; `docker.io`, `index.docker.io` and `registry-1.docker.io`
 * all find it (and, as a fallback, entries keyed `docker.io` or `registry-1.docker.io`).
 *
 * An entry yields Basic credentials (`auth` = base64 of `user:password`, or `username` and
 * `password`), an OAuth2 identity token (`identitytoken`) or a registry bearer token
 * (`registrytoken`); a registry token wins over an identity token, which wins over Basic.
 * @module
 */
import { type Credential, type CredentialResolver, DOCKER_HUB_HOSTS, isDockerHub } from "../oci/mod.ts";
import { CredentialError } from "./errors.ts";

/** One registry's entry in a Docker config. */
export interface DockerAuthEntry {
  /** base64 of `username:password`. */
  auth?: string;
  /** Username (when `auth` is absent). */
  username?: string;
  /** Password (when `auth` is absent). */
  password?: string;
  /** OAuth2 refresh token for the registry's token service. */
  identitytoken?: string;
  /** Bearer token sent to the registry as is. */
  registrytoken?: string;
}

/** A parsed Docker config: entries by the key they were stored under. */
export interface DockerConfig {
  /** Entries keyed as written (`ghcr.io`, `https://index.docker.io/v1/`, …), in file order. */
  auths: Record<string, DockerAuthEntry>;
  /** Credential helpers named in the file (not run by Portager; reported when nothing matches). */
  credHelpers?: Record<string, string>;
  /** Default credential store named in the file (not run by Portager). */
  credsStore?: string;
}

/** Options for {@linkcode parseDockerConfig}. */
export interface ParseDockerConfigOptions {
  /** Where the config came from, for messages: `secret default/creds`, `~/.docker/config.json`. */
  source?: string;
}

/** The key Docker stores Docker Hub credentials under. */
export const DOCKER_HUB_KEY = "https://index.docker.io/v1/";

/**
 * Reduces a config key to a host the way Docker's `ConvertToHostname` does: strips an
 * `http://` or `https://` prefix and everything from the first `/`.
 */
export function convertToHostname(key: string): string {
  let stripped = key;
  if (stripped.startsWith("http://")) stripped = stripped.slice("http://".length);
  else if (stripped.startsWith("https://")) stripped = stripped.slice("https://".length);
  const slash = stripped.indexOf("/");
  return slash >= 0 ? stripped.slice(0, slash) : stripped;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function readEntries(
  obj: Record<string, unknown>,
  source: string,
  where: string,
): Record<string, DockerAuthEntry> {
  const out: Record<string, DockerAuthEntry> = {};
  for (const [key, value] of Object.entries(obj)) {
    if (!isObject(value)) {
      throw new CredentialError("AuthFailed", `${source}: ${where} entry "${key}" is not an object`, {
        source,
        registry: convertToHostname(key),
      });
    }
    const entry: DockerAuthEntry = {};
    for (const field of ["auth", "username", "password", "identitytoken", "registrytoken"] as const) {
      const v = value[field];
      if (v === undefined || v === null || v === "") continue;
      if (typeof v !== "string") {
        throw new CredentialError(
          "AuthFailed",
          `${source}: field "${field}" of the entry for "${key}" must be a string`,
          { source, registry: convertToHostname(key) },
        );
      }
      entry[field] = v;
    }
    out[key] = entry;
  }
  return out;
}

/**
 * Parses Docker config JSON (`{"auths": {...}}`, or the legacy top-level map of
 * `.dockercfg`). Throws {@linkcode CredentialError} (AuthFailed) naming the source, never
 * quoting the content.
 */
export function parseDockerConfig(json: string, opts: ParseDockerConfigOptions = {}): DockerConfig {
  const source = opts.source ?? "docker config";
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new CredentialError("AuthFailed", `${source} is not valid JSON`, { source });
  }
  if (!isObject(parsed)) {
    throw new CredentialError("AuthFailed", `${source} must hold a JSON object with "auths"`, { source });
  }
  const config: DockerConfig = { auths: {} };
  if ("auths" in parsed) {
    if (!isObject(parsed.auths)) {
      throw new CredentialError("AuthFailed", `${source}: "auths" must be an object`, { source });
    }
    config.auths = readEntries(parsed.auths, source, "auths");
    if (isObject(parsed.credHelpers)) {
      config.credHelpers = Object.fromEntries(
        Object.entries(parsed.credHelpers).filter(([, v]) => typeof v === "string"),
      ) as Record<string, string>;
    }
    if (typeof parsed.credsStore === "string") config.credsStore = parsed.credsStore;
  } else {
    // Legacy .dockercfg: registry keys at the top level. A Docker config.json without "auths"
    // (only credHelpers, proxies, ...) has no registry entries.
    const entries = Object.fromEntries(
      Object.entries(parsed).filter(([k, v]) =>
        isObject(v) && !["credHelpers", "proxies", "plugins", "HttpHeaders"].includes(k)
      ),
    );
    config.auths = readEntries(entries, source, "registry");
  }
  return config;
}

/** The entry for a registry host and the key it was found under. */
export interface FoundEntry {
  /** The key in the config (`https://index.docker.io/v1/`, `ghcr.io`, …). */
  key: string;
  /** The entry. */
  entry: DockerAuthEntry;
}

/** Finds the entry Docker would use for `registryHost` (`ghcr.io`, `host:5000`, `docker.io`). */
export function findAuthEntry(config: DockerConfig, registryHost: string): FoundEntry | undefined {
  const host = registryHost.toLowerCase();
  const keys = Object.keys(config.auths);
  const hub = isDockerHub(host);
  const exact = hub ? DOCKER_HUB_KEY : registryHost;
  if (exact in config.auths) return { key: exact, entry: config.auths[exact] };
  const candidates = hub ? DOCKER_HUB_HOSTS : [host];
  for (const want of candidates) {
    for (const key of keys) {
      if (convertToHostname(key).toLowerCase() === want) return { key, entry: config.auths[key] };
    }
  }
  return undefined;
}

function decodeBase64Utf8(text: string): string | undefined {
  try {
    const bin = atob(text.trim());
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Turns an entry into a credential. Throws {@linkcode CredentialError} (AuthFailed) when the
 * entry is malformed or empty; `source` and `registry` only name things in the message.
 */
export function credentialFromEntry(
  entry: DockerAuthEntry,
  ctx: { source: string; registry: string },
): Credential {
  if (entry.registrytoken) return { registryToken: entry.registrytoken };
  if (entry.identitytoken) return { identityToken: entry.identitytoken };
  let username = entry.username;
  let password = entry.password;
  if (entry.auth) {
    const decoded = decodeBase64Utf8(entry.auth);
    const colon = decoded?.indexOf(":") ?? -1;
    if (decoded === undefined || colon < 0) {
      throw new CredentialError(
        "AuthFailed",
        `${ctx.source}: the "auth" field for registry ${ctx.registry} is not base64 of username:password`,
        ctx,
      );
    }
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1).replace(/\0+$/, "");
  }
  if (!username || password === undefined) {
    throw new CredentialError(
      "AuthFailed",
      `${ctx.source}: the entry for registry ${ctx.registry} has no username and password, auth, ` +
        `identitytoken or registrytoken`,
      ctx,
    );
  }
  return { username, password };
}

/** Options for {@linkcode DockerConfigResolver}. */
export interface DockerConfigResolverOptions {
  /** Where the config came from, for messages (`secret default/creds`). */
  source?: string;
  /**
   * When true, a registry without an entry is an error (AuthFailed) rather than anonymous
   * access: right for a Secret the spec names for that registry.
   */
  required?: boolean;
}

/** A {@linkcode CredentialResolver} over a Docker config. */
export class DockerConfigResolver implements CredentialResolver {
  /** The parsed config. */
  readonly config: DockerConfig;
  /** Where it came from. */
  readonly source: string;
  readonly #required: boolean;

  /** Wraps a parsed config. */
  constructor(config: DockerConfig, opts: DockerConfigResolverOptions = {}) {
    this.config = config;
    this.source = opts.source ?? "docker config";
    this.#required = opts.required ?? false;
  }

  /** Credential for `registryHost`, undefined (anonymous) when none and not required. */
  resolve(registryHost: string): Promise<Credential | undefined> {
    try {
      return Promise.resolve(this.resolveSync(registryHost));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Synchronous form of {@linkcode DockerConfigResolver.resolve}. */
  resolveSync(registryHost: string): Credential | undefined {
    const found = findAuthEntry(this.config, registryHost);
    if (!found) {
      if (!this.#required) return undefined;
      const helper = this.config.credHelpers?.[registryHost] ?? this.config.credsStore;
      const note = helper ? ` (it names credential helper "${helper}", which Portager does not run)` : "";
      throw new CredentialError(
        "AuthFailed",
        `${this.source} has no auth for registry ${registryHost}${note}`,
        {
          source: this.source,
          registry: registryHost,
        },
      );
    }
    return credentialFromEntry(found.entry, { source: this.source, registry: registryHost });
  }
}

/** The parts of a Kubernetes Secret this module reads (data values are base64, as the API returns). */
export interface SecretLike {
  /** Secret type; `kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg`. */
  type?: string;
  /** base64-encoded values by key. */
  data?: Record<string, string>;
  /** Plain values by key (as written in a manifest before the apiserver encodes them). */
  stringData?: Record<string, string>;
}

const DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson";
const DOCKERCFG = "kubernetes.io/dockercfg";

/**
 * Builds a resolver from a dockerconfigjson (or legacy dockercfg) Secret. Wrong type, missing
 * key or malformed JSON throw {@linkcode CredentialError} (AuthFailed) naming the secret.
 */
export function resolverFromSecret(
  secret: SecretLike,
  ref: { namespace: string; name: string },
  opts: { required?: boolean } = {},
): DockerConfigResolver {
  const source = `secret ${ref.namespace}/${ref.name}`;
  const type = secret.type ?? "";
  if (type !== DOCKERCONFIGJSON && type !== DOCKERCFG) {
    throw new CredentialError(
      "AuthFailed",
      `${source} has type ${type || "(none)"}, expected ${DOCKERCONFIGJSON} ` +
        `(create it with kubectl create secret docker-registry)`,
      { source },
    );
  }
  const key = type === DOCKERCFG ? ".dockercfg" : ".dockerconfigjson";
  let text = secret.stringData?.[key];
  if (text === undefined && secret.data?.[key] !== undefined) {
    text = decodeBase64Utf8(secret.data[key]);
    if (text === undefined) {
      throw new CredentialError("AuthFailed", `${source}: data["${key}"] is not valid base64`, { source });
    }
  }
  if (text === undefined) {
    throw new CredentialError("AuthFailed", `${source} has no "${key}" key`, { source });
  }
  return new DockerConfigResolver(parseDockerConfig(text, { source }), {
    source,
    required: opts.required ?? true,
  });
}
