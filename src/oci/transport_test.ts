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
