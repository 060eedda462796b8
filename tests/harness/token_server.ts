/**
 * An in-process Docker registry token server (the "Bearer" flavour of the registry harness).
 *
 * It speaks the Docker token protocol that CNCF distribution's `auth.token` expects:
 * `GET /token?service=S&scope=repository:NAME:pull,push` (scope may repeat) with optional Basic
 * credentials, and the OAuth2 form `POST /token` (grant_type=password or refresh_token). It
 * grants only the actions the ACL allows and signs RS256 JWTs whose `x5c` header carries the
 * self-signed certificate the registry trusts through `rootcertbundle`.
 * @module
 */

import { makeCA } from "./certs.ts";

/** One ACL rule. The first rule whose user, type and repository match decides the actions. */
export interface AclEntry {
  /** A user name; `"*"` is any authenticated user, `""` is an anonymous request. */
  user: string;
  /** A glob on the resource name: `*` matches any characters (including `/`), `?` one. */
  repository: string;
  /** Allowed actions (`pull`, `push`, `delete`, or `*` for all). */
  actions: string[];
  /** The scope resource type; defaults to `"repository"` (`"registry"` for `registry:catalog:*`). */
  type?: string;
}

/** One access claim in a token. */
export interface Access {
  /** Resource type, e.g. "repository". */
  type: string;
  /** Resource name, e.g. "library/alpine". */
  name: string;
  /** Granted actions. */
  actions: string[];
}

/** What the token server saw and answered for one request. */
export interface TokenRequestRecord {
  /** When the request arrived. */
  time: Date;
  /** HTTP method ("GET" or "POST"). */
  method: string;
  /** Whether the request carried an Authorization header (GET) or credentials (POST). */
  hadAuthorization: boolean;
  /** The authenticated user, if the credentials were valid. */
  user?: string;
  /** The `service` parameter. */
  service?: string;
  /** The requested scopes, one string each (e.g. "repository:foo:pull,push"). */
  scope: string[];
  /** What the issued token grants (empty when nothing or when refused). */
  granted: Access[];
  /** HTTP status answered (200, 400 or 401). */
  status: number;
}

/** A running token server. */
export interface TokenServer {
  /** Base URL, `http://127.0.0.1:PORT`. */
  url: string;
  /** The realm to configure in the registry: `${url}/token`. */
  realm: string;
  /** The `service` (token audience) the registry is configured with. */
  service: string;
  /** The token issuer the registry is configured with. */
  issuer: string;
  /** Path of the signing certificate (the registry's `rootcertbundle`). */
  certFile: string;
  /** Every request seen, in order. */
  requests: TokenRequestRecord[];
  /** Stops serving. */
  stop(): Promise<void>;
}

/** Options for {@linkcode startTokenServer}. */
export interface TokenServerOptions {
  /** user → password; these are the only valid credentials. */
  users: Record<string, string>;
  /** Access rules; defaults to {@linkcode DEFAULT_ACL}. */
  acl?: AclEntry[];
  /** Token audience; defaults to "portager-test-registry". */
  service?: string;
  /** Token issuer; defaults to "portager-test-issuer". */
  issuer?: string;
  /** Token lifetime in seconds; defaults to 300. */
  expiresIn?: number;
}

/**
 * Default rules: any authenticated user may pull and push everything except `readonly/*`,
 * which is pull-only, and may list the catalog; anonymous requests get nothing.
 */
export const DEFAULT_ACL: readonly AclEntry[] = [
  { user: "*", repository: "readonly/*", actions: ["pull"] },
  { user: "*", repository: "*", actions: ["pull", "push", "delete"] },
  { user: "*", type: "registry", repository: "catalog", actions: ["*"] },
];

/** Turns an ACL glob into an anchored regular expression. */
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}

/** Parses one scope string "type:name:actions" (the name may itself contain ':'). */
export function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(":");
  const last = scope.lastIndexOf(":");
  if (first < 0 || last <= first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope.slice(last + 1).split(",").filter((a) => a !== ""),
  };
}

/** The actions of `wanted` that `acl` allows `user` (undefined = anonymous). */
export function grant(acl: readonly AclEntry[], user: string | undefined, wanted: Access): Access {
  for (const rule of acl) {
    const userOk = rule.user === "*" ? user !== undefined : rule.user === (user ?? "");
    if (!userOk || (rule.type ?? "repository") !== wanted.type) continue;
    if (!globToRegExp(rule.repository).test(wanted.name)) continue;
    const all = rule.actions.includes("*");
    return { ...wanted, actions: wanted.actions.filter((a) => all || rule.actions.includes(a)) };
  }
  return { ...wanted, actions: [] };
}

/** The DER bytes of the first PEM block in `pem`. */
function pemToDer(pem: string): Uint8Array<ArrayBuffer> {
  const m = pem.match(/-----BEGIN ([A-Z ]+)-----([\s\S]*?)-----END \1-----/);
  if (!m) throw new Error("no PEM block found");
  const bin = atob(m[2].replace(/\s+/g, ""));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function b64url(bytes: Uint8Array | string): string {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  let bin = "";
  for (const b of data) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function b64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/**
 * Starts the token server on 127.0.0.1 (OS-chosen port); its signing certificate is written
 * into `dir`, which the caller owns and removes.
 */
export async function startTokenServer(dir: string, opts: TokenServerOptions): Promise<TokenServer> {
  const service = opts.service ?? "portager-test-registry";
  const issuer = opts.issuer ?? "portager-test-issuer";
  const acl = opts.acl ?? DEFAULT_ACL;
  const expiresIn = opts.expiresIn ?? 300;
  // A self-signed RSA certificate: the registry trusts it as rootcertbundle and finds it in x5c.
  const signer = await makeCA(dir, "portager-test-token-signer", { keyType: "rsa" });
  const key = await crypto.subtle.importKey(
    "pkcs8",
    pemToDer(signer.keyPem),
    { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const x5c = [b64(pemToDer(signer.certPem))];
  const requests: TokenRequestRecord[] = [];
  const refreshTokens = new Map<string, string>();

  async function sign(user: string | undefined, access: Access[]): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "JWT", alg: "RS256", x5c };
    const claims = {
      iss: issuer,
      sub: user ?? "",
      aud: service,
      exp: now + expiresIn,
      nbf: now - 10,
      iat: now,
      jti: crypto.randomUUID(),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", key, new TextEncoder().encode(input));
    return `${input}.${b64url(new Uint8Array(sig))}`;
  }

  /** user name if the credentials are valid; null if given but wrong; undefined if absent. */
  function check(username?: string | null, password?: string | null): string | null | undefined {
    if (username === undefined || username === null) return undefined;
    return Object.hasOwn(opts.users, username) && opts.users[username] === password ? username : null;
  }

  function basicCreds(req: Request): { username: string; password: string } | undefined {
    const h = req.headers.get("authorization");
    const m = h?.match(/^Basic\s+(\S+)$/i);
    if (!m) return undefined;
    let decoded: string;
    try {
      decoded = atob(m[1]);
    } catch {
      return { username: "", password: "" };
    }
    const i = decoded.indexOf(":");
    return i < 0
      ? { username: decoded, password: "" }
      : { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
  }

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (url.pathname !== "/token") return json({ error: "not found" }, 404);
    const record: TokenRequestRecord = {
      time: new Date(),
      method: req.method,
      hadAuthorization: req.headers.has("authorization"),
      scope: [],
      granted: [],
      status: 200,
    };
    requests.push(record);
    let params: URLSearchParams;
    let user: string | null | undefined;
    let refreshWanted = false;
    if (req.method === "GET") {
      params = url.searchParams;
      const creds = basicCreds(req);
      user = creds ? check(creds.username, creds.password) : undefined;
      if (creds && user === null && creds.username === "" && creds.password === "") user = undefined;
      refreshWanted = params.get("offline_token") === "true";
      record.scope = params.getAll("scope").flatMap((s) => s.split(" ")).filter((s) => s !== "");
    } else if (req.method === "POST") {
      params = new URLSearchParams(await req.text());
      const grantType = params.get("grant_type");
      record.scope = (params.get("scope") ?? "").split(" ").filter((s) => s !== "");
      if (grantType === "password") {
        record.hadAuthorization = true;
        user = check(params.get("username") ?? "", params.get("password"));
      } else if (grantType === "refresh_token") {
        record.hadAuthorization = true;
        user = refreshTokens.get(params.get("refresh_token") ?? "") ?? null;
      } else {
        record.status = 400;
        return json({ error: "unsupported_grant_type" }, 400);
      }
      refreshWanted = params.get("access_type") === "offline";
    } else {
      record.status = 405;
      return json({ error: "method not allowed" }, 405);
    }
    record.service = params.get("service") ?? undefined;
    if (user === null) {
      record.status = 401;
      return json(
        { errors: [{ code: "UNAUTHORIZED", message: "invalid username or password" }] },
        401,
        { "www-authenticate": `Basic realm="${service}"` },
      );
    }
    if (user !== undefined) record.user = user;
    const wanted = record.scope.map(parseScope).filter((a): a is Access => a !== undefined);
    const granted = wanted.map((w) => grant(acl, user, w)).filter((a) => a.actions.length > 0);
    record.granted = granted;
    const token = await sign(user, granted);
    const body: Record<string, unknown> = {
      token,
      access_token: token,
      expires_in: expiresIn,
      issued_at: new Date().toISOString(),
    };
    if (refreshWanted && user !== undefined) {
      const refresh = crypto.randomUUID();
      refreshTokens.set(refresh, user);
      body.refresh_token = refresh;
    }
    if (req.method === "POST") {
      body.scope = granted.map((g) => `${g.type}:${g.name}:${g.actions.join(",")}`).join(" ");
    }
    return json(body);
  }

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handle);
  const url = `http://127.0.0.1:${server.addr.port}`;
  return {
    url,
    realm: `${url}/token`,
    service,
    issuer,
    certFile: signer.certFile,
    requests,
    async stop() {
      await server.shutdown();
    },
  };
}
