import assert from "node:assert/strict";
import type { PushEvent } from "./event.ts";
import { ReplayGuard } from "./replay.ts";

function push(id: string | undefined, timestamp?: number): PushEvent {
  return { source: "distribution", registry: "r", repository: "a", tag: "1", id, timestamp };
}

Deno.test("replay: an id seen within the window is refused with 409; after the window it passes", () => {
  let now = 1_000_000;
  const g = new ReplayGuard({ windowMs: 60_000, now: () => now });
  assert.deepStrictEqual(g.admit([push("a")]).length, 1);
  assert.throws(() => g.admit([push("a")]), { reason: "Replayed", status: 409 });
  // a request mixing a replayed and a new event keeps only the new one
  assert.deepStrictEqual(g.admit([push("a"), push("b")]).map((p) => p.id), ["b"]);
  now += 60_001;
  assert.deepStrictEqual(g.admit([push("a")]).length, 1);
});

Deno.test("replay: a payload dated outside the window, or too far ahead, is stale (400)", () => {
  const now = 5_000_000;
  const g = new ReplayGuard({ windowMs: 60_000, clockSkewMs: 10_000, now: () => now });
  assert.throws(() => g.admit([push("x", now - 60_001)]), { reason: "Stale", status: 400 });
  assert.throws(() => g.admit([push("y", now + 10_001)]), {
    name: "WebhookError",
    message: /outside\ the\ accepted\ window/,
  });
  assert.deepStrictEqual(g.admit([push("z", now - 59_000)]).length, 1);
  // undated and id-less payloads (Quay) pass: coalescing bounds what a replay costs
  assert.deepStrictEqual(g.admit([push(undefined)]).length, 1);
  assert.deepStrictEqual(g.admit([]), []);
});

Deno.test("replay: ids remembered are bounded", () => {
  const g = new ReplayGuard({ maxIds: 100 });
  for (let i = 0; i < 1000; i++) g.admit([push(`id-${i}`)]);
  assert.deepStrictEqual(g.size, 100);
  // the newest are kept
  assert.throws(() => g.admit([push("id-999")]), { reason: "Replayed" });
});
