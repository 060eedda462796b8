/**
 * Registry operations on top of the transport: manifests (HEAD/GET/PUT), blobs (HEAD, streamed
 * GET; uploads and cross-repository mounts through `upload.ts`) and tag listing with
 * pagination (`tag_list.ts`). The client holds what its operations share: the transport, the
 * scopes each repository is read with, and which registries meter manifest pulls.
 * @module
 */

import { repositoryScope } from "./auth.ts";
import { type BlobBuffers, digestLike, sha256Digest, verifiedStream } from "./blobs.ts";
import { OciError } from "./errors.ts";
import {
  contentDigestProblem,
  MANIFEST_ACCEPT,
  MAX_MANIFEST_BYTES,
  type ParsedManifest,
  parseManifest,
} from "./manifest.ts";
import { blobPath, pushPull } from "./paths.ts";
import type { Reference } from "./reference.ts";
import { parseRateLimitHeaders } from "./rate_limit.ts";
import type { RetryPolicy } from "./retry.ts";
import type { WaitWrapper } from "./send.ts";
import { listTags, type ListTagsOptions, repositoryUnknown } from "./tag_list.ts";
import { Transport, type TransportOptions } from "./transport.ts";
import { BlobUploader, type MountResult, type UploadBlob, type UploadOptions } from "./upload.ts";

/** Options for {@linkcode RegistryClient}. */
export interface RegistryClientOptions extends TransportOptions, ListTagsOptions, UploadOptions {}

/** Per-call options. */
export interface CallOptions {
  /** Cancels the call. */
  signal?: AbortSignal;
  /**
   * Wraps each wait of the call's requests before a retry or in a registry's rate-limit pause
   * (see {@linkcode WaitWrapper}): the copier gives back its slot of the transfer budget meanwhile.
   */
  duringWait?: WaitWrapper;
}

/** What a manifest HEAD tells: digest, media type and size. */
export interface ManifestHead {
  /** Manifest digest (from Docker-Content-Digest, or computed from a GET when absent). */
  digest: string;
  /** Media type from Content-Type. */
  mediaType: string;
  /** Size in bytes. */
  size: number;
}

/** A fetched manifest: exact bytes plus what they say. */
export interface FetchedManifest extends ManifestHead {
  /** The manifest bytes exactly as served (digest-verified). */
  bytes: Uint8Array;
  /** The parsed manifest. */
  manifest: ParsedManifest;
}

/** A blob being read: a digest-verified stream. */
export interface BlobStream {
  /** Verified content; fails with DigestMismatch at the end if the bytes are wrong. */
  stream: ReadableStream<Uint8Array>;
  /** Size from the descriptor or Content-Length, when known. */
  size?: number;
}

/**
 * A client for OCI registries with one set of credentials (a resolver mapping each registry
 * host to its secret). Call {@linkcode RegistryClient.close} when done if `caCerts` were given.
 */
export class RegistryClient {
  /** The transport (auth, retries, redirects) this client sends through. */
  readonly transport: Transport;
  readonly #opts: RegistryClientOptions;
  readonly #uploads: BlobUploader;
  readonly #pushes = new Set<string>();
  /** Registries by whether their last manifest GET announced a rate limit (see {@linkcode pullsUnmetered}). */
  readonly #metered = new Map<string, boolean>();

  /** Creates a client. */
  constructor(opts: RegistryClientOptions = {}) {
    this.#opts = opts;
    this.transport = new Transport(opts);
    this.#uploads = new BlobUploader(this.transport, opts);
  }

  /**
   * Reads of `repo`'s repository ask the `pull,push` scope its writes will need, from now on:
   * a destination about to be written then costs one token request, not one for its first
   * HEAD and another for its first upload (go-containerregistry's remote.Write asks push
   * scope up front too). A token server grants what the credentials allow, so a read-only
   * credential still reads. Kept for the client's life: one entry per repository named.
   */
  willPush(repo: Reference): void {
    this.#pushes.add(`${repo.registry}/${repo.repository}`);
  }

  /**
   * Whether `registry`'s last manifest GET through this client carried no rate-limit headers
   * (false before any): a manifest GET it answers then costs no budget, so a copy may read a
   * likely-new tag's manifest with a GET rather than a HEAD first. A registry that counts
   * pulls (Docker Hub, a mirror in front of it) announces its budget on them.
   */
  pullsUnmetered(registry: string): boolean {
    return this.#metered.get(registry) === false;
  }

  /** The scopes of a read of `ref`'s repository: `pull`, or `pull,push` after {@linkcode willPush}. */
  #readScopes(ref: Reference): string[] {
    return this.#pushes.has(`${ref.registry}/${ref.repository}`)
      ? pushPull(ref)
      : [repositoryScope(ref.repository, ["pull"])];
  }

  /** Attempts per operation, including the first (shared with the copier's blob restarts). */
  get maxAttempts(): number {
    return this.transport.retry.maxAttempts;
  }

  /** The retry policy of this client's requests; the copier restarts blob transfers with it. */
  get retry(): RetryPolicy {
    return this.transport.retry;
  }

  /** Releases the HTTP client that holds the custom CA bundle. */
  close(): void {
    this.transport.close();
  }

  /** Disposes the client (same as {@linkcode RegistryClient.close}). */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * HEADs a manifest by tag or digest: undefined when it does not exist (404). When the
   * registry omits Docker-Content-Digest the manifest is fetched and hashed.
   */
  async headManifest(ref: Reference, opts: CallOptions = {}): Promise<ManifestHead | undefined> {
    const res = await this.transport.request(ref.registry, {
      method: "HEAD",
      path: `/v2/${ref.repository}/manifests/${ref.identifier}`,
      scopes: this.#readScopes(ref),
      headers: { accept: MANIFEST_ACCEPT },
      accept: [404],
      reference: ref.toString(),
      action: "check manifest",
      signal: opts.signal,
      duringWait: opts.duringWait,
    });
    await res.discard();
    if (res.status === 404) return undefined;
    const digest = res.headers.get("docker-content-digest") ?? ref.digest;
    const problem = digest ? contentDigestProblem(digest) : undefined;
    if (problem) {
      throw new OciError(
        "Protocol",
        `registry ${ref.registry}: manifest ${ref}: Docker-Content-Digest ${problem}`,
        {
          registry: ref.registry,
          reference: ref.toString(),
        },
      );
    }
    const mediaType = (res.headers.get("content-type") ?? "").split(";")[0].trim();
    const size = Number(res.headers.get("content-length") ?? "NaN");
    if (!digest || !Number.isFinite(size)) {
      const got = await this.getManifest(ref, opts);
      return { digest: got.digest, mediaType: got.mediaType, size: got.size };
    }
    return { digest, mediaType, size };
  }

  /**
   * GETs a manifest, keeping its bytes exactly. The content is hashed and checked against the
   * reference's digest (or Docker-Content-Digest); schema 1 is refused.
   */
  async getManifest(ref: Reference, opts: CallOptions & { size?: number } = {}): Promise<FetchedManifest> {
    const res = await this.transport.request(ref.registry, {
      method: "GET",
      path: `/v2/${ref.repository}/manifests/${ref.identifier}`,
      scopes: this.#readScopes(ref),
      headers: { accept: MANIFEST_ACCEPT },
      reference: ref.toString(),
      action: "pull manifest",
      signal: opts.signal,
      duringWait: opts.duringWait,
    });
    this.#metered.set(ref.registry, parseRateLimitHeaders(res.headers) !== undefined);
    const context = `registry ${ref.registry}: manifest ${ref}`;
    const where = { registry: ref.registry, reference: ref.toString() };
    // A descriptor's size bounds the read: a registry cannot make a small child a large one.
    const sized = opts.size !== undefined && opts.size <= MAX_MANIFEST_BYTES;
    const limit = sized ? opts.size! : MAX_MANIFEST_BYTES;
    const tooLarge = () =>
      sized
        ? new OciError(
          "DigestMismatch",
          `${context} is larger than the ${limit} bytes its descriptor declares`,
          where,
        )
        : new OciError("ManifestTooLarge", `${context} is larger than ${MAX_MANIFEST_BYTES} bytes`, where);
    const declared = Number(res.headers.get("content-length") ?? "0");
    if (declared > limit) {
      await res.discard();
      throw tooLarge();
    }
    const bytes = await res.bytes(limit, tooLarge);
    if (sized && bytes.byteLength !== limit) {
      throw new OciError(
        "DigestMismatch",
        `${context} is ${bytes.byteLength} bytes, its descriptor declares ${limit}`,
        where,
      );
    }
    // Refuse schema 1 / unknown types first: a signed schema 1 digest is not sha256(bytes).
    let manifest: ParsedManifest | undefined;
    let invalid: unknown;
    try {
      manifest = parseManifest(bytes, { contentType: res.headers.get("content-type"), context });
    } catch (e) {
      if (e instanceof OciError && e.reason === "UnsupportedMediaType") throw e;
      invalid = e;
    }
    const header = res.headers.get("docker-content-digest");
    const expected = ref.digest ?? header ?? undefined;
    const computed = expected ? digestLike(expected, bytes) : sha256Digest(bytes);
    if (expected && computed !== expected) {
      throw new OciError(
        "DigestMismatch",
        `${context}: content digest is ${computed}, expected ${expected}`,
        { registry: ref.registry, reference: ref.toString() },
      );
    }
    if (!manifest) throw invalid;
    return { digest: computed, mediaType: manifest.mediaType, size: bytes.byteLength, bytes, manifest };
  }

  /** PUTs manifest bytes under the reference's tag (or digest); returns the stored digest. */
  async putManifest(
    ref: Reference,
    manifest: { bytes: Uint8Array; mediaType: string },
    opts: CallOptions = {},
  ): Promise<string> {
    const target = ref.tag ?? ref.digest;
    if (!target) {
      throw new OciError("InvalidReference", `cannot push ${ref}: it names no tag or digest`, {
        reference: ref.toString(),
      });
    }
    const res = await this.transport.request(ref.registry, {
      method: "PUT",
      path: `/v2/${ref.repository}/manifests/${target}`,
      scopes: pushPull(ref),
      headers: { "content-type": manifest.mediaType },
      body: manifest.bytes,
      reference: ref.toString(),
      action: "push manifest",
      signal: opts.signal,
      duringWait: opts.duringWait,
    });
    await res.discard();
    return res.headers.get("docker-content-digest") ??
      (ref.digest ? digestLike(ref.digest, manifest.bytes) : sha256Digest(manifest.bytes));
  }

  /** HEADs a blob in a repository: its size, or undefined when absent. */
  async headBlob(
    repo: Reference,
    digest: string,
    opts: CallOptions = {},
  ): Promise<{ size: number } | undefined> {
    const res = await this.transport.request(repo.registry, {
      method: "HEAD",
      path: blobPath(repo, digest),
      scopes: this.#readScopes(repo),
      accept: [404],
      reference: `${repo.name}@${digest}`,
      action: "check blob",
      signal: opts.signal,
    });
    await res.discard();
    if (res.status === 404) return undefined;
    return { size: Number(res.headers.get("content-length") ?? "0") };
  }

  /**
   * Streams a blob, verifying its digest (and size when given) on the fly. Redirects to
   * storage hosts are followed without Authorization. With `recycle` the stream's chunks are
   * lent, not given ({@linkcode BlobBuffers}): for a stream handed straight to
   * {@linkcode RegistryClient.uploadBlob}, as a blob copy does.
   */
  async getBlob(
    repo: Reference,
    digest: string,
    opts: CallOptions & { size?: number; onChunk?: (bytes: number) => void; recycle?: BlobBuffers } = {},
  ): Promise<BlobStream> {
    const reference = `${repo.name}@${digest}`;
    const res = await this.transport.request(repo.registry, {
      method: "GET",
      path: blobPath(repo, digest),
      scopes: this.#readScopes(repo),
      reference,
      action: "pull blob",
      signal: opts.signal,
      duringWait: opts.duringWait,
      bulk: true,
    });
    const length = res.headers.get("content-length");
    const size = opts.size ?? (length !== null ? Number(length) : undefined);
    const body = res.reader();
    if (!body) {
      throw new OciError("Protocol", `registry ${repo.registry}: empty response for blob ${reference}`, {
        registry: repo.registry,
        reference,
      });
    }
    const stream = verifiedStream(body, digest, {
      size,
      context: `registry ${repo.registry}: blob ${reference}`,
      onChunk: opts.onChunk,
      recycle: opts.recycle,
    });
    return size === undefined ? { stream } : { stream, size };
  }

  /**
   * Tries a cross-repository mount of `digest` from `fromRepository` (same registry). On
   * success nothing is transferred; otherwise the registry's fresh upload session is returned.
   */
  mountBlob(
    dst: Reference,
    digest: string,
    opts: CallOptions & { fromRepository: string },
  ): Promise<MountResult> {
    return this.#uploads.mount(dst, digest, opts);
  }

  /** Starts an upload session; returns its Location (absolute or relative to the registry). */
  startUpload(dst: Reference, opts: CallOptions = {}): Promise<string> {
    return this.#uploads.start(dst, opts);
  }

  /**
   * Uploads a blob from a stream: monolithic PUT (streamed, never buffered) or chunked PATCH
   * (the client's `uploadMode`, or a blob of unknown size). On any failure the upload session
   * is deleted and the error rethrown.
   */
  uploadBlob(
    dst: Reference,
    blob: UploadBlob,
    opts: CallOptions & { location?: string } = {},
  ): Promise<void> {
    return this.#uploads.upload(dst, blob, opts);
  }

  /**
   * Whether the registry says `repo`'s repository does not exist: one `GET …/tags/list?n=1`,
   * true only for HTTP 404 with an error body whose codes are all `NAME_UNKNOWN`
   * ({@linkcode namesUnknownRepository}). Any other answer — tags or none, 401/403, another
   * 404, a broken body, a failed request — is false: the caller then asks as if it had not
   * probed; never throws. Sent with the scopes of the repository's
   * other reads (`pull,push` after {@linkcode willPush}); a tag list is not a counted pull.
   */
  repositoryUnknown(repo: Reference, opts: CallOptions = {}): Promise<boolean> {
    return repositoryUnknown(this.transport, repo, { scopes: this.#readScopes(repo), signal: opts.signal });
  }

  /**
   * Lists a repository's tags, following `Link: <…>; rel="next"` pagination. `pageSize`
   * sets `n` on the first request. A registry cannot make the listing endless or huge: it is
   * bounded in tags, bytes and pages (TagListTooLarge), and a page that repeats an earlier
   * URL or only tags already listed is a loop (Protocol). Tags come back once each, in order.
   * The bounds are the call's, else the client's, else the defaults.
   */
  listTags(
    repo: Reference,
    opts: CallOptions & ListTagsOptions & { pageSize?: number } = {},
  ): Promise<string[]> {
    return listTags(this.transport, repo, {
      scopes: this.#readScopes(repo),
      signal: opts.signal,
      pageSize: opts.pageSize,
      maxTags: opts.maxTags ?? this.#opts.maxTags,
      maxTagListBytes: opts.maxTagListBytes ?? this.#opts.maxTagListBytes,
    });
  }
}
