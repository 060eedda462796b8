import assert from "node:assert/strict";
import { Limiter } from "./copy_blobs.ts";

/** Lets every pending promise callback run (a few macrotask turns). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
}

/** A task the test finishes by hand, counting how many of its kind run at once. */
function gate(counts: { now: number; max: number }[]) {
  const open: Array<() => void> = [];
  let started = 0;
  const task = () => {
    started++;
    for (const c of counts) c.max = Math.max(c.max, ++c.now);
    return new Promise<void>((resolve) =>
      open.push(() => {
        for (const c of counts) c.now--;
        resolve();
      })
    );
  };
  return { task, open, started: () => started };
}

Deno.test("Limiter: copiers sharing a budget never run more than the budget, each within its own limit", async () => {
  const budget = new Limiter(3);
  const total = { now: 0, max: 0 };
  const copiers = [0, 1, 2].map(() => ({
    limiter: new Limiter(2, { parent: budget }),
    count: { now: 0, max: 0 },
  }));
  const gates = copiers.map((c) => gate([total, c.count]));
  const runs = copiers.flatMap((c, i) => Array.from({ length: 4 }, () => c.limiter.run(gates[i].task)));
  await settle();
  assert.equal(total.now, 3, "the budget is used up, not more");
  assert.equal(budget.active, 3);
  // release one at a time, always the oldest running task
  for (let done = 0; done < 12; done++) {
    const g = gates.find((g) => g.open.length > 0)!;
    g.open.shift()!();
    await settle();
    assert.ok(total.now <= 3, `${total.now} tasks ran at once over a budget of 3`);
  }
  await Promise.all(runs);
  assert.equal(total.max, 3);
  for (const c of copiers) {
    assert.ok(c.count.max <= 2, `a copier ran ${c.count.max} tasks at once, its limit is 2`);
  }
  assert.equal(gates.reduce((n, g) => n + g.started(), 0), 12);
  assert.equal(budget.active, 0);
  assert.equal(budget.waiting, 0);
});

Deno.test("Limiter: a copier's own limit holds under a larger budget", async () => {
  const budget = new Limiter(10);
  const own = { now: 0, max: 0 };
  const limiter = new Limiter(2, { parent: budget });
  const g = gate([own]);
  const runs = Array.from({ length: 6 }, () => limiter.run(g.task));
  await settle();
  assert.equal(own.now, 2);
  assert.equal(budget.active, 2, "a task waiting for its copier's slot holds no budget slot");
  while (g.open.length > 0) {
    g.open.shift()!();
    await settle();
  }
  await Promise.all(runs);
  assert.equal(own.max, 2);
});

Deno.test("Limiter: an aborted waiter leaves the queue without running; the next one runs", async () => {
  const budget = new Limiter(1);
  const a = new Limiter(4, { parent: budget });
  const b = new Limiter(4, { parent: budget });
  const g = gate([]);
  const first = a.run(g.task);
  await settle();
  const cancel = new AbortController();
  let ranCancelled = false;
  const cancelled = b.run(() => {
    ranCancelled = true;
    return Promise.resolve();
  }, { signal: cancel.signal });
  const third = a.run(g.task);
  await settle();
  assert.equal(budget.waiting, 2);
  assert.equal(b.active, 1, "the waiter holds its copier's slot while it waits for the budget");
  cancel.abort(new Error("sync cancelled"));
  await assert.rejects(cancelled, /sync cancelled/);
  assert.equal(ranCancelled, false);
  assert.equal(budget.waiting, 1, "the cancelled task left the budget's queue");
  assert.equal(b.active, 0, "and gave back its copier's slot");
  g.open.shift()!();
  await settle();
  assert.equal(g.started(), 2, "the task queued behind the cancelled one got the slot");
  g.open.shift()!();
  await Promise.all([first, third]);
  assert.equal(budget.active, 0);
});

Deno.test("Limiter: an aborted waiter of a copier's own queue leaves it; an aborted signal never queues", async () => {
  const limiter = new Limiter(1, { parent: new Limiter(5) });
  const g = gate([]);
  const first = limiter.run(g.task);
  const cancel = new AbortController();
  const waiting = limiter.run(g.task, { signal: cancel.signal });
  await settle();
  assert.equal(limiter.waiting, 1);
  cancel.abort(new Error("gone"));
  await assert.rejects(waiting, /gone/);
  assert.equal(limiter.waiting, 0);
  await assert.rejects(limiter.run(g.task, { signal: cancel.signal }), /gone/);
  assert.equal(limiter.waiting, 0);
  g.open.shift()!();
  await first;
  assert.equal(g.started(), 1);
  assert.equal(limiter.active, 0);
});

Deno.test("Limiter: a failing task gives its slots back", async () => {
  const budget = new Limiter(1);
  const limiter = new Limiter(1, { parent: budget });
  await assert.rejects(limiter.run(() => Promise.reject(new Error("boom"))), /boom/);
  assert.equal(budget.active, 0);
  assert.equal(limiter.active, 0);
  assert.equal(await limiter.run(() => Promise.resolve(7)), 7);
});

/** A wait the test ends by hand. */
function manualWait() {
  let end!: () => void;
  let fail!: (e: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    end = resolve;
    fail = reject;
  });
  return { wait: () => done, end, fail };
}

Deno.test("Limiter: a task's pause gives the budget's slot to another copier's task and takes one again, at the back, before it goes on", async () => {
  const budget = new Limiter(1);
  const a = new Limiter(2, { parent: budget });
  const b = new Limiter(2, { parent: budget });
  const backoff = manualWait();
  const steps: string[] = [];
  const g = gate([]);
  const first = a.run(async (slot) => {
    steps.push("a: first attempt");
    await slot.pause(backoff.wait);
    steps.push("a: second attempt");
  });
  await settle();
  const other = b.run(async () => {
    steps.push("b: runs");
    await g.task();
  });
  await settle();
  assert.deepEqual(steps, ["a: first attempt", "b: runs"], "b ran while a waited");
  assert.equal(budget.active, 1);
  assert.equal(a.active, 1, "a keeps its copier's slot while it waits");
  backoff.end();
  await settle();
  assert.equal(budget.waiting, 1, "a queues for the budget again");
  assert.deepEqual(steps, ["a: first attempt", "b: runs"], "a does not go on without a slot");
  g.open.shift()!();
  await Promise.all([first, other]);
  assert.deepEqual(steps, ["a: first attempt", "b: runs", "a: second attempt"]);
  assert.equal(budget.active, 0);
  assert.equal(a.active, 0);
});

Deno.test("Limiter: overlapping pauses of one task give the slot back once; a failed or aborted one leaves nothing held", async () => {
  const budget = new Limiter(1);
  const copier = new Limiter(4, { parent: budget });
  // two waits at once (a blob's GET and POST both backing off)
  const w1 = manualWait(), w2 = manualWait();
  let order = "";
  const task = copier.run(async (slot) => {
    await Promise.all([
      slot.pause(w1.wait).then(() => order += "1"),
      slot.pause(w2.wait).then(() => order += "2"),
    ]);
    assert.equal(budget.active, 1, "back on a slot after its waits");
  });
  await settle();
  assert.equal(budget.active, 0, "both waits: the one slot given back once");
  w1.end();
  await settle();
  assert.equal(budget.active, 1, "the first wait to end takes the slot again");
  w2.end();
  await task;
  assert.equal(order, "12");
  assert.equal(budget.active, 0);

  // a wait that fails: the task fails, nothing held
  const bad = manualWait();
  const failing = copier.run((slot) => slot.pause(bad.wait));
  await settle();
  bad.fail(new Error("aborted while waiting"));
  await assert.rejects(failing, /aborted while waiting/);
  assert.equal(budget.active, 0);
  assert.equal(copier.active, 0);

  // aborted while queueing for the slot again: rejects, nothing held, the holder unaffected
  const holder = gate([]);
  const cancel = new AbortController();
  const short = manualWait();
  const paused = copier.run((slot) => slot.pause(short.wait), { signal: cancel.signal });
  await settle();
  const holding = copier.run(holder.task);
  await settle();
  short.end();
  await settle();
  assert.equal(budget.waiting, 1);
  cancel.abort(new Error("sync cancelled"));
  await assert.rejects(paused, /sync cancelled/);
  assert.equal(budget.waiting, 0);
  holder.open.shift()!();
  await holding;
  assert.equal(budget.active, 0);
  assert.equal(copier.active, 0);
});

Deno.test("Limiter: without a parent a pause keeps the slot (a copier's own concurrency is what it was)", async () => {
  const copier = new Limiter(1);
  const w = manualWait();
  let second = false;
  const first = copier.run((slot) => slot.pause(w.wait));
  const next = copier.run(() => {
    second = true;
    return Promise.resolve();
  });
  await settle();
  assert.equal(second, false, "the waiting task still holds the copier's only slot");
  w.end();
  await Promise.all([first, next]);
  assert.equal(second, true);
});
