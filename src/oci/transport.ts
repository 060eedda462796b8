/**
 * The HTTP layer under every registry operation: scheme selection and `/v2/` ping, Basic and
 * Bearer auth (tokens per scope, cached, one re-auth on 401), manual redirects that never carry
 * `Authorization` to another host, idle timeouts, retries with backoff and `Retry-After`, and a
 * custom CA bundle through `Deno.createHttpClient`.
 * @module
 */

import {
  basicAuth,
  type Challenge,
  chooseChallenge,
  type Credential,
  type CredentialResolver,
  normalizeScopes,
  parseChallenges,
  TokenCache,
  tokenExpiry,
} from "./auth.ts";
import { errorFromResponse, OciError, type OciErrorReason } from "./errors.ts";
import { allowsPlainHttp, registryApiHost } from "./reference.ts";

/** Why a request was retried, as reported to {@linkcode TransportOptions.onRetry}. */
export type RetryReason =
  | "ServerError"
  | "RateLimited"
  | "Network"
  | "Timeout"
  | "Unauthorized"
  | "BlobRestart";

/** One retry, reported so the operator's metrics can count retries by reason. */
export interface RetryEvent {
  /** Registry host (as in references) or token realm host the request went to. */
  registry: string;
  /** Why the request is retried. */
  reason: RetryReason;
  /** The attempt that failed (1-based). */
  attempt: number;
  /** How long we wait before the next attempt. */
  delayMs: number;
  /** HTTP method of the failed request. */
  method: string;
  /** URL path of the failed request (no query, no credentials). */
  path: string;
  /** HTTP status, when a response caused the retry. */
  status?: number;
}

/** Options shared by {@linkcode Transport} and the registry client. */
export interface TransportOptions {
  /** Credentials per registry host; anonymous when absent or when it returns undefined. */
  credentials?: CredentialResolver;
  /** Extra registries (host or host:port) that may be spoken to over plain HTTP. */
  insecureRegistries?: string[];
  /** PEM CA certificates trusted in addition to the system roots. */
  caCerts?: string[];
  /** Idle timeout per request: no response headers or no body bytes for this long (default 60 s). */
  timeoutMs?: number;
  /** Attempts per request, including the first (default 5). */
  maxAttempts?: number;
  /** First backoff delay; doubles per attempt, with jitter (default 250 ms). */
  retryBaseMs?: number;
  /** Largest backoff delay and largest `Retry-After` we honour (default 30 s). */
  retryMaxDelayMs?: number;
  /** User-Agent header. */
  userAgent?: string;
  /** Called before each retry, for metrics. */
  onRetry?: (e: RetryEvent) => void;
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
}

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_ATTEMPTS = 5;
const DEFAULT_RETRY_BASE_MS = 250;
const DEFAULT_RETRY_MAX_MS = 30_000;
const MAX_REDIRECTS = 10;
const PROBE_TIMEOUT_MS = 10_000;
const ERROR_BODY_LIMIT = 64 * 1024;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** A response from the registry; its body must be consumed, or discarded with {@linkcode RegistryResponse.discard}. */
export class RegistryResponse {
  /** HTTP status. */
  readonly status: number;
  /** Response headers. */
  readonly headers: Headers;
  /** Final URL after redirects. */
  readonly url: string;
  /** Body stream (idle-timeout guarded), or null. */
  readonly body: ReadableStream<Uint8Array> | null;

  /** Wraps a response; used by the transport. */
  constructor(
    status: number,
    headers: Headers,
    url: string,
    body: ReadableStream<Uint8Array> | null,
  ) {
    this.status = status;
    this.headers = headers;
    this.url = url;
    this.body = body;
  }

  /** True for 2xx. */
  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /** Reads the whole body, failing once it exceeds `limit` bytes. */
  async bytes(limit: number, tooLarge: () => Error): Promise<Uint8Array> {
    if (!this.body) return new Uint8Array(0);
    const reader = this.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.byteLength;
        if (total > limit) {
          await reader.cancel().catch(() => {});
          throw tooLarge();
        }
        chunks.push(value);
      }
    } finally {
      reader.releaseLock();
    }
    const out = new Uint8Array(total);
    let offset = 0;
    for (const c of chunks) {
      out.set(c, offset);
      offset += c.byteLength;
    }
    return out;
  }

  /** Reads up to `limit` bytes of the body as text and discards the rest. */
  async text(limit = ERROR_BODY_LIMIT): Promise<string> {
    if (!this.body) return "";
    const reader = this.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      while (total < limit) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        total += value.byteLength;
      }
      if (total >= limit) await reader.cancel().catch(() => {});
    } catch {
      // A broken error body is not worth failing over.
    } finally {
      reader.releaseLock();
    }
    const all = new Uint8Array(Math.min(total, limit));
    let offset = 0;
    for (const c of chunks) {
      const part = c.subarray(0, Math.max(0, all.byteLength - offset));
      all.set(part, offset);
      offset += part.byteLength;
    }
    return new TextDecoder().decode(all);
  }

  /** Drops the body (cancels the stream). */
  async discard(): Promise<void> {
    if (this.body && !this.body.locked) await this.body.cancel().catch(() => {});
  }
}

/** Arms a timer while a request or a body read is pending; aborting its signal on expiry. */
class Watchdog {
  readonly controller = new AbortController();
  timedOut = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #ms: number;

  constructor(ms: number) {
    this.#ms = ms;
  }

  arm(): void {
    this.disarm();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.timedOut = true;
      this.controller.abort(new DOMException("idle timeout", "TimeoutError"));
    }, this.#ms);
  }

  disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** Resolves after `ms`, or rejects when the signal aborts; never leaves a timer behind. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Parses `Retry-After` (delta seconds or an HTTP date) into milliseconds from `now`;
 * undefined when absent or unparseable.
 */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const date = Date.parse(v);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** Exponential backoff with "equal jitter": between half and all of base·2^(attempt-1), capped. */
export function backoffDelay(attempt: number, opts: { baseMs: number; maxMs: number }): number {
  const ceiling = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + Math.random() * ceiling / 2);
}

function isRetryableStatus(status: number): boolean {
  return status === 429 || status === 408 ||
    (status >= 500 && status !== 501 && status !== 505);
}

/** Per-registry state: where it lives, how it authenticates, its tokens. */
interface RegistryState {
  registry: string;
  apiHost: string;
  base: URL;
  challenge?: Challenge;
  credential: Promise<Credential | undefined>;
}

/** A request failure before any response, classified. */
class SendFailure extends Error {
  constructor(readonly kind: "Network" | "Timeout" | "Aborted" | "Tls", readonly error: unknown) {
    super(String(error));
  }
}

function describeCause(e: unknown): string {
  const parts: string[] = [];
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur; i++) {
    const msg = cur instanceof Error ? cur.message : String(cur);
    if (msg && !parts.includes(msg)) parts.push(msg);
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join(": ");
}

/**
 * Talks HTTP to registries for one set of credentials: pings each registry once, then sends
 * requests with the right Authorization, following redirects, retrying what is safe to retry.
 */
export class Transport {
  #opts: TransportOptions;
  #client?: Deno.HttpClient;
  #states = new Map<string, Promise<RegistryState>>();
  #tokens = new TokenCache();
  #tokenFetches = new Map<string, Promise<string>>();

  /** Creates a transport; call {@linkcode Transport.close} when done if `caCerts` were given. */
  constructor(opts: TransportOptions = {}) {
    this.#opts = opts;
    if (opts.caCerts && opts.caCerts.length > 0) {
      this.#client = Deno.createHttpClient({ caCerts: opts.caCerts });
    }
  }

  /** Releases the HTTP client holding the custom CA bundle. */
  close(): void {
    this.#client?.close();
    this.#client = undefined;
  }

  get #attempts(): number {
    return Math.max(1, this.#opts.maxAttempts ?? DEFAULT_ATTEMPTS);
  }

  /** Reports a retry to the `onRetry` hook (exposed for the copier's blob restarts). */
  reportRetry(e: RetryEvent): void {
    try {
      this.#opts.onRetry?.(e);
    } catch {
      // A metrics hook must never break a copy.
    }
  }

  /** Backoff delay for the given failed attempt, using this transport's settings. */
  backoff(attempt: number): number {
    return backoffDelay(attempt, {
      baseMs: this.#opts.retryBaseMs ?? DEFAULT_RETRY_BASE_MS,
      maxMs: this.#opts.retryMaxDelayMs ?? DEFAULT_RETRY_MAX_MS,
    });
  }

  /** Whether requests to this registry go over plain HTTP (after its ping). */
  async isPlainHttp(registry: string, signal?: AbortSignal): Promise<boolean> {
    return (await this.#state(registry, signal)).base.protocol === "http:";
  }

  /** Sends a request to a registry, authenticating and retrying as needed. */
  async request(registry: string, spec: RequestSpec): Promise<RegistryResponse> {
    const state = await this.#state(registry, spec.signal);
    const url = new URL(spec.path, state.base);
    let scopes = spec.scopes;
    let reauthed = false;
    while (true) {
      const auth = await this.#authorization(state, scopes, spec);
      const res = await this.#withRetries(state.registry, spec, () =>
        this.#send(url, {
          method: spec.method,
          headers: { ...spec.headers, ...(auth ? { authorization: auth.header } : {}) },
          body: spec.stream ?? spec.body,
          authOrigin: state.base.origin,
          signal: spec.signal,
        }));
      if (res.status === 401) {
        const challenges = parseChallenges(res.headers.get("www-authenticate") ?? "");
        const next = chooseChallenge(challenges);
        const text = await res.text();
        if (auth?.cacheKey) this.#tokens.delete(auth.cacheKey);
        if (next) {
          state.challenge = next;
          if (next.params.scope) scopes = normalizeScopes([...scopes, next.params.scope]);
        }
        // Re-auth once: a fresh token (Bearer), or credentials we did not send yet.
        if (!reauthed && next && !spec.stream && (next.scheme === "bearer" || !auth)) {
          reauthed = true;
          this.reportRetry({
            registry: state.registry,
            reason: "Unauthorized",
            attempt: 1,
            delayMs: 0,
            method: spec.method,
            path: url.pathname,
            status: 401,
          });
          continue;
        }
        const credential = await state.credential;
        const insufficient = next?.params.error === "insufficient_scope";
        if (insufficient && credential) {
          throw new OciError(
            "Forbidden",
            `registry ${state.registry}: access denied (HTTP 401 insufficient_scope) while trying to ` +
              `${spec.action} ${spec.reference ?? ""}: the credentials do not grant ` +
              `${next?.params.scope ?? normalizeScopes(scopes).join(" ")}`.trimEnd(),
            { registry: state.registry, reference: spec.reference, status: 401 },
          );
        }
        const err = errorFromResponse(401, text, {
          registry: state.registry,
          reference: spec.reference,
          action: spec.action,
        });
        throw new OciError(
          "Unauthorized",
          err.message + (credential ? "" : " (no credentials configured for this registry)"),
          {
            registry: state.registry,
            reference: spec.reference,
            status: 401,
            // A streamed request may have outlived its cached token: restarting it helps once.
            retryable: Boolean(spec.stream && auth?.cached),
          },
        );
      }
      if (res.ok || spec.accept?.includes(res.status)) {
        return res;
      }
      const text = await res.text();
      throw errorFromResponse(res.status, text, {
        registry: state.registry,
        reference: spec.reference,
        action: spec.action,
      });
    }
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
    const apiHost = registryApiHost(registry);
    const schemes = allowsPlainHttp(apiHost, this.#opts.insecureRegistries) ||
        allowsPlainHttp(registry, this.#opts.insecureRegistries)
      ? ["https", "http"]
      : ["https"];
    let spec: RequestSpec = { method: "GET", path: "/v2/", scopes: [], action: "ping", signal };
    let lastError: unknown;
    let tlsFailure: SendFailure | undefined;
    // the request that failed TLS (https), not the plain-HTTP fallback tried after it
    let tlsSpec = spec;
    for (const [i, scheme] of schemes.entries()) {
      const base = new URL(`${scheme}://${apiHost}/`);
      const url = new URL("/v2/", base);
      spec = { ...spec, action: `reach the registry API at ${url.href}` };
      let res: RegistryResponse;
      try {
        if (i < schemes.length - 1) {
          // Probing HTTPS on a host that may be plain HTTP: one short attempt, then fall back.
          res = await this.#send(url, {
            method: "GET",
            headers: {},
            authOrigin: base.origin,
            signal,
            timeoutMs: Math.min(this.#opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, PROBE_TIMEOUT_MS),
          });
        } else {
          res = await this.#withRetries(
            registry,
            spec,
            () => this.#send(url, { method: "GET", headers: {}, authOrigin: base.origin, signal }),
          );
        }
      } catch (e) {
        lastError = e;
        if (e instanceof SendFailure && e.kind === "Tls") {
          tlsFailure = e;
          tlsSpec = spec;
        }
        if (e instanceof SendFailure && e.kind === "Aborted") break;
        continue;
      }
      const state: RegistryState = {
        registry,
        apiHost,
        base,
        credential: this.#opts.credentials?.resolve(registry) ?? Promise.resolve(undefined),
      };
      // Keep an unhandled rejection from surfacing before the first request awaits it.
      state.credential.catch(() => {});
      if (res.status === 401) {
        state.challenge = chooseChallenge(
          parseChallenges(res.headers.get("www-authenticate") ?? ""),
        );
        await res.discard();
        return state;
      }
      if (res.ok) {
        await res.discard();
        return state;
      }
      const text = await res.text();
      // HTTP spoken to a TLS-only registry whose certificate we could not verify: say that.
      if (tlsFailure) throw this.#failureError(tlsFailure, registry, tlsSpec);
      throw errorFromResponse(res.status, text, {
        registry,
        action: `reach the registry API at ${url.href}`,
      });
    }
    if (tlsFailure) throw this.#failureError(tlsFailure, registry, tlsSpec);
    const err = this.#failureError(lastError, registry, spec);
    if (err.reason !== "Network" || schemes.length > 1) throw err;
    throw new OciError(
      err.reason,
      `${err.message} (plain HTTP is only tried for localhost, 127.0.0.1, ::1 and insecureRegistries)`,
      { registry, retryable: err.retryable, cause: err.cause },
    );
  }

  #failureError(e: unknown, registry: string, spec: RequestSpec): OciError {
    const what = spec.reference ? `${spec.action} ${spec.reference}` : spec.action;
    if (e instanceof SendFailure) {
      const reasons: Record<SendFailure["kind"], OciErrorReason> = {
        Network: "Network",
        Tls: "Network",
        Timeout: "Timeout",
        Aborted: "Aborted",
      };
      const detail = e.kind === "Timeout"
        ? `no response for ${this.#opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`
        : e.kind === "Tls"
        ? `TLS verification failed (${describeCause(e.error)}); give the registry's CA with caCerts`
        : e.kind === "Aborted"
        ? "the operation was cancelled"
        : describeCause(e.error);
      return new OciError(
        reasons[e.kind],
        `registry ${registry}: ${e.kind === "Aborted" ? "aborted" : "cannot"} ${what}: ${detail}`,
        {
          registry,
          reference: spec.reference,
          retryable: e.kind === "Network" || e.kind === "Timeout",
          cause: e.error,
        },
      );
    }
    if (e instanceof OciError) return e;
    return new OciError("Network", `registry ${registry}: cannot ${what}: ${describeCause(e)}`, {
      registry,
      reference: spec.reference,
      cause: e,
    });
  }

  /** Runs one send per attempt, retrying network errors, timeouts, 5xx and 429 when safe. */
  async #withRetries(
    registry: string,
    spec: RequestSpec,
    send: () => Promise<RegistryResponse>,
  ): Promise<RegistryResponse> {
    const idempotent = spec.idempotent ?? !spec.stream;
    const max = idempotent ? this.#attempts : 1;
    const path = new URL(spec.path, "http://x").pathname;
    for (let attempt = 1;; attempt++) {
      let res: RegistryResponse;
      try {
        res = await send();
      } catch (e) {
        if (!(e instanceof SendFailure) || e.kind === "Aborted" || e.kind === "Tls") {
          throw this.#failureError(e, registry, spec);
        }
        if (attempt >= max) throw this.#failureError(e, registry, spec);
        const delayMs = this.backoff(attempt);
        this.reportRetry({ registry, reason: e.kind, attempt, delayMs, method: spec.method, path });
        await this.#pause(delayMs, registry, spec);
        continue;
      }
      if (!isRetryableStatus(res.status) || attempt >= max) return res;
      const cap = this.#opts.retryMaxDelayMs ?? DEFAULT_RETRY_MAX_MS;
      const after = parseRetryAfter(res.headers.get("retry-after"));
      const delayMs = after !== undefined && (res.status === 429 || res.status === 503)
        ? Math.min(after, cap)
        : this.backoff(attempt);
      await res.discard();
      this.reportRetry({
        registry,
        reason: res.status === 429 ? "RateLimited" : "ServerError",
        attempt,
        delayMs,
        method: spec.method,
        path,
        status: res.status,
      });
      await this.#pause(delayMs, registry, spec);
    }
  }

  async #pause(ms: number, registry: string, spec: RequestSpec): Promise<void> {
    try {
      await sleep(ms, spec.signal);
    } catch (e) {
      throw this.#failureError(new SendFailure("Aborted", e), registry, spec);
    }
  }

  /**
   * One HTTP exchange, following redirects by hand: `Authorization` goes only to `authOrigin`
   * (never to a redirect target on another host). Guarded by an idle timeout.
   */
  async #send(
    url: URL,
    init: {
      method: string;
      headers: Record<string, string>;
      body?: Uint8Array | string | ReadableStream<Uint8Array>;
      authOrigin: string;
      signal?: AbortSignal;
      timeoutMs?: number;
    },
  ): Promise<RegistryResponse> {
    const dog = new Watchdog(init.timeoutMs ?? this.#opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const signal = init.signal
      ? AbortSignal.any([init.signal, dog.controller.signal])
      : dog.controller.signal;
    let method = init.method;
    let body = init.body;
    const upload: { error?: unknown } = {};
    if (body instanceof ReadableStream) body = watchedUpload(body, dog, upload);
    let current = url;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const headers = new Headers(init.headers);
      if (!headers.has("user-agent")) {
        headers.set("user-agent", this.#opts.userAgent ?? "portager-oci");
      }
      headers.set("accept-encoding", "identity");
      if (current.origin !== init.authOrigin) headers.delete("authorization");
      if (body === undefined) headers.delete("content-type");
      let res: Response;
      dog.arm();
      try {
        const fetchInit: RequestInit & { client?: Deno.HttpClient } = {
          method,
          headers,
          body: body as BodyInit | undefined,
          redirect: "manual",
          signal,
        };
        if (this.#client) fetchInit.client = this.#client;
        res = await fetch(current, fetchInit);
      } catch (e) {
        dog.disarm();
        if (init.signal?.aborted) throw new SendFailure("Aborted", init.signal.reason);
        if (dog.timedOut) throw new SendFailure("Timeout", e);
        // The body stream failed (digest mismatch, source broke): that is the real error.
        if (upload.error instanceof OciError) throw upload.error;
        if (upload.error !== undefined) throw new SendFailure("Network", upload.error);
        const text = describeCause(e);
        if (/certificate|UnknownIssuer|tls handshake|InvalidCertificate/i.test(text)) {
          throw new SendFailure("Tls", e);
        }
        throw new SendFailure("Network", e);
      }
      dog.disarm();
      const location = res.headers.get("location");
      if (REDIRECT_STATUSES.has(res.status) && location) {
        await res.body?.cancel().catch(() => {});
        if (body instanceof ReadableStream && res.status !== 303) {
          throw new OciError(
            "Protocol",
            `registry redirected a streamed ${method} ${current.pathname} to ${
              new URL(location, current).host
            }; streamed uploads cannot follow redirects`,
          );
        }
        current = new URL(location, current);
        if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === "POST")) {
          method = "GET";
          body = undefined;
        }
        continue;
      }
      const wrapped = res.body ? guardedBody(res.body, dog, current) : null;
      return new RegistryResponse(res.status, res.headers, current.href, wrapped);
    }
    throw new OciError(
      "TooManyRedirects",
      `more than ${MAX_REDIRECTS} redirects starting at ${url.origin}${url.pathname}`,
    );
  }

  /** The Authorization header for a request with these scopes, fetching a token if needed. */
  async #authorization(
    state: RegistryState,
    scopes: string[],
    spec: RequestSpec,
  ): Promise<{ header: string; cacheKey?: string; cached?: boolean } | undefined> {
    const challenge = state.challenge;
    if (!challenge) return undefined;
    const credential = await state.credential;
    if (challenge.scheme === "basic") {
      if (credential && "username" in credential) {
        return { header: basicAuth(credential.username, credential.password) };
      }
      return undefined;
    }
    if (credential && "registryToken" in credential) {
      return { header: `Bearer ${credential.registryToken}` };
    }
    const realm = challenge.params.realm;
    const service = challenge.params.service;
    const normalized = normalizeScopes(scopes);
    const key = TokenCache.key(realm, { service, scopes: normalized });
    const cached = this.#tokens.get(key);
    if (cached) return { header: `Bearer ${cached}`, cacheKey: key, cached: true };
    let pending = this.#tokenFetches.get(key);
    if (!pending) {
      pending = this.#fetchToken(state, challenge, normalized, credential, spec).finally(() =>
        this.#tokenFetches.delete(key)
      );
      this.#tokenFetches.set(key, pending);
    }
    const token = await pending;
    return { header: `Bearer ${token}`, cacheKey: key, cached: false };
  }

  /** Fetches a bearer token from the realm the registry's own challenge named. */
  async #fetchToken(
    state: RegistryState,
    challenge: Challenge,
    scopes: string[],
    credential: Credential | undefined,
    spec: RequestSpec,
  ): Promise<string> {
    let realm: URL;
    try {
      realm = new URL(challenge.params.realm);
    } catch {
      throw new OciError(
        "Protocol",
        `registry ${state.registry}: its token realm "${challenge.params.realm}" is not a URL`,
        { registry: state.registry },
      );
    }
    if (realm.protocol !== "https:" && realm.protocol !== "http:") {
      throw new OciError(
        "Protocol",
        `registry ${state.registry}: unsupported token realm scheme ${realm.protocol}`,
        { registry: state.registry },
      );
    }
    if (
      realm.protocol === "http:" && credential &&
      !allowsPlainHttp(realm.host, this.#opts.insecureRegistries)
    ) {
      throw new OciError(
        "InsecureRegistry",
        `registry ${state.registry}: refusing to send credentials to the plain-HTTP token realm ` +
          `${realm.origin}${realm.pathname}; list ${realm.host} in insecureRegistries to allow it`,
        { registry: state.registry },
      );
    }
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
    const tokenSpec: RequestSpec = {
      method,
      path: url.href,
      scopes,
      action: `get a token from ${realm.origin}${realm.pathname} to ${spec.action}`,
      reference: spec.reference,
      signal: spec.signal,
      idempotent: true,
    };
    const issuedAt = Date.now();
    const res = await this.#withRetries(
      state.registry,
      tokenSpec,
      () => this.#send(url, { method, headers, body, authOrigin: realm.origin, signal: spec.signal }),
    );
    if (!res.ok) {
      const text = await res.text();
      const err = errorFromResponse(res.status, text, {
        registry: state.registry,
        action: tokenSpec.action,
        reference: spec.reference,
      });
      if (res.status === 401 || res.status === 403) {
        throw new OciError(
          "Unauthorized",
          `registry ${state.registry}: the token server ${realm.origin}${realm.pathname} ` +
            `rejected the ${credential ? "credentials" : "anonymous request"} (HTTP ${res.status}) ` +
            `while trying to ${spec.action}${spec.reference ? " " + spec.reference : ""}`,
          { registry: state.registry, reference: spec.reference, status: res.status },
        );
      }
      throw err;
    }
    const text = await res.text(1024 * 1024);
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new OciError(
        "Protocol",
        `registry ${state.registry}: the token server ${realm.origin}${realm.pathname} did not answer JSON`,
        { registry: state.registry },
      );
    }
    const token = typeof parsed.token === "string" && parsed.token
      ? parsed.token
      : typeof parsed.access_token === "string"
      ? parsed.access_token
      : "";
    if (!token) {
      throw new OciError(
        "Protocol",
        `registry ${state.registry}: the token server ${realm.origin}${realm.pathname} returned no token`,
        { registry: state.registry },
      );
    }
    const expiresIn = typeof parsed.expires_in === "number" ? parsed.expires_in : undefined;
    // Same key as #authorization computes.
    this.#tokens.set(TokenCache.key(challenge.params.realm, { service, scopes }), {
      token,
      expiresAt: tokenExpiry(issuedAt, expiresIn),
    });
    return token;
  }
}

/**
 * Passes a request body through, re-arming the idle timer on every chunk and keeping the
 * source's error (fetch only reports "fetch failed", not what broke the body).
 */
function watchedUpload(
  source: ReadableStream<Uint8Array>,
  dog: Watchdog,
  failure: { error?: unknown },
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        dog.arm();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (e) {
        failure.error = e;
        controller.error(e);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** Wraps a response body so a read that stalls longer than the idle timeout fails. */
function guardedBody(
  body: ReadableStream<Uint8Array>,
  dog: Watchdog,
  url: URL,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      dog.arm();
      try {
        const { done, value } = await reader.read();
        dog.disarm();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (e) {
        dog.disarm();
        controller.error(
          dog.timedOut
            ? new OciError(
              "Timeout",
              `${url.host}: no data received for ${url.pathname} within the idle timeout`,
              { registry: url.host, retryable: true },
            )
            : e,
        );
      }
    },
    cancel(reason) {
      dog.disarm();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
