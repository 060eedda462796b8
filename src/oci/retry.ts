/**
 * Retries: the policy (how many attempts, backoff with jitter, `Retry-After`, the retry hook for
 * metrics) and the sender that applies it to one HTTP exchange. Only idempotent requests are
 * repeated here; a streamed upload or a chunk PATCH fails at once and its caller restarts the
 * whole step (the copier's blob restart uses the same policy).
 * @module
 */

import type { RegistryResponse } from "./response.ts";
import { isStreamBody, type Sender, SendFailure, type SendRequest, waitFor } from "./send.ts";
import { sleep } from "./sleep.ts";

/** Attempts per request, including the first. */
export const DEFAULT_ATTEMPTS = 5;
/** First backoff delay in milliseconds; it doubles per attempt, with jitter. */
export const DEFAULT_RETRY_BASE_MS = 250;
/** Largest backoff delay and largest `Retry-After` honoured, in milliseconds. */
export const DEFAULT_RETRY_MAX_MS = 30_000;

/** Why a request was retried, as reported to {@linkcode RetryPolicyOptions.onRetry}. */
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

/** Options of a {@linkcode RetryPolicy}. */
export interface RetryPolicyOptions {
  /** Attempts per request, including the first (default {@linkcode DEFAULT_ATTEMPTS}). */
  maxAttempts?: number;
  /** First backoff delay; doubles per attempt, with jitter (default 250 ms). */
  retryBaseMs?: number;
  /** Largest backoff delay and largest `Retry-After` we honour (default 30 s). */
  retryMaxDelayMs?: number;
  /** Called before each retry, for metrics. */
  onRetry?: (e: RetryEvent) => void;
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

/** Whether an HTTP status is worth another attempt: 408, 429 and 5xx except 501 and 505. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status === 408 ||
    (status >= 500 && status !== 501 && status !== 505);
}

/**
 * How often and how patiently to retry. Shared by the retrying sender and by callers that
 * restart a whole step (the copier's blob transfers), so both count attempts the same way.
 */
export class RetryPolicy {
  /** Attempts per request, including the first (at least 1). */
  readonly maxAttempts: number;
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #onRetry?: (e: RetryEvent) => void;

  /** Creates a policy; every option has a default. */
  constructor(opts: RetryPolicyOptions = {}) {
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? DEFAULT_ATTEMPTS);
    this.#baseMs = opts.retryBaseMs ?? DEFAULT_RETRY_BASE_MS;
    this.#maxMs = opts.retryMaxDelayMs ?? DEFAULT_RETRY_MAX_MS;
    this.#onRetry = opts.onRetry;
  }

  /** Backoff before the attempt after `attempt` (1-based) failed. */
  backoff(attempt: number): number {
    return backoffDelay(attempt, { baseMs: this.#baseMs, maxMs: this.#maxMs });
  }

  /** The wait after a retryable response: its `Retry-After` (429/503, capped) or the backoff. */
  delayAfter(res: { status: number; headers: Headers }, attempt: number): number {
    const after = parseRetryAfter(res.headers.get("retry-after"));
    return after !== undefined && (res.status === 429 || res.status === 503)
      ? Math.min(after, this.#maxMs)
      : this.backoff(attempt);
  }

  /** Reports a retry to the hook; a failing hook never breaks a request. */
  report(e: RetryEvent): void {
    try {
      this.#onRetry?.(e);
    } catch {
      // A metrics hook must never break a copy.
    }
  }
}

/**
 * Wraps a sender: network failures, timeouts, 408/429/5xx are retried with backoff (honouring
 * `Retry-After`) while the request is idempotent. Failures leave as {@linkcode SendFailure}s or
 * the last retryable response is returned, for the caller to turn into an error.
 */
export class RetrySender implements Sender {
  readonly #inner: Sender;
  readonly #policy: RetryPolicy;

  /** Retries what `inner` sends according to `policy`. */
  constructor(inner: Sender, policy: RetryPolicy) {
    this.#inner = inner;
    this.#policy = policy;
  }

  /** Sends, retrying what is safe to retry. */
  async send(req: SendRequest): Promise<RegistryResponse> {
    const idempotent = req.idempotent ?? !isStreamBody(req.body);
    const max = idempotent ? this.#policy.maxAttempts : 1;
    const path = req.url.pathname;
    for (let attempt = 1;; attempt++) {
      let res: RegistryResponse;
      try {
        res = await this.#inner.send(req);
      } catch (e) {
        if (!(e instanceof SendFailure) || e.kind === "Aborted" || e.kind === "Tls") throw e;
        if (attempt >= max) throw e;
        const delayMs = this.#policy.backoff(attempt);
        this.#policy.report({
          registry: req.registry,
          reason: e.kind,
          attempt,
          delayMs,
          method: req.method,
          path,
        });
        await waitFor(req, () => pause(delayMs, req.signal));
        continue;
      }
      if (!isRetryableStatus(res.status) || attempt >= max) return res;
      const delayMs = this.#policy.delayAfter(res, attempt);
      await res.discard();
      this.#policy.report({
        registry: req.registry,
        reason: res.status === 429 ? "RateLimited" : "ServerError",
        attempt,
        delayMs,
        method: req.method,
        path,
        status: res.status,
      });
      await waitFor(req, () => pause(delayMs, req.signal));
    }
  }
}

async function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await sleep(ms, signal);
  } catch (e) {
    throw new SendFailure("Aborted", e);
  }
}
