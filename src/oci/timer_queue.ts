/**
 * Timers for the senders' limits that do not load Deno's Node timers.
 *
 * In Deno 2.9 the global `setTimeout` is `node:timers`' (with the Node layer's async hooks,
 * errors and validators), loaded on its first call: 6–12 ms of a fresh process, which the
 * first registry request of `portager sync -f` used to wait for. The web platform's own timer,
 * behind `AbortSignal.timeout`, costs ~0.3 ms but cannot be cleared. So a
 * {@linkcode TimerQueue} runs its callbacks off one such signal at a time, armed for the
 * earliest callback: cancelling leaves that signal pending (it fires, finds nothing due and
 * re-arms for what is left), and only a callback due earlier than the armed time arms another.
 * Callbacks run when their time has come, never before (as `setTimeout` does).
 *
 * `AbortSignal.timeout`'s timer keeps the process alive while the signal has `abort` listeners
 * (its `addEventListener` refs the timer): the queue listens through `EventTarget`'s own
 * `addEventListener`, which does not, and adds a no-op listener the signal's way while a
 * callback scheduled with `ref` (the default) waits.
 * @module
 */

/** A callback waiting in a {@linkcode TimerQueue}; pass it to {@linkcode TimerQueue.cancel}. */
export interface QueuedTimer {
  /** When it runs, on the `performance.now()` clock. */
  readonly at: number;
}

interface Entry extends QueuedTimer {
  at: number;
  /** Unset once it ran or was cancelled. */
  fn: (() => void) | undefined;
  /** Keeps the process alive while waiting. */
  ref: boolean;
  /** Its place in the heap. */
  index: number;
}

/** The longest delay a timer takes (2³¹−1 ms, ~24.8 days). */
const MAX_DELAY_MS = 2 ** 31 - 1;

const { addEventListener: listen, removeEventListener: unlisten } = EventTarget.prototype;

/** Options of {@linkcode TimerQueue.schedule}. */
export interface ScheduleOptions {
  /**
   * Whether the waiting callback keeps the process alive, as a `setTimeout` does (default
   * true); false is `Deno.unrefTimer`'s behaviour.
   */
  ref?: boolean;
}

/**
 * Callbacks run at their time off a single pending `AbortSignal.timeout`; the process is kept
 * alive while a `ref` callback waits, and only then.
 */
export class TimerQueue {
  /** Min-heap on `at`. */
  readonly #heap: Entry[] = [];
  /** The signal armed for {@linkcode TimerQueue.#armedAt}, until it fires. */
  #signal: AbortSignal | undefined;
  #armedAt = Infinity;
  /** Waiting callbacks that keep the process alive. */
  #refs = 0;
  /** Runs what is due when `#signal` fires. */
  #onFire: (() => void) | undefined;
  /** Whether {@linkcode TimerQueue.#keepAlive} listens to `#signal` (which refs its timer). */
  #listening = false;
  readonly #keepAlive = () => {};

  /** Callbacks waiting. */
  get size(): number {
    return this.#heap.length;
  }

  /** Runs `fn` once `ms` milliseconds have passed (0 or less: on the next timer turn). */
  schedule(fn: () => void, ms: number, options: ScheduleOptions = {}): QueuedTimer {
    const entry: Entry = {
      at: performance.now() + Math.max(0, ms),
      fn,
      ref: options.ref ?? true,
      index: this.#heap.length,
    };
    this.#heap.push(entry);
    this.#up(entry.index);
    if (entry.ref) this.#refs++;
    this.#arm();
    return entry;
  }

  /** Drops a waiting callback; one that ran or was dropped already is ignored. */
  cancel(timer: QueuedTimer | undefined): void {
    const entry = timer as Entry | undefined;
    if (entry?.fn === undefined) return;
    this.#take(entry);
    this.#hold();
  }

  /** Arms a signal for the earliest callback unless one is armed for it or earlier. */
  #arm(): void {
    const first = this.#heap[0];
    if (first !== undefined && first.at < this.#armedAt) {
      this.#release();
      if (this.#signal !== undefined) unlisten.call(this.#signal, "abort", this.#onFire!); // left to fire alone
      // A timer's delay is a 32-bit count of ms (a longer one fires at once): a far callback is
      // reached in steps, each firing finding nothing due and arming the next.
      const delay = Math.min(MAX_DELAY_MS, Math.max(0, Math.ceil(first.at - performance.now())));
      const signal = AbortSignal.timeout(delay);
      this.#signal = signal;
      this.#armedAt = first.at;
      this.#onFire = () => this.#fire(signal);
      listen.call(signal, "abort", this.#onFire); // unlike signal.addEventListener, no ref
    }
    this.#hold();
  }

  /** Listens to the armed signal while a `ref` callback waits, and only then. */
  #hold(): void {
    if (this.#refs > 0 && this.#signal !== undefined) {
      if (!this.#listening) this.#signal.addEventListener("abort", this.#keepAlive);
      this.#listening = true;
    } else this.#release();
  }

  /** Unrefs the armed signal's timer: that happens when its last listener goes, so ours goes too. */
  #release(): void {
    if (!this.#listening || this.#signal === undefined) return;
    unlisten.call(this.#signal, "abort", this.#onFire!);
    this.#signal.removeEventListener("abort", this.#keepAlive);
    listen.call(this.#signal, "abort", this.#onFire!);
    this.#listening = false;
  }

  #fire(signal: AbortSignal): void {
    if (signal !== this.#signal) return; // replaced by an earlier one
    this.#listening = false;
    this.#signal = undefined;
    this.#onFire = undefined;
    this.#armedAt = Infinity;
    const now = performance.now();
    while (this.#heap.length > 0 && this.#heap[0].at <= now) {
      const fn = this.#heap[0].fn!;
      this.#take(this.#heap[0]);
      try {
        fn();
      } catch (e) {
        reportError(e);
      }
    }
    this.#arm();
  }

  #take(entry: Entry): void {
    entry.fn = undefined;
    if (entry.ref) this.#refs--;
    this.#remove(entry.index);
  }

  #remove(i: number): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (i === heap.length) return;
    heap[i] = last;
    last.index = i;
    this.#up(i);
    this.#down(last.index);
  }

  #up(i: number): void {
    const heap = this.#heap;
    const entry = heap[i];
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent].at <= entry.at) break;
      heap[i] = heap[parent];
      heap[i].index = i;
      i = parent;
    }
    heap[i] = entry;
    entry.index = i;
  }

  #down(i: number): void {
    const heap = this.#heap;
    const entry = heap[i];
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && heap[right].at < heap[left].at ? right : left;
      if (heap[child].at >= entry.at) break;
      heap[i] = heap[child];
      heap[i].index = i;
      i = child;
    }
    heap[i] = entry;
    entry.index = i;
  }
}

/** The queue the HTTP sender's limits run on. */
export const timers: TimerQueue = new TimerQueue();
