/**
 * Google Artifact Registry (and Container Registry) credentials: an OAuth2 access token used
 * as the password of user `oauth2accesstoken`. The token comes from, in order:
 * 1. `GOOGLE_APPLICATION_CREDENTIALS`: a service-account key (JWT bearer grant signed with
 *    Web Crypto, RS256) or an `authorized_user` file (refresh-token grant, as written by
 *    `gcloud auth application-default login`);
 * 2. the GCE/GKE metadata server (Workload Identity), `GCE_METADATA_HOST` overriding its host.
 * Tokens are cached until shortly before they expire.
 * @module
 */
import type { Credential, CredentialResolver } from "../oci/mod.ts";
import { CredentialError } from "./errors.ts";

/** The username Google registries expect with an access token. */
export const GAR_USERNAME = "oauth2accesstoken";
const CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform";
const DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token";
const DEFAULT_REFRESH_MARGIN_MS = 5 * 60_000;

/** Whether `registry` is a Google Artifact Registry (`*-docker.pkg.dev`) or Container Registry host. */
export function isGarHost(registry: string): boolean {
  const host = registry.split("/")[0].replace(/:443$/, "").toLowerCase();
  return /^[a-z0-9-]+-docker\.pkg\.dev$/.test(host) || host === "docker.pkg.dev" || host === "gcr.io" ||
    host.endsWith(".gcr.io");
}

/** A service-account key file. */
export interface ServiceAccountKey {
  /** Always "service_account". */
  type: "service_account";
  /** The account's email: the JWT issuer. */
  client_email: string;
  /** PKCS#8 PEM private key. */
  private_key: string;
  /** Key id, sent as the JWT `kid`. */
  private_key_id?: string;
  /** OAuth2 token endpoint (default https://oauth2.googleapis.com/token). */
  token_uri?: string;
}

/** Application-default user credentials (`gcloud auth application-default login`). */
export interface AuthorizedUserKey {
  /** Always "authorized_user". */
  type: "authorized_user";
  /** OAuth client id. */
  client_id: string;
  /** OAuth client secret. */
  client_secret: string;
  /** Refresh token. */
  refresh_token: string;
  /** Token endpoint (default https://oauth2.googleapis.com/token). */
  token_uri?: string;
}

/** The Google credential files this module understands. */
export type GoogleCredentials = ServiceAccountKey | AuthorizedUserKey;

function fail(message: string, source: string, cause?: unknown): CredentialError {
  return new CredentialError("AuthFailed", message, { source, cause });
}

/** Parses a Google credentials JSON file; messages name `source`, never the content. */
export function parseGoogleCredentials(json: string, source: string): GoogleCredentials {
  let obj: Record<string, unknown>;
  try {
    obj = JSON.parse(json);
  } catch {
    throw fail(`${source} is not valid JSON`, source);
  }
  if (typeof obj !== "object" || obj === null) throw fail(`${source} must hold a JSON object`, source);
  const need = (fields: string[]) => {
    const missing = fields.filter((f) => typeof obj[f] !== "string" || obj[f] === "");
    if (missing.length) throw fail(`${source} (${obj.type}) is missing ${missing.join(", ")}`, source);
  };
  if (obj.type === "service_account") {
    need(["client_email", "private_key"]);
    return obj as unknown as ServiceAccountKey;
  }
  if (obj.type === "authorized_user") {
    need(["client_id", "client_secret", "refresh_token"]);
    return obj as unknown as AuthorizedUserKey;
  }
  throw fail(
    `${source} has type ${
      JSON.stringify(obj.type ?? null)
    }; supported are service_account and authorized_user`,
    source,
  );
}

function base64url(bytes: Uint8Array | string): string {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  let bin = "";
  for (const b of data) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Decodes the DER body of a PKCS#8 `PRIVATE KEY` PEM block. */
export function pemToPkcs8(pem: string): Uint8Array<ArrayBuffer> {
  const m = /-----BEGIN PRIVATE KEY-----([\s\S]+?)-----END PRIVATE KEY-----/.exec(pem);
  if (!m) throw new Error("private_key is not a PKCS#8 PEM (BEGIN PRIVATE KEY) block");
  const bin = atob(m[1].replace(/\s+/g, ""));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** Options for {@linkcode signJwtAssertion}. */
export interface JwtOptions {
  /** Issue time in ms since the epoch (default now). */
  now?: number;
  /** OAuth scope(s), space separated (default cloud-platform). */
  scope?: string;
  /** Lifetime in seconds (default and Google's maximum: 3600). */
  lifetimeSeconds?: number;
}

/** Builds and RS256-signs the JWT a service account exchanges for an access token. */
export async function signJwtAssertion(key: ServiceAccountKey, opts: JwtOptions = {}): Promise<string> {
  const iat = Math.floor((opts.now ?? Date.now()) / 1000);
  const header: Record<string, string> = { alg: "RS256", typ: "JWT" };
  if (key.private_key_id) header.kid = key.private_key_id;
  const claims = {
    iss: key.client_email,
    scope: opts.scope ?? CLOUD_PLATFORM_SCOPE,
    aud: key.token_uri ?? DEFAULT_TOKEN_URI,
    iat,
    exp: iat + (opts.lifetimeSeconds ?? 3600),
  };
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const cryptoKey = await crypto.subtle.importKey(
    "pkcs8",
    pemToPkcs8(key.private_key),
    { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const sig = await crypto.subtle.sign(
    "RSASSA-PKCS1-v1_5",
    cryptoKey,
    new TextEncoder().encode(signingInput),
  );
  return `${signingInput}.${base64url(new Uint8Array(sig))}`;
}

/** Options for {@linkcode GarCredentialResolver}. */
export interface GarOptions {
  /** Credentials file; default `$GOOGLE_APPLICATION_CREDENTIALS`, else the metadata server. */
  credentialsFile?: string;
  /** Metadata server host; default `$GCE_METADATA_HOST` or `metadata.google.internal`. */
  metadataHost?: string;
  /** Answer for any registry host, not just Artifact/Container Registry ones (tests). */
  anyHost?: boolean;
  /** Refresh this long before expiry (default 5 minutes). */
  refreshMarginMs?: number;
  /** Clock, for tests. */
  now?: () => number;
  /** Per-request timeout in ms (default 10 s). */
  timeoutMs?: number;
}

interface AccessToken {
  token: string;
  refreshAt: number;
}

/**
 * Resolves Google registry hosts to `oauth2accesstoken` + access token. Failures throw
 * {@linkcode CredentialError} (AuthFailed) naming where the credentials were looked for.
 */
export class GarCredentialResolver implements CredentialResolver {
  readonly #opts: GarOptions;
  #cached?: AccessToken;
  #inflight?: Promise<AccessToken>;

  /** Creates a resolver; nothing is read or fetched until the first resolve. */
  constructor(opts: GarOptions = {}) {
    this.#opts = opts;
  }

  /** Basic credentials (`oauth2accesstoken` + access token) for a Google registry host. */
  async resolve(registryHost: string): Promise<Credential | undefined> {
    if (!this.#opts.anyHost && !isGarHost(registryHost)) {
      throw new CredentialError(
        "AuthFailed",
        `${registryHost} is not a Google Artifact Registry (<region>-docker.pkg.dev) or gcr.io host, so ` +
          `auth method gar does not send Google credentials to it`,
        { registry: registryHost, source: "Google credentials" },
      );
    }
    const now = (this.#opts.now ?? Date.now)();
    if (!this.#cached || now >= this.#cached.refreshAt) {
      this.#inflight ??= this.#fetch().finally(() => (this.#inflight = undefined));
      this.#cached = await this.#inflight;
    }
    return { username: GAR_USERNAME, password: this.#cached.token };
  }

  async #post(url: string, body: URLSearchParams, source: string): Promise<unknown> {
    return await this.#request(url, { method: "POST", body }, source);
  }

  async #request(url: string, init: RequestInit, source: string): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(url, { ...init, signal: AbortSignal.timeout(this.#opts.timeoutMs ?? 10_000) });
    } catch (e) {
      throw fail(`${source}: cannot reach ${new URL(url).host}: ${(e as Error).message}`, source, e);
    }
    const text = await res.text();
    if (!res.ok) {
      let detail = "";
      try {
        const j = JSON.parse(text);
        detail = [j.error, j.error_description].filter((x) => typeof x === "string").join(": ");
      } catch { /* not JSON */ }
      throw fail(
        `${source}: ${new URL(url).host} refused the token request (HTTP ${res.status})${
          detail ? ": " + detail : ""
        }`,
        source,
      );
    }
    try {
      return JSON.parse(text);
    } catch {
      throw fail(`${source}: ${new URL(url).host} returned a token response that is not JSON`, source);
    }
  }

  async #fetch(): Promise<AccessToken> {
    const file = this.#opts.credentialsFile ?? Deno.env.get("GOOGLE_APPLICATION_CREDENTIALS");
    const issuedAt = (this.#opts.now ?? Date.now)();
    let source: string;
    let response: unknown;
    if (file) {
      source = `GOOGLE_APPLICATION_CREDENTIALS file ${file}`;
      let text: string;
      try {
        text = await Deno.readTextFile(file);
      } catch (e) {
        throw fail(`cannot read ${source}: ${(e as Error).message}`, source, e);
      }
      const creds = parseGoogleCredentials(text, source);
      const tokenUri = creds.token_uri ?? DEFAULT_TOKEN_URI;
      if (creds.type === "service_account") {
        let assertion: string;
        try {
          assertion = await signJwtAssertion(creds, { now: issuedAt });
        } catch (e) {
          throw fail(`${source}: cannot sign with private_key: ${(e as Error).message}`, source, e);
        }
        response = await this.#post(
          tokenUri,
          new URLSearchParams({ grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion }),
          source,
        );
      } else {
        response = await this.#post(
          tokenUri,
          new URLSearchParams({
            grant_type: "refresh_token",
            client_id: creds.client_id,
            client_secret: creds.client_secret,
            refresh_token: creds.refresh_token,
          }),
          source,
        );
      }
    } else {
      const host = this.#opts.metadataHost ?? Deno.env.get("GCE_METADATA_HOST") ?? "metadata.google.internal";
      source = `metadata server ${host} (Workload Identity)`;
      response = await this.#request(
        `http://${host}/computeMetadata/v1/instance/service-accounts/default/token`,
        { headers: { "Metadata-Flavor": "Google" } },
        source,
      );
    }
    const r = response as { access_token?: unknown; expires_in?: unknown };
    if (typeof r.access_token !== "string" || r.access_token === "") {
      throw fail(`${source} returned no access_token`, source);
    }
    const lifetimeMs = (typeof r.expires_in === "number" ? r.expires_in : 3600) * 1000;
    const margin = this.#opts.refreshMarginMs ?? DEFAULT_REFRESH_MARGIN_MS;
    const refreshAt = lifetimeMs > 2 * margin ? issuedAt + lifetimeMs - margin : issuedAt + lifetimeMs / 2;
    return { token: r.access_token, refreshAt };
  }
}
