import assert from "node:assert/strict";
import { UsageError } from "./args.ts";
import { main } from "./mod.ts";
import { checkSelector, logSettings, parseShard } from "./run.ts";

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
    out.length = 0;
    // the legacy single port and upstream's probe port cannot both be meant: no silent metrics-off
    assert.equal(await main(["--metrics-addr=:8080", "--health-probe-bind-address=:8081"]), 2);
    assert.match(out.join("\n"), /--metrics-addr .* and --health-probe-bind-address exclude each other/);
    out.length = 0;
    // a registry pattern with a path is refused before anything starts
    assert.equal(await main(["run", "--allowed-registries=ghcr.io,ghcr.io/acme"]), 2);
    assert.match(out.join("\n"), /--allowed-registries: registry pattern "ghcr\.io\/acme": write a host/);
    out.length = 0;
    // an unreadable kubeconfig is a message and exit 2, not a stack trace
    const missing = `${await Deno.makeTempDir()}/no-such-kubeconfig`;
    assert.equal(await main(["run", "--kubeconfig", missing, "--health-probe-bind-address=0"]), 2);
    assert.match(out.join("\n"), /^portager: .*no-such-kubeconfig/m);
  } finally {
    console.log = log;
    console.error = error;
  }
});

Deno.test("run: --shards N --shard-index i (PORTAGER_SHARDS, PORTAGER_SHARD_INDEX) are checked before anything starts", () => {
  assert.equal(parseShard(undefined, undefined), undefined);
  assert.deepEqual(parseShard("3", "1"), { shards: 3, index: 1 });
  assert.deepEqual(parseShard("1", undefined), { shards: 1, index: 0 });
  assert.throws(() => parseShard("3", undefined), /--shards 3 needs --shard-index \(0 … 2\)/);
  assert.throws(() => parseShard(undefined, "1"), /--shard-index needs --shards/);
  assert.throws(() => parseShard("3", "3"), /from 0 to 2, got "3"/);
  assert.throws(() => parseShard("0", "0"), /from 1 to 256/);
  assert.throws(() => parseShard("two", "0"), UsageError);
  assert.throws(() => parseShard("3", "-1"), UsageError);
});

Deno.test("run: --watch-label-selector (WATCH_LABEL_SELECTOR) is checked before anything starts", () => {
  assert.equal(checkSelector(undefined), undefined);
  assert.equal(checkSelector("  "), undefined, "blank: every ImageSync");
  assert.equal(
    checkSelector(" sharding.portager.io/key in (shard1) "),
    "sharding.portager.io/key in (shard1)",
  );
  assert.equal(checkSelector("!sharding.portager.io/key"), "!sharding.portager.io/key");
  assert.throws(
    () => checkSelector("sharding.portager.io/key in shard1"),
    (err: unknown) =>
      err instanceof UsageError && /^--watch-label-selector: invalid label selector/.test(err.message),
  );
});
