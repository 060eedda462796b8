import assert from "node:assert/strict";
import { KubeError, type RequestOptions } from "./client.ts";
import { type EventObject, type EventRecord, EventRecorder, MAX_SIMILAR } from "./events.ts";

/** The Event API in memory: creates and merge-patches, with scripted failures. */
class FakeEvents {
  events = new Map<string, Record<string, unknown>>();
  calls: string[] = [];
  failNext: KubeError[] = [];
  request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    this.calls.push(method);
    const err = this.failNext.shift();
    if (err) return Promise.reject(err);
    const body = options.body as Record<string, unknown>;
    if (method === "POST") {
      const name = (body.metadata as { name: string }).name;
      this.events.set(name, structuredClone(body));
      return Promise.resolve(body as T);
    }
    const name = decodeURIComponent(path.slice(path.lastIndexOf("/") + 1));
    const cur = this.events.get(name);
    if (!cur) return Promise.reject(new KubeError("not found", { status: 404, reason: "NotFound" }));
    Object.assign(cur, body);
    return Promise.resolve(cur as T);
  }
  list(): Array<Record<string, unknown>> {
    return [...this.events.values()];
  }
}

const target: EventObject = {
  apiVersion: "portager.portager.io/v1alpha1",
  kind: "ImageSync",
  name: "mirror",
  namespace: "team-a",
  uid: "u-1",
};

function recorder(kube: FakeEvents, now = () => new Date("2026-01-01T00:00:00Z")) {
  return new EventRecorder(kube, {
    component: "imagesync-controller",
    instance: "pod-1",
    flushMs: 60_000,
    now,
  });
}

Deno.test("events: records close together become one Event with a count, later ones patch it", async () => {
  const kube = new FakeEvents();
  const rec = recorder(kube);
  for (let i = 0; i < 3; i++) rec.record(target, { type: "Normal", reason: "SyncComplete", message: "done" });
  await rec.flush();
  assert.deepEqual(kube.calls, ["POST"], "one write for three records");
  const [ev] = kube.list();
  assert.equal(ev.count, 3);
  assert.equal(ev.reason, "SyncComplete");
  assert.deepEqual(ev.involvedObject, { ...target, resourceVersion: undefined });
  assert.equal(ev.reportingComponent, "imagesync-controller");
  assert.deepEqual(ev.source, { component: "imagesync-controller" });
  assert.equal(ev.reportingInstance, "pod-1");
  rec.record(target, { type: "Normal", reason: "SyncComplete", message: "done" });
  await rec.close();
  assert.deepEqual(kube.calls, ["POST", "PATCH"]);
  assert.equal(kube.list()[0].count, 4);
  // closed: nothing more is written
  rec.record(target, { type: "Normal", reason: "SyncComplete", message: "done" });
  await rec.flush();
  assert.equal(kube.calls.length, 2);
});

Deno.test("events: another reason or type is another Event; a record after the window starts a new one", async () => {
  const kube = new FakeEvents();
  let t = Date.parse("2026-01-01T00:00:00Z");
  const rec = recorder(kube, () => new Date(t));
  rec.record(target, { type: "Normal", reason: "SyncComplete", message: "done" });
  rec.record(target, { type: "Warning", reason: "SyncFailed", message: "boom" });
  await rec.flush();
  assert.equal(kube.list().length, 2);
  t += 11 * 60_000; // past the 10-minute window
  rec.record(target, { type: "Normal", reason: "SyncComplete", message: "done" });
  await rec.close();
  assert.equal(kube.list().length, 3);
  assert.deepEqual(kube.calls, ["POST", "POST", "POST"]);
});

Deno.test("events: an Event deleted meanwhile is created again; a transient failure is retried", async () => {
  const kube = new FakeEvents();
  const rec = recorder(kube);
  rec.record(target, { type: "Normal", reason: "SyncComplete", message: "done" });
  await rec.flush();
  kube.events.clear(); // expired by the apiserver's TTL
  rec.record(target, { type: "Normal", reason: "SyncComplete", message: "done" });
  await rec.flush();
  assert.deepEqual(kube.calls, ["POST", "PATCH", "POST"]);
  assert.equal(kube.list()[0].count, 1);
  // the apiserver is away once: the record is kept and written on the retry
  kube.failNext.push(new KubeError("unavailable", { status: 503, reason: "ServiceUnavailable" }));
  rec.record(target, { type: "Warning", reason: "SyncFailed", message: "boom" });
  await rec.flush();
  assert.equal(kube.list().filter((e) => e.reason === "SyncFailed").length, 0);
  await rec.close();
  assert.equal(kube.list().filter((e) => e.reason === "SyncFailed").length, 1);
});

Deno.test("events: messages are capped; a refused write is dropped, not retried", async () => {
  const kube = new FakeEvents();
  const rec = recorder(kube);
  rec.record(target, { type: "Warning", reason: "SyncFailed", message: "x".repeat(100_000) });
  await rec.flush();
  const msg = kube.list()[0].message as string;
  assert.ok(msg.length <= 1024, `capped, got ${msg.length}`);
  assert.ok(msg.endsWith("…"));
  kube.failNext.push(new KubeError("forbidden", { status: 403, reason: "Forbidden" }));
  rec.record(target, { type: "Normal", reason: "Other", message: "m" });
  await rec.close();
  assert.equal(kube.list().filter((e) => e.reason === "Other").length, 0);
  assert.equal(kube.calls.filter((c) => c === "POST").length, 2, "no retry of a 403");
});

/** An ImageSynced record of tag `i`. */
function synced(i: number): EventRecord {
  return { type: "Normal", reason: "ImageSynced", message: `Synced src/app:${i} → dst/app:${i}` };
}

Deno.test("events: distinct messages stay distinct Events (client-go's correlator), then combine", async () => {
  const kube = new FakeEvents();
  const rec = recorder(kube);
  // four tags synced: four Events kubectl describe shows, not one with the last message
  for (let i = 1; i <= 4; i++) rec.record(target, synced(i));
  await rec.flush();
  assert.deepEqual(kube.list().map((e) => [e.message, e.count]), [
    ["Synced src/app:1 → dst/app:1", 1],
    ["Synced src/app:2 → dst/app:2", 1],
    ["Synced src/app:3 → dst/app:3", 1],
    ["Synced src/app:4 → dst/app:4", 1],
  ]);
  // a repeat of a known message counts on its own Event
  rec.record(target, synced(1));
  await rec.flush();
  assert.equal(kube.list()[0].count, 2);
  // from the MAX_SIMILAR-th distinct message on, one combined Event
  for (let i = 5; i <= 30; i++) rec.record(target, synced(i));
  await rec.flush();
  const events = kube.list();
  assert.equal(events.length, MAX_SIMILAR, "9 individual + 1 combined");
  const combined = events.find((e) => String(e.message).startsWith("(combined from similar events): "))!;
  assert.equal(combined.message, "(combined from similar events): Synced src/app:30 → dst/app:30");
  assert.equal(combined.count, 30 - MAX_SIMILAR + 1);
  // the next sync of the same tags: the nine kept messages count on their own Events, the
  // others on the combined one; no new Event
  for (let i = 1; i <= 30; i++) rec.record(target, synced(i));
  await rec.close();
  assert.equal(kube.list().length, MAX_SIMILAR);
  assert.deepEqual(kube.list().map((e) => e.count), [3, 2, 2, 2, 2, 2, 2, 2, 2, 2 * (30 - MAX_SIMILAR + 1)]);
  assert.equal(kube.calls.filter((c) => c === "POST").length, MAX_SIMILAR, "writes per flush are bounded");
});

Deno.test("events: the similar-message window restarts 10 minutes after the last similar record", async () => {
  const kube = new FakeEvents();
  let t = Date.parse("2026-01-01T00:00:00Z");
  const rec = recorder(kube, () => new Date(t));
  for (let i = 1; i <= 12; i++) rec.record(target, synced(i));
  await rec.flush();
  assert.equal(kube.list().length, MAX_SIMILAR);
  t += 9 * 60_000; // within the window of the last record: still combined
  rec.record(target, synced(13));
  await rec.flush();
  assert.equal(kube.list().length, MAX_SIMILAR);
  t += 11 * 60_000; // a quiet 11 minutes: a distinct message is its own Event again
  rec.record(target, synced(14));
  await rec.close();
  assert.equal(kube.list().length, MAX_SIMILAR + 1);
  assert.equal(kube.list().at(-1)!.message, "Synced src/app:14 → dst/app:14");
});

Deno.test("events: updates of a written Event wait for a pause, so a long sync patches it a bounded number of times", async () => {
  const kube = new FakeEvents();
  const rec = new EventRecorder(kube, {
    component: "imagesync-controller",
    flushMs: 10,
    quietMs: 150,
    maxDelayMs: 500,
  });
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const record = () => rec.record(target, { type: "Normal", reason: "ImageSkipped", message: "combined" });
  const patches = () => kube.calls.filter((c) => c === "PATCH").length;
  record();
  await sleep(60);
  assert.deepEqual(kube.calls, ["POST"], "a new Event is created at once");
  // a burst shorter than maxDelayMs: one PATCH once it pauses
  for (let i = 0; i < 15; i++) {
    record();
    await sleep(10);
  }
  assert.equal(patches(), 0, "no PATCH while the burst goes on");
  await sleep(400);
  assert.ok(patches() >= 1 && patches() <= 2, `patches: ${patches()}`);
  assert.equal(kube.list()[0].count, 16);
  // a burst of 1.5 s (a long sync): a PATCH at most every maxDelayMs, not one per flush
  const before = patches();
  const end = Date.now() + 1_500;
  let n = 16;
  while (Date.now() < end) {
    record();
    n++;
    await sleep(10);
  }
  await sleep(400);
  const during = patches() - before;
  assert.ok(during >= 2 && during <= 5, `patches for a 1.5 s burst: ${during}`);
  assert.equal(kube.list()[0].count, n, "every record counted");
  await rec.close();
});

Deno.test("events: an idle recorder forgets what it held once the window has passed", async () => {
  const kube = new FakeEvents();
  const rec = new EventRecorder(kube, { flushMs: 0, windowMs: 100 });
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  rec.record(target, { type: "Normal", reason: "SyncComplete", message: "synced" });
  rec.record(target, { type: "Warning", reason: "SyncFailed", message: "failed" });
  await rec.flush();
  assert.deepEqual(rec.held, { series: 2, groups: 2 });
  await sleep(100);
  assert.deepEqual(rec.held, { series: 2, groups: 2 }, "kept within the window");
  await sleep(400); // the window (100 ms) and the batching slack (as long as the window here)
  assert.deepEqual(rec.held, { series: 0, groups: 0 }, "nothing held after the window");
  // a record afterwards is a new Event, as it was without forgetting
  rec.record(target, { type: "Normal", reason: "SyncComplete", message: "synced" });
  await rec.close();
  assert.deepEqual(kube.list().map((e) => [e.reason, e.count]), [["SyncComplete", 1], ["SyncFailed", 1], [
    "SyncComplete",
    1,
  ]]);
  assert.deepEqual(kube.calls, ["POST", "POST", "POST"]);
});

Deno.test("events: Events created in one burst get distinct names (none lost to a name clash)", async () => {
  const kube = new FakeEvents();
  const rec = recorder(kube);
  // one object, 200 reasons: 200 Events created within a millisecond or two
  for (let i = 0; i < 200; i++) rec.record(target, { type: "Normal", reason: `Step${i}`, message: "m" });
  await rec.close();
  assert.equal(kube.calls.filter((c) => c === "POST").length, 200);
  assert.equal(kube.list().length, 200, "every Event kept under its own name");
});
