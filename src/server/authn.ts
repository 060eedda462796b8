/**
 * Authentication and authorization of /metrics, as controller-runtime's
 * `WithAuthenticationAndAuthorization` filter: the request's bearer token is reviewed by the
 * apiserver (TokenReview), the user's right to `get` the path by a SubjectAccessReview. No
 * token or an unknown one is 401, a user without the right 403. Answers are cached briefly
 * (authentication 1 min, allowed 5 min, denied 30 s, as controller-runtime), by a hash of the
 * token, with a bounded number of entries (tokens are chosen by whoever connects).
 * @module
 */

import { createHash } from "node:crypto";
import type { Logger } from "../log/mod.ts";

/** A user as the token review names it. */
export interface AuthUser {
  /** User name. */
  username: string;
  /** UID. */
  uid?: string;
  /** Groups. */
  groups?: string[];
  /** Extra attributes. */
  extra?: Record<string, string[]>;
}

/** Who answers the reviews (src/kube's AccessReviewer). */
export interface TokenAuthority {
  /** The token's user, or undefined when not authenticated. */
  authenticate(token: string): Promise<AuthUser | undefined>;
  /** Whether `user` may `verb` the non-resource URL `path`. */
  authorize(user: AuthUser, access: { path: string; verb: string }): Promise<boolean>;
}

/** Options of {@linkcode authFilter}. */
export interface AuthFilterOptions {
  /** How long a token review is reused; default 60 s. */
  authnTtlMs?: number;
  /** How long an allowed decision is reused; default 5 min. */
  allowTtlMs?: number;
  /** How long a denied decision is reused; default 30 s. */
  denyTtlMs?: number;
  /** Entries kept per cache; default 1024. */
  maxEntries?: number;
  /** Where review failures are logged. */
  logger?: Logger;
  /** Clock (epoch ms), for tests. */
  now?: () => number;
}

/** Longest Authorization header considered; longer is 401 without a review. */
const MAX_AUTHORIZATION = 16 * 1024;

class TtlCache<V> {
  readonly #entries = new Map<string, { value: V; expires: number }>();
  readonly #max: number;
  readonly #now: () => number;

  constructor(max: number, now: () => number) {
    this.#max = max;
    this.#now = now;
  }

  get(key: string): V | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (e.expires <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  set(key: string, value: V, ttlMs: number): void {
    this.#entries.delete(key);
    this.#entries.set(key, { value, expires: this.#now() + ttlMs });
    // oldest first out
    while (this.#entries.size > this.#max) this.#entries.delete(this.#entries.keys().next().value!);
  }
}

function text(status: number, body: string): Response {
  return new Response(`${body}\n`, { status, headers: { "content-type": "text/plain; charset=utf-8" } });
}

/**
 * Returns a check for requests: undefined when the request may proceed, else the 401/403/500
 * response to send.
 */
export function authFilter(
  authority: TokenAuthority,
  options: AuthFilterOptions = {},
): (req: Request) => Promise<Response | undefined> {
  const now = options.now ?? Date.now;
  const max = options.maxEntries ?? 1024;
  const users = new TtlCache<AuthUser | null>(max, now);
  const decisions = new TtlCache<boolean>(max, now);
  return async (req) => {
    const header = req.headers.get("authorization") ?? "";
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header.length > MAX_AUTHORIZATION ? "" : header);
    if (!m) return text(401, "Unauthorized");
    const tokenKey = createHash("sha256").update(m[1]).digest("hex");
    let user = users.get(tokenKey);
    if (user === undefined) {
      try {
        user = (await authority.authenticate(m[1])) ?? null;
      } catch (err) {
        options.logger?.warn("metrics: token review failed", { error: err });
        return text(401, "Unauthorized");
      }
      users.set(tokenKey, user, options.authnTtlMs ?? 60_000);
    }
    if (!user) return text(401, "Unauthorized");
    const path = new URL(req.url).pathname;
    const verb = "get";
    const decisionKey = JSON.stringify([user.username, user.uid, user.groups, user.extra, path, verb]);
    let allowed = decisions.get(decisionKey);
    if (allowed === undefined) {
      try {
        allowed = await authority.authorize(user, { path, verb });
      } catch (err) {
        options.logger?.warn("metrics: access review failed", { error: err });
        return text(500, "Internal Server Error");
      }
      decisions.set(
        decisionKey,
        allowed,
        allowed ? options.allowTtlMs ?? 300_000 : options.denyTtlMs ?? 30_000,
      );
    }
    if (!allowed) {
      return text(403, `Forbidden (user=${user.username}, verb=${verb}, resource=, subresource=)`);
    }
    return undefined;
  };
}
