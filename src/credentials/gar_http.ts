/**
 * The HTTP side of Google credentials: bounded, timed requests to token endpoints (OAuth2,
 * STS, IAM Credentials, the metadata server, credential-source URLs, AWS IMDS) whose failures
 * become {@linkcode CredentialError}s (AuthFailed) naming the credential source and the host,
 * never a secret: remote error text is shortened and stripped of every secret the request
 * carried, and redirects are not followed (a token request never travels to another origin).
 * @module
 */
import { CredentialError } from "./errors.ts";

/** Largest token-endpoint or credential-source response read (Google's are a few KiB). */
export const MAX_TOKEN_RESPONSE_BYTES = 256 * 1024;
/** Longest piece of a remote error message repeated in our own message. */
const MAX_REMOTE_DETAIL_CHARS = 300;
/** Default per-request timeout. */
export const DEFAULT_TOKEN_TIMEOUT_MS = 10_000;

/** An AuthFailed {@linkcode CredentialError} naming the credential `source`. */
export function garFail(message: string, source: string, cause?: unknown): CredentialError {
  return new CredentialError("AuthFailed", message, { source, cause });
}

/** Options for {@linkcode tokenRequest} and {@linkcode textRequest}. */
export interface TokenRequestOptions {
  /** Where the credentials come from, for messages (e.g. `GOOGLE_APPLICATION_CREDENTIALS file /x`). */
  source: string;
  /** What is being asked for, for messages (e.g. `STS token exchange`). */
  what: string;
  /** Per-request timeout in ms (default 10 s). */
  timeoutMs?: number;
  /** Secrets this request carries; removed from any remote text quoted in an error. */
  secrets?: string[];
}

function redact(text: string, secrets: string[] = []): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join("[redacted]");
  if (out.length > MAX_REMOTE_DETAIL_CHARS) out = out.slice(0, MAX_REMOTE_DETAIL_CHARS) + "…";
  return out;
}

/** The host of `url` for messages (never its path or query, which may carry identifiers). */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "(invalid URL)";
  }
}

async function readBounded(res: Response, opts: TokenRequestOptions, host: string): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_TOKEN_RESPONSE_BYTES) {
      await reader.cancel().catch(() => {});
      throw garFail(
        `${opts.source}: ${opts.what}: ${host} answered more than ${MAX_TOKEN_RESPONSE_BYTES} bytes`,
        opts.source,
      );
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(all);
}

/** The error text of a Google (OAuth2/STS or JSON API) or AWS error body, if there is one. */
function remoteDetail(text: string): string {
  try {
    const j = JSON.parse(text);
    if (typeof j?.error === "string") {
      return [j.error, j.error_description].filter((x) => typeof x === "string").join(": ");
    }
    if (typeof j?.error === "object" && j.error !== null) {
      return [j.error.status, j.error.message].filter((x) => typeof x === "string").join(": ");
    }
  } catch { /* not JSON */ }
  const code = /<Code>([^<]{1,100})<\/Code>/.exec(text);
  return code ? code[1] : "";
}

/**
 * Sends one request and returns the response text when the status is 2xx. Network failures,
 * timeouts, redirects, non-2xx answers and oversized bodies throw AuthFailed errors naming
 * `opts.source`, `opts.what` and the host.
 */
export async function textRequest(
  url: string,
  init: RequestInit,
  opts: TokenRequestOptions,
): Promise<string> {
  const host = hostOf(url);
  let res: Response;
  try {
    res = await fetch(url, {
      ...init,
      redirect: "manual",
      signal: AbortSignal.timeout(opts.timeoutMs ?? DEFAULT_TOKEN_TIMEOUT_MS),
    });
  } catch (e) {
    throw garFail(
      `${opts.source}: ${opts.what}: cannot reach ${host}: ${redact((e as Error).message, opts.secrets)}`,
      opts.source,
    );
  }
  const text = await readBounded(res, opts, host);
  if (res.status >= 300 && res.status < 400) {
    throw garFail(
      `${opts.source}: ${opts.what}: ${host} answered a redirect (HTTP ${res.status}); token requests ` +
        `are not followed to another location, so configure the final URL`,
      opts.source,
    );
  }
  if (!res.ok) {
    const detail = redact(remoteDetail(text), opts.secrets);
    throw garFail(
      `${opts.source}: ${opts.what}: ${host} refused the token request (HTTP ${res.status})${
        detail ? ": " + detail : ""
      }`,
      opts.source,
    );
  }
  return text;
}

/** {@linkcode textRequest} whose 2xx answer must be a JSON object. */
export async function tokenRequest(
  url: string,
  init: RequestInit,
  opts: TokenRequestOptions,
): Promise<Record<string, unknown>> {
  const text = await textRequest(url, init, opts);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw garFail(
      `${opts.source}: ${opts.what}: ${hostOf(url)} returned a response that is not a JSON object`,
      opts.source,
    );
  }
  return json as Record<string, unknown>;
}
