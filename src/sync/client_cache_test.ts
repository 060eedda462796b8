import assert from "node:assert/strict";
import type { ImageSyncSpec } from "../api/mod.ts";
import { RegistryClient, type RetryEvent, sha256Digest } from "../oci/mod.ts";
import { clientKey, RegistryClientCache, reportRetry, withRetryHook } from "./client_cache.ts";
import { syncImageSync } from "./sync.ts";

/** A client whose close() is counted. */
function countingClient(closed: string[], name: string): RegistryClient {
  const c = new RegistryClient();
  c.close = () => void closed.push(name);
  return c;
}

Deno.test("RegistryClientCache: one client per key while fresh; past the TTL a new one, the old closed when its last sync ends", () => {
  let now = 0;
  const closed: string[] = [];
  const cache = new RegistryClientCache({ ttlMs: 1000, now: () => now });
  const k = clientKey({ host: "r.example", credential: { username: "u", password: "p" }, settings: {} });
  const a = cache.acquire(k, () => countingClient(closed, "a"));
  const b = cache.acquire(k, () => countingClient(closed, "b"));
  assert.equal(b.client, a.client, "same key, fresh: shared");
  now = 1000;
  const c = cache.acquire(k, () => countingClient(closed, "c"));
  assert.notEqual(c.client, a.client, "past the TTL: a new client");
  assert.deepEqual(closed, [], "the old client is still in use");
  a.release();
  a.release(); // a second release does not count twice
  assert.deepEqual(closed, []);
  b.release();
  assert.deepEqual(closed, ["a"]);
  c.release();
  assert.deepEqual(closed, ["a"], "a fresh client stays for the next sync");
  cache.close();
  assert.deepEqual(closed, ["a", "c"]);
});

Deno.test("withRetryHook: a retry reported anywhere in a sync's call chain reaches that sync's hook, also while other syncs run", async () => {
  const seen: string[] = [];
  const event = (path: string): RetryEvent => ({
    registry: "r",
    reason: "BlobRestart",
    attempt: 1,
    delayMs: 0,
    method: "GET",
    path,
  });
  reportRetry(event("/outside")); // no sync: nobody hears it
  const sync = (name: string, ms: number) =>
    withRetryHook((e) => seen.push(`${name} ${e.path}`), async () => {
      await new Promise((r) => setTimeout(r, ms));
      reportRetry(event(`/${name}`));
      return name;
    });
  const unhooked = withRetryHook(undefined, async () => {
    await new Promise((r) => setTimeout(r, 5));
    reportRetry(event("/unhooked"));
    return "none";
  });
  assert.deepEqual(await Promise.all([sync("a", 20), sync("b", 1), unhooked]), ["a", "b", "none"]);
  assert.deepEqual(seen.sort(), ["a /a", "b /b"]);
});

Deno.test("RegistryClientCache: bounded; the oldest retired first; the key depends on credential and settings, not readable from it", () => {
  const closed: string[] = [];
  const cache = new RegistryClientCache({ maxEntries: 2 });
  const key = (password: string, settings: unknown = {}) =>
    clientKey({ host: "r.example", credential: { username: "u", password }, settings });
  assert.notEqual(key("p1"), key("p2"));
  assert.notEqual(key("p1"), key("p1", { caCerts: ["x"] }));
  assert.notEqual(key("p1"), clientKey({ host: "r.example", credential: undefined, settings: {} }));
  assert.ok(!key("hunter2").includes("hunter2"));
  for (const p of ["p1", "p2", "p3"]) cache.acquire(key(p), () => countingClient(closed, p)).release();
  assert.equal(cache.size, 2);
  assert.deepEqual(closed, ["p1"]);
});

const MANIFEST = new TextEncoder().encode(JSON.stringify({
  schemaVersion: 2,
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  config: {
    mediaType: "application/vnd.oci.image.config.v1+json",
    digest: `sha256:${"0".repeat(64)}`,
    size: 2,
  },
  layers: [],
}));

/**
 * A registry behind Basic auth holding app:1.0 on both "sides" (so a sync only HEADs it),
 * recording each request with its Authorization; the first HEAD by user `flaky` gets a 503.
 */
function basicRegistry() {
  const requests: string[] = [];
  let flaked = false;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    const auth = req.headers.get("authorization");
    const user = auth ? atob(auth.replace(/^Basic /, "")).split(":")[0] : "-";
    requests.push(`${req.method} ${url.pathname} ${user}`);
    if (!auth) {
      return new Response(null, { status: 401, headers: { "www-authenticate": 'Basic realm="test"' } });
    }
    if (url.pathname === "/v2/") return new Response("{}");
    if (req.method === "HEAD" && user === "flaky" && !flaked) {
      flaked = true;
      return new Response(null, { status: 503 });
    }
    if (/^\/v2\/(src|dst)\/app\/manifests\/1\.0$/.test(url.pathname)) {
      return new Response(req.method === "HEAD" ? null : MANIFEST, {
        headers: {
          "content-type": "application/vnd.oci.image.manifest.v1+json",
          "docker-content-digest": sha256Digest(MANIFEST),
          "content-length": String(MANIFEST.byteLength),
        },
      });
    }
    return new Response(null, { status: 404 });
  });
  return { host: `127.0.0.1:${server.addr.port}`, requests, stop: () => server.shutdown() };
}

Deno.test("syncImageSync with a clientCache: syncs with one credential share a client (one ping), another credential never uses it, retries go to the sync that made them", async () => {
  const reg = basicRegistry();
  const cache = new RegistryClientCache();
  try {
    const spec: ImageSyncSpec = {
      schedule: "@daily",
      source: { registry: `${reg.host}/src` },
      destination: { registry: `${reg.host}/dst`, auth: { method: "secret" } },
      images: [{ name: "app", tags: ["1.0"] }],
    };
    const as = (username: string) => ({ resolve: () => Promise.resolve({ username, password: "pw" }) });
    const sync = async (user: string) => {
      let retries = 0;
      const report = await syncImageSync(spec, {
        sourceCredentials: as(user),
        destinationCredentials: as(user),
        clientCache: cache,
        maxAttempts: 2,
        onRetry: () => retries++,
      });
      assert.equal(report.ok, true, JSON.stringify(report));
      assert.equal(report.images[0].tags[0].action, "up-to-date", JSON.stringify(report.images[0].tags[0]));
      return retries;
    };
    // concurrent syncs with the same credential, then another credential (with one 503)
    assert.deepEqual(await Promise.all([sync("alice"), sync("alice"), sync("alice")]), [0, 0, 0]);
    assert.deepEqual(await Promise.all([sync("flaky"), sync("alice")]), [1, 0]);
    const pings = reg.requests.filter((r) => r.startsWith("GET /v2/ "));
    assert.deepEqual(pings, ["GET /v2/ -", "GET /v2/ -"], "one ping per credential, not two per sync");
    const heads = reg.requests.filter((r) => r.startsWith("HEAD "));
    assert.equal(heads.filter((r) => r.endsWith(" alice")).length, 4 * 2, heads.join("\n"));
    assert.equal(heads.filter((r) => r.endsWith(" flaky")).length, 2 + 1, heads.join("\n"));
    assert.equal(heads.length, 11, "no request without its sync's credential");
    assert.equal(cache.size, 2, "one client per credential (source and destination share the registry)");
  } finally {
    cache.close();
    await reg.stop();
  }
});
