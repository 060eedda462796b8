/**
 * Reading a body into buffers the reader owns (BYOB reads), so that reading leaves no fresh
 * `ArrayBuffer` per chunk behind: V8 frees those only after a GC, and between GCs they, not
 * the bytes in flight, set a copy's peak memory (B4 in docs/PERFORMANCE.md).
 * @module
 */

/** Reads a body into the caller's buffer; the result is a view of the same memory. */
export interface IntoReader {
  /**
   * Fills part of `view` (at least one byte unless done). As with a BYOB reader, the memory
   * moves: `view`'s buffer is detached and the result views the same memory in a new
   * `ArrayBuffer`, which is the one to read into next.
   */
  read(view: Uint8Array): Promise<ReadableStreamReadResult<Uint8Array>>;
  /** Cancels the body. */
  cancel(reason?: unknown): Promise<void>;
  /** Releases the body (after it ended) without cancelling it. */
  release(): void;
}

/**
 * A BYOB reader of `body` when it is a byte stream (fetch's bodies and ours are), else a
 * default reader whose chunks are copied into the caller's buffer (a body built in
 * JavaScript); either way the caller gets its own memory back, filled.
 */
export function readerInto(body: ReadableStream<Uint8Array>): IntoReader {
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = body.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream: copy below.
  }
  if (byob) {
    const reader = byob;
    return {
      read: (view) => reader.read(view) as Promise<ReadableStreamReadResult<Uint8Array>>,
      cancel: (reason) => reader.cancel(reason),
      release: () => reader.releaseLock(),
    };
  }
  const reader = body.getReader();
  let rest: Uint8Array | undefined;
  return {
    async read(view) {
      while (!rest || rest.byteLength === 0) {
        const { done, value } = await reader.read();
        if (done) return { done: true, value: view.subarray(0, 0) };
        rest = value;
      }
      const n = Math.min(rest.byteLength, view.byteLength);
      view.set(rest.subarray(0, n));
      rest = rest.subarray(n);
      return { done: false, value: view.subarray(0, n) };
    },
    cancel: (reason) => reader.cancel(reason),
    release: () => reader.releaseLock(),
  };
}

/** Bytes a default reader of {@linkcode intoStream} gets per read: the size fetch's own reads use (64 KiB). */
export const STREAM_CHUNK_BYTES = 64 * 1024;

/**
 * `reader` as a byte stream: a BYOB reader's buffer goes straight to `reader` (no copy, no
 * allocation); a default reader gets fresh {@linkcode STREAM_CHUNK_BYTES} chunks. Cancelling
 * the stream cancels `reader`.
 */
export function intoStream(reader: IntoReader): ReadableStream<Uint8Array> {
  return new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: STREAM_CHUNK_BYTES,
    async pull(controller) {
      // Always set: a default reader's read allocates autoAllocateChunkSize bytes for it.
      const request = controller.byobRequest!;
      const view = request.view!;
      try {
        const { done, value } = await reader.read(
          new Uint8Array(view.buffer, view.byteOffset, view.byteLength),
        );
        if (done) {
          // The memory goes back with the close, or a BYOB reader would wait for ever.
          if (value === undefined) throw new TypeError("the body was cancelled");
          controller.close();
        }
        request.respondWithNewView(value!);
      } catch (e) {
        controller.error(e);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/** Size of the buffers small bodies (manifests, tokens, tag pages, errors) are read through (64 KiB). */
export const SCRATCH_BYTES = 64 * 1024;
/** Spare scratch buffers kept between reads: one per concurrent small read, up to this many. */
const MAX_SPARE = 16;
const spare: ArrayBuffer[] = [];

/** A scratch buffer for one read of a small body; give it back with {@linkcode returnScratch}. */
export function takeScratch(): ArrayBuffer {
  return spare.pop() ?? new ArrayBuffer(SCRATCH_BYTES);
}

/** Returns a scratch buffer (the one the last read gave back) for the next small read. */
export function returnScratch(buffer: ArrayBuffer | undefined): void {
  if (buffer && !buffer.detached && buffer.byteLength === SCRATCH_BYTES && spare.length < MAX_SPARE) {
    spare.push(buffer);
  }
}
