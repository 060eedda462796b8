/**
 * Flood control: a token bucket over accepted requests (a burst, then a steady rate; beyond
 * it 429 with `Retry-After`), and a coalescer that gathers the pushes of a burst and hands them
 * on once, `delayMs` after the first, so a registry announcing 50 tags of one repository
 * causes one match and one sync per ImageSync.
 * @module
 */

import type { PushEvent } from "./event.ts";

/** Requests per second accepted in the long run. */
export const DEFAULT_RATE_PER_SECOND = 10;
/** Requests accepted at once before the rate applies. */
export const DEFAULT_BURST = 50;
/** How long the pushes of a burst are gathered before they are matched. */
export const DEFAULT_COALESCE_MS = 1000;
/** Distinct pushes held for one flush at most (repository + tag); more are dropped as duplicates would be. */
export const MAX_PENDING_PUSHES = 1000;

/** A token bucket: `burst` tokens, refilled at `ratePerSecond`. */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  /** Creates a full bucket. */
  constructor(options: { ratePerSecond?: number; burst?: number; now?: () => number } = {}) {
    this.#rate = Math.max(0.001, options.ratePerSecond ?? DEFAULT_RATE_PER_SECOND);
    this.#burst = Math.max(1, options.burst ?? DEFAULT_BURST);
    this.#now = options.now ?? Date.now;
    this.#tokens = this.#burst;
    this.#at = this.#now();
  }

  /** Takes a token: 0 when granted, else the seconds until one is available. */
  take(): number {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#at) / 1000 * this.#rate);
    this.#at = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - this.#tokens) / this.#rate));
  }
}

/** Gathers pushes and flushes them once per burst; see the module doc. */
export class Coalescer {
  readonly #delayMs: number;
  readonly #flush: (pushes: PushEvent[]) => Promise<void>;
  #pending = new Map<string, PushEvent>();
  #timer?: ReturnType<typeof setTimeout>;
  #running: Promise<void> = Promise.resolve();
  #closed = false;

  /** `flush` gets the distinct pushes of each burst; its failures are its own to report. */
  constructor(flush: (pushes: PushEvent[]) => Promise<void>, options: { delayMs?: number } = {}) {
    this.#flush = flush;
    this.#delayMs = options.delayMs ?? DEFAULT_COALESCE_MS;
  }

  /** Pushes waiting for the next flush. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Adds pushes; the first of a burst starts the timer. */
  add(pushes: PushEvent[]): void {
    if (this.#closed) return;
    for (const p of pushes) {
      const key = `${p.registry}/${p.repository}:${p.tag ?? ""}`;
      if (this.#pending.size >= MAX_PENDING_PUSHES && !this.#pending.has(key)) continue;
      this.#pending.set(key, p);
    }
    if (this.#pending.size > 0 && this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        const batch = [...this.#pending.values()];
        this.#pending = new Map();
        // flushes run one after another, never two at once
        this.#running = this.#running.then(() => this.#flush(batch)).catch(() => {});
      }, this.#delayMs);
    }
  }

  /** Stops the timer and waits for a flush in progress; pending pushes are dropped. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending.clear();
    await this.#running;
  }
}
