import assert from "node:assert/strict";
import { cond } from "./_test_utils.ts";
import {
  capMessage,
  capStatusMessages,
  MAX_CONDITION_MESSAGE,
  MAX_TAG_MESSAGE,
  MAX_TAG_MESSAGES_TOTAL,
  MIN_TAG_MESSAGE,
  TRUNCATED_MARKER,
} from "./status_caps.ts";

Deno.test("status messages are capped with a truncation marker: conditions at 32 KiB, a tag's error and validationError at 1 KiB", () => {
  const long = "x".repeat(64 * 1024);
  const capped = capStatusMessages({
    conditions: [
      { ...cond("Ready", "False", "SyncFailed"), message: long },
      cond("Syncing", "False", "Done"),
    ],
    images: [{
      name: "app",
      tags: [
        { tag: "1", synced: false, error: `copy failed: ${long}`, validationError: long, reason: "NotFound" },
        { tag: "2", synced: true },
      ],
    }],
  });
  const ready = capped.conditions![0].message;
  assert.equal(ready.length, MAX_CONDITION_MESSAGE);
  assert.ok(ready.endsWith(TRUNCATED_MARKER));
  assert.equal(capped.conditions![1].message, "", "a short message is kept as is");
  const [t1, t2] = capped.images![0].tags!;
  assert.equal(t1.error!.length, MAX_TAG_MESSAGE);
  assert.ok(t1.error!.startsWith("copy failed: xxx") && t1.error!.endsWith(TRUNCATED_MARKER));
  assert.equal(t1.validationError!.length, MAX_TAG_MESSAGE);
  assert.equal(t1.reason, "NotFound");
  assert.deepEqual(t2, { tag: "2", synced: true });
});

Deno.test("capMessage never splits a surrogate pair and keeps what fits", () => {
  assert.equal(capMessage("short", 1024), "short");
  // the cut falls after the first half of the first emoji: that half goes too
  const cut = capMessage("ab" + "😀".repeat(20), TRUNCATED_MARKER.length + 3);
  assert.equal(cut, "ab" + TRUNCATED_MARKER);
  assert.equal(capMessage("y".repeat(2000), 1024).length, 1024);
});

Deno.test("status messages: thousands of failing tags share one budget, so the object stays far below etcd's limit", () => {
  const long = "y".repeat(4096);
  const tags = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ tag: `t${i}`, synced: false, error: long, reason: "Forbidden" }));
  const few = capStatusMessages({ images: [{ name: "app", tags: tags(10) }] });
  assert.ok(
    few.images![0].tags!.every((t) => t.error!.length === MAX_TAG_MESSAGE),
    "few tags keep 1 KiB each",
  );
  const many = capStatusMessages({
    images: [{ name: "a", tags: tags(750) }, { name: "b", tags: tags(750) }],
  });
  const all = many.images!.flatMap((i) => i.tags!);
  const total = all.reduce((n, t) => n + t.error!.length, 0);
  assert.ok(total <= MAX_TAG_MESSAGES_TOTAL, `${total} characters of tag messages`);
  assert.ok(all.every((t) => t.error!.endsWith(TRUNCATED_MARKER) && t.error!.length > MIN_TAG_MESSAGE));
  const huge = capStatusMessages({ images: [{ name: "a", tags: tags(5000) }] });
  assert.equal(huge.images![0].tags![0].error!.length, MIN_TAG_MESSAGE, "never below the floor");
  assert.ok(JSON.stringify(huge).length < 1024 * 1024);
});
