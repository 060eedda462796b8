import assert from "node:assert/strict";
import { formatProblems, validateImageSync, validateImageSyncSpec } from "./validate.ts";
import { registryProblem, repositoryPathProblem, splitRegistry, tagProblem } from "./names.ts";
import { parseEcrHost } from "./ecr_host.ts";

function object(spec: Record<string, unknown>): Record<string, unknown> {
  return {
    apiVersion: "portager.portager.io/v1alpha1",
    kind: "ImageSync",
    metadata: { name: "mirror", namespace: "default" },
    spec,
  };
}

const GOOD = {
  schedule: "@every 1h",
  source: { registry: "docker.io/library" },
  destination: {
    registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com",
    auth: { method: "ecr" },
    repositoryPrefix: "mirror",
  },
  createDestinationRepos: true,
  images: [
    { name: "nginx", tags: ["latest", "1.27"] },
    { name: "python", semver: "3.12.x", maxTags: 0 },
    { name: "node", tags: ["lts"], semver: "^22.0.0" },
  ],
};

Deno.test("a valid ImageSync validates and gets upstream's defaults", () => {
  const r = validateImageSync(object(GOOD));
  assert.ok(r.ok, r.ok ? "" : formatProblems(r.problems));
  assert.equal(r.value.spec.images[0].maxTags, 10);
  assert.equal(r.value.spec.images[1].maxTags, 0);
  const gated = validateImageSyncSpec({
    ...GOOD,
    validation: { vulnerabilityGate: { enabled: true }, cosign: { enabled: false, future: 1 } },
  });
  assert.ok(gated.ok);
  assert.equal(gated.value.validation?.vulnerabilityGate?.maxSeverity, "critical");
  assert.equal(gated.value.validation?.vulnerabilityGate?.requireCveReport, true);
  assert.equal((gated.value.validation?.cosign as Record<string, unknown>).future, 1, "gates are permissive");
});

Deno.test("every problem is reported at once, each with its path", () => {
  const r = validateImageSync(object({
    schedule: "every hour",
    source: { registry: "https://ghcr.io/org" },
    destination: { registry: "Registry.example.com:5000/Team", auth: { method: "secret" } },
    images: [
      { name: "ok", tags: ["1.0"] },
      { name: "nginx:1.27" },
      { name: "app" },
      { name: "App", tag: ["x"], tags: [".bad"], maxTags: -1 },
      { name: "lib", semver: ">= 1.x.y" },
    ],
    extra: true,
  }));
  assert.ok(!r.ok);
  const text = formatProblems(r.problems);
  const expect = [
    /^spec\.schedule: invalid schedule "every hour": a cron expression has 5 fields/m,
    /^spec\.source\.registry: registry must not include a scheme: write "ghcr\.io\/org", not "https:\/\/ghcr\.io\/org"$/m,
    /^spec\.destination\.registry: registry path must be lowercase: "Team" has capital letters$/m,
    /^spec\.images\[1\]\.name: image name must not include a tag \(":1\.27"\): list tags under tags$/m,
    /^spec\.images\[1\]: needs tags or semver$/m,
    /^spec\.images\[2\]: needs tags or semver$/m,
    /^spec\.images\[3\]\.name: image name must be lowercase/m,
    /^spec\.images\[3\]\.tags\[0\]: tag "\.bad" may only hold/m,
    /^spec\.images\[3\]\.maxTags: must be 0 \(unlimited\) or more$/m,
    /^spec\.images\[3\]\.tag: unknown field \(did you mean "tags"\?\)$/m,
    /^spec\.extra: unknown field/m,
  ];
  for (const re of expect) assert.match(text, re);
  assert.ok(!/spec\.images\[0\]/.test(text), text);
  assert.equal(r.problems.length, expect.length, text);
});

Deno.test("types, enums, required fields and the object envelope get plain messages", () => {
  const r = validateImageSync({
    apiVersion: "v1",
    kind: "ImageSync",
    metadata: {},
    spec: {
      schedule: 5,
      source: {},
      destination: { registry: "r.example.com", auth: { method: "basic" } },
      images: [],
      createDestinationRepos: "yes",
    },
  });
  assert.ok(!r.ok);
  const text = formatProblems(r.problems);
  for (
    const re of [
      /^apiVersion: must be portager\.portager\.io\/v1alpha1$/m,
      /^metadata\.name: is required$/m,
      /^spec\.schedule: must be a string, not number 5$/m,
      /^spec\.source\.registry: is required$/m,
      /^spec\.destination\.auth\.method: must be one of: secret, ecr, gar, anonymous$/m,
      /^spec\.images: needs at least one image$/m,
      /^spec\.createDestinationRepos: must be true or false, not the string "yes"$/m,
    ]
  ) assert.match(text, re);
  const notObject = validateImageSync("hello");
  assert.ok(!notObject.ok);
  assert.match(formatProblems(notObject.problems), /must be an object, not the string "hello"/);
});

Deno.test("an empty semver counts as unset, as upstream's omitempty field does", () => {
  assert.ok(validateImageSyncSpec({ ...GOOD, images: [{ name: "a", tags: ["1"], semver: "" }] }).ok);
  const r = validateImageSyncSpec({ ...GOOD, images: [{ name: "a", semver: " " }] });
  assert.ok(!r.ok);
  assert.equal(formatProblems(r.problems), "spec.images[0]: needs tags or semver");
});

Deno.test("what upstream accepts and fails later is not refused: secret without secretRef, ecr on any host, a bad semver", () => {
  // method secret without secretRef is anonymous (upstream's default sample)
  assert.ok(
    validateImageSyncSpec({ ...GOOD, destination: { registry: "r.example.com", auth: { method: "secret" } } })
      .ok,
  );
  // ecr with a host that is not ECR is AuthFailed when the token is asked for
  assert.ok(
    validateImageSyncSpec({ ...GOOD, destination: { registry: "ghcr.io/me", auth: { method: "ecr" } } }).ok,
  );
  // a semver that does not parse fails that image's tag resolution only
  assert.ok(validateImageSyncSpec({ ...GOOD, images: [{ name: "a", semver: ">= 1.x.y" }] }).ok);
});

Deno.test("registry, repository and tag rules", () => {
  for (
    const ok of [
      "ghcr.io",
      "127.0.0.1:5000",
      "localhost:5000/a/b",
      "cgr.dev/my-org",
      "[::1]:5000",
      "Docker.IO",
    ]
  ) {
    assert.equal(registryProblem(ok), undefined, ok);
  }
  assert.match(registryProblem("http://localhost:5000/")!, /write "localhost:5000"/);
  assert.match(registryProblem("ghcr.io/")!, /must not end with "\/"/);
  assert.match(registryProblem("bad_host")!, /not a host name/);
  assert.match(registryProblem("ghcr.io//x")!, /empty path component/);
  assert.deepEqual(splitRegistry("cgr.dev/my-org/sub"), { host: "cgr.dev", path: "my-org/sub" });
  for (const ok of ["nginx", "library/nginx", "a.b_c__d-e---f/g"]) {
    assert.equal(repositoryPathProblem(ok), undefined, ok);
  }
  assert.match(repositoryPathProblem("a@sha256:00")!, /digest/);
  assert.match(repositoryPathProblem("a/-b")!, /component "-b"/);
  assert.match(repositoryPathProblem("x".repeat(256))!, /at most 255/);
  for (const ok of ["latest", "1.27", "v1.2.3-rc.1", "_x", "A".repeat(128)]) {
    assert.equal(tagProblem(ok), undefined, ok);
  }
  for (const bad of ["", "-x", ".x", "a/b", "a:b", "A".repeat(129)]) assert.ok(tagProblem(bad), bad);
});

Deno.test("ECR hosts: commercial, GovCloud, China, FIPS, dual-stack", () => {
  const cases: Array<[string, Record<string, unknown> | undefined]> = [
    ["123456789012.dkr.ecr.us-east-1.amazonaws.com", {
      accountId: "123456789012",
      region: "us-east-1",
      partition: "aws",
      fips: false,
      dualStack: false,
    }],
    ["123456789012.dkr.ecr.us-gov-west-1.amazonaws.com", {
      region: "us-gov-west-1",
      partition: "aws-us-gov",
    }],
    ["123456789012.dkr.ecr-fips.us-gov-east-1.amazonaws.com", { fips: true, partition: "aws-us-gov" }],
    ["123456789012.dkr.ecr-fips.us-east-2.amazonaws.com", {
      fips: true,
      region: "us-east-2",
      partition: "aws",
    }],
    ["123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", { region: "cn-north-1", partition: "aws-cn" }],
    ["123456789012.dkr-ecr.eu-west-1.on.aws", { dualStack: true, region: "eu-west-1" }],
    ["123456789012.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn", {
      dualStack: true,
      partition: "aws-cn",
    }],
    ["123456789012.dkr.ecr.us-east-1.amazonaws.com/team", { region: "us-east-1" }],
    ["123456789012.DKR.ECR.US-EAST-1.AMAZONAWS.COM:443", { region: "us-east-1" }],
    ["12345678901.dkr.ecr.us-east-1.amazonaws.com", undefined],
    ["123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.io", undefined],
    ["123456789012.dkr-ecr.us-east-1.amazonaws.com", undefined],
    ["123456789012.dkr.ecr.cn-north-1.amazonaws.com", undefined],
    ["public.ecr.aws", undefined],
    ["ghcr.io", undefined],
  ];
  for (const [host, want] of cases) {
    const got = parseEcrHost(host);
    if (!want) {
      assert.equal(got, undefined, host);
      continue;
    }
    assert.ok(got, host);
    for (const [k, v] of Object.entries(want)) {
      assert.equal((got as unknown as Record<string, unknown>)[k], v, `${host} ${k}`);
    }
  }
});

Deno.test("tagPatterns, excludeTagPatterns, platforms and overwrite: checked with paths and plain messages", () => {
  const ok = validateImageSyncSpec({
    ...GOOD,
    destination: { ...GOOD.destination, overwrite: "never" },
    images: [{
      name: "a",
      tagPatterns: ["v\\d+\\.\\d+"],
      excludeTagPatterns: [".*-rc"],
      platforms: ["linux/arm/v7"],
    }],
  });
  assert.ok(ok.ok, ok.ok ? "" : formatProblems(ok.problems));
  const r = validateImageSyncSpec({
    ...GOOD,
    destination: { ...GOOD.destination, overwrite: "sometimes" },
    images: [{
      name: "a",
      tagPatterns: ["ok", "(?=x)"],
      excludeTagPatterns: ["a{1000}"],
      platforms: ["Linux/AMD64"],
    }],
  });
  assert.ok(!r.ok);
  const text = formatProblems(r.problems);
  for (
    const re of [
      /^spec\.images\[0\]\.tagPatterns\[1\]: invalid tag pattern "\(\?=x\)": lookaround, named groups and flags are not supported/m,
      /^spec\.images\[0\]\.excludeTagPatterns\[0\]: invalid tag pattern "a\{1000\}": repeat count over 100/m,
      /^spec\.images\[0\]\.platforms\[0\]: invalid platform "Linux\/AMD64": expected os\/architecture/m,
      /^spec\.destination\.overwrite: must be one of: always, never$/m,
    ]
  ) assert.match(text, re);
  // tagPatterns alone select tags: no "needs tags or semver"
  assert.ok(validateImageSyncSpec({ ...GOOD, images: [{ name: "a", tagPatterns: ["v.*"] }] }).ok);
});
