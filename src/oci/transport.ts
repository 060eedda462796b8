/**
 * The transport every registry operation goes through, composed of small senders the way
 * go-containerregistry composes round trippers: {@linkcode HttpSender} (one exchange: manual
 * redirects, idle timeout, request deadline, minimum blob rate, custom CAs) wrapped by
 * {@linkcode RetrySender} (backoff, `Retry-After`), with the `/v2/` {@linkcode ping} once per
 * registry and Basic or {@linkcode BearerAuthenticator} auth on top, re-authenticating once on
 * a 401.
 *
 * Credentials are bound to the registry's origin: `Authorization` never follows a redirect,
 * an absolute upload `Location` or a `Link` to another origin, and a 401 challenge is honoured
 * only from the registry's own origin — from any other host it is a ForeignChallenge error
 * naming that host, so its realm never receives the registry's credentials.
 * @module
 */

import {
  type Challenge,
  chooseChallenge,
  type Credential,
  type CredentialResolver,
  normalizeScopes,
  parseChallenges,
} from "./auth.ts";
import { basicAuthorization } from "./basic.ts";
import { type Authorization, BearerAuthenticator } from "./bearer.ts";
import { errorFromResponse, foreignChallenge, OciError } from "./errors.ts";
import { ping } from "./ping.ts";
import type { RegistryResponse } from "./response.ts";
import { budgetKey, RateLimitSender, type RateLimitSenderOptions } from "./rate_limit.ts";
import { RetryPolicy, type RetryPolicyOptions, RetrySender } from "./retry.ts";
import {
  HttpSender,
  type HttpSenderOptions,
  type Sender,
  sendFailureError,
  type WaitWrapper,
} from "./send.ts";

/**
 * Options shared by {@linkcode Transport} and the registry client: retries
 * ({@linkcode RetryPolicyOptions}), limits of each exchange ({@linkcode HttpSenderOptions}:
 * idle timeout, request deadline, minimum blob rate, CAs, User-Agent) and credentials.
 */
export interface TransportOptions extends RetryPolicyOptions, HttpSenderOptions {
  /** Credentials per registry host; anonymous when absent or when it returns undefined. */
  credentials?: CredentialResolver;
  /** Extra registries (host or host:port) that may be spoken to over plain HTTP. */
  insecureRegistries?: string[];
  /** Rate-limit budgets per registry and the longest wait for one (default: the process-wide budgets, 30 s). */
  rateLimit?: RateLimitSenderOptions;
}

/** What a caller asks of {@linkcode Transport.request}. */
export interface RequestSpec {
  /** HTTP method. */
  method: string;
  /** A path under the registry (`/v2/…`) or an absolute URL the registry handed out (Location). */
  path: string;
  /** Token scopes the request needs, e.g. `repository:foo:pull`. */
  scopes: string[];
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** A replayable body. */
  body?: Uint8Array | string;
  /** A one-shot streamed body; such a request is never retried here. */
  stream?: ReadableStream<Uint8Array>;
  /** Statuses returned to the caller instead of thrown (2xx always are). */
  accept?: number[];
  /** The reference worked on, for error messages. */
  reference?: string;
  /** What the request does, for error messages ("pull manifest", "upload blob"). */
  action: string;
  /** Cancels the request. */
  signal?: AbortSignal;
  /** Whether the request may be repeated safely (default: true unless `stream` is set). */
  idempotent?: boolean;
  /** A blob transfer: bounded by the minimum transfer rate, not by the request deadline. */
  bulk?: boolean;
  /** Wraps each wait before a retry or a rate-limit pause (`SendRequest.duringWait`), its token fetch's too. */
  duringWait?: WaitWrapper;
}

/** Per-registry state: where it lives, how it authenticates. */
interface RegistryState {
  registry: string;
  base: URL;
  challenge?: Challenge;
  credential: Promise<Credential | undefined>;
}

/**
 * Talks HTTP to registries for one set of credentials: pings each registry once, then sends
 * requests with the right Authorization, following redirects, retrying what is safe to retry.
 */
export class Transport {
  /** The retry policy requests are sent with (the copier restarts blobs with it too). */
  readonly retry: RetryPolicy;
  readonly #opts: TransportOptions;
  readonly #http: HttpSender;
  readonly #sender: Sender;
  readonly #bearer: BearerAuthenticator;
  readonly #states = new Map<string, Promise<RegistryState>>();

  /** Creates a transport; call {@linkcode Transport.close} when done if `caCerts` were given. */
  constructor(opts: TransportOptions = {}) {
    this.#opts = opts;
    this.retry = new RetryPolicy(opts);
    this.#http = new HttpSender(opts);
    // each attempt asks the registry's rate-limit budget and feeds it the response's headers
    this.#sender = new RetrySender(new RateLimitSender(this.#http, opts.rateLimit), this.retry);
    this.#bearer = new BearerAuthenticator(this.#sender, {
      insecureRegistries: opts.insecureRegistries,
      timeoutMs: this.#http.timeoutMs,
    });
  }

  /** Releases the HTTP client holding the custom CA bundle. */
  close(): void {
    this.#http.close();
  }

  /** Whether requests to this registry go over plain HTTP (after its ping). */
  async isPlainHttp(registry: string, signal?: AbortSignal): Promise<boolean> {
    return (await this.#state(registry, signal)).base.protocol === "http:";
  }

  /** Sends a request to a registry, authenticating and retrying as needed. */
  async request(registry: string, spec: RequestSpec): Promise<RegistryResponse> {
    const state = await this.#state(registry, spec.signal);
    const url = new URL(spec.path, state.base);
    const context = { registry, action: spec.action, reference: spec.reference };
    let scopes = spec.scopes;
    let reauthed = false;
    while (true) {
      const auth = await this.#authorization(state, scopes, spec);
      let res: RegistryResponse;
      try {
        res = await this.#sender.send({
          registry,
          url,
          method: spec.method,
          headers: { ...spec.headers, ...(auth ? { authorization: auth.header } : {}) },
          body: spec.stream ?? spec.body,
          authOrigin: state.base.origin,
          signal: spec.signal,
          idempotent: spec.idempotent ?? !spec.stream,
          bulk: spec.bulk,
          budget: budgetKey(registry, await state.credential),
          duringWait: spec.duringWait,
        });
      } catch (e) {
        throw sendFailureError(e, { ...context, timeoutMs: this.#http.timeoutMs });
      }
      if (res.status === 401 && new URL(res.url).origin !== state.base.origin) {
        await res.discard();
        throw foreignChallenge(state, new URL(res.url), spec);
      }
      if (res.status === 401) {
        const challenges = parseChallenges(res.headers.get("www-authenticate") ?? "");
        const next = chooseChallenge(challenges);
        const text = await res.text();
        if (auth?.cacheKey) this.#bearer.invalidate(auth.cacheKey);
        if (next) {
          state.challenge = next;
          if (next.params.scope) scopes = normalizeScopes([...scopes, next.params.scope]);
        }
        // Re-auth once: a fresh token (Bearer), or credentials we did not send yet.
        if (!reauthed && next && !spec.stream && (next.scheme === "bearer" || !auth)) {
          reauthed = true;
          this.retry.report({
            registry,
            reason: "Unauthorized",
            attempt: 1,
            delayMs: 0,
            method: spec.method,
            path: url.pathname,
            status: 401,
          });
          continue;
        }
        throw await this.#unauthorized(state, { spec, scopes, next, text, auth });
      }
      if (res.ok || spec.accept?.includes(res.status)) return res;
      throw errorFromResponse(res.status, await res.text(), context);
    }
  }

  /** The error for a 401 we cannot answer: missing scope, bad or missing credentials. */
  async #unauthorized(
    state: RegistryState,
    got: { spec: RequestSpec; scopes: string[]; next?: Challenge; text: string; auth?: Authorization },
  ): Promise<OciError> {
    const { spec, next, auth } = got;
    const { registry } = state;
    const credential = await state.credential;
    if (next?.params.error === "insufficient_scope" && credential) {
      return new OciError(
        "Forbidden",
        `registry ${registry}: access denied (HTTP 401 insufficient_scope) while trying to ` +
          `${spec.action} ${spec.reference ?? ""}: the credentials do not grant ` +
          `${next?.params.scope ?? normalizeScopes(got.scopes).join(" ")}`.trimEnd(),
        { registry, reference: spec.reference, status: 401 },
      );
    }
    const err = errorFromResponse(401, got.text, {
      registry,
      reference: spec.reference,
      action: spec.action,
    });
    return new OciError(
      "Unauthorized",
      err.message + (credential ? "" : " (no credentials configured for this registry)"),
      {
        registry,
        reference: spec.reference,
        status: 401,
        // A streamed request may have outlived its cached token: restarting it helps once.
        retryable: Boolean(spec.stream && auth?.cached),
      },
    );
  }

  /** Resolves (once) the registry's base URL and auth challenge by pinging `/v2/`. */
  #state(registry: string, signal?: AbortSignal): Promise<RegistryState> {
    let p = this.#states.get(registry);
    if (!p) {
      p = this.#ping(registry, signal);
      this.#states.set(registry, p);
      // A failed ping must not stick: the next call tries again.
      p.catch(() => this.#states.delete(registry));
    }
    return p;
  }

  async #ping(registry: string, signal?: AbortSignal): Promise<RegistryState> {
    const found = await ping(registry, {
      probe: this.#http,
      sender: this.#sender,
      insecureRegistries: this.#opts.insecureRegistries,
      timeoutMs: this.#http.timeoutMs,
      signal,
    });
    const state: RegistryState = {
      registry,
      ...found,
      credential: this.#opts.credentials?.resolve(registry) ?? Promise.resolve(undefined),
    };
    // Keep an unhandled rejection from surfacing before the first request awaits it.
    state.credential.catch(() => {});
    return state;
  }

  /** The Authorization header for a request with these scopes, fetching a token if needed. */
  async #authorization(
    state: RegistryState,
    scopes: string[],
    spec: RequestSpec,
  ): Promise<Authorization | undefined> {
    const challenge = state.challenge;
    if (!challenge) return undefined;
    const credential = await state.credential;
    if (challenge.scheme === "basic") {
      const header = basicAuthorization(credential);
      return header ? { header } : undefined;
    }
    return await this.#bearer.authorize(challenge, credential, scopes, {
      registry: state.registry,
      action: spec.action,
      reference: spec.reference,
      signal: spec.signal,
      duringWait: spec.duringWait,
    });
  }
}
