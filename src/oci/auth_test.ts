import assert from "node:assert/strict";
import {
  chooseChallenge,
  normalizeScopes,
  parseChallenges,
  repositoryScope,
  staticCredentials,
  TokenCache,
  tokenExpiry,
} from "./auth.ts";

Deno.test("parseChallenges reads a distribution Bearer challenge", () => {
  const got = parseChallenges(
    'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",' +
      'scope="repository:library/alpine:pull,push",error="insufficient_scope"',
  );
  assert.deepEqual(got, [{
    scheme: "bearer",
    params: {
      realm: "https://auth.docker.io/token",
      service: "registry.docker.io",
      scope: "repository:library/alpine:pull,push",
      error: "insufficient_scope",
    },
  }]);
});

Deno.test("parseChallenges handles several challenges, spacing, escapes and token68", () => {
  const got = parseChallenges(
    'Basic realm="Registry \\"Realm\\", with comma", charset=UTF-8, ' +
      'Bearer realm = "https://a/t" , service=svc,Negotiate abc123==, Digest',
  );
  assert.deepEqual(got, [
    { scheme: "basic", params: { realm: 'Registry "Realm", with comma', charset: "UTF-8" } },
    { scheme: "bearer", params: { realm: "https://a/t", service: "svc" } },
    { scheme: "negotiate", params: {}, token68: "abc123==" },
    { scheme: "digest", params: {} },
  ]);
  assert.deepEqual(parseChallenges(""), []);
  assert.deepEqual(parseChallenges("BASIC REALM=x")[0], { scheme: "basic", params: { realm: "x" } });
});

Deno.test("chooseChallenge prefers Bearer with a realm, then Basic", () => {
  const both = parseChallenges('Basic realm="r", Bearer realm="https://t/x",service=s');
  assert.equal(chooseChallenge(both)?.scheme, "bearer");
  assert.equal(chooseChallenge(parseChallenges("Bearer service=s, Basic realm=r"))?.scheme, "basic");
  assert.equal(chooseChallenge(parseChallenges("Negotiate")), undefined);
});

Deno.test("scopes: exact repository scopes, normalized so equivalent sets share a token", () => {
  assert.equal(repositoryScope("team/app", ["pull"]), "repository:team/app:pull");
  assert.equal(repositoryScope("team/app", ["pull", "push"]), "repository:team/app:pull,push");
  assert.deepEqual(
    normalizeScopes(["repository:b:push,pull", "repository:a:pull", "repository:b:pull"]),
    ["repository:a:pull", "repository:b:pull,push"],
  );
  assert.deepEqual(normalizeScopes(["repository:a:pull repository:c:pull"]), [
    "repository:a:pull",
    "repository:c:pull",
  ]);
  assert.equal(
    TokenCache.key("https://t", { service: "s", scopes: ["repository:x:push,pull"] }),
    TokenCache.key("https://t", { service: "s", scopes: ["repository:x:pull", "repository:x:push"] }),
  );
  assert.notEqual(
    TokenCache.key("https://t", { service: "s", scopes: ["repository:x:pull"] }),
    TokenCache.key("https://t", { service: "s", scopes: ["repository:x:pull,push"] }),
  );
});

Deno.test("token expiry: expires_in (default 60 s) minus a safety margin", () => {
  assert.equal(tokenExpiry(0, 300), 270_000);
  assert.equal(tokenExpiry(0, undefined), 54_000);
  assert.equal(tokenExpiry(0, 0), 54_000);
  assert.equal(tokenExpiry(0, 3600), 3_540_000);
  assert.equal(tokenExpiry(1000, 6), 1000 + 3000, "short tokens keep at least half their life");
});

Deno.test("TokenCache forgets expired and invalidated tokens", () => {
  let now = 0;
  const cache = new TokenCache({ now: () => now });
  const key = TokenCache.key("https://t", { service: "s", scopes: ["repository:x:pull"] });
  cache.set(key, { token: "t1", expiresAt: 1000 });
  assert.equal(cache.get(key), "t1");
  now = 999;
  assert.equal(cache.get(key), "t1");
  now = 1000;
  assert.equal(cache.get(key), undefined);
  cache.set(key, { token: "t2", expiresAt: 5000 });
  cache.delete(key);
  assert.equal(cache.get(key), undefined);
  assert.equal(cache.size, 0);
});

Deno.test("staticCredentials resolves by registry host", async () => {
  const r = staticCredentials({ "ghcr.io": { username: "u", password: "p" } });
  assert.deepEqual(await r.resolve("ghcr.io"), { username: "u", password: "p" });
  assert.equal(await r.resolve("docker.io"), undefined);
});
