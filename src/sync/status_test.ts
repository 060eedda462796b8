import assert from "node:assert/strict";
import type { SyncReport } from "./sync.ts";
import { summaryMessage } from "./status.ts";

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

Deno.test("summaryMessage: a failed tag resolution is never 'synced successfully'", () => {
  const msg = summaryMessage(report({ totalImages: 0, resolutionFailures: 1, ok: false }));
  assert.equal(msg, "0 of 0 image(s) synced; tag resolution failed for 1 image(s)");
  assert.doesNotMatch(msg, /successfully/);
  assert.equal(
    summaryMessage(report({ totalImages: 4, syncedImages: 2, aborted: true, ok: false })),
    "2 of 4 image(s) synced; the sync was stopped early",
  );
});
