// An ImageSync that goes away mid-copy stops its sync, on the harness apiserver with real
// registries and a throttled source (toxiproxy, 100 kB/s: a 3 MB layer takes ~30 s):
// - deleted: the copy stops (the layer never completes at the destination, no request after a
//   settle), no manifest PUT, no status, no failure Event, its metrics stay forgotten;
// - relabeled from label shard A to label shard B: A cancels and writes nothing more about it,
//   B syncs it, and the destination sees exactly one manifest PUT.
// Each fails with the cancel removed: the old copy then runs to its end and PUTs its manifest.
import assert from "node:assert/strict";
import { SHARD_KEY_LABEL } from "../src/controller/shard.ts";
import { type PushedImage, pushImage } from "./harness/fixtures.ts";
import { type KubeCluster, startKube } from "./harness/kube.ts";
import {
  applyCrd,
  condition,
  createNamespace,
  eventsFor,
  imageSync,
  imageSyncPath,
  type InProcessOperator,
  sleep,
  startOperator,
  type StoredObject,
  waitFor,
  waitForReady,
} from "./harness/operator.ts";
import { type RegistryServer, startRegistry } from "./harness/registry.ts";
import { startToxiproxy, type ToxiProxy, type Toxiproxy } from "./harness/toxiproxy.ts";

const NS = "cancel";
const LEASE_NS = "portager-system";
/** The source through toxiproxy at this rate (kB/s): the big layer is in flight for ~30 s. */
const RATE = 100;
const BIG_LAYER = 3_000_000;

/** Registries, a throttled proxy in front of the source holding lib/app:v1, the apiserver. */
interface Setup {
  kube: KubeCluster;
  src: RegistryServer;
  dst: RegistryServer;
  toxi: Toxiproxy;
  proxy: ToxiProxy;
  image: PushedImage;
  ops: InProcessOperator[];
}

async function setUp(): Promise<Setup> {
  const kube = await startKube();
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const toxi = await startToxiproxy();
  const s: Setup = { kube, src, dst, toxi, proxy: undefined!, image: undefined!, ops: [] };
  try {
    await applyCrd(kube);
    await createNamespace(kube, NS);
    await createNamespace(kube, LEASE_NS);
    s.image = await pushImage(src, { repository: "lib/app", tag: "v1" }, { seed: 61, layers: [BIG_LAYER] });
    s.proxy = await toxi.createProxy("src", src.host);
    await s.proxy.addToxic({ name: "bw", type: "bandwidth", attributes: { rate: RATE } });
  } catch (err) {
    await tearDown(s);
    throw err;
  }
  return s;
}

async function tearDown(s: Setup): Promise<void> {
  for (const op of s.ops) if (!op.exited()) await op.stop().catch(() => {});
  await s.toxi.stop();
  await Promise.all([s.src.stop(), s.dst.stop()]);
  await s.kube.stop();
}

/** A test on its own {@linkcode Setup}, torn down after. */
function withSetup(name: string, fn: (s: Setup) => Promise<void>): void {
  Deno.test({
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const s = await setUp();
      try {
        await fn(s);
      } finally {
        await tearDown(s);
      }
    },
  });
}

/** ImageSync `name`: lib/app:v1 from the throttled source into `<name>/app`. */
function spec(s: Setup, name: string): Record<string, unknown> {
  return {
    schedule: "@every 1h",
    source: { registry: `${s.proxy.host}/lib` },
    destination: { registry: s.dst.host, repositoryPrefix: name, auth: { method: "anonymous" } },
    images: [{ name: "app", tags: ["v1"] }],
  };
}

/** The destination's answered requests to repository `<name>/app`. */
async function requestsTo(dst: RegistryServer, name: string): Promise<string[]> {
  return (await dst.flushLog()).filter((l) => l.includes(` /v2/${name}/app/`));
}

const manifestPuts = (lines: string[]) => lines.filter((l) => /^PUT \/v2\/.+\/manifests\/v1 20\d$/.test(l));

/** Waits until the destination opened an upload into `<name>/app`, then 1 s more: the big layer streams. */
async function waitCopyInFlight(s: Setup, name: string, describe: () => string): Promise<void> {
  await waitFor(`an upload into ${name}/app to start`, async () => {
    const lines = await requestsTo(s.dst, name);
    return lines.some((l) => /^POST \/v2\/.+\/blobs\/uploads\/ 202$/.test(l)) || undefined;
  }, { timeoutMs: 60_000, describe });
  await sleep(1_000);
  assert.deepEqual(manifestPuts(await requestsTo(s.dst, name)), [], "mid-copy: no manifest yet");
}

/** Waits until `op` has no reconcile in flight (controller-runtime's active workers gauge). */
async function waitIdle(op: InProcessOperator, what: string): Promise<void> {
  await waitFor(`${what}: no reconcile in flight`, async () => {
    const text = await op.metrics.expose();
    return /^controller_runtime_active_workers\{controller="imagesync"\} 0$/m.test(text) || undefined;
  }, { timeoutMs: 90_000, describe: () => op.log().split("\n").slice(-20).join("\n") });
}

/** `op`'s JSON log lines about ImageSync `key`. */
function linesAbout(op: InProcessOperator, key: string): Array<Record<string, unknown>> {
  return op.lines.map((l) => JSON.parse(l)).filter((l) => l.imagesync === key);
}

/** HEAD of a blob at the destination: its status. */
async function blobStatus(dst: RegistryServer, repo: string, digest: string): Promise<number> {
  const res = await fetch(`http://${dst.host}/v2/${repo}/blobs/${digest}`, { method: "HEAD" });
  await res.body?.cancel();
  return res.status;
}

withSetup(
  "an ImageSync deleted mid-copy stops its sync: no manifest, the layer never completes, no failure Event",
  async (s) => {
    const op = await startOperator(s.kube, { insecureRegistries: [s.proxy.host, s.dst.host] });
    s.ops.push(op);
    await s.kube.apply(imageSync(NS, "doomed", spec(s, "doomed")));
    await waitCopyInFlight(s, "doomed", op.log);

    const del = await s.kube.adminFetch(imageSyncPath(NS, "doomed"), { method: "DELETE" });
    assert.equal(del.status, 200, await del.text());
    await waitIdle(op, "after the delete");
    // the copy stopped: nothing more reaches the destination, and the layer never completed
    const seen = await requestsTo(s.dst, "doomed");
    await sleep(1_500);
    assert.deepEqual(await requestsTo(s.dst, "doomed"), seen, "no request after the cancel settled");
    assert.deepEqual(manifestPuts(seen), [], "no manifest PUT: no tag points to a partial image");
    const layer = s.image.blobs.find((b) => b.size === BIG_LAYER)!;
    assert.equal(
      await blobStatus(s.dst, "doomed/app", layer.digest),
      404,
      "the big layer was not completed",
    );

    const cancelled = await waitFor("the cancel logged", () => {
      const found = linesAbout(op, `${NS}/doomed`).filter((l) => String(l.msg).startsWith("sync cancelled"));
      return found.length > 0 ? found : undefined;
    }, { describe: op.log });
    assert.equal(cancelled.length, 1, op.log());
    assert.equal(cancelled[0].msg, "sync cancelled: the ImageSync was deleted");
    assert.equal(cancelled[0].level, "info");
    assert.equal(cancelled[0].why, "deleted");

    // nothing written or recorded about the deleted object afterwards
    const after = linesAbout(op, `${NS}/doomed`).map((l) => String(l.msg));
    for (const msg of after) {
      assert.doesNotMatch(msg, /sync failed|sync finished|interrupted|could not write/i, after.join("\n"));
    }
    assert.doesNotMatch(await op.metrics.expose(), /name="doomed"/, "its metric series stay forgotten");
    await op.stop(); // flushes the Events
    const events = await eventsFor(s.kube, NS, "doomed");
    assert.deepEqual(
      events.filter((e) => e.type === "Warning").map((e) => [e.reason, e.message]),
      [],
      "no Event about a failed sync",
    );
  },
);

withSetup(
  "an ImageSync relabeled from label shard A to B mid-copy: A cancels and writes nothing more, B syncs it, one manifest PUT",
  async (s) => {
    const shard = async (value: string) => {
      const op = await startOperator(s.kube, {
        insecureRegistries: [s.proxy.host, s.dst.host],
        watchLabelSelector: `${SHARD_KEY_LABEL} in (${value})`,
        leaderElection: {
          identity: `shard-${value}`,
          leaseNamespace: LEASE_NS,
          leaseName: "portager-cancel-test",
          leaseDurationMs: 3_000,
          renewDeadlineMs: 2_000,
          retryPeriodMs: 300,
        },
      });
      s.ops.push(op);
      return op;
    };
    const [a, b] = [await shard("a"), await shard("b")];
    for (const [op, id] of [[a, "a"], [b, "b"]] as const) {
      await waitFor(
        `shard ${id} working`,
        () => op.log().includes("shard gate open: working") || undefined,
        {
          timeoutMs: 30_000,
          describe: () => op.log().split("\n").slice(-10).join("\n"),
        },
      );
    }
    const obj = imageSync(NS, "moved", spec(s, "moved"));
    (obj.metadata as Record<string, unknown>).labels = { [SHARD_KEY_LABEL]: "a" };
    await s.kube.apply(obj);
    await waitCopyInFlight(s, "moved", a.log);

    // follow every write to the object from the relabel on
    const res = await s.kube.adminFetch(imageSyncPath(NS, "moved"), {
      method: "PATCH",
      headers: { "content-type": "application/merge-patch+json" },
      body: JSON.stringify({ metadata: { labels: { [SHARD_KEY_LABEL]: "b" } } }),
    });
    assert.equal(res.status, 200);
    const relabeled = await res.json() as StoredObject;
    const writes = watchObject(s.kube, "moved", relabeled.metadata.resourceVersion!);
    // unthrottled now: a copy A failed to cancel would finish quickly and PUT its manifest too
    await s.proxy.removeToxic("bw");
    await waitForReady(s.kube, NS, "moved", { ok: (c) => c.status === "True", logs: () => b.log() });
    await waitIdle(a, "shard a");
    await waitIdle(b, "shard b");

    const key = `${NS}/moved`;
    assert.deepEqual(manifestPuts(await requestsTo(s.dst, "moved")).length, 1, "exactly one manifest PUT");
    const cancelled = await waitFor("A to log the cancel", () => {
      const found = linesAbout(a, key).filter((l) => String(l.msg).startsWith("sync cancelled"));
      return found.length > 0 ? found : undefined;
    }, { describe: a.log });
    assert.deepEqual(cancelled.map((l) => [l.level, l.why]), [["info", "unselected"]], a.log());
    assert.match(String(cancelled[0].msg), /left this shard/);
    const aLines = linesAbout(a, key);
    const dropped = aLines.findIndex((l) => l.msg === "ImageSync deleted or no longer selected");
    assert.ok(dropped > 0, a.log());
    for (const l of aLines.slice(dropped + 1)) {
      assert.doesNotMatch(String(l.msg), /sync failed|sync finished|interrupted|could not write|syncing/i);
    }
    assert.ok(linesAbout(b, key).some((l) => l.msg === "sync finished"), "B synced it");
    assert.doesNotMatch(await a.metrics.expose(), /name="moved"/, "A keeps no series of it");

    // every status written since the relabel is B's: none says A's sync failed or was interrupted
    const seen = await writes.stop();
    for (const o of seen) {
      const syncing = condition(o, "Syncing");
      const ready = condition(o, "Ready");
      assert.notEqual(syncing?.reason, "Interrupted", JSON.stringify(o.status));
      assert.notEqual(ready?.status, "False", JSON.stringify(o.status));
    }
    assert.equal(condition(seen.at(-1), "Ready")?.status, "True");
    const warnings = (await eventsFor(s.kube, NS, "moved")).filter((e) => e.type === "Warning");
    assert.deepEqual(warnings.map((e) => [e.reason, e.message]), [], "no Event about a failed sync");
  },
);

/** Watches ImageSync `name` from `resourceVersion`; `stop` returns every version seen. */
function watchObject(kube: KubeCluster, name: string, resourceVersion: string) {
  const seen: StoredObject[] = [];
  const ac = new AbortController();
  const q = `?watch=1&resourceVersion=${resourceVersion}&fieldSelector=${
    encodeURIComponent(`metadata.name=${name}`)
  }`;
  const done = (async () => {
    const res = await kube.adminFetch(`${imageSyncPath(NS)}${q}`, { signal: ac.signal });
    let rest = "";
    const decoder = new TextDecoder();
    for await (const chunk of res.body!) {
      const lines = (rest + decoder.decode(chunk, { stream: true })).split("\n");
      rest = lines.pop()!;
      for (const line of lines) if (line.trim()) seen.push(JSON.parse(line).object);
    }
  })().then(() => undefined, (err: Error) => ac.signal.aborted ? undefined : err);
  return {
    async stop(): Promise<StoredObject[]> {
      await sleep(300); // the last write's event
      ac.abort();
      const err = await done;
      if (err) throw new Error(`the watch of ${name} failed: ${err.message}`, { cause: err });
      return seen;
    },
  };
}
