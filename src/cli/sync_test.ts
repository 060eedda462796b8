import assert from "node:assert/strict";
import { UsageError } from "./args.ts";
import { commonSettings, tagLineOf } from "./sync.ts";

const BASE = {
  warning: false,
  image: "app",
  tag: "v1",
  source: "src.example.com/lib/app:v1",
  destination: "dst.example.com/mirror/app:v1",
  dryRun: false,
};

Deno.test("per-tag sync events become display lines; other events do not", () => {
  assert.deepEqual(
    tagLineOf({ ...BASE, type: "ImageSynced", digest: "sha256:aa", bytesMoved: 10, message: "m" }),
    {
      source: BASE.source,
      destination: BASE.destination,
      result: { tag: "v1", action: "copied", sourceDigest: "sha256:aa", bytesMoved: 10 },
    },
  );
  assert.equal(
    tagLineOf({
      ...BASE,
      dryRun: true,
      type: "ImageSynced",
      digest: "sha256:aa",
      bytesMoved: 10,
      message: "m",
    })
      ?.result.action,
    "would-copy",
  );
  assert.equal(
    tagLineOf({ ...BASE, type: "ImageSkipped", digest: "sha256:aa", message: "m" })?.result.action,
    "up-to-date",
  );
  const failed = tagLineOf({
    ...BASE,
    warning: true,
    type: "SyncFailed",
    reason: "NotFound",
    message: `Failed to copy ${BASE.source} to ${BASE.destination}: manifest unknown`,
  });
  assert.deepEqual(failed?.result, {
    tag: "v1",
    action: "failed",
    reason: "NotFound",
    error: "manifest unknown",
  });
  assert.equal(
    tagLineOf({ type: "RepoEnsured", warning: false, repository: "mirror/app", created: true, message: "m" }),
    undefined,
  );
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
