import assert from "node:assert/strict";
import type { Challenge } from "./auth.ts";
import { type Authorization, BearerAuthenticator } from "./bearer.ts";
import { OciError } from "./errors.ts";
import { RegistryResponse } from "./response.ts";
import { RetryPolicy, RetrySender } from "./retry.ts";
import type { Sender, SendRequest } from "./send.ts";

/** A token server as a sender: answers with `reply(req)` and records each request. */
function tokenServer(
  reply: (req: SendRequest) => { status: number; body: string } = () => ({
    status: 200,
    body: JSON.stringify({ token: "tok", expires_in: 300 }),
  }),
): Sender & { requests: SendRequest[] } {
  const s = {
    requests: [] as SendRequest[],
    async send(req: SendRequest): Promise<RegistryResponse> {
      s.requests.push(req);
      await new Promise((r) => setTimeout(r, 5));
      const { status, body } = reply(req);
      const stream = new Response(body).body;
      return new RegistryResponse(status, new Headers(), req.url.href, stream);
    },
  };
  return s;
}

const challenge: Challenge = {
  scheme: "bearer",
  params: { realm: "https://auth.example/token", service: "reg" },
};
const ctx = { registry: "reg.example", action: "pull manifest", reference: "reg.example/a:1" };
const alice = { username: "alice", password: "s3cret" };

Deno.test("bearer: a token per exact scope, Basic credentials to the realm, cached and shared", async () => {
  const server = tokenServer();
  const bearer = new BearerAuthenticator(server, { timeoutMs: 1000 });
  const [a, b] = await Promise.all([
    bearer.authorize(challenge, alice, ["repository:a:pull"], ctx),
    bearer.authorize(challenge, alice, ["repository:a:pull"], ctx),
  ]);
  assert.equal(a.header, "Bearer tok");
  assert.equal(b.header, "Bearer tok");
  assert.equal(server.requests.length, 1, "concurrent requests for one scope share one fetch");
  const req = server.requests[0];
  assert.equal(req.url.origin + req.url.pathname, "https://auth.example/token");
  assert.equal(req.url.searchParams.get("service"), "reg");
  assert.deepEqual(req.url.searchParams.getAll("scope"), ["repository:a:pull"]);
  assert.equal(req.authOrigin, "https://auth.example", "credentials go to the realm's origin only");
  assert.equal(req.headers.authorization, `Basic ${btoa("alice:s3cret")}`);
  const again = await bearer.authorize(challenge, alice, ["repository:a:pull"], ctx);
  assert.equal(again.cached, true);
  await bearer.authorize(challenge, alice, ["repository:b:pull"], ctx);
  assert.equal(server.requests.length, 2, "another scope is another token");
  bearer.invalidate(again.cacheKey!);
  assert.equal((await bearer.authorize(challenge, alice, ["repository:a:pull"], ctx)).cached, false);
});

Deno.test("bearer: identity tokens are exchanged with a POST; registry tokens used as they are", async () => {
  const server = tokenServer(() => ({ status: 200, body: JSON.stringify({ access_token: "acc" }) }));
  const bearer = new BearerAuthenticator(server, { timeoutMs: 1000 });
  const got = await bearer.authorize(challenge, { identityToken: "refresh" }, ["repository:a:pull"], ctx);
  assert.equal(got.header, "Bearer acc");
  const form = new URLSearchParams(String(server.requests[0].body));
  assert.equal(server.requests[0].method, "POST");
  assert.equal(form.get("grant_type"), "refresh_token");
  assert.equal(form.get("refresh_token"), "refresh");
  assert.equal(form.get("scope"), "repository:a:pull");
  const ready = await bearer.authorize(challenge, { registryToken: "ready" }, ["repository:a:pull"], ctx);
  assert.equal(ready.header, "Bearer ready");
  assert.equal(server.requests.length, 1);
});

Deno.test("bearer: refuses bad realms and reports the token server's refusals", async () => {
  const server = tokenServer(() => ({ status: 401, body: "" }));
  const bearer = new BearerAuthenticator(server, { timeoutMs: 1000 });
  const plain: Challenge = { scheme: "bearer", params: { realm: "http://auth.example/token" } };
  await assert.rejects(
    bearer.authorize(plain, alice, [], ctx),
    (e) => e instanceof OciError && e.reason === "InsecureRegistry" && /insecureRegistries/.test(e.message),
  );
  const weird: Challenge = { scheme: "bearer", params: { realm: "ftp://auth.example/" } };
  await assert.rejects(bearer.authorize(weird, alice, [], ctx), /unsupported token realm scheme/);
  await assert.rejects(
    bearer.authorize({ scheme: "bearer", params: { realm: "::" } }, alice, [], ctx),
    /is not a URL/,
  );
  assert.equal(server.requests.length, 0);
  const err = await bearer.authorize(challenge, alice, ["repository:a:pull"], ctx).catch((e) => e);
  assert.equal(err.reason, "Unauthorized");
  assert.equal(
    err.message,
    "registry reg.example: the token server https://auth.example/token rejected the credentials (HTTP 401) " +
      "while trying to pull manifest reg.example/a:1",
  );
  assert(!err.message.includes("s3cret") && !err.message.includes("alice"));
  const junk = new BearerAuthenticator(tokenServer(() => ({ status: 200, body: "<html>" })), {
    timeoutMs: 1000,
  });
  await assert.rejects(junk.authorize(challenge, alice, [], ctx), /did not answer JSON/);
  const empty = new BearerAuthenticator(tokenServer(() => ({ status: 200, body: "{}" })), {
    timeoutMs: 1000,
  });
  await assert.rejects(empty.authorize(challenge, alice, [], ctx), /returned no token/);
});

Deno.test("bearer: the token fetch's retry backoff runs through the requesting request's duringWait", async () => {
  let calls = 0;
  const server = tokenServer(() =>
    ++calls === 1 ? { status: 503, body: "busy" } : { status: 200, body: JSON.stringify({ token: "tok" }) }
  );
  const retrying = new RetrySender(server, new RetryPolicy({ retryBaseMs: 1, retryMaxDelayMs: 5 }));
  const bearer = new BearerAuthenticator(retrying, { timeoutMs: 1000 });
  const events: string[] = [];
  const auth = await bearer.authorize(challenge, alice, ["repository:a:pull"], {
    ...ctx,
    duringWait: async (wait) => {
      events.push(`given back after ${server.requests.length} attempt(s)`);
      await wait();
      events.push("taken again");
    },
  });
  assert.equal(auth.header, "Bearer tok");
  assert.equal(server.requests.length, 2, "the 503 was retried");
  assert.deepStrictEqual(events, ["given back after 1 attempt(s)", "taken again"]);
});

Deno.test("bearer: a request joining another's token fetch gives its slot back during that fetch's waits too", async () => {
  let calls = 0;
  const server = tokenServer(() =>
    ++calls <= 2 ? { status: 503, body: "busy" } : { status: 200, body: JSON.stringify({ token: "tok" }) }
  );
  const retrying = new RetrySender(server, new RetryPolicy({ retryBaseMs: 20, retryMaxDelayMs: 40 }));
  const bearer = new BearerAuthenticator(retrying, { timeoutMs: 1000 });
  const events: string[] = [];
  let second: Promise<Authorization> | undefined;
  let joining = false;
  const recording = (who: string) => ({
    ...ctx,
    duringWait: async (wait: () => Promise<void>) => {
      events.push(`${who} gives back`);
      // B asks for the same token while A's fetch is in its first backoff: it joins mid-wait
      if (who === "A" && !joining) {
        joining = true;
        second = bearer.authorize(challenge, alice, ["repository:a:pull"], recording("B"));
      }
      await wait();
      events.push(`${who} takes again`);
    },
  });
  const first = bearer.authorize(challenge, alice, ["repository:a:pull"], recording("A"));
  await first;
  assert.ok(second);
  const [a, b] = await Promise.all([first, second]);
  assert.equal(a.header, "Bearer tok");
  assert.equal(b.header, "Bearer tok");
  assert.equal(server.requests.length, 3, "one fetch, two retries, shared");
  for (const who of ["A", "B"]) {
    assert.deepStrictEqual(
      events.filter((e) => e.startsWith(who)),
      [`${who} gives back`, `${who} takes again`, `${who} gives back`, `${who} takes again`],
      `${who}: both backoffs without its slot; ${events.join(", ")}`,
    );
  }
});

Deno.test("bearer: a shared token fetch that fails ends its joiner with the same error, even mid-wait", async () => {
  const server = tokenServer(() => ({ status: 503, body: "busy" }));
  const retrying = new RetrySender(
    server,
    new RetryPolicy({ maxAttempts: 2, retryBaseMs: 10, retryMaxDelayMs: 10 }),
  );
  const bearer = new BearerAuthenticator(retrying, { timeoutMs: 1000 });
  let second: Promise<Authorization> | undefined;
  const first = bearer.authorize(challenge, alice, ["repository:a:pull"], {
    ...ctx,
    duringWait: async (wait) => {
      second ??= bearer.authorize(challenge, alice, ["repository:a:pull"], ctx);
      await wait();
    },
  });
  const [a, b] = await Promise.allSettled([first, first.finally(() => second!)]);
  assert.equal(a.status, "rejected");
  assert.equal(b.status, "rejected");
  assert.equal((b as PromiseRejectedResult).reason, (a as PromiseRejectedResult).reason, "the same error");
  assert.equal(server.requests.length, 2, "one fetch for both");
});
