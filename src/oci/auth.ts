/**
 * Registry authentication pieces: credential types and the resolver interface, parsing of
 * `WWW-Authenticate` challenges, token scopes and a token cache with expiry.
 * @module
 */

/** A secret for one registry: Basic username/password, an OAuth2 identity (refresh) token, or a ready registry (Bearer) token. */
export type Credential =
  | { username: string; password: string }
  | { identityToken: string }
  | { registryToken: string };

/**
 * Finds the credential for a registry. `registryHost` is the registry as written in
 * references (`docker.io` for Docker Hub, `ghcr.io`, `127.0.0.1:5000`); undefined = anonymous.
 */
export interface CredentialResolver {
  /** Returns the credential for this registry host, or undefined for anonymous access. */
  resolve(registryHost: string): Promise<Credential | undefined>;
}

/** A resolver backed by a fixed map from registry host to credential. */
export function staticCredentials(map: Record<string, Credential>): CredentialResolver {
  return {
    resolve(registryHost: string): Promise<Credential | undefined> {
      return Promise.resolve(map[registryHost]);
    },
  };
}

/** One parsed `WWW-Authenticate` challenge: scheme (lower-cased) and its parameters (keys lower-cased). */
export interface Challenge {
  /** Auth scheme in lower case: "basic", "bearer", … */
  scheme: string;
  /** Auth parameters, keys lower-cased, values unquoted. */
  params: Record<string, string>;
  /** A token68 value, for schemes that carry one instead of parameters. */
  token68?: string;
}

/** Splits a header value at top-level commas, keeping quoted strings intact. */
function splitTopLevel(s: string): string[] {
  const items: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (quoted) {
      cur += ch;
      if (ch === "\\" && i + 1 < s.length) cur += s[++i];
      else if (ch === '"') quoted = false;
    } else if (ch === '"') {
      quoted = true;
      cur += ch;
    } else if (ch === ",") {
      items.push(cur);
      cur = "";
    } else {
      cur += ch;
    }
  }
  items.push(cur);
  return items.map((x) => x.trim()).filter((x) => x.length > 0);
}

/** Removes surrounding quotes and backslash escapes from a parameter value. */
function unquote(v: string): string {
  const t = v.trim();
  if (!t.startsWith('"')) return t;
  let out = "";
  for (let i = 1; i < t.length; i++) {
    const ch = t[i];
    if (ch === "\\" && i + 1 < t.length) {
      out += t[++i];
    } else if (ch === '"') {
      break;
    } else {
      out += ch;
    }
  }
  return out;
}

const PARAM = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*(.*)$/s;
const PARAM_START = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\s*=/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * Parses a `WWW-Authenticate` header value into its challenges (RFC 9110 §11.6.1): several
 * challenges separated by commas, each with `key=value` or `key="quoted \"value\""` parameters.
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let current: Challenge | undefined;
  for (const item of splitTopLevel(header)) {
    const space = item.search(/\s/);
    if (!current || !PARAM_START.test(item)) {
      const scheme = space < 0 ? item : item.slice(0, space);
      current = { scheme: scheme.toLowerCase(), params: {} };
      out.push(current);
      const rest = space < 0 ? "" : item.slice(space).trim();
      if (rest.length === 0) continue;
      // token68 carries '=' only as trailing padding; anything else is a first parameter.
      const m = PARAM.exec(rest);
      if (TOKEN68.test(rest) && !/=[^=]/.test(rest)) current.token68 = rest;
      else if (m) current.params[m[1].toLowerCase()] = unquote(m[2]);
      continue;
    }
    const m = PARAM.exec(item);
    if (m) current.params[m[1].toLowerCase()] = unquote(m[2]);
  }
  return out;
}

/** Picks the challenge to answer: Bearer if offered (with a realm), else Basic, else undefined. */
export function chooseChallenge(challenges: Challenge[]): Challenge | undefined {
  return challenges.find((c) => c.scheme === "bearer" && c.params.realm) ??
    challenges.find((c) => c.scheme === "basic");
}

/** A token scope for a repository: `repository:<name>:<actions>`. */
export function repositoryScope(repository: string, actions: ReadonlyArray<"pull" | "push">): string {
  return `repository:${repository}:${actions.join(",")}`;
}

/** Normalizes a list of scopes (dedupe, order) so equivalent requests share one cache entry. */
export function normalizeScopes(scopes: readonly string[]): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const raw of scopes) {
    for (const scope of raw.split(" ")) {
      if (!scope) continue;
      const lastColon = scope.lastIndexOf(":");
      if (lastColon < 0) {
        byResource.set(scope, byResource.get(scope) ?? new Set());
        continue;
      }
      const resource = scope.slice(0, lastColon);
      const actions = byResource.get(resource) ?? new Set<string>();
      for (const a of scope.slice(lastColon + 1).split(",")) if (a) actions.add(a);
      byResource.set(resource, actions);
    }
  }
  return [...byResource.entries()]
    .map(([resource, actions]) =>
      actions.size > 0 ? `${resource}:${[...actions].sort().join(",")}` : resource
    )
    .sort();
}

/** A bearer token and when it stops being usable (epoch ms). */
export interface CachedToken {
  /** The bearer token to send. */
  token: string;
  /** Epoch milliseconds after which the token must not be used. */
  expiresAt: number;
}

/** Options for {@linkcode TokenCache}. */
export interface TokenCacheOptions {
  /** Clock, for tests. Defaults to Date.now. */
  now?: () => number;
}

/** Seconds a token is assumed valid when the token server does not say (distribution spec default). */
export const DEFAULT_TOKEN_LIFETIME_S = 60;

/**
 * Computes when a token must be refreshed: issue time + `expires_in` (default 60 s) minus a
 * safety margin of 10 % (at least 5 s, at most 60 s) so it never expires mid-request.
 */
export function tokenExpiry(issuedAtMs: number, expiresInS: number | undefined): number {
  const lifetime = expiresInS !== undefined && Number.isFinite(expiresInS) && expiresInS > 0
    ? expiresInS
    : DEFAULT_TOKEN_LIFETIME_S;
  const margin = Math.min(60, Math.max(5, lifetime * 0.1));
  return issuedAtMs + Math.max(lifetime / 2, lifetime - margin) * 1000;
}

/** Bearer tokens cached per (realm, service, scope set) until their expiry. */
export class TokenCache {
  #tokens = new Map<string, CachedToken>();
  #now: () => number;

  /** Creates an empty cache. */
  constructor(opts: TokenCacheOptions = {}) {
    this.#now = opts.now ?? Date.now;
  }

  /** The cache key for a token request to `realm` (with the challenge's service) for `scopes`. */
  static key(realm: string, opts: { service?: string; scopes: readonly string[] }): string {
    return JSON.stringify([realm, opts.service ?? "", normalizeScopes(opts.scopes)]);
  }

  /** Returns a still-valid token for the key, or undefined. */
  get(key: string): string | undefined {
    const t = this.#tokens.get(key);
    if (!t) return undefined;
    if (t.expiresAt <= this.#now()) {
      this.#tokens.delete(key);
      return undefined;
    }
    return t.token;
  }

  /** Stores a token. */
  set(key: string, token: CachedToken): void {
    this.#tokens.set(key, token);
  }

  /** Forgets a token (after the registry rejected it). */
  delete(key: string): void {
    this.#tokens.delete(key);
  }

  /** Number of entries, for tests. */
  get size(): number {
    return this.#tokens.size;
  }
}
