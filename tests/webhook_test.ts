/**
 * Push-triggered syncs end to end: Debian's real `docker-registry` (CNCF distribution) is
 * configured with a `notifications.endpoints` entry pointing at the operator's webhook
 * endpoint with a header token; a push of a new digest makes the operator sync the matching
 * ImageSync at once (its schedule is a day away), through the sync-now path, in `run` mode on
 * the harness apiserver and in `serve` mode as a child process.
 */
import assert from "node:assert/strict";
import { API_VERSION, SYNC_NOW_ANNOTATION } from "../src/api/mod.ts";
import type { OperatorOptions } from "../src/controller/mod.ts";
import { shardOf } from "../src/controller/shard.ts";
import type { Metrics } from "../src/metrics/mod.ts";
import { githubSignature, WebhookSecret } from "../src/webhook/mod.ts";
import { getManifest, pushImage } from "./harness/fixtures.ts";
import { type KubeCluster, startKube } from "./harness/kube.ts";
import {
  applyCrd,
  DENO,
  eventsFor,
  getImageSync,
  type InProcessOperator,
  startOperator,
  waitFor,
  waitForEvent,
  waitForReady,
} from "./harness/operator.ts";
import { type RegistryServer, startRegistry } from "./harness/registry.ts";

const SECRET = "webhook-test-secret-0123456789";
const REPO = new URL("../", import.meta.url).pathname;

function notifications(url: string): Record<string, unknown> {
  return {
    endpoints: [{
      name: "portager",
      url,
      headers: { Authorization: [`Bearer ${SECRET}`] },
      timeout: "2s",
      threshold: 3,
      backoff: "1s",
    }],
  };
}

function spec(src: RegistryServer, dst: RegistryServer, repository: string): Record<string, unknown> {
  return {
    schedule: "@every 24h",
    source: { registry: src.host },
    destination: { registry: dst.host, auth: { method: "anonymous" } },
    images: [{ name: repository, tags: ["1.0"] }],
  };
}

/**
 * Pushes the webhook endpoint matched against no ImageSync so far (its debug log). Tests wait for
 * their first pushes here before creating ImageSyncs: a notification arriving later would sync one.
 */
function unmatchedPushes(lines: string[]): number {
  let n = 0;
  for (const l of lines) if (l.includes('"webhook: no ImageSync matches"')) n += JSON.parse(l).pushes ?? 0;
  return n;
}

async function digestAt(reg: RegistryServer, repository: string, tag: string): Promise<string | undefined> {
  try {
    return (await getManifest(reg, repository, tag)).digest;
  } catch {
    return undefined;
  }
}

Deno.test("webhook (run): a push notified by the registry syncs the matching ImageSync now", async () => {
  const kube = await startKube();
  const dst = await startRegistry("plain");
  let src: RegistryServer | undefined;
  let quiet: RegistryServer | undefined;
  let op: InProcessOperator | undefined;
  try {
    await applyCrd(kube);
    await kube.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: "hooks" } });
    op = await startOperator(kube, {
      insecureRegistries: ["127.0.0.1"],
      namespaces: ["hooks"],
      webhook: {
        bindAddress: "127.0.0.1:0",
        secret: await WebhookSecret.load({ value: SECRET }),
        coalesceMs: 1000,
      },
    });
    const { lines, metrics } = op;
    const port = new URL(op.webhookUrl!).port;
    src = await startRegistry("plain", {
      notifications: notifications(`http://127.0.0.1:${port}/webhook/distribution`),
    });
    const v1 = await pushImage(src, { repository: "team/app", tag: "1.0" }, { seed: 1 });
    await pushImage(src, { repository: "team/other", tag: "1.0" }, { seed: 3 });
    await waitFor("the first pushes' notifications", () => unmatchedPushes(lines) >= 2 || undefined, {
      describe: () => lines.join("\n"),
    });
    await kube.apply({
      apiVersion: API_VERSION,
      kind: "ImageSync",
      metadata: { name: "app", namespace: "hooks" },
      spec: spec(src, dst, "team/app"),
    });
    await kube.apply({
      apiVersion: API_VERSION,
      kind: "ImageSync",
      metadata: { name: "other", namespace: "hooks" },
      spec: spec(src, dst, "team/other"),
    });
    const log = () => lines.join("\n");
    const first = await waitForReady(kube, "hooks", "app", { ok: (c) => c.status === "True", logs: log });
    const other = await waitForReady(kube, "hooks", "other", { ok: (c) => c.status === "True", logs: log });
    assert.equal(await digestAt(dst, "team/app", "1.0"), v1.digest);

    // a new digest under the same tag: the registry notifies, the operator syncs now
    const v2 = await pushImage(src, { repository: "team/app", tag: "1.0" }, { seed: 2 });
    assert.notEqual(v2.digest, v1.digest);
    await waitFor(
      "the destination at the pushed digest",
      async () => (await digestAt(dst, "team/app", "1.0")) === v2.digest ? true : undefined,
      {
        timeoutMs: 30_000,
        describe: log,
      },
    );
    const event = await waitForEvent(kube, "hooks", "app", "SyncNowTriggered");
    assert.equal(
      event.message,
      `Immediate sync triggered by a push of ${src.host}/team/app:1.0 (distribution webhook)`,
    );
    const after = await waitForReady(kube, "hooks", "app", {
      ok: (c, o) => c.status === "True" && o.status?.lastSyncTime !== first.status?.lastSyncTime,
    });
    // the schedule is untouched by a push-triggered sync beyond its own success
    assert.ok(after.status?.nextSyncTime);
    // the other ImageSync's source was not pushed: no sync, no Event
    const otherNow = await waitForReady(kube, "hooks", "other");
    assert.equal(otherNow.status?.lastSyncTime, other.status?.lastSyncTime);
    assert.equal(
      (await eventsFor(kube, "hooks", "other")).some((e) => e.reason === "SyncNowTriggered"),
      false,
    );

    // refused requests change nothing and are counted
    const hook = `http://127.0.0.1:${port}/webhook/distribution`;
    const envelope = JSON.stringify({
      events: [{
        id: "forged",
        action: "push",
        target: { repository: "team/other", tag: "1.0" },
        request: { host: src.host },
      }],
    });
    const unauth = await fetch(hook, { method: "POST", body: envelope });
    assert.equal(unauth.status, 401);
    assert.equal((await unauth.json()).reason, "Unauthenticated");
    const huge = await fetch(hook, {
      method: "POST",
      body: "x".repeat(2 * 1024 * 1024),
      headers: { authorization: `Bearer ${SECRET}` },
    });
    assert.equal(huge.status, 413);
    await huge.body?.cancel();
    const exposition = await (await fetch(`${op.url}/metrics`)).text();
    const count = (result: string) =>
      Number(
        exposition.match(
          new RegExp(`portager_webhook_requests_total\\{source="distribution",result="${result}"\\} (\\d+)`),
        )?.[1] ?? 0,
      );
    assert.ok(count("accepted") >= 1, exposition);
    assert.equal(count("rejected"), 2);
    assert.equal(count("received"), count("accepted") + count("rejected"));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(
      (await waitForReady(kube, "hooks", "other")).status?.lastSyncTime,
      other.status?.lastSyncTime,
    );

    // a flood: 60 notifications at once — the bucket lets a burst through (429 beyond it), and
    // the burst becomes one sync of the ImageSync it names
    const syncs = () =>
      metrics.syncTotal.get().then((m) =>
        m.values.find((v) => v.labels.name === "other" && v.labels.status === "success")?.value ?? 0
      );
    const syncsBefore = await syncs();
    const flood = await Promise.all(Array.from({ length: 60 }, async (_, i) => {
      const res = await fetch(hook, {
        method: "POST",
        headers: { authorization: `Bearer ${SECRET}` },
        body: JSON.stringify({
          events: [{
            id: `flood-${i}`,
            timestamp: new Date().toISOString(),
            action: "push",
            target: {
              mediaType: "application/vnd.oci.image.manifest.v1+json",
              repository: "team/other",
              tag: "1.0",
            },
            request: { host: src!.host },
          }],
        }),
      });
      await res.body?.cancel();
      return res.status;
    }));
    assert.ok(flood.filter((s) => s === 202).length >= 50, JSON.stringify(flood));
    assert.ok(flood.filter((s) => s === 429).length >= 5, JSON.stringify(flood));
    assert.equal(flood.filter((s) => s !== 202 && s !== 429).length, 0);
    const floodEvent = await waitForEvent(kube, "hooks", "other", "SyncNowTriggered");
    await waitFor("the flood's sync", async () => (await syncs()) > syncsBefore || undefined, {
      describe: log,
    });
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(await syncs(), syncsBefore + 1, "one sync for the whole burst");
    assert.equal(floodEvent.count ?? 1, 1);

    // the other formats over real HTTP, for a registry that sends no notifications itself
    quiet = await startRegistry("plain");
    const q = quiet;
    type Sent = { body: string; headers: Record<string, string>; query?: string };
    const senders: Array<[string, (repo: string) => Sent]> = [
      ["harbor", (repo) => ({
        body: JSON.stringify({
          type: "PUSH_ARTIFACT",
          occur_at: Math.floor(Date.now() / 1000),
          event_data: {
            resources: [{ tag: "1.0", resource_url: `${q.host}/${repo}:1.0` }],
            repository: { repo_full_name: repo },
          },
        }),
        headers: { authorization: SECRET },
      })],
      ["github", (repo) => {
        const body = JSON.stringify({
          action: "published",
          package: {
            name: repo.split("/")[1],
            package_type: "container",
            owner: { login: "team" },
            package_version: {
              container_metadata: { tag: { name: "1.0" } },
              package_url: `${q.host}/${repo}:1.0`,
            },
          },
        });
        return {
          body,
          headers: {
            "x-github-event": "package",
            "x-github-delivery": crypto.randomUUID(),
            "x-hub-signature-256": githubSignature(SECRET, new TextEncoder().encode(body)),
          },
        };
      }],
      ["quay", (repo) => ({
        body: JSON.stringify({ repository: repo, docker_url: `${q.host}/${repo}`, updated_tags: ["1.0"] }),
        headers: {},
        query: `?token=${SECRET}`,
      })],
    ];
    for (const [source, make] of senders) {
      const repo = `team/${source}`;
      await pushImage(q, { repository: repo, tag: "1.0" }, { seed: 50 });
      await kube.apply({
        apiVersion: API_VERSION,
        kind: "ImageSync",
        metadata: { name: source, namespace: "hooks" },
        spec: spec(q, dst, repo),
      });
      await waitForReady(kube, "hooks", source, { ok: (c) => c.status === "True", logs: log });
      const next = await pushImage(q, { repository: repo, tag: "1.0" }, { seed: 51 });
      const { body, headers, query } = make(repo);
      const res = await fetch(`http://127.0.0.1:${port}/webhook/${source}${query ?? ""}`, {
        method: "POST",
        body,
        headers: { "content-type": "application/json", ...headers },
      });
      assert.equal(res.status, 202, `${source}: ${await res.text()}`);
      await waitFor(
        `${source}: the pushed digest at the destination`,
        async () => (await digestAt(dst, repo, "1.0")) === next.digest || undefined,
        { timeoutMs: 30_000, describe: log },
      );
      const ev = await waitForEvent(kube, "hooks", source, "SyncNowTriggered");
      assert.equal(
        ev.message,
        `Immediate sync triggered by a push of ${q.host}/${repo}:1.0 (${source} webhook)`,
      );
    }
  } finally {
    await op?.stop().catch(() => {});
    await src?.stop();
    await quiet?.stop();
    await dst.stop();
    await kube.stop();
  }
});

/** An operator with leader election on the Lease `hooks/portager` (or its shard's), in this process. */
function electingOperator(kube: KubeCluster, identity: string, options: {
  webhook?: OperatorOptions["webhook"];
  shard?: OperatorOptions["shard"];
} = {}): Promise<InProcessOperator> {
  return startOperator(kube, {
    insecureRegistries: ["127.0.0.1"],
    namespaces: ["hooks"],
    webhook: options.webhook,
    shard: options.shard,
    leaderElection: {
      identity,
      leaseNamespace: "hooks",
      leaseName: "portager",
      leaseDurationMs: 4_000,
      renewDeadlineMs: 3_000,
      retryPeriodMs: 500,
    },
  });
}

/** The webhook endpoint's options, on a free port with the test's secret. */
async function hookOptions(coalesceMs: number): Promise<OperatorOptions["webhook"]> {
  return { bindAddress: "127.0.0.1:0", secret: await WebhookSecret.load({ value: SECRET }), coalesceMs };
}

Deno.test("webhook (run, leader + standby): a push sent to the standby's endpoint is synced by the leader; the annotation is consumed", async () => {
  const kube = await startKube();
  const dst = await startRegistry("plain");
  let src: RegistryServer | undefined;
  const ops: InProcessOperator[] = [];
  const log = () => ops.map((o, i) => `${["leader", "standby"][i]}:\n${o.log()}`).join("\n");
  try {
    await applyCrd(kube);
    await kube.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: "hooks" } });
    const leader = await electingOperator(kube, "leader");
    ops.push(leader);
    const { metrics: leaderMetrics } = leader;
    await waitFor("the first operator to lead", async () => {
      const v = (await leaderMetrics.isLeader.get()).values[0]?.value;
      return v === 1 || undefined;
    }, { describe: log });
    // the second one, with the webhook endpoint, stands by: the Lease is held
    const standby = await electingOperator(kube, "standby", { webhook: await hookOptions(300) });
    ops.push(standby);
    const { lines: standbyLines, metrics: standbyMetrics } = standby;
    const port = new URL(standby.webhookUrl!).port;
    src = await startRegistry("plain", {
      notifications: notifications(`http://127.0.0.1:${port}/webhook/distribution`),
    });
    const v1 = await pushImage(src, { repository: "team/app", tag: "1.0" }, { seed: 21 });
    await waitFor("the first push's notification", () => unmatchedPushes(standbyLines) >= 1 || undefined, {
      describe: log,
    });
    await kube.apply({
      apiVersion: API_VERSION,
      kind: "ImageSync",
      metadata: { name: "app", namespace: "hooks" },
      spec: spec(src, dst, "team/app"),
    });
    const first = await waitForReady(kube, "hooks", "app", { ok: (c) => c.status === "True", logs: log });
    assert.equal(await digestAt(dst, "team/app", "1.0"), v1.digest);
    assert.equal((await standbyMetrics.isLeader.get()).values[0]?.value ?? 0, 0, "the second one stands by");

    // the registry notifies the standby; it sets sync-now, the leader syncs and removes it
    const v2 = await pushImage(src, { repository: "team/app", tag: "1.0" }, { seed: 22 });
    await waitFor(
      "the destination at the pushed digest",
      async () => (await digestAt(dst, "team/app", "1.0")) === v2.digest || undefined,
      { timeoutMs: 30_000, describe: log },
    );
    const after = await waitForReady(kube, "hooks", "app", {
      ok: (c, o) =>
        c.status === "True" && o.status?.lastSyncTime !== first.status?.lastSyncTime &&
        o.metadata.annotations?.[SYNC_NOW_ANNOTATION] === undefined,
      logs: log,
    });
    assert.equal(after.metadata.annotations?.[SYNC_NOW_ANNOTATION], undefined);
    const event = await waitForEvent(kube, "hooks", "app", "SyncNowTriggered");
    assert.equal(event.message, "Immediate sync triggered via annotation");
    assert.match(standbyLines.join("\n"), /sync-now annotation set/);
    const syncsOf = async (m: Metrics) =>
      (await m.syncTotal.get()).values.filter((v) => v.labels.status === "success")
        .reduce((n, v) => n + v.value, 0);
    // the metrics follow the status write
    await waitFor("the second sync counted", async () => (await syncsOf(leaderMetrics)) === 2 || undefined);
    assert.equal(await syncsOf(standbyMetrics), 0, "the standby synced nothing itself");
    // the stale alert's series, as the leader exports them: the last success is the status's lastSyncTime
    const exposition = await leaderMetrics.expose();
    assert.match(exposition, /portager_schedule_interval_seconds\{name="app",namespace="hooks"\} 86400\n/);
    const last = exposition.match(
      /portager_last_success_timestamp_seconds\{name="app",namespace="hooks"\} (\S+)\n/,
    );
    assert.equal(Number(last?.[1]), Date.parse(after.status!.lastSyncTime!) / 1000, exposition);
  } finally {
    // the standby first, as before: the leader keeps its Lease to the end
    for (const o of ops.reverse()) await o.stop().catch(() => {});
    await src?.stop();
    await dst.stop();
    await kube.stop();
  }
});

Deno.test("webhook (run, 2 shards): one shard's endpoint syncs its own ImageSync at once and has the other shard sync the other's", async () => {
  const kube = await startKube();
  const dst = await startRegistry("plain");
  let src: RegistryServer | undefined;
  const ops: InProcessOperator[] = [];
  const log = () => ops.map((o, i) => `shard ${i}:\n${o.log()}`).join("\n");
  // one ImageSync owned by each shard
  const names = [0, 1].map((index) =>
    Array.from({ length: 50 }, (_, i) => `app-${i}`).find((n) => shardOf(`hooks/${n}`, 2) === index)!
  );
  try {
    await applyCrd(kube);
    await kube.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: "hooks" } });
    for (const index of [0, 1]) {
      ops.push(
        await electingOperator(kube, `shard-${index}`, {
          shard: { shards: 2, index },
          // only shard 0 takes pushes: the registry notifies it alone
          webhook: index === 0 ? await hookOptions(300) : undefined,
        }),
      );
    }
    const lines = ops.map((o) => o.lines);
    const metrics = ops.map((o) => o.metrics);
    src = await startRegistry("plain", {
      notifications: notifications(`${ops[0].webhookUrl}/webhook/distribution`),
    });
    for (const [i, name] of names.entries()) {
      await pushImage(src, { repository: `team/${name}`, tag: "1.0" }, { seed: 30 + i });
    }
    await waitFor("the first pushes' notifications", () => unmatchedPushes(lines[0]) >= 2 || undefined, {
      describe: log,
    });
    for (const name of names) {
      await kube.apply({
        apiVersion: API_VERSION,
        kind: "ImageSync",
        metadata: { name, namespace: "hooks" },
        spec: spec(src, dst, `team/${name}`),
      });
      await waitForReady(kube, "hooks", name, {
        ok: (c) => c.status === "True",
        logs: log,
        timeoutMs: 60_000,
      });
    }
    const pushed: Array<{ digest: string }> = [];
    for (const [i, name] of names.entries()) {
      pushed.push(await pushImage(src, { repository: `team/${name}`, tag: "1.0" }, { seed: 40 + i }));
    }
    for (const [i, name] of names.entries()) {
      await waitFor(
        `${name}: the pushed digest at the destination`,
        async () => (await digestAt(dst, `team/${name}`, "1.0")) === pushed[i].digest || undefined,
        { timeoutMs: 30_000, describe: log },
      );
    }
    // shard 0 queued its own with the push in the Event; shard 1 took its own from the annotation
    const own = await waitForEvent(kube, "hooks", names[0], "SyncNowTriggered");
    assert.equal(
      own.message,
      `Immediate sync triggered by a push of ${src.host}/team/${names[0]}:1.0 (distribution webhook)`,
    );
    const other = await waitForEvent(kube, "hooks", names[1], "SyncNowTriggered");
    assert.equal(other.message, "Immediate sync triggered via annotation");
    await waitForReady(kube, "hooks", names[1], {
      ok: (c, o) => c.status === "True" && o.metadata.annotations?.[SYNC_NOW_ANNOTATION] === undefined,
      logs: log,
    });
    const synced = async (m: Metrics, name: string) =>
      (await m.syncTotal.get()).values.find((v) => v.labels.name === name && v.labels.status === "success")
        ?.value ??
        0;
    // the metrics follow the status write
    await waitFor(
      "both second syncs counted",
      async () =>
        (await synced(metrics[0], names[0])) === 2 && (await synced(metrics[1], names[1])) === 2 || undefined,
      {
        describe: log,
      },
    );
    assert.equal(await synced(metrics[0], names[1]), 0, "shard 0 never synced shard 1's ImageSync");
    assert.equal(await synced(metrics[1], names[0]), 0, "nor shard 1 shard 0's");
  } finally {
    await Promise.all(ops.map((o) => o.stop().catch(() => {})));
    await src?.stop();
    await dst.stop();
    await kube.stop();
  }
});

Deno.test("webhook (run, tenants): a push syncs what names its repository in the watched namespaces (passed on to the label shard that selects it) and nothing else; nothing it says reaches the copy", async () => {
  const kube = await startKube();
  const dst = await startRegistry("plain");
  const src = await startRegistry("plain");
  let op: InProcessOperator | undefined;
  const WATCHED = { "portager.io/tenant-test": "watched" };
  const put = (
    namespace: string,
    name: string,
    repository: string,
    opts: { labels?: boolean; prefix?: string },
  ) =>
    kube.apply({
      apiVersion: API_VERSION,
      kind: "ImageSync",
      metadata: { name, namespace, labels: opts.labels === false ? undefined : WATCHED },
      spec: {
        ...spec(src, dst, repository),
        destination: { registry: dst.host, repositoryPrefix: opts.prefix, auth: { method: "anonymous" } },
      },
    });
  try {
    await applyCrd(kube);
    for (const ns of ["tenant-a", "tenant-b", "tenant-c"]) {
      await kube.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    }
    op = await startOperator(kube, {
      insecureRegistries: ["127.0.0.1"],
      namespaces: ["tenant-a", "tenant-b"],
      watchLabelSelector: "portager.io/tenant-test=watched",
      leaderElection: {
        identity: "tenants",
        leaseNamespace: "tenant-a",
        leaseDurationMs: 4_000,
        renewDeadlineMs: 3_000,
        retryPeriodMs: 500,
      },
      webhook: await hookOptions(300),
    });
    const o = op;
    const v1 = await pushImage(src, { repository: "team/a-app", tag: "1.0" }, { seed: 60 });
    await pushImage(src, { repository: "team/b-app", tag: "1.0" }, { seed: 61 });
    // tenant A's ImageSync, and one of tenant B that mirrors the same repository (allowed: it names it)
    await put("tenant-a", "app", "team/a-app", { prefix: "a" });
    await put("tenant-b", "mirror", "team/a-app", { prefix: "b" });
    // tenant B's own repository
    await put("tenant-b", "app", "team/b-app", { prefix: "b" });
    // the same repository in a watched namespace but another label shard's (not selected here),
    // and in a namespace not watched
    await put("tenant-b", "unselected", "team/a-app", { labels: false, prefix: "x" });
    await put("tenant-c", "app", "team/a-app", { prefix: "c" });
    const first = new Map<string, string | undefined>();
    for (const [ns, name] of [["tenant-a", "app"], ["tenant-b", "mirror"], ["tenant-b", "app"]]) {
      const ready = await waitForReady(kube, ns, name, { ok: (c) => c.status === "True", logs: o.log });
      first.set(`${ns}/${name}`, ready.status?.lastSyncTime);
    }
    assert.equal(await digestAt(dst, "a/team/a-app", "1.0"), v1.digest);

    // a new image under A's tag, announced with a digest that is not the one pushed
    const v2 = await pushImage(src, { repository: "team/a-app", tag: "1.0" }, { seed: 62 });
    const forged = `sha256:${"0".repeat(64)}`;
    const res = await fetch(`${o.webhookUrl}/webhook/distribution`, {
      method: "POST",
      headers: { authorization: `Bearer ${SECRET}` },
      body: JSON.stringify({
        events: [{
          id: "tenant-a-push",
          timestamp: new Date().toISOString(),
          action: "push",
          target: {
            mediaType: "application/vnd.oci.image.manifest.v1+json",
            repository: "team/a-app",
            tag: "1.0",
            digest: forged,
          },
          request: { host: src.host },
        }],
      }),
    });
    assert.equal(res.status, 202, await res.text());
    for (const prefix of ["a", "b"]) {
      await waitFor(
        `${prefix}/team/a-app at the digest the source holds`,
        async () => (await digestAt(dst, `${prefix}/team/a-app`, "1.0")) === v2.digest || undefined,
        { timeoutMs: 30_000, describe: o.log },
      );
    }
    for (const [ns, name] of [["tenant-a", "app"], ["tenant-b", "mirror"]]) {
      const event = await waitForEvent(kube, ns, name, "SyncNowTriggered");
      assert.equal(
        event.message,
        `Immediate sync triggered by a push of ${src.host}/team/a-app:1.0 (distribution webhook)`,
      );
    }
    // the push matched the ImageSyncs of the watched namespaces that name its repository, and
    // nothing else: not B's other repository, nothing in a namespace this operator does not watch
    const matched = o.lines.filter((l) => l.includes('"push matched; syncing now"')).map((l) =>
      JSON.parse(l).imagesync
    );
    assert.deepEqual(matched.sort(), ["tenant-a/app", "tenant-b/mirror", "tenant-b/unselected"]);
    // the one another label shard selects is passed on (the chart's one webhook Service reaches
    // every shard's pods), not synced here
    await waitFor(
      "the sync-now annotation on tenant-b/unselected",
      async () =>
        (await getImageSync(kube, "tenant-b", "unselected"))?.metadata.annotations?.[SYNC_NOW_ANNOTATION] ===
          "true" || undefined,
      { describe: o.log },
    );
    assert.match(
      o.log(),
      /"push matched an ImageSync another instance syncs; sync-now annotation set".*tenant-b\/unselected/,
    );
    assert.equal((await getImageSync(kube, "tenant-b", "unselected"))?.status, undefined, "not synced here");
    const outside = await getImageSync(kube, "tenant-c", "app");
    assert.equal(outside?.metadata.annotations?.[SYNC_NOW_ANNOTATION], undefined, "tenant-c untouched");
    assert.equal(outside?.status, undefined, "tenant-c never synced");
    assert.equal((await eventsFor(kube, "tenant-c")).length, 0, "no Event in tenant-c");
    assert.equal(
      (await eventsFor(kube, "tenant-b", "app")).some((e) => e.reason === "SyncNowTriggered"),
      false,
    );
    assert.equal(
      (await waitForReady(kube, "tenant-b", "app")).status?.lastSyncTime,
      first.get("tenant-b/app"),
    );
    assert.equal(await digestAt(dst, "x/team/a-app", "1.0"), undefined);
    assert.equal(await digestAt(dst, "c/team/a-app", "1.0"), undefined);
    // the forged digest was never fetched nor written: the sync resolved the tag at the source
    assert.equal(await digestAt(dst, "a/team/a-app", forged), undefined);
  } finally {
    await op?.stop().catch(() => {});
    await src.stop();
    await dst.stop();
    await kube.stop();
  }
});

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("webhook (serve): file mode takes pushes too", async () => {
  const dst = await startRegistry("plain");
  const dir = await Deno.makeTempDir();
  const port = freePort();
  const src = await startRegistry("plain", {
    notifications: notifications(`http://127.0.0.1:${port}/webhook/distribution`),
  });
  let child: Deno.ChildProcess | undefined;
  const out: string[] = [];
  try {
    const v1 = await pushImage(src, { repository: "team/app", tag: "1.0" }, { seed: 11 });
    await Deno.mkdir(`${dir}/syncs`);
    await Deno.writeTextFile(
      `${dir}/syncs/app.json`,
      JSON.stringify({
        apiVersion: API_VERSION,
        kind: "ImageSync",
        metadata: { name: "app", namespace: "default" },
        spec: spec(src, dst, "team/app"),
      }),
    );
    child = new Deno.Command(DENO, {
      args: [
        "run",
        "-A",
        `${REPO}main.ts`,
        "serve",
        "-f",
        `${dir}/syncs`,
        "--state-file",
        `${dir}/state.json`,
        "--metrics-addr",
        "127.0.0.1:0",
        "--insecure-registry",
        "127.0.0.1",
        "--webhook-bind-address",
        `127.0.0.1:${port}`,
      ],
      env: { PORTAGER_WEBHOOK_SECRET: SECRET },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const pump = async (s: ReadableStream<Uint8Array>) => {
      for await (const chunk of s.pipeThrough(new TextDecoderStream())) out.push(chunk);
    };
    const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
    await waitFor(
      "the first sync",
      async () => (await digestAt(dst, "team/app", "1.0")) === v1.digest || undefined,
      {
        timeoutMs: 60_000,
        describe: () => out.join(""),
      },
    );
    const v2 = await pushImage(src, { repository: "team/app", tag: "1.0" }, { seed: 12 });
    await waitFor(
      "the pushed digest at the destination",
      async () => (await digestAt(dst, "team/app", "1.0")) === v2.digest || undefined,
      {
        timeoutMs: 30_000,
        describe: () => out.join(""),
      },
    );
    assert.match(
      out.join(""),
      /Immediate sync triggered by a push of .*team\/app:1\.0 \(distribution webhook\)/,
    );
    child.kill("SIGTERM");
    await child.status;
    await pumps;
    child = undefined;
  } finally {
    if (child) {
      child.kill("SIGKILL");
      await child.status;
    }
    await src.stop();
    await dst.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
