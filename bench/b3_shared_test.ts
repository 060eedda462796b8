import assert from "node:assert/strict";
import { uploadedBytes } from "./b3_shared.ts";

Deno.test("uploadedBytes counts completed uploads by digest (twice if uploaded twice) and mounts", () => {
  const sizes = new Map([["sha256:aa", 100], ["sha256:bb", 7]]);
  const lines = [
    "HEAD /v2/r/blobs/sha256:aa 404",
    "POST /v2/r/blobs/uploads/ 202",
    "PATCH /v2/r/blobs/uploads/u1?_state=x 202",
    "PUT /v2/r/blobs/uploads/u1?_state=x&digest=sha256%3Aaa 201",
    "PUT /v2/r/blobs/uploads/u2?_state=y&digest=sha256:aa 201",
    "PUT /v2/r/blobs/uploads/u3?digest=sha256:bb 400",
    "POST /v2/r/blobs/uploads/?mount=sha256:bb&from=other 201",
    "PUT /v2/r/blobs/uploads/u4?digest=sha256:cc 201",
    "PUT /v2/r/manifests/t 201",
  ];
  assert.deepEqual(uploadedBytes(lines, sizes), { bytes: 200, uploads: 3, mounts: 1, unknown: 1 });
});
