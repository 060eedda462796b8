/**
 * The AWS credential source of workload identity federation (`environment_id: "aws1"`): the
 * subject token is an AWS STS `GetCallerIdentity` request signed with AWS Signature Version 4,
 * serialized as JSON and URL-encoded, which Google's STS replays to AWS to learn the caller.
 * Region and credentials come from the environment (`AWS_REGION`/`AWS_DEFAULT_REGION`,
 * `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`) or else from the instance
 * metadata service named in the credential file (IMDSv2 when `imdsv2_session_token_url` is set),
 * as Google's client libraries do. The secret key never leaves this process: only a signature.
 * @module
 */
import { hmac as hmacOf } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { sha256Hex } from "../oci/digest.ts";
import type { ExternalCredentialSource } from "./gar_credentials.ts";
import { garFail, textRequest } from "./gar_http.ts";

/** AWS credentials used to sign the GetCallerIdentity request. */
export interface AwsSigningCredentials {
  /** Access key id. */
  accessKeyId: string;
  /** Secret access key (signs; never sent). */
  secretAccessKey: string;
  /** Session token of temporary credentials. */
  sessionToken?: string;
}

/** One header of the serialized signed request. */
export interface AwsRequestHeader {
  /** Header name. */
  key: string;
  /** Header value. */
  value: string;
}

/** The signed request as Google's STS expects it inside the subject token. */
export interface AwsSignedRequest {
  /** The GetCallerIdentity URL. */
  url: string;
  /** Always "POST". */
  method: "POST";
  /** Headers, sorted by name then value. */
  headers: AwsRequestHeader[];
}

const encoder = new TextEncoder();

/** HMAC-SHA256 in JavaScript (no `node:crypto`: this module is loaded by every sync's credentials). */
function hmac(key: string | Uint8Array, data: string): Uint8Array {
  return hmacOf(sha256, typeof key === "string" ? encoder.encode(key) : key, encoder.encode(data));
}

/** RFC 3986 encoding as SigV4 wants it (unreserved characters kept, everything else %XX). */
function awsEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** `20060102T150405Z` for `time`. */
function amzDate(time: Date): string {
  return time.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/** Options for {@linkcode signAwsRequest}. */
export interface AwsSignOptions {
  /** The AWS region of the STS endpoint. */
  region: string;
  /** Extra headers to sign (Google asks for `x-goog-cloud-target-resource`). */
  headers?: Record<string, string>;
  /** Signing time (default now). */
  now?: Date;
}

/**
 * Signs `POST url` (empty body) for service `sts` with SigV4, as Go's and Node's Google auth
 * libraries do for the aws1 source, and returns the request Google's STS replays.
 */
export function signAwsRequest(
  url: string,
  creds: AwsSigningCredentials,
  opts: AwsSignOptions,
): AwsSignedRequest {
  const u = new URL(url);
  const date = amzDate(opts.now ?? new Date());
  const headers: Record<string, string> = { host: u.host, "x-amz-date": date };
  if (creds.sessionToken) headers["x-amz-security-token"] = creds.sessionToken;
  for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k.toLowerCase()] = v;
  const names = Object.keys(headers).sort();
  const query = [...u.searchParams.entries()]
    .map(([k, v]) => [awsEncode(k), awsEncode(v)])
    .sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0)
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const canonical = [
    "POST",
    u.pathname || "/",
    query,
    names.map((n) => `${n}:${headers[n].trim()}\n`).join(""),
    names.join(";"),
    sha256Hex(""),
  ].join("\n");
  const scope = `${date.slice(0, 8)}/${opts.region}/sts/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", date, scope, sha256Hex(canonical)].join("\n");
  let key = hmac(`AWS4${creds.secretAccessKey}`, date.slice(0, 8));
  for (const part of [opts.region, "sts", "aws4_request"]) key = hmac(key, part);
  const signature = Array.from(hmac(key, toSign), (b) => b.toString(16).padStart(2, "0")).join("");
  const authorization = `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, ` +
    `SignedHeaders=${names.join(";")}, Signature=${signature}`;
  const out: AwsRequestHeader[] = [{ key: "Authorization", value: authorization }];
  // Go's library sends canonical header names (Host, X-Amz-Date, …); the names are case-insensitive.
  for (const n of names) {
    out.push({ key: n.replace(/(^|-)([a-z])/g, (_, d, c) => d + c.toUpperCase()), value: headers[n] });
  }
  out.sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : a.value < b.value ? -1 : 1);
  return { url, method: "POST", headers: out };
}

/** What {@linkcode awsSubjectToken} needs besides the credential source. */
export interface AwsSubjectOptions {
  /** The workload identity pool provider (sent and signed as `x-goog-cloud-target-resource`). */
  audience: string;
  /** Environment lookup (AWS_* variables). */
  env: (name: string) => string | undefined;
  /** The credential source's name, for messages. */
  source: string;
  /** Per-request timeout in ms. */
  timeoutMs?: number;
  /** Signing time (default now). */
  now?: Date;
}

/** Longest IMDS answer used as a role name or region (AWS's are short). */
const MAX_IMDS_VALUE_CHARS = 256;

/**
 * The aws1 subject token: region and credentials from the environment or IMDS, then the signed
 * GetCallerIdentity request, JSON-serialized and URL-encoded.
 */
export async function awsSubjectToken(
  cs: ExternalCredentialSource,
  opts: AwsSubjectOptions,
): Promise<string> {
  const { env, source } = opts;
  const envRegion = env("AWS_REGION") || env("AWS_DEFAULT_REGION");
  const envKey = env("AWS_ACCESS_KEY_ID");
  const envSecret = env("AWS_SECRET_ACCESS_KEY");
  const needImds = !envRegion || !envKey || !envSecret;
  const imdsHeaders: Record<string, string> = {};
  const secrets: string[] = [];
  const ask = (url: string, what: string, init: RequestInit = {}) =>
    textRequest(url, { ...init, headers: { ...imdsHeaders, ...(init.headers ?? {}) } }, {
      source,
      what,
      timeoutMs: opts.timeoutMs,
      secrets,
    });
  if (needImds && cs.imdsv2_session_token_url) {
    const token = (await ask(cs.imdsv2_session_token_url, "AWS IMDSv2 session token", {
      method: "PUT",
      headers: { "X-aws-ec2-metadata-token-ttl-seconds": "300" },
    })).trim();
    secrets.push(token);
    imdsHeaders["X-aws-ec2-metadata-token"] = token;
  }
  let region = envRegion;
  if (!region) {
    if (!cs.region_url) {
      throw garFail(
        `${source}: the aws credential source needs AWS_REGION (or AWS_DEFAULT_REGION) or credential_source.region_url`,
        source,
      );
    }
    const zone = (await ask(cs.region_url, "AWS region (availability zone)")).trim();
    if (!/^[a-z0-9-]{2,64}$/.test(zone)) {
      throw garFail(`${source}: ${new URL(cs.region_url).host} answered no availability zone`, source);
    }
    // An availability zone is its region plus one letter (us-east-1a → us-east-1).
    region = zone.slice(0, -1);
  }
  let creds: AwsSigningCredentials;
  if (envKey && envSecret) {
    creds = {
      accessKeyId: envKey,
      secretAccessKey: envSecret,
      sessionToken: env("AWS_SESSION_TOKEN") || undefined,
    };
  } else {
    if (!cs.url) {
      throw garFail(
        `${source}: the aws credential source needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or credential_source.url`,
        source,
      );
    }
    const role = (await ask(cs.url, "AWS role name (IMDS)")).trim().split("\n")[0];
    if (!role || role.length > MAX_IMDS_VALUE_CHARS || /[/\s]/.test(role)) {
      throw garFail(`${source}: ${new URL(cs.url).host} answered no usable IAM role name`, source);
    }
    const text = await ask(
      `${cs.url.replace(/\/+$/, "")}/${encodeURIComponent(role)}`,
      "AWS role credentials (IMDS)",
    );
    let j: Record<string, unknown> = {};
    try {
      j = JSON.parse(text);
    } catch { /* reported below */ }
    if (typeof j.AccessKeyId !== "string" || typeof j.SecretAccessKey !== "string") {
      throw garFail(`${source}: IMDS answered no AccessKeyId/SecretAccessKey for role ${role}`, source);
    }
    creds = {
      accessKeyId: j.AccessKeyId,
      secretAccessKey: j.SecretAccessKey,
      sessionToken: typeof j.Token === "string" ? j.Token : undefined,
    };
  }
  const url = cs.regional_cred_verification_url!.replace("{region}", region);
  const signed = signAwsRequest(url, creds, {
    region,
    headers: { "x-goog-cloud-target-resource": opts.audience },
    now: opts.now,
  });
  return encodeURIComponent(JSON.stringify(signed));
}
