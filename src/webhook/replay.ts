/**
 * Replay protection: a delivery whose id was seen within the window is refused (409), and a
 * payload dated outside the window (older than `maxAgeMs`, or from the future beyond the clock
 * skew allowed) is refused as stale (400). Ids are remembered for `maxAgeMs`, at most
 * `maxIds` of them (the oldest are forgotten first), so memory stays bounded under a flood.
 * @module
 */

import { WebhookError } from "./errors.ts";
import type { PushEvent } from "./event.ts";

/** How old a dated payload may be, and how long ids are remembered (10 minutes). */
export const DEFAULT_REPLAY_WINDOW_MS = 10 * 60_000;
/** How far in the future a payload's date may be (clock skew between sender and us). */
export const DEFAULT_CLOCK_SKEW_MS = 60_000;
/** Delivery ids remembered at most. */
export const DEFAULT_MAX_IDS = 10_000;

/** Options of {@linkcode ReplayGuard}. */
export interface ReplayGuardOptions {
  /** Window of dates accepted and of ids remembered; default {@linkcode DEFAULT_REPLAY_WINDOW_MS}. */
  windowMs?: number;
  /** Allowed clock skew into the future; default {@linkcode DEFAULT_CLOCK_SKEW_MS}. */
  clockSkewMs?: number;
  /** Ids remembered at most; default {@linkcode DEFAULT_MAX_IDS}. */
  maxIds?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/** Remembers delivery ids and checks payload dates; see the module doc. */
export class ReplayGuard {
  readonly #windowMs: number;
  readonly #skewMs: number;
  readonly #maxIds: number;
  readonly #now: () => number;
  /** id → when it was seen; insertion order is age order. */
  readonly #seen = new Map<string, number>();

  /** Creates a guard; every option has a default. */
  constructor(options: ReplayGuardOptions = {}) {
    this.#windowMs = options.windowMs ?? DEFAULT_REPLAY_WINDOW_MS;
    this.#skewMs = options.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS;
    this.#maxIds = options.maxIds ?? DEFAULT_MAX_IDS;
    this.#now = options.now ?? Date.now;
  }

  /** Ids remembered now. */
  get size(): number {
    return this.#seen.size;
  }

  /**
   * The events of one request that are neither replayed nor stale, their ids now remembered.
   * Throws {@linkcode WebhookError} (`Replayed` or `Stale`) when events were given and none is
   * fresh, so a replayed request changes nothing and its sender is told why.
   */
  admit(events: PushEvent[]): PushEvent[] {
    const now = this.#now();
    this.#expire(now);
    const fresh: PushEvent[] = [];
    const ids = new Set<string>();
    let replayed: string | undefined;
    let stale: string | undefined;
    for (const e of events) {
      if (
        e.timestamp !== undefined && (now - e.timestamp > this.#windowMs || e.timestamp - now > this.#skewMs)
      ) {
        stale ??= new Date(e.timestamp).toISOString();
        continue;
      }
      if (e.id !== undefined && this.#seen.has(e.id)) {
        replayed ??= e.id;
        continue;
      }
      if (e.id !== undefined) ids.add(e.id);
      fresh.push(e);
    }
    if (events.length > 0 && fresh.length === 0) {
      if (replayed !== undefined) {
        throw new WebhookError("Replayed", `delivery ${JSON.stringify(replayed)} was already received`);
      }
      throw new WebhookError(
        "Stale",
        `the payload is dated ${stale}, outside the accepted window of ${
          Math.round(this.#windowMs / 1000)
        } s ` +
          "around the operator's clock (check the sender's clock)",
      );
    }
    for (const id of ids) {
      this.#seen.delete(id);
      this.#seen.set(id, now);
    }
    while (this.#seen.size > this.#maxIds) this.#seen.delete(this.#seen.keys().next().value!);
    return fresh;
  }

  #expire(now: number): void {
    for (const [id, at] of this.#seen) {
      if (now - at <= this.#windowMs) break;
      this.#seen.delete(id);
    }
  }
}
