import assert from "node:assert/strict";
import { authFilter, type AuthUser, type TokenAuthority } from "./authn.ts";

/** Tokens "reader" (may get /metrics) and "other" (may not); counts the reviews. */
function authority(): TokenAuthority & { reviews: string[] } {
  const reviews: string[] = [];
  const users: Record<string, AuthUser> = {
    reader: { username: "system:serviceaccount:monitoring:prometheus", groups: ["system:serviceaccounts"] },
    other: { username: "system:serviceaccount:team-a:app" },
  };
  return {
    reviews,
    authenticate(token) {
      reviews.push(`token ${token}`);
      return Promise.resolve(users[token]);
    },
    authorize(user, access) {
      reviews.push(`access ${user.username} ${access.verb} ${access.path}`);
      return Promise.resolve(user.username.endsWith(":prometheus") && access.path === "/metrics");
    },
  };
}

const req = (token?: string, path = "/metrics") =>
  new Request(`https://localhost${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

Deno.test("authFilter: no token 401, unknown token 401, no right 403, the right 200", async () => {
  const a = authority();
  const check = authFilter(a);
  assert.equal((await check(req()))?.status, 401);
  assert.equal(
    (await check(new Request("https://localhost/metrics", { headers: { authorization: "Basic eDp5" } })))
      ?.status,
    401,
  );
  assert.equal((await check(req("nobody")))?.status, 401);
  const denied = await check(req("other"));
  assert.equal(denied?.status, 403);
  assert.equal(
    await denied?.text(),
    "Forbidden (user=system:serviceaccount:team-a:app, verb=get, resource=, subresource=)\n",
  );
  assert.equal(await check(req("reader")), undefined);
  assert.ok(a.reviews.includes("access system:serviceaccount:monitoring:prometheus get /metrics"));
});

Deno.test("authFilter: answers are cached briefly, by token, with denials forgotten sooner", async () => {
  const a = authority();
  let now = 0;
  const check = authFilter(a, { now: () => now });
  for (let i = 0; i < 5; i++) assert.equal(await check(req("reader")), undefined);
  for (let i = 0; i < 5; i++) assert.equal((await check(req("other")))?.status, 403);
  assert.equal(a.reviews.length, 4, "one token and one access review per user");
  now += 31_000; // past the 30 s of a denial, within the 60 s of a token review
  await check(req("other"));
  await check(req("reader"));
  assert.deepEqual(a.reviews.slice(4), ["access system:serviceaccount:team-a:app get /metrics"]);
  now += 30_000; // token reviews expired: asked again
  await check(req("reader"));
  assert.equal(a.reviews[5], "token reader");
});

Deno.test("authFilter: bounded — an oversized header is refused unreviewed, the cache keeps at most maxEntries", async () => {
  const a = authority();
  const check = authFilter(a, { maxEntries: 2 });
  assert.equal((await check(req("x".repeat(20_000))))?.status, 401);
  assert.equal(a.reviews.length, 0);
  for (const t of ["t1", "t2", "t3", "reader"]) await check(req(t));
  await check(req("t1")); // evicted by the later ones: reviewed again
  assert.equal(a.reviews.filter((r) => r === "token t1").length, 2);
});

Deno.test("authFilter: a review that fails is 401 (token) or 500 (access), never a pass", async () => {
  const failing: TokenAuthority = {
    authenticate: () => Promise.reject(new Error("apiserver away")),
    authorize: () => Promise.reject(new Error("apiserver away")),
  };
  assert.equal((await authFilter(failing)(req("reader")))?.status, 401);
  const half: TokenAuthority = { ...failing, authenticate: () => Promise.resolve({ username: "u" }) };
  assert.equal((await authFilter(half)(req("reader")))?.status, 500);
});
