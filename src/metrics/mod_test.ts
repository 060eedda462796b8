import assert from "node:assert/strict";

function includes(text: string, part: string): void {
  assert.ok(text.includes(part), `expected to find ${part} in:\n${text}`);
}
import { createMetrics } from "./mod.ts";

async function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  const cmd = new Deno.Command("/usr/bin/promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  });
  const child = cmd.spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

Deno.test("metrics exposition passes promtool check metrics", async () => {
  const m = createMetrics();
  m.observeSync({
    namespace: "team-a",
    imagesync: "mirror",
    status: "success",
    durationSeconds: 1.5,
    imagesCopied: 2,
    imagesSkipped: 1,
    imagesFailed: 0,
    bytesCopied: 12345,
    blobsMounted: 1,
    blobsSkipped: 3,
    images: [
      { source: "src.example/app", destination: "dst.example/app", tag: "1.0", digest: "sha256:aa" },
      { source: "src.example/app", destination: "dst.example/app", tag: "1.1", digest: "sha256:bb" },
    ],
  });
  m.observeRetry("team-a", "mirror");
  m.queueDepth.set(3);
  m.isLeader.set(1);
  const text = await m.expose();
  for (
    const name of [
      "portage_sync_total",
      "portage_sync_duration_seconds_bucket",
      "portage_images_copied_total",
      "portage_images_skipped_total",
      "portage_images_failed_total",
      "portage_image_info",
      "portage_bytes_copied_total",
      "portage_blobs_mounted_total",
      "portage_blobs_skipped_total",
      "portage_queue_depth",
      "portage_retries_total",
    ]
  ) includes(text, name);
  includes(text, 'portage_sync_total{imagesync="mirror",namespace="team-a",status="success"} 1');
  includes(text, 'portage_images_copied_total{imagesync="mirror",namespace="team-a"} 2');
  const res = await promtoolCheck(text);
  assert.equal(res.code, 0, res.output);
  assert.equal(res.output.trim(), "", "promtool reported lint problems");
});

Deno.test("portage_image_info follows the current digest and forgets deleted ImageSyncs", async () => {
  const m = createMetrics();
  const base = {
    namespace: "ns",
    imagesync: "s",
    durationSeconds: 0.1,
    imagesCopied: 1,
    imagesSkipped: 0,
    imagesFailed: 0,
    bytesCopied: 1,
    blobsMounted: 0,
    blobsSkipped: 0,
  };
  m.observeSync({
    ...base,
    status: "success",
    images: [{ source: "a/x", destination: "b/x", tag: "1", digest: "sha256:old" }],
  });
  m.observeSync({
    ...base,
    status: "success",
    images: [{ source: "a/x", destination: "b/x", tag: "1", digest: "sha256:new" }],
  });
  let text = await m.expose();
  assert.ok(!text.includes("sha256:old"), "stale digest still exported");
  includes(text, 'digest="sha256:new"');
  // a failed tag keeps its last known digest
  m.observeSync({ ...base, status: "failure", imagesFailed: 1, images: [] });
  text = await m.expose();
  includes(text, 'digest="sha256:new"');
  m.forget("ns", "s");
  text = await m.expose();
  assert.ok(!text.includes('imagesync="s"'), "series of a deleted ImageSync remain");
});

Deno.test("two Metrics instances do not share counters", async () => {
  const a = createMetrics();
  const b = createMetrics();
  a.observeRetry("ns", "x", { count: 2 });
  includes(await a.expose(), 'portage_retries_total{namespace="ns",imagesync="x",kind="reconcile"} 2');
  assert.ok(!(await b.expose()).includes('imagesync="x"'));
});
