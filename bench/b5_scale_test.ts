import assert from "node:assert/strict";
import { countAudit } from "./b5_scale.ts";

const SA = "system:serviceaccount:portager-system:portager";

function event(
  id: string,
  stage: string,
  verb: string,
  user: string,
  resource?: string,
  subresource?: string,
) {
  return JSON.stringify({
    auditID: id,
    stage,
    verb,
    user: { username: user },
    objectRef: resource ? { resource, ...(subresource ? { subresource } : {}) } : undefined,
  });
}

Deno.test("countAudit counts one request per auditID for the user, by verb and resource", () => {
  const lines = [
    event("1", "ResponseStarted", "watch", SA, "imagesyncs"),
    event("2", "ResponseComplete", "patch", SA, "imagesyncs", "status"),
    event("3", "ResponseComplete", "create", "admin", "imagesyncs"),
    event("1", "ResponseComplete", "watch", SA, "imagesyncs"),
    "not json",
    "",
    event("4", "ResponseComplete", "patch", SA, "imagesyncs", "status"),
  ];
  assert.deepEqual(countAudit(lines, SA), {
    total: 3,
    byKind: { "watch imagesyncs": 1, "patch imagesyncs/status": 2 },
  });
});
