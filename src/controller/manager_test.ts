import assert from "node:assert/strict";
import type { ImageSync, ImageSyncSpec, ImageSyncStatus } from "../api/mod.ts";
import type { Lease } from "../kube/mod.ts";
import { createMetrics } from "../metrics/mod.ts";
import { createLogger } from "../log/mod.ts";
import { type ImageResult, summarize, type SyncReport } from "../sync/mod.ts";
import { type EventSource, type KeySink, Manager, type ManagerOptions, type Store } from "./manager.ts";
import { MemoryLeases } from "./memory_leases.ts";
import type { SyncRunner } from "./reconcile.ts";

// --- fakes: an in-memory store and a source the test drives ---

function imageSync(name: string): ImageSync {
  return {
    apiVersion: "portager.portager.io/v1alpha1",
    kind: "ImageSync",
    metadata: { name, namespace: "ns", generation: 1 },
    spec: {
      schedule: "@every 1h",
      source: { registry: "src.example" },
      destination: { registry: "dst.example", auth: { method: "anonymous" } },
      images: [{ name: "app", tags: ["1.0"] }],
    },
  };
}

class MemoryStore implements Store {
  objects = new Map<string, ImageSync>();
  events: Array<{ name: string; reason: string }> = [];
  closed = false;
  imagesyncs = {
    get: (ns: string, name: string) => {
      const o = this.objects.get(`${ns}/${name}`);
      return Promise.resolve(o ? structuredClone(o) : undefined);
    },
    removeAnnotation: (ns: string, name: string) =>
      Promise.resolve(structuredClone(this.objects.get(`${ns}/${name}`)!)),
    updateStatus: (cur: ImageSync, build: (o: ImageSync) => Partial<ImageSyncStatus>) => {
      const key = `${cur.metadata.namespace}/${cur.metadata.name}`;
      const o = this.objects.get(key);
      if (!o) return Promise.resolve(undefined);
      o.status = { ...(o.status ?? {}), ...build(structuredClone(o)) };
      return Promise.resolve(structuredClone(o));
    },
  };
  recorder = {
    record: (t: { name: string }, e: { reason: string }) =>
      void this.events.push({ name: t.name, reason: e.reason }),
  };
  loadSecret = () => Promise.resolve(undefined);
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
  add(...names: string[]): void {
    for (const n of names) this.objects.set(`ns/${n}`, imageSync(n));
  }
  condition(name: string, type: string) {
    return this.objects.get(`ns/${name}`)?.status?.conditions?.find((c) => c.type === type);
  }
}

class TestSource implements EventSource {
  sink?: KeySink;
  known: string[] = [];
  run(sink: KeySink, signal: AbortSignal): Promise<void> {
    this.sink = sink;
    return new Promise((r) => signal.addEventListener("abort", () => r(), { once: true }));
  }
  keys(): Iterable<string> {
    return this.known;
  }
  ready() {
    return { ok: true };
  }
}

function report(ok: boolean, aborted = false): SyncReport {
  const now = new Date().toISOString();
  const image: ImageResult = {
    name: "app",
    sourceRepository: "src.example/app",
    destinationRepository: "dst.example/app",
    tags: [],
  };
  const r = summarize([image], { dryRun: false, aborted, startedAt: now, finishedAt: now });
  // a failed sync, as the manager sees it: not ok, one image failed
  return ok ? r : { ...r, ok: false, failedImages: 1 };
}

/** A sync the test finishes: each run waits until `release(name)`. */
class Syncs {
  running = new Map<string, { resolve: (r: SyncReport) => void; signal: AbortSignal; cancel: AbortSignal }>();
  started: string[] = [];
  maxParallel = 0;
  outcome: (name: string, attempt: number) => "ok" | "fail" | "wait" = () => "wait";
  prepareSync: ManagerOptions["prepareSync"] = (obj) => {
    const name = obj.metadata.name;
    const runner: SyncRunner = (_spec: ImageSyncSpec, opts) => {
      this.started.push(name);
      const attempt = this.started.filter((n) => n === name).length;
      const how = this.outcome(name, attempt);
      if (how !== "wait") return Promise.resolve(report(how === "ok"));
      return new Promise<SyncReport>((resolve) => {
        this.running.set(name, { resolve, signal: opts.signal, cancel: opts.cancelInFlight });
        this.maxParallel = Math.max(this.maxParallel, this.running.size);
        opts.cancelInFlight.addEventListener("abort", () => {
          this.running.delete(name);
          resolve(report(false, true));
        }, { once: true });
      });
    };
    return Promise.resolve(runner);
  };
  release(name: string, ok = true): void {
    const r = this.running.get(name);
    assert.ok(r, `${name} is running`);
    this.running.delete(name);
    r.resolve(report(ok));
  }
}

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function setup(over: Partial<ManagerOptions> = {}) {
  const store = new MemoryStore();
  const source = new TestSource();
  const syncs = new Syncs();
  const lines: Array<Record<string, unknown>> = [];
  const manager = new Manager({
    store,
    source,
    logger: createLogger({ level: "debug", format: "json", write: (l) => lines.push(JSON.parse(l)) }),
    metrics: createMetrics(),
    prepareSync: syncs.prepareSync,
    backoffBaseMs: 5,
    backoffMaxMs: 20,
    ...over,
  });
  const stop = new AbortController();
  let done = false;
  const running = manager.run(stop.signal).finally(() => done = true);
  return {
    store,
    source,
    syncs,
    lines,
    manager,
    running,
    done: () => done,
    /** Adds ImageSyncs the source knows at start (queued when the workers start). */
    known: (...names: string[]) => {
      store.add(...names);
      source.known.push(...names.map((n) => `ns/${n}`));
    },
    stop: async () => {
      stop.abort();
      await running;
    },
  };
}

Deno.test("manager: N workers, one key at a time, a key added while in flight runs once more after", async () => {
  const t = setup({ workers: 2 });
  t.store.add("a", "b", "c");
  await until("the source to run", () => t.source.sink);
  for (const k of ["ns/a", "ns/b", "ns/c"]) t.source.sink!.add(k);
  await until("two syncs", () => t.syncs.running.size === 2);
  // a third key waits for a free worker; a running key added again is not run twice
  t.source.sink!.add("ns/a");
  t.source.sink!.add("ns/a");
  assert.deepEqual(t.syncs.started.sort(), ["a", "b"]);
  t.syncs.release("b");
  await until("c to start", () => t.syncs.running.has("c"));
  t.syncs.release("a");
  // "a" was dirty: it reconciles again (and, synced now, waits for its schedule: no second sync)
  await until(
    "a's second reconcile",
    () => t.lines.filter((l) => l.imagesync === "ns/a" && l.msg === "next sync scheduled").length >= 2,
  );
  t.syncs.release("c");
  await until("c done", () => t.store.condition("c", "Ready")?.status === "True");
  assert.equal(t.syncs.maxParallel, 2, "never more than 2 at once");
  assert.deepEqual(t.syncs.started.filter((n) => n === "a"), ["a"], "a synced once, reconciled twice");
  assert.equal(t.store.condition("a", "Ready")?.reason, "SyncSucceeded");
  await t.stop();
  assert.ok(t.store.closed, "the store is flushed at shutdown");
});

Deno.test("manager: a failed sync is retried with per-key backoff until it succeeds", async () => {
  const t = setup();
  t.syncs.outcome = (_name, attempt) => attempt < 3 ? "fail" : "ok";
  t.known("flaky");
  await until("success", () => t.store.condition("flaky", "Ready")?.status === "True");
  const retries = t.lines.filter((l) => l.msg === "sync failed; retrying with backoff");
  assert.deepEqual(retries.map((l) => l.retryInMs), [5, 10], "doubling from the base");
  assert.equal(t.syncs.started.length, 3);
  const exposed = await t.manager.metrics.expose();
  assert.match(exposed, /portage_retries_total\{[^}]*name="flaky",kind="reconcile"\} 2/);
  await t.stop();
});

Deno.test("manager: a store that fails is a reconcile failure, retried", async () => {
  const t = setup();
  t.store.add("x");
  let fail = true;
  const get = t.store.imagesyncs.get;
  t.store.imagesyncs.get = (ns, name) => fail ? Promise.reject(new Error("apiserver away")) : get(ns, name);
  await until("the source", () => t.source.sink);
  t.source.sink!.add("ns/x");
  await until(
    "a reconcile failure",
    () => t.lines.some((l) => l.msg === "reconcile failed; retrying with backoff"),
  );
  fail = false;
  t.syncs.outcome = () => "ok";
  await until("the retry to sync", () => t.store.condition("x", "Ready")?.status === "True");
  await t.stop();
});

Deno.test("manager: shutdown lets in-flight syncs finish within the grace period", async () => {
  const t = setup({ gracePeriodMs: 60_000 });
  t.known("slow");
  const r = await until("the sync", () => t.syncs.running.get("slow"));
  const stopping = t.stop();
  // shutdown began: the sync is told to start nothing new, not to cut copies
  await until("stopStarting", () => r.signal.aborted);
  assert.equal(r.cancel.aborted, false);
  assert.equal(t.done(), false, "waits for the sync");
  t.syncs.release("slow");
  await stopping;
  assert.equal(t.syncs.running.size, 0);
  assert.ok(!t.lines.some((l) => l.msg === "grace period over; interrupting in-flight syncs"));
});

Deno.test("manager: after the grace period copies in flight are cancelled and the sync marked Interrupted", async () => {
  const t = setup({ gracePeriodMs: 1 });
  t.known("stuck");
  const r = await until("the sync", () => t.syncs.running.get("stuck"));
  await t.stop();
  assert.ok(r.cancel.aborted, "cancelInFlight aborted");
  assert.ok(t.lines.some((l) => l.msg === "grace period over; interrupting in-flight syncs"));
  assert.equal(t.store.condition("stuck", "Syncing")?.reason, "Interrupted");
});

Deno.test("manager: a removed key leaves the metrics", async () => {
  const t = setup();
  t.syncs.outcome = () => "ok";
  t.known("gone");
  await until("synced", () => t.store.condition("gone", "Ready")?.status === "True");
  t.source.sink!.remove("ns/gone");
  t.store.objects.delete("ns/gone");
  assert.doesNotMatch(await t.manager.metrics.expose(), /name="gone"/, "its series are dropped");
  await t.stop();
});

function heldBy(holder: string): Lease {
  const now = new Date().toISOString();
  return {
    metadata: { name: "l", namespace: "ns" },
    spec: {
      holderIdentity: holder,
      leaseDurationSeconds: 1,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: 0,
    },
  };
}

/** Leader election as "me" on Lease ns/l, with short timings. */
function election(leases: MemoryLeases): ManagerOptions["leaderElection"] {
  return {
    leases,
    namespace: "ns",
    name: "l",
    identity: "me",
    leaseDurationMs: 1_000,
    renewDeadlineMs: 500,
    retryPeriodMs: 20,
  };
}

Deno.test("manager: with leader election only the leader works; a held lease keeps it standing by", async () => {
  const leases = new MemoryLeases();
  leases.put(heldBy("other"));
  const t = setup({
    leaderElection: election(leases),
  });
  t.syncs.outcome = () => "ok";
  t.known("a");
  // the other holder keeps renewing: several attempts of ours, no work
  const renewing = setInterval(() => leases.put(heldBy("other")), 10);
  try {
    await until("several election attempts", () => leases.gets >= 5);
    assert.equal(t.manager.working, false);
    assert.deepEqual(t.syncs.started, []);
    assert.deepEqual(t.manager.ready(), { ok: true }, "a healthy standby is ready");
  } finally {
    clearInterval(renewing);
  }
  // the other stops renewing: after a lease duration by our own clock, we lead and work
  await until("leadership", () => t.manager.working, 5_000);
  assert.equal(leases.peek("l")?.spec.holderIdentity, "me");
  assert.equal(leases.peek("l")?.spec.leaseTransitions, 1);
  await until("the sync", () => t.store.condition("a", "Ready")?.status === "True");
  await t.stop();
  assert.equal(leases.peek("l")?.spec.holderIdentity ?? "", "", "released at shutdown");
});

Deno.test("manager: a push's ImageSyncs are queued where owned, else requested through the store (standby, other shard); file mode queues them", async () => {
  const requested: string[] = [];
  const withRequests = (store: MemoryStore) =>
    Object.assign(store, {
      requestSync: (ns: string, name: string) => {
        requested.push(`${ns}/${name}`);
        return Promise.resolve(true);
      },
    });
  const by = "a push of src.example/app:1.0 (distribution webhook)";

  // a standby (the lease is held by another): nothing queued here, every match requested
  const leases = new MemoryLeases();
  leases.put(heldBy("other"));
  const renewing = setInterval(() => leases.put(heldBy("other")), 10);
  const standby = setup({
    leaderElection: election(leases),
  });
  try {
    withRequests(standby.store);
    standby.known("a", "b");
    await until("election attempts", () => leases.gets >= 2);
    assert.equal(standby.manager.working, false);
    assert.equal(standby.manager.acceptingPushes, true);
    await standby.manager.syncMatched([{ key: "ns/a", requestedBy: by }, { key: "ns/b", requestedBy: by }]);
    assert.deepEqual(requested, ["ns/a", "ns/b"]);
    assert.deepEqual(standby.syncs.started, []);
  } finally {
    clearInterval(renewing);
    await standby.stop();
  }
  assert.equal(standby.manager.acceptingPushes, false, "not while shutting down");

  // working, but the source owns only ns/a (a shard): ns/a queued with the push, ns/b requested
  requested.length = 0;
  const shard = setup();
  withRequests(shard.store);
  shard.syncs.outcome = () => "ok";
  shard.store.add("a", "b");
  shard.source.known = ["ns/a"];
  await until("first sync", () => shard.store.condition("a", "Ready")?.status === "True");
  await shard.manager.syncMatched([{ key: "ns/a", requestedBy: by }, { key: "ns/b", requestedBy: by }]);
  assert.deepEqual(requested, ["ns/b"]);
  await until("the push's sync", () => shard.syncs.started.filter((n) => n === "a").length === 2);
  assert.ok(shard.store.events.some((e) => e.name === "a" && e.reason === "SyncNowTriggered"));
  assert.ok(!shard.syncs.started.includes("b"));
  await shard.stop();

  // a store without requests (file mode): every match is queued here
  const file = setup();
  file.syncs.outcome = () => "ok";
  file.store.add("c");
  await until("working", () => file.manager.working);
  await file.manager.syncMatched([{ key: "ns/c", requestedBy: by }]);
  await until("the push's sync", () => file.syncs.started.includes("c"));
  await file.stop();
});

/**
 * A runner that copies until cancelled and then ends as the sync engine does: the tag in flight
 * failed (its Event emitted), one registry retry counted, the report not ok.
 */
function copyUntilCancelled(started: Array<{ name: string; signal: AbortSignal; cancel: AbortSignal }>) {
  const prepareSync: ManagerOptions["prepareSync"] = (obj) => {
    const name = obj.metadata.name;
    const runner: SyncRunner = (_spec, opts) => {
      started.push({ name, signal: opts.signal, cancel: opts.cancelInFlight });
      return new Promise<SyncReport>((resolve) => {
        opts.cancelInFlight.addEventListener("abort", () => {
          opts.onRetry();
          opts.onEvent({
            type: "SyncFailed",
            warning: true,
            image: "app",
            tag: "1.0",
            source: "src.example/app:1.0",
            destination: "dst.example/app:1.0",
            dryRun: false,
            reason: "Aborted",
            error: "copy of src.example/app:1.0 to dst.example/app:1.0 was cancelled",
            step: "copy",
          });
          resolve(report(false));
        }, { once: true });
      });
    };
    return Promise.resolve(runner);
  };
  return prepareSync;
}

for (const why of ["deleted", "unselected"] as const) {
  Deno.test(`manager: a key removed (${why}) mid-sync cancels its sync, which then writes, records and retries nothing`, async () => {
    const started: Array<{ name: string; signal: AbortSignal; cancel: AbortSignal }> = [];
    const t = setup({ prepareSync: copyUntilCancelled(started), gracePeriodMs: 1 });
    t.known("doomed", "other");
    await until("both syncs", () => started.length === 2);
    const doomed = started.find((s) => s.name === "doomed")!;
    const other = started.find((s) => s.name === "other")!;
    const statusBefore = structuredClone(t.store.objects.get("ns/doomed")!.status);
    // relabeled out of a selector, the object is still there (its new owner writes its status);
    // the source tells why only when asked (an apiserver read), and only a cancel asks
    let asked = 0;
    const tell = () => {
      asked++;
      return Promise.resolve(why);
    };
    t.source.sink!.remove("ns/nothing-in-flight", tell);
    assert.equal(asked, 0, "no sync cancelled: why is not asked");
    t.source.sink!.remove("ns/doomed", why === "deleted" ? undefined : tell);
    if (why === "deleted") t.store.objects.delete("ns/doomed");
    assert.ok(doomed.cancel.aborted && doomed.signal.aborted, "copies in flight and tags not started stop");
    assert.equal(other.cancel.aborted || other.signal.aborted, false, "the other key's sync runs on");
    const cancelledLines = () =>
      t.lines.filter((l) => typeof l.msg === "string" && l.msg.startsWith("sync cancelled"));
    const cancelled = await until("the cancel logged", () => cancelledLines().length > 0 && cancelledLines());
    assert.deepEqual(cancelled.map((l) => [l.level, l.imagesync, l.why]), [["info", "ns/doomed", why]]);
    assert.match(
      String(cancelled[0].msg),
      why === "deleted" ? /the ImageSync was deleted/ : /left this shard/,
    );
    await until("the cancelled reconcile to end", () => t.manager.inFlight === 1);
    await new Promise((r) => setTimeout(r, 50)); // a retry would come after 5 ms
    assert.equal(started.filter((s) => s.name === "doomed").length, 1, "not retried");
    assert.deepEqual(t.store.events.filter((e) => e.name === "doomed"), [], "no Event about it");
    if (why === "unselected") {
      assert.deepEqual(t.store.objects.get("ns/doomed")!.status, statusBefore, "no status write");
    }
    assert.ok(!t.lines.some((l) => l.imagesync === "ns/doomed" && /failed|interrupted/.test(String(l.msg))));
    assert.doesNotMatch(await t.manager.metrics.expose(), /name="doomed"/, "its series stay forgotten");
    await t.stop();
  });
}

Deno.test("manager: a key deleted and re-created while its sync runs is synced again for the new object", async () => {
  const started: Array<{ name: string; signal: AbortSignal; cancel: AbortSignal }> = [];
  const cancelling = copyUntilCancelled(started);
  let second: ((r: SyncReport) => void) | undefined;
  const t = setup({
    // the first run copies until cancelled; the second (the new object's) until released
    prepareSync: (obj, spec, signal) =>
      started.length === 0 ? cancelling!(obj, spec, signal) : Promise.resolve((_s, opts) => {
        started.push({ name: obj.metadata.name, signal: opts.signal, cancel: opts.cancelInFlight });
        return new Promise<SyncReport>((resolve) => second = resolve);
      }),
  });
  t.known("app");
  await until("the first sync", () => started.length === 1);
  t.source.sink!.remove("ns/app");
  t.store.objects.delete("ns/app");
  t.store.add("app");
  t.store.objects.get("ns/app")!.metadata.uid = "new";
  t.source.sink!.add("ns/app");
  assert.ok(started[0].cancel.aborted);
  await until("the new object's sync", () => second);
  assert.equal(
    started[1].cancel.aborted || started[1].signal.aborted,
    false,
    "not cancelled by the old removal",
  );
  second!(report(true));
  await until("the new object Ready", () => t.store.condition("app", "Ready")?.status === "True");
  assert.ok(t.store.events.some((e) => e.name === "app" && e.reason === "SyncComplete"));
  assert.ok(!t.store.events.some((e) => e.reason === "SyncFailed"), "nothing of the cancelled run");
  assert.match(await t.manager.metrics.expose(), /portage_sync_total\{[^}]*name="app"[^}]*status="success"/);
  await t.stop();
});
