/**
 * Google Artifact Registry (and Container Registry) credentials: an OAuth2 access token used
 * as the password of user `oauth2accesstoken`, found as Google's Application Default
 * Credentials find it, in order:
 * 1. the file `GOOGLE_APPLICATION_CREDENTIALS` names;
 * 2. gcloud's well-known file, `$CLOUDSDK_CONFIG/application_default_credentials.json` or
 *    `~/.config/gcloud/application_default_credentials.json`;
 * 3. the GCE/GKE metadata server (Workload Identity), `GCE_METADATA_HOST` overriding its host.
 * A file may be a service-account key (JWT-bearer grant signed with Web Crypto, RS256), an
 * `authorized_user` (refresh-token grant), an `external_account` (workload identity federation:
 * a file, URL or AWS subject token exchanged at STS, then optionally a service account
 * impersonated), an `external_account_authorized_user`, or an `impersonated_service_account`.
 * Our own client rather than Google's `google-auth-library`: importing that one costs ~8 MiB RSS
 * more under Deno even with the operator's modules loaded (~16 MiB cold), and its HTTPS needs
 * `--allow-sys=ca` (measured in docs/CONFIGURATION.md).
 * Tokens are cached until shortly before they expire.
 * @module
 */
import type { Credential, CredentialResolver } from "../oci/mod.ts";
import { CredentialError } from "./errors.ts";
import {
  type GoogleCredentials,
  parseGoogleCredentials,
  type ServiceAccountKey,
  wellKnownCredentialsFile,
} from "./gar_credentials.ts";
import {
  CLOUD_PLATFORM_SCOPE,
  type ExchangeContext,
  externalAccountToken,
  externalUserToken,
  type GoogleAccessToken,
  impersonate,
  oauthTokenFrom,
} from "./gar_external.ts";
import { garFail as fail, tokenRequest } from "./gar_http.ts";

/** The username Google registries expect with an access token. */
export const GAR_USERNAME = "oauth2accesstoken";
const DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token";
const DEFAULT_REFRESH_MARGIN_MS = 5 * 60_000;

/** Whether `registry` is a Google Artifact Registry (`*-docker.pkg.dev`) or Container Registry host. */
export function isGarHost(registry: string): boolean {
  const host = registry.split("/")[0].replace(/:443$/, "").toLowerCase();
  return /^[a-z0-9-]+-docker\.pkg\.dev$/.test(host) || host === "docker.pkg.dev" || host === "gcr.io" ||
    host.endsWith(".gcr.io");
}

export {
  type AuthorizedUserKey,
  type ExternalAccount,
  type ExternalAccountAuthorizedUser,
  type ExternalCredentialSource,
  type GoogleCredentials,
  type ImpersonatedServiceAccount,
  parseGoogleCredentials,
  type ServiceAccountKey,
  type SubjectTokenFormat,
  wellKnownCredentialsFile,
} from "./gar_credentials.ts";

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
  /**
   * Credentials file; default `$GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's well-known file
   * (`$CLOUDSDK_CONFIG` or `~/.config/gcloud`), else the metadata server.
   */
  credentialsFile?: string;
  /** Metadata server host; default `$GCE_METADATA_HOST` or `metadata.google.internal`. */
  metadataHost?: string;
  /** OAuth scopes requested (default cloud-platform). */
  scopes?: string[];
  /** Answer for any registry host, not just Artifact/Container Registry ones (tests). */
  anyHost?: boolean;
  /** Refresh this long before expiry (default 5 minutes). */
  refreshMarginMs?: number;
  /** Clock, for tests. */
  now?: () => number;
  /** Per-request timeout in ms (default 10 s). */
  timeoutMs?: number;
  /**
   * Environment lookup (default `Deno.env.get`): GOOGLE_APPLICATION_CREDENTIALS, CLOUDSDK_CONFIG,
   * HOME, GCE_METADATA_HOST and, for the aws credential source, AWS_*.
   */
  env?: (name: string) => string | undefined;
}

interface AccessToken {
  token: string;
  refreshAt: number;
}

/** Where Application Default Credentials were found. */
interface FoundCredentials {
  /** The credentials file's content; undefined for the metadata server. */
  text?: string;
  /** The source's name for messages. */
  source: string;
  /** The metadata server's host, when that is the source. */
  metadataHost?: string;
  /** Why the metadata server is asked (what was looked for first), for messages. */
  why?: string;
}

/**
 * Resolves Google registry hosts to `oauth2accesstoken` + access token, finding credentials as
 * Google's Application Default Credentials do. Failures throw {@linkcode CredentialError}
 * (AuthFailed) naming where the credentials were looked for, never their content.
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

  #env(name: string): string | undefined {
    return this.#opts.env ? this.#opts.env(name) : Deno.env.get(name);
  }

  /** ADC's order: the explicit/env file, gcloud's well-known file, then the metadata server. */
  async #find(): Promise<FoundCredentials> {
    const file = this.#opts.credentialsFile ?? this.#env("GOOGLE_APPLICATION_CREDENTIALS");
    if (file) {
      const source = `GOOGLE_APPLICATION_CREDENTIALS file ${file}`;
      try {
        return { text: await Deno.readTextFile(file), source };
      } catch (e) {
        throw fail(`cannot read ${source}: ${(e as Error).message}`, source, e);
      }
    }
    const wellKnown = wellKnownCredentialsFile((n) => this.#env(n));
    if (wellKnown) {
      const source = `gcloud application-default credentials file ${wellKnown}`;
      try {
        return { text: await Deno.readTextFile(wellKnown), source };
      } catch (e) {
        // Not there, or outside what this binary may read (the image's --allow-read): fall through
        // to the metadata server, as ADC does when the well-known file is absent.
        if (!(e instanceof Deno.errors.NotFound) && !(e instanceof Deno.errors.NotCapable)) {
          throw fail(`cannot read ${source}: ${(e as Error).message}`, source, e);
        }
      }
    }
    const host = this.#opts.metadataHost ?? this.#env("GCE_METADATA_HOST") ?? "metadata.google.internal";
    return {
      source: `metadata server ${host} (Workload Identity)`,
      metadataHost: host,
      why:
        `access token (no GOOGLE_APPLICATION_CREDENTIALS and no ${wellKnown ?? "gcloud credentials file"}, ` +
        `so the metadata server was asked)`,
    };
  }

  async #fetch(): Promise<AccessToken> {
    const found = await this.#find();
    const issuedAt = (this.#opts.now ?? Date.now)();
    const ctx: ExchangeContext = {
      source: found.source,
      env: (n) => this.#env(n),
      timeoutMs: this.#opts.timeoutMs,
      now: issuedAt,
    };
    let token: GoogleAccessToken;
    if (found.text === undefined) {
      const r = await tokenRequest(
        `http://${found.metadataHost}/computeMetadata/v1/instance/service-accounts/default/token`,
        { headers: { "Metadata-Flavor": "Google" } },
        { source: found.source, what: found.why ?? "access token", timeoutMs: ctx.timeoutMs },
      );
      token = oauthTokenFrom(r, "the metadata server", ctx);
    } else {
      const creds = parseGoogleCredentials(found.text, found.source);
      token = await tokenFor(creds, this.#opts.scopes ?? [CLOUD_PLATFORM_SCOPE], ctx);
    }
    const lifetimeMs = token.expiresAt - issuedAt;
    const margin = this.#opts.refreshMarginMs ?? DEFAULT_REFRESH_MARGIN_MS;
    const refreshAt = lifetimeMs > 2 * margin ? token.expiresAt - margin : issuedAt + lifetimeMs / 2;
    return { token: token.token, refreshAt };
  }
}

/** An access token for `creds` with `scopes`, by the protocol of the credential type. */
async function tokenFor(
  creds: GoogleCredentials,
  scopes: string[],
  ctx: ExchangeContext,
): Promise<GoogleAccessToken> {
  const grant = async (url: string, body: URLSearchParams, what: string, secrets: string[]) =>
    oauthTokenFrom(
      await tokenRequest(url, { method: "POST", body }, {
        source: ctx.source,
        what,
        timeoutMs: ctx.timeoutMs,
        secrets,
      }),
      what,
      ctx,
    );
  switch (creds.type) {
    case "service_account": {
      let assertion: string;
      try {
        assertion = await signJwtAssertion(creds, { now: ctx.now, scope: scopes.join(" ") });
      } catch (e) {
        throw fail(`${ctx.source}: cannot sign with private_key: ${(e as Error).message}`, ctx.source, e);
      }
      return await grant(
        creds.token_uri ?? DEFAULT_TOKEN_URI,
        new URLSearchParams({ grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion }),
        "JWT-bearer grant",
        [assertion],
      );
    }
    case "authorized_user":
      return await grant(
        creds.token_uri ?? DEFAULT_TOKEN_URI,
        new URLSearchParams({
          grant_type: "refresh_token",
          client_id: creds.client_id,
          client_secret: creds.client_secret,
          refresh_token: creds.refresh_token,
        }),
        "refresh-token grant",
        [creds.client_secret, creds.refresh_token],
      );
    case "external_account":
      return await externalAccountToken(creds, scopes, ctx);
    case "external_account_authorized_user":
      return await externalUserToken(creds, ctx);
    case "impersonated_service_account": {
      const caller = await tokenFor(creds.source_credentials, [CLOUD_PLATFORM_SCOPE], ctx);
      return await impersonate(creds.service_account_impersonation_url, caller.token, {
        scopes,
        delegates: creds.delegates,
      }, ctx);
    }
  }
}
