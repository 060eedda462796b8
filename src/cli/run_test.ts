import assert from "node:assert/strict";
import { UsageError } from "./args.ts";
import { main } from "./mod.ts";
import { logSettings } from "./run.ts";

Deno.test("run: controller-runtime's zap flags map to our log settings; ours win when both are given", () => {
  assert.deepEqual(logSettings({}), { level: "info", format: "json" });
  assert.deepEqual(logSettings({ "zap-devel": true }), { level: "debug", format: "text" });
  assert.deepEqual(logSettings({ "zap-log-level": "error", "zap-encoder": "console" }), {
    level: "error",
    format: "text",
  });
  assert.deepEqual(logSettings({ "zap-log-level": "3" }), { level: "debug", format: "json" });
  assert.deepEqual(logSettings({ "zap-devel": true, "log-level": "warn", "log-format": "json" }), {
    level: "warn",
    format: "json",
  });
  assert.throws(() => logSettings({ "zap-log-level": "loud" }), UsageError);
  assert.throws(() => logSettings({ "zap-encoder": "xml" }), UsageError);
});

Deno.test("flags alone mean `run` (upstream's /manager command line); usage errors exit 2", async () => {
  const out: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => void out.push(a.join(" "));
  console.error = (...a: unknown[]) => void out.push(a.join(" "));
  try {
    assert.equal(await main(["--leader-elect", "--help"]), 0);
    assert.match(out.join("\n"), /^Usage: portager run \[flags\]/m);
    assert.match(out.join("\n"), /--health-probe-bind-address/);
    out.length = 0;
    assert.equal(await main(["-metrics-bind-address=:8443", "--no-such-flag"]), 2);
    assert.match(out.join("\n"), /unknown flag --no-such-flag/);
    out.length = 0;
    assert.equal(await main(["--metrics-addr=:8080", "--metrics-bind-address=:8443"]), 2);
    assert.match(out.join("\n"), /exclude each other/);
  } finally {
    console.log = log;
    console.error = error;
  }
});
