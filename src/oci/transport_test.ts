import assert from "node:assert/strict";
import { serve } from "./_test_utils.ts";
import { staticCredentials } from "./auth.ts";
import { OciError } from "./errors.ts";
import type { RetryEvent } from "./retry.ts";
import { Transport } from "./transport.ts";

const spec = {
  method: "GET",
  path: "/v2/a/manifests/1",
  scopes: ["repository:a:pull"],
  action: "pull manifest",
};

Deno.test("transport: Basic registry gets the credentials of its own host", async () => {
  const seen: Array<string | null> = [];
  const srv = serve((req) => {
    seen.push(req.headers.get("authorization"));
    if (req.headers.get("authorization") !== `Basic ${btoa("u:p")}`) {
      return new Response(null, { status: 401, headers: { "www-authenticate": 'Basic realm="r"' } });
    }
    return new Response("ok");
  });
  try {
    const t = new Transport({
      credentials: staticCredentials({ [srv.host]: { username: "u", password: "p" } }),
    });
    const res = await t.request(srv.host, spec);
    assert.equal(await res.text(), "ok");
    assert.deepEqual(seen, [null, `Basic ${btoa("u:p")}`], "ping anonymous, then Basic");
    assert.equal(await t.isPlainHttp(srv.host), true);
    const anon = new Transport();
    const err = await anon.request(srv.host, spec).catch((e) => e);
    assert(err instanceof OciError && err.reason === "Unauthorized");
    assert.match(err.message, /no credentials configured for this registry/);
  } finally {
    await srv.stop();
  }
});

Deno.test("transport: Bearer token fetched once, dropped and fetched again when the registry refuses it", async () => {
  let issued = 0;
  let refuseNext = false;
  const srv = serve((req, url, self) => {
    if (url.pathname === "/token") return Response.json({ token: `t${++issued}`, expires_in: 300 });
    const auth = req.headers.get("authorization");
    const challenge = `Bearer realm="${self.origin}/token",service="s"`;
    if (!auth || (refuseNext && auth === "Bearer t1")) {
      refuseNext = false;
      return new Response(null, { status: 401, headers: { "www-authenticate": challenge } });
    }
    return new Response(auth);
  });
  const retries: RetryEvent[] = [];
  try {
    const t = new Transport({ onRetry: (e) => retries.push(e) });
    assert.equal(await (await t.request(srv.host, spec)).text(), "Bearer t1");
    assert.equal(await (await t.request(srv.host, spec)).text(), "Bearer t1", "cached");
    refuseNext = true;
    assert.equal(await (await t.request(srv.host, spec)).text(), "Bearer t2");
    assert.equal(issued, 2);
    assert.deepEqual(retries.map((r) => [r.reason, r.status]), [["Unauthorized", 401]]);
  } finally {
    await srv.stop();
  }
});

Deno.test("transport: insufficient_scope with credentials is Forbidden naming the scope", async () => {
  const srv = serve((req, url, self) => {
    if (url.pathname === "/token") return Response.json({ token: "t" });
    const challenge = `Bearer realm="${self.origin}/token",service="s",scope="repository:a:push",` +
      'error="insufficient_scope"';
    if (url.pathname === "/v2/") {
      return new Response(null, {
        status: 401,
        headers: { "www-authenticate": `Bearer realm="${self.origin}/token"` },
      });
    }
    void req;
    return new Response(null, { status: 401, headers: { "www-authenticate": challenge } });
  });
  try {
    const t = new Transport({
      credentials: staticCredentials({ [srv.host]: { username: "u", password: "p" } }),
    });
    const err = await t.request(srv.host, { ...spec, method: "PUT", body: "{}" }).catch((e) => e);
    assert(err instanceof OciError);
    assert.equal(err.reason, "Forbidden");
    assert.match(err.message, /do not grant repository:a:push/);
  } finally {
    await srv.stop();
  }
});

Deno.test("transport: statuses the caller accepts come back; others are errors with the registry's words", async () => {
  const srv = serve((_req, url) =>
    url.pathname === "/v2/"
      ? new Response("{}")
      : Response.json({ errors: [{ code: "MANIFEST_UNKNOWN", message: "no such" }] }, { status: 404 })
  );
  try {
    const t = new Transport();
    assert.equal((await t.request(srv.host, { ...spec, accept: [404] })).status, 404);
    const err = await t.request(srv.host, { ...spec, reference: "x/a:1" }).catch((e) => e);
    assert.equal(err.reason, "NotFound");
    assert.match(err.message, /while trying to pull manifest x\/a:1: MANIFEST_UNKNOWN: no such/);
  } finally {
    await srv.stop();
  }
});

/**
 * A hostile pair: the registry (Basic, credentials u:p) sends requests on to `attacker` — by
 * redirect, absolute Location or Link — and the attacker answers 401 with a Bearer realm of its
 * own, hoping to be sent the registry's credentials.
 */
function hostilePair(route: (url: URL, attacker: string) => Response | undefined) {
  const attackerSeen: Array<{ path: string; authorization: string | null }> = [];
  const attacker = serve((req, url, self) => {
    attackerSeen.push({ path: url.pathname + url.search, authorization: req.headers.get("authorization") });
    if (url.pathname === "/token") return Response.json({ token: "stolen" });
    return new Response(null, {
      status: 401,
      headers: { "www-authenticate": `Bearer realm="${self.origin}/token",service="evil"` },
    });
  }, "localhost");
  const registry = serve((req, url) => {
    if (req.headers.get("authorization") !== `Basic ${btoa("u:p")}`) {
      return new Response(null, { status: 401, headers: { "www-authenticate": 'Basic realm="r"' } });
    }
    return route(url, attacker.origin) ?? new Response("{}");
  });
  return {
    registry,
    attacker,
    attackerSeen,
    transport: new Transport({
      credentials: staticCredentials({ [registry.host]: { username: "u", password: "p" } }),
    }),
    async stop() {
      await attacker.stop();
      await registry.stop();
    },
  };
}

for (
  const [what, path, route] of [
    [
      "a blob redirect target",
      "/v2/a/blobs/sha256:" + "1".repeat(64),
      (url: URL, evil: string) =>
        url.pathname.includes("/blobs/")
          ? new Response(null, { status: 307, headers: { location: `${evil}/storage/blob` } })
          : undefined,
    ],
    ["an absolute upload Location", "ABSOLUTE", () => undefined],
  ] as const
) {
  Deno.test(`transport: a 401 from ${what} on another host is ForeignChallenge; nothing reaches its realm`, async () => {
    const pair = hostilePair(route);
    try {
      const target = path === "ABSOLUTE" ? `${pair.attacker.origin}/upload/1?_state=x` : path;
      const err = await pair.transport.request(pair.registry.host, { ...spec, method: "GET", path: target })
        .catch((e) => e);
      assert(err instanceof OciError, String(err));
      assert.equal(err.reason, "ForeignChallenge");
      assert.match(err.message, new RegExp(`${pair.attacker.host} asked for credentials`));
      assert(pair.attackerSeen.length >= 1, "the attacker was reached (the test exercises the path)");
      assert(
        !pair.attackerSeen.some((s) => s.path.startsWith("/token")),
        "no token request to the foreign realm",
      );
      assert(
        pair.attackerSeen.every((s) => s.authorization === null),
        "no Authorization to the foreign host",
      );
    } finally {
      await pair.stop();
    }
  });
}

Deno.test("transport: a /v2/ ping redirected to a host that answers 401 is ForeignChallenge", async () => {
  const attacker = serve(
    (_req, _url, self) =>
      new Response(null, {
        status: 401,
        headers: { "www-authenticate": `Bearer realm="${self.origin}/token"` },
      }),
    "localhost",
  );
  const registry = serve(() =>
    new Response(null, { status: 302, headers: { location: `${attacker.origin}/v2/` } })
  );
  try {
    const t = new Transport({
      credentials: staticCredentials({ [registry.host]: { username: "u", password: "p" } }),
    });
    const err = await t.request(registry.host, spec).catch((e) => e);
    assert.equal(err.reason, "ForeignChallenge", String(err));
  } finally {
    await attacker.stop();
    await registry.stop();
  }
});

Deno.test("transport: an unreachable token realm's error names no account and no query", async () => {
  const gone = serve(() => new Response(null));
  const deadRealm = `${gone.origin}/token`;
  await gone.stop();
  const srv = serve(() =>
    new Response(null, {
      status: 401,
      headers: { "www-authenticate": `Bearer realm="${deadRealm}",service="s"` },
    })
  );
  try {
    const t = new Transport({
      maxAttempts: 1,
      credentials: staticCredentials({ [srv.host]: { username: "alice-the-user", password: "pw" } }),
    });
    const err = await t.request(srv.host, spec).catch((e) => e);
    assert(err instanceof OciError, String(err));
    assert.equal(err.reason, "Network");
    for (const text of [err.message, String((err.cause as Error)?.message ?? "")]) {
      assert(!text.includes("alice-the-user"), text);
      assert(!text.includes("account="), text);
      assert(!text.includes("scope="), text);
    }
    assert.match(err.message, /get a token from http:\/\/127\.0\.0\.1:\d+\/token/);
  } finally {
    await srv.stop();
  }
});

Deno.test("transport: a request's duringWait wraps its token fetch's retry too (the transfer budget's slot is given back)", async () => {
  let tokenCalls = 0;
  const srv = serve((req, url, self) => {
    if (url.pathname === "/token") {
      return ++tokenCalls === 1 ? new Response("busy", { status: 503 }) : Response.json({ token: "t" });
    }
    if (!req.headers.get("authorization")) {
      const challenge = `Bearer realm="${self.origin}/token",service="s"`;
      return new Response(null, { status: 401, headers: { "www-authenticate": challenge } });
    }
    return new Response("ok");
  });
  try {
    const t = new Transport({ retryBaseMs: 1, retryMaxDelayMs: 5 });
    const waits: string[] = [];
    const res = await t.request(srv.host, {
      ...spec,
      duringWait: async (wait) => {
        waits.push(`wait after ${tokenCalls} token request(s)`);
        await wait();
      },
    });
    assert.equal(await res.text(), "ok");
    assert.deepStrictEqual(
      waits,
      ["wait after 1 token request(s)"],
      "the token fetch's backoff, and nothing else",
    );
  } finally {
    await srv.stop();
  }
});
