import assert from "node:assert/strict";
import { findCondition, kubeTime, setCondition } from "./conditions.ts";

const t0 = new Date("2025-03-01T10:00:00.123Z");
const t1 = new Date("2025-03-01T11:00:00Z");

Deno.test("a new condition gets the current time as lastTransitionTime", () => {
  const c = setCondition(
    undefined,
    { type: "Ready", status: "True", reason: "SyncSucceeded", message: "ok" },
    {
      now: t0,
    },
  );
  assert.deepEqual(c, [{
    type: "Ready",
    status: "True",
    reason: "SyncSucceeded",
    message: "ok",
    lastTransitionTime: "2025-03-01T10:00:00Z",
  }]);
});

Deno.test("lastTransitionTime changes only when status changes", () => {
  let c = setCondition(undefined, { type: "Ready", status: "True", reason: "SyncSucceeded", message: "a" }, {
    now: t0,
  });
  c = setCondition(c, {
    type: "Ready",
    status: "True",
    reason: "SyncSucceeded",
    message: "b",
    observedGeneration: 2,
  }, {
    now: t1,
  });
  assert.equal(c.length, 1);
  assert.equal(c[0].lastTransitionTime, kubeTime(t0));
  assert.equal(c[0].message, "b");
  assert.equal(c[0].observedGeneration, 2);
  c = setCondition(c, { type: "Ready", status: "False", reason: "SyncFailed", message: "x" }, { now: t1 });
  assert.equal(c[0].lastTransitionTime, kubeTime(t1));
});

Deno.test("other condition types are kept in order", () => {
  let c = setCondition(undefined, { type: "Ready", status: "True", reason: "R", message: "" }, { now: t0 });
  c = setCondition(c, { type: "Syncing", status: "True", reason: "SyncInProgress", message: "" }, {
    now: t0,
  });
  c = setCondition(c, { type: "Ready", status: "False", reason: "SyncFailed", message: "" }, { now: t1 });
  assert.deepEqual(c.map((x) => x.type), ["Ready", "Syncing"]);
  assert.equal(findCondition(c, "Syncing")?.status, "True");
  assert.equal(findCondition(c, "Nope"), undefined);
});
