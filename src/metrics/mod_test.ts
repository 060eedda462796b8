import assert from "node:assert/strict";
import { promtoolCheckMetrics } from "../../tests/harness/supply_chain.ts";
import { Limiter } from "../oci/mod.ts";
import { createMetrics, type SyncObservation } from "./mod.ts";

function includes(text: string, part: string): void {
  assert.ok(text.includes(part), `expected to find ${part} in:\n${text}`);
}

const base: SyncObservation = {
  namespace: "team-a",
  name: "mirror",
  status: "success",
  durationSeconds: 1.5,
  imagesCopied: 2,
  imagesSkipped: 1,
  imagesFailed: 0,
  total: 3,
  synced: 3,
  bytesCopied: 12345,
  blobsMounted: 1,
  blobsSkipped: 3,
  tags: [
    { source: "src.example/app", destination: "dst.example/app", tag: "1.0", digest: "sha256:aa" },
    { source: "src.example/app", destination: "dst.example/app", tag: "1.1", digest: "sha256:bb" },
  ],
};

Deno.test("metrics exposition has upstream's names and labels and passes promtool check metrics", async () => {
  const m = createMetrics();
  m.observeSync({ ...base, validationFailed: { cosign: 1 }, imagesVerified: 2 });
  m.observeRetry("team-a", "mirror");
  m.queueDepth.set(3);
  m.isLeader.set(1);
  const text = await m.expose();
  includes(text, 'portage_sync_total{name="mirror",namespace="team-a",status="success"} 1');
  includes(text, 'portage_sync_duration_seconds_bucket{le="5",name="mirror",namespace="team-a"} 1');
  includes(text, 'portage_images_copied_total{name="mirror",namespace="team-a"} 2');
  includes(text, 'portage_images_skipped_total{name="mirror",namespace="team-a"} 1');
  includes(text, 'portage_images_failed_total{name="mirror",namespace="team-a"} 0');
  includes(text, 'portage_image_info{name="mirror",namespace="team-a",synced="3",failed="0",total="3"} 1');
  includes(text, 'portage_images_verified_total{name="mirror",namespace="team-a"} 2');
  includes(text, 'portage_images_validation_failed_total{name="mirror",namespace="team-a",gate="cosign"} 1');
  includes(text, 'portage_tag_info{name="mirror",namespace="team-a",source="src.example/app"');
  includes(text, 'portage_bytes_copied_total{name="mirror",namespace="team-a"} 12345');
  includes(text, 'portage_blobs_mounted_total{name="mirror",namespace="team-a"} 1');
  includes(text, 'portage_blobs_skipped_total{name="mirror",namespace="team-a"} 3');
  includes(text, "portage_queue_depth 3");
  includes(text, 'portage_retries_total{namespace="team-a",name="mirror",kind="reconcile"} 1');
  const res = await promtoolCheckMetrics(text);
  assert.equal(res.code, 0, res.output);
  assert.equal(res.output.trim(), "", "promtool reported lint problems");
});

Deno.test("info gauges keep one current series per ImageSync and tag, and go when it is deleted", async () => {
  const m = createMetrics();
  const tag = { source: "a/x", destination: "b/x", tag: "1" };
  m.observeSync({ ...base, tags: [{ ...tag, digest: "sha256:old" }] });
  m.observeSync({ ...base, synced: 2, imagesFailed: 1, tags: [{ ...tag, digest: "sha256:new" }] });
  let text = await m.expose();
  assert.ok(!text.includes("sha256:old"), "stale digest still exported");
  includes(text, 'digest="sha256:new"');
  assert.equal(text.split("\n").filter((l) => l.startsWith("portage_image_info{")).length, 1, text);
  includes(text, 'synced="2",failed="1"');
  // a tag that failed this time keeps its last known digest
  m.observeSync({ ...base, status: "failure", imagesFailed: 1, tags: [] });
  text = await m.expose();
  includes(text, 'digest="sha256:new"');
  m.forget("team-a", "mirror");
  text = await m.expose();
  assert.ok(!text.includes('name="mirror"'), "series of a deleted ImageSync remain:\n" + text);
});

Deno.test("two Metrics instances do not share counters", async () => {
  const a = createMetrics();
  const b = createMetrics();
  a.observeRetry("ns", "x", { count: 2 });
  includes(await a.expose(), 'portage_retries_total{namespace="ns",name="x",kind="reconcile"} 2');
  assert.ok(!(await b.expose()).includes('name="x"'));
});

Deno.test("as upstream: a gate's refusal is not in images_failed_total, a sync that cannot start not in sync_total", async () => {
  const m = createMetrics();
  // 4 tags: 1 copied, 3 failed of which 2 refused by a validation gate
  m.observeSync({
    ...base,
    status: "failure",
    imagesCopied: 1,
    imagesSkipped: 0,
    imagesFailed: 3,
    synced: 1,
    total: 4,
    validationFailed: { validation: 2 },
  });
  m.observeStartFailure("team-a", "mirror", "AuthFailed");
  m.observeStartFailure("team-a", "mirror", "AuthFailed");
  let text = await m.expose();
  includes(text, 'portage_images_failed_total{name="mirror",namespace="team-a"} 1');
  includes(
    text,
    'portage_images_validation_failed_total{name="mirror",namespace="team-a",gate="validation"} 2',
  );
  includes(text, 'portage_image_info{name="mirror",namespace="team-a",synced="1",failed="3",total="4"} 1');
  includes(text, 'portage_sync_total{name="mirror",namespace="team-a",status="failure"} 1');
  assert.ok(!text.includes('portage_sync_total{name="mirror",namespace="team-a",status="success"}'));
  includes(text, 'portage_sync_start_failures_total{name="mirror",namespace="team-a",reason="AuthFailed"} 2');
  const res = await promtoolCheckMetrics(text);
  assert.equal(res.output.trim(), "", "promtool reported lint problems");
  m.forget("team-a", "mirror");
  text = await m.expose();
  assert.ok(!text.includes('name="mirror"'), "series of a deleted ImageSync remain:\n" + text);
});

Deno.test("last success and schedule interval: set by a successful sync or a status, never moved back, gone with the ImageSync", async () => {
  const m = createMetrics();
  const value = async (metric: string) => {
    const line = (await m.expose()).split("\n").find((l) => l.startsWith(`${metric}{`));
    return line === undefined ? undefined : Number(line.split(" ").pop());
  };
  const lastSuccess = () => value("portager_last_success_timestamp_seconds");
  const at = (hour: number) => new Date(Date.UTC(2025, 2, 1, hour));
  const fromStatus = (hour: number) =>
    m.observeSchedule("team-a", "mirror", { intervalSeconds: 60, lastSuccess: at(hour) });
  m.observeSync({ ...base, status: "failure" });
  assert.equal(await lastSuccess(), undefined, "no success yet");
  m.observeSchedule("team-a", "mirror", { intervalSeconds: 3600 });
  assert.equal(await value("portager_schedule_interval_seconds"), 3600);
  m.observeSync({ ...base, finishedAt: at(12).toISOString() });
  assert.equal(await lastSuccess(), at(12).getTime() / 1000);
  // a status read later (an older lastSyncTime) does not move it back; a newer one does
  fromStatus(11);
  assert.equal(await lastSuccess(), at(12).getTime() / 1000);
  assert.equal(await value("portager_schedule_interval_seconds"), 60);
  fromStatus(13);
  assert.equal(await lastSuccess(), at(13).getTime() / 1000);
  m.forget("team-a", "mirror");
  assert.equal(await lastSuccess(), undefined);
  assert.equal(await value("portager_schedule_interval_seconds"), undefined);
  // forgotten means forgotten: an older time is taken again for a re-created ImageSync
  fromStatus(10);
  assert.equal(await lastSuccess(), at(10).getTime() / 1000);
});

Deno.test("transfer gauges: in flight and waiting read from the budget at each scrape; copier waits are not the budget's", async () => {
  const m = createMetrics();
  const gauge = async (name: string) => {
    const line = (await m.expose()).split("\n").find((l) => l.startsWith(`${name} `));
    assert.ok(line, `${name} missing`);
    return Number(line.split(" ").pop());
  };
  const figures = async () => [
    await gauge("portager_transfers_in_flight"),
    await gauge("portager_transfers_waiting"),
    await gauge("portager_transfers_max"),
  ];
  assert.deepEqual(await figures(), [0, 0, 0], "no budget watched yet");
  const budget = new Limiter(2);
  m.watchTransfers(budget);
  assert.deepEqual(await figures(), [0, 0, 2]);
  // two copiers of 2 with 3 tasks each: 4 pass their copiers, 2 run, 2 wait for the budget
  const copiers = [new Limiter(2, { parent: budget }), new Limiter(2, { parent: budget })];
  const open: Array<() => void> = [];
  const hold = () => new Promise<void>((r) => open.push(r));
  const runs = copiers.flatMap((c) => [c.run(hold), c.run(hold), c.run(hold)]);
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(await figures(), [2, 2, 2]);
  open.shift()!();
  await new Promise((r) => setTimeout(r, 0));
  // the freed slot went to a budget waiter; its copier let its third task through to the budget
  assert.deepEqual(await figures(), [2, 2, 2]);
  while (open.length > 0 || budget.active > 0) {
    for (const release of open.splice(0)) release();
    await new Promise((r) => setTimeout(r, 0));
  }
  await Promise.all(runs);
  assert.deepEqual(await figures(), [0, 0, 2]);
  const text = await m.expose();
  includes(text, "# TYPE portager_transfers_waiting gauge");
  const res = await promtoolCheckMetrics(text);
  assert.equal(res.output.trim(), "", "promtool reported lint problems");
});
