import assert from "node:assert/strict";
import { cond, obj } from "./_test_utils.ts";
import { checkSpec, decide, scheduleIntervalSeconds, SpecChecks } from "./decide.ts";

const now = new Date("2025-03-01T12:00:00Z");

function pick(d: ReturnType<typeof decide>): unknown[] {
  return d.kind === "sync" ? [d.kind, d.trigger] : [d.kind];
}

Deno.test("an invalid schedule is reported, never synced", () => {
  const d = decide(obj({ schedule: "every day" }), { now, syncNow: true });
  assert.equal(d.kind, "invalid");
  assert.equal(d.kind === "invalid" && d.reason, "InvalidSchedule");
  const message = d.kind === "invalid" ? d.message : "";
  assert.match(message, /^invalid schedule "every day": /);
  assert.doesNotMatch(message, /invalid schedule.*invalid schedule/, "said once");
});

Deno.test("first sync, spec change and sync-now sync immediately", () => {
  assert.deepEqual(pick(decide(obj(), { now, syncNow: false })), ["sync", "first-sync"]);
  const synced = { observedGeneration: 1, nextSyncTime: "2025-03-01T13:00:00Z" };
  assert.deepEqual(pick(decide(obj({ generation: 2, status: synced }), { now, syncNow: false })), [
    "sync",
    "spec-changed",
  ]);
  assert.deepEqual(pick(decide(obj({ status: synced }), { now, syncNow: true })), ["sync", "sync-now"]);
});

Deno.test("otherwise the schedule decides from nextSyncTime", () => {
  const d = decide(obj({ status: { observedGeneration: 1, nextSyncTime: "2025-03-01T12:30:00Z" } }), {
    now,
    syncNow: false,
  });
  assert.deepEqual(d, { kind: "wait", requeueAfterMs: 30 * 60_000 });
  assert.deepEqual(
    pick(decide(obj({ status: { observedGeneration: 1, nextSyncTime: "2025-03-01T11:59:59Z" } }), {
      now,
      syncNow: false,
    })),
    ["sync", "schedule"],
  );
});

Deno.test("a failed sync is retried (the queue's backoff paces it); an invalid spec is not", () => {
  const failed = {
    observedGeneration: 1,
    nextSyncTime: "2025-03-01T13:00:00Z",
    conditions: [cond("Ready", "False", "AuthFailed")],
  };
  assert.deepEqual(pick(decide(obj({ status: failed }), { now, syncNow: false })), ["sync", "retry"]);
  const invalidBefore = { ...failed, conditions: [cond("Ready", "False", "InvalidSchedule")] };
  assert.equal(decide(obj({ status: invalidBefore }), { now, syncNow: false }).kind, "wait");
});

Deno.test("a sync left Syncing=True by a stopped operator resumes", () => {
  const st = {
    observedGeneration: 1,
    nextSyncTime: "2025-03-01T13:00:00Z",
    conditions: [cond("Ready", "True", "SyncSucceeded"), cond("Syncing", "True", "SyncInProgress")],
  };
  assert.deepEqual(pick(decide(obj({ status: st }), { now, syncNow: false })), ["sync", "interrupted"]);
});

Deno.test("scheduleIntervalSeconds: @every's interval; for cron the time between its next two runs", () => {
  assert.equal(scheduleIntervalSeconds("@every 1h30m", now), 5400);
  assert.equal(scheduleIntervalSeconds("@daily", now), 86400);
  assert.equal(scheduleIntervalSeconds("0 */6 * * *", now), 6 * 3600);
  // weekdays at 09:00: from a Friday noon the next two runs are Monday and Tuesday
  assert.equal(scheduleIntervalSeconds("0 9 * * 1-5", new Date("2025-02-28T12:00:00Z")), 86400);
  assert.equal(scheduleIntervalSeconds("0 9 * * 1-5", new Date("2025-02-27T12:00:00Z")), 3 * 86400);
});

Deno.test("SpecChecks: a spec is checked once per uid and generation; a new generation or uid, or forget, checks again", () => {
  const checks = new SpecChecks();
  const a = { ...obj(), metadata: { ...obj().metadata, uid: "u1" } };
  const first = checks.check("ns/s", a);
  assert.ok(first.ok);
  assert.equal(checks.check("ns/s", structuredClone(a)), first, "same generation: remembered");
  // the apiserver bumps the generation with every spec change
  const edited = {
    ...a,
    metadata: { ...a.metadata, generation: 2 },
    spec: { ...a.spec, schedule: "every day" },
  };
  const second = checks.check("ns/s", edited);
  assert.ok(!second.ok && second.reason === "InvalidSchedule");
  // deleted and re-created under the same name: a new uid, generation 1 again
  const recreated = { ...a, metadata: { ...a.metadata, uid: "u2" }, spec: { ...a.spec, images: [] } };
  const third = checks.check("ns/s", recreated);
  assert.deepEqual(third, checkSpec(recreated));
  assert.ok(!third.ok && third.reason === "InvalidSpec");
  checks.forget("ns/s");
  assert.equal(checks.size, 0);
  // no generation (a plain object): checked every time, nothing remembered
  const bare = { ...a, metadata: { name: "s", namespace: "ns" } };
  assert.notEqual(checks.check("ns/b", bare), checks.check("ns/b", bare));
  assert.equal(checks.size, 0);
});
