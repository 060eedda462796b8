import assert from "node:assert/strict";
import { parseGoogleCredentials, wellKnownCredentialsFile } from "./gar_credentials.ts";
import { CredentialError } from "./errors.ts";

const AUDIENCE = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k";

function external(credentialSource: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    type: "external_account",
    audience: AUDIENCE,
    subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
    token_url: "https://sts.googleapis.com/v1/token",
    credential_source: credentialSource,
    ...extra,
  });
}

function refused(json: string, message: RegExp): void {
  assert.throws(() => parseGoogleCredentials(json, "cred.json"), (e: unknown) => {
    assert.ok(e instanceof CredentialError);
    assert.equal(e.reason, "AuthFailed");
    assert.equal(e.source, "cred.json");
    assert.match(e.message, message);
    return true;
  });
}

Deno.test("parseGoogleCredentials accepts the files gcloud writes for federation, impersonation and workforce users", () => {
  assert.equal(parseGoogleCredentials(external({ file: "/var/run/token" }), "f").type, "external_account");
  assert.equal(
    parseGoogleCredentials(
      external({
        url: "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01",
        headers: { Metadata: "True" },
        format: { type: "json", subject_token_field_name: "access_token" },
      }),
      "f",
    ).type,
    "external_account",
  );
  const aws = parseGoogleCredentials(
    external({
      environment_id: "aws1",
      region_url: "http://169.254.169.254/latest/meta-data/placement/availability-zone",
      url: "http://169.254.169.254/latest/meta-data/iam/security-credentials",
      regional_cred_verification_url:
        "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
    }, { subject_token_type: "urn:ietf:params:aws:token-type:aws4_request" }),
    "f",
  );
  assert.equal(aws.type, "external_account");
  const imp = parseGoogleCredentials(
    JSON.stringify({
      type: "impersonated_service_account",
      service_account_impersonation_url:
        "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken",
      delegates: [],
      source_credentials: { type: "authorized_user", client_id: "c", client_secret: "s", refresh_token: "r" },
    }),
    "f",
  );
  assert.equal(imp.type, "impersonated_service_account");
  const user = parseGoogleCredentials(
    JSON.stringify({
      type: "external_account_authorized_user",
      audience: "//iam.googleapis.com/locations/global/workforcePools/p/providers/k",
      refresh_token: "r",
      token_url: "https://sts.googleapis.com/v1/oauthtoken",
      client_id: "c",
      client_secret: "s",
    }),
    "f",
  );
  assert.equal(user.type, "external_account_authorized_user");
});

Deno.test("parseGoogleCredentials refuses what it cannot use, naming the field and never a value", () => {
  refused(
    external({ executable: { command: "/bin/get-token" } }),
    /executable; Portager runs no subprocesses/,
  );
  refused(external({ certificate: { use_default_certificate_config: true } }), /X\.509 certificate \(mTLS\)/);
  refused(external({ file: "/a", url: "http://x/" }), /exactly one of file, url or environment_id \(has 2\)/);
  refused(external({}), /exactly one of file, url or environment_id \(has 0\)/);
  refused(
    external({ file: "/a", format: { type: "json" } }),
    /format type json needs subject_token_field_name/,
  );
  refused(external({ file: "/a", format: { type: "xml" } }), /format\.type must be "text" or "json"/);
  refused(external({ url: "file:///etc/passwd" }), /credential_source: url must be an http\(s\) URL/);
  refused(external({ environment_id: "aws2", regional_cred_verification_url: "https://x" }), /aws version 2/);
  refused(external({ environment_id: "azure1" }), /environment_id "azure1" is not supported/);
  refused(external({ environment_id: "aws1" }), /missing regional_cred_verification_url/);
  refused(external({ file: "/a" }, { token_url: "ftp://sts" }), /token_url must be an http\(s\) URL/);
  refused(
    JSON.stringify({ type: "external_account", subject_token_type: "t", credential_source: { file: "/a" } }),
    /cred\.json \(external_account\) is missing audience/,
  );
  refused(external({ file: "/a", headers: { A: 1 } }), /headers must map names to strings/);
  refused(
    JSON.stringify({
      type: "impersonated_service_account",
      service_account_impersonation_url: "https://iam/x:generateAccessToken",
      source_credentials: {
        type: "impersonated_service_account",
        service_account_impersonation_url: "https://iam/y:generateAccessToken",
        source_credentials: {},
      },
    }),
    /source_credentials cannot themselves be impersonated_service_account/,
  );
  refused(
    JSON.stringify({
      type: "impersonated_service_account",
      service_account_impersonation_url: "https://iam/x:generateAccessToken",
      source_credentials: { type: "authorized_user", client_id: "c", client_secret: "very-secret" },
    }),
    /source_credentials is missing refresh_token/,
  );
  refused(
    JSON.stringify({ type: "gdch_service_account" }),
    /^cred\.json has type "gdch_service_account"; supported are/,
  );
  refused("[]", /cred\.json must hold a JSON object/);
  assert.throws(
    () =>
      parseGoogleCredentials(
        JSON.stringify({
          type: "external_account_authorized_user",
          refresh_token: "tok-123456",
          token_url: "x",
        }),
        "f",
      ),
    (e: unknown) => e instanceof CredentialError && !e.message.includes("tok-123456"),
  );
});

Deno.test("wellKnownCredentialsFile: CLOUDSDK_CONFIG first, then HOME/.config/gcloud, else none", () => {
  const env = (vars: Record<string, string>) => (n: string) => vars[n];
  assert.equal(
    wellKnownCredentialsFile(env({ CLOUDSDK_CONFIG: "/etc/gcloud/", HOME: "/home/u" })),
    "/etc/gcloud/application_default_credentials.json",
  );
  assert.equal(
    wellKnownCredentialsFile(env({ HOME: "/home/u" })),
    "/home/u/.config/gcloud/application_default_credentials.json",
  );
  assert.equal(wellKnownCredentialsFile(env({})), undefined);
});
