/**
 * Google Artifact Registry credentials with full Application Default Credentials, end to end
 * over HTTP against tests/harness/google_sts.ts (Google's STS token exchange, IAM Credentials
 * generateAccessToken and OAuth2 refresh grant, as documented) and, for the AWS credential
 * source, AWS played by botocore and moto: the harness checks the signed GetCallerIdentity
 * request's SigV4 signature with botocore (AWS's own signer) and replays it to moto for the
 * caller's ARN, as Google's STS replays it to AWS.
 * Credential files are written the way `gcloud iam workload-identity-pools create-cred-config`
 * and `gcloud auth application-default login` write them. Each resolver gets its own
 * environment map, so nothing leaks into or out of the test process's environment.
 */
import assert from "node:assert/strict";
import {
  CredentialError,
  credentialsForSpec,
  GarCredentialResolver,
  type GarOptions,
} from "../src/credentials/mod.ts";
import type { ImageSyncSpec } from "../src/api/mod.ts";
import { syncImageSync } from "../src/sync/mod.ts";
import { getManifest, pushImage } from "./harness/fixtures.ts";
import { startRegistry } from "./harness/registry.ts";
import { botocoreAwsVerifier, type GoogleSts, startGoogleSts } from "./harness/google_sts.ts";
import { MOTO_ACCOUNT, motoServerPath, startMoto } from "./harness/moto.ts";

const AUDIENCE =
  "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/portager/providers/k8s";
const SA = "mirror@proj.iam.gserviceaccount.com";
const CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform";
const SUBJECT = "eyJhbGciOiJSUzI1NiJ9.subject-jwt-from-kubelet.sig";
const HOST = "europe-west1-docker.pkg.dev";

async function withSts(
  opts: Parameters<typeof startGoogleSts>[0],
  fn: (sts: GoogleSts, dir: string) => Promise<void>,
): Promise<void> {
  const sts = startGoogleSts(opts);
  const dir = await Deno.makeTempDir({ prefix: "portager-gar-" });
  try {
    await fn(sts, dir);
  } finally {
    await sts.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

function resolver(env: Record<string, string>, opts: GarOptions = {}): GarCredentialResolver {
  return new GarCredentialResolver({
    env: (n) => env[n],
    metadataHost: "127.0.0.1:9",
    timeoutMs: 5000,
    ...opts,
  });
}

/** The registry password `r` answers for a GAR host, after checking the username. */
async function password(r: GarCredentialResolver): Promise<string> {
  const cred = await r.resolve(HOST);
  assert.ok(cred && "username" in cred, "basic credentials");
  assert.equal(cred.username, "oauth2accesstoken");
  return cred.password;
}

/** Asserts an AuthFailed CredentialError whose message matches and carries none of `secrets`. */
async function rejectsAuthFailed(p: Promise<unknown>, message: RegExp, secrets: string[]): Promise<string> {
  let msg = "";
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof CredentialError, String(e));
    assert.equal(e.reason, "AuthFailed");
    assert.match(e.message, message);
    for (const s of secrets) assert.ok(!e.message.includes(s), `message leaks ${s}: ${e.message}`);
    msg = e.message;
    return true;
  });
  return msg;
}

function fileSourceConfig(sts: GoogleSts, subjectFile: string, impersonate = true): Record<string, unknown> {
  // As `gcloud iam workload-identity-pools create-cred-config … --credential-source-file` writes it.
  return {
    type: "external_account",
    audience: AUDIENCE,
    subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
    token_url: sts.stsTokenUrl,
    ...(impersonate ? { service_account_impersonation_url: sts.impersonationUrl(SA) } : {}),
    credential_source: { file: subjectFile, format: { type: "text" } },
  };
}

Deno.test("GAR external_account, file source + impersonation: STS exchange and generateAccessToken as Google documents them; token cached", async () => {
  await withSts({ audience: AUDIENCE, subjectTokens: [SUBJECT], serviceAccounts: [SA] }, async (sts, dir) => {
    await Deno.writeTextFile(`${dir}/token`, SUBJECT + "\n");
    await Deno.writeTextFile(`${dir}/cred.json`, JSON.stringify(fileSourceConfig(sts, `${dir}/token`)));
    const r = resolver({ GOOGLE_APPLICATION_CREDENTIALS: `${dir}/cred.json` });
    const cred = await password(r);
    assert.equal(
      sts.issued.get(cred),
      `iam:${SA}`,
      "the registry password is the impersonated token",
    );

    const [exchange, impersonation] = sts.requests;
    assert.equal(sts.requests.length, 2);
    assert.equal(exchange.path, "/v1/token");
    assert.match(exchange.headers["content-type"], /^application\/x-www-form-urlencoded/);
    assert.equal(exchange.headers.authorization, undefined, "no client auth without client_id");
    assert.deepEqual(exchange.form, {
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      audience: AUDIENCE,
      scope: CLOUD_PLATFORM,
      requested_token_type: "urn:ietf:params:oauth:token-type:access_token",
      subject_token: SUBJECT,
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
    });
    assert.equal(exchange.status, 200);

    assert.equal(impersonation.path, `/v1/projects/-/serviceAccounts/${SA}:generateAccessToken`);
    assert.equal(impersonation.method, "POST");
    assert.match(impersonation.headers["content-type"], /^application\/json/);
    const federated = impersonation.headers.authorization.replace(/^Bearer /, "");
    assert.equal(sts.issued.get(federated), "sts", "impersonation is authorized by the STS token");
    assert.deepEqual(impersonation.json, { scope: [CLOUD_PLATFORM], lifetime: "3600s" });

    assert.equal(await password(r), cred, "cached");
    assert.equal(sts.requests.length, 2, "no second exchange while the token is fresh");
  });
});

Deno.test("GAR external_account, URL source (JSON format, headers), no impersonation: the STS token is the password; token_lifetime honoured", async () => {
  const subjectUrl = { header: ["Metadata", "True"] as [string, string], token: "azure-issued-jwt" };
  await withSts({
    audience: AUDIENCE,
    subjectTokens: ["azure-issued-jwt"],
    serviceAccounts: [SA],
    subjectUrl,
  }, async (sts, dir) => {
    const config = {
      type: "external_account",
      audience: AUDIENCE,
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
      token_url: sts.stsTokenUrl,
      credential_source: {
        url: sts.subjectTokenUrl,
        headers: { Metadata: "True" },
        format: { type: "json", subject_token_field_name: "access_token" },
      },
    };
    await Deno.writeTextFile(`${dir}/cred.json`, JSON.stringify(config));
    const cred = await password(resolver({ GOOGLE_APPLICATION_CREDENTIALS: `${dir}/cred.json` }));
    assert.equal(sts.issued.get(cred), "sts");
    assert.deepEqual(sts.requests.map((r) => `${r.method} ${r.path} ${r.status}`), [
      "GET /subject-token 200",
      "POST /v1/token 200",
    ]);
    assert.equal(sts.requests[1].form?.subject_token, "azure-issued-jwt");
    assert.equal(sts.requests[1].form?.scope, CLOUD_PLATFORM);

    // With impersonation and a custom lifetime.
    await Deno.writeTextFile(
      `${dir}/imp.json`,
      JSON.stringify({
        ...config,
        service_account_impersonation_url: sts.impersonationUrl(SA),
        service_account_impersonation: { token_lifetime_seconds: 1800 },
      }),
    );
    const imp = await password(resolver({ GOOGLE_APPLICATION_CREDENTIALS: `${dir}/imp.json` }));
    assert.equal(sts.issued.get(imp), `iam:${SA}`);
    assert.deepEqual(sts.requests.at(-1)?.json, { scope: [CLOUD_PLATFORM], lifetime: "1800s" });
  });
});

Deno.test("GAR external_account failures: wrong audience, rejected subject token, STS down, impersonation denied, missing file → AuthFailed, no secret in the message", async () => {
  await withSts({ audience: AUDIENCE, subjectTokens: [SUBJECT], serviceAccounts: [SA] }, async (sts, dir) => {
    await Deno.writeTextFile(`${dir}/token`, SUBJECT);
    const write = async (name: string, config: Record<string, unknown>) => {
      await Deno.writeTextFile(`${dir}/${name}`, JSON.stringify(config));
      return resolver({ GOOGLE_APPLICATION_CREDENTIALS: `${dir}/${name}` });
    };
    const good = fileSourceConfig(sts, `${dir}/token`);
    const wrongAudience = await write("aud.json", { ...good, audience: AUDIENCE.replace("k8s", "other") });
    const msg = await rejectsAuthFailed(
      wrongAudience.resolve(HOST),
      /GOOGLE_APPLICATION_CREDENTIALS file .*aud\.json: STS token exchange for .*providers\/other: 127\.0\.0\.1:\d+ refused the token request \(HTTP 400\): invalid_target/,
      [SUBJECT],
    );
    assert.ok(!msg.includes("ya29."), msg);

    await Deno.writeTextFile(`${dir}/bad-token`, "not-the-kubelet-token");
    await rejectsAuthFailed(
      (await write("bad.json", fileSourceConfig(sts, `${dir}/bad-token`))).resolve(HOST),
      /HTTP 400\): invalid_grant/,
      ["not-the-kubelet-token"],
    );

    sts.failSts(503);
    await rejectsAuthFailed((await write("down.json", good)).resolve(HOST), /HTTP 503\): server_error/, [
      SUBJECT,
    ]);

    const denied = await write("denied.json", {
      ...good,
      service_account_impersonation_url: sts.impersonationUrl("other@proj.iam.gserviceaccount.com"),
    });
    await rejectsAuthFailed(
      denied.resolve(HOST),
      /impersonation of other@proj\.iam\.gserviceaccount\.com: .* \(HTTP 403\): PERMISSION_DENIED: Permission 'iam\.serviceAccounts\.getAccessToken' denied/,
      [SUBJECT, "ya29."],
    );

    await rejectsAuthFailed(
      (await write("nofile.json", fileSourceConfig(sts, `${dir}/absent`))).resolve(HOST),
      /cannot read the subject token file .*absent \(credential_source\.file\)/,
      [],
    );

    const unreachable = await write("unreachable.json", {
      ...good,
      token_url: "http://127.0.0.1:9/v1/token",
    });
    await rejectsAuthFailed(unreachable.resolve(HOST), /STS token exchange .*cannot reach 127\.0\.0\.1:9/, [
      SUBJECT,
    ]);
  });
});

Deno.test("GAR gcloud well-known file (CLOUDSDK_CONFIG, then HOME): impersonated_service_account over authorized_user, delegates sent", async () => {
  const user = {
    clientId: "764086051850-x.apps.googleusercontent.com",
    clientSecret: "d-FL95Q19q7MQmFpd7hHD0Ty",
    refreshToken: "1//0refresh-token",
  };
  await withSts({ audience: AUDIENCE, serviceAccounts: [SA], refreshTokens: [user] }, async (sts, dir) => {
    const delegate = "projects/-/serviceAccounts/hop@proj.iam.gserviceaccount.com";
    // As `gcloud auth application-default login --impersonate-service-account` writes it.
    const adc = JSON.stringify({
      type: "impersonated_service_account",
      service_account_impersonation_url: sts.impersonationUrl(SA),
      delegates: [delegate],
      source_credentials: {
        type: "authorized_user",
        client_id: user.clientId,
        client_secret: user.clientSecret,
        refresh_token: user.refreshToken,
        token_uri: sts.oauthTokenUrl,
      },
    });
    await Deno.mkdir(`${dir}/gcloud-config`);
    await Deno.writeTextFile(`${dir}/gcloud-config/application_default_credentials.json`, adc);
    const viaConfig = await password(
      resolver({ CLOUDSDK_CONFIG: `${dir}/gcloud-config`, HOME: `${dir}/nohome` }),
    );
    assert.equal(sts.issued.get(viaConfig), `iam:${SA}`);
    const [grant, imp] = sts.requests;
    assert.deepEqual(grant.form, {
      grant_type: "refresh_token",
      client_id: user.clientId,
      client_secret: user.clientSecret,
      refresh_token: user.refreshToken,
    });
    assert.equal(sts.issued.get(imp.headers.authorization.replace("Bearer ", "")), "oauth");
    assert.deepEqual(imp.json, { scope: [CLOUD_PLATFORM], lifetime: "3600s", delegates: [delegate] });

    await Deno.mkdir(`${dir}/home/.config/gcloud`, { recursive: true });
    await Deno.writeTextFile(`${dir}/home/.config/gcloud/application_default_credentials.json`, adc);
    const viaHome = await password(resolver({ HOME: `${dir}/home` }));
    assert.equal(sts.issued.get(viaHome), `iam:${SA}`);

    // GOOGLE_APPLICATION_CREDENTIALS wins over the well-known file; without either, the metadata server.
    await rejectsAuthFailed(
      resolver({ HOME: `${dir}/home`, GOOGLE_APPLICATION_CREDENTIALS: `${dir}/missing.json` }).resolve(HOST),
      /cannot read GOOGLE_APPLICATION_CREDENTIALS file .*missing\.json/,
      [],
    );
    await rejectsAuthFailed(
      resolver({ HOME: `${dir}/empty-home` }).resolve(HOST),
      /^metadata server 127\.0\.0\.1:9 \(Workload Identity\): access token \(no GOOGLE_APPLICATION_CREDENTIALS and no .*empty-home\/\.config\/gcloud\/application_default_credentials\.json, so the metadata server was asked\): cannot reach 127\.0\.0\.1:9/,
      [],
    );
    // A revoked refresh token: Google's invalid_grant, and none of the user's secrets in the message.
    const revoked = JSON.parse(adc);
    revoked.source_credentials.refresh_token = "1//0revoked";
    await Deno.writeTextFile(
      `${dir}/gcloud-config/application_default_credentials.json`,
      JSON.stringify(revoked),
    );
    await rejectsAuthFailed(
      resolver({ CLOUDSDK_CONFIG: `${dir}/gcloud-config` }).resolve(HOST),
      /gcloud application-default credentials file .*: refresh-token grant: .* \(HTTP 400\): invalid_grant/,
      [user.clientSecret, "1//0revoked"],
    );
  });
});

Deno.test("GAR external_account, AWS source: signed GetCallerIdentity verified by botocore and answered by moto (env credentials, then IMDSv2)", async () => {
  const moto = await startMoto();
  try {
    const key = await moto.createUser("gcp-federation", ["sts:GetCallerIdentity"]);
    const imds = { role: "ec2-gcp-role", zone: "eu-west-1b", credentials: key };
    const python = motoServerPath().replace(/moto_server$/, "python");
    const awsVerifier = botocoreAwsVerifier(python, moto.url, { [key.accessKeyId]: key.secretAccessKey });
    await withSts({ audience: AUDIENCE, serviceAccounts: [SA], imds, awsVerifier }, async (sts, dir) => {
      // As create-cred-config --aws writes it, with the IMDS and Google endpoints pointed at the
      // harness; the verification URL stays AWS's (it is signed, never fetched by Portager).
      const config = {
        type: "external_account",
        audience: AUDIENCE,
        subject_token_type: "urn:ietf:params:aws:token-type:aws4_request",
        token_url: sts.stsTokenUrl,
        service_account_impersonation_url: sts.impersonationUrl(SA),
        credential_source: {
          environment_id: "aws1",
          region_url: `${sts.imdsUrl}/meta-data/placement/availability-zone`,
          url: `${sts.imdsUrl}/meta-data/iam/security-credentials`,
          regional_cred_verification_url:
            "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
          imdsv2_session_token_url: `${sts.imdsUrl}/api/token`,
        },
      };
      await Deno.writeTextFile(`${dir}/aws.json`, JSON.stringify(config));

      // 1. Credentials and region from the environment: IMDS is not asked.
      const env = {
        GOOGLE_APPLICATION_CREDENTIALS: `${dir}/aws.json`,
        AWS_REGION: "us-east-2",
        AWS_ACCESS_KEY_ID: key.accessKeyId,
        AWS_SECRET_ACCESS_KEY: key.secretAccessKey,
      };
      const cred = await password(resolver(env));
      assert.equal(sts.issued.get(cred), `iam:${SA}`);
      assert.deepEqual(sts.awsCallers, [`arn:aws:iam::${MOTO_ACCOUNT}:user/gcp-federation`]);
      assert.ok(!sts.requests.some((r) => r.path.startsWith("/latest/")), "IMDS not asked");
      const exchange = sts.requests.find((r) => r.path === "/v1/token")!;
      assert.equal(exchange.form?.subject_token_type, "urn:ietf:params:aws:token-type:aws4_request");
      const signed = JSON.parse(decodeURIComponent(exchange.form!.subject_token));
      assert.equal(signed.method, "POST");
      assert.equal(
        signed.url,
        "https://sts.us-east-2.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
      );
      const headers = Object.fromEntries(
        (signed.headers as { key: string; value: string }[]).map((h) => [h.key.toLowerCase(), h.value]),
      );
      assert.equal(headers["x-goog-cloud-target-resource"], AUDIENCE);
      assert.match(
        headers.authorization,
        new RegExp(`Credential=${key.accessKeyId}/\\d{8}/us-east-2/sts/aws4_request`),
      );
      assert.ok(!exchange.form!.subject_token.includes(key.secretAccessKey), "the secret key is never sent");
      const calls = await moto.calls();
      assert.ok(
        calls.some((c) =>
          c.action === "GetCallerIdentity" && c.accessKeyId === key.accessKeyId && c.region === "us-east-2"
        ),
        JSON.stringify(calls.slice(-3)),
      );

      // 2. Nothing in the environment: IMDSv2 session, zone → region, role → credentials.
      sts.requests.length = 0;
      const viaImds = await password(resolver({ GOOGLE_APPLICATION_CREDENTIALS: `${dir}/aws.json` }));
      assert.equal(sts.issued.get(viaImds), `iam:${SA}`);
      assert.deepEqual(sts.requests.map((r) => `${r.method} ${r.path} ${r.status}`), [
        "PUT /latest/api/token 200",
        "GET /latest/meta-data/placement/availability-zone 200",
        "GET /latest/meta-data/iam/security-credentials 200",
        "GET /latest/meta-data/iam/security-credentials/ec2-gcp-role 200",
        "POST /v1/token 200",
        `POST /v1/projects/-/serviceAccounts/${SA}:generateAccessToken 200`,
      ]);
      const session = sts.requests[0];
      assert.equal(session.headers["x-aws-ec2-metadata-token-ttl-seconds"], "300");
      for (const r of sts.requests.slice(1, 4)) {
        assert.match(r.headers["x-aws-ec2-metadata-token"], /^imds-session-/);
      }
      const region = JSON.parse(decodeURIComponent(sts.requests[4].form!.subject_token)).headers
        .find((h: { key: string }) => h.key === "Authorization").value;
      assert.match(region, /\/eu-west-1\/sts\/aws4_request/, "region from the availability zone");

      // 3. A wrong secret key: AWS refuses the replayed request, STS answers invalid_grant.
      await rejectsAuthFailed(
        resolver({ ...env, AWS_SECRET_ACCESS_KEY: "wrong-secret-key-value" }).resolve(HOST),
        /STS token exchange .*\(HTTP 400\): invalid_grant: AWS rejected the GetCallerIdentity request \(SignatureDoesNotMatch\)/,
        ["wrong-secret-key-value", key.secretAccessKey],
      );
    });
  } finally {
    await moto.stop();
  }
});

Deno.test("GAR end to end: an ImageSync with auth method gar pushes with the federated, impersonated token as oauth2accesstoken", async () => {
  const token = "ya29.c.impersonated-mirror-token";
  const src = await startRegistry("plain");
  const dst = await startRegistry("basic", { users: { oauth2accesstoken: token } });
  try {
    const pushed = await pushImage(src, { repository: "team/app", tag: "1.0" }, { seed: 21, layers: [2048] });
    await withSts(
      {
        audience: AUDIENCE,
        subjectTokens: [SUBJECT],
        serviceAccounts: [SA],
        fixedTokens: { [`iam:${SA}`]: token },
      },
      async (sts, dir) => {
        await Deno.writeTextFile(`${dir}/token`, SUBJECT);
        await Deno.writeTextFile(`${dir}/cred.json`, JSON.stringify(fileSourceConfig(sts, `${dir}/token`)));
        const spec: ImageSyncSpec = {
          schedule: "@hourly",
          source: { registry: src.host },
          destination: { registry: dst.host, auth: { method: "gar" }, repositoryPrefix: "mirror" },
          images: [{ name: "team/app", tags: ["1.0"] }],
        };
        const env: Record<string, string> = { GOOGLE_APPLICATION_CREDENTIALS: `${dir}/cred.json` };
        const creds = await credentialsForSpec(spec, {
          namespace: "infra",
          loadSecret: () => Promise.resolve(undefined),
          // The harness registry is not a *-docker.pkg.dev host: anyHost stands in for that name.
          gar: { anyHost: true, env: (n) => env[n] },
        });
        const report = await syncImageSync(spec, {
          sourceCredentials: creds.source,
          destinationCredentials: creds.destination,
        });
        assert.ok(report.ok, JSON.stringify(report.images[0]?.tags));
        const got = await getManifest(dst, "mirror/team/app", "1.0");
        assert.equal(got.status, 200);
        assert.equal(got.digest, pushed.digest);
        assert.equal(
          sts.requests.filter((r) => r.path === "/v1/token").length,
          1,
          "one STS exchange for the whole sync",
        );
      },
    );
  } finally {
    await src.stop();
    await dst.stop();
  }
});
