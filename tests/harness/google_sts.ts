/**
 * An in-process stand-in for Google's token services, speaking their documented protocols on
 * 127.0.0.1 so workload identity federation and impersonation are tested over real HTTP:
 * - `POST /v1/token`: the Security Token Service token exchange (RFC 8693, form-encoded:
 *   `grant_type`, `audience`, `scope`, `requested_token_type`, `subject_token`,
 *   `subject_token_type`, optional `options` and Basic client authentication). JWT and text
 *   subject tokens must be ones the test accepted; an `aws4_request` subject token goes to
 *   {@linkcode GoogleStsOptions.awsVerifier}, which stands for AWS: {@linkcode botocoreAwsVerifier}
 *   checks the SigV4 signature with botocore (AWS's own signer, from moto's venv) and then
 *   replays the request to moto's STS for the caller's identity. moto itself cannot check this
 *   request: it signs a POST's query parameters as a form body, where AWS signs an empty body.
 *   Errors are Google's: `invalid_target` for an unknown audience, `invalid_grant` for a
 *   rejected subject token.
 * - `POST /v1/projects/-/serviceAccounts/EMAIL:generateAccessToken`: IAM Credentials (JSON
 *   `scope`, `lifetime`, `delegates`; the caller's token as Bearer), `PERMISSION_DENIED` for an
 *   account the test did not allow.
 * - `POST /token`: the OAuth2 refresh-token grant (client credentials in the form or as Basic).
 * - `GET /subject-token`: a credential-source URL (Azure-IMDS-like JSON), requiring a header.
 * - `/latest/...`: an AWS instance metadata service (IMDSv2 session tokens, availability zone,
 *   role name and role credentials).
 * Every request is recorded with its form or JSON body so tests can assert the wire protocol.
 * @module
 */

/** One request the server received. */
export interface GoogleStsRecord {
  /** HTTP method. */
  method: string;
  /** URL path. */
  path: string;
  /** Request headers (lower-case names). */
  headers: Record<string, string>;
  /** Form fields of a form-encoded body. */
  form?: Record<string, string>;
  /** A JSON body. */
  json?: Record<string, unknown>;
  /** The status answered. */
  status: number;
}

/** The request inside an aws4_request subject token. */
export interface AwsSubjectRequest {
  /** GetCallerIdentity URL. */
  url: string;
  /** HTTP method (POST). */
  method: string;
  /** Headers, Authorization among them. */
  headers: { key: string; value: string }[];
}

/** AWS's answer to a replayed GetCallerIdentity: the caller's ARN, or why it was refused. */
export type AwsVerdict = { arn: string } | { refused: string };

/** AWS credentials the IMDS answers for its role. */
export interface ImdsCredentials {
  /** Access key id. */
  accessKeyId: string;
  /** Secret access key. */
  secretAccessKey: string;
  /** Session token (optional). */
  sessionToken?: string;
}

/** Options for {@linkcode startGoogleSts}. */
export interface GoogleStsOptions {
  /** The workload identity pool provider STS accepts as `audience`. */
  audience: string;
  /** Subject tokens (JWT/text types) STS accepts. */
  subjectTokens?: string[];
  /** Service-account emails callers may impersonate. */
  serviceAccounts?: string[];
  /** OAuth2 clients and refresh tokens `/token` accepts. */
  refreshTokens?: { clientId: string; clientSecret: string; refreshToken: string }[];
  /** The header (name and value) `/subject-token` requires, and the token it serves. */
  subjectUrl?: { header: [string, string]; token: string };
  /** The AWS instance metadata service: role, zone and credentials (IMDSv2 enforced). */
  imds?: { role: string; zone: string; credentials: ImdsCredentials };
  /** Stands for AWS when an aws4_request subject token is exchanged (default: refuse). */
  awsVerifier?: (request: AwsSubjectRequest) => Promise<AwsVerdict>;
  /** Token values to issue instead of generated ones, by issuer kind (`sts`, `oauth`, `iam:EMAIL`). */
  fixedTokens?: Record<string, string>;
  /** Lifetime in seconds of the tokens STS and `/token` issue (default 3600). */
  expiresIn?: number;
}

/** A running server. */
export interface GoogleSts {
  /** Base URL, `http://127.0.0.1:PORT`. */
  url: string;
  /** The STS token endpoint: `${url}/v1/token`. */
  stsTokenUrl: string;
  /** The OAuth2 token endpoint: `${url}/token`. */
  oauthTokenUrl: string;
  /** The credential-source URL: `${url}/subject-token`. */
  subjectTokenUrl: string;
  /** The IMDS base: `${url}/latest`. */
  imdsUrl: string;
  /** IAM Credentials `generateAccessToken` URL for `email`. */
  impersonationUrl(email: string): string;
  /** Every request so far. */
  requests: GoogleStsRecord[];
  /** Every access token issued, with what issued it (`sts`, `oauth`, `iam:EMAIL`). */
  issued: Map<string, string>;
  /** The AWS caller ARNs `GetCallerIdentity` answered for replayed aws4_request tokens. */
  awsCallers: string[];
  /** Makes STS answer `status` with a server error for the next `count` exchanges. */
  failSts(status: number, count?: number): void;
  /** Stops the server. */
  stop(): Promise<void>;
}

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";
const SUBJECT_TYPES = [
  "urn:ietf:params:oauth:token-type:jwt",
  "urn:ietf:params:oauth:token-type:id_token",
  "urn:ietf:params:oauth:token-type:saml2",
  "urn:ietf:params:aws:token-type:aws4_request",
];

function oauthError(status: number, error: string, description: string): Response {
  return Response.json({ error, error_description: description }, { status });
}

function apiError(status: number, state: string, message: string): Response {
  return Response.json({ error: { code: status, message, status: state } }, { status });
}

/** Starts the server on a free port of 127.0.0.1. */
export function startGoogleSts(opts: GoogleStsOptions): GoogleSts {
  const requests: GoogleStsRecord[] = [];
  const issued = new Map<string, string>();
  const awsCallers: string[] = [];
  const imdsSessions = new Set<string>();
  let stsFailures = { status: 0, count: 0 };
  let n = 0;
  const expiresIn = opts.expiresIn ?? 3600;
  const issue = (kind: string) => {
    const token = opts.fixedTokens?.[kind] ?? `ya29.${kind.split(":")[0]}-${++n}`;
    issued.set(token, kind);
    return token;
  };

  async function replayAws(subject: string): Promise<string | Response> {
    let req: AwsSubjectRequest;
    try {
      req = JSON.parse(decodeURIComponent(subject));
    } catch {
      return oauthError(400, "invalid_grant", "The AWS subject token is not a URL-encoded JSON request.");
    }
    if (req.method !== "POST" || typeof req.url !== "string" || !Array.isArray(req.headers)) {
      return oauthError(400, "invalid_grant", "The AWS subject token is not a signed POST request.");
    }
    const target = req.headers.find((h) => h.key.toLowerCase() === "x-goog-cloud-target-resource");
    if (target?.value !== opts.audience) {
      return oauthError(
        400,
        "invalid_grant",
        "The AWS request's x-goog-cloud-target-resource is not the audience.",
      );
    }
    const verdict = opts.awsVerifier ? await opts.awsVerifier(req) : { refused: "no AWS configured" };
    if ("refused" in verdict) {
      return oauthError(
        400,
        "invalid_grant",
        `AWS rejected the GetCallerIdentity request (${verdict.refused}).`,
      );
    }
    return verdict.arn;
  }

  async function sts(form: Record<string, string>): Promise<Response> {
    if (stsFailures.count > 0) {
      stsFailures.count--;
      return oauthError(stsFailures.status, "server_error", "The service is currently unavailable.");
    }
    if (form.grant_type !== TOKEN_EXCHANGE) {
      return oauthError(400, "unsupported_grant_type", `Unsupported grant_type ${form.grant_type}.`);
    }
    if (form.requested_token_type !== ACCESS_TOKEN_TYPE) {
      return oauthError(400, "invalid_request", "Invalid requested_token_type.");
    }
    if (!form.scope) return oauthError(400, "invalid_scope", "scope is required.");
    if (form.audience !== opts.audience) {
      return oauthError(
        400,
        "invalid_target",
        'The target service indicated by the "audience" parameters is invalid. This might either be because ' +
          "the pool or provider is disabled or deleted or because it doesn't exist.",
      );
    }
    if (!SUBJECT_TYPES.includes(form.subject_token_type)) {
      return oauthError(400, "invalid_request", "Invalid subject_token_type.");
    }
    if (form.subject_token_type.endsWith("aws4_request")) {
      const caller = await replayAws(form.subject_token ?? "");
      if (caller instanceof Response) return caller;
      awsCallers.push(caller);
    } else if (!(opts.subjectTokens ?? []).includes(form.subject_token)) {
      return oauthError(400, "invalid_grant", "The subject token was rejected by the provider.");
    }
    return Response.json({
      access_token: issue("sts"),
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: "Bearer",
      expires_in: expiresIn,
    });
  }

  function impersonate(email: string, auth: string | null, body: Record<string, unknown>): Response {
    const bearer = /^Bearer (.+)$/.exec(auth ?? "")?.[1];
    if (!bearer || !issued.has(bearer)) {
      return apiError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.");
    }
    if (!(opts.serviceAccounts ?? []).includes(email)) {
      return apiError(
        403,
        "PERMISSION_DENIED",
        "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
      );
    }
    if (!Array.isArray(body.scope) || body.scope.length === 0) {
      return apiError(400, "INVALID_ARGUMENT", "Scope required.");
    }
    const lifetime = typeof body.lifetime === "string" ? /^(\d+)s$/.exec(body.lifetime)?.[1] : "3600";
    if (!lifetime) return apiError(400, "INVALID_ARGUMENT", "Invalid lifetime.");
    return Response.json({
      accessToken: issue(`iam:${email}`),
      expireTime: new Date(Date.now() + Number(lifetime) * 1000).toISOString(),
    });
  }

  function refresh(form: Record<string, string>, auth: string | null): Response {
    let id = form.client_id, secret = form.client_secret;
    const basic = /^Basic (.+)$/.exec(auth ?? "")?.[1];
    if (basic) [id, secret] = atob(basic).split(":").map(decodeURIComponent);
    if (form.grant_type !== "refresh_token") return oauthError(400, "unsupported_grant_type", "Bad grant.");
    const ok = (opts.refreshTokens ?? []).some((r) =>
      r.clientId === id && r.clientSecret === secret && r.refreshToken === form.refresh_token
    );
    if (!ok) return oauthError(400, "invalid_grant", "Token has been expired or revoked.");
    return Response.json({ access_token: issue("oauth"), expires_in: expiresIn, token_type: "Bearer" });
  }

  function imds(req: Request, path: string): Response {
    const cfg = opts.imds;
    if (!cfg) return new Response("not found", { status: 404 });
    if (path === "/latest/api/token") {
      const ttl = Number(req.headers.get("x-aws-ec2-metadata-token-ttl-seconds"));
      if (req.method !== "PUT" || !(ttl >= 1 && ttl <= 21600)) return new Response("bad", { status: 400 });
      const token = `imds-session-${++n}`;
      imdsSessions.add(token);
      return new Response(token);
    }
    if (!imdsSessions.has(req.headers.get("x-aws-ec2-metadata-token") ?? "")) {
      return new Response("unauthorized", { status: 401 });
    }
    const creds = "/latest/meta-data/iam/security-credentials";
    if (path === "/latest/meta-data/placement/availability-zone") return new Response(cfg.zone);
    if (path === creds || path === `${creds}/`) return new Response(cfg.role);
    if (path === `${creds}/${cfg.role}`) {
      return Response.json({
        Code: "Success",
        Type: "AWS-HMAC",
        AccessKeyId: cfg.credentials.accessKeyId,
        SecretAccessKey: cfg.credentials.secretAccessKey,
        Token: cfg.credentials.sessionToken,
        Expiration: new Date(Date.now() + 3600_000).toISOString(),
      });
    }
    return new Response("not found", { status: 404 });
  }

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const path = url.pathname;
    const headers: Record<string, string> = {};
    req.headers.forEach((v, k) => (headers[k] = v));
    const record: GoogleStsRecord = { method: req.method, path, headers, status: 0 };
    requests.push(record);
    const text = await req.text();
    const type = req.headers.get("content-type") ?? "";
    if (type.startsWith("application/x-www-form-urlencoded")) {
      record.form = Object.fromEntries(new URLSearchParams(text));
    } else if (type.startsWith("application/json")) {
      try {
        record.json = JSON.parse(text);
      } catch {
        record.json = {};
      }
    }
    let res: Response;
    const iam = /^\/v1\/projects\/-\/serviceAccounts\/([^/:]+):generateAccessToken$/.exec(path);
    if (req.method === "POST" && path === "/v1/token") res = await sts(record.form ?? {});
    else if (req.method === "POST" && iam) {
      res = impersonate(decodeURIComponent(iam[1]), req.headers.get("authorization"), record.json ?? {});
    } else if (req.method === "POST" && path === "/token") {
      res = refresh(record.form ?? {}, req.headers.get("authorization"));
    } else if (req.method === "GET" && path === "/subject-token" && opts.subjectUrl) {
      const [name, value] = opts.subjectUrl.header;
      res = req.headers.get(name) === value
        ? Response.json({ access_token: opts.subjectUrl.token, token_type: "Bearer" })
        : new Response("missing header", { status: 400 });
    } else if (path.startsWith("/latest/")) res = imds(req, path);
    else res = new Response("not found", { status: 404 });
    record.status = res.status;
    return res;
  });
  const url = `http://127.0.0.1:${server.addr.port}`;
  return {
    url,
    stsTokenUrl: `${url}/v1/token`,
    oauthTokenUrl: `${url}/token`,
    subjectTokenUrl: `${url}/subject-token`,
    imdsUrl: `${url}/latest`,
    impersonationUrl: (email) => `${url}/v1/projects/-/serviceAccounts/${email}:generateAccessToken`,
    requests,
    issued,
    awsCallers,
    failSts(status, count = 1) {
      stsFailures = { status, count };
    },
    stop: () => server.shutdown(),
  };
}

const BOTOCORE_CHECK = `
import json, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
req = json.load(sys.stdin)
headers = {h["key"]: h["value"] for h in req["headers"]}
get = lambda name: next((v for k, v in headers.items() if k.lower() == name), None)
auth = get("authorization") or ""
akid, date, region, service, _ = auth.split("Credential=")[1].split(",")[0].split("/")
signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
secret = req["secrets"].get(akid)
if secret is None:
    print("InvalidClientTokenId"); sys.exit(0)
r = AWSRequest(method=req["method"], url=req["url"], data=b"",
               headers={k: v for k, v in headers.items() if k.lower() in signed})
r.context["timestamp"] = get("x-amz-date")
a = SigV4Auth(Credentials(akid, secret, get("x-amz-security-token")), service, region)
sig = a.signature(a.string_to_sign(r, a.canonical_request(r)), r)
print("ok" if sig == auth.split("Signature=")[1].strip() and service == "sts" else "SignatureDoesNotMatch")
`;

/**
 * An {@linkcode GoogleStsOptions.awsVerifier} standing for AWS: botocore (run with `python`,
 * moto's venv interpreter) checks the SigV4 signature against `secrets` (access key id →
 * secret key), then the request is replayed to moto at `motoUrl` (IAM not enforced) for
 * GetCallerIdentity's ARN.
 */
export function botocoreAwsVerifier(
  python: string,
  motoUrl: string,
  secrets: Record<string, string>,
): (request: AwsSubjectRequest) => Promise<AwsVerdict> {
  return async (request) => {
    const child = new Deno.Command(python, {
      args: ["-c", BOTOCORE_CHECK],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(JSON.stringify({ ...request, secrets })));
    await writer.close();
    const out = await child.output();
    const verdict = new TextDecoder().decode(out.stdout).trim();
    if (verdict !== "ok") {
      return {
        refused: verdict || `botocore check failed: ${new TextDecoder().decode(out.stderr).slice(-300)}`,
      };
    }
    const headers = new Headers();
    for (const h of request.headers) if (h.key.toLowerCase() !== "host") headers.append(h.key, h.value);
    const url = new URL(request.url);
    const res = await fetch(`${motoUrl}/${url.search}`, { method: "POST", headers, body: "" });
    const text = await res.text();
    const arn = /<Arn>([^<]+)<\/Arn>/.exec(text);
    return res.ok && arn ? { arn: arn[1] } : { refused: `moto answered HTTP ${res.status}` };
  };
}
