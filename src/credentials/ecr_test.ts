import assert from "node:assert/strict";
import {
  decodeEcrToken,
  describeAwsError,
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
