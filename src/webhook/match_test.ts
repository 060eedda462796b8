import assert from "node:assert/strict";
import type { ImageSync } from "../api/mod.ts";
import type { PushEvent } from "./event.ts";
import { matchPushes } from "./match.ts";

function sync(name: string, registry: string, images: unknown[]): ImageSync {
  return {
    apiVersion: "portager.portager.io/v1alpha1",
    kind: "ImageSync",
    metadata: { name, namespace: "ns" },
    spec: { source: { registry }, destination: { registry: "dst.example.com" }, images },
  } as unknown as ImageSync;
}

function push(registry: string, repository: string, tag?: string): PushEvent {
  return { source: "distribution", registry, repository, tag };
}

const all = [
  sync("tags", "127.0.0.1:5000", [{ name: "team/app", tags: ["1.0", "latest"] }]),
  sync("semver", "127.0.0.1:5000/team", [{ name: "app", semver: "^1.2.0" }]),
  sync("hub", "docker.io", [{ name: "nginx", tags: ["1.27"] }]),
  sync("other", "127.0.0.1:5000", [{ name: "team/other", tags: ["1.0"] }]),
];

function keys(p: PushEvent[]): string[] {
  return matchPushes(p, all).map((m) => m.key);
}

Deno.test("match: repository and a listed tag", () => {
  assert.deepStrictEqual(keys([push("127.0.0.1:5000", "team/app", "latest")]), ["ns/tags"]);
  assert.deepStrictEqual(keys([push("127.0.0.1:5000", "team/app", "2.0")]), []);
});

Deno.test("match: a semver constraint decides for tags not listed; the source's path prefix counts", () => {
  assert.deepStrictEqual(keys([push("127.0.0.1:5000", "team/app", "1.4.0")]), ["ns/semver"]);
  assert.deepStrictEqual(keys([push("127.0.0.1:5000", "team/app", "1.0")]), ["ns/tags"]);
  assert.deepStrictEqual(
    keys([push("127.0.0.1:5000", "team/app", "1.0"), push("127.0.0.1:5000", "team/app", "1.3.1")]),
    [
      "ns/tags",
      "ns/semver",
    ],
  );
});

Deno.test("match: Docker Hub names normalize; other hosts and digest-only pushes match nothing", () => {
  assert.deepStrictEqual(keys([push("docker.io", "library/nginx", "1.27")]), ["ns/hub"]);
  assert.deepStrictEqual(keys([push("registry-1.docker.io", "library/nginx", "1.27")]), ["ns/hub"]);
  assert.deepStrictEqual(keys([push("127.0.0.2:5000", "team/app", "latest")]), []);
  assert.deepStrictEqual(keys([push("127.0.0.1:5000", "team/app")]), []);
});

Deno.test("match: each ImageSync once however many pushes name it", () => {
  const many = Array.from({ length: 20 }, () => push("127.0.0.1:5000", "team/app", "latest"));
  assert.deepStrictEqual(keys(many), ["ns/tags"]);
});

Deno.test("match: tag patterns and exclusions decide as the sync does", () => {
  const patterned = [
    sync("patterns", "127.0.0.1:5000", [{
      name: "team/app",
      tagPatterns: ["v[0-9]+\\.[0-9]+"],
      excludeTagPatterns: ["v0\\..*"],
    }]),
  ];
  const k = (tag: string) =>
    matchPushes([push("127.0.0.1:5000", "team/app", tag)], patterned).map((m) => m.key);
  assert.deepStrictEqual(k("v1.2"), ["ns/patterns"]);
  assert.deepStrictEqual(k("v0.9"), []);
  assert.deepStrictEqual(k("latest"), []);
});
