import assert from "node:assert/strict";
import { KubeError } from "./client.ts";
import { unlessNotFound } from "./not_found.ts";

Deno.test("unlessNotFound: NotFound is undefined, a value passes, any other error is thrown", async () => {
  const notFound = new KubeError('leases "x" not found', { reason: "NotFound", status: 404 });
  const forbidden = new KubeError("forbidden", { reason: "Forbidden", status: 403 });
  assert.equal(await unlessNotFound(Promise.reject(notFound)), undefined);
  assert.equal(await unlessNotFound(Promise.resolve(7)), 7);
  await assert.rejects(unlessNotFound(Promise.reject(forbidden)), (e) => e === forbidden);
});
