import assert from "node:assert/strict";
import { serve } from "./_test_utils.ts";
import { BlobBuffers, sha256Digest } from "./blobs.ts";
import { namesUnknownRepository, RegistryClient, withDigest } from "./client.ts";
import { OciError } from "./errors.ts";
import { OCI_INDEX } from "./manifest.ts";
import { parseReference } from "./reference.ts";

Deno.test("withDigest adds digest= to relative and absolute upload locations", () => {
  const d = "sha256:" + "a".repeat(64);
  assert.equal(
    withDigest("/v2/x/blobs/uploads/abc?_state=s%3D", d),
    `/v2/x/blobs/uploads/abc?_state=s%3D&digest=sha256%3A${"a".repeat(64)}`,
  );
  assert.equal(
    withDigest("https://up.example/u/1", d),
    `https://up.example/u/1?digest=sha256%3A${"a".repeat(64)}`,
  );
});

/** A registry whose tag list is written by `page(url, origin)`; counts the pages it served. */
function tagRegistry(page: (url: URL, origin: string) => { tags: unknown[]; next?: string; pad?: number }) {
  let pages = 0;
  const srv = serve((_req, url, self) => {
    if (url.pathname === "/v2/") return new Response("{}");
    pages++;
    const p = page(url, self.origin);
    const body = JSON.stringify({ name: "a", tags: p.tags }) + " ".repeat(p.pad ?? 0);
    return new Response(body, { headers: p.next ? { link: `<${p.next}>; rel="next"` } : {} });
  });
  return { srv, pages: () => pages, repo: parseReference(`${srv.host}/a`, { defaultTag: false }) };
}

Deno.test("listTags: pages followed, duplicates and invalid tags dropped, an empty page ends the listing", async () => {
  const t = tagRegistry((url) => {
    const n = Number(url.searchParams.get("p") ?? "0");
    if (n === 0) {
      return { tags: ["1", "../../victim/manifests/prod", 7, null, "2"], next: "/v2/a/tags/list?p=1" };
    }
    if (n === 1) return { tags: ["2", "3"], next: "/v2/a/tags/list?p=2" };
    return { tags: [], next: "/v2/a/tags/list?p=3" };
  });
  try {
    assert.deepEqual(await new RegistryClient().listTags(t.repo), ["1", "2", "3"]);
    assert.equal(t.pages(), 3);
  } finally {
    await t.srv.stop();
  }
});

Deno.test("listTags: a page loop with ever new URLs but no new tags is detected", async () => {
  const t = tagRegistry((url) => ({
    tags: ["same"],
    next: `/v2/a/tags/list?p=${Number(url.searchParams.get("p") ?? 0) + 1}`,
  }));
  try {
    const err = await new RegistryClient().listTags(t.repo).catch((e) => e);
    assert(err instanceof OciError && err.reason === "Protocol", String(err));
    assert.match(err.message, /pagination for .* loops/);
    assert.equal(t.pages(), 2);
  } finally {
    await t.srv.stop();
  }
});

Deno.test("listTags: bounded in total tags and total bytes over all pages", async () => {
  const endless = tagRegistry((url) => {
    const n = Number(url.searchParams.get("p") ?? 0);
    return { tags: [`t${n}a`, `t${n}b`], next: `/v2/a/tags/list?p=${n + 1}`, pad: 1000 };
  });
  try {
    const byTags = await new RegistryClient({ maxTags: 50 }).listTags(endless.repo).catch((e) => e);
    assert(byTags instanceof OciError && byTags.reason === "TagListTooLarge", String(byTags));
    assert.match(byTags.message, /more than 50 tags/);
    assert.equal(endless.pages(), 26);
    const byBytes = await new RegistryClient().listTags(endless.repo, { maxTagListBytes: 10_000 }).catch((
      e,
    ) => e);
    assert.equal(byBytes.reason, "TagListTooLarge");
    assert.match(byBytes.message, /more than 10000 bytes/);
  } finally {
    await endless.srv.stop();
  }
  const huge = tagRegistry(() => ({ tags: ["x"], pad: 200_000 }));
  try {
    const err = await new RegistryClient({ maxTagListBytes: 100_000 }).listTags(huge.repo).catch((e) => e);
    assert.equal(err.reason, "TagListTooLarge");
  } finally {
    await huge.srv.stop();
  }
});

Deno.test("blob operations refuse a digest that is not one before any request", async () => {
  const seen: string[] = [];
  const srv = serve((_req, url) => {
    seen.push(url.pathname);
    return new Response("{}");
  });
  try {
    const client = new RegistryClient();
    const repo = parseReference(`${srv.host}/a`, { defaultTag: false });
    for (
      const digest of ["../../../../v2/victim/manifests/prod", "sha256:abc", `sha256:${"a".repeat(64)}/../x`]
    ) {
      await assert.rejects(
        client.headBlob(repo, digest),
        (e) => e instanceof OciError && e.reason === "InvalidReference",
      );
      await assert.rejects(client.getBlob(repo, digest), /invalid blob digest/);
      await assert.rejects(client.mountBlob(repo, digest, { fromRepository: "b" }), /invalid blob digest/);
    }
    assert(!seen.some((p) => p.includes("victim")), seen.join());
  } finally {
    await srv.stop();
  }
});

Deno.test("getManifest with a descriptor size reads no more than that size", async () => {
  const big = new TextEncoder().encode(
    JSON.stringify({ schemaVersion: 2, manifests: [], pad: "x".repeat(100_000) }),
  );
  const srv = serve((_req, url) =>
    url.pathname === "/v2/"
      ? new Response("{}")
      : new Response(big, { headers: { "content-type": OCI_INDEX } })
  );
  try {
    const ref = parseReference(`${srv.host}/a@${sha256Digest(big)}`);
    const err = await new RegistryClient().getManifest(ref, { size: 100 }).catch((e) => e);
    assert(err instanceof OciError && err.reason === "DigestMismatch", String(err));
    assert.match(err.message, /larger than the 100 bytes its descriptor declares/);
    const got = await new RegistryClient().getManifest(ref, { size: big.byteLength });
    assert.equal(got.size, big.byteLength);
  } finally {
    await srv.stop();
  }
});

Deno.test("a recycled blob stream uploads intact to a destination that reads slowly (lent buffers are not reused while fetch holds them)", async () => {
  // 12 MiB of varied bytes: every 256 KiB chunk differs, so a buffer read into too early would
  // change what the destination hashes.
  const size = 12 * 1024 * 1024 + 12345;
  const content = new Uint8Array(size);
  for (let i = 0, x = 7; i < size; i++) content[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  const digest = sha256Digest(content);
  let received: string | undefined;
  const srv = serve(async (req, url) => {
    if (url.pathname === "/v2/") return new Response("{}");
    if (req.method === "GET") return new Response(content); // a body fetch hands us in pieces
    if (req.method === "POST") {
      return new Response(null, { status: 202, headers: { location: "/v2/r/blobs/uploads/1" } });
    }
    // PUT: read the body slowly, so fetch's request queue stays full while the source runs ahead.
    const reader = req.body!.getReader();
    const parts: Uint8Array[] = [];
    let n = 0;
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value.slice());
      if (++n % 4 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    const all = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.byteLength;
    }
    received = sha256Digest(all);
    return new Response(null, { status: received === url.searchParams.get("digest") ? 201 : 400 });
  });
  try {
    const client = new RegistryClient();
    const repo = parseReference(`${srv.host}/r`, { defaultTag: false });
    const blob = await client.getBlob(repo, digest, { size, recycle: new BlobBuffers() });
    await client.uploadBlob(repo, { digest, stream: blob.stream, size });
    assert.equal(received, digest);
  } finally {
    await srv.stop();
  }
});

Deno.test("namesUnknownRepository: only a 404 whose error codes are all NAME_UNKNOWN says the repository is absent", () => {
  const unknown = JSON.stringify({
    errors: [{ code: "NAME_UNKNOWN", message: "repository name not known" }],
  });
  assert.equal(namesUnknownRepository(404, unknown), true);
  assert.equal(namesUnknownRepository(200, unknown), false, "a 200 is never 'absent'");
  assert.equal(namesUnknownRepository(401, unknown), false);
  assert.equal(namesUnknownRepository(403, JSON.stringify({ errors: [{ code: "DENIED" }] })), false);
  assert.equal(
    namesUnknownRepository(404, JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN" }] })),
    false,
  );
  const mixed = { errors: [{ code: "NAME_UNKNOWN" }, { code: "UNAUTHORIZED" }] };
  assert.equal(namesUnknownRepository(404, JSON.stringify(mixed)), false);
  assert.equal(namesUnknownRepository(404, JSON.stringify({ errors: [] })), false);
  assert.equal(namesUnknownRepository(404, "404 page not found"), false);
  assert.equal(namesUnknownRepository(404, ""), false);
  assert.equal(namesUnknownRepository(404, unknown.slice(0, 20)), false, "a cut body is not an answer");
});

Deno.test("repositoryUnknown: one tags/list?n=1; true only for 404 NAME_UNKNOWN, false (never a throw) otherwise", async () => {
  const answers: Array<() => Response> = [
    () =>
      Response.json({ errors: [{ code: "NAME_UNKNOWN", message: "repository name not known" }] }, {
        status: 404,
      }),
    () => Response.json({ name: "a", tags: ["1"] }),
    () => Response.json({ name: "a", tags: [] }),
    () => Response.json({ errors: [{ code: "DENIED", message: "no" }] }, { status: 403 }),
    () => new Response("404 page not found", { status: 404 }),
    () => new Response("{".repeat(10_000), { status: 404 }),
  ];
  const seen: string[] = [];
  let answer = answers[0];
  const srv = serve((req, url) => {
    if (url.pathname === "/v2/") return new Response("{}");
    seen.push(`${req.method} ${url.pathname}${url.search}`);
    return answer();
  });
  const client = new RegistryClient({ retryBaseMs: 1, maxAttempts: 1 });
  const repo = parseReference(`${srv.host}/a`, { defaultTag: false });
  try {
    const got: boolean[] = [];
    for (const a of answers) {
      answer = a;
      got.push(await client.repositoryUnknown(repo));
    }
    assert.deepEqual(got, [true, false, false, false, false, false]);
    assert.deepEqual(new Set(seen), new Set(["GET /v2/a/tags/list?n=1"]));
    assert.equal(seen.length, answers.length);
  } finally {
    await srv.stop();
  }
  // a registry that cannot be reached: false, not an error
  assert.equal(await client.repositoryUnknown(repo), false);
  client.close();
});
