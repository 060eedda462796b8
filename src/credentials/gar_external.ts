/**
 * Workload identity federation and service-account impersonation, the protocols Google
 * documents and its client libraries speak:
 * - the subject token of an `external_account` (a file, a URL, or a signed AWS request);
 * - the STS token exchange (RFC 8693 at `token_url`, form-encoded, optional Basic client auth);
 * - IAM Credentials `generateAccessToken` (JSON, the caller's token as Bearer), for
 *   `service_account_impersonation_url` and `impersonated_service_account` files;
 * - the refresh-token grant of `external_account_authorized_user` files.
 * @module
 */
import type {
  ExternalAccount,
  ExternalAccountAuthorizedUser,
  ExternalCredentialSource,
} from "./gar_credentials.ts";
import { awsSubjectToken } from "./gar_aws.ts";
import { garFail, MAX_TOKEN_RESPONSE_BYTES, textRequest, tokenRequest } from "./gar_http.ts";

/** The scope STS grants before impersonation, and the impersonating credentials' scope. */
export const CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform";
/** STS's endpoint when a credential file names none. */
export const DEFAULT_STS_TOKEN_URL = "https://sts.googleapis.com/v1/token";
const TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";
/** Default and bounds of an impersonated token's lifetime (IAM Credentials' own limits). */
const DEFAULT_LIFETIME_SECONDS = 3600;
const MIN_LIFETIME_SECONDS = 600;
const MAX_LIFETIME_SECONDS = 43_200;
/** Longest lifetime believed from any token response (a remote party sets it). */
const MAX_TRUSTED_LIFETIME_MS = 24 * 3600_000;

/** An access token and when it expires (ms since the epoch). */
export interface GoogleAccessToken {
  /** The OAuth2 access token. */
  token: string;
  /** Expiry in ms since the epoch. */
  expiresAt: number;
}

/** Context shared by the requests of one token fetch. */
export interface ExchangeContext {
  /** The credential source's name, for messages. */
  source: string;
  /** Environment lookup (AWS_* for the aws source). */
  env: (name: string) => string | undefined;
  /** Per-request timeout in ms. */
  timeoutMs?: number;
  /** Current time in ms since the epoch. */
  now: number;
}

function expiryFromSeconds(value: unknown, now: number): number {
  const seconds = typeof value === "number" && Number.isFinite(value) && value > 0 ? value : 3600;
  return now + Math.min(seconds * 1000, MAX_TRUSTED_LIFETIME_MS);
}

/** Reads an OAuth2/STS token response (`access_token`, `expires_in`). */
export function oauthTokenFrom(
  r: Record<string, unknown>,
  what: string,
  ctx: Pick<ExchangeContext, "source" | "now">,
): GoogleAccessToken {
  if (typeof r.access_token !== "string" || r.access_token === "") {
    throw garFail(`${ctx.source}: ${what} returned no access_token`, ctx.source);
  }
  return { token: r.access_token, expiresAt: expiryFromSeconds(r.expires_in, ctx.now) };
}

function pickField(text: string, cs: ExternalCredentialSource, where: string, source: string): string {
  if (cs.format?.type !== "json") return text.trim();
  const field = cs.format.subject_token_field_name!;
  let obj: Record<string, unknown> | undefined;
  try {
    obj = JSON.parse(text);
  } catch { /* reported below */ }
  const value = obj?.[field];
  if (typeof value !== "string" || value === "") {
    throw garFail(`${source}: ${where} holds no string field ${JSON.stringify(field)} (format json)`, source);
  }
  return value;
}

async function readSubjectFile(path: string, source: string): Promise<string> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (e) {
    throw garFail(
      `${source}: cannot read the subject token file ${path} (credential_source.file): ${
        (e as Error).message
      }`,
      source,
    );
  }
  try {
    const buf = new Uint8Array(MAX_TOKEN_RESPONSE_BYTES + 1);
    let size = 0;
    for (;;) {
      const n = await file.read(buf.subarray(size));
      if (n === null) break;
      size += n;
      if (size > MAX_TOKEN_RESPONSE_BYTES) {
        throw garFail(
          `${source}: the subject token file ${path} is larger than ${MAX_TOKEN_RESPONSE_BYTES} bytes`,
          source,
        );
      }
    }
    return new TextDecoder().decode(buf.subarray(0, size));
  } finally {
    file.close();
  }
}

/** The subject token an `external_account` exchanges: from its file, URL or AWS source. */
export async function subjectToken(ext: ExternalAccount, ctx: ExchangeContext): Promise<string> {
  const cs = ext.credential_source;
  let token: string;
  if (cs.environment_id !== undefined) {
    token = await awsSubjectToken(cs, {
      audience: ext.audience,
      env: ctx.env,
      source: ctx.source,
      timeoutMs: ctx.timeoutMs,
      now: new Date(ctx.now),
    });
  } else if (cs.file !== undefined) {
    token = pickField(
      await readSubjectFile(cs.file, ctx.source),
      cs,
      `subject token file ${cs.file}`,
      ctx.source,
    );
  } else {
    const text = await textRequest(cs.url!, { headers: cs.headers ?? {} }, {
      source: ctx.source,
      what: "subject token (credential_source.url)",
      timeoutMs: ctx.timeoutMs,
    });
    token = pickField(text, cs, `the credential_source.url answer`, ctx.source);
  }
  if (token === "") throw garFail(`${ctx.source}: the subject token is empty`, ctx.source);
  return token;
}

function basicAuth(id: string, secret: string): string {
  return "Basic " + btoa(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`);
}

/** The form fields and headers of the STS token exchange for `ext` (exported for tests). */
export function stsRequest(
  ext: ExternalAccount,
  subject: string,
  scopes: string[],
): { body: URLSearchParams; headers: Record<string, string> } {
  const body = new URLSearchParams({
    grant_type: TOKEN_EXCHANGE_GRANT,
    audience: ext.audience,
    scope: (ext.service_account_impersonation_url ? [CLOUD_PLATFORM_SCOPE] : scopes).join(" "),
    requested_token_type: ACCESS_TOKEN_TYPE,
    subject_token: subject,
    subject_token_type: ext.subject_token_type,
  });
  const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded" };
  if (ext.client_id && ext.client_secret) {
    headers.authorization = basicAuth(ext.client_id, ext.client_secret);
  } else if (ext.workforce_pool_user_project) {
    body.set("options", JSON.stringify({ userProject: ext.workforce_pool_user_project }));
  }
  return { body, headers };
}

/**
 * An `external_account`'s access token: subject token → STS exchange → (when the file names
 * one) impersonation of a service account.
 */
export async function externalAccountToken(
  ext: ExternalAccount,
  scopes: string[],
  ctx: ExchangeContext,
): Promise<GoogleAccessToken> {
  const subject = await subjectToken(ext, ctx);
  const { body, headers } = stsRequest(ext, subject, scopes);
  const r = await tokenRequest(ext.token_url ?? DEFAULT_STS_TOKEN_URL, { method: "POST", headers, body }, {
    source: ctx.source,
    what: `STS token exchange for ${ext.audience}`,
    timeoutMs: ctx.timeoutMs,
    secrets: [subject, ext.client_secret ?? ""],
  });
  const federated = oauthTokenFrom(r, "STS token exchange", ctx);
  if (!ext.service_account_impersonation_url) return federated;
  return await impersonate(ext.service_account_impersonation_url, federated.token, {
    scopes,
    lifetimeSeconds: ext.service_account_impersonation?.token_lifetime_seconds,
  }, ctx);
}

/** What {@linkcode impersonate} asks IAM Credentials for. */
export interface ImpersonateOptions {
  /** Scopes of the service account's token. */
  scopes: string[];
  /** Token lifetime in seconds (600–43200; default 3600). */
  lifetimeSeconds?: number;
  /** Delegation chain. */
  delegates?: string[];
}

/** The service account's name in an impersonation URL (`…/serviceAccounts/EMAIL:generateAccessToken`). */
function targetOf(url: string): string {
  const m = /\/serviceAccounts\/([^/:]+):generateAccessToken$/.exec(new URL(url).pathname);
  return m ? decodeURIComponent(m[1]) : new URL(url).host;
}

/** Calls IAM Credentials `generateAccessToken` at `url` with `bearer` as the caller's token. */
export async function impersonate(
  url: string,
  bearer: string,
  opts: ImpersonateOptions,
  ctx: ExchangeContext,
): Promise<GoogleAccessToken> {
  const lifetime = opts.lifetimeSeconds ?? DEFAULT_LIFETIME_SECONDS;
  if (!Number.isInteger(lifetime) || lifetime < MIN_LIFETIME_SECONDS || lifetime > MAX_LIFETIME_SECONDS) {
    throw garFail(
      `${ctx.source}: service_account_impersonation.token_lifetime_seconds must be an integer from ` +
        `${MIN_LIFETIME_SECONDS} to ${MAX_LIFETIME_SECONDS}`,
      ctx.source,
    );
  }
  const payload: Record<string, unknown> = { scope: opts.scopes, lifetime: `${lifetime}s` };
  if (opts.delegates?.length) payload.delegates = opts.delegates;
  const r = await tokenRequest(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${bearer}` },
    body: JSON.stringify(payload),
  }, {
    source: ctx.source,
    what: `impersonation of ${targetOf(url)}`,
    timeoutMs: ctx.timeoutMs,
    secrets: [bearer],
  });
  if (typeof r.accessToken !== "string" || r.accessToken === "") {
    throw garFail(`${ctx.source}: impersonation of ${targetOf(url)} returned no accessToken`, ctx.source);
  }
  const expires = typeof r.expireTime === "string" ? Date.parse(r.expireTime) : NaN;
  const expiresAt = Number.isFinite(expires) && expires > ctx.now
    ? Math.min(expires, ctx.now + MAX_TRUSTED_LIFETIME_MS)
    : ctx.now + lifetime * 1000;
  return { token: r.accessToken, expiresAt };
}

/** An `external_account_authorized_user`'s token: refresh-token grant with Basic client auth. */
export async function externalUserToken(
  creds: ExternalAccountAuthorizedUser,
  ctx: ExchangeContext,
): Promise<GoogleAccessToken> {
  const r = await tokenRequest(creds.token_url, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: basicAuth(creds.client_id, creds.client_secret),
    },
    body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: creds.refresh_token }),
  }, {
    source: ctx.source,
    what: "refresh-token grant",
    timeoutMs: ctx.timeoutMs,
    secrets: [creds.refresh_token, creds.client_secret],
  });
  return oauthTokenFrom(r, "refresh-token grant", ctx);
}
