import assert from "node:assert/strict";
import { countReady } from "./ready_watch.ts";

Deno.test("countReady: Ready=True counts, Syncing/Progressing or no condition is pending, another False fails", () => {
  const count = countReady([
    ["a", { type: "Ready", status: "True" }],
    ["b", { type: "Ready", status: "False", reason: "Syncing", message: "copying" }],
    ["c", undefined],
    ["d", { type: "Ready", status: "False", reason: "Progressing" }],
    ["e", { type: "Ready", status: "False", reason: "SyncFailed", message: "HTTP 500" }],
    ["f", { type: "Ready", status: "Unknown" }],
  ]);
  assert.deepEqual(count, { ready: 1, failed: [{ name: "e", message: "SyncFailed: HTTP 500" }] });
});
