/**
 * A repository's tags: the paginated listing (bounded in tags, bytes and pages whatever the
 * registry sends) and the one-request probe of whether the repository exists at all.
 * `RegistryClient.listTags` and `RegistryClient.repositoryUnknown` send them with the client's
 * scopes.
 * @module
 */

import { OciError, parseRegistryErrors } from "./errors.ts";
import { isValidTag, type Reference } from "./reference.ts";
import { nextLinkTarget } from "./tags.ts";
import type { Transport } from "./transport.ts";

/** Bounds of a tag listing, per client or per call. */
export interface ListTagsOptions {
  /** Most tags a listing may return (default {@linkcode DEFAULT_MAX_TAGS}). */
  maxTags?: number;
  /** Most bytes a listing may read over all its pages (default {@linkcode DEFAULT_MAX_TAG_LIST_BYTES}). */
  maxTagListBytes?: number;
}

/** How one listing or probe is sent. */
export interface TagRequestOptions {
  /** The scopes to ask for (the client's read scopes of the repository). */
  scopes: string[];
  /** Cancels the request. */
  signal?: AbortSignal;
}

/** Most tags one listing returns (100 000). */
export const DEFAULT_MAX_TAGS = 100_000;
/** Most bytes one tag listing reads over all its pages (16 MiB; 100 000 tags take about 3 MiB). */
export const DEFAULT_MAX_TAG_LIST_BYTES = 16 * 1024 * 1024;
/** Most pages one tag listing follows. */
export const MAX_TAG_PAGES = 10_000;
/** Most bytes of a repository probe's 404 body read (a `NAME_UNKNOWN` body takes about 150). */
export const REPOSITORY_PROBE_BODY_LIMIT = 4096;

/**
 * Whether the registry says `repo`'s repository does not exist: one `GET …/tags/list?n=1`,
 * true only for HTTP 404 with an error body whose codes are all `NAME_UNKNOWN`
 * ({@linkcode namesUnknownRepository}). Any other answer — tags or none, 401/403, another
 * 404, a broken body, a failed request — is false: the caller then asks as if it had not
 * probed; never throws.
 */
export async function repositoryUnknown(
  transport: Transport,
  repo: Reference,
  opts: TagRequestOptions,
): Promise<boolean> {
  try {
    const res = await transport.request(repo.registry, {
      method: "GET",
      path: `/v2/${repo.repository}/tags/list?n=1`,
      scopes: opts.scopes,
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
 * Lists a repository's tags, following `Link: <…>; rel="next"` pagination. `pageSize`
 * sets `n` on the first request. A registry cannot make the listing endless or huge: it is
 * bounded in tags, bytes and pages (TagListTooLarge), and a page that repeats an earlier
 * URL or only tags already listed is a loop (Protocol). Tags come back once each, in order.
 */
export async function listTags(
  transport: Transport,
  repo: Reference,
  opts: TagRequestOptions & ListTagsOptions & { pageSize?: number },
): Promise<string[]> {
  const maxTags = opts.maxTags ?? DEFAULT_MAX_TAGS;
  const maxBytes = opts.maxTagListBytes ?? DEFAULT_MAX_TAG_LIST_BYTES;
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
    const res = await transport.request(repo.registry, {
      method: "GET",
      path,
      scopes: opts.scopes,
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
