/**
 * A registry's answer as every sender hands it on: status, headers, the final URL after
 * redirects and a guarded body that must be read with a limit or discarded.
 * @module
 */

import { type IntoReader, intoStream, readerInto, returnScratch, takeScratch } from "./read_into.ts";

/** Most of an error body we read to quote the registry's error (64 KiB). */
export const ERROR_BODY_LIMIT = 64 * 1024;

/** A response from the registry; its body must be consumed, or discarded with {@linkcode RegistryResponse.discard}. */
export class RegistryResponse {
  /** HTTP status. */
  readonly status: number;
  /** Response headers. */
  readonly headers: Headers;
  /** Final URL after redirects. */
  readonly url: string;
  #body: ReadableStream<Uint8Array> | null;
  #reader: IntoReader | null;
  #taken = false;

  /**
   * Wraps a response; used by the senders. The body is a stream, or (from the HTTP sender) a
   * reader under the exchange's limits that reads into the caller's buffers.
   */
  constructor(
    status: number,
    headers: Headers,
    url: string,
    body: ReadableStream<Uint8Array> | IntoReader | null,
  ) {
    this.status = status;
    this.headers = headers;
    this.url = url;
    this.#body = body instanceof ReadableStream ? body : null;
    this.#reader = body instanceof ReadableStream ? null : body;
  }

  /** Body stream (timeout guarded; a byte stream, so BYOB reads work), or null. */
  get body(): ReadableStream<Uint8Array> | null {
    if (!this.#body && this.#reader) {
      this.#body = intoStream(this.#reader);
      this.#taken = true;
    }
    return this.#body;
  }

  /**
   * The body as a reader into the caller's buffers (see {@linkcode IntoReader}), or null: one
   * stream stage less per read than {@linkcode RegistryResponse.body}, for blob bodies. Either
   * this or `body` consumes the response.
   */
  reader(): IntoReader | null {
    if (this.#reader && !this.#body) {
      this.#taken = true;
      return this.#reader;
    }
    return this.body ? readerInto(this.body) : null;
  }

  /** True for 2xx. */
  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /**
   * Reads the whole body, failing once it exceeds `limit` bytes. The body is read through a
   * reused scratch buffer and only its bytes are kept, so a 1 KiB manifest costs 1 KiB, not the
   * 64 KiB a default read allocates (and, for the read that finds the end, 64 KiB more).
   */
  async bytes(limit: number, tooLarge: () => Error): Promise<Uint8Array> {
    if (!this.#body && !this.#reader) return new Uint8Array(0);
    const chunks: Uint8Array[] = [];
    let total = 0;
    await this.#readScratch((chunk) => {
      total += chunk.byteLength;
      if (total > limit) throw tooLarge();
      chunks.push(chunk.slice());
      return true;
    });
    return concat(chunks, total);
  }

  /** Reads up to `limit` bytes of the body as text and discards the rest. */
  async text(limit = ERROR_BODY_LIMIT): Promise<string> {
    if (!this.#body && !this.#reader) return "";
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      await this.#readScratch((chunk) => {
        chunks.push(chunk.slice(0, limit - total));
        total += chunk.byteLength;
        return total < limit;
      });
    } catch {
      // A broken error body is not worth failing over.
    }
    return new TextDecoder().decode(concat(chunks, Math.min(total, limit)));
  }

  /**
   * Feeds the body to `take` chunk by chunk (each valid only during the call) until it ends or
   * `take` returns false (the rest is cancelled); a throw from `take` cancels it too.
   */
  async #readScratch(take: (chunk: Uint8Array) => boolean): Promise<void> {
    const reader = this.reader()!;
    let buffer: ArrayBuffer | undefined = takeScratch();
    let ended = false;
    try {
      while (true) {
        const { done, value } = await reader.read(new Uint8Array(buffer!));
        buffer = value?.buffer as ArrayBuffer | undefined;
        if (done) {
          ended = true;
          return;
        }
        if (!take(value)) return;
      }
    } finally {
      if (ended) reader.release();
      else await reader.cancel().catch(() => {});
      returnScratch(buffer);
    }
  }

  /** Drops the body (cancels the stream). */
  async discard(): Promise<void> {
    if (this.#reader && !this.#taken) {
      this.#taken = true;
      await this.#reader.cancel().catch(() => {});
    } else if (this.#body && !this.#body.locked) await this.#body.cancel().catch(() => {});
  }
}

/** The first `length` bytes of `chunks`, in one buffer. */
function concat(chunks: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let offset = 0;
  for (const c of chunks) {
    const part = c.subarray(0, Math.max(0, length - offset));
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}
