import assert from "node:assert/strict";
import type { ImageSync, ImageSyncStatus } from "../api/mod.ts";
import { createLogger } from "../log/mod.ts";
import { summarize } from "../sync/mod.ts";
import {
  capMessage,
  capStatusMessages,
  decide,
  MAX_CONDITION_MESSAGE,
  MAX_TAG_MESSAGE,
  MAX_TAG_MESSAGES_TOTAL,
  MIN_TAG_MESSAGE,
  Reconciler,
  scheduleIntervalSeconds,
  TRUNCATED_MARKER,
} from "./reconcile.ts";
import { createMetrics } from "../metrics/mod.ts";

const now = new Date("2025-03-01T12:00:00Z");

function obj(over: { generation?: number; status?: ImageSync["status"]; schedule?: string } = {}): ImageSync {
  return {
    apiVersion: "portager.portager.io/v1alpha1",
    kind: "ImageSync",
    metadata: { name: "s", namespace: "ns", generation: over.generation ?? 1 },
    spec: {
      schedule: over.schedule ?? "@every 1h",
      source: { registry: "src.example" },
      destination: { registry: "dst.example", auth: { method: "anonymous" } },
      images: [{ name: "app", tags: ["1.0"] }],
    },
    status: over.status,
  };
}

const cond = (type: string, status: "True" | "False", reason: string) => ({
  type,
  status,
  reason,
  message: "",
  lastTransitionTime: "2025-03-01T00:00:00Z",
});

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

function pick(d: ReturnType<typeof decide>): unknown[] {
  return d.kind === "sync" ? [d.kind, d.trigger] : [d.kind];
}

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

// --- status writes per sync (issue 16, B5): Syncing=True only for a sync that outlasts a delay ---

function writesOf(opts: { syncingDelayMs: number; hold: Promise<void> }) {
  const stored: ImageSync = obj();
  const writes: Array<Record<string, string>> = [];
  const imagesyncs = {
    get: () => Promise.resolve(structuredClone(stored)),
    removeAnnotation: () => Promise.resolve(structuredClone(stored)),
    updateStatus: (_cur: ImageSync, build: (o: ImageSync) => Partial<ImageSyncStatus>) => {
      const patch = build(structuredClone(stored));
      stored.status = { ...stored.status, ...patch };
      writes.push(Object.fromEntries((patch.conditions ?? []).map((c) => [c.type, c.status])));
      return Promise.resolve(structuredClone(stored));
    },
  };
  const when = new Date().toISOString();
  const report = summarize([{
    name: "app",
    sourceRepository: "s/app",
    destinationRepository: "d/app",
    tags: [],
  }], {
    dryRun: false,
    aborted: false,
    startedAt: when,
    finishedAt: when,
  });
  const r = new Reconciler({
    imagesyncs,
    recorder: { record: () => {} },
    prepareSync: () => Promise.resolve(async () => (await opts.hold, report)),
    logger: createLogger({ level: "error" }),
    syncingDelayMs: opts.syncingDelayMs,
  });
  return {
    writes,
    reconcile: () =>
      r.reconcile("ns", "s", {
        signal: new AbortController().signal,
        cancelInFlight: new AbortController().signal,
      }),
  };
}

Deno.test("a quick sync writes its status once: no Syncing=True before the delay", async () => {
  const t = writesOf({ syncingDelayMs: 60_000, hold: Promise.resolve() });
  const res = await t.reconcile();
  assert.equal(res.error, undefined);
  assert.deepEqual(t.writes, [{ Syncing: "False", Ready: "True" }]);
});

Deno.test("a sync that outlasts the delay writes Syncing=True once, then its result", async () => {
  let release!: () => void;
  const hold = new Promise<void>((r) => release = r);
  const t = writesOf({ syncingDelayMs: 1, hold });
  const done = t.reconcile();
  while (t.writes.length === 0) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(t.writes, [{ Syncing: "True" }]);
  release();
  await done;
  assert.deepEqual(t.writes, [{ Syncing: "True" }, { Syncing: "False", Ready: "True" }]);
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

Deno.test("scheduleIntervalSeconds: @every's interval; for cron the time between its next two runs", () => {
  assert.equal(scheduleIntervalSeconds("@every 1h30m", now), 5400);
  assert.equal(scheduleIntervalSeconds("@daily", now), 86400);
  assert.equal(scheduleIntervalSeconds("0 */6 * * *", now), 6 * 3600);
  // weekdays at 09:00: from a Friday noon the next two runs are Monday and Tuesday
  assert.equal(scheduleIntervalSeconds("0 9 * * 1-5", new Date("2025-02-28T12:00:00Z")), 86400);
  assert.equal(scheduleIntervalSeconds("0 9 * * 1-5", new Date("2025-02-27T12:00:00Z")), 3 * 86400);
});

/** Reconciles `stored` once (it must not sync) and returns the metrics exposition. */
async function exposedAfterReconcile(stored: ImageSync): Promise<string> {
  const metrics = createMetrics();
  const r = new Reconciler({
    imagesyncs: {
      get: () => Promise.resolve(structuredClone(stored)),
      removeAnnotation: () => Promise.resolve(structuredClone(stored)),
      updateStatus: () => Promise.resolve(structuredClone(stored)),
    },
    recorder: { record: () => {} },
    prepareSync: () => Promise.reject(new Error("credentials refused")),
    logger: createLogger({ level: "error" }),
    metrics,
    now: () => now,
  });
  await r.reconcile("ns", "s", {
    signal: new AbortController().signal,
    cancelInFlight: new AbortController().signal,
  });
  return await metrics.expose();
}

Deno.test("a reconcile exports the schedule's interval and, while Ready is True, the status's last success (a restart forgets nothing)", async () => {
  const stored = obj({
    schedule: "@every 2h",
    status: {
      observedGeneration: 1,
      lastSyncTime: "2025-03-01T11:30:00Z",
      nextSyncTime: "2025-03-01T13:30:00Z",
      conditions: [cond("Ready", "True", "SyncComplete")],
    },
  });
  let text = await exposedAfterReconcile(stored);
  assert.match(text, /portager_schedule_interval_seconds\{name="s",namespace="ns"\} 7200/);
  const last = Date.parse("2025-03-01T11:30:00Z") / 1000;
  assert.match(
    text,
    new RegExp(`portager_last_success_timestamp_seconds\\{name="s",namespace="ns"\\} ${last}\n`),
  );
  // Ready=False: the last sync failed, its lastSyncTime is no success
  stored.status!.conditions = [cond("Ready", "False", "SyncFailed")];
  stored.status!.lastSyncTime = "2025-03-01T11:50:00Z";
  text = await exposedAfterReconcile(stored);
  assert.match(text, /portager_schedule_interval_seconds\{name="s",namespace="ns"\} 7200/);
  assert.doesNotMatch(text, /portager_last_success_timestamp_seconds\{/);
});
