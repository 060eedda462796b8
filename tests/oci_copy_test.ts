/**
 * Integration tests of the OCI copy engine (src/oci) against real CNCF distribution registries
 * from the harness: plain, Basic, TLS with a private CA and Bearer with the token server. Faults
 * (corrupt bytes, cross-host redirects, 5xx/429, cut streams, stalls) come from small in-test
 * Deno.serve proxies in front of a real registry.
 */

import assert from "node:assert/strict";
import {
  blobExists,
  getBlob,
  getManifest,
  MediaTypes,
  type PushedImage,
  pushImage,
  pushSchema1Image,
} from "./harness/fixtures.ts";
import { seenRequest } from "./harness/hostile_registry.ts";
import { type RegistryServer, startRegistry } from "./harness/registry.ts";
import {
  Copier,
  type CopyProgress,
  type Credential,
  OciError,
  parseReference,
  type Reference,
  RegistryClient,
  type RegistryClientOptions,
  type RetryEvent,
  staticCredentials,
} from "../src/oci/mod.ts";

// ---------------------------------------------------------------------------------------------
// helpers

function ref(host: string, path: string): Reference {
  return parseReference(`${host}/${path}`);
}

/** A client holding the credentials of every given registry that has any. */
function clientFor(
  regs: Array<{ host: string; username?: string; password?: string }>,
  opts: RegistryClientOptions = {},
): RegistryClient {
  const map: Record<string, Credential> = {};
  for (const r of regs) {
    if (r.username !== undefined) map[r.host] = { username: r.username, password: r.password ?? "" };
  }
  return new RegistryClient({ credentials: staticCredentials(map), retryBaseMs: 1, ...opts });
}

/** Asserts the destination serves `img` under `reference` byte for byte, children and blobs included. */
async function assertSameImage(
  dst: RegistryServer,
  repo: string,
  reference: string,
  img: PushedImage,
): Promise<void> {
  const got = await getManifest(dst, repo, reference);
  assert.equal(got.status, 200, `${dst.host}/${repo}:${reference} missing`);
  assert.equal(got.digest, img.digest);
  assert.equal(got.mediaType, img.mediaType);
  assert.deepEqual(got.bytes, img.manifestBytes);
  for (const child of img.children ?? []) await assertSameImage(dst, repo, child.digest, child);
  for (const b of img.blobs) {
    assert(await blobExists(dst, repo, b.digest), `blob ${b.digest} missing in ${repo}`);
  }
}

/** Access-log lines the registry answered after `mark` (a length returned by flushLog). */
async function logSince(reg: RegistryServer, mark: number): Promise<string[]> {
  return (await reg.flushLog()).slice(mark);
}

async function logMark(reg: RegistryServer): Promise<number> {
  return (await reg.flushLog()).length;
}

function hex(digest: string): string {
  return digest.slice("sha256:".length);
}

async function rejectsOci(p: Promise<unknown>): Promise<OciError> {
  try {
    await p;
  } catch (e) {
    assert(e instanceof OciError, `expected OciError, got ${e instanceof Error ? e.stack : e}`);
    return e;
  }
  throw new assert.AssertionError({ message: "expected an OciError, the promise resolved" });
}

const totalSize = (img: PushedImage) => img.blobs.reduce((n, b) => n + b.size, 0);

interface Proxy {
  host: string;
  /** Requests seen: method, path+query, Authorization header (or null). */
  seen: Array<{ method: string; path: string; authorization: string | null }>;
  stop(): Promise<void>;
}

/**
 * A Deno.serve proxy in front of a real registry. `intercept` may answer a request itself;
 * returning undefined forwards it unchanged (Authorization included) to the registry.
 */
function startProxy(
  upstream: RegistryServer,
  intercept: (req: Request, url: URL) => Promise<Response | undefined> | Response | undefined,
  hostname = "127.0.0.1",
): Proxy {
  const seen: Proxy["seen"] = [];
  const server = Deno.serve({ hostname, port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    seen.push(seenRequest(req, url));
    const own = await intercept(req, url);
    if (own) return own;
    return await forward(upstream, req, url);
  });
  return {
    host: `${hostname}:${server.addr.port}`,
    seen,
    async stop() {
      await server.shutdown();
    },
  };
}

async function forward(upstream: RegistryServer, req: Request, url: URL): Promise<Response> {
  const headers = new Headers(req.headers);
  headers.delete("host");
  const body = req.method === "GET" || req.method === "HEAD" ? undefined : await req.arrayBuffer();
  const res = await fetch(new URL(url.pathname + url.search, upstream.url), {
    method: req.method,
    headers,
    body,
    redirect: "manual",
  });
  return new Response(req.method === "HEAD" ? null : res.body, {
    status: res.status,
    headers: res.headers,
  });
}

function isBlobGet(req: Request, url: URL, digest?: string): boolean {
  return req.method === "GET" && /\/blobs\/sha256:/.test(url.pathname) &&
    (digest === undefined || url.pathname.endsWith(digest));
}

// ---------------------------------------------------------------------------------------------
// copies

Deno.test("copies a single OCI image to another registry with its digest preserved", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("basic");
  const client = clientFor([src, dst]);
  try {
    const img = await pushImage(src, { repository: "app/single", tag: "v1" }, { seed: 11 });
    const progress: CopyProgress[] = [];
    const copier = new Copier(client, { onProgress: (e) => progress.push(e) });
    const result = await copier.copy(ref(src.host, "app/single:v1"), ref(dst.host, "mirror/single:v1"));
    assert.equal(result.digest, img.digest);
    assert.equal(result.mediaType, MediaTypes.ociManifest);
    assert.equal(result.upToDate, false);
    assert.equal(result.blobsCopied, 3);
    assert.equal(result.blobsMounted, 0);
    assert.equal(result.blobsSkipped, 0);
    assert.equal(result.bytesMoved, totalSize(img));
    assert.equal(result.manifestsPushed, 1);
    await assertSameImage(dst, "mirror/single", "v1", img);
    for (const b of img.blobs) {
      assert.deepEqual(
        await getBlob(dst, "mirror/single", b.digest),
        await getBlob(src, "app/single", b.digest),
      );
    }
    const last = progress.at(-1)!;
    assert.equal(last.ref, `${dst.host}/mirror/single:v1`);
    assert.equal(last.bytes, totalSize(img));
    assert.equal(last.totalBytes, totalSize(img));
  } finally {
    client.close();
    await src.stop();
    await dst.stop();
  }
});

Deno.test("copies a multi-arch index (OCI and Docker list): all children, blobs first, tag last", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const client = clientFor([]);
  try {
    for (const format of ["oci", "docker"] as const) {
      const img = await pushImage(src, { repository: `multi/${format}`, tag: "1.0" }, {
        seed: 21,
        format,
        platforms: ["linux/amd64", "linux/arm64", "linux/arm/v7"],
        sharedLayers: [2048],
      });
      const mark = await logMark(dst);
      const result = await new Copier(client).copy(
        ref(src.host, `multi/${format}:1.0`),
        ref(dst.host, `copy/${format}:1.0`),
      );
      assert.equal(result.digest, img.digest);
      assert.equal(result.mediaType, format === "oci" ? MediaTypes.ociIndex : MediaTypes.dockerList);
      assert.equal(result.manifestsPushed, 4);
      assert.equal(result.blobsCopied, img.blobs.length, "the shared base layer counts once");
      await assertSameImage(dst, `copy/${format}`, "1.0", img);
      // Order: every blob upload finished before the first manifest, the tag after the children.
      const log = await logSince(dst, mark);
      const writes = log.filter((l) => /^(PUT|POST|PATCH) /.test(l));
      const firstManifest = writes.findIndex((l) => l.includes("/manifests/"));
      const lastBlob = writes.findLastIndex((l) => l.includes("/blobs/"));
      assert(lastBlob < firstManifest, writes.join("\n"));
      assert.match(writes.at(-1)!, new RegExp(`^PUT /v2/copy/${format}/manifests/1\\.0 201$`));
    }
  } finally {
    client.close();
    await src.stop();
    await dst.stop();
  }
});

Deno.test("copies a Docker v2s2 image with media type and digest preserved", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const client = clientFor([]);
  try {
    const img = await pushImage(src, { repository: "dock/v2s2", tag: "latest" }, {
      seed: 31,
      format: "docker",
      layers: [70_000, 300_000],
    });
    const result = await new Copier(client).copy(ref(src.host, "dock/v2s2"), ref(dst.host, "dock/v2s2"));
    assert.equal(result.mediaType, MediaTypes.dockerManifest);
    assert.equal(result.digest, img.digest);
    await assertSameImage(dst, "dock/v2s2", "latest", img);
  } finally {
    client.close();
    await src.stop();
    await dst.stop();
  }
});

Deno.test("a second copy of an up-to-date image reads no blob and writes nothing", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("basic");
  const client = clientFor([src, dst]);
  try {
    const img = await pushImage(src, { repository: "up/date", tag: "v1" }, {
      seed: 41,
      platforms: ["linux/amd64", "linux/arm64"],
    });
    const first = await new Copier(client).copy(ref(src.host, "up/date:v1"), ref(dst.host, "up/date:v1"));
    assert.equal(first.upToDate, false);

    const srcMark = await logMark(src);
    const dstMark = await logMark(dst);
    const second = await new Copier(client).copy(ref(src.host, "up/date:v1"), ref(dst.host, "up/date:v1"));
    assert.equal(second.upToDate, true);
    assert.equal(second.digest, img.digest);
    assert.equal(second.bytesMoved, 0);
    assert.equal(second.blobsCopied + second.blobsMounted + second.manifestsPushed, 0);
    const srcLog = await logSince(src, srcMark);
    const dstLog = await logSince(dst, dstMark);
    assert.deepEqual(srcLog.filter((l) => l.includes("/blobs/")), [], srcLog.join("\n"));
    assert.deepEqual(dstLog.filter((l) => !/^(HEAD|GET) /.test(l)), [], dstLog.join("\n"));
    assert.deepEqual(dstLog.filter((l) => l.includes("/blobs/")), [], dstLog.join("\n"));

    // When the source tag moves, the next copy copies again.
    const moved = await pushImage(src, { repository: "up/date", tag: "v1" }, { seed: 42 });
    const third = await new Copier(client).copy(ref(src.host, "up/date:v1"), ref(dst.host, "up/date:v1"));
    assert.equal(third.upToDate, false);
    assert.equal(third.digest, moved.digest);
    await assertSameImage(dst, "up/date", "v1", moved);
  } finally {
    client.close();
    await src.stop();
    await dst.stop();
  }
});

Deno.test("layers shared by two tags are uploaded once per batch", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const client = clientFor([], {});
  try {
    const a = await pushImage(src, { repository: "shared/app", tag: "a" }, {
      seed: 51,
      sharedLayers: [30_000, 50_000],
    });
    const b = await pushImage(src, { repository: "shared/app", tag: "b" }, {
      seed: 52,
      sharedLayers: [30_000, 50_000],
    });
    const shared = a.blobs.filter((x) => b.blobs.some((y) => y.digest === x.digest));
    assert.equal(shared.length, 2);
    const srcMark = await logMark(src);
    const dstMark = await logMark(dst);
    const copier = new Copier(client, { concurrency: 4 });
    const [ra, rb] = await Promise.all([
      copier.copy(ref(src.host, "shared/app:a"), ref(dst.host, "shared/app:a")),
      copier.copy(ref(src.host, "shared/app:b"), ref(dst.host, "shared/app:b")),
    ]);
    await assertSameImage(dst, "shared/app", "a", a);
    await assertSameImage(dst, "shared/app", "b", b);
    const srcLog = await logSince(src, srcMark);
    const dstLog = await logSince(dst, dstMark);
    for (const s of shared) {
      const gets = srcLog.filter((l) => l.startsWith("GET ") && l.includes(`/blobs/${s.digest}`));
      const puts = dstLog.filter((l) => l.startsWith("PUT ") && l.includes(hex(s.digest)));
      assert.equal(gets.length, 1, `source read ${s.digest} ${gets.length} times`);
      assert.equal(puts.length, 1, `destination received ${s.digest} ${puts.length} times`);
    }
    assert.equal(
      ra.blobsCopied + rb.blobsCopied,
      new Set([...a.blobs, ...b.blobs].map((x) => x.digest)).size,
    );
    assert.equal(ra.blobsSkipped + rb.blobsSkipped, shared.length);
    assert.equal(
      ra.bytesMoved + rb.bytesMoved,
      totalSize(a) + totalSize(b) - totalSize({ ...a, blobs: shared }),
    );
  } finally {
    client.close();
    await src.stop();
    await dst.stop();
  }
});

Deno.test("a tag into a repository that does not exist yet: one tags/list, no blob HEAD; the next tag checks again", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("basic");
  const client = clientFor([src, dst]);
  try {
    const a = await pushImage(src, { repository: "cold/app", tag: "a" }, {
      seed: 55,
      sharedLayers: [20_000, 30_000],
      layers: [10_000, 40_000, 50_000],
    });
    const b = await pushImage(src, { repository: "cold/app", tag: "b" }, {
      seed: 56,
      sharedLayers: [20_000, 30_000],
      layers: [15_000],
    });
    const shared = a.blobs.filter((x) => b.blobs.some((y) => y.digest === x.digest));
    assert.equal(shared.length, 2);
    let mark = await logMark(dst);
    const ra = await new Copier(client).copy(ref(src.host, "cold/app:a"), ref(dst.host, "mirror/cold:a"), {
      likelyNew: true,
    });
    assert.equal(ra.blobsCopied, a.blobs.length);
    let log = await logSince(dst, mark);
    await assertSameImage(dst, "mirror/cold", "a", a); // after the log: it HEADs every blob
    assert.deepEqual(log.filter((l) => l.startsWith("HEAD ") && l.includes("/blobs/")), [], log.join("\n"));
    assert.deepEqual(log.filter((l) => l.includes("/tags/list")), ["GET /v2/mirror/cold/tags/list?n=1 404"]);
    assert.equal(log.filter((l) => /^PUT \S+\/blobs\/uploads\/.* 201$/.test(l)).length, a.blobs.length);

    // the repository exists now: a later copy (a fresh copier, as the next sync) probes again,
    // checks the layers and uploads only what is missing
    mark = await logMark(dst);
    const rb = await new Copier(client).copy(ref(src.host, "cold/app:b"), ref(dst.host, "mirror/cold:b"), {
      likelyNew: true,
    });
    log = await logSince(dst, mark);
    await assertSameImage(dst, "mirror/cold", "b", b);
    assert.deepEqual(log.filter((l) => l.includes("/tags/list")), ["GET /v2/mirror/cold/tags/list?n=1 200"]);
    for (const s of shared) {
      assert.ok(log.some((l) => l === `HEAD /v2/mirror/cold/blobs/${s.digest} 200`), log.join("\n"));
      assert.ok(
        !log.some((l) => l.startsWith("PUT ") && l.includes(hex(s.digest))),
        `${s.digest} uploaded again`,
      );
    }
    assert.equal(rb.blobsSkipped, shared.length);
    assert.equal(rb.blobsCopied, b.blobs.length - shared.length);

    // without likelyNew (the CLI) the probe goes once the tag's HEAD said absent
    mark = await logMark(dst);
    await new Copier(client).copy(ref(src.host, "cold/app:a"), ref(dst.host, "mirror/cli:a"));
    log = await logSince(dst, mark);
    await assertSameImage(dst, "mirror/cli", "a", a);
    assert.deepEqual(log.filter((l) => l.startsWith("HEAD ") || l.includes("/tags/list")), [
      "HEAD /v2/mirror/cli/manifests/a 404",
      "GET /v2/mirror/cli/tags/list?n=1 404",
    ]);
  } finally {
    client.close();
    await src.stop();
    await dst.stop();
  }
});

Deno.test("a copy within one registry mounts blobs instead of streaming them", async () => {
  const reg = await startRegistry("basic");
  const client = clientFor([reg]);
  try {
    const img = await pushImage(reg, { repository: "team/base", tag: "v1" }, { seed: 61, layers: [100_000] });
    const mark = await logMark(reg);
    const result = await new Copier(client).copy(
      ref(reg.host, "team/base:v1"),
      ref(reg.host, "other/base:v1"),
    );
    assert.equal(result.blobsMounted, 2);
    assert.equal(result.blobsCopied, 0);
    assert.equal(result.bytesMoved, 0);
    await assertSameImage(reg, "other/base", "v1", img);
    const log = await logSince(reg, mark);
    assert.equal(
      log.filter((l) => /^POST \/v2\/other\/base\/blobs\/uploads\/\?.*mount=.* 201$/.test(l)).length,
      2,
    );
    assert.deepEqual(log.filter((l) => l.startsWith("GET ") && l.includes("/blobs/")), []);
  } finally {
    client.close();
    await reg.stop();
  }
});

Deno.test("dry run computes the plan reading only", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const client = clientFor([]);
  try {
    const img = await pushImage(src, { repository: "dry/run", tag: "v1" }, { seed: 71 });
    // One blob is already at the destination.
    const pre = await pushImage(dst, { repository: "dry/run", tag: "other" }, { seed: 71 });
    assert.equal(pre.digest, img.digest);
    const tagMissing = await pushImage(src, { repository: "dry/run", tag: "v2" }, { seed: 72 });
    const srcMark = await logMark(src);
    const dstMark = await logMark(dst);
    const copier = new Copier(client);
    const plan = await copier.copy(ref(src.host, "dry/run:v2"), ref(dst.host, "dry/run:v2"), {
      dryRun: true,
    });
    assert.equal(plan.dryRun, true);
    assert.equal(plan.upToDate, false);
    assert.equal(plan.digest, tagMissing.digest);
    assert.equal(plan.blobsCopied, 3);
    assert.equal(plan.bytesMoved, totalSize(tagMissing));
    assert.deepEqual(plan.blobs.map((b) => b.action), ["copy", "copy", "copy"]);
    const same = await copier.copy(ref(src.host, "dry/run:v1"), ref(dst.host, "dry/run:v1"), {
      dryRun: true,
    });
    assert.equal(same.blobsSkipped, 3, "blobs already at the destination are skipped");
    assert.equal(same.bytesMoved, 0);
    const sameRegistry = await copier.copy(ref(src.host, "dry/run:v1"), ref(src.host, "dry/elsewhere:v1"), {
      dryRun: true,
    });
    assert.equal(sameRegistry.blobsMounted, 3);
    assert.deepEqual(sameRegistry.blobs.map((b) => b.from), ["dry/run", "dry/run", "dry/run"]);
    const writes = [...await logSince(src, srcMark), ...await logSince(dst, dstMark)]
      .filter((l) => !/^(HEAD|GET) /.test(l) || /^GET \S+\/blobs\//.test(l));
    assert.deepEqual(writes, []);
    assert.equal((await getManifest(dst, "dry/run", "v2")).status, 404);
  } finally {
    client.close();
    await src.stop();
    await dst.stop();
  }
});

Deno.test("platform filter copies only matching children under a new, smaller index", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const client = clientFor([]);
  try {
    const img = await pushImage(src, { repository: "plat/app", tag: "v1" }, {
      seed: 81,
      platforms: ["linux/amd64", "linux/arm64"],
    });
    const [amd64, arm64] = img.children!;
    const copier = new Copier(client, { platforms: ["linux/arm64"] });
    const result = await copier.copy(ref(src.host, "plat/app:v1"), ref(dst.host, "plat/app:v1"));
    assert.equal(result.indexRewritten, true);
    assert.notEqual(result.digest, img.digest);
    const got = await getManifest(dst, "plat/app", "v1");
    assert.equal(got.digest, result.digest);
    const index = JSON.parse(new TextDecoder().decode(got.bytes));
    assert.deepEqual(index.manifests.map((m: { digest: string }) => m.digest), [arm64.digest]);
    await assertSameImage(dst, "plat/app", arm64.digest, arm64);
    assert.equal((await getManifest(dst, "plat/app", amd64.digest)).status, 404);
    const again = await new Copier(client, { platforms: ["linux/arm64"] }).copy(
      ref(src.host, "plat/app:v1"),
      ref(dst.host, "plat/app:v1"),
    );
    assert.equal(again.upToDate, true);
    // A filter that keeps every child pushes the source index unchanged.
    const all = await new Copier(client, { platforms: ["linux/arm64", "linux/amd64"] }).copy(
      ref(src.host, "plat/app:v1"),
      ref(dst.host, "plat/all:v1"),
    );
    assert.equal(all.indexRewritten, false);
    await assertSameImage(dst, "plat/all", "v1", img);
    const none = await rejectsOci(
      new Copier(client, { platforms: ["windows/amd64"] }).copy(
        ref(src.host, "plat/app:v1"),
        ref(dst.host, "x:1"),
      ),
    );
    assert.equal(none.reason, "NoMatchingPlatform");
    assert.match(none.message, /offers linux\/amd64, linux\/arm64; none matches windows\/amd64/);
  } finally {
    client.close();
    await src.stop();
    await dst.stop();
  }
});

// ---------------------------------------------------------------------------------------------
// auth

Deno.test("bad credentials fail with Unauthorized naming the registry, never the secret", async () => {
  const basic = await startRegistry("basic");
  const bearer = await startRegistry("bearer");
  try {
    await pushImage(basic, { repository: "auth/app", tag: "v1" }, { seed: 91 });
    await pushImage(bearer, { repository: "auth/app", tag: "v1" }, { seed: 91 });
    for (const reg of [basic, bearer]) {
      const wrong = "wrong-password-x9";
      const client = new RegistryClient({
        credentials: staticCredentials({ [reg.host]: { username: reg.username!, password: wrong } }),
      });
      try {
        const e = await rejectsOci(client.headManifest(ref(reg.host, "auth/app:v1")));
        assert.equal(e.reason, "Unauthorized", e.message);
        assert.equal(e.registry, reg.host);
        assert(e.message.includes(reg.host), e.message);
        assert(!e.message.includes(wrong), e.message);
        // The copier reports the same error.
        const c = await rejectsOci(
          new Copier(client).copy(ref(reg.host, "auth/app:v1"), ref(reg.host, "auth/b:v1")),
        );
        assert.equal(c.reason, "Unauthorized");
      } finally {
        client.close();
      }
      const anonymous = new RegistryClient();
      try {
        const e = await rejectsOci(anonymous.headManifest(ref(reg.host, "auth/app:v1")));
        assert.equal(e.reason, "Unauthorized", e.message);
        assert(e.message.includes(reg.host), e.message);
      } finally {
        anonymous.close();
      }
    }
  } finally {
    await basic.stop();
    await bearer.stop();
  }
});

Deno.test("Bearer: tokens per exact scope, cached; pushing to a pull-only repository is Forbidden", async () => {
  const src = await startRegistry("plain");
  const reg = await startRegistry("bearer");
  const client = clientFor([reg]);
  try {
    const img = await pushImage(src, { repository: "bear/app", tag: "v1" }, {
      seed: 101,
      layers: [5000, 9000],
    });
    const result = await new Copier(client).copy(ref(src.host, "bear/app:v1"), ref(reg.host, "team/app:v1"));
    assert.equal(result.blobsCopied, 3);
    const requests = [...reg.tokenRequests!];
    await assertSameImage(reg, "team/app", "v1", img);
    // One token for pull (manifest and blob checks), one for pull,push (uploads, manifest).
    assert.equal(requests.length, 2, JSON.stringify(requests));
    assert(requests.every((r) => r.hadAuthorization && r.status === 200 && r.user === reg.username));
    const scopes = requests.map((r) => r.scope.join(" "));
    assert(scopes.includes("repository:team/app:pull,push"), scopes.join("; "));
    assert(scopes.every((s) => /^repository:team\/app:(pull|pull,push)$/.test(s)), scopes.join("; "));

    // Same registry, another repository: a mount, with one token for both scopes.
    const before = reg.tokenRequests!.length;
    const mounted = await new Copier(client).copy(
      ref(reg.host, "team/app:v1"),
      ref(reg.host, "team/copy:v1"),
    );
    assert.equal(mounted.blobsMounted, 3);
    const mountScopes = reg.tokenRequests!.slice(before).map((r) => [...r.scope].sort().join(" "));
    assert(
      mountScopes.includes("repository:team/app:pull repository:team/copy:pull,push"),
      mountScopes.join("; "),
    );
    await assertSameImage(reg, "team/copy", "v1", img);

    // readonly/* is pull-only for this user: the push is refused with a clear reason.
    const e = await rejectsOci(
      new Copier(client).copy(ref(src.host, "bear/app:v1"), ref(reg.host, "readonly/app:v1")),
    );
    assert.equal(e.reason, "Forbidden", e.message);
    assert(e.message.includes(reg.host), e.message);
    assert.match(e.message, /readonly\/app/);
    assert.equal((await getManifest(reg, "readonly/app", "v1")).status, 404);
  } finally {
    client.close();
    await src.stop();
    await reg.stop();
  }
});

Deno.test("Bearer: identity (refresh) tokens and ready registry tokens work as credentials", async () => {
  const reg = await startRegistry("bearer");
  try {
    const img = await pushImage(reg, { repository: "team/app", tag: "v1" }, { seed: 105 });
    const basic = `Basic ${btoa(`${reg.username}:${reg.password}`)}`;
    const service = "portager-test-registry";
    // An offline (refresh) token, as `docker login` stores it as identitytoken.
    const offline = await fetch(`${reg.tokenRealm}?service=${service}&offline_token=true`, {
      headers: { authorization: basic },
    });
    const refresh = (await offline.json()).refresh_token as string;
    assert(refresh);
    const viaRefresh = new RegistryClient({
      credentials: staticCredentials({ [reg.host]: { identityToken: refresh } }),
    });
    try {
      const before = reg.tokenRequests!.length;
      const r = await new Copier(viaRefresh).copy(ref(reg.host, "team/app:v1"), ref(reg.host, "team/two:v1"));
      assert.equal(r.digest, img.digest);
      const used = reg.tokenRequests!.slice(before);
      assert(used.length > 0 && used.every((u) => u.method === "POST" && u.user === reg.username));
    } finally {
      viaRefresh.close();
    }
    // A registry token is sent as is; no token request at all.
    const direct = await fetch(`${reg.tokenRealm}?service=${service}&scope=repository:team/app:pull`, {
      headers: { authorization: basic },
    });
    const token = (await direct.json()).token as string;
    const viaToken = new RegistryClient({
      credentials: staticCredentials({ [reg.host]: { registryToken: token } }),
    });
    try {
      const before = reg.tokenRequests!.length;
      const head = await viaToken.headManifest(ref(reg.host, "team/app:v1"));
      assert.equal(head?.digest, img.digest);
      assert.equal(reg.tokenRequests!.length, before);
    } finally {
      viaToken.close();
    }
  } finally {
    await reg.stop();
  }
});

Deno.test("Bearer: a token the registry rejects (401) is dropped and fetched again once", async () => {
  const reg = await startRegistry("bearer");
  let rejected = 0;
  const proxy = startProxy(reg, (req, url) => {
    if (req.method !== "HEAD" || !url.pathname.includes("/manifests/") || rejected > 0) return undefined;
    rejected++;
    // What a registry says when a token expired: 401 with a fresh challenge.
    return new Response(null, {
      status: 401,
      headers: {
        "www-authenticate":
          `Bearer realm="${reg.tokenRealm}",service="portager-test-registry",scope="repository:team/app:pull"`,
      },
    });
  });
  const retries: RetryEvent[] = [];
  const client = clientFor([{ host: proxy.host, username: reg.username, password: reg.password }], {
    onRetry: (e) => retries.push(e),
  });
  try {
    const img = await pushImage(reg, { repository: "team/app", tag: "v1" }, { seed: 106 });
    const before = reg.tokenRequests!.length;
    const head = await client.headManifest(ref(proxy.host, "team/app:v1"));
    assert.equal(head?.digest, img.digest);
    assert.equal(rejected, 1);
    assert.equal(reg.tokenRequests!.length - before, 2, "first token, then a fresh one after the 401");
    assert.deepEqual(retries.map((r) => [r.reason, r.status]), [["Unauthorized", 401]]);
  } finally {
    client.close();
    await proxy.stop();
    await reg.stop();
  }
});

Deno.test("Bearer: credentials go to the realm the registry named, never across its redirects", async () => {
  const reg = await startRegistry("bearer");
  // S, on another host: forwards token requests to the real token server, records Authorization.
  const onOtherHost: Array<string | null> = [];
  const other = Deno.serve({ hostname: "127.0.0.2", port: 0, onListen() {} }, async (req) => {
    onOtherHost.push(req.headers.get("authorization"));
    const url = new URL(req.url);
    const res = await fetch(`${reg.tokenRealm}${url.search}`, { headers: req.headers });
    return new Response(res.body, { status: res.status, headers: res.headers });
  });
  // R, the realm the (proxied) registry names: redirects every token request to S.
  const atRealm: Array<string | null> = [];
  const realm = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    atRealm.push(req.headers.get("authorization"));
    const url = new URL(req.url);
    return new Response(null, {
      status: 307,
      headers: { location: `http://127.0.0.2:${other.addr.port}/token${url.search}` },
    });
  });
  const proxy = startProxy(reg, async (req, url) => {
    const res = await forward(reg, req, url);
    const challenge = res.headers.get("www-authenticate");
    if (!challenge) return res;
    const headers = new Headers(res.headers);
    headers.set(
      "www-authenticate",
      challenge.replace(reg.tokenRealm!, `http://127.0.0.1:${realm.addr.port}/token`),
    );
    return new Response(res.body, { status: res.status, headers });
  });
  const client = clientFor([{ host: proxy.host, username: reg.username, password: reg.password }]);
  try {
    await pushImage(reg, { repository: "team/app", tag: "v1" }, { seed: 107 });
    // Without the credentials the token server issues a token with no access: the registry
    // then answers insufficient_scope, which we report as Forbidden.
    const e = await rejectsOci(client.headManifest(ref(proxy.host, "team/app:v1")));
    assert.equal(e.reason, "Forbidden", e.message);
    assert(atRealm.length > 0 && atRealm.every((a) => a?.startsWith("Basic ")), "the named realm gets them");
    assert(onOtherHost.length > 0);
    assert.deepEqual(onOtherHost.filter((a) => a !== null), [], "the redirect target does not");
  } finally {
    client.close();
    await proxy.stop();
    await realm.shutdown();
    await other.shutdown();
    await reg.stop();
  }
});

Deno.test("TLS registry: trusted through caCerts, refused without", async () => {
  const reg = await startRegistry("tls");
  const src = await startRegistry("plain");
  const trusted = clientFor([], { caCerts: [reg.caCertPem!] });
  const untrusted = clientFor([]);
  try {
    const img = await pushImage(src, { repository: "tls/app", tag: "v1" }, { seed: 111 });
    const r = await new Copier(trusted).copy(ref(src.host, "tls/app:v1"), ref(reg.host, "tls/app:v1"));
    assert.equal(r.digest, img.digest);
    await assertSameImage(reg, "tls/app", "v1", img);
    const e = await rejectsOci(untrusted.headManifest(ref(reg.host, "tls/app:v1")));
    assert.equal(e.reason, "Network");
    assert.match(e.message, /TLS verification failed/);
    assert(e.message.includes(reg.host));
  } finally {
    trusted.close();
    untrusted.close();
    await reg.stop();
    await src.stop();
  }
});

// ---------------------------------------------------------------------------------------------
// faults

Deno.test("a registry serving bytes that do not match their digest: DigestMismatch, no tag", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const img = await pushImage(src, { repository: "lie/app", tag: "v1" }, { seed: 121, layers: [200_000] });
  const victim = img.blobs[1].digest;
  const proxy = startProxy(src, async (req, url) => {
    if (!isBlobGet(req, url, victim)) return undefined;
    const res = await forward(src, req, url);
    const bytes = new Uint8Array(await res.arrayBuffer());
    bytes[1000] ^= 0xff; // same length, different content
    return new Response(bytes, { status: 200, headers: { "content-length": String(bytes.length) } });
  });
  const client = clientFor([]);
  try {
    const mark = await logMark(dst);
    const e = await rejectsOci(
      new Copier(client).copy(ref(proxy.host, "lie/app:v1"), ref(dst.host, "lie/app:v1")),
    );
    assert.equal(e.reason, "DigestMismatch", e.message);
    assert(e.message.includes(proxy.host) && e.message.includes(victim), e.message);
    assert.equal((await getManifest(dst, "lie/app", "v1")).status, 404, "no tag at the destination");
    assert.equal(await blobExists(dst, "lie/app", victim), false);
    const log = await logSince(dst, mark);
    assert(log.some((l) => /^DELETE \/v2\/lie\/app\/blobs\/uploads\//.test(l)), log.join("\n"));
    assert.deepEqual(log.filter((l) => l.startsWith("PUT ") && l.includes("/manifests/")), []);
    assert.equal(
      proxy.seen.filter((s) => s.method === "GET" && s.path.endsWith(victim)).length,
      1,
      "a mismatch is not retried",
    );
  } finally {
    client.close();
    await proxy.stop();
    await src.stop();
    await dst.stop();
  }
});

Deno.test("Authorization is not forwarded to a blob redirect target on another host", async () => {
  const src = await startRegistry("basic");
  const dst = await startRegistry("plain");
  const img = await pushImage(src, { repository: "cdn/app", tag: "v1" }, { seed: 131, layers: [40_000] });
  // "Object store" on 127.0.0.2: serves blobs it fetches itself, records what clients sent.
  const storeSeen: Array<string | null> = [];
  const store = Deno.serve({ hostname: "127.0.0.2", port: 0, onListen() {} }, async (req) => {
    storeSeen.push(req.headers.get("authorization"));
    const digest = new URL(req.url).pathname.slice(1);
    return new Response((await getBlob(src, "cdn/app", digest)) as Uint8Array<ArrayBuffer>);
  });
  const proxy = startProxy(src, (req, url) => {
    if (!isBlobGet(req, url)) return undefined;
    const digest = url.pathname.slice(url.pathname.lastIndexOf("/") + 1);
    return new Response(null, {
      status: 307,
      headers: { location: `http://127.0.0.2:${store.addr.port}/${digest}` },
    });
  });
  const client = clientFor([{ host: proxy.host, username: src.username, password: src.password }]);
  try {
    const result = await new Copier(client).copy(ref(proxy.host, "cdn/app:v1"), ref(dst.host, "cdn/app:v1"));
    assert.equal(result.blobsCopied, 2);
    await assertSameImage(dst, "cdn/app", "v1", img);
    assert.equal(storeSeen.length, 2);
    assert.deepEqual(storeSeen, [null, null], "no Authorization to the other host");
    const blobGets = proxy.seen.filter((s) => s.method === "GET" && s.path.includes("/blobs/"));
    assert.equal(blobGets.length, 2);
    assert(
      blobGets.every((s) => s.authorization?.startsWith("Basic ")),
      "the registry itself got credentials",
    );
  } finally {
    client.close();
    await proxy.stop();
    await store.shutdown();
    await src.stop();
    await dst.stop();
  }
});

Deno.test("retries 5xx and 429 (Retry-After), restarts a blob whose stream broke, reports every retry", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const img = await pushImage(src, { repository: "flaky/app", tag: "v1" }, { seed: 141, layers: [300_000] });
  const big = img.blobs[1].digest;
  let manifestGets = 0;
  let heads = 0;
  let bigGets = 0;
  const proxy = startProxy(src, async (req, url) => {
    if (req.method === "GET" && url.pathname.includes("/manifests/") && manifestGets++ === 0) {
      return new Response("busy", { status: 503 });
    }
    if (req.method === "HEAD" && url.pathname.includes("/manifests/") && heads++ === 0) {
      return new Response(null, { status: 429, headers: { "retry-after": "0" } });
    }
    if (isBlobGet(req, url, big) && bigGets++ === 0) {
      // Half the bytes, then the connection breaks.
      const res = await forward(src, req, url);
      const bytes = new Uint8Array(await res.arrayBuffer());
      let sent = false;
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          if (!sent) {
            sent = true;
            c.enqueue(bytes.subarray(0, bytes.length / 2));
          } else {
            c.error(new Error("connection cut"));
          }
        },
      });
      return new Response(body, { headers: { "content-length": String(bytes.length) } });
    }
    return undefined;
  });
  const retries: RetryEvent[] = [];
  const client = clientFor([], { onRetry: (e) => retries.push(e) });
  try {
    const result = await new Copier(client).copy(
      ref(proxy.host, "flaky/app:v1"),
      ref(dst.host, "flaky/app:v1"),
    );
    assert.equal(result.blobsCopied, img.blobs.length);
    assert.equal(result.bytesMoved, totalSize(img));
    await assertSameImage(dst, "flaky/app", "v1", img);
    const reasons = retries.map((r) => r.reason).sort();
    assert.deepEqual(reasons, ["BlobRestart", "RateLimited", "ServerError"], JSON.stringify(retries));
    assert.equal(retries.find((r) => r.reason === "RateLimited")?.status, 429);
    assert.equal(retries.find((r) => r.reason === "ServerError")?.status, 503);
    assert.equal(bigGets, 2, "the broken blob was fetched again from the start");
  } finally {
    client.close();
    await proxy.stop();
    await src.stop();
    await dst.stop();
  }
});

Deno.test("a stalled registry fails with Timeout after the attempt cap", async () => {
  const src = await startRegistry("plain");
  await pushImage(src, { repository: "slow/app", tag: "v1" }, { seed: 151 });
  const release = Promise.withResolvers<void>();
  const proxy = startProxy(src, async (req, url) => {
    if (req.method === "HEAD" && url.pathname.includes("/manifests/")) {
      await release.promise;
      return new Response(null, { status: 503 });
    }
    return undefined;
  });
  const retries: RetryEvent[] = [];
  const client = clientFor([], { timeoutMs: 200, maxAttempts: 2, onRetry: (e) => retries.push(e) });
  try {
    const e = await rejectsOci(client.headManifest(ref(proxy.host, "slow/app:v1")));
    assert.equal(e.reason, "Timeout", e.message);
    assert(e.message.includes(proxy.host));
    assert.deepEqual(retries.map((r) => r.reason), ["Timeout"]);
  } finally {
    release.resolve();
    client.close();
    await proxy.stop();
    await src.stop();
  }
});

Deno.test("plain HTTP only to loopback names or registries listed as insecure", async () => {
  const reg = await startRegistry("plain");
  const proxy = startProxy(reg, () => undefined, "127.0.0.2"); // plain HTTP, not a loopback name
  const strict = clientFor([]);
  const lenient = clientFor([], { insecureRegistries: [proxy.host] });
  try {
    const img = await pushImage(reg, { repository: "ins/app", tag: "v1" }, { seed: 195 });
    const e = await rejectsOci(strict.headManifest(ref(proxy.host, "ins/app:v1")));
    assert.equal(e.reason, "Network", e.message);
    assert(e.message.includes(proxy.host), e.message);
    assert.deepEqual(proxy.seen, [], "no plain-HTTP request was made");
    assert.equal((await lenient.headManifest(ref(proxy.host, "ins/app:v1")))?.digest, img.digest);
  } finally {
    strict.close();
    lenient.close();
    await proxy.stop();
    await reg.stop();
  }
});

Deno.test("registries that omit Docker-Content-Digest: digests are computed from the bytes", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const strip = (reg: RegistryServer) =>
    startProxy(reg, async (req, url) => {
      if (!url.pathname.includes("/manifests/")) return undefined;
      const res = await forward(reg, req, url);
      const headers = new Headers(res.headers);
      headers.delete("docker-content-digest");
      return new Response(res.body, { status: res.status, headers });
    });
  const srcProxy = strip(src);
  const dstProxy = strip(dst);
  const client = clientFor([]);
  try {
    const img = await pushImage(src, { repository: "nodig/app", tag: "v1" }, {
      seed: 196,
      platforms: ["linux/amd64", "linux/arm64"],
    });
    const first = await new Copier(client).copy(
      ref(srcProxy.host, "nodig/app:v1"),
      ref(dstProxy.host, "nodig/app:v1"),
    );
    assert.equal(first.digest, img.digest);
    await assertSameImage(dst, "nodig/app", "v1", img);
    const second = await new Copier(client).copy(
      ref(srcProxy.host, "nodig/app:v1"),
      ref(dstProxy.host, "nodig/app:v1"),
    );
    assert.equal(second.upToDate, true);
  } finally {
    client.close();
    await srcProxy.stop();
    await dstProxy.stop();
    await src.stop();
    await dst.stop();
  }
});

Deno.test("an oversized manifest fails with ManifestTooLarge", async () => {
  const reg = await startRegistry("plain");
  const huge = new Uint8Array(5 * 1024 * 1024).fill(0x20);
  const proxy = startProxy(reg, (req, url) => {
    if (req.method !== "GET" || !url.pathname.includes("/manifests/")) return undefined;
    // Streamed without Content-Length, so only the read cap can catch it.
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < huge.length; i += 65536) c.enqueue(huge.slice(i, i + 65536));
        c.close();
      },
    });
    return new Response(body, { headers: { "content-type": MediaTypes.ociManifest } });
  });
  const client = clientFor([]);
  try {
    const e = await rejectsOci(client.getManifest(ref(proxy.host, "big/app:v1")));
    assert.equal(e.reason, "ManifestTooLarge", e.message);
    assert(e.message.includes(`${proxy.host}/big/app:v1`), e.message);
  } finally {
    client.close();
    await proxy.stop();
    await reg.stop();
  }
});

// ---------------------------------------------------------------------------------------------
// other operations

Deno.test("chunked upload mode sends PATCH pieces and preserves the blob", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("basic");
  const client = clientFor([dst], { uploadMode: "chunked", chunkSize: 16 * 1024 });
  try {
    const img = await pushImage(src, { repository: "chunk/app", tag: "v1" }, { seed: 161, layers: [50_000] });
    const mark = await logMark(dst);
    await new Copier(client).copy(ref(src.host, "chunk/app:v1"), ref(dst.host, "chunk/app:v1"));
    await assertSameImage(dst, "chunk/app", "v1", img);
    const patches = (await logSince(dst, mark)).filter((l) => l.startsWith("PATCH "));
    assert.equal(patches.length, 4 + 1, "50 000 bytes in 16 KiB pieces, plus the config");
  } finally {
    client.close();
    await src.stop();
    await dst.stop();
  }
});

Deno.test("listTags follows Link pagination (relative and absolute links)", async () => {
  const reg = await startRegistry("basic");
  const tags = ["a", "b", "c", "d", "e", "f", "g"];
  // distribution 2.8 ignores `n`; this proxy pages the real tag list the way v3 and others do.
  const proxy = startProxy(reg, async (req, url) => {
    if (!url.pathname.endsWith("/tags/list")) return undefined;
    const res = await forward(reg, req, new URL(url.pathname, url));
    if (res.status !== 200) return res;
    const all = ((await res.json()).tags as string[]).sort();
    const n = Number(url.searchParams.get("n") ?? "100");
    const last = url.searchParams.get("last");
    const from = last === null ? 0 : all.indexOf(last) + 1;
    const page = all.slice(from, from + n);
    const headers = new Headers({ "content-type": "application/json" });
    if (from + n < all.length) {
      const next = `${url.pathname}?n=${n}&last=${page.at(-1)}`;
      // first page: a relative link; later pages: an absolute one
      headers.set("link", `<${last === null ? next : `http://${url.host}${next}`}>; rel="next"`);
    }
    return new Response(JSON.stringify({ name: "tags/app", tags: page }), { headers });
  });
  const client = clientFor([{ host: proxy.host, username: reg.username, password: reg.password }]);
  try {
    for (const t of tags) {
      await pushImage(reg, { repository: "tags/app", tag: t }, { seed: 171, layers: [10] });
    }
    const got = await client.listTags(parseReference(`${proxy.host}/tags/app`, { defaultTag: false }), {
      pageSize: 2,
    });
    assert.deepEqual(got, tags);
    const pages = proxy.seen.filter((s) => s.path.includes("/tags/list"));
    assert.deepEqual(pages.map((p) => p.path), [
      "/v2/tags/app/tags/list?n=2",
      "/v2/tags/app/tags/list?n=2&last=b",
      "/v2/tags/app/tags/list?n=2&last=d",
      "/v2/tags/app/tags/list?n=2&last=f",
    ]);
    assert(pages.every((p) => p.authorization?.startsWith("Basic ")));
    const missing = await rejectsOci(client.listTags(parseReference(`${proxy.host}/tags/none`)));
    assert.equal(missing.reason, "NotFound");
  } finally {
    client.close();
    await proxy.stop();
    await reg.stop();
  }
});

Deno.test("Docker schema1 images are refused with UnsupportedMediaType", async () => {
  const src = await startRegistry("plain", { schema1: true });
  const dst = await startRegistry("plain");
  const client = clientFor([]);
  try {
    await pushSchema1Image(src, { repository: "old/app", tag: "v1" }, { seed: 181 });
    const e = await rejectsOci(
      new Copier(client).copy(ref(src.host, "old/app:v1"), ref(dst.host, "old/app:v1")),
    );
    assert.equal(e.reason, "UnsupportedMediaType", e.message);
    assert.match(e.message, /schema 1/);
    assert(e.message.includes(`${src.host}/old/app`), e.message);
    assert.equal((await getManifest(dst, "old/app", "v1")).status, 404);
  } finally {
    client.close();
    await src.stop();
    await dst.stop();
  }
});

Deno.test("a missing source image is NotFound naming the reference", async () => {
  const src = await startRegistry("plain");
  const client = clientFor([]);
  try {
    await pushImage(src, { repository: "nf/app", tag: "v1" }, { seed: 191 });
    const e = await rejectsOci(new Copier(client).copy(ref(src.host, "nf/app:v2"), ref(src.host, "nf/b:v2")));
    assert.equal(e.reason, "NotFound");
    assert(e.message.includes(`${src.host}/nf/app:v2`), e.message);
  } finally {
    client.close();
    await src.stop();
  }
});
