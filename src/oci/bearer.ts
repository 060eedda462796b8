/**
 * Bearer auth (distribution's token protocol): fetches a token from the realm the registry's
 * own challenge named, for the exact scopes a request needs, and caches it per (realm,
 * service, scopes) until shortly before it expires. Concurrent requests for one scope share
 * one fetch. OAuth2 identity tokens are exchanged with a POST; ready registry tokens are used
 * as they are.
 * @module
 */

import { type Challenge, type Credential, normalizeScopes, TokenCache, tokenExpiry } from "./auth.ts";
import { basicAuth } from "./basic.ts";
import { errorFromResponse, OciError } from "./errors.ts";
import { allowsPlainHttp } from "./reference.ts";
import { type Sender, sendFailureError, waitFor, type WaitWrapper } from "./send.ts";

/** Most of a token response we read (1 MiB). */
export const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;

/** The Authorization a request carries, and how to forget it if the registry refuses it. */
export interface Authorization {
  /** The header value. */
  header: string;
  /** The token cache key, to drop the token after a 401. */
  cacheKey?: string;
  /** Whether the token came from the cache (it may have been revoked since). */
  cached?: boolean;
}

/** What the token is for, to say so in errors. */
export interface TokenContext {
  /** Registry host as in references. */
  registry: string;
  /** What the request needing the token does. */
  action: string;
  /** The reference worked on. */
  reference?: string;
  /** Cancels the token fetch. */
  signal?: AbortSignal;
  /**
   * Wraps each wait of the token fetch (a retry's backoff, the registry's `Retry-After` pause):
   * the request that needs the token sends nothing meanwhile, so the copier gives its slot of
   * the transfer budget back. A request that joins a fetch another one started has each of
   * that fetch's waits wrapped by its own `duringWait` too.
   */
  duringWait?: WaitWrapper;
}

/** A token fetch in progress, shared by every request needing that token. */
interface PendingFetch {
  token: Promise<string>;
  /** The wait the fetch is in (a retry's backoff, a `Retry-After` pause), if any. */
  waiting?: Promise<void>;
  /** Resolved, then replaced, each time the fetch starts a wait. */
  waitStarted: PromiseWithResolvers<void>;
}

/** Options of the {@linkcode BearerAuthenticator}. */
export interface BearerOptions {
  /** Hosts that may be reached over plain HTTP (a plain-HTTP realm gets credentials only then). */
  insecureRegistries?: string[];
  /** The idle timeout of the sender, for error messages. */
  timeoutMs: number;
}

/** Fetches and caches bearer tokens for one set of credentials. */
export class BearerAuthenticator {
  readonly #sender: Sender;
  readonly #opts: BearerOptions;
  readonly #tokens = new TokenCache();
  readonly #fetches = new Map<string, PendingFetch>();

  /** Fetches tokens through `sender` (the retrying one). */
  constructor(sender: Sender, opts: BearerOptions) {
    this.#sender = sender;
    this.#opts = opts;
  }

  /** The Authorization for a Bearer challenge and these scopes, fetching a token if needed. */
  async authorize(
    challenge: Challenge,
    credential: Credential | undefined,
    scopes: string[],
    ctx: TokenContext,
  ): Promise<Authorization> {
    if (credential && "registryToken" in credential) {
      return { header: `Bearer ${credential.registryToken}` };
    }
    const normalized = normalizeScopes(scopes);
    const key = TokenCache.key(challenge.params.realm, {
      service: challenge.params.service,
      scopes: normalized,
    });
    const cached = this.#tokens.get(key);
    if (cached) return { header: `Bearer ${cached}`, cacheKey: key, cached: true };
    const joined = this.#fetches.get(key);
    if (joined) return { header: `Bearer ${await join(joined, ctx)}`, cacheKey: key, cached: false };
    const pending: PendingFetch = { token: undefined!, waitStarted: Promise.withResolvers() };
    // each wait of the fetch runs through this request's duringWait, and is shown to joiners
    const duringWait: WaitWrapper = (wait) => {
      const current = wait();
      const clear = () => {
        if (pending.waiting === current) pending.waiting = undefined;
      };
      current.then(clear, clear);
      pending.waiting = current;
      const started = pending.waitStarted;
      pending.waitStarted = Promise.withResolvers();
      started.resolve();
      return waitFor(ctx, () => current);
    };
    pending.token = this.#fetch(key, challenge, normalized, credential, { ...ctx, duringWait }).finally(() =>
      this.#fetches.delete(key)
    );
    this.#fetches.set(key, pending);
    return { header: `Bearer ${await pending.token}`, cacheKey: key, cached: false };
  }

  /** Forgets a token the registry refused. */
  invalidate(key: string): void {
    this.#tokens.delete(key);
  }

  /** Fetches a token from the realm the registry's own challenge named. */
  async #fetch(
    key: string,
    challenge: Challenge,
    scopes: string[],
    credential: Credential | undefined,
    ctx: TokenContext,
  ): Promise<string> {
    const { registry } = ctx;
    const realm = this.#realm(challenge, credential, registry);
    const service = challenge.params.service;
    const headers: Record<string, string> = { accept: "application/json" };
    let method = "GET";
    let body: string | undefined;
    const url = new URL(realm);
    if (credential && "identityToken" in credential) {
      method = "POST";
      const form = new URLSearchParams();
      form.set("grant_type", "refresh_token");
      form.set("refresh_token", credential.identityToken);
      form.set("client_id", "portager");
      if (service) form.set("service", service);
      if (scopes.length > 0) form.set("scope", scopes.join(" "));
      body = form.toString();
      headers["content-type"] = "application/x-www-form-urlencoded";
    } else {
      if (service) url.searchParams.set("service", service);
      for (const s of scopes) url.searchParams.append("scope", s);
      if (credential && "username" in credential) {
        url.searchParams.set("account", credential.username);
        headers.authorization = basicAuth(credential.username, credential.password);
      }
    }
    const where = `${realm.origin}${realm.pathname}`;
    const action = `get a token from ${where} to ${ctx.action}`;
    const issuedAt = Date.now();
    let res;
    try {
      res = await this.#sender.send({
        registry,
        url,
        method,
        headers,
        body,
        authOrigin: realm.origin,
        signal: ctx.signal,
        idempotent: true,
        duringWait: ctx.duringWait,
      });
    } catch (e) {
      throw sendFailureError(e, {
        registry,
        action,
        reference: ctx.reference,
        timeoutMs: this.#opts.timeoutMs,
      });
    }
    if (!res.ok) {
      const text = await res.text();
      if (res.status === 401 || res.status === 403) {
        throw new OciError(
          "Unauthorized",
          `registry ${registry}: the token server ${where} ` +
            `rejected the ${credential ? "credentials" : "anonymous request"} (HTTP ${res.status}) ` +
            `while trying to ${ctx.action}${ctx.reference ? " " + ctx.reference : ""}`,
          { registry, reference: ctx.reference, status: res.status },
        );
      }
      throw errorFromResponse(res.status, text, { registry, action, reference: ctx.reference });
    }
    const text = await res.text(MAX_TOKEN_RESPONSE_BYTES);
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new OciError("Protocol", `registry ${registry}: the token server ${where} did not answer JSON`, {
        registry,
      });
    }
    const token = typeof parsed.token === "string" && parsed.token
      ? parsed.token
      : typeof parsed.access_token === "string"
      ? parsed.access_token
      : "";
    if (!token) {
      throw new OciError("Protocol", `registry ${registry}: the token server ${where} returned no token`, {
        registry,
      });
    }
    const expiresIn = typeof parsed.expires_in === "number" ? parsed.expires_in : undefined;
    this.#tokens.set(key, { token, expiresAt: tokenExpiry(issuedAt, expiresIn) });
    return token;
  }

  /** The realm as a URL we may send these credentials to, or an error saying why not. */
  #realm(challenge: Challenge, credential: Credential | undefined, registry: string): URL {
    let realm: URL;
    try {
      realm = new URL(challenge.params.realm);
    } catch {
      throw new OciError(
        "Protocol",
        `registry ${registry}: its token realm "${challenge.params.realm}" is not a URL`,
        { registry },
      );
    }
    if (realm.protocol !== "https:" && realm.protocol !== "http:") {
      throw new OciError(
        "Protocol",
        `registry ${registry}: unsupported token realm scheme ${realm.protocol}`,
        {
          registry,
        },
      );
    }
    if (
      realm.protocol === "http:" && credential && !allowsPlainHttp(realm.host, this.#opts.insecureRegistries)
    ) {
      throw new OciError(
        "InsecureRegistry",
        `registry ${registry}: refusing to send credentials to the plain-HTTP token realm ` +
          `${realm.origin}${realm.pathname}; list ${realm.host} in insecureRegistries to allow it`,
        { registry },
      );
    }
    return realm;
  }
}

/**
 * Waits for a token fetch another request started; each of the fetch's waits runs through this
 * request's `duringWait` as well (it sends nothing then either), and ends with it taken again.
 */
async function join(pending: PendingFetch, ctx: TokenContext): Promise<string> {
  const done = pending.token.then(() => true);
  done.catch(() => {}); // it may fail while this request is in a wait: the race below says so
  let last: Promise<void> | undefined;
  for (;;) {
    const current = pending.waiting;
    if (current && current !== last) {
      last = current;
      // a failed wait fails the fetch: its token says so on the next turn
      await waitFor(ctx, () => current.catch(() => {}));
      continue;
    }
    if (await Promise.race([done, pending.waitStarted.promise.then(() => false)])) return await pending.token;
  }
}
