import assert from "node:assert/strict";
import { errorFromResponse, OciError, parseRegistryErrors, reasonForStatus, redactUrls } from "./errors.ts";

Deno.test("reasonForStatus maps statuses and registry error codes to stable reasons", () => {
  assert.equal(reasonForStatus(401), "Unauthorized");
  assert.equal(reasonForStatus(403), "Forbidden");
  assert.equal(reasonForStatus(404), "NotFound");
  assert.equal(reasonForStatus(415), "UnsupportedMediaType");
  assert.equal(reasonForStatus(429), "RateLimited");
  assert.equal(reasonForStatus(503), "ServerError");
  assert.equal(reasonForStatus(400), "Protocol");
  assert.equal(reasonForStatus(400, [{ code: "DIGEST_INVALID", message: "" }]), "DigestMismatch");
  assert.equal(reasonForStatus(400, [{ code: "MANIFEST_INVALID", message: "" }]), "ManifestInvalid");
  assert.equal(reasonForStatus(403, [{ code: "DENIED", message: "" }]), "Forbidden");
  assert.equal(reasonForStatus(401, [{ code: "DENIED", message: "" }]), "Unauthorized");
});

Deno.test("errorFromResponse names the registry and reference and quotes the registry's error", () => {
  const e = errorFromResponse(
    404,
    JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN", message: "manifest unknown" }] }),
    { registry: "ghcr.io", reference: "ghcr.io/o/r:1", action: "pull manifest" },
  );
  assert.equal(e.reason, "NotFound");
  assert.equal(e.registry, "ghcr.io");
  assert.equal(e.status, 404);
  assert.equal(
    e.message,
    "registry ghcr.io: not found (HTTP 404) while trying to pull manifest ghcr.io/o/r:1: " +
      "MANIFEST_UNKNOWN: manifest unknown",
  );
  assert.equal(errorFromResponse(502, "<html>", { registry: "r", action: "x" }).retryable, true);
  assert.deepEqual(parseRegistryErrors("not json"), []);
  assert.deepEqual(parseRegistryErrors('{"errors":[{"code":"X"}]}'), [{ code: "X", message: "" }]);
});

Deno.test("redactUrls drops query strings and user info, keeping scheme, host and path", () => {
  assert.equal(
    redactUrls("error sending request for url (https://auth.example/token?account=alice&scope=x): refused"),
    "error sending request for url (https://auth.example/token): refused",
  );
  assert.equal(
    redactUrls("see http://bob:pw@reg.example:5000/v2/?x=1 now"),
    "see http://reg.example:5000/v2/ now",
  );
  assert.equal(redactUrls("no url here ?a=b"), "no url here ?a=b");
});

Deno.test("OciError never carries a URL query in its message or its cause", () => {
  const cause = new TypeError("fetch failed", {
    cause: new Error("error sending request for url (http://127.0.0.1:1/token?account=alice)"),
  });
  const e = new OciError("Network", "cannot reach https://auth.example/token?account=alice: x", { cause });
  assert.equal(e.message, "cannot reach https://auth.example/token: x");
  assert(!String((e.cause as Error).message).includes("alice"));
  const plain = new Error("nothing secret");
  assert.equal(new OciError("Network", "m", { cause: plain }).cause, plain, "a clean cause is kept as is");
});
