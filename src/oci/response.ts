/**
 * A registry's answer as every sender hands it on: status, headers, the final URL after
 * redirects and a guarded body that must be read with a limit or discarded.
 * @module
 */

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
  /** Body stream (timeout guarded), or null. */
  readonly body: ReadableStream<Uint8Array> | null;

  /** Wraps a response; used by the senders. */
  constructor(
    status: number,
    headers: Headers,
    url: string,
    body: ReadableStream<Uint8Array> | null,
  ) {
    this.status = status;
    this.headers = headers;
    this.url = url;
    this.body = body;
  }

  /** True for 2xx. */
  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /** Reads the whole body, failing once it exceeds `limit` bytes. */
  async bytes(limit: number, tooLarge: () => Error): Promise<Uint8Array> {
    if (!this.body) return new Uint8Array(0);
    const reader = this.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.byteLength;
        if (total > limit) {
          await reader.cancel().catch(() => {});
          throw tooLarge();
        }
        chunks.push(value);
      }
    } finally {
      reader.releaseLock();
    }
    return concat(chunks, total);
  }

  /** Reads up to `limit` bytes of the body as text and discards the rest. */
  async text(limit = ERROR_BODY_LIMIT): Promise<string> {
    if (!this.body) return "";
    const reader = this.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      while (total < limit) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        total += value.byteLength;
      }
      if (total >= limit) await reader.cancel().catch(() => {});
    } catch {
      // A broken error body is not worth failing over.
    } finally {
      reader.releaseLock();
    }
    return new TextDecoder().decode(concat(chunks, Math.min(total, limit)));
  }

  /** Drops the body (cancels the stream). */
  async discard(): Promise<void> {
    if (this.body && !this.body.locked) await this.body.cancel().catch(() => {});
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
