import assert from "node:assert/strict";
import { ociThrows } from "./_test_utils.ts";
import {
  allowsPlainHttp,
  DOCKER_HUB_HOSTS,
  isDockerHub,
  isLoopbackHost,
  normalizeRegistryHost,
  parseReference,
  registryApiHost,
} from "./reference.ts";

const D = "sha256:" + "a".repeat(64);

Deno.test("parseReference normalizes Docker Hub names like docker does", () => {
  const cases: Array<[string, string]> = [
    ["alpine", "docker.io/library/alpine:latest"],
    ["alpine:3.20", "docker.io/library/alpine:3.20"],
    ["library/alpine", "docker.io/library/alpine:latest"],
    ["docker.io/alpine", "docker.io/library/alpine:latest"],
    ["index.docker.io/library/alpine:3", "docker.io/library/alpine:3"],
    ["bitnami/redis:7", "docker.io/bitnami/redis:7"],
    ["ghcr.io/org/app:v1", "ghcr.io/org/app:v1"],
    ["localhost/app", "localhost/app:latest"],
    ["localhost:5000/a/b/c:dev", "localhost:5000/a/b/c:dev"],
    ["127.0.0.1:5000/x@" + D, "127.0.0.1:5000/x@" + D],
    ["quay.io/o/r:t@" + D, "quay.io/o/r:t@" + D],
    ["[::1]:5000/app:1", "[::1]:5000/app:1"],
    ["a.b-c_d__e.f--g", "docker.io/library/a.b-c_d__e.f--g:latest"],
  ];
  for (const [input, want] of cases) assert.deepEqual(parseReference(input).toString(), want, input);
});

Deno.test("parseReference exposes registry, repository, tag, digest and the API host", () => {
  const r = parseReference("alpine@" + D);
  assert.deepEqual(r.registry, "docker.io");
  assert.deepEqual(r.repository, "library/alpine");
  assert.deepEqual(r.tag, undefined, "a digest-only reference gets no default tag");
  assert.deepEqual(r.digest, D);
  assert.deepEqual(r.apiHost, "registry-1.docker.io");
  assert.deepEqual(r.identifier, D);
  const h = parseReference("registry.example.com:8443/team/app:1.0");
  assert.deepEqual([h.registry, h.repository, h.tag, h.apiHost], [
    "registry.example.com:8443",
    "team/app",
    "1.0",
    "registry.example.com:8443",
  ]);
  assert.deepEqual(registryApiHost("docker.io"), "registry-1.docker.io");
  assert.deepEqual(parseReference("ghcr.io/o/r", { defaultTag: false }).tag, undefined);
  assert.deepEqual(parseReference("ghcr.io/o/r", { defaultTag: "main" }).tag, "main");
});

Deno.test("parseReference: a first component is a host only with '.', ':' or localhost", () => {
  assert.deepEqual(parseReference("myorg/app").registry, "docker.io");
  assert.deepEqual(parseReference("my.org/app").registry, "my.org");
  assert.deepEqual(parseReference("myhost:80/app").registry, "myhost:80");
  // Uppercase first component is taken as a host (docker's rule), the repository stays lowercase.
  assert.deepEqual(parseReference("MyHost/app").registry, "MyHost");
});

Deno.test("parseReference errors quote the input and say what is wrong", () => {
  const bad: Array<[string, RegExp]> = [
    ["", /is empty/],
    ["Alpine", /must be lowercase/],
    ["ghcr.io/Org/app", /must be lowercase/],
    ["alpine:", /tag "" is not valid/],
    ["alpine:-x", /tag "-x" is not valid/],
    ["alpine:" + "t".repeat(129), /tag .* is not valid/],
    ["alpine@sha256:abc", /not a valid sha256 digest/],
    ["alpine@md5", /is not a digest/],
    ["https://ghcr.io/o/r", /no URL scheme/],
    ["ghcr.io//r", /path component "" is not valid/],
    ["ghcr.io/o/r_", /path component "r_" is not valid/],
    ["a b", /whitespace/],
    ["-bad.host:5000/x", /registry host "-bad.host:5000" is not a valid host/],
    ["a".repeat(64), /image ID/],
    ["ghcr.io/" + "a/".repeat(130) + "x", /longer than 255/],
  ];
  for (const [input, re] of bad) {
    const e = ociThrows(() => parseReference(input));
    assert.deepEqual(e.reason, "InvalidReference", input);
    if (!re.test(e.message) || !e.message.includes(`"${input}"`)) {
      throw new Error(`message for ${JSON.stringify(input)} was: ${e.message}`);
    }
  }
});

Deno.test("withTag / withDigest keep the repository and validate", () => {
  const r = parseReference("ghcr.io/o/r:1");
  assert.deepEqual(r.withTag("2").toString(), "ghcr.io/o/r:2");
  assert.deepEqual(r.withDigest(D).toString(), "ghcr.io/o/r@" + D);
  assert.deepEqual(ociThrows(() => r.withTag(".x")).reason, "InvalidReference");
  assert.deepEqual(ociThrows(() => r.withDigest("sha256:00")).reason, "InvalidReference");
});

Deno.test("plain HTTP only for loopback names or listed insecure registries", () => {
  assert.deepEqual(isLoopbackHost("localhost:5000"), true);
  assert.deepEqual(isLoopbackHost("127.0.0.1:5000"), true);
  assert.deepEqual(isLoopbackHost("[::1]:5000"), true);
  assert.deepEqual(isLoopbackHost("127.0.0.2:5000"), false);
  assert.deepEqual(allowsPlainHttp("ghcr.io"), false);
  assert.deepEqual(allowsPlainHttp("reg.lan:5000", ["reg.lan:5000"]), true);
  assert.deepEqual(allowsPlainHttp("reg.lan:5000", ["reg.lan"]), true, "entry without port");
  assert.deepEqual(allowsPlainHttp("reg.lan:5001", ["reg.lan:5000"]), false);
  assert.deepEqual(allowsPlainHttp("reg.lan", ["http://reg.lan/"]), true);
  assert.deepEqual(allowsPlainHttp("evil-reg.lan", ["reg.lan"]), false);
});

Deno.test("Docker Hub's names are known in one place", () => {
  for (const host of DOCKER_HUB_HOSTS) {
    assert(isDockerHub(host));
    assert.equal(normalizeRegistryHost(host), "docker.io");
    assert.equal(parseReference(`${host}/library/alpine`).registry, "docker.io");
  }
  assert(isDockerHub("Index.Docker.IO"));
  assert(!isDockerHub("docker.io.evil.example"));
  assert(!isDockerHub("ghcr.io"));
  assert.equal(normalizeRegistryHost("ghcr.io"), "ghcr.io");
});
