import assert from "node:assert/strict";
import { serve } from "./_test_utils.ts";
import { sha256Digest } from "./blobs.ts";
import { OciError } from "./errors.ts";
import { parseReference } from "./reference.ts";
import { Transport } from "./transport.ts";
import { BlobUploader } from "./upload.ts";

/**
 * A registry that answers each upload request with a fresh session Location (`s0`, `s1`, …)
 * and logs what it was sent; PATCH number `failPatch` (1-based) answers 500.
 */
function uploadRegistry(opts: { failPatch?: number } = {}) {
  const log: string[] = [];
  const bodies: string[] = [];
  let sessions = 0;
  let patches = 0;
  const next = () => ({ status: 202, headers: { location: `/v2/a/blobs/uploads/s${sessions++}?_state=x` } });
  const srv = serve(async (req, url) => {
    if (url.pathname === "/v2/") return new Response("{}");
    const range = req.headers.get("content-range");
    log.push(`${req.method} ${url.pathname}${url.search}${range ? ` ${range}` : ""}`);
    const body = await req.text();
    if (body) bodies.push(body);
    if (req.method === "PATCH" && ++patches === opts.failPatch) return new Response("boom", { status: 500 });
    if (req.method === "POST" || req.method === "PATCH") return new Response(null, next());
    return new Response(null, { status: req.method === "PUT" ? 201 : 204 });
  });
  return { srv, log, bodies, repo: parseReference(`${srv.host}/a`, { defaultTag: false }) };
}

const CONTENT = new TextEncoder().encode("0123456789");
const DIGEST = sha256Digest(CONTENT);
const Q = `digest=${encodeURIComponent(DIGEST)}`;

function blob(size?: number) {
  return { digest: DIGEST, stream: new Blob([CONTENT]).stream(), size };
}

Deno.test("upload, chunked: each PATCH goes to the Location the last answer gave, the closing PUT to the latest", async () => {
  const r = uploadRegistry();
  try {
    const up = new BlobUploader(new Transport({ maxAttempts: 1 }), { uploadMode: "chunked", chunkSize: 4 });
    await up.upload(r.repo, blob(CONTENT.byteLength));
    assert.deepEqual(r.log, [
      "POST /v2/a/blobs/uploads/",
      "PATCH /v2/a/blobs/uploads/s0?_state=x 0-3",
      "PATCH /v2/a/blobs/uploads/s1?_state=x 4-7",
      "PATCH /v2/a/blobs/uploads/s2?_state=x 8-9",
      `PUT /v2/a/blobs/uploads/s3?_state=x&${Q}`,
    ]);
    assert.equal(r.bodies.join(""), "0123456789");
  } finally {
    await r.srv.stop();
  }
});

Deno.test("upload, chunked: a failed piece deletes the session at its latest Location, not the first", async () => {
  const r = uploadRegistry({ failPatch: 3 });
  try {
    const up = new BlobUploader(new Transport({ maxAttempts: 1 }), { uploadMode: "chunked", chunkSize: 4 });
    const err = await up.upload(r.repo, blob(CONTENT.byteLength)).catch((e) => e);
    assert(err instanceof OciError, String(err));
    assert.deepEqual(r.log.slice(-2), [
      "PATCH /v2/a/blobs/uploads/s2?_state=x 8-9",
      "DELETE /v2/a/blobs/uploads/s2?_state=x",
    ]);
  } finally {
    await r.srv.stop();
  }
});

Deno.test("upload: a known size goes in one streamed PUT into the given session; an unknown size in pieces", async () => {
  const r = uploadRegistry();
  try {
    const up = new BlobUploader(new Transport({ maxAttempts: 1 }));
    await up.upload(r.repo, blob(CONTENT.byteLength), { location: "/v2/a/blobs/uploads/given" });
    assert.deepEqual(r.log, [`PUT /v2/a/blobs/uploads/given?${Q}`]);
    assert.deepEqual(r.bodies, ["0123456789"]);
    r.log.length = 0;
    await up.upload(r.repo, blob());
    assert.deepEqual(r.log, [
      "POST /v2/a/blobs/uploads/",
      "PATCH /v2/a/blobs/uploads/s0?_state=x 0-9",
      `PUT /v2/a/blobs/uploads/s1?_state=x&${Q}`,
    ]);
  } finally {
    await r.srv.stop();
  }
});
