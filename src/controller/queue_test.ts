import assert from "node:assert/strict";
import { ExponentialBackoff, WorkQueue } from "./queue.ts";

Deno.test("a key waiting in the queue is not queued twice", async () => {
  const depths: number[] = [];
  const q = new WorkQueue({ onDepth: (d) => depths.push(d) });
  q.add("ns/a");
  q.add("ns/b");
  q.add("ns/a");
  assert.equal(q.length, 2);
  assert.equal(await q.get(), "ns/a");
  assert.equal(await q.get(), "ns/b");
  assert.equal(q.length, 0);
  assert.deepEqual(depths, [1, 2, 1, 0]);
  q.shutDown();
});

Deno.test("a key in flight is not handed out again until done, then runs once more", async () => {
  const q = new WorkQueue();
  q.add("k");
  const k = await q.get();
  assert.equal(k, "k");
  q.add("k");
  q.add("k");
  assert.equal(q.length, 0, "in-flight key must not be queued while processing");
  let second: string | undefined;
  const p = q.get().then((v) => second = v);
  await Promise.resolve();
  assert.equal(second, undefined);
  q.done("k");
  await p;
  assert.equal(second, "k");
  q.done("k");
  assert.equal(q.length, 0, "dirty-marking runs the key exactly once more");
  q.shutDown();
});

Deno.test("a waiting worker gets a key as soon as it is added", async () => {
  const q = new WorkQueue();
  const p = q.get();
  q.add("x");
  assert.equal(await p, "x");
  assert.equal(q.inFlight, 1);
  q.done("x");
  q.shutDown();
});

Deno.test("shutDown releases waiting workers and drops timers", async () => {
  const q = new WorkQueue();
  const p = q.get();
  q.addAfter("later", 60_000);
  q.shutDown();
  assert.equal(await p, undefined);
  assert.equal(await q.get(), undefined);
  q.add("ignored");
  assert.equal(q.length, 0);
});

Deno.test("addAfter keeps the earliest timer and delivers the key", async () => {
  const q = new WorkQueue();
  q.addAfter("k", 60_000);
  q.addAfter("k", 5);
  q.addAfter("k", 30_000);
  assert.equal(await q.get(), "k");
  q.done("k");
  // the 30 s and 60 s timers were superseded, so shutDown has nothing left to clear
  q.shutDown();
});

Deno.test("delayed keys share one timer and come out in due order; a cancelled key never does", async () => {
  const q = new WorkQueue();
  q.addAfter("c", 30);
  q.addAfter("a", 5);
  q.addAfter("gone", 10);
  q.addAfter("b", 15);
  q.addAfter("later", 60_000);
  q.cancelTimer("gone");
  const got: string[] = [];
  for (let i = 0; i < 3; i++) {
    const k = (await q.get())!;
    got.push(k);
    q.done(k);
  }
  assert.deepEqual(got, ["a", "b", "c"]);
  assert.equal(q.length, 0);
  // cancelling the last delayed key clears the timer (the test's timer sanitizer checks it)
  q.cancelTimer("later");
});

Deno.test("backoff doubles from the base to the cap and resets on forget", () => {
  const b = new ExponentialBackoff({ baseMs: 5_000, maxMs: 300_000 });
  const delays = Array.from({ length: 9 }, () => b.next("k"));
  assert.deepEqual(delays, [5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000]);
  assert.equal(b.failures("k"), 9);
  assert.equal(b.next("other"), 5_000, "backoff is per key");
  b.forget("k");
  assert.equal(b.next("k"), 5_000);
});

Deno.test("addRateLimited waits the backoff delay", async () => {
  const q = new WorkQueue({ backoff: new ExponentialBackoff({ baseMs: 2, maxMs: 10 }) });
  assert.equal(q.addRateLimited("k"), 2);
  assert.equal(await q.get(), "k");
  q.done("k");
  assert.equal(q.addRateLimited("k"), 4);
  assert.equal(await q.get(), "k");
  q.done("k");
  q.forget("k");
  assert.equal(q.backoff.failures("k"), 0);
  q.shutDown();
});

Deno.test("queue metrics: adds (not duplicates), retries, wait and work durations, in-flight ages", async () => {
  let t = 0;
  const seen = { added: 0, retried: 0, waited: [] as number[], worked: [] as number[] };
  const q = new WorkQueue({
    now: () => t,
    backoff: new ExponentialBackoff({ baseMs: 1, maxMs: 1 }),
    metrics: {
      added: () => seen.added++,
      retried: () => seen.retried++,
      waited: (s) => seen.waited.push(s),
      worked: (s) => seen.worked.push(s),
    },
  });
  q.add("a");
  q.add("a"); // already waiting: not an add
  t += 2_000;
  assert.equal(await q.get(), "a");
  t += 500;
  assert.deepEqual(q.inFlightSeconds(), [0.5]);
  q.add("a"); // in flight: counted, runs again after
  t += 1_000;
  q.done("a");
  assert.equal(await q.get(), "a");
  t += 250;
  q.done("a");
  assert.deepEqual(seen.waited, [2, 1]);
  assert.deepEqual(seen.worked, [1.5, 0.25]);
  assert.equal(seen.added, 2);
  q.addRateLimited("a");
  assert.equal(seen.retried, 1);
  q.addAfter("b", 60_000); // a RequeueAfter: controller-runtime counts it as a retry too
  assert.equal(seen.retried, 2);
  q.addAfter("c", 0); // no delay: an add, not a retry
  assert.equal(seen.retried, 2);
  assert.equal(seen.added, 3);
  assert.deepEqual(q.inFlightSeconds(), []);
  q.shutDown();
});
