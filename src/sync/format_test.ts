import assert from "node:assert/strict";
import type { SyncEvent } from "./events.ts";
import type { SyncReport, TagResult } from "./result.ts";
import {
  eventMessage,
  formatBytes,
  readyMessage,
  shortDigest,
  summaryMessage,
  syncCompleteMessage,
  tagStatusError,
} from "./format.ts";

function report(fields: Partial<SyncReport>): SyncReport {
  return {
    images: [],
    totalImages: 0,
    syncedImages: 0,
    failedImages: 0,
    copiedImages: 0,
    upToDateImages: 0,
    resolutionFailures: 0,
    bytesMoved: 0,
    blobsCopied: 0,
    blobsMounted: 0,
    blobsSkipped: 0,
    ok: true,
    dryRun: false,
    aborted: false,
    startedAt: "2024-01-01T00:00:00Z",
    finishedAt: "2024-01-01T00:00:01Z",
    ...fields,
  };
}

Deno.test("summaryMessage: success as upstream words it", () => {
  assert.equal(
    summaryMessage(report({ totalImages: 3, syncedImages: 3 })),
    "All 3 image(s) synced successfully",
  );
});

Deno.test("summaryMessage: failed tags are counted", () => {
  assert.equal(
    summaryMessage(report({ totalImages: 3, syncedImages: 1, failedImages: 2, ok: false })),
    "2 of 3 image(s) failed to sync",
  );
});

Deno.test("summaryMessage: a failed tag resolution counts as a failure, as upstream counts it", () => {
  const msg = summaryMessage(report({ totalImages: 0, failedImages: 1, resolutionFailures: 1, ok: false }));
  assert.equal(msg, "1 of 0 image(s) failed to sync; tag resolution failed for 1 image(s)");
  assert.doesNotMatch(msg, /successfully/);
  assert.equal(
    summaryMessage(report({ totalImages: 4, syncedImages: 2, aborted: true, ok: false })),
    "2 of 4 image(s) synced; the sync was stopped early",
  );
});

const DIGEST = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

Deno.test("formatBytes and shortDigest: one pair for every message (binary units, 8 hex digits as upstream)", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(3 * 1024 * 1024), "3.0 MiB");
  assert.equal(shortDigest(DIGEST), "sha256:01234567");
  assert.equal(shortDigest(undefined), "");
});

const tag = {
  image: "app",
  tag: "v1",
  source: "src.example.com/app:v1",
  destination: "dst.example.com/mirror/app:v1",
  dryRun: false,
};

Deno.test("eventMessage: a copied tag reads as upstream's ImageSynced Event, detail after", () => {
  const e: SyncEvent = {
    type: "ImageSynced",
    warning: false,
    ...tag,
    digest: DIGEST,
    bytesMoved: 1536,
    blobsCopied: 2,
    blobsMounted: 1,
    blobsSkipped: 0,
  };
  assert.equal(
    eventMessage(e),
    "Synced src.example.com/app:v1 → dst.example.com/mirror/app:v1 (digest: sha256:01234567), " +
      "1.5 KiB in 2 blob(s), 1 mounted, 0 already there",
  );
  assert.match(eventMessage({ ...e, dryRun: true }), /^Would copy src\.example\.com\/app:v1 → /);
});

Deno.test("eventMessage: skipped, failed, resolved, resolution failed, repository ensured", () => {
  assert.equal(
    eventMessage({ type: "ImageSkipped", warning: false, ...tag, digest: DIGEST }),
    "Image src.example.com/app:v1 already up-to-date (digest: sha256:01234567)",
  );
  assert.equal(
    eventMessage({ type: "SyncFailed", warning: true, ...tag, reason: "NotFound", error: "no such tag" }),
    "Failed to copy src.example.com/app:v1 to dst.example.com/mirror/app:v1: no such tag",
  );
  assert.equal(
    eventMessage({
      type: "SyncFailed",
      warning: true,
      ...tag,
      reason: "NotFound",
      error: "manifest unknown",
      step: "source-digest",
    }),
    "Failed to get source digest for src.example.com/app:v1: manifest unknown",
  );
  const resolved: SyncEvent = {
    type: "TagsResolved",
    warning: false,
    image: "app",
    sourceRepository: "src.example.com/app",
    constraint: "^1.0.0",
    tags: Array.from({ length: 12 }, (_, i) => `1.${11 - i}.0`),
    totalMatches: 30,
  };
  const text = eventMessage(resolved);
  assert.match(
    text,
    /^Resolved 12 tags for app matching "\^1\.0\.0" \(newest 12 of 30\): /,
  );
  assert.match(text, /1\.2\.0, …$/, "at most ten tags are named");
  assert.equal(
    eventMessage({
      type: "TagResolutionFailed",
      warning: true,
      image: "app",
      sourceRepository: "src.example.com/app",
      constraint: "^1.0.0",
      reason: "NotFound",
      error: "repository not found",
      keptTags: ["1.4.0"],
    }),
    'Failed to resolve tags for app matching "^1.0.0": repository not found ' +
      "(keeping 1 tag(s) resolved by the previous sync)",
  );
  assert.equal(
    eventMessage({
      type: "RepoEnsured",
      warning: false,
      image: "app",
      repository: "mirror/app",
      registry: "1.dkr.ecr.us-east-1.amazonaws.com",
      created: true,
    }),
    'ECR repository "mirror/app" exists or was created (created now at 1.dkr.ecr.us-east-1.amazonaws.com)',
  );
});

Deno.test("tagStatusError: status errors begin as upstream's", () => {
  const t = { error: "manifest unknown", reason: "NotFound" };
  assert.equal(
    tagStatusError({ ...t, failedStep: "source-digest" }),
    "failed to get source digest: manifest unknown",
  );
  assert.equal(tagStatusError({ ...t, failedStep: "copy" }), "copy failed: manifest unknown");
  assert.equal(tagStatusError({ error: "validation failed: x", failedStep: "gate" }), "validation failed: x");
  assert.equal(tagStatusError({ error: "left", reason: "TagConflict", failedStep: "copy" }), "left");
  assert.equal(tagStatusError({}), undefined);
});

Deno.test("readyMessage: the summary, and the first failure when something failed", () => {
  const failed = report({
    totalImages: 2,
    syncedImages: 1,
    failedImages: 1,
    ok: false,
    images: [{
      name: "app",
      sourceRepository: "s/app",
      destinationRepository: "d/app",
      tags: [
        { ...tagResult("v1"), synced: true, action: "copied" },
        { ...tagResult("v2"), reason: "NotFound", error: "manifest unknown" },
      ],
    }],
  });
  assert.equal(readyMessage(failed), "1 of 2 image(s) failed to sync; first: app:v2: manifest unknown");
  const resolution = report({
    ok: false,
    failedImages: 1,
    resolutionFailures: 1,
    images: [{
      name: "gone",
      sourceRepository: "s/gone",
      destinationRepository: "d/gone",
      tags: [],
      selection: { constraint: "1.x", matched: [], error: { reason: "NotFound", message: "no repo" } },
    }],
  });
  assert.equal(
    readyMessage(resolution),
    "1 of 0 image(s) failed to sync; tag resolution failed for 1 image(s); first: gone: no repo",
  );
  assert.equal(
    readyMessage(report({ totalImages: 1, syncedImages: 1 })),
    "All 1 image(s) synced successfully",
  );
  assert.equal(
    syncCompleteMessage(report({ totalImages: 3, syncedImages: 2, failedImages: 1 })),
    "Sync complete: 2 synced, 1 failed, 3 total",
  );
});

function tagResult(t: string): TagResult {
  return {
    tag: t,
    synced: false,
    action: "failed",
    source: `s/app:${t}`,
    destination: `d/app:${t}`,
    bytesMoved: 0,
    blobsCopied: 0,
    blobsMounted: 0,
    blobsSkipped: 0,
  };
}
