/**
 * Blob uploads to a registry: a cross-repository mount, an upload session, and the upload
 * itself — one streamed PUT (monolithic) or PATCH pieces and a closing PUT (chunked) — with the
 * session deleted when an upload fails. `RegistryClient` uploads through one.
 * @module
 */

import { repositoryScope } from "./auth.ts";
import { pieces } from "./blobs.ts";
import { OciError } from "./errors.ts";
import { blobPath, pushPull, withDigest } from "./paths.ts";
import type { Reference } from "./reference.ts";
import type { Transport } from "./transport.ts";
import type { WaitWrapper } from "./send.ts";

/** How blobs are uploaded (part of `RegistryClientOptions`). */
export interface UploadOptions {
  /**
   * How blobs are uploaded: one streamed PUT ("monolithic", default) or PATCH pieces of
   * `chunkSize` bytes ("chunked", for registries that require it).
   */
  uploadMode?: "monolithic" | "chunked";
  /** Piece size for chunked uploads (default 8 MiB). */
  chunkSize?: number;
}

/** Result of a cross-repository mount attempt. */
export type MountResult = { mounted: true } | { mounted: false; location: string };

/** A blob to upload: its digest, its content and, when known, its size. */
export interface UploadBlob {
  /** The blob's digest (the registry checks the content against it). */
  digest: string;
  /** The content; cancelled when the upload fails. */
  stream: ReadableStream<Uint8Array>;
  /** Size in bytes; unknown sizes are uploaded in pieces. */
  size?: number;
}

const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;

/** Uploads blobs through one transport (a `RegistryClient`'s). */
export class BlobUploader {
  readonly #transport: Transport;
  readonly #opts: UploadOptions;

  /** Creates an uploader sending through `transport`. */
  constructor(transport: Transport, opts: UploadOptions = {}) {
    this.#transport = transport;
    this.#opts = opts;
  }

  /**
   * Tries a cross-repository mount of `digest` from `fromRepository` (same registry). On
   * success nothing is transferred; otherwise the registry's fresh upload session is returned.
   */
  async mount(
    dst: Reference,
    digest: string,
    opts: { fromRepository: string; signal?: AbortSignal; duringWait?: WaitWrapper },
  ): Promise<MountResult> {
    blobPath(dst, digest);
    const params = new URLSearchParams({ mount: digest, from: opts.fromRepository });
    const res = await this.#transport.request(dst.registry, {
      method: "POST",
      path: `/v2/${dst.repository}/blobs/uploads/?${params}`,
      scopes: [...pushPull(dst), repositoryScope(opts.fromRepository, ["pull"])],
      reference: `${dst.name}@${digest}`,
      action: "mount blob",
      signal: opts.signal,
      duringWait: opts.duringWait,
    });
    await res.discard();
    if (res.status === 201) return { mounted: true };
    return { mounted: false, location: location(res.headers, dst, "mount blob") };
  }

  /** Starts an upload session; returns its Location (absolute or relative to the registry). */
  async start(
    dst: Reference,
    opts: { signal?: AbortSignal; duringWait?: WaitWrapper } = {},
  ): Promise<string> {
    const res = await this.#transport.request(dst.registry, {
      method: "POST",
      path: `/v2/${dst.repository}/blobs/uploads/`,
      scopes: pushPull(dst),
      reference: dst.name,
      action: "start blob upload",
      signal: opts.signal,
      duringWait: opts.duringWait,
      // A retried POST only leaves an orphan session behind, which registries expire.
      idempotent: true,
    });
    await res.discard();
    return location(res.headers, dst, "start blob upload");
  }

  /**
   * Uploads a blob from a stream: monolithic PUT (streamed, never buffered) or chunked PATCH.
   * On any failure the upload session is deleted and the error rethrown.
   */
  async upload(
    dst: Reference,
    blob: UploadBlob,
    opts: { location?: string; signal?: AbortSignal } = {},
  ): Promise<void> {
    let session: { location: string };
    try {
      session = { location: opts.location ?? await this.start(dst, opts) };
    } catch (e) {
      await blob.stream.cancel().catch(() => {});
      throw e;
    }
    try {
      const chunked = this.#opts.uploadMode === "chunked" || blob.size === undefined;
      if (chunked) await this.#chunked(dst, blob, { session, signal: opts.signal });
      else await this.#monolithic(dst, blob, { location: session.location, signal: opts.signal });
    } catch (e) {
      await blob.stream.cancel().catch(() => {});
      await this.#abandon(dst, session.location);
      throw e;
    }
  }

  /** One streamed PUT of the whole blob into the session. */
  async #monolithic(
    dst: Reference,
    blob: UploadBlob,
    opts: { location: string; signal?: AbortSignal },
  ): Promise<void> {
    const res = await this.#transport.request(dst.registry, {
      method: "PUT",
      path: withDigest(opts.location, blob.digest),
      scopes: pushPull(dst),
      headers: { "content-type": "application/octet-stream" },
      stream: blob.stream,
      reference: `${dst.name}@${blob.digest}`,
      action: "upload blob",
      signal: opts.signal,
      bulk: true,
    });
    await res.discard();
  }

  /**
   * PATCH pieces of `chunkSize` bytes, each to the Location the last answer gave (kept in
   * `session`: a failed upload deletes the latest), then a closing PUT.
   */
  async #chunked(
    dst: Reference,
    blob: UploadBlob,
    opts: { session: { location: string }; signal?: AbortSignal },
  ): Promise<void> {
    const reference = `${dst.name}@${blob.digest}`;
    const { session } = opts;
    let offset = 0;
    for await (const piece of pieces(blob.stream, this.#opts.chunkSize ?? DEFAULT_CHUNK_SIZE)) {
      const res = await this.#transport.request(dst.registry, {
        method: "PATCH",
        path: session.location,
        scopes: pushPull(dst),
        headers: {
          "content-type": "application/octet-stream",
          "content-range": `${offset}-${offset + piece.byteLength - 1}`,
          "content-length": String(piece.byteLength),
        },
        body: piece,
        reference,
        action: "upload blob chunk",
        signal: opts.signal,
        bulk: true,
        // The registry may have taken the piece before failing: restart the blob instead.
        idempotent: false,
      });
      await res.discard();
      session.location = location(res.headers, dst, "upload blob chunk", session.location);
      offset += piece.byteLength;
    }
    const res = await this.#transport.request(dst.registry, {
      method: "PUT",
      path: withDigest(session.location, blob.digest),
      scopes: pushPull(dst),
      reference,
      action: "finish blob upload",
      signal: opts.signal,
      // The registry may move a large blob into place before answering: a blob step.
      bulk: true,
    });
    await res.discard();
  }

  /** Deletes an upload session, ignoring failures (the registry expires it anyway). */
  async #abandon(dst: Reference, session: string): Promise<void> {
    try {
      const res = await this.#transport.request(dst.registry, {
        method: "DELETE",
        path: session,
        scopes: pushPull(dst),
        accept: [400, 404, 405],
        action: "cancel blob upload",
        idempotent: false,
      });
      await res.discard();
    } catch {
      // Best effort.
    }
  }
}

/** The Location header of an answer to `action` (or `fallback`); Protocol when it has none. */
function location(headers: Headers, dst: Reference, action: string, fallback?: string): string {
  const loc = headers.get("location") ?? fallback;
  if (!loc) {
    throw new OciError(
      "Protocol",
      `registry ${dst.registry}: no Location header in the answer to ${action} for ${dst.name}`,
      { registry: dst.registry, reference: dst.name },
    );
  }
  return loc;
}
