/**
 * Typed errors of the OCI engine. Every failure carries a stable `reason` that callers turn
 * into condition reasons, Events and metrics labels; messages name the registry and the
 * reference and never contain credentials.
 * @module
 */

/** The stable reasons an {@linkcode OciError} can carry. */
export type OciErrorReason =
  | "Unauthorized"
  | "Forbidden"
  | "NotFound"
  | "RateLimited"
  | "DigestMismatch"
  | "UnsupportedMediaType"
  | "ManifestTooLarge"
  | "ManifestInvalid"
  | "NoMatchingPlatform"
  | "InvalidReference"
  | "InsecureRegistry"
  | "Network"
  | "Timeout"
  | "ServerError"
  | "TooManyRedirects"
  | "Protocol"
  | "Aborted"
  | "ForeignChallenge"
  | "ManifestTreeTooLarge"
  | "TagListTooLarge";

/** Options for {@linkcode OciError}. */
export interface OciErrorOptions {
  /** Registry host the failure happened at, e.g. "ghcr.io" or "127.0.0.1:5000". */
  registry?: string;
  /** The reference (or repository) being worked on, as a user would write it. */
  reference?: string;
  /** HTTP status of the response that caused the error, when there was one. */
  status?: number;
  /** Whether retrying the whole operation may help (network, timeout, 5xx, 429). */
  retryable?: boolean;
  /** Underlying error. */
  cause?: unknown;
}

/** An error from a registry operation, with a stable `reason` callers can switch on. */
export class OciError extends Error {
  /** Stable machine-readable reason, e.g. "Unauthorized" or "DigestMismatch". */
  readonly reason: OciErrorReason;
  /** Registry host the failure happened at. */
  readonly registry?: string;
  /** Reference being worked on. */
  readonly reference?: string;
  /** HTTP status, when the error came from a response. */
  readonly status?: number;
  /** Whether retrying the operation may help. */
  readonly retryable: boolean;

  /**
   * Creates an error with a reason and a message a user can act on. Query strings and user
   * info of URLs in the message (and in the cause's) are removed: a token request's
   * `account=` or a pre-signed storage URL never reaches status, Events or logs.
   */
  constructor(reason: OciErrorReason, message: string, opts: OciErrorOptions = {}) {
    super(redactUrls(message), opts.cause === undefined ? undefined : { cause: redactedCause(opts.cause) });
    this.name = "OciError";
    this.reason = reason;
    this.registry = opts.registry;
    this.reference = opts.reference;
    this.status = opts.status;
    this.retryable = opts.retryable ?? false;
  }
}

/** The messages of an error and its causes, joined (Deno's fetch hides the reason in `cause`). */
export function describeCause(e: unknown): string {
  const parts: string[] = [];
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur; i++) {
    const msg = cur instanceof Error ? cur.message : String(cur);
    if (msg && !parts.includes(msg)) parts.push(msg);
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join(": ");
}

const URL_QUERY =
  /\b([a-z][a-z0-9+.-]*:\/\/)(?:[^\s/?#@"'<>()]*@)?([^\s?#"'<>()]*)(?:\?[^\s#"'<>()]*[^\s#"'<>():,.;])?/gi;

/**
 * Removes the query string and any `user:password@` from every URL in a text, keeping scheme,
 * host and path: `https://auth/token?account=alice` → `https://auth/token`.
 */
export function redactUrls(text: string): string {
  return text.replace(URL_QUERY, "$1$2");
}

/** The cause itself, or a plain Error with redacted messages when its messages carry URL secrets. */
function redactedCause(cause: unknown): unknown {
  const text = describeCause(cause);
  const clean = redactUrls(text);
  return clean === text ? cause : new Error(clean);
}

/** Registry API error codes (distribution spec) mapped to our reasons. */
const CODE_REASONS: Record<string, OciErrorReason> = {
  UNAUTHORIZED: "Unauthorized",
  DENIED: "Forbidden",
  NAME_UNKNOWN: "NotFound",
  MANIFEST_UNKNOWN: "NotFound",
  BLOB_UNKNOWN: "NotFound",
  TOOMANYREQUESTS: "RateLimited",
  DIGEST_INVALID: "DigestMismatch",
  SIZE_INVALID: "DigestMismatch",
  MANIFEST_INVALID: "ManifestInvalid",
  MANIFEST_BLOB_UNKNOWN: "ManifestInvalid",
  MANIFEST_UNVERIFIED: "ManifestInvalid",
  UNSUPPORTED: "UnsupportedMediaType",
};

/** One entry of a registry's JSON error body. */
export interface RegistryErrorDetail {
  /** Distribution error code, e.g. "MANIFEST_UNKNOWN". */
  code: string;
  /** Human message from the registry. */
  message: string;
}

/** Extracts `{errors:[{code,message}]}` from a registry error body; tolerant of anything else. */
export function parseRegistryErrors(body: string): RegistryErrorDetail[] {
  try {
    const parsed = JSON.parse(body) as unknown;
    if (typeof parsed !== "object" || parsed === null) return [];
    const errors = (parsed as { errors?: unknown }).errors;
    if (!Array.isArray(errors)) return [];
    const out: RegistryErrorDetail[] = [];
    for (const e of errors) {
      if (typeof e !== "object" || e === null) continue;
      const code = String((e as { code?: unknown }).code ?? "");
      const message = String((e as { message?: unknown }).message ?? "");
      out.push({ code, message });
    }
    return out;
  } catch {
    return [];
  }
}

/** Chooses a reason for an HTTP error status, refined by the registry's error codes. */
export function reasonForStatus(
  status: number,
  details: RegistryErrorDetail[] = [],
): OciErrorReason {
  for (const d of details) {
    const r = CODE_REASONS[d.code];
    // A 401 that the registry labels DENIED is still an authentication problem for us.
    if (r && !(status === 401 && r === "Forbidden")) return r;
  }
  if (status === 401) return "Unauthorized";
  if (status === 403) return "Forbidden";
  if (status === 404) return "NotFound";
  if (status === 415) return "UnsupportedMediaType";
  if (status === 429) return "RateLimited";
  if (status >= 500) return "ServerError";
  return "Protocol";
}

/** Words used in messages for each reason, so messages read naturally. */
const REASON_WORDS: Record<OciErrorReason, string> = {
  Unauthorized: "unauthorized",
  Forbidden: "access denied",
  NotFound: "not found",
  RateLimited: "rate limited",
  DigestMismatch: "digest mismatch",
  UnsupportedMediaType: "unsupported media type",
  ManifestTooLarge: "manifest too large",
  ManifestInvalid: "manifest rejected",
  NoMatchingPlatform: "no matching platform",
  InvalidReference: "invalid reference",
  InsecureRegistry: "insecure registry",
  Network: "network error",
  Timeout: "timed out",
  ServerError: "server error",
  TooManyRedirects: "too many redirects",
  Protocol: "unexpected response",
  Aborted: "aborted",
  ForeignChallenge: "credentials asked for by another host",
  ManifestTreeTooLarge: "image too large",
  TagListTooLarge: "tag list too large",
};

/** Builds an {@linkcode OciError} from a failed response's status and (already read) body text. */
export function errorFromResponse(
  status: number,
  bodyText: string,
  ctx: { registry: string; reference?: string; action: string },
): OciError {
  const details = parseRegistryErrors(bodyText);
  const reason = reasonForStatus(status, details);
  const what = ctx.reference ? `${ctx.action} ${ctx.reference}` : ctx.action;
  const detail = details.length > 0
    ? ": " + details.map((d) => d.message ? `${d.code}: ${d.message}` : d.code).join("; ")
    : "";
  return new OciError(
    reason,
    `registry ${ctx.registry}: ${REASON_WORDS[reason]} (HTTP ${status}) while trying to ${what}${detail}`,
    {
      registry: ctx.registry,
      reference: ctx.reference,
      status,
      retryable: reason === "ServerError" || reason === "RateLimited",
    },
  );
}

/**
 * The error for a 401 from a host other than the registry's (a redirect target, an absolute
 * upload Location, a Link): credentials are bound to the registry's origin, so such a
 * challenge is never answered (containerd keys challenges by the responding host too).
 */
export function foreignChallenge(
  state: { registry: string; base: URL },
  from: URL,
  spec: { action: string; reference?: string },
): OciError {
  const what = spec.reference ? `${spec.action} ${spec.reference}` : spec.action;
  return new OciError(
    "ForeignChallenge",
    `registry ${state.registry}: ${from.host} asked for credentials (HTTP 401) while trying to ${what}, ` +
      `but it is not the registry (${state.base.host}); credentials are only sent to the registry ` +
      "and to the token realm the registry itself names",
    { registry: state.registry, reference: spec.reference, status: 401 },
  );
}
