/**
 * Integration tests of "sync one ImageSync spec once" (src/sync) with the credentials layer
 * (src/credentials) against real CNCF distribution registries from the harness. ECR (moto) is
 * covered by tests/ecr_test.ts.
 */

import assert from "node:assert/strict";
import { getManifest, type PushedImage, pushImage } from "./harness/fixtures.ts";
import { type RegistryServer, startRegistry } from "./harness/registry.ts";
import type { ImageSyncSpec } from "../src/api/mod.ts";
import { credentialsForSpec, type SecretLike } from "../src/credentials/mod.ts";
import {
  eventMessage,
  readyReason,
  RegistryClientCache,
  statusFromReport,
  SyncError,
  type SyncEvent,
  syncImageSync,
  type SyncOptions,
  type SyncReport,
  type TagResolutionFailedEvent,
} from "../src/sync/mod.ts";

// ---------------------------------------------------------------------------------------------
// helpers

const b64 = (s: string) => btoa(s);

/** A kubernetes.io/dockerconfigjson Secret with Basic auth for `host`. */
function dockerSecret(host: string, username: string, password: string): SecretLike {
  const json = JSON.stringify({ auths: { [host]: { auth: b64(`${username}:${password}`) } } });
  return { type: "kubernetes.io/dockerconfigjson", data: { ".dockerconfigjson": b64(json) } };
}

/** Registry writes (uploads, manifest pushes) in access-log lines. */
function writes(lines: string[]): string[] {
  return lines.filter((l) => /^(PUT|POST|PATCH|DELETE) /.test(l));
}

async function logMark(reg: RegistryServer): Promise<number> {
  return (await reg.flushLog()).length;
}

async function logSince(reg: RegistryServer, mark: number): Promise<string[]> {
  return (await reg.flushLog()).slice(mark);
}

function events(): {
  list: SyncEvent[];
  onEvent: (e: SyncEvent) => void;
  of: (t: SyncEvent["type"]) => SyncEvent[];
} {
  const list: SyncEvent[] = [];
  return { list, onEvent: (e) => list.push(e), of: (t) => list.filter((e) => e.type === t) };
}

const ANONYMOUS = { resolve: () => Promise.resolve(undefined) };

/** Syncs with no credentials at either end. */
function syncAnonymously(spec: ImageSyncSpec, opts: Partial<SyncOptions> = {}): Promise<SyncReport> {
  return syncImageSync(spec, { sourceCredentials: ANONYMOUS, destinationCredentials: ANONYMOUS, ...opts });
}

/** Pushes `app` tags sharing two base layers; returns them by tag. */
async function pushAppTags(
  reg: RegistryServer,
  repository: string,
  tags: string[],
): Promise<Map<string, PushedImage>> {
  const out = new Map<string, PushedImage>();
  for (const [i, tag] of tags.entries()) {
    out.set(
      tag,
      await pushImage(reg, { repository, tag }, {
        seed: 100 + i,
        layers: [2048],
        sharedLayers: [4096, 1024],
      }),
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

Deno.test("explicit + semver tags sync to a Basic-auth registry through a dockerconfigjson Secret; a second sync copies nothing", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("basic");
  try {
    const pushed = await pushAppTags(src, "team/app", [
      "1.0.0",
      "1.1.0",
      "v1.2.0",
      "1.2.1-rc.1",
      "2.0.0",
      "latest",
      "stable",
    ]);
    const spec: ImageSyncSpec = {
      schedule: "@every 1h",
      source: { registry: src.host },
      destination: {
        registry: dst.host,
        auth: { method: "secret", secretRef: { name: "push" } },
        repositoryPrefix: "mirror",
      },
      images: [{ name: "team/app", tags: ["latest"], semver: "^1.0.0", maxTags: 2 }],
    };
    const secrets: Record<string, SecretLike> = {
      "ci/push": dockerSecret(dst.host, dst.username!, dst.password!),
    };
    const creds = await credentialsForSpec(spec, {
      namespace: "ci",
      loadSecret: (ref) => Promise.resolve(secrets[`${ref.namespace}/${ref.name}`]),
    });

    const ev = events();
    const report = await syncImageSync(spec, {
      sourceCredentials: creds.source,
      destinationCredentials: creds.destination,
      onEvent: ev.onEvent,
    });

    // Explicit first, then the two newest ^1.0.0 releases (the rc and 2.0.0 stay out).
    const image = report.images[0];
    assert.equal(image.destinationRepository, `${dst.host}/mirror/team/app`);
    assert.deepEqual(image.tags.map((t) => [t.tag, t.action]), [
      ["latest", "copied"],
      ["v1.2.0", "copied"],
      ["1.1.0", "copied"],
    ]);
    assert.ok(report.ok);
    assert.equal(report.totalImages, 3);
    assert.equal(report.syncedImages, 3);
    assert.equal(report.failedImages, 0);
    for (const t of image.tags) {
      const want = pushed.get(t.tag)!;
      assert.equal(t.sourceDigest, want.digest, t.tag);
      const got = await getManifest(dst, "mirror/team/app", t.tag);
      assert.equal(got.status, 200, `${t.tag} at the destination`);
      assert.equal(got.digest, want.digest, `${t.tag} keeps its digest`);
    }
    assert.equal((await getManifest(dst, "mirror/team/app", "1.0.0")).status, 404, "maxTags kept 1.0.0 out");
    assert.equal((await getManifest(dst, "mirror/team/app", "1.2.1-rc.1")).status, 404);

    // One batch: the shared base layers moved once across the three tags.
    const unique = new Set([...image.tags].flatMap((t) => pushed.get(t.tag)!.blobs.map((b) => b.digest)));
    assert.equal(report.blobsCopied, unique.size, "each distinct blob streamed exactly once");

    const resolved = ev.of("TagsResolved");
    assert.equal(resolved.length, 1);
    assert.deepEqual((resolved[0] as { tags: string[] }).tags, ["v1.2.0", "1.1.0"]);
    assert.equal((resolved[0] as { totalMatches: number }).totalMatches, 3);
    assert.equal(ev.of("ImageSynced").length, 3);
    assert.equal(ev.of("SyncFailed").length, 0);

    const status = statusFromReport(report);
    assert.deepEqual([status.totalImages, status.syncedImages, status.failedImages], [3, 3, 0]);
    assert.deepEqual(status.images[0].tags?.map((t) => [t.tag, t.synced, t.sourceDigest]), [
      ["latest", true, pushed.get("latest")!.digest],
      ["v1.2.0", true, pushed.get("v1.2.0")!.digest],
      ["1.1.0", true, pushed.get("1.1.0")!.digest],
    ]);

    // Second sync: everything up to date, nothing read from blobs, nothing written.
    const srcMark = await logMark(src);
    const dstMark = await logMark(dst);
    const again = events();
    const second = await syncImageSync(spec, {
      sourceCredentials: creds.source,
      destinationCredentials: creds.destination,
      onEvent: again.onEvent,
      previous: status,
    });
    assert.ok(second.ok);
    assert.deepEqual(second.images[0].tags.map((t) => t.action), ["up-to-date", "up-to-date", "up-to-date"]);
    assert.equal(second.copiedImages, 0);
    assert.equal(second.bytesMoved, 0);
    assert.equal(again.of("ImageSkipped").length, 3);
    assert.deepEqual(writes(await logSince(dst, dstMark)), [], "the destination saw no write");
    assert.deepEqual(
      (await logSince(src, srcMark)).filter((l) => l.includes("/blobs/")),
      [],
      "no source blob was read",
    );
  } finally {
    await src.stop();
    await dst.stop();
  }
});

Deno.test("a missing tag fails only that tag, with NotFound, and nothing throws", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  try {
    const pushed = await pushImage(src, { repository: "lib/tool", tag: "1.0" }, { seed: 7 });
    const spec: ImageSyncSpec = {
      schedule: "@daily",
      source: { registry: `${src.host}/lib` },
      destination: { registry: dst.host, auth: { method: "anonymous" } },
      images: [{ name: "tool", tags: ["1.0", "9.9-missing"] }],
    };
    const ev = events();
    const report = await syncImageSync(spec, {
      sourceCredentials: { resolve: () => Promise.resolve(undefined) },
      destinationCredentials: { resolve: () => Promise.resolve(undefined) },
      onEvent: ev.onEvent,
    });
    const [ok, missing] = report.images[0].tags;
    assert.equal(ok.action, "copied");
    assert.equal(ok.sourceDigest, pushed.digest);
    assert.equal((await getManifest(dst, "tool", "1.0")).digest, pushed.digest);
    assert.equal(missing.action, "failed");
    assert.equal(missing.synced, false);
    assert.equal(missing.reason, "NotFound");
    assert.match(missing.error!, /9\.9-missing/);
    assert.equal(report.failedImages, 1);
    assert.equal(report.syncedImages, 1);
    assert.equal(report.ok, false);
    const failed = ev.of("SyncFailed");
    assert.equal(failed.length, 1);
    assert.equal((failed[0] as { tag: string }).tag, "9.9-missing");
    assert.ok(failed[0].warning);
    const status = statusFromReport(report);
    assert.equal(status.images[0].tags?.[1].reason, "NotFound");
    // status says it as upstream does: the source tag could not be read
    assert.match(status.images[0].tags?.[1].error ?? "", /^failed to get source digest: .*9\.9-missing/);
  } finally {
    await src.stop();
    await dst.stop();
  }
});

Deno.test("a Secret without an entry for the destination stops the sync with AuthFailed before any request", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("basic");
  try {
    const spec: ImageSyncSpec = {
      schedule: "@daily",
      source: { registry: src.host },
      destination: {
        registry: dst.host,
        auth: { method: "secret", secretRef: { name: "push", namespace: "ops" } },
      },
      images: [{ name: "app", tags: ["1"] }],
    };
    const creds = await credentialsForSpec(spec, {
      namespace: "default",
      loadSecret: () => Promise.resolve(dockerSecret("other.example.com", "u", "secret-password")),
    });
    const dstMark = await logMark(dst);
    await assert.rejects(
      () =>
        syncImageSync(spec, { sourceCredentials: creds.source, destinationCredentials: creds.destination }),
      (e: unknown) => {
        assert.ok(e instanceof SyncError);
        assert.equal(e.reason, "AuthFailed");
        assert.equal(e.message, `secret ops/push has no auth for registry ${dst.host}`);
        assert.ok(!e.message.includes("secret-password"));
        return true;
      },
    );
    assert.deepEqual(await logSince(dst, dstMark), [], "no request reached the destination");
  } finally {
    await src.stop();
    await dst.stop();
  }
});

Deno.test("dry run plans per tag, writes nothing, and the real run then does what it planned", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  try {
    await pushAppTags(src, "app", ["1.0.0", "1.1.0"]);
    const spec: ImageSyncSpec = {
      schedule: "@daily",
      source: { registry: src.host },
      destination: { registry: dst.host, auth: { method: "anonymous" } },
      images: [{ name: "app", semver: "1.x" }, { name: "app", tags: ["gone"] }],
    };
    const anon = { resolve: () => Promise.resolve(undefined) };
    const dstMark = await logMark(dst);
    const plan = await syncImageSync(spec, {
      sourceCredentials: anon,
      destinationCredentials: anon,
      dryRun: true,
    });
    assert.deepEqual(plan.images.flatMap((i) => i.tags.map((t) => [t.tag, t.action, t.reason])), [
      ["1.1.0", "would-copy", undefined],
      ["1.0.0", "would-copy", undefined],
      ["gone", "failed", "NotFound"],
    ]);
    assert.ok(plan.dryRun);
    assert.equal(plan.syncedImages, 0);
    assert.ok(plan.bytesMoved > 0);
    assert.deepEqual(writes(await logSince(dst, dstMark)), [], "a dry run writes nothing");
    assert.equal((await getManifest(dst, "app", "1.1.0")).status, 404);

    const real = await syncImageSync(spec, { sourceCredentials: anon, destinationCredentials: anon });
    assert.deepEqual(real.images.flatMap((i) => i.tags.map((t) => t.action)), ["copied", "copied", "failed"]);
    assert.equal(real.bytesMoved, plan.bytesMoved, "the plan predicted the bytes moved");
    assert.equal(real.blobsCopied, plan.blobsCopied);
  } finally {
    await src.stop();
    await dst.stop();
  }
});

Deno.test("a failing validation gate fails tags that need a copy and copies nothing", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  try {
    const a = await pushImage(src, { repository: "app", tag: "a" }, { seed: 1 });
    await pushImage(src, { repository: "app", tag: "b" }, { seed: 2 });
    const anon = { resolve: () => Promise.resolve(undefined) };
    const base: ImageSyncSpec = {
      schedule: "@daily",
      source: { registry: src.host },
      destination: { registry: dst.host, auth: { method: "anonymous" } },
      images: [{ name: "app", tags: ["a"] }],
    };
    await syncImageSync(base, { sourceCredentials: anon, destinationCredentials: anon });

    const gated: ImageSyncSpec = {
      ...base,
      images: [{ name: "app", tags: ["a", "b"] }],
      validation: { cosign: { enabled: true, publicKey: "PEM" }, sbomGate: { enabled: false } },
    };
    const dstMark = await logMark(dst);
    const report = await syncImageSync(gated, { sourceCredentials: anon, destinationCredentials: anon });
    const [upToDate, blocked] = report.images[0].tags;
    assert.equal(upToDate.action, "up-to-date", "already at the destination: nothing to gate");
    assert.equal(upToDate.sourceDigest, a.digest);
    assert.equal(blocked.action, "failed");
    // "PEM" is no public key: the cosign gate cannot check, so it fails (never passes)
    assert.equal(blocked.reason, "ValidationFailed");
    assert.equal(blocked.verified, false);
    assert.equal(blocked.failedGate, "cosign");
    assert.match(blocked.validationError!, /^cosign verification failed: failed to parse public key/);
    assert.equal(blocked.error, `validation failed: ${blocked.validationError}`);
    assert.deepEqual(writes(await logSince(dst, dstMark)), []);
    assert.equal((await getManifest(dst, "app", "b")).status, 404);
  } finally {
    await src.stop();
    await dst.stop();
  }
});

Deno.test("the abort signal stops starting new tags; the rest are reported as Aborted", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  try {
    await pushAppTags(src, "app", ["1", "2", "3"]);
    const spec: ImageSyncSpec = {
      schedule: "@daily",
      source: { registry: src.host },
      destination: { registry: dst.host, auth: { method: "anonymous" } },
      images: [{ name: "app", tags: ["1", "2", "3"] }],
    };
    const anon = { resolve: () => Promise.resolve(undefined) };
    const stop = new AbortController();
    const report = await syncImageSync(spec, {
      sourceCredentials: anon,
      destinationCredentials: anon,
      tagConcurrency: 1,
      onEvent: (e) => {
        if (e.type === "ImageSynced") stop.abort();
      },
      signal: stop.signal,
    });
    assert.deepEqual(report.images[0].tags.map((t) => [t.tag, t.action, t.reason]), [
      ["1", "copied", undefined],
      ["2", "failed", "Aborted"],
      ["3", "failed", "Aborted"],
    ]);
    assert.ok(report.aborted);
    assert.ok(!report.ok);
    assert.equal((await getManifest(dst, "app", "2")).status, 404);
  } finally {
    await src.stop();
    await dst.stop();
  }
});

Deno.test("a failed tag listing is TagResolutionFailed; the previous sync's semver tags are kept", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  try {
    await pushImage(src, { repository: "app", tag: "stable" }, { seed: 5 });
    const spec: ImageSyncSpec = {
      schedule: "@daily",
      source: { registry: src.host },
      destination: { registry: dst.host, auth: { method: "anonymous" } },
      images: [{ name: "app", tags: ["stable"] }, { name: "gone", semver: "^1.0.0" }],
    };
    const ev = events();
    const report = await syncAnonymously(spec, {
      onEvent: ev.onEvent,
      previous: {
        images: [{ name: "gone", tags: [{ tag: "1.4.0", synced: true }, { tag: "latest", synced: true }] }],
      },
    });
    const failed = ev.of("TagResolutionFailed") as TagResolutionFailedEvent[];
    assert.equal(failed.length, 1);
    assert.equal(failed[0].image, "gone");
    assert.equal(failed[0].reason, "NotFound");
    assert.match(eventMessage(failed[0]), /keeping 1 tag\(s\) resolved by the previous sync/);
    assert.deepEqual(report.images[1].selection?.matched, ["1.4.0"]);
    assert.deepEqual(report.images[1].tags.map((t) => [t.tag, t.reason]), [["1.4.0", "NotFound"]]);
    assert.equal(report.images[0].tags[0].action, "copied", "other images are unaffected");
    assert.equal(report.resolutionFailures, 1);
    assert.ok(!report.ok);
  } finally {
    await src.stop();
    await dst.stop();
  }
});

Deno.test("a bad semver fails only its image's tag resolution (counted as upstream); Events begin with upstream's wording", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  try {
    const v100 = await pushImage(src, { repository: "app", tag: "1.0.0" }, { seed: 21 });
    const v110 = await pushImage(src, { repository: "app", tag: "1.1.0" }, { seed: 22 });
    await pushImage(src, { repository: "tool", tag: "v1" }, { seed: 23 });
    const spec: ImageSyncSpec = {
      schedule: "@daily",
      source: { registry: src.host },
      destination: { registry: dst.host, auth: { method: "anonymous" } },
      images: [{ name: "app", semver: "^1.0.0" }, { name: "tool", tags: ["v1", "missing"], semver: ">=> 1" }],
    };
    const ev = events();
    const report = await syncAnonymously(spec, { onEvent: ev.onEvent });
    const [app, tool] = report.images;
    assert.deepEqual(app.tags.map((t) => [t.tag, t.action]), [["1.1.0", "copied"], ["1.0.0", "copied"]]);
    assert.equal(tool.selection?.error?.reason, "InvalidSemver");
    assert.deepEqual(tool.tags.map((t) => [t.tag, t.action, t.reason]), [
      ["v1", "copied", undefined],
      ["missing", "failed", "NotFound"],
    ]);
    // upstream's counts: totalImages are tags; failedImages are failed tags plus failed resolutions
    assert.deepEqual([report.totalImages, report.syncedImages, report.failedImages], [4, 3, 2]);
    assert.equal(statusFromReport(report).failedImages, 2);
    assert.equal(report.ok, false);

    const messages = ev.list.map(eventMessage);
    const starts = (prefix: string) =>
      assert.ok(
        messages.some((m) => m.startsWith(prefix)),
        `no Event begins with ${prefix}:\n${messages.join("\n")}`,
      );
    starts(`Resolved 2 tags for app matching "^1.0.0"`);
    starts(`Failed to resolve tags for tool matching ">=> 1": `);
    // upstream's Event text names the digest by its first 8 hex digits (upstream's truncateDigest)
    starts(
      `Synced ${src.host}/app:1.1.0 → ${dst.host}/app:1.1.0 (digest: ${
        v110.digest.slice(0, "sha256:".length + 8)
      })`,
    );
    starts(`Failed to get source digest for ${src.host}/tool:missing: `);

    const again = events();
    await syncAnonymously(spec, { onEvent: again.onEvent });
    assert.ok(
      again.list.map(eventMessage).includes(
        `Image ${src.host}/app:1.0.0 already up-to-date (digest: ${v100.digest.slice(0, 15)})`,
      ),
    );
  } finally {
    await src.stop();
    await dst.stop();
  }
});

Deno.test("tagPatterns / excludeTagPatterns select from the source's tag list: the plan, then the copy", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  try {
    const tags = [
      "1.0.0",
      "1.1.0",
      "1.1.0-alpine",
      "1.2.0-alpine",
      "1.3.0-rc1-alpine",
      "nightly-20260102",
      "latest",
    ];
    for (const [i, tag] of tags.entries()) await pushImage(src, { repository: "app", tag }, { seed: 40 + i });
    const spec: ImageSyncSpec = {
      schedule: "@daily",
      source: { registry: src.host },
      destination: { registry: dst.host, auth: { method: "anonymous" } },
      images: [{
        name: "app",
        tags: ["latest"],
        tagPatterns: [".*-alpine", "nightly-\\d{8}"],
        excludeTagPatterns: [".*-rc\\d*-.*"],
      }],
    };
    const ev = events();
    const plan = await syncAnonymously(spec, { dryRun: true, onEvent: ev.onEvent });
    const expected = ["latest", "1.2.0-alpine", "1.1.0-alpine", "nightly-20260102"];
    assert.deepEqual(
      plan.images[0].tags.map((t) => [t.tag, t.action]),
      expected.map((t) => [t, "would-copy"]),
    );
    assert.equal((await getManifest(dst, "app", "latest")).status, 404, "a dry run writes nothing");
    assert.ok(
      ev.list.map(eventMessage).some((m) =>
        m.startsWith(
          `Resolved 3 tags for app matching tagPatterns ".*-alpine" | "nightly-\\\\d{8}", not ".*-rc\\\\d*-.*"`,
        )
      ),
      ev.list.map(eventMessage).join("\n"),
    );
    const real = await syncAnonymously(spec);
    assert.deepEqual(real.images[0].tags.map((t) => [t.tag, t.action]), expected.map((t) => [t, "copied"]));
    assert.equal(
      (await getManifest(dst, "app", "1.3.0-rc1-alpine")).status,
      404,
      "excluded tags are not copied",
    );
    assert.equal((await getManifest(dst, "app", "1.0.0")).status, 404, "unmatched tags are not copied");
  } finally {
    await src.stop();
    await dst.stop();
  }
});

Deno.test("images[].platforms: a filtered index is copied, its own digest recorded, and an unchanged one is skipped with HEADs only", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  try {
    const img = await pushImage(src, { repository: "multi/app", tag: "v1" }, {
      seed: 61,
      platforms: ["linux/amd64", "linux/arm64"],
    });
    const [amd64, arm64] = img.children!;
    const spec: ImageSyncSpec = {
      schedule: "@daily",
      source: { registry: src.host },
      destination: { registry: dst.host, auth: { method: "anonymous" } },
      images: [{ name: "multi/app", tags: ["v1"], platforms: ["linux/arm64"] }],
    };
    const first = await syncAnonymously(spec);
    const [tag] = first.images[0].tags;
    assert.equal(tag.action, "copied");
    const there = await getManifest(dst, "multi/app", "v1");
    assert.equal(tag.sourceDigest, img.digest, "status names the source's digest");
    assert.equal(tag.destinationDigest, there.digest, "and the filtered index's, which differs");
    assert.notEqual(there.digest, img.digest);
    const index = JSON.parse(new TextDecoder().decode(there.bytes));
    assert.deepEqual(index.manifests.map((m: { digest: string }) => m.digest), [arm64.digest]);
    assert.equal((await getManifest(dst, "multi/app", amd64.digest)).status, 404);
    const status = statusFromReport(first);
    assert.equal(status.images[0].tags?.[0].destinationDigest, there.digest);

    const mark = await logMark(src);
    const ev = events();
    const second = await syncAnonymously(spec, { previous: status, onEvent: ev.onEvent });
    assert.equal(second.images[0].tags[0].action, "up-to-date");
    const reads = (await logSince(src, mark)).filter((l) =>
      l.includes("/manifests/") || l.includes("/blobs/")
    );
    assert.ok(reads.length > 0 && reads.every((l) => l.startsWith("HEAD ")), reads.join("\n"));
    assert.equal(ev.of("ImageSkipped").length, 1);
  } finally {
    await src.stop();
    await dst.stop();
  }
});

Deno.test("destination.overwrite never: a destination tag at another digest is left and reported TagConflict; others sync", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  try {
    const ours = await pushImage(src, { repository: "app", tag: "v1" }, { seed: 71 });
    await pushImage(src, { repository: "app", tag: "v2" }, { seed: 72 });
    const theirs = await pushImage(dst, { repository: "app", tag: "v1" }, { seed: 73 });
    const spec: ImageSyncSpec = {
      schedule: "@daily",
      source: { registry: src.host },
      destination: { registry: dst.host, auth: { method: "anonymous" }, overwrite: "never" },
      images: [{ name: "app", tags: ["v1", "v2"] }],
    };
    const plan = await syncAnonymously(spec, { dryRun: true });
    assert.deepEqual(plan.images[0].tags.map((t) => [t.tag, t.action, t.reason]), [
      ["v1", "failed", "TagConflict"],
      ["v2", "would-copy", undefined],
    ]);
    const ev = events();
    const report = await syncAnonymously(spec, { onEvent: ev.onEvent });
    assert.deepEqual(report.images[0].tags.map((t) => [t.tag, t.action, t.reason]), [
      ["v1", "failed", "TagConflict"],
      ["v2", "copied", undefined],
    ]);
    assert.equal(
      (await getManifest(dst, "app", "v1")).digest,
      theirs.digest,
      "the destination tag was not moved",
    );
    assert.equal(readyReason(report), "TagConflict");
    const [conflict] = ev.of("TagConflict");
    assert.equal(
      eventMessage(conflict),
      `Left ${dst.host}/app:v1 at ${theirs.digest.slice(0, 15)}: the source ${src.host}/app:v1 is at ` +
        `${ours.digest.slice(0, 15)} and destination.overwrite is never`,
    );
    // the default (always) moves it
    const always = await syncAnonymously({
      ...spec,
      destination: { ...spec.destination, overwrite: "always" },
    });
    assert.equal(always.images[0].tags[0].action, "copied");
    assert.equal((await getManifest(dst, "app", "v1")).digest, ours.digest);
  } finally {
    await src.stop();
    await dst.stop();
  }
});

/** "METHOD kind STATUS" of an access-log line: /v2/, manifests, blobs, uploads. */
function requestKind(line: string): string {
  const [method, uri, status] = line.split(" ");
  const path = uri.split("?")[0];
  const kind = path === "/v2/"
    ? "/v2/"
    : /\/blobs\/uploads\//.test(path)
    ? "uploads"
    : /\/(manifests|blobs)\//.exec(path)?.[1] ?? path;
  return `${method} ${kind} ${status}`;
}

function countKinds(lines: string[]): Record<string, number> {
  const by: Record<string, number> = {};
  for (const l of lines) by[requestKind(l)] = (by[requestKind(l)] ?? 0) + 1;
  return by;
}

Deno.test("syncs sharing a client cache ping each registry once; a destination repository costs one token (pull,push) and a dry run's asks pull; without the cache every sync pings", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("bearer");
  try {
    const names = ["a", "b", "c", "d", "e", "f"];
    for (const [i, name] of names.entries()) {
      await pushImage(src, { repository: `team/${name}`, tag: "1.0" }, { seed: 700 + i, layers: [1024] });
    }
    const credential = { username: dst.username!, password: dst.password! };
    const credentials = {
      sourceCredentials: ANONYMOUS,
      destinationCredentials: {
        resolve: (host: string) => Promise.resolve(host === dst.host ? credential : undefined),
      },
    };
    const spec = (name: string, prefix: string): ImageSyncSpec => ({
      schedule: "@daily",
      source: { registry: src.host },
      destination: { registry: dst.host, auth: { method: "anonymous" }, repositoryPrefix: prefix },
      images: [{ name: `team/${name}`, tags: ["1.0"] }],
    });
    // six ImageSyncs, three at a time (a ping in flight is shared too), as the operator's workers run them
    const round = async (prefix: string, cache?: RegistryClientCache) => {
      const marks = [await logMark(src), await logMark(dst)];
      const tokens = dst.tokenRequests!.length;
      const reports: SyncReport[] = [];
      for (let i = 0; i < names.length; i += 3) {
        reports.push(
          ...await Promise.all(
            names.slice(i, i + 3).map((n) =>
              syncImageSync(spec(n, prefix), { ...credentials, clientCache: cache })
            ),
          ),
        );
      }
      for (const r of reports) {
        assert.equal(r.images[0].tags[0].action, "copied", JSON.stringify(r.images[0]));
      }
      return {
        src: countKinds(await logSince(src, marks[0])),
        dst: countKinds(await logSince(dst, marks[1])),
        tokens: dst.tokenRequests!.slice(tokens),
      };
    };
    const shared = await round("shared", new RegistryClientCache());
    // one ping per registry for all six; no request answered 401 but the ping
    assert.equal(shared.src["GET /v2/ 200"], 1, JSON.stringify(shared.src));
    assert.equal(shared.dst["GET /v2/ 401"], 1, JSON.stringify(shared.dst));
    assert.deepEqual(Object.keys(shared.dst).filter((k) => k.endsWith(" 401")), ["GET /v2/ 401"]);
    // a copied tag of one layer: at most 4 source and 8 destination requests (HEAD the tag,
    // GET its manifest and 2 blobs; HEAD the tag, per blob HEAD + POST + PUT, PUT the tag)
    const total = (by: Record<string, number>) => Object.values(by).reduce((a, b) => a + b, 0);
    assert.ok(total(shared.src) - 1 <= 4 * names.length, JSON.stringify(shared.src));
    assert.ok(total(shared.dst) - 1 <= 8 * names.length, JSON.stringify(shared.dst));
    // one token per destination repository, with the push scope its reads and writes share
    assert.deepEqual(
      shared.tokens.map((t) => t.scope.join(" ")).sort(),
      names.map((n) => `repository:shared/team/${n}:pull,push`),
    );

    const own = await round("own");
    assert.equal(own.src["GET /v2/ 200"], names.length, JSON.stringify(own.src));
    assert.equal(own.dst["GET /v2/ 401"], names.length, JSON.stringify(own.dst));
    assert.equal(own.tokens.length, names.length);

    // a dry run only reads the destination: it asks pull alone (a read-only credential plans)
    const mark = dst.tokenRequests!.length;
    const plan = await syncImageSync(spec("a", "dry"), { ...credentials, dryRun: true });
    assert.equal(plan.images[0].tags[0].action, "would-copy");
    assert.deepEqual(dst.tokenRequests!.slice(mark).map((t) => t.scope.join(" ")), [
      "repository:dry/team/a:pull",
    ]);
  } finally {
    await src.stop();
    await dst.stop();
  }
});
