import assert from "node:assert/strict";
import { parseShape, transfersVariant } from "./b4_syncs.ts";

Deno.test("parseShape reads MiB and KiB layer shapes", () => {
  assert.deepEqual(parseShape("4x50"), { layers: 4, bytes: 50 * 1024 * 1024, label: "4 × 50 MiB" });
  assert.deepEqual(parseShape(" 40x1025k "), { layers: 40, bytes: 1025 * 1024, label: "40 × 1025 KiB" });
});

Deno.test("parseShape refuses what is not <layers>x<size>", () => {
  for (const bad of ["", "4", "4x", "x50", "0x50", "4x0", "4x50m", "-1x5"]) {
    assert.throws(() => parseShape(bad), /a shape is <layers>x<MiB>/, bad);
  }
});

Deno.test("transfersVariant passes --max-transfers after --max-concurrent-syncs, and no flag without a budget", () => {
  const form = { form: "bundle", cmd: "portager", args: [], describe: "bundle", env: {} };
  const both = transfersVariant(form, 8, 64);
  assert.deepEqual(both.runArgs, ["--max-concurrent-syncs=8", "--max-transfers=64"]);
  assert.equal(both.label, "syncs 8, transfers 64");
  assert.equal(both.form, "bundle, --max-concurrent-syncs 8, --max-transfers 64");
  const plain = transfersVariant(form, 2);
  assert.deepEqual(plain.runArgs, ["--max-concurrent-syncs=2"]);
  assert.equal(plain.label, "syncs 2");
});
