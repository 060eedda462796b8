import assert from "node:assert/strict";
import { serve } from "./_test_utils.ts";
import { BlobBuffers, sha256Digest } from "./blobs.ts";
import { RegistryClient } from "./client.ts";
import { OciError } from "./errors.ts";
import { OCI_INDEX } from "./manifest.ts";
import { parseReference } from "./reference.ts";

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
