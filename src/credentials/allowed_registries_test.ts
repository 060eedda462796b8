import assert from "node:assert/strict";
import { CredentialError } from "./errors.ts";
import { checkAllowedRegistries, parseAllowedRegistries } from "./allowed_registries.ts";

Deno.test("allowed registries: exact hosts, ports, wildcards, Docker Hub's spellings as one", () => {
  const a = parseAllowedRegistries([
    "ghcr.io",
    "*.dkr.ecr.us-east-1.amazonaws.com",
    "Registry.Internal:5000",
    "docker.io",
  ]);
  for (
    const host of [
      "ghcr.io",
      "GHCR.io",
      "123456789012.dkr.ecr.us-east-1.amazonaws.com",
      "registry.internal:5000",
    ]
  ) {
    assert.ok(a.allows(host), host);
  }
  for (const host of ["index.docker.io", "registry-1.docker.io"]) assert.ok(a.allows(host), host);
  for (
    const host of [
      "ghcr.io.evil.example", // no implicit suffix
      "evil-ghcr.io",
      "dkr.ecr.us-east-1.amazonaws.com", // "*." needs a label before it
      "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
      "registry.internal", // the port is part of the pattern
      "registry.internal:5001",
      "169.254.169.254",
      "quay.io",
    ]
  ) assert.ok(!a.allows(host), host);
  // a port wildcard, an IP literal
  const b = parseAllowedRegistries(["localhost:*", "10.0.0.7:5000", "[::1]:5000"]);
  assert.ok(b.allows("localhost:5000") && !b.allows("localhost"));
  assert.ok(b.allows("10.0.0.7:5000") && !b.allows("10.0.0.17:5000"), "dots are literal");
  assert.ok(b.allows("[::1]:5000"));
});

Deno.test("allowed registries: a pattern with a scheme, a path or other characters is refused, saying which", () => {
  for (
    const bad of ["https://ghcr.io", "ghcr.io/acme", "gh cr.io", "ghcr.io:port", "-ghcr.io", "a..b?", ""]
  ) {
    assert.throws(() => parseAllowedRegistries([bad]), TypeError, bad);
  }
  assert.throws(
    () => parseAllowedRegistries(["ghcr.io/acme"]),
    /registry pattern "ghcr\.io\/acme": write a host/,
  );
  assert.throws(() => parseAllowedRegistries(Array(257).fill("ghcr.io")), /at most 256/);
});

Deno.test("allowed registries: a spec naming another registry is refused as RegistryNotAllowed, naming its role and host", () => {
  const allowed = parseAllowedRegistries(["ghcr.io", "*.example.com"]);
  checkAllowedRegistries({ source: "ghcr.io/acme", destination: "mirror.example.com/team" }, allowed);
  assert.throws(
    () => checkAllowedRegistries({ source: "ghcr.io", destination: "mirror.example.com:443" }, allowed),
    /mirror\.example\.com:443 is not one/,
    "a port is named by the pattern",
  );
  checkAllowedRegistries({ source: "169.254.169.254", destination: "x" }, undefined); // no flag: all
  const err = (() => {
    try {
      checkAllowedRegistries({ source: "ghcr.io", destination: "169.254.169.254/latest" }, allowed);
    } catch (e) {
      return e;
    }
  })();
  assert.ok(err instanceof CredentialError);
  assert.equal(err.reason, "RegistryNotAllowed");
  assert.equal(err.registry, "169.254.169.254");
  assert.match(
    err.message,
    /^the destination registry 169\.254\.169\.254 is not one this operator syncs with \(allowed: ghcr\.io, \*\.example\.com;/,
  );
  assert.throws(
    () => checkAllowedRegistries({ source: "quay.io", destination: "ghcr.io" }, parseAllowedRegistries([])),
    /the source registry quay\.io .* \(allowed: none;/,
  );
});
