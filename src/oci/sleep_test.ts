import assert from "node:assert/strict";
import { sleep } from "./sleep.ts";

Deno.test("sleep resolves after the delay", async () => {
  const started = performance.now();
  await sleep(30);
  assert(performance.now() - started >= 25);
});

Deno.test("sleep rejects with the signal's reason when aborted, and leaves no timer", async () => {
  const ac = new AbortController();
  const p = sleep(60_000, ac.signal);
  const reason = new Error("stop");
  ac.abort(reason);
  await assert.rejects(p, (e) => e === reason);
});

Deno.test("sleep rejects at once on an already aborted signal", async () => {
  const reason = new DOMException("deadline", "TimeoutError");
  await assert.rejects(sleep(60_000, AbortSignal.abort(reason)), (e) => e === reason);
});
