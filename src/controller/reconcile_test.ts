import assert from "node:assert/strict";
import { cond, obj } from "./_test_utils.ts";
import type { ImageSync, ImageSyncStatus } from "../api/mod.ts";
import { createLogger } from "../log/mod.ts";
import { summarize } from "../sync/mod.ts";
import { Reconciler } from "./reconcile.ts";
import { createMetrics } from "../metrics/mod.ts";

const now = new Date("2025-03-01T12:00:00Z");

// --- status writes per sync (issue 16, B5): Syncing=True only for a sync that outlasts a delay ---

function writesOf(opts: { syncingDelayMs: number; hold: Promise<void>; removed?: AbortSignal }) {
  const stored: ImageSync = obj();
  const writes: Array<Record<string, string>> = [];
  /** The signal of each status write. */
  const writeSignals: Array<AbortSignal | undefined> = [];
  const imagesyncs = {
    get: () => Promise.resolve(structuredClone(stored)),
    removeAnnotation: () => Promise.resolve(structuredClone(stored)),
    updateStatus: (
      _cur: ImageSync,
      build: (o: ImageSync) => Partial<ImageSyncStatus>,
      options?: { signal?: AbortSignal },
    ) => {
      writeSignals.push(options?.signal);
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
    writeSignals,
    reconcile: () =>
      r.reconcile("ns", "s", {
        signal: new AbortController().signal,
        cancelInFlight: new AbortController().signal,
        removed: opts.removed,
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

/** A sync held until `release`, whose ImageSync leaves when `removed` aborts. */
function heldSync(syncingDelayMs: number) {
  let release!: () => void;
  const hold = new Promise<void>((r) => release = r);
  const removed = new AbortController();
  const t = writesOf({ syncingDelayMs, hold, removed: removed.signal });
  return { ...t, removed, release: () => release(), done: t.reconcile() };
}

Deno.test("a sync whose ImageSync left mid-way (removed) writes nothing more: no Syncing=True, no result", async () => {
  const { removed, release, done, writes } = heldSync(30);
  await new Promise((r) => setTimeout(r, 5)); // the sync runs
  removed.abort();
  await new Promise((r) => setTimeout(r, 60)); // past the Syncing=True delay
  release();
  assert.deepEqual(await done, {}, "no error: nothing to retry");
  assert.deepEqual(writes, []);
});

Deno.test("a Syncing=True write still out when the ImageSync leaves is aborted", async () => {
  const { removed, release, done, ...t } = heldSync(1);
  while (t.writes.length === 0) await new Promise((r) => setTimeout(r, 5));
  assert.equal(t.writeSignals[0]?.aborted, false);
  removed.abort();
  assert.equal(t.writeSignals[0]?.aborted, true, "the write carries the removal signal");
  release();
  assert.deepEqual(await done, {});
  assert.deepEqual(t.writes, [{ Syncing: "True" }], "no result written after");
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

function deepFreeze<T>(o: T): T {
  if (o && typeof o === "object") {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

Deno.test("with a watch cache, reconcile reads the cached object (never the store) and leaves it as it was", async () => {
  const cached = deepFreeze({ ...obj(), metadata: { ...obj().metadata, uid: "u1", resourceVersion: "7" } });
  const observed: ImageSync[] = [];
  const r = new Reconciler({
    imagesyncs: {
      get: () => Promise.reject(new Error("the store was read")),
      removeAnnotation: () => Promise.reject(new Error("no annotation to remove")),
      updateStatus: (cur, build) =>
        Promise.resolve({ ...cur, metadata: { ...cur.metadata, resourceVersion: "8" }, status: build(cur) }),
    },
    cached: (ns, name) => ns === "ns" && name === "s" ? cached : undefined,
    observe: (o) => observed.push(o),
    recorder: { record: () => {} },
    prepareSync: () =>
      Promise.resolve(() =>
        Promise.resolve(summarize([], {
          dryRun: false,
          aborted: false,
          startedAt: now.toISOString(),
          finishedAt: now.toISOString(),
        }))
      ),
    logger: createLogger({ level: "error" }),
    now: () => now,
  });
  const signals = { signal: new AbortController().signal, cancelInFlight: new AbortController().signal };
  const res = await r.reconcile("ns", "s", signals);
  assert.equal(res.error, undefined);
  assert.equal(res.requeueAfterMs, 3_600_000, "synced (first sync), next in an hour");
  assert.equal(observed.length, 1, "the write went back to the cache");
  assert.equal(observed[0].status?.observedGeneration, 1);
  // gone from the cache: nothing to do, nothing read
  assert.deepEqual(await r.reconcile("ns", "gone", signals), {});
});
