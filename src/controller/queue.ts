/**
 * A de-duplicating, rate-limited work queue with controller-runtime's contract: a key is
 * processed by at most one worker at a time; adding a key that is in flight marks it dirty so
 * it runs once more afterwards; `addAfter` keeps the earliest pending timer; `addRateLimited`
 * backs off per key exponentially until `forget`.
 * @module
 */

/** Per-key exponential backoff: base·2^failures, capped. */
export class ExponentialBackoff {
  /** First delay after a failure. */
  readonly baseMs: number;
  /** Longest delay. */
  readonly maxMs: number;
  #failures = new Map<string, number>();

  /** Creates a backoff; defaults 5 s doubling to 5 min. */
  constructor(options: { baseMs?: number; maxMs?: number } = {}) {
    this.baseMs = options.baseMs ?? 5_000;
    this.maxMs = options.maxMs ?? 300_000;
  }

  /** Records a failure of `key` and returns how long to wait before the next attempt. */
  next(key: string): number {
    const n = this.#failures.get(key) ?? 0;
    this.#failures.set(key, n + 1);
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(n, 30));
  }

  /** How many failures `key` has had since the last success. */
  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** Resets `key` after a success. */
  forget(key: string): void {
    this.#failures.delete(key);
  }
}

/**
 * What the queue reports, as client-go's workqueue metrics provider: keys added, retries,
 * how long a key waited in the queue, how long it was worked on.
 */
export interface QueueMetrics {
  /** A key was added (not already waiting). */
  added(): void;
  /** A key was queued with a delay (`addAfter` > 0 ms, `addRateLimited`), as controller-runtime counts retries. */
  retried(): void;
  /** A key was handed to a worker after waiting `seconds` since it was added. */
  waited(seconds: number): void;
  /** A worker finished a key after `seconds`. */
  worked(seconds: number): void;
}

/** Options for {@linkcode WorkQueue}. */
export interface WorkQueueOptions {
  /** Backoff for `addRateLimited`; default 5 s doubling to 5 min. */
  backoff?: ExponentialBackoff;
  /** Called whenever the number of waiting keys changes (for the queue depth metric). */
  onDepth?: (depth: number) => void;
  /** Receives adds, retries and the wait and work durations. */
  metrics?: QueueMetrics;
  /** Monotonic clock in ms, for tests; default `performance.now`. */
  now?: () => number;
}

/** The work queue. Keys are strings such as `namespace/name`. */
export class WorkQueue {
  /** The per-key backoff used by `addRateLimited`. */
  readonly backoff: ExponentialBackoff;
  #queue: string[] = [];
  #dirty = new Set<string>();
  #processing = new Set<string>();
  /** Due times (epoch ms) of delayed keys; one timer is armed for the earliest. */
  #delayed = new Map<string, number>();
  #timer?: { id: ReturnType<typeof setTimeout>; at: number };
  #waiters: Array<(key: string | undefined) => void> = [];
  #shuttingDown = false;
  #onDepth?: (depth: number) => void;
  #metrics?: QueueMetrics;
  #now: () => number;
  /** When each dirty key was added (for the wait duration). */
  #addedAt = new Map<string, number>();
  /** When each in-flight key was handed out (for the work duration). */
  #startedAt = new Map<string, number>();

  /** Creates an empty queue. */
  constructor(options: WorkQueueOptions = {}) {
    this.backoff = options.backoff ?? new ExponentialBackoff();
    this.#onDepth = options.onDepth;
    this.#metrics = options.metrics;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Seconds each in-flight key has been worked on so far (unfinished work, longest processor). */
  inFlightSeconds(): number[] {
    const now = this.#now();
    return [...this.#startedAt.values()].map((t) => (now - t) / 1000);
  }

  /** Keys waiting to be handed out (not counting in-flight or delayed ones). */
  get length(): number {
    return this.#queue.length;
  }

  /** Keys currently being processed. */
  get inFlight(): number {
    return this.#processing.size;
  }

  /** Whether `shutDown` was called. */
  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  #depth(): void {
    this.#onDepth?.(this.#queue.length);
  }

  /** Queues `key` now, unless it is already waiting; if it is in flight it runs again after. */
  add(key: string): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#metrics?.added();
    this.#addedAt.set(key, this.#now());
    this.#dirty.add(key);
    if (this.#processing.has(key)) return;
    this.#push(key);
  }

  /** A dirty key that is not in flight: to a waiting worker, else to the back of the queue. */
  #push(key: string): void {
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#start(key);
      waiter(key);
      return;
    }
    this.#queue.push(key);
    this.#depth();
  }

  /** `key` leaves the queue for a worker. */
  #start(key: string): void {
    this.#dirty.delete(key);
    this.#processing.add(key);
    const now = this.#now();
    const added = this.#addedAt.get(key);
    this.#addedAt.delete(key);
    if (added !== undefined) this.#metrics?.waited((now - added) / 1000);
    this.#startedAt.set(key, now);
  }

  /**
   * Queues `key` after `delayMs`; an earlier pending time for the key wins. All delayed keys
   * share one timer (armed for the earliest), so 1000 ImageSyncs waiting for their schedule
   * hold one timer, not 1000.
   */
  addAfter(key: string, delayMs: number): void {
    if (this.#shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    // controller-runtime's priority queue counts every add with a delay as a retry
    this.#metrics?.retried();
    const at = Date.now() + delayMs;
    const existing = this.#delayed.get(key);
    if (existing !== undefined && existing <= at) return;
    this.#delayed.set(key, at);
    if (!this.#timer || at < this.#timer.at) this.#arm(at);
  }

  /** (Re)arms the one timer for `at`; setTimeout takes a 32-bit delay, longer waits re-arm. */
  #arm(at: number): void {
    if (this.#timer) clearTimeout(this.#timer.id);
    const wait = Math.min(Math.max(0, at - Date.now()), 2 ** 31 - 1);
    this.#timer = { id: setTimeout(() => this.#fire(), wait), at };
  }

  /** Queues every key that is due and re-arms for the earliest of the rest. */
  #fire(): void {
    this.#timer = undefined;
    const now = Date.now();
    let next = Infinity;
    for (const [key, at] of this.#delayed) {
      if (at <= now) {
        this.#delayed.delete(key);
        this.add(key);
      } else if (at < next) next = at;
    }
    if (next !== Infinity && !this.#shuttingDown) this.#arm(next);
  }

  /** Queues `key` after its next backoff delay; returns the delay chosen. */
  addRateLimited(key: string): number {
    const delay = this.backoff.next(key);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the backoff of `key` (after a successful reconcile). */
  forget(key: string): void {
    this.backoff.forget(key);
  }

  /** Cancels a pending `addAfter` of `key` (the shared timer then finds nothing due for it). */
  cancelTimer(key: string): void {
    this.#delayed.delete(key);
    if (this.#delayed.size === 0 && this.#timer) {
      clearTimeout(this.#timer.id);
      this.#timer = undefined;
    }
  }

  /** The next key to process, or undefined once the queue shuts down. Call `done(key)` after. */
  get(): Promise<string | undefined> {
    if (this.#queue.length > 0) {
      const key = this.#queue.shift()!;
      this.#start(key);
      this.#depth();
      return Promise.resolve(key);
    }
    if (this.#shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Marks `key` as finished; if it was added meanwhile it is queued again. */
  done(key: string): void {
    if (!this.#processing.delete(key)) return;
    const started = this.#startedAt.get(key);
    this.#startedAt.delete(key);
    if (started !== undefined) this.#metrics?.worked((this.#now() - started) / 1000);
    if (this.#dirty.has(key) && !this.#shuttingDown) this.#push(key);
  }

  /** Stops handing out keys: waiting `get` calls resolve undefined, timers are cleared. */
  shutDown(): void {
    this.#shuttingDown = true;
    if (this.#timer) clearTimeout(this.#timer.id);
    this.#timer = undefined;
    this.#delayed.clear();
    for (const w of this.#waiters.splice(0)) w(undefined);
    this.#queue = [];
    this.#dirty.clear();
    this.#addedAt.clear();
    this.#depth();
  }
}
