import assert from "node:assert/strict";
import type { PushEvent } from "./event.ts";
import { Coalescer, TokenBucket } from "./throttle.ts";

Deno.test("token bucket: a burst, then the rate; the wait says when to come back", () => {
  let now = 0;
  const b = new TokenBucket({ ratePerSecond: 2, burst: 3, now: () => now });
  assert.deepStrictEqual([b.take(), b.take(), b.take()], [0, 0, 0]);
  assert.deepStrictEqual(b.take(), 1);
  now += 500;
  assert.deepStrictEqual(b.take(), 0);
  assert.deepStrictEqual(b.take() > 0, true);
});

function push(tag: string): PushEvent {
  return { source: "harbor", registry: "h", repository: "a", tag };
}

Deno.test("coalescer: the pushes of a burst are flushed once, without duplicates", async () => {
  const flushed: string[][] = [];
  const c = new Coalescer((ps) => {
    flushed.push(ps.map((p) => p.tag!));
    return Promise.resolve();
  }, { delayMs: 30 });
  for (let i = 0; i < 50; i++) c.add([push("1"), push(String(i % 3))]);
  assert.deepStrictEqual(c.pending, 3);
  await new Promise((r) => setTimeout(r, 80));
  assert.deepStrictEqual(flushed, [["1", "0", "2"]]);
  c.add([push("9")]);
  await new Promise((r) => setTimeout(r, 80));
  assert.deepStrictEqual(flushed.length, 2);
  await c.close();
});
