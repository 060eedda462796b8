/**
 * Registry operations on top of the transport: manifests (HEAD/GET/PUT), blobs (HEAD, streamed
 * GET, monolithic or chunked upload, cross-repository mount) and tag listing with pagination.
 * @module
 */

import { repositoryScope } from "./auth.ts";
import { type BlobBuffers, digestLike, pieces, sha256Digest, verifiedStream } from "./blobs.ts";
import { OciError, parseRegistryErrors } from "./errors.ts";
import {
  contentDigestProblem,
  MANIFEST_ACCEPT,
  MAX_MANIFEST_BYTES,
  type ParsedManifest,
  parseManifest,
} from "./manifest.ts";
import { isValidTag, type Reference } from "./reference.ts";
import { nextLinkTarget } from "./tags.ts";
import { parseRateLimitHeaders } from "./rate_limit.ts";
import type { RetryPolicy } from "./retry.ts";
import { Transport, type TransportOptions } from "./transport.ts";

/** Options for {@linkcode RegistryClient}. */
export interface RegistryClientOptions extends TransportOptions, ListTagsOptions {
  /**
   * How blobs are uploaded: one streamed PUT ("monolithic", default) or PATCH pieces of
   * `chunkSize` bytes ("chunked", for registries that require it).
   */
  uploadMode?: "monolithic" | "chunked";
  /** Piece size for chunked uploads (default 8 MiB). */
  chunkSize?: number;
}

/** Per-call options. */
export interface CallOptions {
  /** Cancels the call. */
  signal?: AbortSignal;
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

/** Bounds of a tag listing, per client or per call. */
export interface ListTagsOptions {
  /** Most tags a listing may return (default {@linkcode DEFAULT_MAX_TAGS}). */
  maxTags?: number;
  /** Most bytes a listing may read over all its pages (default {@linkcode DEFAULT_MAX_TAG_LIST_BYTES}). */
  maxTagListBytes?: number;
}

/** Most tags one listing returns (100 000). */
export const DEFAULT_MAX_TAGS = 100_000;
/** Most bytes one tag listing reads over all its pages (16 MiB; 100 000 tags take about 3 MiB). */
export const DEFAULT_MAX_TAG_LIST_BYTES = 16 * 1024 * 1024;
/** Most pages one tag listing follows. */
export const MAX_TAG_PAGES = 10_000;

/** Result of a cross-repository mount attempt. */
export type MountResult = { mounted: true } | { mounted: false; location: string };

const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;

function pushPull(ref: Reference): string[] {
  return [repositoryScope(ref.repository, ["pull", "push"])];
}

/**
 * A client for OCI registries with one set of credentials (a resolver mapping each registry
 * host to its secret). Call {@linkcode RegistryClient.close} when done if `caCerts` were given.
 */
export class RegistryClient {
  /** The transport (auth, retries, redirects) this client sends through. */
  readonly transport: Transport;
  readonly #opts: RegistryClientOptions;
  readonly #pushes = new Set<string>();
  /** Registries by whether their last manifest GET announced a rate limit (see {@linkcode pullsUnmetered}). */
  readonly #metered = new Map<string, boolean>();

  /** Creates a client. */
  constructor(opts: RegistryClientOptions = {}) {
    this.#opts = opts;
    this.transport = new Transport(opts);
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
  async mountBlob(
    dst: Reference,
    digest: string,
    opts: CallOptions & { fromRepository: string },
  ): Promise<MountResult> {
    blobPath(dst, digest);
    const params = new URLSearchParams({ mount: digest, from: opts.fromRepository });
    const res = await this.transport.request(dst.registry, {
      method: "POST",
      path: `/v2/${dst.repository}/blobs/uploads/?${params}`,
      scopes: [...pushPull(dst), repositoryScope(opts.fromRepository, ["pull"])],
      reference: `${dst.name}@${digest}`,
      action: "mount blob",
      signal: opts.signal,
    });
    await res.discard();
    if (res.status === 201) return { mounted: true };
    return { mounted: false, location: this.#location(res.headers, dst, "mount blob") };
  }

  /** Starts an upload session; returns its Location (absolute or relative to the registry). */
  async startUpload(dst: Reference, opts: CallOptions = {}): Promise<string> {
    const res = await this.transport.request(dst.registry, {
      method: "POST",
      path: `/v2/${dst.repository}/blobs/uploads/`,
      scopes: pushPull(dst),
      reference: dst.name,
      action: "start blob upload",
      signal: opts.signal,
      // A retried POST only leaves an orphan session behind, which registries expire.
      idempotent: true,
    });
    await res.discard();
    return this.#location(res.headers, dst, "start blob upload");
  }

  /**
   * Uploads a blob from a stream: monolithic PUT (streamed, never buffered) or chunked PATCH.
   * On any failure the upload session is deleted and the error rethrown.
   */
  async uploadBlob(
    dst: Reference,
    blob: { digest: string; stream: ReadableStream<Uint8Array>; size?: number },
    opts: CallOptions & { location?: string } = {},
  ): Promise<void> {
    let location = opts.location;
    try {
      location ??= await this.startUpload(dst, opts);
    } catch (e) {
      await blob.stream.cancel().catch(() => {});
      throw e;
    }
    const reference = `${dst.name}@${blob.digest}`;
    try {
      const chunked = this.#opts.uploadMode === "chunked" || blob.size === undefined;
      if (!chunked) {
        const url = withDigest(location, blob.digest);
        const res = await this.transport.request(dst.registry, {
          method: "PUT",
          path: url,
          scopes: pushPull(dst),
          headers: { "content-type": "application/octet-stream" },
          stream: blob.stream,
          reference,
          action: "upload blob",
          signal: opts.signal,
          bulk: true,
        });
        await res.discard();
        return;
      }
      let offset = 0;
      for await (const piece of pieces(blob.stream, this.#opts.chunkSize ?? DEFAULT_CHUNK_SIZE)) {
        const res = await this.transport.request(dst.registry, {
          method: "PATCH",
          path: location,
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
        location = this.#location(res.headers, dst, "upload blob chunk", location);
        offset += piece.byteLength;
      }
      const res = await this.transport.request(dst.registry, {
        method: "PUT",
        path: withDigest(location, blob.digest),
        scopes: pushPull(dst),
        reference,
        action: "finish blob upload",
        signal: opts.signal,
        // The registry may move a large blob into place before answering: a blob step.
        bulk: true,
      });
      await res.discard();
    } catch (e) {
      await blob.stream.cancel().catch(() => {});
      await this.#abandon(dst, location);
      throw e;
    }
  }

  /** Deletes an upload session, ignoring failures (the registry expires it anyway). */
  async #abandon(dst: Reference, location: string): Promise<void> {
    try {
      const res = await this.transport.request(dst.registry, {
        method: "DELETE",
        path: location,
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

  #location(headers: Headers, dst: Reference, action: string, fallback?: string): string {
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

  /**
   * Whether the registry says `repo`'s repository does not exist: one `GET …/tags/list?n=1`,
   * true only for HTTP 404 with an error body whose codes are all `NAME_UNKNOWN`
   * ({@linkcode namesUnknownRepository}). Any other answer — tags or none, 401/403, another
   * 404, a broken body, a failed request — is false: the caller then asks as if it had not
   * probed; never throws. Sent with the scopes of the repository's
   * other reads (`pull,push` after {@linkcode willPush}); a tag list is not a counted pull.
   */
  async repositoryUnknown(repo: Reference, opts: CallOptions = {}): Promise<boolean> {
    try {
      const res = await this.transport.request(repo.registry, {
        method: "GET",
        path: `/v2/${repo.repository}/tags/list?n=1`,
        scopes: this.#readScopes(repo),
        headers: { accept: "application/json" },
        accept: [404],
        reference: repo.name,
        action: "list tags of",
        signal: opts.signal,
      });
      if (res.status !== 404) {
        await res.discard();
        return false;
      }
      return namesUnknownRepository(res.status, await res.text(REPOSITORY_PROBE_BODY_LIMIT));
    } catch {
      return false;
    }
  }

  /**
   * Lists a repository's tags, following `Link: <…>; rel="next"` pagination. `pageSize`
   * sets `n` on the first request. A registry cannot make the listing endless or huge: it is
   * bounded in tags, bytes and pages (TagListTooLarge), and a page that repeats an earlier
   * URL or only tags already listed is a loop (Protocol). Tags come back once each, in order.
   */
  async listTags(
    repo: Reference,
    opts: CallOptions & ListTagsOptions & { pageSize?: number } = {},
  ): Promise<string[]> {
    const maxTags = opts.maxTags ?? this.#opts.maxTags ?? DEFAULT_MAX_TAGS;
    const maxBytes = opts.maxTagListBytes ?? this.#opts.maxTagListBytes ?? DEFAULT_MAX_TAG_LIST_BYTES;
    const where = { registry: repo.registry, reference: repo.name };
    const tooLarge = (what: string) =>
      new OciError(
        "TagListTooLarge",
        `registry ${repo.registry}: the tag list of ${repo.name} has ${what}; ` +
          "list fewer tags (a narrower tag filter does not help: the registry sends them all)",
        where,
      );
    const loops = () =>
      new OciError(
        "Protocol",
        `registry ${repo.registry}: tag list pagination for ${repo.name} loops`,
        where,
      );
    const tags = new Set<string>();
    let bytesRead = 0;
    let path: string | undefined = `/v2/${repo.repository}/tags/list` +
      (opts.pageSize ? `?n=${opts.pageSize}` : "");
    const seen = new Set<string>();
    while (path) {
      if (seen.has(path)) throw loops();
      if (seen.size >= MAX_TAG_PAGES) throw tooLarge(`more than ${MAX_TAG_PAGES} pages`);
      seen.add(path);
      const res = await this.transport.request(repo.registry, {
        method: "GET",
        path,
        scopes: this.#readScopes(repo),
        headers: { accept: "application/json" },
        reference: repo.name,
        action: "list tags of",
        signal: opts.signal,
      });
      const page = await res.bytes(maxBytes - bytesRead, () => tooLarge(`more than ${maxBytes} bytes`));
      bytesRead += page.byteLength;
      let body: { tags?: unknown };
      try {
        body = JSON.parse(new TextDecoder().decode(page));
      } catch {
        throw new OciError(
          "Protocol",
          `registry ${repo.registry}: the tag list of ${repo.name} is not JSON`,
          where,
        );
      }
      const before = tags.size;
      const listed = Array.isArray(body.tags) ? body.tags : [];
      // Only valid tags: a tag goes into a manifest URL, so `../x` from a registry is dropped.
      for (const t of listed) if (typeof t === "string" && isValidTag(t)) tags.add(t);
      if (tags.size > maxTags) throw tooLarge(`more than ${maxTags} tags`);
      const next = nextLinkTarget(res.headers.get("link"));
      // An empty page ends the listing; a page of only known tags is a loop with fresh URLs.
      if (!next || listed.length === 0) break;
      if (tags.size === before) throw loops();
      path = new URL(next, res.url).href;
    }
    return [...tags];
  }
}

/** Most bytes of a repository probe's 404 body read (a `NAME_UNKNOWN` body takes about 150). */
export const REPOSITORY_PROBE_BODY_LIMIT = 4096;

/**
 * Whether a tag-list answer says the repository does not exist: status 404 and an OCI error
 * body (`{"errors":[…]}`) whose every code is `NAME_UNKNOWN`. A body cut at the read limit is
 * not JSON, so not such an answer.
 */
export function namesUnknownRepository(status: number, body: string): boolean {
  if (status !== 404) return false;
  const errors = parseRegistryErrors(body);
  return errors.length > 0 && errors.every((e) => e.code === "NAME_UNKNOWN");
}

/**
 * `/v2/<repository>/blobs/<digest>`, refusing a digest that is not one (it goes into the URL:
 * `../../` in its place would reach another path with this registry's credentials).
 */
function blobPath(repo: Reference, digest: string): string {
  const problem = contentDigestProblem(digest);
  if (problem) {
    throw new OciError("InvalidReference", `invalid blob digest for ${repo.name}: ${problem}`, {
      registry: repo.registry,
      reference: repo.name,
    });
  }
  return `/v2/${repo.repository}/blobs/${digest}`;
}

/** Adds `digest=` to an upload Location, keeping its other query parameters. */
export function withDigest(location: string, digest: string): string {
  const absolute = /^[a-z][a-z0-9+.-]*:\/\//i.test(location);
  const url = new URL(location, "http://placeholder.invalid");
  url.searchParams.set("digest", digest);
  return absolute ? url.href : `${url.pathname}${url.search}`;
}
