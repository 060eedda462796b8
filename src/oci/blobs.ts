/**
 * Blob streaming helpers: digest-verifying streams, digests of small buffers, and re-chunking a
 * stream for chunked uploads. A blob of at most {@linkcode WHOLE_BLOB_MAX_BYTES} is read whole
 * and hashed by Web Crypto's one-shot digest while the native hash is not loaded; a larger
 * one (and, once the hash is loaded, every one) is hashed as it streams by the
 * native `node:crypto` hash (Web Crypto has no incremental digest; a pure-JavaScript sha256 is
 * ~8× slower), loaded the first time such a blob is copied: a copy of small blobs never loads
 * Deno's Node compatibility layer (~25–30 ms of CPU; B1 in docs/PERFORMANCE.md). See
 * `digest.ts`.
 * @module
 */

import {
  type DigestAlgorithm,
  hashHex,
  isDigestAlgorithm,
  type StreamingHash,
  streamingHash,
  streamingHashLoaded,
  webHashHex,
} from "./digest.ts";
import { OciError } from "./errors.ts";
import { type IntoReader, readerInto } from "./read_into.ts";
import { digestProblem } from "./reference.ts";

/** The algorithm of `digest`; throws when the digest is malformed or of another algorithm. */
function algorithmOf(digest: string, context: string): DigestAlgorithm {
  const problem = digestProblem(digest);
  if (problem) throw new OciError("DigestMismatch", `${context}: ${problem}`);
  const algorithm = digest.slice(0, digest.indexOf(":"));
  if (isDigestAlgorithm(algorithm)) return algorithm;
  throw new OciError(
    "UnsupportedMediaType",
    `${context}: digest algorithm "${algorithm}" is not supported (sha256 and sha512 are)`,
  );
}

/** The `sha256:<hex>` digest of a buffer. */
export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${hashHex("sha256", bytes)}`;
}

/** The digest of a buffer with the same algorithm as `like` (sha256 or sha512). */
export function digestLike(like: string, bytes: Uint8Array): string {
  const algorithm = algorithmOf(like, "digest");
  return `${algorithm}:${hashHex(algorithm, bytes)}`;
}

/** Options for {@linkcode verifyingStream}. */
export interface VerifyOptions {
  /** Expected size in bytes; more or fewer bytes fail the stream. */
  size?: number;
  /** Names the blob in error messages, e.g. "registry r: blob r/repo@sha256:…". */
  context: string;
  /** Called with the byte count of each chunk that passed through. */
  onChunk?: (bytes: number) => void;
}

/**
 * Counts and hashes the bytes of one blob; throws DigestMismatch when they are not its own.
 * Bytes are hashed as they come ({@linkcode BlobCheck.update}, after {@linkcode BlobCheck.ready})
 * or all at once at the end ({@linkcode BlobCheck.finishWhole}).
 */
class BlobCheck {
  readonly #algorithm: DigestAlgorithm;
  readonly #digest: string;
  readonly #opts: VerifyOptions;
  #hash?: StreamingHash;
  #loading?: Promise<void>;
  #total = 0;

  constructor(digest: string, opts: VerifyOptions) {
    this.#algorithm = algorithmOf(digest, opts.context);
    this.#digest = digest;
    this.#opts = opts;
  }

  /** Loads the incremental hash {@linkcode BlobCheck.update} needs (once). */
  ready(): Promise<void> {
    this.#loading ??= streamingHash(this.#algorithm).then((hash) => {
      this.#hash = hash;
    });
    return this.#loading;
  }

  /** Counts (and reports) `bytes` more; fails as soon as more arrived than the descriptor declares. */
  count(bytes: number): void {
    this.#total += bytes;
    const { size, context } = this.#opts;
    if (size !== undefined && this.#total > size) {
      throw new OciError(
        "DigestMismatch",
        `${context}: received more than the ${size} bytes its descriptor declares`,
      );
    }
    this.#opts.onChunk?.(bytes);
  }

  /** Takes the next chunk (after {@linkcode BlobCheck.ready}): counts it, then hashes it. */
  update(chunk: Uint8Array): void {
    this.count(chunk.byteLength);
    this.#hash!.update(chunk);
  }

  /** The content ended, every byte went through {@linkcode BlobCheck.update}: fails unless size and digest match. */
  finish(): void {
    this.#checkSize();
    this.#compare(this.#hash!.hex());
  }

  /** The content ended, all of it in `bytes` (counted with {@linkcode BlobCheck.count}): fails unless size and digest match. */
  async finishWhole(bytes: Uint8Array): Promise<void> {
    this.#checkSize();
    this.#compare(await webHashHex(this.#algorithm, bytes));
  }

  #checkSize(): void {
    const { size, context } = this.#opts;
    if (size !== undefined && this.#total !== size) {
      throw new OciError(
        "DigestMismatch",
        `${context}: received ${this.#total} bytes, its descriptor declares ${size}`,
      );
    }
  }

  #compare(hex: string): void {
    const got = `${this.#algorithm}:${hex}`;
    if (got !== this.#digest) {
      throw new OciError(
        "DigestMismatch",
        `${this.#opts.context}: content digest is ${got}, expected ${this.#digest}; the registry served corrupt or different bytes`,
      );
    }
  }
}

/**
 * A pass-through that hashes every byte and fails with DigestMismatch when the content does
 * not match `digest` (or `size`). It holds back the last chunk until the digest checks out,
 * so a consumer (an upload) never receives the complete body of a blob that is wrong.
 */
export function verifyingStream(
  digest: string,
  opts: VerifyOptions,
): TransformStream<Uint8Array, Uint8Array> {
  const check = new BlobCheck(digest, opts);
  let held: Uint8Array | undefined;
  return new TransformStream<Uint8Array, Uint8Array>({
    start: () => check.ready(),
    transform(chunk, controller) {
      if (chunk.byteLength === 0) return;
      check.update(chunk);
      if (held) controller.enqueue(held);
      held = chunk;
    },
    flush(controller) {
      check.finish();
      if (held) controller.enqueue(held);
      held = undefined;
    },
  });
}

/**
 * Size of the buffers a blob is read into (256 KiB): a chunk is filled before it moves on, so
 * each stage a chunk crosses runs once per 256 KiB.
 */
export const BLOB_CHUNK_BYTES = 256 * 1024;

/**
 * How many bytes of later chunks must have gone to the consumer before a recycled chunk's
 * buffer is read into again. fetch's streamed request body takes a chunk into a queue only
 * while that queue holds less than 64 KiB (Deno's stream-resource back-pressure limit) and
 * copies what it takes out of the queue into the request; so when fetch asks for the next
 * chunk, every chunk followed by 64 KiB of whole later chunks (besides the one it took last)
 * has left the queue. Twice that is the margin.
 */
export const RECYCLE_BEHIND_BYTES = 128 * 1024;

/** Options for {@linkcode verifiedStream}. */
export interface VerifiedStreamOptions extends VerifyOptions {
  /**
   * Reads into these reused buffers instead of a fresh one per chunk, so a blob copy holds its
   * bytes in flight, not garbage per read (B4 in docs/PERFORMANCE.md). A chunk is lent: its
   * memory is read into again once {@linkcode RECYCLE_BEHIND_BYTES} of later chunks (besides
   * the next one) went to the consumer. Only for a consumer that is done with a chunk by then —
   * an upload body handed to fetch, or one copied as it is read — never for one that keeps
   * chunks.
   */
  recycle?: BlobBuffers;
  /**
   * Whether the native streaming hash is loaded (default {@linkcode streamingHashLoaded}): a
   * small blob is read whole only while it is not ({@linkcode WHOLE_BLOB_MAX_BYTES}).
   */
  streamingHashLoaded?: () => boolean;
}

/** Most spare blob buffers kept between transfers (8 × 256 KiB = 2 MiB). */
const MAX_SPARE_BLOB_BUFFERS = 8;
const spareBlobBuffers: ArrayBuffer[] = [];
/** Most spare whole-blob buffers kept between transfers (2 × 1 MiB). */
const MAX_SPARE_WHOLE_BUFFERS = 2;
const spareWholeBuffers: ArrayBuffer[] = [];

/**
 * The buffers one recycling blob read reuses ({@linkcode VerifiedStreamOptions.recycle}): lent
 * chunks come back once far enough behind the consumer. When the consumer is done with every
 * chunk (the upload they went into succeeded), {@linkcode BlobBuffers.release} hands them to
 * the next blob, so a copy of many small blobs does not allocate afresh for each.
 */
export class BlobBuffers {
  readonly #free: ArrayBuffer[] = [];
  /** Buffers of chunks given to the consumer and maybe still in use, with their sizes, oldest first. */
  readonly #lent: Array<{ buffer: ArrayBuffer; bytes: number }> = [];
  #lentBytes = 0;
  #released = false;

  /** A buffer to read into. */
  take(): ArrayBuffer {
    return this.#free.pop() ?? spareBlobBuffers.pop() ?? new ArrayBuffer(BLOB_CHUNK_BYTES);
  }

  /** A buffer to read a whole blob of `size` bytes (at most {@linkcode WHOLE_BLOB_MAX_BYTES}) and one more into. */
  takeWhole(size: number): ArrayBuffer {
    if (size < BLOB_CHUNK_BYTES) return this.take();
    return spareWholeBuffers.pop() ?? new ArrayBuffer(WHOLE_BUFFER_BYTES);
  }

  /** `chunk` went to the consumer. */
  lend(chunk: Uint8Array): void {
    this.#lent.push({ buffer: chunk.buffer as ArrayBuffer, bytes: chunk.byteLength });
    this.#lentBytes += chunk.byteLength;
  }

  /** The consumer asks for more: buffers of chunks far enough behind it come back. */
  reclaim(): void {
    const newest = this.#lent.at(-1)?.bytes ?? 0;
    while (this.#lent.length > 1) {
      const oldest = this.#lent[0];
      if (this.#lentBytes - oldest.bytes - newest < RECYCLE_BEHIND_BYTES) return;
      this.#lent.shift();
      this.#lentBytes -= oldest.bytes;
      this.#free.push(oldest.buffer);
    }
  }

  /**
   * The consumer is done with every chunk (e.g. the registry answered the upload, so fetch
   * sent them all): the buffers go to the next blob read. Not called, they are garbage.
   */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    for (const { buffer } of this.#lent.splice(0)) this.#free.push(buffer);
    for (const buffer of this.#free.splice(0)) {
      if (buffer.detached) continue;
      if (buffer.byteLength === BLOB_CHUNK_BYTES && spareBlobBuffers.length < MAX_SPARE_BLOB_BUFFERS) {
        spareBlobBuffers.push(buffer);
      } else if (
        buffer.byteLength === WHOLE_BUFFER_BYTES && spareWholeBuffers.length < MAX_SPARE_WHOLE_BUFFERS
      ) {
        spareWholeBuffers.push(buffer);
      }
    }
  }
}

/**
 * Blobs of at most this many bytes (1 MiB) are read whole, hashed by Web Crypto and only then
 * handed on, in one chunk ({@linkcode verifiedStream}): no Node compatibility layer for them,
 * at the cost of one such buffer per blob in flight (a copy's 4 transfers: 4 MiB at most).
 * Only while the native streaming hash is not loaded: once it is (a copy streamed a larger
 * blob, or the operator preloaded it, `preloadStreamingHash` in `digest.ts`), every blob
 * streams, which holds less of it in memory (B4 in docs/PERFORMANCE.md).
 */
export const WHOLE_BLOB_MAX_BYTES = 1024 * 1024;
/** A whole-blob buffer: the largest blob read whole, and the byte that shows a longer body. */
const WHOLE_BUFFER_BYTES = WHOLE_BLOB_MAX_BYTES + 1;

/**
 * {@linkcode verifyingStream} applied to `source`, as one pull-driven stream: the same checks
 * and the same held-back last chunk, without a TransformStream's writable side and queues in
 * between. Blob bodies go through it chunk by chunk, so each stage a chunk crosses costs CPU
 * on every copied byte (B1 in docs/PERFORMANCE.md): chunks are filled to
 * {@linkcode BLOB_CHUNK_BYTES} by BYOB reads of `source` (a byte stream or a reader into the
 * caller's buffers; any other stream is copied), and with `recycle` read into reused
 * buffers. A blob whose `size` is known and at most {@linkcode WHOLE_BLOB_MAX_BYTES} is read,
 * while the native hash is not loaded ({@linkcode VerifiedStreamOptions.streamingHashLoaded}),
 * into one buffer instead (with `recycle`, a reused one), verified, and handed on as one chunk:
 * nothing of it leaves before it checked out. Cancelling it cancels `source`.
 */
export function verifiedStream(
  source: ReadableStream<Uint8Array> | IntoReader,
  digest: string,
  opts: VerifiedStreamOptions,
): ReadableStream<Uint8Array> {
  const check = new BlobCheck(digest, opts);
  const reader = source instanceof ReadableStream ? readerInto(source) : source;
  const streaming = opts.streamingHashLoaded ?? streamingHashLoaded;
  if (opts.size !== undefined && opts.size <= WHOLE_BLOB_MAX_BYTES && !streaming()) {
    return wholeBlob(reader, check, { size: opts.size, recycle: opts.recycle });
  }
  // Load the incremental hash while the first bytes are on their way.
  const ready = check.ready();
  ready.catch(() => {}); // awaited (and reported) by the first pull
  const ring = opts.recycle;
  let received = 0;
  let held: Uint8Array | undefined;
  /** A buffer for the next chunk: from the ring, or fresh and no larger than the rest of the blob needs. */
  const nextBuffer = () => {
    if (ring) return ring.take();
    const rest = opts.size === undefined ? BLOB_CHUNK_BYTES : opts.size - received + 1;
    return new ArrayBuffer(Math.max(1, Math.min(BLOB_CHUNK_BYTES, rest)));
  };
  /** Fills a buffer or reads to the end: the bytes read, and whether the body ended. */
  const fill = async (): Promise<{ chunk: Uint8Array; done: boolean }> => {
    let view = new Uint8Array(nextBuffer());
    let filled = 0;
    while (filled < view.byteLength) {
      const { done, value } = await reader.read(view.subarray(filled));
      if (value) view = new Uint8Array(value.buffer as ArrayBuffer);
      if (done) return { chunk: view.subarray(0, filled), done: true };
      filled += value.byteLength;
    }
    return { chunk: view, done: false };
  };
  const give = (controller: ReadableStreamDefaultController<Uint8Array>, chunk: Uint8Array) => {
    ring?.lend(chunk);
    controller.enqueue(chunk);
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        await ready;
        ring?.reclaim();
        while (true) {
          const { chunk, done } = await fill();
          if (chunk.byteLength > 0) {
            received += chunk.byteLength;
            check.update(chunk);
          }
          if (done) {
            reader.release();
            check.finish();
            if (held) give(controller, held);
            if (chunk.byteLength > 0) give(controller, chunk);
            held = undefined;
            controller.close();
            return;
          }
          const out = held;
          held = chunk;
          if (out) {
            give(controller, out);
            return;
          }
        }
      } catch (e) {
        held = undefined;
        await reader.cancel(e).catch(() => {});
        controller.error(e);
      }
    },
    cancel(reason) {
      held = undefined;
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/**
 * The blob of {@linkcode verifiedStream} when it is small: read into one buffer (one byte
 * longer than `size`, so a longer body fails before its end), verified whole by Web Crypto,
 * then given as one chunk. Bytes are counted (and reported) as they arrive.
 */
function wholeBlob(
  reader: IntoReader,
  check: BlobCheck,
  opts: { size: number; recycle?: BlobBuffers },
): ReadableStream<Uint8Array> {
  const { size, recycle } = opts;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        let view = new Uint8Array(recycle?.takeWhole(size) ?? new ArrayBuffer(size + 1), 0, size + 1);
        let filled = 0;
        while (true) {
          const { done, value } = await reader.read(view.subarray(filled));
          if (value) view = new Uint8Array(value.buffer as ArrayBuffer, 0, size + 1);
          if (done) break;
          filled += value.byteLength;
          check.count(value.byteLength);
        }
        reader.release();
        const bytes = view.subarray(0, filled);
        await check.finishWhole(bytes);
        if (filled > 0) {
          recycle?.lend(bytes);
          controller.enqueue(bytes);
        }
        controller.close();
      } catch (e) {
        await reader.cancel(e).catch(() => {});
        controller.error(e);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/**
 * Re-chunks a stream into pieces of exactly `size` bytes (the last may be shorter), for
 * chunked (PATCH) uploads. Holds at most one piece in memory.
 */
export async function* pieces(
  stream: ReadableStream<Uint8Array>,
  size: number,
): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  let buf = new Uint8Array(size);
  let fill = 0;
  let finished = false;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      let offset = 0;
      while (offset < value.byteLength) {
        const n = Math.min(size - fill, value.byteLength - offset);
        buf.set(value.subarray(offset, offset + n), fill);
        fill += n;
        offset += n;
        if (fill === size) {
          yield buf;
          buf = new Uint8Array(size);
          fill = 0;
        }
      }
    }
    if (fill > 0) yield buf.subarray(0, fill);
    finished = true;
  } finally {
    if (!finished) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
