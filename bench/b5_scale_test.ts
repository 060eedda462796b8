import assert from "node:assert/strict";
import { concurrencyVariant, countAudit, floorForm, selectForms, shippedFirst } from "./b5_scale.ts";
import type { PortagerForm } from "./tools.ts";

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

Deno.test("selectForms: all forms unless B5_FORMS names some, in its order, repeats and variants included", () => {
  const bundle: PortagerForm = { form: "bundle", cmd: "deno", args: [], describe: "", env: {} };
  const forms = [bundle, floorForm({}, 2), floorForm({}, 8)];
  const extra = [concurrencyVariant(bundle, 4)];
  assert.deepEqual(selectForms(forms, extra, undefined).map((f) => f.form), [
    "bundle",
    "floor, concurrency 2",
    "floor, concurrency 8",
  ]);
  const picked = selectForms(
    forms,
    extra,
    "floor, concurrency 8,bundle, --max-concurrent-syncs 4,bundle,floor, concurrency 8",
  );
  assert.deepEqual(picked.map((f) => f.form), [
    "floor, concurrency 8",
    "bundle, --max-concurrent-syncs 4",
    "bundle",
    "floor, concurrency 8",
  ]);
  assert.deepEqual(picked[1].runArgs, ["--max-concurrent-syncs=4"]);
  assert.ok(picked[0].args.includes("--concurrency=8"));
});

Deno.test("shippedFirst: the shipped form's rows lead, the rest keep the order they ran in", () => {
  const ran = [{ form: "bundle, without --optimize-for-size" }, { form: "bundle" }, { form: "baseline" }, {
    form: "source",
  }];
  assert.deepEqual(shippedFirst(ran, "bundle").map((r) => r.form), [
    "bundle",
    "bundle, without --optimize-for-size",
    "baseline",
    "source",
  ]);
  assert.deepEqual(shippedFirst(ran, "absent"), ran);
});
