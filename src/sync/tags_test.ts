import assert from "node:assert/strict";
import { mergeTags, resolveImageTags, resolveTags } from "./tags.ts";
import { imageRepositories } from "./naming.ts";
import type { ImageSyncSpec } from "../api/mod.ts";

const AVAILABLE = [
  "latest",
  "1.20.0",
  "1.21.0",
  "1.21.1",
  "1.22.0",
  "1.22.1",
  "1.22.2",
  "v1.22.3",
  "1.23.0-rc.1",
  "1.23.0",
  "2.0.0",
  "stable",
];

Deno.test("explicit tags come first, then semver matches newest first, without duplicates", () => {
  const r = resolveImageTags(
    { name: "app", tags: ["latest", "1.22.1", "latest"], semver: "~1.22.0" },
    AVAILABLE,
  );
  assert.deepEqual(r.explicit, ["latest", "1.22.1"]);
  assert.deepEqual(r.matched, ["v1.22.3", "1.22.2", "1.22.1", "1.22.0"]);
  assert.deepEqual(r.tags, ["latest", "1.22.1", "v1.22.3", "1.22.2", "1.22.0"]);
  assert.equal(r.totalMatches, 4);
});

Deno.test("maxTags limits semver matches only: default 10, 0 unlimited", () => {
  const many = Array.from({ length: 25 }, (_, i) => `1.0.${i}`);
  assert.equal(resolveImageTags({ name: "a", semver: "1.x" }, many).tags.length, 10);
  assert.equal(resolveImageTags({ name: "a", semver: "1.x", maxTags: 0 }, many).tags.length, 25);
  const r = resolveImageTags({ name: "a", tags: ["x", "y"], semver: "1.x", maxTags: 2 }, many);
  assert.deepEqual(r.tags, ["x", "y", "1.0.24", "1.0.23"]);
  assert.equal(r.totalMatches, 25);
  // The limit picks the newest matches before explicit duplicates are dropped (as upstream).
  const dup = resolveImageTags({ name: "a", tags: ["1.0.24"], semver: "1.x", maxTags: 2 }, many);
  assert.deepEqual(dup.tags, ["1.0.24", "1.0.23"]);
});

Deno.test("pre-releases and non-version tags stay out unless named", () => {
  assert.deepEqual(resolveImageTags({ name: "a", semver: ">=1.22.0" }, AVAILABLE).matched, [
    "2.0.0",
    "1.23.0",
    "v1.22.3",
    "1.22.2",
    "1.22.1",
    "1.22.0",
  ]);
  assert.deepEqual(resolveImageTags({ name: "a", semver: ">=1.23.0-rc.0 <1.24.0" }, AVAILABLE).matched, [
    "1.23.0",
    "1.23.0-rc.1",
  ]);
  assert.deepEqual(resolveImageTags({ name: "a", tags: ["stable"] }, undefined).tags, ["stable"]);
  assert.throws(
    () => resolveImageTags({ name: "a", semver: "nope" }, AVAILABLE),
    /invalid semver constraint/,
  );
});

Deno.test("mergeTags keeps first occurrences in order", () => {
  assert.deepEqual(mergeTags(["a", "b", "a"], ["c", "b", "d"]), ["a", "b", "c", "d"]);
});

function spec(source: string, destination: string, prefix?: string): ImageSyncSpec {
  return {
    schedule: "@daily",
    source: { registry: source },
    destination: { registry: destination, auth: { method: "anonymous" }, repositoryPrefix: prefix },
    images: [],
  };
}

Deno.test("destination naming: registry path + prefix + image name as written", () => {
  const name = (s: ImageSyncSpec, image: string) => {
    const r = imageRepositories(s, { name: image, tags: ["x"] });
    return [r.source.toString(), r.destination.toString(), r.destinationPath];
  };
  const ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
  assert.deepEqual([
    name(spec("docker.io/library", ecr, "mirror"), "nginx"),
    name(spec("docker.io", "127.0.0.1:5000", "mirror"), "nginx"),
    name(spec("docker.io", "127.0.0.1:5000"), "library/nginx"),
    name(spec("cgr.dev/my-org", "registry.example.com:5000/team", "cg"), "go"),
    // A dotless host is still the host the user named, not a Docker Hub namespace.
    name(spec("registry/base", "mirror:5000"), "app"),
    name(spec("index.docker.io", "r.example.com"), "alpine"),
  ], [
    ["docker.io/library/nginx", `${ecr}/mirror/nginx`, "mirror/nginx"],
    ["docker.io/library/nginx", "127.0.0.1:5000/mirror/nginx", "mirror/nginx"],
    ["docker.io/library/nginx", "127.0.0.1:5000/library/nginx", "library/nginx"],
    ["cgr.dev/my-org/go", "registry.example.com:5000/team/cg/go", "team/cg/go"],
    ["registry/base/app", "mirror:5000/app", "app"],
    ["docker.io/library/alpine", "r.example.com/alpine", "alpine"],
  ]);
});

Deno.test("resolveTags: an invalid constraint keeps the explicit tags and lists nothing", async () => {
  let listed = 0;
  const r = await resolveTags({ name: "a", tags: ["stable"], semver: ">=> 1" }, {
    listTags: () => Promise.resolve(AVAILABLE.slice(listed++)),
  });
  assert.deepEqual(r.tags, ["stable"]);
  assert.equal(r.error?.reason, "InvalidSemver");
  assert.match(r.error!.message, /invalid semver constraint/);
  assert.equal(listed, 0);
});

Deno.test("resolveTags: when listing fails, the previous sync's matches are kept, limited by maxTags", async () => {
  const failure = Object.assign(new Error("repository gone"), { reason: "NotFound" });
  const r = await resolveTags({ name: "a", tags: ["stable"], semver: "1.x", maxTags: 2 }, {
    listTags: () => Promise.reject(failure),
    previousTags: ["stable", "1.0.0", "1.2.0", "1.1.0", "2.0.0"],
  });
  assert.deepEqual(r.error, { reason: "NotFound", message: "repository gone" });
  assert.deepEqual(r.matched, ["1.2.0", "1.1.0"]);
  assert.deepEqual(r.tags, ["stable", "1.2.0", "1.1.0"]);
  const none = await resolveTags({ name: "a", semver: "1.x" }, { listTags: () => Promise.reject(failure) });
  assert.deepEqual([none.tags, none.error?.reason], [[], "NotFound"]);
});

Deno.test("resolveTags: without semver the source is not listed; with it, matches as resolveImageTags", async () => {
  const never = () => Promise.reject(new Error("listed"));
  assert.deepEqual((await resolveTags({ name: "a", tags: ["x"] }, { listTags: never })).tags, ["x"]);
  const r = await resolveTags({ name: "a", semver: "~1.22.0" }, {
    listTags: () => Promise.resolve(AVAILABLE),
  });
  assert.equal(r.error, undefined);
  assert.deepEqual(r.tags, resolveImageTags({ name: "a", semver: "~1.22.0" }, AVAILABLE).tags);
});

const BUILDS = [
  "latest",
  "1.26.0",
  "1.27.0",
  "1.27.1",
  "1.27.1-alpine",
  "1.27.2-alpine",
  "1.28.0-rc1",
  "1.28.0-rc1-alpine",
  "nightly-20260101",
  "nightly-20260103",
  "nightly-20260102",
];

Deno.test("tagPatterns select tags; excludeTagPatterns drop them; semver narrows; maxTags keeps the newest", () => {
  const alpine = resolveImageTags({ name: "a", tagPatterns: [".*-alpine"] }, BUILDS);
  assert.deepEqual(alpine.matched, ["1.28.0-rc1-alpine", "1.27.2-alpine", "1.27.1-alpine"]);
  const noRc = resolveImageTags({
    name: "a",
    tagPatterns: [".*-alpine"],
    excludeTagPatterns: [".*-rc\\d*.*"],
  }, BUILDS);
  assert.deepEqual(noRc.matched, ["1.27.2-alpine", "1.27.1-alpine"]);
  // semver and patterns together: both must hold (here: 1.27 versions, not 1.28's rc)
  const both = resolveImageTags({ name: "a", semver: ">=1.27.0", tagPatterns: ["1\\.27\\..*"] }, BUILDS);
  assert.deepEqual(both.matched, ["1.27.1", "1.27.0"]);
  // semver alone, minus an exclusion
  assert.deepEqual(
    resolveImageTags({ name: "a", semver: ">=1.27.0", excludeTagPatterns: ["1\\.27\\.1"] }, BUILDS).matched,
    ["1.27.0"],
  );
  // tags that are not versions: reverse text order (newest date first), limited by maxTags
  const nightly = resolveImageTags({
    name: "a",
    tags: ["latest"],
    tagPatterns: ["nightly-\\d{8}"],
    maxTags: 2,
  }, BUILDS);
  assert.deepEqual(nightly.tags, ["latest", "nightly-20260103", "nightly-20260102"]);
  assert.equal(nightly.totalMatches, 3);
  // explicit tags are kept even when an exclusion would match them
  assert.deepEqual(
    resolveImageTags(
      { name: "a", tags: ["1.27.1-alpine"], tagPatterns: ["x"], excludeTagPatterns: [".*"] },
      BUILDS,
    ).tags,
    ["1.27.1-alpine"],
  );
});

Deno.test("resolveTags: an invalid tag pattern keeps the explicit tags and lists nothing (InvalidTagPattern)", async () => {
  let listed = false;
  const r = await resolveTags({ name: "a", tags: ["stable"], tagPatterns: ["(?=x)"] }, {
    listTags: () => {
      listed = true;
      return Promise.resolve(BUILDS);
    },
  });
  assert.deepEqual([r.tags, r.error?.reason, listed], [["stable"], "InvalidTagPattern", false]);
  const ok = await resolveTags({ name: "a", tagPatterns: ["1\\.26\\..*"] }, {
    listTags: () => Promise.resolve(BUILDS),
  });
  assert.deepEqual(ok.tags, ["1.26.0"]);
});
