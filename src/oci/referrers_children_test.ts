import assert from "node:assert/strict";
import { sha256Digest } from "./blobs.ts";
import { RegistryClient } from "./client.ts";
import { OciError } from "./errors.ts";
import { OCI_INDEX, OCI_MANIFEST } from "./manifest.ts";
import { parseReference } from "./reference.ts";
import { referrerChildren, ReferrerChildrenCache } from "./referrers_children.ts";

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

const IMAGE = enc({
  schemaVersion: 2,
  mediaType: OCI_MANIFEST,
  config: {
    mediaType: "application/vnd.oci.image.config.v1+json",
    digest: "sha256:" + "c".repeat(64),
    size: 2,
  },
  layers: [],
});

function child(n: number, platform: { os: string; architecture: string; variant?: string }) {
  return { mediaType: OCI_MANIFEST, digest: "sha256:" + String(n).repeat(64), size: 100, platform };
}

function index(count: number) {
  const platforms = [
    { os: "linux", architecture: "amd64" },
    { os: "linux", architecture: "arm64", variant: "v8" },
    { os: "linux", architecture: "arm", variant: "v7" },
  ];
  return enc({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: Array.from({ length: count }, (_, i) => child(i % 10, platforms[i % 3])),
  });
}

/** Serves manifests by digest (`lie`: other bytes than the digest's), counting GETs. */
function registry(manifests: { bytes: Uint8Array; type: string }[], opts: { lie?: boolean } = {}) {
  const byDigest = new Map(manifests.map((m) => [sha256Digest(m.bytes), m]));
  let gets = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/v2/") return new Response("{}");
    const m = url.pathname.match(/^\/v2\/app\/manifests\/(.+)$/);
    const got = m && byDigest.get(m[1]);
    if (!got) return Response.json({ errors: [{ code: "MANIFEST_UNKNOWN" }] }, { status: 404 });
    gets++;
    const bytes = opts.lie
      ? enc({ ...JSON.parse(new TextDecoder().decode(got.bytes)), extra: 1 })
      : got.bytes;
    return new Response(bytes as Uint8Array<ArrayBuffer>, { headers: { "content-type": got.type } });
  });
  const host = `127.0.0.1:${server.addr.port}`;
  return {
    ref: (bytes: Uint8Array) => parseReference(`${host}/app@${sha256Digest(bytes)}`),
    gets: () => gets,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test("referrerChildren: an image has none; an index's children as the platform filter keeps them, read once per digest and filter", async () => {
  const idx = index(3);
  await using reg = registry([{ bytes: IMAGE, type: OCI_MANIFEST }, { bytes: idx, type: OCI_INDEX }]);
  using client = new RegistryClient({ maxAttempts: 1 });
  const cache = new ReferrerChildrenCache();
  assert.deepEqual(await referrerChildren(client, reg.ref(IMAGE), { cache }), []);
  assert.deepEqual(await referrerChildren(client, reg.ref(IMAGE), { cache }), []);
  assert.equal(reg.gets(), 1, "an image manifest's answer is cached too");

  const all = ["0", "1", "2"].map((n) => "sha256:" + n.repeat(64));
  assert.deepEqual(await referrerChildren(client, reg.ref(idx), { cache }), all);
  assert.deepEqual(await referrerChildren(client, reg.ref(idx), { cache, platforms: ["linux/arm64"] }), [
    all[1],
  ]);
  assert.deepEqual(
    await referrerChildren(client, reg.ref(idx), { cache, platforms: ["linux/arm/v7", "linux/amd64"] }),
    [all[0], all[2]],
    "index order, not filter order",
  );
  const gets = reg.gets();
  assert.deepEqual(await referrerChildren(client, reg.ref(idx), { cache, platforms: ["linux/arm64"] }), [
    all[1],
  ]);
  assert.deepEqual(
    await referrerChildren(client, reg.ref(idx), { cache, platforms: ["linux/amd64", "linux/arm/v7"] }),
    [all[0], all[2]],
    "the filter's order does not matter to the cache",
  );
  assert.equal(reg.gets(), gets);
  // Without a cache every call reads.
  await referrerChildren(client, reg.ref(idx));
  assert.equal(reg.gets(), gets + 1);
});

Deno.test("referrerChildren: more children than the bound is a ManifestTreeTooLarge error naming images[].platforms, not cached", async () => {
  const idx = index(9);
  await using reg = registry([{ bytes: idx, type: OCI_INDEX }]);
  using client = new RegistryClient({ maxAttempts: 1 });
  const cache = new ReferrerChildrenCache();
  await assert.rejects(
    referrerChildren(client, reg.ref(idx), { cache, maxChildren: 8 }),
    (e) =>
      e instanceof OciError && e.reason === "ManifestTreeTooLarge" &&
      /lists 9 platform manifests; the referrers of at most 8 are carried — narrow images\[\]\.platforms/
        .test(e.message),
  );
  assert.equal(cache.size, 0);
  // A filter that keeps few enough is fine.
  assert.equal(
    (await referrerChildren(client, reg.ref(idx), { cache, maxChildren: 8, platforms: ["linux/amd64"] }))
      .length,
    3,
  );
});

Deno.test("referrerChildren: bytes that do not match the digest are a DigestMismatch, never children", async () => {
  const idx = index(2);
  await using reg = registry([{ bytes: idx, type: OCI_INDEX }], { lie: true });
  using client = new RegistryClient({ maxAttempts: 1 });
  const cache = new ReferrerChildrenCache();
  await assert.rejects(
    referrerChildren(client, reg.ref(idx), { cache }),
    (e) => e instanceof OciError && e.reason === "DigestMismatch",
  );
  assert.equal(cache.size, 0);
});

Deno.test("ReferrerChildrenCache: bounded, the least recently used entry goes first", () => {
  const cache = new ReferrerChildrenCache(2);
  cache.set("a", ["1"]);
  cache.set("b", []);
  assert.deepEqual(cache.get("a"), ["1"]); // a is now the most recent
  cache.set("c", ["3"]);
  assert.equal(cache.size, 2);
  assert.equal(cache.get("b"), undefined);
  assert.deepEqual(cache.get("a"), ["1"]);
  assert.deepEqual(cache.get("c"), ["3"]);
  const none = new ReferrerChildrenCache(0);
  none.set("a", []);
  assert.equal(none.size, 0);
});
