import assert from "node:assert/strict";
import { type CopyOptions, type CopyResult, parseReference, type Reference } from "../oci/mod.ts";
import type { SyncEvent } from "./events.ts";
import type { GateCheck } from "./gates.ts";
import { type ImageResult, pendingTag, readyReason, summarize } from "./result.ts";
import { type RunContext, runTags, type TagJob } from "./run.ts";

const NOW = new Date("2026-01-01T00:00:00Z");
const D1 = `sha256:${"1".repeat(64)}`;
const D2 = `sha256:${"2".repeat(64)}`;

function jobs(tags: string[]): { image: ImageResult; jobs: TagJob[] } {
  const image: ImageResult = {
    name: "app",
    sourceRepository: "s.example/app",
    destinationRepository: "d.example/app",
    tags: [],
  };
  const out = tags.map((tag, slot) => {
    const source = parseReference(`s.example/app:${tag}`);
    const destination = parseReference(`d.example/app:${tag}`);
    image.tags.push(pendingTag(tag, { source: source.toString(), destination: destination.toString() }));
    return { image: "app", result: image, slot, tag, source, destination };
  });
  return { image, jobs: out };
}

function copyResult(fields: Partial<CopyResult>): CopyResult {
  return {
    digest: D1,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    bytesMoved: 0,
    blobsCopied: 0,
    blobsMounted: 0,
    blobsSkipped: 0,
    upToDate: false,
    dryRun: false,
    manifestsPushed: 0,
    indexRewritten: false,
    blobs: [],
    ...fields,
  };
}

/** A registry of tag → digest, as the run step reads it. */
function registry(digests: Record<string, string>) {
  const heads: string[] = [];
  return {
    heads,
    headManifest: (ref: Reference) => {
      heads.push(ref.toString());
      const digest = digests[ref.tag ?? ""];
      return Promise.resolve(digest ? { digest, mediaType: "x", size: 1 } : undefined);
    },
  };
}

function context(fields: Partial<RunContext>): RunContext & { events: SyncEvent[]; copies: string[] } {
  const events: SyncEvent[] = [];
  const copies: string[] = [];
  return {
    events,
    copies,
    copierFor: () => ({
      copy: (src: Reference, _dst: Reference, opts?: CopyOptions) => {
        copies.push(src.tag!);
        if (src.tag === "missing") {
          return Promise.reject(
            Object.assign(new Error(`manifest ${src} not found`), { reason: "NotFound" }),
          );
        }
        if (src.tag === "same") return Promise.resolve(copyResult({ upToDate: true }));
        return Promise.resolve(
          copyResult({ bytesMoved: 100, blobsCopied: 2, dryRun: opts?.dryRun ?? false }),
        );
      },
    }),
    source: registry({}),
    destination: registry({}),
    gates: [],
    dryRun: false,
    tagConcurrency: 2,
    now: () => NOW,
    emit: (e) => events.push(e),
    ...fields,
  };
}

Deno.test("runTags: copied, up to date and failed tags land in their slots, one event each", async () => {
  const { image, jobs: js } = jobs(["new", "same", "missing"]);
  const ctx = context({});
  const { aborted } = await runTags(js, ctx);
  assert.equal(aborted, false);
  assert.deepEqual(image.tags.map((t) => [t.tag, t.action, t.synced, t.reason]), [
    ["new", "copied", true, undefined],
    ["same", "up-to-date", true, undefined],
    ["missing", "failed", false, "NotFound"],
  ]);
  assert.equal(image.tags[0].bytesMoved, 100);
  assert.ok(image.tags.every((t) => t.lastSyncTime === NOW.toISOString()));
  assert.deepEqual(ctx.events.map((e) => e.type).sort(), ["ImageSkipped", "ImageSynced", "SyncFailed"]);
  const failed = ctx.events.find((e) => e.type === "SyncFailed");
  assert.equal(failed?.type === "SyncFailed" && failed.error, "manifest s.example/app:missing not found");
});

Deno.test("runTags: a dry run plans (would-copy, not synced)", async () => {
  const { image, jobs: js } = jobs(["new"]);
  await runTags(js, context({ dryRun: true }));
  assert.deepEqual([image.tags[0].action, image.tags[0].synced], ["would-copy", false]);
});

Deno.test("runTags: once the signal is aborted no new tag starts; the rest are Aborted", async () => {
  const { image, jobs: js } = jobs(["a", "b", "c"]);
  const stop = new AbortController();
  const ctx = context({ tagConcurrency: 1, signal: stop.signal });
  ctx.emit = (e) => {
    ctx.events.push(e);
    stop.abort();
  };
  const { aborted } = await runTags(js, ctx);
  assert.equal(aborted, true);
  assert.deepEqual(ctx.copies, ["a"]);
  assert.deepEqual(image.tags.map((t) => [t.action, t.reason ?? ""]), [
    ["copied", ""],
    ["failed", "Aborted"],
    ["failed", "Aborted"],
  ]);
  assert.equal(image.tags[1].lastSyncTime, undefined, "a tag not attempted has no sync time");
});

Deno.test("runTags: at most tagConcurrency tags at once", async () => {
  const { jobs: js } = jobs(["a", "b", "c", "d", "e"]);
  let active = 0;
  let peak = 0;
  const ctx = context({
    tagConcurrency: 2,
    copierFor: () => ({
      copy: async () => {
        peak = Math.max(peak, ++active);
        await new Promise((r) => setTimeout(r, 5));
        active--;
        return copyResult({});
      },
    }),
  });
  await runTags(js, ctx);
  assert.equal(peak, 2);
});

Deno.test("runTags: with a gate, digests are compared first; the gate sees the source digest before any copy", async () => {
  const { image, jobs: js } = jobs(["same", "new", "gone"]);
  const seen: string[] = [];
  const refuse: GateCheck = (req) => {
    seen.push(`${req.source.tag}@${req.digest}:${req.gates.join(",")}`);
    return Promise.resolve({ gate: "sbom", reason: "ValidationFailed", message: "no SBOM attached" });
  };
  const ctx = context({
    gates: ["cosign", "sbom"],
    checkGates: refuse,
    source: registry({ same: D1, new: D2 }),
    destination: registry({ same: D1, new: D1 }),
  });
  await runTags(js, ctx);
  assert.deepEqual(ctx.copies, [], "nothing is copied past a refusing gate");
  assert.deepEqual(seen, [`new@${D2}:cosign,sbom`], "an up-to-date tag needs no gate");
  assert.deepEqual(image.tags.map((t) => [t.tag, t.action, t.reason ?? "", t.failedGate ?? ""]), [
    ["same", "up-to-date", "", ""],
    ["new", "failed", "ValidationFailed", "sbom"],
    ["gone", "failed", "NotFound", ""],
  ]);
  const gated = image.tags[1];
  assert.deepEqual([gated.verified, gated.gates, gated.validationError, gated.sourceDigest], [
    false,
    ["cosign", "sbom"],
    "no SBOM attached",
    D2,
  ]);
  assert.equal(gated.error, "validation failed: no SBOM attached");
  // upstream's ValidationFailed Event, not a copy failure
  const event = ctx.events.find((e) => "tag" in e && e.tag === "new");
  assert.equal(event?.type, "ValidationFailed");
  assert.equal(event?.type === "ValidationFailed" && event.gate, "sbom");
  assert.ok(!ctx.events.some((e) => e.type === "SyncFailed" && e.tag === "new"));
});

Deno.test("runTags: gates that pass let the copy go on, and the tag is verified", async () => {
  const { image, jobs: js } = jobs(["new"]);
  const ctx = context({
    gates: ["cosign"],
    checkGates: () => Promise.resolve(undefined),
    source: registry({ new: D2 }),
    destination: registry({}),
  });
  await runTags(js, ctx);
  assert.deepEqual(ctx.copies, ["new"]);
  assert.deepEqual([image.tags[0].action, image.tags[0].verified, image.tags[0].gates], ["copied", true, [
    "cosign",
  ]]);
  // ImageVerified before the copy's ImageSynced
  assert.deepEqual(ctx.events.map((e) => e.type), ["ImageVerified", "ImageSynced"]);
});

Deno.test("runTags: without a gate implementation an enabled gate is ValidationUnavailable", async () => {
  const { image, jobs: js } = jobs(["new"]);
  await runTags(
    js,
    context({ gates: ["vulnerability"], source: registry({ new: D2 }), destination: registry({}) }),
  );
  assert.equal(image.tags[0].reason, "ValidationUnavailable");
  assert.equal(image.tags[0].failedGate, "vulnerability");
  assert.match(image.tags[0].error!, /vulnerabilityGate enabled but not available/);
});

Deno.test("runTags: a platform-filtered tag unchanged at both ends since the last sync is up to date from HEADs alone", async () => {
  const { image, jobs: js } = jobs(["v1", "v2"]);
  const FILTERED = `sha256:${"f".repeat(64)}`;
  js[0].platforms = ["linux/arm64"];
  js[0].previous = { sourceDigest: D2, destinationDigest: FILTERED };
  js[1].platforms = ["linux/arm64"];
  js[1].previous = { sourceDigest: D1, destinationDigest: FILTERED }; // the source moved since
  const copied: string[] = [];
  const ctx = context({
    source: registry({ v1: D2, v2: D2 }),
    destination: registry({ v1: FILTERED, v2: FILTERED }),
    copierFor: (job) => ({
      copy: (src: Reference) => {
        copied.push(`${src.tag}:${job.platforms}`);
        return Promise.resolve(copyResult({ digest: `sha256:${"e".repeat(64)}`, bytesMoved: 5 }));
      },
    }),
  });
  await runTags(js, ctx);
  assert.deepEqual(copied, ["v2:linux/arm64"], "only the tag whose source moved is read and copied");
  assert.deepEqual([image.tags[0].action, image.tags[0].sourceDigest, image.tags[0].destinationDigest], [
    "up-to-date",
    D2,
    FILTERED,
  ]);
  assert.deepEqual([image.tags[1].action, image.tags[1].sourceDigest, image.tags[1].destinationDigest], [
    "copied",
    D2,
    `sha256:${"e".repeat(64)}`,
  ]);
});

Deno.test("runTags: overwrite never leaves a destination tag at another digest (TagConflict) and copies the rest", async () => {
  const { image, jobs: js } = jobs(["moved", "new", "same"]);
  const ctx = context({
    overwrite: "never",
    source: registry({ moved: D2, new: D2, same: D1 }),
    destination: registry({ moved: D1, same: D1 }),
  });
  await runTags(js, ctx);
  assert.deepEqual(ctx.copies, ["new"]);
  assert.deepEqual(image.tags.map((t) => [t.tag, t.action, t.reason ?? ""]), [
    ["moved", "failed", "TagConflict"],
    ["new", "copied", ""],
    ["same", "up-to-date", ""],
  ]);
  assert.deepEqual([image.tags[0].sourceDigest, image.tags[0].destinationDigest], [D2, D1]);
  assert.match(image.tags[0].error!, /destination\.overwrite is never, so it is left as it is/);
  const conflict = ctx.events.find((e) => e.type === "TagConflict");
  assert.ok(conflict && conflict.type === "TagConflict");
  assert.deepEqual([conflict.sourceDigest, conflict.destinationDigest], [D2, D1]);
  const report = summarize([image], { dryRun: false, aborted: false, startedAt: "", finishedAt: "" });
  assert.equal(readyReason(report), "TagConflict");
});

Deno.test("runTags: overwrite never with a platform filter asks the copier (dry run) what it would write", async () => {
  const { image, jobs: js } = jobs(["same", "moved"]);
  for (const j of js) j.platforms = ["linux/amd64"];
  const dryRuns: string[] = [];
  const ctx = context({
    overwrite: "never",
    source: registry({ same: D2, moved: D2 }),
    destination: registry({ same: D1, moved: D1 }),
    copierFor: () => ({
      copy: (src: Reference, _dst: Reference, opts?: CopyOptions) => {
        if (!opts?.dryRun) throw new Error("nothing may be written");
        dryRuns.push(src.tag!);
        return Promise.resolve(
          copyResult({ digest: src.tag === "same" ? D1 : D2, upToDate: src.tag === "same" }),
        );
      },
    }),
  });
  await runTags(js, ctx);
  assert.deepEqual(dryRuns, ["same", "moved"]);
  assert.deepEqual(image.tags.map((t) => [t.tag, t.action, t.reason ?? ""]), [
    ["same", "up-to-date", ""],
    ["moved", "failed", "TagConflict"],
  ]);
});
