import assert from "node:assert/strict";
import { parseArgs, UsageError } from "./args.ts";
import {
  DEFAULT_SYNC_TIMEOUT,
  limitFlags,
  limitSettings,
  MAX_TRANSFERS_FLAG,
  maxTransfers,
  parseSize,
} from "./limits.ts";
import { main } from "./mod.ts";

const noEnv = () => undefined;

Deno.test("limit flags: run/serve default to a one-hour sync deadline and the engine's limits; sync -f to none", async () => {
  const run = await limitSettings(
    parseArgs([], limitFlags({ syncTimeout: DEFAULT_SYNC_TIMEOUT }), { env: noEnv }).flags,
  );
  assert.deepEqual(run.limits, {
    syncTimeoutMs: 3_600_000,
    requestDeadlineMs: 120_000,
    minBytesPerSecond: 1024,
    maxManifests: 1000,
    maxManifestBytes: 8 * 1024 * 1024,
    maxTags: 100_000,
  });
  assert.equal(run.trustedRootPath, undefined);
  const once = await limitSettings(parseArgs([], limitFlags(), { env: noEnv }).flags);
  assert.equal(once.limits.syncTimeoutMs, undefined, "sync -f has no deadline unless asked");
});

Deno.test("limit flags: values from flags and from PORTAGER_* variables; --sync-timeout 0 is none", async () => {
  const flags = parseArgs(
    [
      "--sync-timeout=90s",
      "--request-timeout",
      "30s",
      "--min-transfer-rate=64Ki",
      "--max-manifests=10",
      "--max-manifest-bytes=1MiB",
    ],
    limitFlags(),
    { env: (n) => n === "PORTAGER_MAX_TAGS" ? "500" : undefined },
  ).flags;
  assert.deepEqual((await limitSettings(flags)).limits, {
    syncTimeoutMs: 90_000,
    requestDeadlineMs: 30_000,
    minBytesPerSecond: 65_536,
    maxManifests: 10,
    maxManifestBytes: 1 << 20,
    maxTags: 500,
  });
  const off = parseArgs(["--sync-timeout=0", "--min-transfer-rate=0"], limitFlags(), { env: noEnv }).flags;
  const got = (await limitSettings(off)).limits;
  assert.equal(got.syncTimeoutMs, undefined);
  assert.equal(got.minBytesPerSecond, 0, "0 turns the rate check off");
});

Deno.test("limit flags: bad values are usage errors naming the flag", async () => {
  const cases: Array<[string[], RegExp]> = [
    [["--sync-timeout=soon"], /--sync-timeout must be a duration/],
    [["--request-timeout=0"], /--request-timeout must be a duration/],
    [["--min-transfer-rate=fast"], /--min-transfer-rate must be a byte count/],
    [["--max-manifests=0"], /--max-manifests must be a whole number ≥ 1/],
    [["--max-manifests=1.5"], /--max-manifests must be a whole number ≥ 1/],
    [["--max-manifest-bytes=0"], /--max-manifest-bytes must be ≥ 1/],
    [["--max-tags=-1"], /--max-tags must be a whole number ≥ 1/],
    [["--sigstore-trusted-root=/nonexistent/trusted_root.json"], /--sigstore-trusted-root: cannot read/],
  ];
  for (const [args, message] of cases) {
    await assert.rejects(
      limitSettings(parseArgs(args, limitFlags(), { env: noEnv }).flags),
      (e) => e instanceof UsageError && message.test(e.message),
      args.join(" "),
    );
  }
});

Deno.test("limit flags: the trusted root from the flag or PORTAGER_SIGSTORE_TRUSTED_ROOT, checked at start", async () => {
  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    const byFlag = parseArgs([`--sigstore-trusted-root=${file}`], limitFlags(), { env: noEnv }).flags;
    assert.equal((await limitSettings(byFlag)).trustedRootPath, file);
    const byEnv = parseArgs([], limitFlags(), {
      env: (n) => n === "PORTAGER_SIGSTORE_TRUSTED_ROOT" ? file : undefined,
    }).flags;
    assert.equal((await limitSettings(byEnv)).trustedRootPath, file);
    const dir = parseArgs([`--sigstore-trusted-root=${file.slice(0, file.lastIndexOf("/"))}`], limitFlags(), {
      env: noEnv,
    }).flags;
    await assert.rejects(limitSettings(dir), UsageError, "a folder is not a trusted root");
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("parseSize: whole numbers with Kubernetes quantity suffixes", () => {
  assert.equal(parseSize("1024", "--x"), 1024);
  assert.equal(parseSize("8Mi", "--x"), 8 * 1024 * 1024);
  assert.equal(parseSize("2k", "--x"), 2000);
  assert.equal(parseSize("1Gi", "--x"), 1 << 30);
  assert.throws(() => parseSize("1.5Mi", "--x"), UsageError);
  assert.throws(() => parseSize("Mi", "--x"), UsageError);
});

Deno.test("--max-transfers (PORTAGER_MAX_TRANSFERS): default 8, a whole number ≥ 1, else a usage error", () => {
  const parse = (args: string[], env: (n: string) => string | undefined = noEnv) =>
    maxTransfers(parseArgs(args, [MAX_TRANSFERS_FLAG], { env }).flags);
  assert.equal(parse([]), 8);
  assert.equal(parse(["--max-transfers=16"]), 16);
  assert.equal(parse([], (n) => n === "PORTAGER_MAX_TRANSFERS" ? "3" : undefined), 3);
  for (const bad of ["0", "-2", "1.5", "eight", ""]) {
    assert.throws(
      () => parse([`--max-transfers=${bad}`]),
      (e: unknown) =>
        e instanceof UsageError && e.message === `--max-transfers must be a whole number ≥ 1, got "${bad}"`,
    );
  }
});

Deno.test("run and serve refuse a bad --max-transfers before anything starts: exit 2 with the flag's message", async () => {
  const out: string[] = [];
  const error = console.error;
  console.error = (...a: unknown[]) => void out.push(a.join(" "));
  const dir = await Deno.makeTempDir();
  try {
    assert.equal(await main(["run", "--max-transfers=0", "--health-probe-bind-address=0"]), 2);
    assert.match(out.join("\n"), /--max-transfers must be a whole number ≥ 1, got "0"/);
    out.length = 0;
    assert.equal(await main(["serve", "-f", dir, "--max-transfers=many"]), 2);
    assert.match(out.join("\n"), /--max-transfers must be a whole number ≥ 1, got "many"/);
  } finally {
    console.error = error;
    await Deno.remove(dir, { recursive: true });
  }
});
