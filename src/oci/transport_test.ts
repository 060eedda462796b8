import assert from "node:assert/strict";
import { backoffDelay, parseRetryAfter, sleep } from "./transport.ts";

Deno.test("parseRetryAfter reads delta seconds and HTTP dates", () => {
  assert.equal(parseRetryAfter("3"), 3000);
  assert.equal(parseRetryAfter(" 0 "), 0);
  const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");
  assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:05 GMT", now), 5000);
  assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", now), 0, "a past date means now");
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter("soon"), undefined);
});

Deno.test("backoffDelay grows exponentially with jitter and is capped", () => {
  for (let i = 0; i < 50; i++) {
    const first = backoffDelay(1, { baseMs: 100, maxMs: 10_000 });
    assert(first >= 50 && first <= 100, `attempt 1: ${first}`);
    const third = backoffDelay(3, { baseMs: 100, maxMs: 10_000 });
    assert(third >= 200 && third <= 400, `attempt 3: ${third}`);
    const capped = backoffDelay(30, { baseMs: 100, maxMs: 1000 });
    assert(capped >= 500 && capped <= 1000, `capped: ${capped}`);
  }
});

Deno.test("sleep rejects on abort and leaves no timer", async () => {
  const ac = new AbortController();
  const p = sleep(60_000, ac.signal);
  ac.abort(new Error("stop"));
  await assert.rejects(p, /stop/);
});
