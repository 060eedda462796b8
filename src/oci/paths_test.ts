import assert from "node:assert/strict";
import { withDigest } from "./paths.ts";

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
