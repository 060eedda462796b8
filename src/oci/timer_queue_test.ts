import assert from "node:assert/strict";
import { evalInChild } from "./_test_utils.ts";
import { TimerQueue } from "./timer_queue.ts";

/** Resolves after `ms` on the queue itself (the test must not depend on setTimeout's accuracy). */
function after(queue: TimerQueue, ms: number): Promise<number> {
  return new Promise((resolve) => queue.schedule(() => resolve(performance.now()), ms));
}

Deno.test("TimerQueue runs callbacks in time order, none before its time; a cancelled one never runs", async () => {
  const queue = new TimerQueue();
  const ran: Array<[string, number]> = [];
  const t0 = performance.now();
  const at = (name: string, ms: number) => queue.schedule(() => ran.push([name, performance.now() - t0]), ms);
  at("late", 120);
  const dropped = at("dropped", 60);
  at("early", 40); // earlier than the armed time: arms another signal
  at("same", 40);
  queue.cancel(dropped);
  queue.cancel(dropped); // twice is ignored
  assert.equal(queue.size, 3);
  await after(queue, 150);
  assert.deepEqual(ran.map(([n]) => n), ["early", "same", "late"]);
  for (const [name, t] of ran) assert(t >= (name === "late" ? 120 : 40), `${name} ran at ${t} ms`);
  assert.equal(queue.size, 0);
});

Deno.test("TimerQueue: a callback may schedule another; cancelling the earliest re-arms for the next", async () => {
  const queue = new TimerQueue();
  const t0 = performance.now();
  let chained = 0;
  queue.schedule(() => queue.schedule(() => chained = performance.now() - t0, 30), 20);
  const first = queue.schedule(() => assert.fail("cancelled"), 10);
  const later = after(queue, 80);
  queue.cancel(first);
  const ended = await later;
  assert(chained >= 50, `the chained callback ran at ${chained} ms`);
  assert(ended - t0 >= 80);
});

Deno.test("TimerQueue: a callback further away than a timer's 32-bit delay arms one timer, not one per turn", async () => {
  const queue = new TimerQueue();
  const timeout = AbortSignal.timeout;
  let armed = 0;
  AbortSignal.timeout = (ms: number) => {
    armed++;
    return timeout.call(AbortSignal, ms);
  };
  try {
    const far = queue.schedule(() => assert.fail("ran early"), 2 ** 32, { ref: false });
    await new Promise((resolve) => timeout.call(AbortSignal, 100).addEventListener("abort", resolve));
    assert.equal(armed, 1);
    queue.cancel(far);
  } finally {
    AbortSignal.timeout = timeout;
  }
});

Deno.test("TimerQueue keeps a process alive for a ref callback, not for an unref or a cancelled one, and never loads Node's timers", async () => {
  const url = new URL("./timer_queue.ts", import.meta.url).href;
  // The child notes whether anything read the global setTimeout (Node's timers, loaded on first use).
  const run = async (body: string) => {
    const script = `const d = Object.getOwnPropertyDescriptor(globalThis, "setTimeout");
      Object.defineProperty(globalThis, "setTimeout", { configurable: true, get() { console.log("setTimeout read"); return d.get.call(globalThis); } });
      const { timers } = await import(${JSON.stringify(url)});
      const t0 = performance.now();
      const ran = () => console.log("ran", Math.round(performance.now() - t0));
      ${body}`;
    const started = performance.now();
    const out = await evalInChild(script);
    return { out, ms: performance.now() - started };
  };
  const kept = await run("timers.schedule(ran, 300);");
  assert.match(kept.out, /^ran (\d+)\n$/);
  assert(Number(kept.out.match(/\d+/)![0]) >= 300, kept.out);
  // the ref callback goes, then an earlier unref one arms another signal: neither holds the process
  const gone = await run(
    "timers.cancel(timers.schedule(ran, 60_000)); timers.schedule(ran, 60_000, { ref: false }); timers.schedule(ran, 50_000, { ref: false });",
  );
  assert.deepEqual(gone.out, "");
  assert(gone.ms < 30_000, "a cancelled or unref callback kept the process alive");
  // an unref callback still runs while something else keeps the process alive
  const alive = await run("timers.schedule(ran, 100, { ref: false }); timers.schedule(() => {}, 400);");
  assert.match(alive.out, /^ran (\d+)\n$/);
});
