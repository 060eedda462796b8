/**
 * The blob side of a copy batch: planning each blob (skip, mount, copy) by asking the
 * destination, and moving it — once per batch even when several copies need it — by a
 * cross-repository mount or a stream from source to destination, restarted on retryable
 * failures. Also the small concurrency helpers the `Copier` shares with it.
 * @module
 */

import { BlobBuffers } from "./blobs.ts";
import type { RegistryClient } from "./client.ts";
import { OciError } from "./errors.ts";
import type { Descriptor } from "./manifest.ts";
import type { Reference } from "./reference.ts";
import type { RetryPolicy } from "./retry.ts";
import type { WaitWrapper } from "./send.ts";
import { sleep } from "./sleep.ts";

/** What happens (or would happen) to one blob. */
export interface BlobPlan {
  /** Blob digest. */
  digest: string;
  /** Blob size in bytes. */
  size: number;
  /** copy = stream from the source; mount = cross-repository mount; skip = already there (or moved by another copy of this batch). */
  action: "copy" | "mount" | "skip";
  /** For mounts: the repository mounted from. */
  from?: string;
}

/** Options for {@linkcode Limiter}. */
export interface LimiterOptions {
  /**
   * A limiter shared with others (the process's transfer budget): each task holds a slot of
   * this limiter and then one of the parent's while it runs, so tasks of all the limiters that
   * share the parent never run more than the parent's `max` at once. Slots are always taken in
   * that order (own, then parent's) and released together when the task ends.
   */
  parent?: Limiter;
}

/** Per-task options of {@linkcode Limiter.run}. */
export interface LimiterRunOptions {
  /** Gives up a place in the queue: `run` rejects with the signal's reason, `fn` never runs. */
  signal?: AbortSignal;
}

/**
 * What a task of {@linkcode Limiter.run} holds. `pause` runs a wait in which the task sends
 * nothing (a retry's backoff, a registry's `Retry-After` pause) and, for a limiter with a
 * parent, gives the parent's slot (the process's transfer budget) back meanwhile: another
 * sync's transfer runs instead, and the task queues for a slot again, at the back, before it
 * goes on. Its own limiter's slot stays held, so the sync's own concurrency — and what it sends
 * to a registry that asked it to wait — is what it was. Without a parent it only runs `wait`.
 */
export interface LimiterSlot {
  /** Runs `wait` without holding the parent's slot; settles as `wait` does. */
  pause(wait: () => Promise<void>): Promise<void>;
}

/** The slot of a limiter without a parent: its waits hold it. */
const HELD: LimiterSlot = { pause: (wait) => wait() };

/** One task waiting for a slot. */
interface Waiter {
  grant: () => void;
}

/**
 * Runs at most `max` tasks at once, in arrival order; with a `parent`, also at most the
 * parent's `max` over every limiter sharing it (see {@linkcode LimiterOptions.parent}).
 *
 * It cannot deadlock as long as no task waits for a slot of any limiter while it runs: the
 * copier's tasks (a blob's mount or stream with its restarts, a manifest's GET, a child
 * manifest's HEAD and PUT) only send requests and sleep, and a waiter holds its own
 * limiter's slot while it waits for the parent's, never the other way round.
 */
export class Limiter {
  #active = 0;
  #queue: Waiter[] = [];
  readonly #max: number;
  readonly #parent?: Limiter;

  /** A limiter letting `max` tasks (at least one) run at once. */
  constructor(max: number, opts: LimiterOptions = {}) {
    this.#max = Math.max(1, Math.floor(max));
    this.#parent = opts.parent;
  }

  /** Tasks allowed to hold a slot at once. */
  get max(): number {
    return this.#max;
  }

  /**
   * Tasks holding a slot of this limiter: running, or (with a parent) waiting for the parent's
   * slot. For a limiter without a parent (the process's transfer budget) that is the tasks
   * running: its `active` is the transfers in flight.
   */
  get active(): number {
    return this.#active;
  }

  /**
   * Tasks waiting for a slot of this limiter. For the transfer budget, these are the tasks
   * their own copier let through and the budget holds back; a task its copier's own limit
   * holds back is counted by the copier's limiter, not here.
   */
  get waiting(): number {
    return this.#queue.length;
  }

  /**
   * Runs `fn` once fewer than `max` tasks are running (here and, with a parent, there). An
   * aborted `signal` takes the task out of the queues: it rejects with the signal's reason.
   */
  async run<T>(fn: (slot: LimiterSlot) => Promise<T>, opts: LimiterRunOptions = {}): Promise<T> {
    await this.#acquire(opts.signal);
    try {
      return this.#parent ? await this.#parent.#runShared(fn, opts) : await fn(HELD);
    } finally {
      this.#release();
    }
  }

  /**
   * Runs a child's task on a slot of this limiter that the task's waits give back (see
   * {@linkcode LimiterSlot}). Every wait that ends well returns with the slot taken again, so
   * no request of the task goes out without it; overlapping waits of one task (a blob's GET
   * and POST go out together) share the giving back and the taking again. A wait that fails
   * leaves the slot given back (the task is failing: nothing more is sent).
   */
  async #runShared<T>(fn: (slot: LimiterSlot) => Promise<T>, opts: LimiterRunOptions): Promise<T> {
    await this.#acquire(opts.signal);
    let held = true;
    let retaking: Promise<void> | undefined;
    const retake = () =>
      retaking ??= this.#acquire(opts.signal).then(() => {
        retaking = undefined;
        held = true;
      }, (e) => {
        retaking = undefined;
        throw e;
      });
    const slot: LimiterSlot = {
      pause: async (wait) => {
        if (held) {
          held = false;
          this.#release();
        }
        await wait();
        while (!held) await retake();
      },
    };
    try {
      return await fn(slot);
    } finally {
      if (held) this.#release();
    }
  }

  /** Takes a slot, waiting in arrival order; an abort leaves the queue. */
  #acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#active < this.#max) {
      this.#active++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.#queue.indexOf(waiter);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(signal!.reason);
      };
      // the slot passes straight from the releasing task to this one (#active unchanged)
      const waiter: Waiter = {
        grant: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#queue.push(waiter);
    });
  }

  /** Hands the slot to the first waiter, or frees it. */
  #release(): void {
    const next = this.#queue.shift();
    if (next) next.grant();
    else this.#active--;
  }
}

/**
 * Blobs of this size or more keep their destination check even in a repository the
 * destination said does not exist (16 MiB). A registry may answer `NAME_UNKNOWN` for a
 * repository that holds blobs but no tag yet (CNCF distribution does, after a first copy
 * failed before its manifest): skipping the check of such a blob uploads it again, and a
 * check costs one round trip, small beside a large blob's upload.
 */
export const NEW_REPOSITORY_CHECK_MIN_SIZE = 16 * 1024 * 1024;

/** What a blob transfer did. */
export type Outcome = "copied" | "mounted";

/** One blob's plan, with what its transfer needs. */
export interface PlannedBlob extends BlobPlan {
  descriptor: Descriptor;
  /** Key of another copy's task this blob waits for. */
  shared?: string;
}

/** One blob of one copy, as its transfer sees it. */
export interface BlobJob {
  src: Reference;
  dst: Reference;
  p: PlannedBlob;
  signal: AbortSignal;
  /** Reports bytes moved (negative when a restarted transfer gives them back). */
  progress: (digest: string, n: number) => void;
  /** Called once when a planned mount fell back to a copy (its bytes join the total). */
  onFallbackCopy: () => void;
}

/**
 * Plans and moves the blobs of one batch of copies: a blob needed by several copies moves
 * once, and a blob this batch already wrote to one repository is mounted into the next.
 */
export class BlobMover {
  readonly #source: RegistryClient;
  readonly #destination: RegistryClient;
  readonly #retry: RetryPolicy;
  readonly #limiter: Limiter;
  /** Blob transfers of this batch, by `registry/repository@digest` at the destination. */
  readonly #tasks = new Map<string, Promise<Outcome>>();
  /** Destination repositories known to hold a blob after this batch wrote it: `registry@digest` → repositories. */
  readonly #present = new Map<string, Set<string>>();
  /** Dry-run bookkeeping: blobs an earlier dry-run copy of this batch would already move. */
  readonly #planned = new Set<string>();

  /** Creates the blob mover of one batch; transfers run under `limiter`, restarts follow `retry`. */
  constructor(
    clients: { source: RegistryClient; destination: RegistryClient },
    opts: { retry: RetryPolicy; limiter: Limiter },
  ) {
    this.#source = clients.source;
    this.#destination = clients.destination;
    this.#retry = opts.retry;
    this.#limiter = opts.limiter;
  }

  /**
   * Decides what to do with one blob, reading only. In a repository the destination said does
   * not exist (`newRepository`, see {@linkcode RegistryClient.repositoryUnknown}) a blob below
   * {@linkcode NEW_REPOSITORY_CHECK_MIN_SIZE} is planned without its HEAD: not there, so
   * mounted (same registry, or written by this batch to another repository) or copied. A blob
   * this batch moves or moved to `dst` is still known through its transfers.
   */
  async plan(
    src: Reference,
    dst: Reference,
    d: Descriptor,
    dryRun: boolean,
    signal: AbortSignal,
    newRepository = false,
  ): Promise<PlannedBlob> {
    const key = `${dst.registry}/${dst.repository}@${d.digest}`;
    const base = { digest: d.digest, size: d.size, descriptor: d };
    if (this.#tasks.has(key)) return { ...base, action: "skip", shared: key };
    if (dryRun && this.#planned.has(key)) return { ...base, action: "skip" };
    // Claim the blob before awaiting the HEAD, so concurrent dry-run copies in this batch
    // plan a shared blob once (the real path dedupes in execute through #tasks).
    if (dryRun) this.#planned.add(key);
    const unchecked = newRepository && d.size < NEW_REPOSITORY_CHECK_MIN_SIZE;
    if (!unchecked && await this.#destination.headBlob(dst, d.digest, { signal })) {
      return { ...base, action: "skip" };
    }
    const from = this.#mountSource(src, dst, d.digest);
    return from ? { ...base, action: "mount", from } : { ...base, action: "copy" };
  }

  /** A repository of the destination registry to mount from, if any. */
  #mountSource(src: Reference, dst: Reference, digest: string): string | undefined {
    if (src.registry === dst.registry && src.repository !== dst.repository) return src.repository;
    for (const repo of this.#present.get(`${dst.registry}@${digest}`) ?? []) {
      if (repo !== dst.repository) return repo;
    }
    return undefined;
  }

  /** Carries out a plan entry; returns "skip" when nothing was moved by this copy. */
  async execute(job: BlobJob): Promise<Outcome | "skip"> {
    const { dst, p } = job;
    const key = `${dst.registry}/${dst.repository}@${p.digest}`;
    if (p.action === "skip" && !p.shared) return "skip";
    const existing = this.#tasks.get(key);
    if (existing) {
      try {
        await existing;
        return "skip";
      } catch {
        // The other copy failed (or was cancelled): do it ourselves below.
        if (this.#tasks.get(key) === existing) this.#tasks.delete(key);
      }
    }
    const again = this.#tasks.get(key);
    if (again) {
      await again;
      return "skip";
    }
    const task = this.#transfer(job);
    this.#tasks.set(key, task);
    try {
      const outcome = await task;
      const presentKey = `${dst.registry}@${p.digest}`;
      const repos = this.#present.get(presentKey) ?? new Set<string>();
      repos.add(dst.repository);
      this.#present.set(presentKey, repos);
      return outcome;
    } catch (e) {
      if (this.#tasks.get(key) === task) this.#tasks.delete(key);
      throw e;
    }
  }

  /**
   * Mounts or streams one blob, restarting the whole transfer (fresh GET) on retryable
   * failures. Each attempt holds a transfer slot (the batch's limiter and, through it, the
   * process's budget); the backoff before a restart does not, so a blob waiting to be retried
   * keeps no other sync's transfer waiting.
   */
  async #transfer(job: BlobJob): Promise<Outcome> {
    const { src, dst, p, signal } = job;
    const max = this.#retry.maxAttempts;
    const fallback = { counted: false };
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#limiter.run((slot) => this.#attempt(job, { fallback, slot }), { signal });
      } catch (e) {
        const retryable = e instanceof OciError && e.retryable && !signal.aborted;
        if (!retryable || attempt >= max) throw e;
        const delayMs = this.#retry.backoff(attempt);
        this.#retry.report({
          registry: dst.registry,
          reason: "BlobRestart",
          attempt,
          delayMs,
          method: "GET",
          path: `/v2/${src.repository}/blobs/${p.digest}`,
        });
        await sleep(delayMs, signal);
      }
    }
  }

  /**
   * One attempt of a blob's transfer: a mount, else (or when the mount fell back) a stream. Its
   * requests' retry and rate-limit waits run through `slot.pause`: they give the process's
   * transfer budget back meanwhile.
   */
  async #attempt(
    job: BlobJob,
    state: { fallback: { counted: boolean }; slot: LimiterSlot },
  ): Promise<Outcome> {
    const { src, dst, p, signal, progress } = job;
    const { fallback } = state;
    const duringWait = state.slot.pause;
    let moved = 0;
    try {
      let location: string | undefined;
      const from = p.action === "mount" ? p.from ?? this.#mountSource(src, dst, p.digest) : undefined;
      if (from) {
        const r = await this.#destination.mountBlob(dst, p.digest, {
          fromRepository: from,
          signal,
          duringWait,
        });
        if (r.mounted) return "mounted";
        location = r.location;
        if (!fallback.counted) {
          fallback.counted = true;
          job.onFallbackCopy();
        }
      }
      const buffers = new BlobBuffers();
      const blob = await this.#openTransfer(job, {
        location,
        buffers,
        duringWait,
        onChunk: (n) => {
          moved += n;
          progress(p.digest, n);
        },
      });
      await this.#destination.uploadBlob(
        dst,
        { digest: p.digest, stream: blob.stream, size: p.size },
        { location: blob.location, signal },
      );
      // The registry took the whole blob: fetch sent every chunk, their buffers are free.
      buffers.release();
      return "copied";
    } catch (e) {
      if (moved > 0) progress(p.digest, -moved);
      throw e;
    }
  }

  /**
   * Opens both ends of one blob's stream at once: the source GET and, unless a failed mount
   * already gave one, the destination's upload session (POST). They do not depend on each
   * other, so a blob costs one round trip less before its bytes flow (B1 in
   * docs/PERFORMANCE.md). If either fails the other is let go: the body is cancelled; an
   * upload session already opened is left for the registry to expire, as a retried POST is.
   */
  async #openTransfer(
    job: BlobJob,
    opts: { location?: string; buffers: BlobBuffers; onChunk: (n: number) => void; duringWait: WaitWrapper },
  ): Promise<{ stream: ReadableStream<Uint8Array>; location: string }> {
    const { src, dst, p, signal } = job;
    const { duringWait } = opts;
    const [blob, session] = await Promise.allSettled([
      // Its chunks go straight into the upload's request body: they may be lent (recycled).
      this.#source.getBlob(src, p.digest, {
        size: p.size,
        signal,
        onChunk: opts.onChunk,
        recycle: opts.buffers,
        duringWait,
      }),
      opts.location ?? this.#destination.startUpload(dst, { signal, duringWait }),
    ]);
    if (blob.status === "rejected") throw blob.reason;
    if (session.status === "rejected") {
      await blob.value.stream.cancel().catch(() => {});
      throw session.reason;
    }
    return { stream: blob.value.stream, location: session.value };
  }
}

/**
 * Awaits every promise; if any failed, aborts the siblings' shared controller and throws the
 * first failure once all have settled (so nothing keeps running after copy returns).
 */
export async function settleAll<T>(promises: Promise<T>[], inner: AbortController): Promise<T[]> {
  let first: unknown;
  let failed = false;
  const guarded = promises.map((p) =>
    p.catch((e) => {
      if (!failed) {
        failed = true;
        first = e;
        inner.abort();
      }
      throw e;
    })
  );
  const settled = await Promise.allSettled(guarded);
  if (failed) throw first;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}
