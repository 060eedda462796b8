/**
 * Rate-limit awareness: a budget per registry, kept across clients and syncs, learnt from the
 * registry's own headers — Docker Hub's `ratelimit-limit: 100;w=21600` /
 * `ratelimit-remaining: 76;w=21600` (also the `x-ratelimit-*` spellings and a `ratelimit-reset`
 * in seconds) — and from `Retry-After` on any 429 or 503. The {@linkcode RateLimitSender} asks
 * the budget before each exchange:
 *
 * - after a `Retry-After`, every request to that registry waits until then;
 * - a request the registry counts (a manifest GET: Docker Hub counts those, not HEADs and not
 *   blobs) is held back once the remaining budget is down to the reserve (a tenth of the limit,
 *   at least 1, left for the cluster's own image pulls): *before* the limit is hit. It goes
 *   again when the sliding window should have given one back (window ÷ limit per request, or
 *   the reset the registry announced), or as soon as any response (a free HEAD) shows budget.
 *
 * Pulls in flight are taken from the budget until their answers arrive, so concurrent pulls
 * never overspend what the last answer said. When only pulls in flight stand between a request
 * and the reserve, it waits for their answers rather than for the window: an answer seen
 * meanwhile (a HEAD's) may already count them, and theirs say where the budget really is.
 * Every wait — for the budget, a `Retry-After` or those answers — runs through the request's
 * `duringWait` (the copier gives its transfer-budget slot back meanwhile). A wait up to
 * `maxWaitMs` is slept; a longer one fails the request at once with an
 * {@linkcode OciError} `RateLimited` that says until when the registry is paused and why, so a
 * sync's status tells it, and the next attempt costs nothing.
 * @module
 */

import type { Credential } from "./auth.ts";
import { sha256Hex } from "./digest.ts";
import { OciError } from "./errors.ts";
import type { RegistryResponse } from "./response.ts";
import { parseRetryAfter } from "./retry.ts";
import { type Sender, SendFailure, type SendRequest, waitFor } from "./send.ts";
import { sleep } from "./sleep.ts";

/** Share of a registry's announced limit kept in reserve (10 %, at least one request). */
export const DEFAULT_RATE_LIMIT_RESERVE = 0.1;
/** Longest wait for a registry's budget before a request fails as RateLimited (30 s). */
export const DEFAULT_RATE_LIMIT_MAX_WAIT_MS = 30_000;
/** Longest pause honoured from a `Retry-After` or a window (1 day): a larger value is clamped. */
export const MAX_RATE_LIMIT_PAUSE_MS = 24 * 3600_000;
/** Registries whose budgets are kept at most (oldest forgotten first). */
export const MAX_TRACKED_REGISTRIES = 256;

/** What one response says about a registry's rate limit. */
export interface RateLimitInfo {
  /** Requests allowed per window. */
  limit?: number;
  /** Requests left in the current window. */
  remaining?: number;
  /** Window length in milliseconds (`w=` of Docker Hub's headers). */
  windowMs?: number;
  /** Milliseconds until the window resets, when the registry says so. */
  resetMs?: number;
}

function header(headers: Headers, name: string): string | null {
  return headers.get(`ratelimit-${name}`) ?? headers.get(`x-ratelimit-${name}`);
}

/** Reads `100;w=21600` as a count and a window; undefined parts when absent or malformed. */
function quota(value: string | null): { count?: number; windowMs?: number } {
  if (value === null) return {};
  const [first, ...params] = value.split(";").map((s) => s.trim());
  const count = /^\d{1,12}$/.test(first) ? Number(first) : undefined;
  let windowMs: number | undefined;
  for (const p of params) {
    const m = /^w=(\d{1,9})$/i.exec(p);
    if (m) windowMs = Math.min(Number(m[1]) * 1000, MAX_RATE_LIMIT_PAUSE_MS);
  }
  return { count, windowMs };
}

/** Reads the rate-limit headers of a response; undefined when it has none. */
export function parseRateLimitHeaders(headers: Headers, now: number = Date.now()): RateLimitInfo | undefined {
  const limit = quota(header(headers, "limit"));
  const remaining = quota(header(headers, "remaining"));
  const resetText = header(headers, "reset");
  let resetMs: number | undefined;
  if (resetText !== null && /^\d{1,12}$/.test(resetText.trim())) {
    const n = Number(resetText.trim());
    // GitHub style is an epoch second; the IETF draft's is seconds from now
    resetMs = n > 1e9 ? Math.max(0, n * 1000 - now) : n * 1000;
    resetMs = Math.min(resetMs, MAX_RATE_LIMIT_PAUSE_MS);
  }
  if (limit.count === undefined && remaining.count === undefined) return undefined;
  return {
    limit: limit.count,
    remaining: remaining.count,
    windowMs: remaining.windowMs ?? limit.windowMs,
    resetMs,
  };
}

/**
 * The budget a request spends: Docker Hub limits an account (or, anonymously, an address), so
 * two accounts on one registry have two budgets. `registry` when anonymous, else
 * `registry (account <8 hex>)` — a hash, so no user name or token reaches a metric label.
 */
export function budgetKey(registry: string, credential: Credential | undefined): string {
  if (!credential) return registry;
  const who = "username" in credential
    ? `user:${credential.username}`
    : "identityToken" in credential
    ? `identity:${credential.identityToken}`
    : `token:${credential.registryToken}`;
  return `${registry} (account ${sha256Hex(who).slice(0, 8)})`;
}

/** Whether the registry counts this request against its limit: a manifest GET (as Docker Hub does). */
export function countsAgainstLimit(method: string, url: URL): boolean {
  return method === "GET" && /\/manifests\/[^/]+$/.test(url.pathname);
}

interface Budget {
  limit?: number;
  remaining?: number;
  windowMs?: number;
  observedAt: number;
  resetAt?: number;
  /** Counted requests sent and not answered yet: not in `remaining` as far as we know. */
  inflight: number;
  /** Counted requests answered without rate-limit headers since `remaining` was observed. */
  unreported: number;
  /** No request before this (Retry-After). */
  pausedUntil?: number;
  /** Resolved when a counted request in flight ends; created by the first request that waits for one. */
  settled?: PromiseWithResolvers<void>;
}

/** Why a request must wait, and until when. */
export interface RateLimitWait {
  /** Milliseconds to wait; 0: go now. */
  waitMs: number;
  /**
   * Why: "retry-after" (the registry asked), "budget" (the reserve is reached), "inflight" (the
   * reserve is reached only if the pulls in flight have not been counted yet: await `settled`,
   * then ask again).
   */
  cause?: "retry-after" | "budget" | "inflight";
  /** For "inflight": resolves once a counted request in flight has ended. */
  settled?: Promise<void>;
  /** For "budget": remaining, limit, reserve and window as last seen. */
  remaining?: number;
  /** Limit per window. */
  limit?: number;
  /** Requests kept in reserve. */
  reserve?: number;
  /** Window length. */
  windowMs?: number;
}

/** Options of {@linkcode RateLimitBudgets}. */
export interface RateLimitBudgetsOptions {
  /** Share of the limit kept in reserve; default {@linkcode DEFAULT_RATE_LIMIT_RESERVE}. */
  reserve?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/** The budgets of every registry seen; see the module doc. One per process by default. */
export class RateLimitBudgets {
  readonly #budgets = new Map<string, Budget>();
  readonly #reserve: number;
  readonly #now: () => number;

  /** Creates an empty set of budgets. */
  constructor(options: RateLimitBudgetsOptions = {}) {
    this.#reserve = Math.min(0.9, Math.max(0, options.reserve ?? DEFAULT_RATE_LIMIT_RESERVE));
    this.#now = options.now ?? Date.now;
  }

  #budget(registry: string): Budget {
    let b = this.#budgets.get(registry);
    if (!b) {
      b = { observedAt: this.#now(), inflight: 0, unreported: 0 };
      this.#budgets.set(registry, b);
      while (this.#budgets.size > MAX_TRACKED_REGISTRIES) {
        const oldest = this.#budgets.keys().next().value!;
        wake(this.#budgets.get(oldest)!);
        this.#budgets.delete(oldest);
      }
    }
    return b;
  }

  /** Requests kept in reserve for a limit. */
  reserveFor(limit: number): number {
    return Math.max(1, Math.ceil(limit * this.#reserve));
  }

  /**
   * Learns from a response: its rate-limit headers, and `Retry-After` on a 429 or 503.
   * `counted`: the response answers a request that spends the budget (see {@linkcode release}).
   */
  observe(registry: string, res: { status: number; headers: Headers }, counted = false): void {
    const now = this.#now();
    const info = parseRateLimitHeaders(res.headers, now);
    const after = res.status === 429 || res.status === 503
      ? parseRetryAfter(res.headers.get("retry-after"), now)
      : undefined;
    if (counted && info?.remaining === undefined) {
      // spent, but the answer does not say how much is left: count it ourselves
      const known = this.#budgets.get(registry);
      if (known) known.unreported++;
    }
    if (!info && after === undefined) return;
    const b = this.#budget(registry);
    if (info) {
      if (info.limit !== undefined) b.limit = info.limit;
      if (info.windowMs !== undefined) b.windowMs = info.windowMs;
      if (info.remaining !== undefined) {
        b.remaining = info.remaining;
        b.unreported = 0;
        b.observedAt = now;
      }
      b.resetAt = info.resetMs !== undefined ? now + info.resetMs : undefined;
    }
    if (after !== undefined) b.pausedUntil = now + Math.min(after, MAX_RATE_LIMIT_PAUSE_MS);
  }

  /**
   * Whether a request may go now; when it may and `counted`, it is taken from the budget until
   * {@linkcode release} (call it once the exchange ended, before observing its answer).
   * Otherwise how long to wait and why.
   */
  acquire(registry: string, counted: boolean): RateLimitWait {
    const b = counted ? this.#budget(registry) : this.#budgets.get(registry);
    if (!b) return { waitMs: 0 };
    const now = this.#now();
    if (b.pausedUntil !== undefined) {
      if (b.pausedUntil > now) return { waitMs: b.pausedUntil - now, cause: "retry-after" };
      b.pausedUntil = undefined;
    }
    if (!counted) return { waitMs: 0 };
    if (b.remaining === undefined) {
      b.inflight++;
      return { waitMs: 0 };
    }
    // requests still in flight are assumed not counted in `remaining` yet: never overspend
    const left = b.remaining - b.inflight - b.unreported;
    const limit = b.limit ?? b.remaining;
    const reserve = this.reserveFor(limit);
    if (left > reserve) {
      b.inflight++;
      return { waitMs: 0 };
    }
    // a sliding window gives one request back every window/limit on average
    const per = b.windowMs && limit > 0 ? b.windowMs / limit : 60_000;
    const at = b.resetAt ?? b.observedAt + Math.min((reserve - left + 1) * per, MAX_RATE_LIMIT_PAUSE_MS);
    if (b.inflight > 0 && b.remaining - b.unreported > reserve && at > now) {
      // only the pulls in flight stand in the way, and `remaining` may already count them (a
      // HEAD answered after the registry counted one): their answers will say
      b.settled ??= Promise.withResolvers<void>();
      return {
        waitMs: at - now,
        cause: "inflight",
        settled: b.settled.promise,
        remaining: Math.max(0, left),
        limit,
        reserve,
        windowMs: b.windowMs,
      };
    }
    if (at <= now) {
      // time should have given budget back: let this one through as the probe; its answer
      // says where we stand, and without one the next waits a full interval from now
      b.inflight++;
      b.observedAt = now;
      b.resetAt = undefined;
      return { waitMs: 0 };
    }
    return {
      waitMs: at - now,
      cause: "budget",
      // what is left once the pulls in flight have landed
      remaining: Math.max(0, left),
      limit,
      reserve,
      windowMs: b.windowMs,
    };
  }

  /**
   * Ends a request {@linkcode acquire} let through: it is no longer in flight. Requests waiting
   * for it wake once the caller's current step ends, so observe its answer in the same step.
   */
  release(registry: string, counted: boolean): void {
    const b = this.#budgets.get(registry);
    if (!counted || !b) return;
    if (b.inflight > 0) b.inflight--;
    wake(b);
  }

  /** Each registry's remaining budget as last seen (minus what was spent since), for the metric. */
  snapshot(): Array<{ registry: string; remaining: number }> {
    const out: Array<{ registry: string; remaining: number }> = [];
    for (const [registry, b] of this.#budgets) {
      if (b.remaining !== undefined) {
        out.push({ registry, remaining: Math.max(0, b.remaining - b.inflight - b.unreported) });
      }
    }
    return out;
  }

  /** Forgets every budget (tests). */
  clear(): void {
    for (const b of this.#budgets.values()) wake(b);
    this.#budgets.clear();
  }
}

/** Wakes the requests waiting for a budget's pulls in flight. */
function wake(b: Budget): void {
  b.settled?.resolve();
  b.settled = undefined;
}

/** Most times one request waits for pulls in flight to answer before it is refused. */
const MAX_INFLIGHT_WAITS = 64;

/** The process-wide budgets every transport uses unless given its own. */
export const registryBudgets: RateLimitBudgets = new RateLimitBudgets();

function formatWindow(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}

/**
 * The error of a request the budget (`budget`: the registry, with the account when one is
 * used) holds back for longer than the sender waits.
 */
export function rateLimitError(
  budget: string,
  wait: RateLimitWait,
  options: { registry?: string; now?: number } = {},
): OciError {
  const until = new Date((options.now ?? Date.now()) + wait.waitMs).toISOString().replace(/\.\d{3}Z$/, "Z");
  const message = wait.cause === "retry-after"
    ? `registry ${budget}: paused until ${until}: the registry answered 429/503 with Retry-After`
    : `registry ${budget}: paused until ${until} to stay within its rate limit: ` +
      `${wait.remaining} of ${wait.limit} manifest pulls left` +
      `${wait.windowMs ? ` per ${formatWindow(wait.windowMs)}` : ""}, ${wait.reserve} kept in reserve ` +
      "(unchanged images are still checked with HEAD requests, which do not count)";
  return new OciError("RateLimited", message, {
    registry: options.registry ?? budget,
    status: 429,
    retryable: false,
  });
}

/** Options of {@linkcode RateLimitSender}. */
export interface RateLimitSenderOptions {
  /** The budgets; default the process-wide {@linkcode registryBudgets}. */
  budgets?: RateLimitBudgets;
  /** Longest wait before failing as RateLimited; default {@linkcode DEFAULT_RATE_LIMIT_MAX_WAIT_MS}. */
  maxWaitMs?: number;
}

/** Wraps a sender: waits for (or refuses on) the registry's budget, and learns from each response. */
export class RateLimitSender implements Sender {
  readonly #inner: Sender;
  readonly #budgets: RateLimitBudgets;
  readonly #maxWaitMs: number;

  /** Gates what `inner` sends by the budgets. */
  constructor(inner: Sender, options: RateLimitSenderOptions = {}) {
    this.#inner = inner;
    this.#budgets = options.budgets ?? registryBudgets;
    this.#maxWaitMs = options.maxWaitMs ?? DEFAULT_RATE_LIMIT_MAX_WAIT_MS;
  }

  /** Sends once the budget allows; fails with OciError RateLimited when the wait is too long. */
  async send(req: SendRequest): Promise<RegistryResponse> {
    const counted = countsAgainstLimit(req.method, req.url);
    const key = req.budget ?? req.registry;
    let wait: RateLimitWait = { waitMs: 0 };
    let inflightWaits = 0;
    for (let i = 0; i < 3; i++) {
      wait = this.#budgets.acquire(key, counted);
      if (wait.cause === "inflight" && inflightWaits++ < MAX_INFLIGHT_WAITS) {
        // not a try: wait for an answer, then ask again (each wake follows a request's end);
        // nothing is sent meanwhile, and the answer may take up to a request deadline
        const settled = wait.settled!;
        await waitFor(req, () => abortable(settled, req.signal));
        i--;
        continue;
      }
      if (wait.waitMs === 0) {
        let res: RegistryResponse;
        try {
          res = await this.#inner.send(req);
        } finally {
          this.#budgets.release(key, counted);
        }
        this.#budgets.observe(key, res, counted);
        if (res.status === 429 || res.status === 503) {
          // a Retry-After longer than we wait: say so now rather than retry into the pause
          const pause = this.#budgets.acquire(key, false);
          if (pause.waitMs > this.#maxWaitMs) {
            await res.discard();
            throw rateLimitError(key, pause, { registry: req.registry });
          }
        }
        return res;
      }
      if (wait.waitMs > this.#maxWaitMs) throw rateLimitError(key, wait, { registry: req.registry });
      const waitMs = wait.waitMs;
      await waitFor(req, async () => {
        try {
          await sleep(waitMs, req.signal);
        } catch (e) {
          throw new SendFailure("Aborted", e);
        }
      });
    }
    // another request took the budget each time we woke: give up rather than spin
    throw rateLimitError(key, wait, { registry: req.registry });
  }
}

/** `p`, or a SendFailure "Aborted" as soon as `signal` aborts. */
function abortable(p: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(new SendFailure("Aborted", signal.reason));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new SendFailure("Aborted", signal.reason));
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}
