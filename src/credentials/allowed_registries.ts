/**
 * The registries an operator lets its tenants name (`--allowed-registries`): a list of host
 * patterns, each a host with an optional port where `*` stands for any run of characters
 * within the host or the port (`*.dkr.ecr.us-east-1.amazonaws.com`, `registry.internal:5000`,
 * `localhost:*`, `ghcr.io`). A pattern without a port matches only hosts written without one.
 * An ImageSync whose source or destination registry matches none is refused before any
 * request or Secret read, with the stable reason `RegistryNotAllowed`. Docker Hub's spellings
 * (`docker.io`, `index.docker.io`, `registry-1.docker.io`) are one registry.
 * @module
 */
import { splitRegistry } from "../api/mod.ts";
import { CredentialError } from "./errors.ts";

/** Most patterns in one list (each is matched against every ImageSync). */
export const MAX_ALLOWED_REGISTRY_PATTERNS = 256;

const DOCKER_HUB_ALIASES = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);
const PATTERN_RE = /^(?:[a-z0-9*](?:[a-z0-9*.-]*[a-z0-9*])?|\[[0-9a-f:.]+\])(?::(?:\d{1,5}|\*))?$/;

/** A parsed `--allowed-registries` list. */
export interface AllowedRegistries {
  /** The patterns as given (lowercased), for messages. */
  readonly patterns: readonly string[];
  /** Whether a registry host (with port, no path) matches a pattern. */
  allows(host: string): boolean;
}

function canonicalHost(host: string): string {
  const h = host.toLowerCase();
  return DOCKER_HUB_ALIASES.has(h) ? "docker.io" : h;
}

/**
 * Parses patterns (comma lists already split); throws a TypeError naming the first bad one.
 * An empty list allows nothing: pass undefined to allow every registry.
 */
export function parseAllowedRegistries(patterns: readonly string[]): AllowedRegistries {
  if (patterns.length > MAX_ALLOWED_REGISTRY_PATTERNS) {
    throw new TypeError(`at most ${MAX_ALLOWED_REGISTRY_PATTERNS} registry patterns, got ${patterns.length}`);
  }
  const kept: string[] = [];
  const res: RegExp[] = [];
  for (const raw of patterns) {
    const p = raw.trim().toLowerCase();
    if (p.includes("/") || p.includes("://")) {
      throw new TypeError(`registry pattern "${raw}": write a host with an optional port, no scheme or path`);
    }
    if (!PATTERN_RE.test(p) || p.length > 255) {
      throw new TypeError(
        `registry pattern "${raw}" is not a host pattern: letters, digits, ".", "-", "*" and an optional ":port"`,
      );
    }
    kept.push(p);
    const host = canonicalHost(p);
    // `*` never crosses into the port: a pattern names its port, or matches hosts without one
    const body = host.split("*").map((s) => s.replace(/[.[\]]/g, "\\$&")).join("[^/:]*");
    res.push(new RegExp(`^${body}$`));
  }
  return {
    patterns: kept,
    allows: (host) => {
      const h = canonicalHost(host);
      return res.some((re) => re.test(h));
    },
  };
}

/**
 * Throws CredentialError `RegistryNotAllowed` when the spec's source or destination registry
 * matches no pattern; `allowed` undefined allows every registry.
 */
export function checkAllowedRegistries(
  registries: { source: string; destination: string },
  allowed: AllowedRegistries | undefined,
): void {
  if (!allowed) return;
  for (const role of ["source", "destination"] as const) {
    const host = splitRegistry(registries[role]).host;
    if (allowed.allows(host)) continue;
    throw new CredentialError(
      "RegistryNotAllowed",
      `the ${role} registry ${host} is not one this operator syncs with (allowed: ${
        allowed.patterns.length ? allowed.patterns.join(", ") : "none"
      }; ask the operator's admin, who sets --allowed-registries)`,
      { registry: host },
    );
  }
}
