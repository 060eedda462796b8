import assert from "node:assert/strict";
import { OciError } from "./errors.ts";
import {
  budgetKey,
  countsAgainstLimit,
  parseRateLimitHeaders,
  RateLimitBudgets,
  RateLimitSender,
} from "./rate_limit.ts";
import { RegistryResponse } from "./response.ts";
import type { Sender, SendRequest } from "./send.ts";

const HUB = { "ratelimit-limit": "100;w=21600", "ratelimit-remaining": "76;w=21600" };

Deno.test("parseRateLimitHeaders: Docker Hub's count;w=window, the x- spellings, a reset", () => {
  assert.deepStrictEqual(parseRateLimitHeaders(new Headers(HUB)), {
    limit: 100,
    remaining: 76,
    windowMs: 21_600_000,
    resetMs: undefined,
  });
  assert.deepStrictEqual(
    parseRateLimitHeaders(
      new Headers({
        "x-ratelimit-limit": "60",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": "1700000060",
      }),
      1_700_000_000_000,
    ),
    { limit: 60, remaining: 0, windowMs: undefined, resetMs: 60_000 },
  );
  assert.equal(parseRateLimitHeaders(new Headers({ "ratelimit-remaining": "lots" })), undefined);
  assert.equal(parseRateLimitHeaders(new Headers()), undefined);
});

Deno.test("countsAgainstLimit: manifest GETs count; HEADs and blobs do not", () => {
  const u = (p: string) => new URL(`https://r${p}`);
  assert.equal(countsAgainstLimit("GET", u("/v2/library/nginx/manifests/1.27")), true);
  assert.equal(countsAgainstLimit("HEAD", u("/v2/library/nginx/manifests/1.27")), false);
  assert.equal(countsAgainstLimit("GET", u("/v2/library/nginx/blobs/sha256:" + "a".repeat(64))), false);
});

function res(status: number, headers: Record<string, string> = {}): { status: number; headers: Headers } {
  return { status, headers: new Headers(headers) };
}

Deno.test("budgets: counted requests stop at the reserve, before the limit; HEADs still go; fresh headers resume", () => {
  let now = 0;
  const b = new RateLimitBudgets({ now: () => now });
  // unknown registry: go
  assert.equal(b.acquire("docker.io", true).waitMs, 0);
  b.release("docker.io", true);
  b.observe("docker.io", res(200, { "ratelimit-limit": "100;w=21600", "ratelimit-remaining": "12;w=21600" }));
  assert.equal(b.acquire("docker.io", true).waitMs, 0); // 11 left
  assert.equal(b.acquire("docker.io", true).waitMs, 0); // 10 left = the reserve
  assert.equal(b.acquire("docker.io", true).cause, "inflight", "the two in flight may be counted already");
  const hub = (n: number) =>
    res(200, { "ratelimit-limit": "100;w=21600", "ratelimit-remaining": `${n};w=21600` });
  b.release("docker.io", true);
  b.observe("docker.io", hub(11), true);
  b.release("docker.io", true);
  b.observe("docker.io", hub(10), true);
  const wait = b.acquire("docker.io", true);
  assert.equal(wait.cause, "budget");
  assert.deepStrictEqual([wait.remaining, wait.limit, wait.reserve], [10, 100, 10]);
  // one request back per window/limit = 216 s
  assert.equal(wait.waitMs, 216_000);
  assert.deepStrictEqual(b.snapshot(), [{ registry: "docker.io", remaining: 10 }]);
  assert.equal(b.acquire("docker.io", false).waitMs, 0, "a HEAD does not count");
  assert.equal(b.acquire("ghcr.io", true).waitMs, 0, "other registries are not affected");
  // a HEAD's answer shows budget again (the window slid): counted requests go
  b.observe("docker.io", res(200, { "ratelimit-limit": "100;w=21600", "ratelimit-remaining": "40;w=21600" }));
  assert.equal(b.acquire("docker.io", true).waitMs, 0);
  // or time passes: one request goes as the probe
  b.observe("docker.io", res(200, { "ratelimit-limit": "100;w=21600", "ratelimit-remaining": "3;w=21600" }));
  assert.ok(b.acquire("docker.io", true).waitMs > 0);
  now += 24 * 3600_000;
  assert.equal(b.acquire("docker.io", true).waitMs, 0);
});

Deno.test("budgets: Retry-After on a 429 or 503 pauses every request to that registry", () => {
  let now = 1_000;
  const b = new RateLimitBudgets({ now: () => now });
  b.observe("r", res(429, { "retry-after": "120" }));
  assert.deepStrictEqual(b.acquire("r", false), { waitMs: 120_000, cause: "retry-after" });
  now += 120_000;
  assert.equal(b.acquire("r", false).waitMs, 0);
  b.observe("r", res(500, { "retry-after": "120" }));
  assert.equal(b.acquire("r", false).waitMs, 0, "Retry-After counts on 429 and 503 only");
});

function fakeSender(headers: () => Record<string, string>, status = 200): Sender & { sent: string[] } {
  const sent: string[] = [];
  return {
    sent,
    send(req: SendRequest) {
      sent.push(`${req.method} ${req.url.pathname}`);
      return Promise.resolve(
        new RegistryResponse(status, new Headers(headers()), req.url.toString(), null),
      );
    },
  };
}

function request(method: string, path: string): SendRequest {
  return {
    registry: "docker.io",
    url: new URL(`https://registry-1.docker.io${path}`),
    method,
    headers: {},
    authOrigin: "x",
  };
}

Deno.test("RateLimitSender: learns from responses, refuses at the reserve with a message that says why and until when", async () => {
  let remaining = 12;
  const inner = fakeSender(() => ({
    "ratelimit-limit": "100;w=21600",
    "ratelimit-remaining": `${remaining--};w=21600`,
  }));
  const sender = new RateLimitSender(inner, { budgets: new RateLimitBudgets() });
  const manifest = "/v2/library/nginx/manifests/1.27";
  await sender.send(request("GET", manifest)); // learns 12
  await sender.send(request("GET", manifest)); // 11 → learns 11
  await sender.send(request("GET", manifest)); // learns 10: the reserve
  const err = await sender.send(request("GET", manifest)).then(() => undefined, (e) => e);
  assert.ok(err instanceof OciError);
  assert.equal(err.reason, "RateLimited");
  assert.equal(err.retryable, false);
  assert.match(
    err.message,
    /^registry docker\.io: paused until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ to stay within its rate limit: 10 of 100 manifest pulls left per 6h, 10 kept in reserve/,
  );
  assert.equal(inner.sent.length, 3, "the refused request never reached the registry");
  await sender.send(request("HEAD", manifest));
  assert.equal(inner.sent.length, 4, "HEADs still go");
});

Deno.test("RateLimitSender: a short Retry-After is slept, a long one refused at once", async () => {
  const budgets = new RateLimitBudgets();
  const inner = fakeSender(() => ({}));
  const sender = new RateLimitSender(inner, { budgets, maxWaitMs: 1_000 });
  budgets.observe("docker.io", res(429, { "retry-after": "1" }));
  const t0 = Date.now();
  await sender.send(request("HEAD", "/v2/a/manifests/1"));
  assert.ok(Date.now() - t0 >= 900);
  budgets.observe("docker.io", res(503, { "retry-after": "3600" }));
  await assert.rejects(sender.send(request("HEAD", "/v2/a/manifests/1")), {
    name: "OciError",
    reason: "RateLimited",
    message: /Retry-After/,
  });
  assert.equal(inner.sent.length, 1);
});

Deno.test("budgetKey: one budget per account on a registry; no name or token in the key", () => {
  assert.equal(budgetKey("docker.io", undefined), "docker.io");
  const alice = budgetKey("docker.io", { username: "alice", password: "p1" });
  assert.match(alice, /^docker\.io \(account [0-9a-f]{8}\)$/);
  // the first 8 hex of SHA-256("user:alice"): the metric label earlier versions wrote
  assert.equal(alice, "docker.io (account dabd1db8)");
  assert.equal(budgetKey("docker.io", { username: "alice", password: "rotated" }), alice);
  assert.notEqual(budgetKey("docker.io", { username: "bob", password: "p1" }), alice);
  const token = budgetKey("ghcr.io", { registryToken: "ghp_secret" });
  assert.equal(token.includes("ghp_secret"), false);
});

Deno.test("RateLimitSender: two accounts on one registry do not share a budget", async () => {
  const budgets = new RateLimitBudgets();
  const inner = fakeSender(() => ({ "ratelimit-limit": "100;w=21600", "ratelimit-remaining": "10;w=21600" }));
  const sender = new RateLimitSender(inner, { budgets });
  const manifest = "/v2/library/nginx/manifests/1.27";
  await sender.send({ ...request("GET", manifest), budget: "docker.io (account aaaaaaaa)" });
  await assert.rejects(sender.send({ ...request("GET", manifest), budget: "docker.io (account aaaaaaaa)" }), {
    reason: "RateLimited",
    registry: "docker.io",
    message: /^registry docker\.io \(account aaaaaaaa\): paused until/,
  });
  await sender.send({ ...request("GET", manifest), budget: "docker.io (account bbbbbbbb)" });
  assert.equal(inner.sent.length, 2);
});

Deno.test("budgets: pulls in flight count until answered, so concurrent pulls never overspend", () => {
  const b = new RateLimitBudgets();
  b.observe("r", res(200, { "ratelimit-limit": "100;w=21600", "ratelimit-remaining": "12;w=21600" }));
  const waits = Array.from({ length: 5 }, () => b.acquire("r", true).waitMs);
  assert.deepStrictEqual(waits.map((w) => w === 0), [true, true, false, false, false]);
  // the first answer says 11 (it counts itself, not the other one in flight)
  b.release("r", true);
  b.observe("r", res(200, { "ratelimit-remaining": "11;w=21600" }), true);
  assert.ok(b.acquire("r", true).waitMs > 0, "11 minus the one still in flight is the reserve");
  // an answer without headers is counted by us
  b.release("r", true);
  b.observe("r", res(200), true);
  assert.deepStrictEqual(b.snapshot(), [{ registry: "r", remaining: 10 }]);
});

Deno.test("RateLimitSender: a 429 whose Retry-After is longer than the wait fails at once, not after a retry", async () => {
  const inner = fakeSender(() => ({ "retry-after": "600" }), 429);
  const sender = new RateLimitSender(inner, { budgets: new RateLimitBudgets() });
  await assert.rejects(sender.send(request("HEAD", "/v2/a/manifests/1")), {
    reason: "RateLimited",
    message: /^registry docker\.io: paused until .* Retry-After/,
  });
  // a short one is returned for the retry sender to honour
  const short = new RateLimitSender(fakeSender(() => ({ "retry-after": "1" }), 429), {
    budgets: new RateLimitBudgets(),
  });
  assert.equal((await short.send(request("HEAD", "/v2/a/manifests/1"))).status, 429);
});

Deno.test("budgets: a pull held back only by pulls in flight waits for their answers, not for the window", async () => {
  const b = new RateLimitBudgets();
  const hub = (remaining: number) =>
    res(200, { "ratelimit-limit": "100;w=21600", "ratelimit-remaining": `${remaining};w=21600` });
  b.observe("r", hub(12));
  assert.equal(b.acquire("r", true).waitMs, 0); // A: 12 left, goes
  // the registry counted A, then answered a (free) HEAD before A's own answer came back
  b.observe("r", hub(11));
  const wait = b.acquire("r", true); // B: 11 minus A in flight is the reserve…
  assert.equal(wait.cause, "inflight", "…but A may be in those 11 already");
  let woke = false;
  wait.settled!.then(() => woke = true);
  await Promise.resolve();
  assert.equal(woke, false);
  b.release("r", true);
  b.observe("r", hub(11), true); // A's answer: it was counted, 11 left
  await Promise.resolve();
  assert.equal(woke, true);
  assert.equal(b.acquire("r", true).waitMs, 0, "B goes: 11 left, nothing in flight");
  // once the answers are in and the reserve is reached, the wait is the window's
  b.release("r", true);
  b.observe("r", hub(10), true);
  assert.equal(b.acquire("r", true).cause, "budget");
});

Deno.test("RateLimitSender: concurrent pulls get exactly the budget above the reserve, whatever order the answers come in", async () => {
  // a registry that counts each manifest GET when it receives it, answers HEADs at once and
  // GETs after a delay: HEAD answers show GETs still in flight to us as already counted
  for (const getDelay of [0, 5, 20]) {
    let remaining = 12;
    const inner: Sender = {
      async send(req: SendRequest) {
        const counted = req.method === "GET";
        if (counted) remaining--;
        const headers = new Headers({
          "ratelimit-limit": "100;w=21600",
          "ratelimit-remaining": `${remaining};w=21600`,
        });
        if (counted) await new Promise((r) => setTimeout(r, getDelay));
        return new RegistryResponse(200, headers, req.url.toString(), null);
      },
    };
    const sender = new RateLimitSender(inner, { budgets: new RateLimitBudgets() });
    await sender.send(request("HEAD", "/v2/a/manifests/0")); // learns 12
    const manifest = (i: number) => `/v2/a/manifests/${i}`;
    // four tags a millisecond apart, each a HEAD then a GET, as a sync's tags are: a later tag's
    // HEAD is answered while an earlier tag's GET is in flight, already counted by the registry
    const outcomes = await Promise.all([1, 2, 3, 4].map(async (i) => {
      await new Promise((r) => setTimeout(r, i));
      await sender.send(request("HEAD", manifest(i)));
      return await sender.send(request("GET", manifest(i))).then(() => "pulled", (e) => e.reason);
    }));
    assert.deepStrictEqual(outcomes.filter((o) => o === "pulled").length, 2, `GET delay ${getDelay} ms`);
    assert.deepStrictEqual(outcomes.filter((o) => o === "RateLimited").length, 2);
    assert.equal(remaining, 10, "never below the reserve");
  }
});

Deno.test("RateLimitSender: a pull waiting for the answers of pulls in flight waits through duringWait (it gives its budget slot back)", async () => {
  const budgets = new RateLimitBudgets();
  const hub = (remaining: number) => ({
    "ratelimit-limit": "100;w=21600",
    "ratelimit-remaining": `${remaining};w=21600`,
  });
  budgets.observe("docker.io", res(200, hub(12)));
  const answer = Promise.withResolvers<void>();
  const inner: Sender = {
    async send(req: SendRequest) {
      if (req.url.pathname.endsWith("/a")) await answer.promise; // A's answer is slow
      return new RegistryResponse(200, new Headers(hub(11)), req.url.toString(), null);
    },
  };
  const sender = new RateLimitSender(inner, { budgets });
  const a = sender.send(request("GET", "/v2/x/manifests/a"));
  // the registry answered a HEAD meanwhile: 11 left, which may already count A
  budgets.observe("docker.io", res(200, hub(11)));
  const events: string[] = [];
  const b = sender.send({
    ...request("GET", "/v2/x/manifests/b"),
    duringWait: async (wait) => {
      events.push("given back");
      await wait();
      events.push("taken again");
    },
  });
  await new Promise((r) => setTimeout(r, 20));
  assert.deepStrictEqual(events, ["given back"], "B waits for A's answer without holding its slot");
  answer.resolve();
  await a;
  assert.equal((await b).status, 200);
  assert.deepStrictEqual(events, ["given back", "taken again"], "B went once A's answer was in");
});
