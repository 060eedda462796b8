import assert from "node:assert/strict";
import {
  decodeEcrToken,
  describeAwsError,
  ecrApiSettings,
  EcrCredentialResolver,
  EcrRepositories,
  refreshTime,
} from "./ecr.ts";
import { CredentialError } from "./errors.ts";

Deno.test("decodeEcrToken splits base64 AWS:password", () => {
  assert.deepEqual(decodeEcrToken(btoa("AWS:abc:def")), { username: "AWS", password: "abc:def" });
  assert.equal(decodeEcrToken("%%%"), undefined);
  assert.equal(decodeEcrToken(btoa("no-colon")), undefined);
  assert.equal(decodeEcrToken(btoa(":x")), undefined);
});

Deno.test("refreshTime refreshes shortly before expiry, at half-life for short tokens", () => {
  const t0 = 1_000_000;
  const h = 3_600_000;
  const m = 5 * 60_000;
  assert.equal(refreshTime(t0, t0 + 12 * h, m), t0 + 12 * h - m);
  assert.equal(refreshTime(t0, t0 + 6 * 60_000, m), t0 + 3 * 60_000);
  assert.equal(refreshTime(t0, t0 - h, m), t0, "an already expired token is not reused");
  assert.equal(refreshTime(t0, undefined, m), t0 + h);
});

Deno.test("describeAwsError tells missing credentials from denial", () => {
  const target = { registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com", region: "us-east-1" };
  const missing = Object.assign(new Error("Could not load credentials from any providers"), {
    name: "CredentialsProviderError",
  });
  assert.match(
    describeAwsError(missing, "ecr:GetAuthorizationToken", target),
    /^no AWS credentials found .*IRSA/,
  );
  const denied = Object.assign(new Error("User is not authorized"), { name: "AccessDeniedException" });
  assert.match(
    describeAwsError(denied, "ecr:GetAuthorizationToken", target),
    /^AWS denied ecr:GetAuthorizationToken at registry 123456789012\.dkr\.ecr\.us-east-1\.amazonaws\.com \(region us-east-1\) \(AccessDeniedException\): User is not authorized$/,
  );
  assert.match(
    describeAwsError(new TypeError("fetch failed"), "x", target),
    /^x failed at registry .* \(TypeError\): fetch failed$/,
  );
});

Deno.test("a host that is not ECR fails with AuthFailed before any AWS call", async () => {
  await assert.rejects(() => new EcrCredentialResolver().resolve("ghcr.io"), (e: unknown) => {
    assert.ok(e instanceof CredentialError);
    assert.equal(e.reason, "AuthFailed");
    assert.match(e.message, /^ghcr\.io is not an Amazon ECR registry/);
    return true;
  });
  assert.throws(() => new EcrRepositories("ghcr.io"), CredentialError);
});

Deno.test("ecrApiSettings: the host's region; FIPS and dual-stack endpoints unless an explicit endpoint decides", () => {
  assert.deepEqual(ecrApiSettings({ region: "us-east-1", fips: false, dualStack: false }), {
    region: "us-east-1",
  });
  assert.deepEqual(ecrApiSettings({ region: "us-gov-east-1", fips: true, dualStack: false }), {
    region: "us-gov-east-1",
    useFipsEndpoint: true,
  });
  assert.deepEqual(ecrApiSettings({ region: "eu-west-1", fips: true, dualStack: true }), {
    region: "eu-west-1",
    useFipsEndpoint: true,
    useDualstackEndpoint: true,
  });
  assert.deepEqual(
    ecrApiSettings({ region: "us-east-2", fips: true, dualStack: true }, { customEndpoint: true }),
    { region: "us-east-2" },
  );
});

Deno.test("describeAwsError: region-scoped signatures and unparsable 403 answers", () => {
  const target = { registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com", region: "us-east-1" };
  const scoped = Object.assign(
    new Error("Credential should be scoped to a valid region. "),
    { name: "InvalidSignatureException" },
  );
  assert.match(
    describeAwsError(scoped, "ecr:GetAuthorizationToken", target),
    /^region mismatch: AWS refused ecr:GetAuthorizationToken at registry \S+ \(region us-east-1\) \(InvalidSignatureException\): .*must be in the registry host's region$/,
  );
  // What the SDK throws when a 403 carries XML or HTML instead of ECR's JSON.
  const unparsable = Object.assign(
    new SyntaxError(`Unexpected token '<', "<?xml vers"... is not valid JSON
  Deserialization error: to see the raw response, inspect the hidden field {error}.$response on this object.`),
    { $metadata: { httpStatusCode: 403 } },
  );
  assert.equal(
    describeAwsError(unparsable, "ecr:CreateRepository", target),
    "AWS denied ecr:CreateRepository at registry 123456789012.dkr.ecr.us-east-1.amazonaws.com (region us-east-1) " +
      "(AccessDenied): the ECR API answered HTTP 403 (its error body is not ECR's JSON, so AWS's own reason is unknown)",
  );
  const withBody = Object.assign(new SyntaxError("x\n  Deserialization error: y"), {
    $metadata: { httpStatusCode: 403 },
    $response: { body: "<Error><Code>AccessDenied</Code><Message>not allowed</Message></Error>" },
  });
  assert.match(describeAwsError(withBody, "a", target), /\(AccessDenied\): not allowed$/);
  const serverError = Object.assign(new SyntaxError("x\n  Deserialization error: y"), {
    $metadata: { httpStatusCode: 500 },
  });
  assert.match(describeAwsError(serverError, "a", target), /^a failed at .* \(SyntaxError\)/);
});

Deno.test("EcrOptions.hosts maps a named local registry to an ECR account and region, and nothing else", async () => {
  const opts = { hosts: { "127.0.0.1:5000": { accountId: "123456789012", region: "us-east-1" } } };
  // No throw: the mapped host is an ECR target (no AWS call happens in the constructor).
  new EcrRepositories("127.0.0.1:5000/team", opts);
  await assert.rejects(
    () => new EcrCredentialResolver(opts).resolve("127.0.0.1:5001"),
    /^CredentialError: 127\.0\.0\.1:5001 is not an Amazon ECR registry/,
  );
});
