import assert from "node:assert/strict";
import type { ImageSyncSpec } from "../api/mod.ts";
import type { Reference } from "../oci/mod.ts";
import type { SyncEvent } from "./events.ts";
import { type PlanContext, planSync } from "./plan.ts";

const NOW = new Date("2026-01-01T00:00:00Z");

function spec(images: ImageSyncSpec["images"], extra: Partial<ImageSyncSpec> = {}): ImageSyncSpec {
  return {
    schedule: "@daily",
    source: { registry: "src.example.com" },
    destination: { registry: "dst.example.com", auth: { method: "anonymous" }, repositoryPrefix: "mirror" },
    images,
    ...extra,
  };
}

/** A plan context on the test clock that lists no tags unless `over` says; `events` records what it emits. */
function context(over: Partial<PlanContext> = {}) {
  const events: SyncEvent[] = [];
  const ctx: PlanContext = {
    listTags: () => Promise.resolve([]),
    dryRun: false,
    now: () => NOW,
    emit: (e) => events.push(e),
    ...over,
  };
  return { events, ctx };
}

Deno.test("planSync: one pending slot per tag to run, explicit then semver, with references", async () => {
  const listed: string[] = [];
  const { events, ctx } = context({
    listTags: (repo: Reference) => {
      listed.push(repo.name);
      return Promise.resolve(["latest", "1.0.0", "1.1.0", "1.2.0", "2.0.0"]);
    },
  });
  const plan = await planSync(
    spec([{ name: "app", tags: ["latest"], semver: "^1.0.0", maxTags: 2 }, { name: "tools", tags: ["v1"] }]),
    ctx,
  );
  assert.deepEqual(listed, ["src.example.com/app"], "only semver images list tags");
  assert.deepEqual(
    plan.jobs.map((j) => [j.image, j.slot, j.source.toString(), j.destination.toString()]),
    [
      ["app", 0, "src.example.com/app:latest", "dst.example.com/mirror/app:latest"],
      ["app", 1, "src.example.com/app:1.2.0", "dst.example.com/mirror/app:1.2.0"],
      ["app", 2, "src.example.com/app:1.1.0", "dst.example.com/mirror/app:1.1.0"],
      ["tools", 0, "src.example.com/tools:v1", "dst.example.com/mirror/tools:v1"],
    ],
  );
  assert.deepEqual(plan.images[0].selection, { constraint: "^1.0.0", matched: ["1.2.0", "1.1.0"] });
  assert.deepEqual(events, [{
    type: "TagsResolved",
    warning: false,
    image: "app",
    sourceRepository: "src.example.com/app",
    constraint: "^1.0.0",
    tags: ["1.2.0", "1.1.0"],
    totalMatches: 3,
  }]);
});

Deno.test("planSync: a failed tag listing fails only that image's resolution; explicit tags still run", async () => {
  const { events, ctx } = context({
    listTags: () => Promise.reject(Object.assign(new Error("name unknown"), { reason: "NotFound" })),
    previous: {
      images: [{ name: "gone", tags: [{ tag: "stable", synced: true }, { tag: "1.3.0", synced: true }] }],
    },
  });
  const plan = await planSync(
    spec([{ name: "gone", tags: ["stable"], semver: "1.x" }, { name: "ok", tags: ["a"] }]),
    ctx,
  );
  assert.deepEqual(plan.jobs.map((j) => `${j.image}:${j.tag}`), ["gone:stable", "gone:1.3.0", "ok:a"]);
  assert.deepEqual(plan.images[0].selection?.error, { reason: "NotFound", message: "name unknown" });
  assert.equal(events.length, 1);
  assert.equal(events[0].type, "TagResolutionFailed");
  assert.deepEqual((events[0] as { keptTags: string[] }).keptTags, ["1.3.0"]);
});

Deno.test("planSync: a destination repository is ensured once per sync; its failure fails its tags", async () => {
  const calls: string[] = [];
  const repositories = {
    ensureRepository: (path: string) => {
      calls.push(path);
      return path === "mirror/bad"
        ? Promise.reject(Object.assign(new Error("AccessDenied"), { reason: "RepoCreationFailed" }))
        : Promise.resolve("created" as const);
    },
  };
  const s = spec([{ name: "app", tags: ["a"] }, { name: "app", tags: ["b"] }, {
    name: "bad",
    tags: ["x", "y"],
  }], {
    createDestinationRepos: true,
  });
  const { events, ctx } = context({ repositories });
  const plan = await planSync(s, ctx);
  assert.deepEqual(calls, ["mirror/app", "mirror/bad"]);
  assert.deepEqual(plan.jobs.map((j) => `${j.image}:${j.tag}`), ["app:a", "app:b"]);
  const bad = plan.images[2];
  assert.deepEqual(bad.repositoryError, { reason: "RepoCreationFailed", message: "AccessDenied" });
  assert.deepEqual(bad.tags.map((t) => [t.tag, t.action, t.reason, t.lastSyncTime]), [
    ["x", "failed", "RepoCreationFailed", NOW.toISOString()],
    ["y", "failed", "RepoCreationFailed", NOW.toISOString()],
  ]);
  assert.deepEqual(events.map((e) => e.type), ["RepoEnsured", "SyncFailed", "SyncFailed"]);
  assert.deepEqual(events[0], {
    type: "RepoEnsured",
    warning: false,
    image: "app",
    repository: "mirror/app",
    registry: "dst.example.com",
    created: true,
  });

  // a dry run creates nothing
  calls.length = 0;
  const dry = await planSync(s, { ...ctx, dryRun: true });
  assert.deepEqual(calls, []);
  assert.equal(dry.jobs.length, 4);
});

Deno.test("planSync: an image whose names make no valid reference fails its tags, others go on", async () => {
  const plan = await planSync(
    spec([{ name: "UPPER", tags: ["a"] }, { name: "ok", tags: ["b"] }]),
    context().ctx,
  );
  assert.equal(plan.images[0].repositoryError?.reason, "InvalidReference");
  assert.deepEqual(plan.images[0].tags.map((t) => t.action), ["failed"]);
  assert.deepEqual(plan.jobs.map((j) => j.image), ["ok"]);
});
