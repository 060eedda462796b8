import assert from "node:assert/strict";
import { parseArgs, UsageError } from "./args.ts";
import { SERVE_FLAGS } from "./serve.ts";
import { commonSettings, SYNC_FLAGS, tagLineOf } from "./sync.ts";

const BASE = {
  warning: false,
  image: "app",
  tag: "v1",
  source: "src.example.com/lib/app:v1",
  destination: "dst.example.com/mirror/app:v1",
  dryRun: false,
};

const SYNCED = {
  ...BASE,
  type: "ImageSynced" as const,
  digest: "sha256:aa",
  bytesMoved: 10,
  blobsCopied: 1,
  blobsMounted: 0,
  blobsSkipped: 0,
};

Deno.test("per-tag sync events become display lines; other events do not", () => {
  assert.deepEqual(
    tagLineOf(SYNCED),
    {
      source: BASE.source,
      destination: BASE.destination,
      result: { tag: "v1", action: "copied", sourceDigest: "sha256:aa", bytesMoved: 10 },
    },
  );
  assert.equal(
    tagLineOf({ ...SYNCED, dryRun: true })?.result.action,
    "would-copy",
  );
  assert.equal(
    tagLineOf({ ...BASE, type: "ImageSkipped", digest: "sha256:aa" })?.result.action,
    "up-to-date",
  );
  const failed = tagLineOf({
    ...BASE,
    warning: true,
    type: "SyncFailed",
    reason: "NotFound",
    error: "manifest unknown",
  });
  assert.deepEqual(failed?.result, {
    tag: "v1",
    action: "failed",
    reason: "NotFound",
    error: "manifest unknown",
  });
  assert.equal(
    tagLineOf({
      type: "RepoEnsured",
      warning: false,
      image: "app",
      repository: "r",
      registry: "h",
      created: true,
    }),
    undefined,
  );
});

Deno.test("--concurrency: sync -f moves 8 transfers at once by default, serve the operator's 4", async () => {
  type Env = { env: (name: string) => string | undefined };
  const noEnv: Env = { env: () => undefined };
  const concurrency = async (specs: typeof SYNC_FLAGS, argv: string[], env = noEnv) =>
    (await commonSettings(parseArgs(["-f", "x.yaml", ...argv], specs, env).flags, "test", env)).concurrency;
  assert.equal(await concurrency(SYNC_FLAGS, []), 8);
  assert.equal(await concurrency(SERVE_FLAGS, []), 4);
  // the environment and the flag still override either default
  const env: Env = { env: (name: string) => name === "PORTAGER_CONCURRENCY" ? "3" : undefined };
  assert.equal(await concurrency(SYNC_FLAGS, [], env), 3);
  assert.equal(await concurrency(SERVE_FLAGS, [], env), 3);
  assert.equal(await concurrency(SYNC_FLAGS, ["--concurrency", "2"], env), 2);
});

Deno.test("shared flags: -f is required and numbers are checked", async () => {
  await assert.rejects(commonSettings({ file: [], concurrency: "4" }, "sync"), UsageError);
  await assert.rejects(
    commonSettings({ file: ["x.yaml"], concurrency: "0" }, "sync"),
    (e) => e instanceof UsageError && /--concurrency must be a whole number/.test(e.message),
  );
  const s = await commonSettings(
    {
      file: ["x.yaml"],
      concurrency: "8",
      "insecure-registry": ["a:5000,b:5000", "c"],
      secret: [],
    },
    "sync",
    { env: () => undefined },
  );
  assert.equal(s.concurrency, 8);
  assert.deepEqual(s.insecureRegistries, ["a:5000", "b:5000", "c"]);
  assert.equal(s.credentials.docker, undefined);
});
