import assert from "node:assert/strict";
import { RegistryResponse } from "./response.ts";
import { backoffDelay, parseRetryAfter, type RetryEvent, RetryPolicy, RetrySender } from "./retry.ts";
import { type Sender, SendFailure, type SendRequest } from "./send.ts";

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

Deno.test("RetryPolicy honours Retry-After on 429/503 up to its cap, else backs off", () => {
  const policy = new RetryPolicy({ retryBaseMs: 10, retryMaxDelayMs: 2000 });
  const h = (v: string) => new Headers({ "retry-after": v });
  assert.equal(policy.delayAfter({ status: 429, headers: h("1") }, 1), 1000);
  assert.equal(policy.delayAfter({ status: 503, headers: h("60") }, 1), 2000, "capped");
  const backoff = policy.delayAfter({ status: 500, headers: h("60") }, 1);
  assert(backoff >= 5 && backoff <= 10, "Retry-After of a 500 is not honoured");
  assert.equal(new RetryPolicy({ maxAttempts: 0 }).maxAttempts, 1);
  assert.equal(new RetryPolicy().maxAttempts, 5);
});

Deno.test("RetryPolicy.report survives a throwing hook", () => {
  const policy = new RetryPolicy({
    onRetry: () => {
      throw new Error("metrics broke");
    },
  });
  policy.report({ registry: "r", reason: "Network", attempt: 1, delayMs: 0, method: "GET", path: "/" });
});

/** A sender answering from a script: a status, or a failure kind. */
function scripted(steps: Array<number | SendFailure["kind"]>): Sender & { calls: number } {
  const s = {
    calls: 0,
    send(_req: SendRequest): Promise<RegistryResponse> {
      const step = steps[Math.min(s.calls++, steps.length - 1)];
      if (typeof step === "number") {
        return Promise.resolve(new RegistryResponse(step, new Headers(), "http://r/", null));
      }
      return Promise.reject(new SendFailure(step, new Error(step)));
    },
  };
  return s;
}

function request(over: Partial<SendRequest> = {}): SendRequest {
  return {
    registry: "r.example",
    url: new URL("https://r.example/v2/x/manifests/1"),
    method: "GET",
    headers: {},
    authOrigin: "https://r.example",
    ...over,
  };
}

Deno.test("RetrySender retries 5xx, 429 and network failures, reporting each", async () => {
  const events: RetryEvent[] = [];
  const inner = scripted([503, "Network", 429, 200]);
  const sender = new RetrySender(inner, new RetryPolicy({ retryBaseMs: 1, onRetry: (e) => events.push(e) }));
  const res = await sender.send(request());
  assert.equal(res.status, 200);
  assert.equal(inner.calls, 4);
  assert.deepEqual(events.map((e) => [e.reason, e.attempt, e.status, e.path]), [
    ["ServerError", 1, 503, "/v2/x/manifests/1"],
    ["Network", 2, undefined, "/v2/x/manifests/1"],
    ["RateLimited", 3, 429, "/v2/x/manifests/1"],
  ]);
});

Deno.test("RetrySender gives the last response back after the attempt cap", async () => {
  const inner = scripted([500]);
  const res = await new RetrySender(inner, new RetryPolicy({ maxAttempts: 3, retryBaseMs: 1 })).send(
    request(),
  );
  assert.equal(res.status, 500);
  assert.equal(inner.calls, 3);
});

Deno.test("RetrySender never repeats a non-idempotent or streamed request, nor TLS or aborted failures", async () => {
  const policy = new RetryPolicy({ retryBaseMs: 1 });
  const patch = scripted([503]);
  assert.equal(
    (await new RetrySender(patch, policy).send(request({ method: "PATCH", idempotent: false }))).status,
    503,
  );
  assert.equal(patch.calls, 1);
  const stream = scripted(["Network"]);
  await assert.rejects(
    new RetrySender(stream, policy).send(request({ body: new ReadableStream() })),
    SendFailure,
  );
  assert.equal(stream.calls, 1);
  for (const kind of ["Tls", "Aborted"] as const) {
    const inner = scripted([kind]);
    await assert.rejects(
      new RetrySender(inner, policy).send(request()),
      (e) => (e as SendFailure).kind === kind,
    );
    assert.equal(inner.calls, 1);
  }
});

Deno.test("RetrySender stops waiting when the request is cancelled during backoff", async () => {
  const ac = new AbortController();
  const inner = scripted([503]);
  const sender = new RetrySender(inner, new RetryPolicy({ retryBaseMs: 60_000, retryMaxDelayMs: 60_000 }));
  const p = sender.send(request({ signal: ac.signal }));
  setTimeout(() => ac.abort(new Error("stop")), 20);
  await assert.rejects(p, (e) => e instanceof SendFailure && e.kind === "Aborted");
  assert.equal(inner.calls, 1);
});
