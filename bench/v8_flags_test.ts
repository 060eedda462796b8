import assert from "node:assert/strict";
import { flagSetForms, spread } from "./v8_flags.ts";
import type { PortagerForm } from "./tools.ts";

Deno.test("flagSetForms: `shipped` is the form itself, a set replaces its V8 flags (empty: none)", () => {
  const shipped: PortagerForm = {
    form: "bundle",
    cmd: "deno",
    args: ["run", "--v8-flags=--max-semi-space-size=1,--optimize-for-size", "p.js"],
    describe: "d",
    env: {},
  };
  const [a, b, c] = flagSetForms(shipped, [
    "shipped",
    " --max-semi-space-size=1, --heap-growing-percent=30",
    "",
  ]);
  assert.equal(a, shipped);
  assert.deepEqual(b.args, ["run", "--v8-flags=--max-semi-space-size=1,--heap-growing-percent=30", "p.js"]);
  assert.equal(b.form, "bundle, v8 --max-semi-space-size=1 --heap-growing-percent=30");
  assert.deepEqual(c.args, ["run", "p.js"]);
  const [d] = flagSetForms(shipped, ["shipped@4"]);
  assert.equal(d.form, "bundle @4");
  assert.deepEqual(d.runArgs, ["--max-concurrent-syncs=4"]);
  assert.deepEqual(d.args, shipped.args);
  assert.throws(() => flagSetForms(shipped, ["shipped@x"]), /not a concurrency/);
});

Deno.test("spread reports min–max and the median", () => {
  assert.equal(spread([3, 1, 2]), "1.0–3.0 (median 2.0, 3 runs)");
  assert.equal(spread([]), "—");
});
