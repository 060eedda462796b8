import assert from "node:assert/strict";
import { parseDistribution } from "./distribution.ts";
import { parseDockerHub } from "./docker_hub.ts";
import { WebhookError } from "./errors.ts";
import { parseGitHub } from "./github.ts";
import { parseHarbor } from "./harbor.ts";
import { parseQuay } from "./quay.ts";

const none = { headers: new Headers() };

Deno.test("harbor: PUSH_ARTIFACT resources become pushes; other event types are ignored", () => {
  const body = {
    type: "PUSH_ARTIFACT",
    occur_at: 1764493200,
    operator: "admin",
    event_data: {
      resources: [{
        digest: "sha256:" + "b".repeat(64),
        tag: "v2",
        resource_url: "harbor.example.com/library/app:v2",
      }],
      repository: { name: "app", namespace: "library", repo_full_name: "library/app" },
    },
  };
  const [p] = parseHarbor(body, none);
  assert.deepStrictEqual([p.registry, p.repository, p.tag, p.timestamp], [
    "harbor.example.com",
    "library/app",
    "v2",
    1764493200_000,
  ]);
  assert.deepStrictEqual(parseHarbor({ ...body, type: "PULL_ARTIFACT" }, none), []);
  assert.throws(() => parseHarbor({ type: "PUSH_ARTIFACT" }, none), {
    name: "WebhookError",
    message: /resources/,
  });
});

Deno.test("dockerhub: one push to docker.io; an official image's name gets library/", () => {
  const body = {
    callback_url: "https://registry.hub.docker.com/u/org/app/hook/x/",
    push_data: { pushed_at: 1764493200, pusher: "ci", tag: "latest" },
    repository: { repo_name: "org/app", namespace: "org", name: "app" },
  };
  assert.deepStrictEqual(parseDockerHub(body, none).map((p) => [p.registry, p.repository, p.tag]), [[
    "docker.io",
    "org/app",
    "latest",
  ]]);
  const official = { ...body, repository: { repo_name: "nginx" } };
  assert.deepStrictEqual(parseDockerHub(official, none)[0].repository, "library/nginx");
  assert.throws(() => parseDockerHub({ repository: {} }, none), {
    name: "WebhookError",
    message: /push_data/,
  });
});

Deno.test("github: a published container version is a push to ghcr.io with the delivery id", () => {
  const headers = new Headers({ "x-github-event": "package", "x-github-delivery": "d-1" });
  const body = {
    action: "published",
    package: {
      name: "App",
      package_type: "CONTAINER",
      owner: { login: "Org" },
      package_version: {
        version: "sha256:" + "c".repeat(64),
        container_metadata: { tag: { name: "1.0.0", digest: "sha256:" + "c".repeat(64) } },
        package_url: "ghcr.io/org/app:1.0.0",
      },
    },
  };
  const [p] = parseGitHub(body, { headers });
  assert.deepStrictEqual([p.registry, p.repository, p.tag, p.id], ["ghcr.io", "org/app", "1.0.0", "d-1"]);
  // no package_url: owner/name, lowercased as ghcr.io names them
  const noUrl = structuredClone(body);
  delete (noUrl.package.package_version as { package_url?: string }).package_url;
  assert.deepStrictEqual(parseGitHub(noUrl, { headers })[0].repository, "org/app");
  assert.deepStrictEqual(parseGitHub({}, { headers: new Headers({ "x-github-event": "ping" }) }), []);
  assert.deepStrictEqual(parseGitHub({ ...body, action: "deleted" }, { headers }), []);
  assert.throws(() => parseGitHub(body, { headers: new Headers({ "x-github-event": "push" }) }), {
    name: "WebhookError",
    message: /Packages/,
  });
});

Deno.test("quay: one push per updated tag at the docker_url's host", () => {
  const body = {
    repository: "ns/app",
    namespace: "ns",
    name: "app",
    docker_url: "quay.io/ns/app",
    updated_tags: ["latest", "1.1"],
  };
  assert.deepStrictEqual(parseQuay(body, none).map((p) => `${p.registry}/${p.repository}:${p.tag}`), [
    "quay.io/ns/app:latest",
    "quay.io/ns/app:1.1",
  ]);
  assert.throws(() => parseQuay({ repository: "ns/app" }, none), {
    name: "WebhookError",
    message: /updated_tags/,
  });
});

Deno.test("parsers: odd JSON either yields pushes or a Malformed error, never a crash", () => {
  const odd: unknown[] = [
    null,
    [],
    "x",
    1,
    {},
    { events: [null] },
    { events: [{ action: "push", target: null }] },
    { events: [{ action: "push", target: { repository: 5 } }] },
    { type: "PUSH_ARTIFACT", event_data: { resources: [null, 3] } },
    { push_data: [], repository: [] },
    { action: "published", package: { package_version: null } },
    { repository: "a/b", updated_tags: [1, null, "ok"] },
  ];
  const headers = new Headers({ "x-github-event": "package" });
  for (const parse of [parseDistribution, parseHarbor, parseDockerHub, parseGitHub, parseQuay]) {
    for (const body of odd) {
      try {
        const got = parse(body, { headers });
        assert.ok(Array.isArray(got));
      } catch (err) {
        assert.ok(err instanceof WebhookError, `${parse.name}(${JSON.stringify(body)}): ${err}`);
        assert.equal(err.reason, "Malformed");
      }
    }
  }
});
