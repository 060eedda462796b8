import assert from "node:assert/strict";
import { awsSubjectToken, signAwsRequest } from "./gar_aws.ts";
import { CredentialError } from "./errors.ts";

const VERIFY = "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15";

Deno.test("signAwsRequest: the GetCallerIdentity request Google's STS replays (SigV4 over host, date, token, target)", () => {
  const signed = signAwsRequest(
    "https://sts.us-east-1.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
    {
      accessKeyId: "AKIDEXAMPLE",
      secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
      sessionToken: "sess",
    },
    {
      region: "us-east-1",
      headers: { "x-goog-cloud-target-resource": "//iam.googleapis.com/x" },
      now: new Date("2020-08-11T06:55:22Z"),
    },
  );
  assert.equal(signed.method, "POST");
  assert.deepEqual(signed.headers.map((h) => h.key), [
    "Authorization",
    "Host",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Goog-Cloud-Target-Resource",
  ]);
  const h = Object.fromEntries(signed.headers.map((x) => [x.key, x.value]));
  assert.equal(h.Host, "sts.us-east-1.amazonaws.com");
  assert.equal(h["X-Amz-Date"], "20200811T065522Z");
  assert.equal(h["X-Amz-Security-Token"], "sess");
  assert.match(
    h.Authorization,
    /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/20200811\/us-east-1\/sts\/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token;x-goog-cloud-target-resource, Signature=[0-9a-f]{64}$/,
  );
  assert.ok(!JSON.stringify(signed).includes("wJalrXUtnFEMI"), "the secret key is not in the request");
  // The signature node:crypto's HMAC-SHA256 gave for these inputs (the signing is now JavaScript's).
  assert.ok(
    h.Authorization.endsWith("Signature=fb3060105c0c6ad2d2bdcad1e11e116ae754fc69cf3e46c04ee1077527209c78"),
  );
  // Deterministic for the same inputs, different for another secret.
  const again = signAwsRequest(signed.url, {
    accessKeyId: "AKIDEXAMPLE",
    secretAccessKey: "other",
    sessionToken: "sess",
  }, {
    region: "us-east-1",
    headers: { "x-goog-cloud-target-resource": "//iam.googleapis.com/x" },
    now: new Date("2020-08-11T06:55:22Z"),
  });
  assert.notEqual(again.headers[0].value, h.Authorization);
});

Deno.test("awsSubjectToken: environment credentials and region; {region} substituted; clear errors without them", async () => {
  const env = (vars: Record<string, string>) => (n: string) => vars[n];
  const token = await awsSubjectToken({ environment_id: "aws1", regional_cred_verification_url: VERIFY }, {
    audience: "//iam.googleapis.com/aud",
    env: env({
      AWS_DEFAULT_REGION: "ap-south-1",
      AWS_ACCESS_KEY_ID: "AKID",
      AWS_SECRET_ACCESS_KEY: "s3cr3t-key",
    }),
    source: "cred.json",
  });
  const req = JSON.parse(decodeURIComponent(token));
  assert.equal(req.url, "https://sts.ap-south-1.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15");
  assert.ok(!token.includes("s3cr3t-key"));
  assert.ok(!req.headers.some((h: { key: string }) => h.key === "X-Amz-Security-Token"), "no session token");

  await assert.rejects(
    awsSubjectToken({ environment_id: "aws1", regional_cred_verification_url: VERIFY }, {
      audience: "a",
      env: env({ AWS_ACCESS_KEY_ID: "AKID", AWS_SECRET_ACCESS_KEY: "s" }),
      source: "cred.json",
    }),
    (e: unknown) =>
      e instanceof CredentialError &&
      /needs AWS_REGION \(or AWS_DEFAULT_REGION\) or credential_source\.region_url/.test(e.message),
  );
  await assert.rejects(
    awsSubjectToken({ environment_id: "aws1", regional_cred_verification_url: VERIFY }, {
      audience: "a",
      env: env({ AWS_REGION: "us-east-1" }),
      source: "cred.json",
    }),
    (e: unknown) =>
      e instanceof CredentialError &&
      /needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or credential_source\.url/.test(e.message),
  );
});

Deno.test("awsSubjectToken: an IMDS answering junk for the role name is refused", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("a b/../c"),
  );
  try {
    const base = `http://127.0.0.1:${server.addr.port}`;
    await assert.rejects(
      awsSubjectToken({
        environment_id: "aws1",
        url: `${base}/creds`,
        regional_cred_verification_url: VERIFY,
      }, {
        audience: "a",
        env: (n) => n === "AWS_REGION" ? "us-east-1" : undefined,
        source: "cred.json",
      }),
      (e: unknown) => e instanceof CredentialError && /answered no usable IAM role name/.test(e.message),
    );
  } finally {
    await server.shutdown();
  }
});
