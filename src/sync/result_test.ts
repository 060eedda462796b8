import assert from "node:assert/strict";
import { failedTag, type ImageResult, pendingTag, readyReason, summarize, type TagResult } from "./result.ts";

const refs = (tag: string) => ({ source: `s/app:${tag}`, destination: `d/app:${tag}` });
const FACTS = { dryRun: false, aborted: false, startedAt: "t0", finishedAt: "t1" };

function done(tag: string, fields: Partial<TagResult>): TagResult {
  return { ...pendingTag(tag, refs(tag)), ...fields };
}

Deno.test("summarize: counts tags by action and adds up blobs and bytes", () => {
  const images: ImageResult[] = [{
    name: "app",
    sourceRepository: "s/app",
    destinationRepository: "d/app",
    tags: [
      done("a", { action: "copied", synced: true, bytesMoved: 10, blobsCopied: 1, blobsMounted: 2 }),
      done("b", { action: "up-to-date", synced: true, blobsSkipped: 3 }),
      failedTag("c", refs("c"), { reason: "NotFound", message: "gone" }),
    ],
  }];
  const r = summarize(images, FACTS);
  assert.deepEqual(
    [r.totalImages, r.syncedImages, r.failedImages, r.copiedImages, r.upToDateImages, r.resolutionFailures],
    [3, 2, 1, 1, 1, 0],
  );
  assert.deepEqual([r.bytesMoved, r.blobsCopied, r.blobsMounted, r.blobsSkipped], [10, 1, 2, 3]);
  assert.equal(r.ok, false);
});

Deno.test("summarize: a failed resolution counts as one failed image (as upstream); it or an abort is never ok", () => {
  const resolution: ImageResult = {
    name: "gone",
    sourceRepository: "s/gone",
    destinationRepository: "d/gone",
    tags: [],
    selection: { constraint: "1.x", matched: [], error: { reason: "NotFound", message: "no repo" } },
  };
  const r = summarize([resolution], FACTS);
  assert.deepEqual([r.resolutionFailures, r.failedImages, r.totalImages, r.ok], [1, 1, 0, false]);
  assert.equal(summarize([], { ...FACTS, aborted: true }).ok, false);
  assert.equal(summarize([], FACTS).ok, true);
});

Deno.test("readyReason: RepoCreationFailed and TagConflict name the Ready reason; anything else failing is SyncFailed", () => {
  const image = (tags: TagResult[], extra: Partial<ImageResult> = {}): ImageResult => ({
    name: "app",
    sourceRepository: "s/app",
    destinationRepository: "d/app",
    tags,
    ...extra,
  });
  const conflict = failedTag("a", refs("a"), { reason: "TagConflict", message: "left" });
  const missing = failedTag("b", refs("b"), { reason: "NotFound", message: "gone" });
  assert.equal(
    readyReason(summarize([image([done("a", { action: "copied", synced: true })])], FACTS)),
    "SyncSucceeded",
  );
  assert.equal(readyReason(summarize([image([conflict])], FACTS)), "TagConflict");
  assert.equal(readyReason(summarize([image([conflict, missing])], FACTS)), "SyncFailed");
  const repo = { reason: "RepoCreationFailed", message: "denied" };
  assert.equal(
    readyReason(summarize([image([failedTag("c", refs("c"), repo)], { repositoryError: repo })], FACTS)),
    "RepoCreationFailed",
  );
});
