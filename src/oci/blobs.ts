/**
 * Blob streaming helpers: a digest-verifying TransformStream, digests of small buffers, and
 * re-chunking a stream for chunked uploads. Web Crypto has no incremental digest, so hashing
 * uses the runtime's native `node:crypto` hash (built into Deno, no package): it runs about
 * 8× faster than a pure-JavaScript sha256 and is what keeps blob copies at network speed.
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { OciError } from "./errors.ts";
import { digestProblem } from "./reference.ts";

function hasherFor(digest: string, context: string): Hash {
  const problem = digestProblem(digest);
  if (problem) throw new OciError("DigestMismatch", `${context}: ${problem}`);
  const algorithm = digest.slice(0, digest.indexOf(":"));
  if (algorithm === "sha256" || algorithm === "sha512") return createHash(algorithm);
  throw new OciError(
    "UnsupportedMediaType",
    `${context}: digest algorithm "${algorithm}" is not supported (sha256 and sha512 are)`,
  );
}

/** The `sha256:<hex>` digest of a buffer. */
export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** The digest of a buffer with the same algorithm as `like` (sha256 or sha512). */
export function digestLike(like: string, bytes: Uint8Array): string {
  const h = hasherFor(like, "digest");
  h.update(bytes);
  return `${like.slice(0, like.indexOf(":"))}:${h.digest("hex")}`;
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

/** Hashes and counts the bytes of one blob; throws DigestMismatch when they are not its own. */
class BlobCheck {
  readonly #hasher: Hash;
  readonly #algorithm: string;
  readonly #digest: string;
  readonly #opts: VerifyOptions;
  #total = 0;

  constructor(digest: string, opts: VerifyOptions) {
    this.#hasher = hasherFor(digest, opts.context);
    this.#algorithm = digest.slice(0, digest.indexOf(":"));
    this.#digest = digest;
    this.#opts = opts;
  }

  /** Takes the next chunk; fails as soon as more bytes arrived than the descriptor declares. */
  update(chunk: Uint8Array): void {
    this.#total += chunk.byteLength;
    const { size, context } = this.#opts;
    if (size !== undefined && this.#total > size) {
      throw new OciError(
        "DigestMismatch",
        `${context}: received more than the ${size} bytes its descriptor declares`,
      );
    }
    this.#hasher.update(chunk);
    this.#opts.onChunk?.(chunk.byteLength);
  }

  /** The content ended: fails unless size and digest match. */
  finish(): void {
    const { size, context } = this.#opts;
    if (size !== undefined && this.#total !== size) {
      throw new OciError(
        "DigestMismatch",
        `${context}: received ${this.#total} bytes, its descriptor declares ${size}`,
      );
    }
    const got = `${this.#algorithm}:${this.#hasher.digest("hex")}`;
    if (got !== this.#digest) {
      throw new OciError(
        "DigestMismatch",
        `${context}: content digest is ${got}, expected ${this.#digest}; the registry served corrupt or different bytes`,
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
 * {@linkcode verifyingStream} applied to `source`, as one pull-driven stream: the same checks
 * and the same held-back last chunk, without a TransformStream's writable side and queues in
 * between. Blob bodies go through it chunk by chunk, so each stage a chunk crosses costs CPU
 * on every copied byte (B1 in docs/PERFORMANCE.md). Cancelling it cancels `source`.
 */
export function verifiedStream(
  source: ReadableStream<Uint8Array>,
  digest: string,
  opts: VerifyOptions,
): ReadableStream<Uint8Array> {
  const check = new BlobCheck(digest, opts);
  const reader = source.getReader();
  let held: Uint8Array | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        while (true) {
          const { done, value } = await reader.read();
          if (done) {
            check.finish();
            if (held) controller.enqueue(held);
            held = undefined;
            controller.close();
            return;
          }
          if (value.byteLength === 0) continue;
          check.update(value);
          const out = held;
          held = value;
          if (out) {
            controller.enqueue(out);
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
