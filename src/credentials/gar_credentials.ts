/**
 * Google credential files as Application Default Credentials finds them: the file types
 * (`service_account`, `authorized_user`, `external_account` for workload identity federation,
 * `external_account_authorized_user`, `impersonated_service_account`), their validation, and
 * where ADC looks (`GOOGLE_APPLICATION_CREDENTIALS`, then gcloud's well-known file under
 * `CLOUDSDK_CONFIG` or `~/.config/gcloud`). Messages name the file, never its content.
 * @module
 */
import { garFail } from "./gar_http.ts";

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

/** How a subject token is read from a file or URL response (`credential_source.format`). */
export interface SubjectTokenFormat {
  /** "text" (default): the whole content; "json": one field of a JSON object. */
  type?: "text" | "json";
  /** With type "json": the field holding the token. */
  subject_token_field_name?: string;
}

/** Where an `external_account` gets the token it exchanges at STS (`credential_source`). */
export interface ExternalCredentialSource {
  /** A file holding the subject token (e.g. a projected Kubernetes service-account token). */
  file?: string;
  /** A URL answering the subject token (e.g. Azure's IMDS); GET with `headers`. */
  url?: string;
  /** Headers sent with `url`. */
  headers?: Record<string, string>;
  /** How to read the file or URL response. */
  format?: SubjectTokenFormat;
  /** "aws1": the token is a signed AWS STS GetCallerIdentity request. */
  environment_id?: string;
  /** AWS: where the region is read (an availability zone; IMDS). */
  region_url?: string;
  /** AWS: the GetCallerIdentity URL to sign; `{region}` is replaced. */
  regional_cred_verification_url?: string;
  /** AWS: IMDSv2 session token URL; when set, IMDS is asked with a session token. */
  imdsv2_session_token_url?: string;
  /** Executable-sourced credentials: not supported (no subprocesses), refused with a message. */
  executable?: unknown;
  /** X.509 (mTLS) credentials: not supported, refused with a message. */
  certificate?: unknown;
}

/** A workload identity federation credential file (`gcloud iam workload-identity-pools create-cred-config`). */
export interface ExternalAccount {
  /** Always "external_account". */
  type: "external_account";
  /** The workload identity pool provider: `//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/K`. */
  audience: string;
  /** The subject token's type, e.g. `urn:ietf:params:oauth:token-type:jwt` or `urn:ietf:params:aws:token-type:aws4_request`. */
  subject_token_type: string;
  /** The STS token endpoint (default https://sts.googleapis.com/v1/token). */
  token_url?: string;
  /** When set, the federated token is exchanged for a service account's token here. */
  service_account_impersonation_url?: string;
  /** Impersonation options. */
  service_account_impersonation?: { token_lifetime_seconds?: number };
  /** Where the subject token comes from. */
  credential_source: ExternalCredentialSource;
  /** OAuth client for STS client authentication (optional). */
  client_id?: string;
  /** OAuth client secret for STS client authentication (optional). */
  client_secret?: string;
  /** Workforce pools: the project billed, sent as STS `options.userProject`. */
  workforce_pool_user_project?: string;
}

/** Workforce identity user credentials (`gcloud auth application-default login` with a workforce pool). */
export interface ExternalAccountAuthorizedUser {
  /** Always "external_account_authorized_user". */
  type: "external_account_authorized_user";
  /** Refresh token. */
  refresh_token: string;
  /** The token endpoint (STS's OAuth endpoint). */
  token_url: string;
  /** OAuth client id (Basic client authentication). */
  client_id: string;
  /** OAuth client secret. */
  client_secret: string;
}

/** Credentials that impersonate a service account (`gcloud auth application-default login --impersonate-service-account`). */
export interface ImpersonatedServiceAccount {
  /** Always "impersonated_service_account". */
  type: "impersonated_service_account";
  /** IAM Credentials `generateAccessToken` URL of the target service account. */
  service_account_impersonation_url: string;
  /** The credentials doing the impersonation (any type but this one). */
  source_credentials: GoogleCredentials;
  /** Delegation chain, `projects/-/serviceAccounts/EMAIL` each. */
  delegates?: string[];
}

/** The Google credential files this module understands. */
export type GoogleCredentials =
  | ServiceAccountKey
  | AuthorizedUserKey
  | ExternalAccount
  | ExternalAccountAuthorizedUser
  | ImpersonatedServiceAccount;

/** The file name gcloud writes application-default credentials to. */
export const WELL_KNOWN_FILE_NAME = "application_default_credentials.json";

/**
 * gcloud's well-known ADC file: `$CLOUDSDK_CONFIG/application_default_credentials.json`, else
 * `$HOME/.config/gcloud/application_default_credentials.json`; undefined without either variable.
 */
export function wellKnownCredentialsFile(env: (name: string) => string | undefined): string | undefined {
  const config = env("CLOUDSDK_CONFIG");
  if (config) return `${config.replace(/\/+$/, "")}/${WELL_KNOWN_FILE_NAME}`;
  const home = env("HOME");
  if (home) return `${home.replace(/\/+$/, "")}/.config/gcloud/${WELL_KNOWN_FILE_NAME}`;
  return undefined;
}

type Json = Record<string, unknown>;

function isObject(x: unknown): x is Json {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function requireStrings(obj: Json, fields: string[], where: string, source: string): void {
  const missing = fields.filter((f) => typeof obj[f] !== "string" || obj[f] === "");
  if (missing.length) throw garFail(`${where} is missing ${missing.join(", ")}`, source);
}

function isHttpUrl(v: unknown): boolean {
  try {
    // `{region}` is a placeholder in AWS's verification URL, replaced before use.
    return typeof v === "string" &&
      ["http:", "https:"].includes(new URL(v.replace("{region}", "r")).protocol);
  } catch {
    return false;
  }
}

function requireUrl(obj: Json, field: string, where: string, source: string): void {
  if (obj[field] !== undefined && !isHttpUrl(obj[field])) {
    throw garFail(`${where}: ${field} must be an http(s) URL`, source);
  }
}

function checkCredentialSource(obj: Json, where: string, source: string): void {
  const cs = obj.credential_source;
  if (!isObject(cs)) throw garFail(`${where} is missing credential_source`, source);
  const at = `${where} credential_source`;
  if (cs.executable !== undefined) {
    throw garFail(
      `${at} uses an executable; Portager runs no subprocesses, so use a file, url or aws (environment_id) source`,
      source,
    );
  }
  if (cs.certificate !== undefined) {
    throw garFail(
      `${at} uses an X.509 certificate (mTLS), which Portager does not support; use a file, url or aws source`,
      source,
    );
  }
  // An aws source also has `url` (its IMDS credentials URL); otherwise one of file or url.
  const kinds = cs.environment_id !== undefined
    ? ["environment_id"]
    : ["file", "url"].filter((k) => cs[k] !== undefined);
  if (kinds.length !== 1) {
    throw garFail(`${at} must have exactly one of file, url or environment_id (has ${kinds.length})`, source);
  }
  for (const f of ["file", "url", "environment_id"]) {
    if (cs[f] !== undefined && (typeof cs[f] !== "string" || cs[f] === "")) {
      throw garFail(`${at}: ${f} must be a non-empty string`, source);
    }
  }
  for (const f of ["url", "region_url", "regional_cred_verification_url", "imdsv2_session_token_url"]) {
    requireUrl(cs, f, at, source);
  }
  if (cs.headers !== undefined) {
    if (!isObject(cs.headers) || Object.values(cs.headers).some((v) => typeof v !== "string")) {
      throw garFail(`${at}: headers must map names to strings`, source);
    }
  }
  if (cs.format !== undefined) {
    const f = cs.format;
    if (!isObject(f) || (f.type !== undefined && f.type !== "text" && f.type !== "json")) {
      throw garFail(`${at}: format.type must be "text" or "json"`, source);
    }
    if (
      f.type === "json" && (typeof f.subject_token_field_name !== "string" || !f.subject_token_field_name)
    ) {
      throw garFail(`${at}: format type json needs subject_token_field_name`, source);
    }
  }
  if (cs.environment_id !== undefined) {
    const m = /^aws(\d+)$/.exec(cs.environment_id as string);
    if (!m) {
      throw garFail(`${at}: environment_id ${JSON.stringify(cs.environment_id)} is not supported`, source);
    }
    if (m[1] !== "1") throw garFail(`${at}: aws version ${m[1]} is not supported (only aws1)`, source);
    requireStrings(cs, ["regional_cred_verification_url"], at, source);
  }
}

function checkFields(obj: Json, where: string, source: string, nested: boolean): GoogleCredentials {
  switch (obj.type) {
    case "service_account":
      requireStrings(obj, ["client_email", "private_key"], where, source);
      requireUrl(obj, "token_uri", where, source);
      return obj as unknown as ServiceAccountKey;
    case "authorized_user":
      requireStrings(obj, ["client_id", "client_secret", "refresh_token"], where, source);
      requireUrl(obj, "token_uri", where, source);
      return obj as unknown as AuthorizedUserKey;
    case "external_account":
      requireStrings(obj, ["audience", "subject_token_type"], where, source);
      requireUrl(obj, "token_url", where, source);
      requireUrl(obj, "service_account_impersonation_url", where, source);
      checkCredentialSource(obj, where, source);
      return obj as unknown as ExternalAccount;
    case "external_account_authorized_user":
      requireStrings(obj, ["refresh_token", "token_url", "client_id", "client_secret"], where, source);
      requireUrl(obj, "token_url", where, source);
      return obj as unknown as ExternalAccountAuthorizedUser;
    case "impersonated_service_account": {
      if (nested) {
        throw garFail(
          `${where}: source_credentials cannot themselves be impersonated_service_account`,
          source,
        );
      }
      requireStrings(obj, ["service_account_impersonation_url"], where, source);
      requireUrl(obj, "service_account_impersonation_url", where, source);
      if (!isObject(obj.source_credentials)) throw garFail(`${where} is missing source_credentials`, source);
      const delegates = obj.delegates;
      if (
        delegates !== undefined && (!Array.isArray(delegates) || delegates.some((d) => typeof d !== "string"))
      ) {
        throw garFail(`${where}: delegates must be a list of strings`, source);
      }
      checkFields(obj.source_credentials, `${where} source_credentials`, source, true);
      return obj as unknown as ImpersonatedServiceAccount;
    }
  }
  throw garFail(
    `${nested ? where : source} has type ${
      JSON.stringify(obj.type ?? null)
    }; supported are service_account, authorized_user, ` +
      `external_account, external_account_authorized_user and impersonated_service_account`,
    source,
  );
}

/** Parses a Google credentials JSON file; messages name `source`, never the content. */
export function parseGoogleCredentials(json: string, source: string): GoogleCredentials {
  let obj: unknown;
  try {
    obj = JSON.parse(json);
  } catch {
    throw garFail(`${source} is not valid JSON`, source);
  }
  if (!isObject(obj)) throw garFail(`${source} must hold a JSON object`, source);
  return checkFields(obj, `${source} (${obj.type})`, source, false);
}
