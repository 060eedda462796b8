/**
 * Fault suite (issue 9): the operator against real registries behind toxiproxy and an HTTP
 * fault layer, a real kube-apiserver that is killed and restarted, operators killed with
 * SIGTERM mid-copy and SIGKILL while leading, registries that lie, and credential hygiene
 * across redirects and token realms. Engine-level behaviour (retry reasons, redirects,
 * DigestMismatch of a single copy) is in tests/oci_copy_test.ts; this suite proves what a user
 * of the operator sees: conditions, status, Events, metrics and the destination registry.
 *
 * Every wait is bounded; every server and process started here is stopped.
 */

import assert from "node:assert/strict";
import { blobExists, getBlob, getManifest, type PushedImage, pushImage } from "./harness/fixtures.ts";
import { type FaultProxy, type FaultRule, startFaultProxy } from "./harness/fault_proxy.ts";
import { type KubeCluster, startKube } from "./harness/kube.ts";
import { DEFAULT_LEASE_NAME } from "../src/controller/operator.ts";
import {
  applyCrd,
  assertNoSecrets,
  clusterTexts,
  condition,
  dockerConfigSecret,
  eventsFor,
  getImageSync,
  imageSync,
  type InProcessOperator,
  type OperatorProcess,
  sleep,
  spawnElectingOperator,
  spawnMainRun,
  startOperator,
  type StoredObject,
  waitFor,
  waitForEvent,
  waitForReady,
} from "./harness/operator.ts";
import { type RegistryServer, startRegistry } from "./harness/registry.ts";
import { startToxiproxy, type ToxiProxy } from "./harness/toxiproxy.ts";

// ---------------------------------------------------------------------------------------------
// helpers

const NS = "default";

/** Spec of a one-image ImageSync from `source` to the anonymous `destination`. */
function spec(source: string, destination: string, name: string, tags: string[]): Record<string, unknown> {
  return {
    schedule: "@every 1h",
    source: { registry: source },
    destination: { registry: destination, auth: { method: "anonymous" } },
    images: [{ name, tags }],
  };
}

/** Asserts `reg` serves `img` at `repo:tag`, byte for byte, with every blob. */
async function assertComplete(
  reg: RegistryServer,
  repo: string,
  tag: string,
  img: PushedImage,
): Promise<void> {
  const got = await getManifest(reg, repo, tag);
  assert.equal(got.status, 200, `${repo}:${tag} missing at the destination`);
  assert.equal(got.digest, img.digest, `${repo}:${tag} has the wrong digest`);
  assert.deepEqual(got.bytes, img.manifestBytes);
  for (const b of img.blobs) {
    assert(await blobExists(reg, repo, b.digest), `blob ${b.digest} missing in ${repo}`);
  }
  await assertUploadsSettled(reg, repo);
}

/**
 * Asserts every blob upload session in `repo` that received bytes was either finished (PUT 201)
 * or cancelled (DELETE) by the client: no partial blob abandoned at the destination. CNCF
 * distribution keeps a cancelled session's files until its upload purger runs, so the
 * registry's access log — what the client did — is the evidence, not the storage directory.
 * (A session whose POST was cut short holds no bytes; the engine leaves those to the registry's
 * expiry, as it says in src/oci/upload.ts BlobUploader.start.)
 */
async function assertUploadsSettled(reg: RegistryServer, repo: string): Promise<void> {
  const log = (await reg.flushLog()).filter((l) => l.includes(`/v2/${repo}/blobs/uploads/`));
  const sessions = new Map<string, string[]>();
  for (const l of log) {
    const m = /^(\w+) \/v2\/\S+\/blobs\/uploads\/([0-9a-f-]{36})\S* (\d+)$/.exec(l);
    if (m) sessions.set(m[2], [...sessions.get(m[2]) ?? [], `${m[1]} ${m[3]}`]);
  }
  for (const [uuid, steps] of sessions) {
    const finished = steps.includes("PUT 201");
    const cancelled = steps.some((s) => s.startsWith("DELETE "));
    assert(
      finished || cancelled,
      `upload ${uuid} in ${repo} left partial (${steps.join(", ")}):\n${log.join("\n")}`,
    );
  }
}

/** The value of `portage_retries_total{name, kind}` in the operator's metrics (0 when absent). */
async function retriesOf(op: InProcessOperator, name: string, kind = "registry"): Promise<number> {
  const text = await op.metrics.expose();
  const re = new RegExp(
    `^portage_retries_total\\{[^}]*\\bname="${name}"[^}]*\\bkind="${kind}"[^}]*\\} (\\S+)$|` +
      `^portage_retries_total\\{[^}]*\\bkind="${kind}"[^}]*\\bname="${name}"[^}]*\\} (\\S+)$`,
    "m",
  );
  const m = re.exec(text);
  return m ? Number(m[1] ?? m[2]) : 0;
}

function isBlobGet(path: RegExp | string = ""): FaultRule["path"] {
  return new RegExp(`/blobs/sha256:${typeof path === "string" ? path : path.source}`);
}

function seenBlobGets(proxy: FaultProxy, digest: string): number {
  return proxy.seen.filter((s) => s.method === "GET" && s.path.includes(`/blobs/${digest}`)).length;
}

const ready = (c: { status: string }) => c.status === "True";

// ---------------------------------------------------------------------------------------------

Deno.test("registry faults: latency, bandwidth, reset and stall mid-blob, 5xx, 429 — every sync completes, retries counted, nothing partial", async () => {
  const kube = await startKube();
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const toxi = await startToxiproxy();
  const proxies: FaultProxy[] = [];
  let op: InProcessOperator | undefined;
  try {
    await applyCrd(kube);
    // one recorder proxy (no rules) per toxiproxy proxy: it shows which requests arrived
    const recorder = () => {
      const p = startFaultProxy(src);
      proxies.push(p);
      return p;
    };
    const big = 600_000;
    const cases = ["slow", "throttled", "reset", "stall", "flaky", "ratelimited"];
    const images: Record<string, PushedImage> = {};
    for (const [i, c] of cases.entries()) {
      images[c] = await pushImage(src, { repository: `faults/${c}`, tag: "v1" }, {
        seed: 900 + i,
        layers: [big, 2048],
      });
    }
    const recSlow = recorder(), recBw = recorder(), recReset = recorder(), recStall = recorder();
    const slow = await toxi.createProxy("slow", recSlow.host);
    const throttled = await toxi.createProxy("throttled", recBw.host);
    const reset = await toxi.createProxy("reset", recReset.host);
    const stall = await toxi.createProxy("stall", recStall.host);
    await slow.addToxic({ name: "latency", type: "latency", attributes: { latency: 150, jitter: 50 } });
    await slow.addToxic({
      name: "slicer",
      type: "slicer",
      attributes: { average_size: 1500, size_variation: 500, delay: 200 },
    });
    await throttled.addToxic({ name: "bw", type: "bandwidth", attributes: { rate: 400 } });
    // the reset and stall proxies are throttled too, so a blob is still streaming when the fault hits
    await reset.addToxic({ name: "bw", type: "bandwidth", attributes: { rate: 300 } });
    await stall.addToxic({ name: "bw", type: "bandwidth", attributes: { rate: 300 } });

    // HTTP faults: each rule answers once, so each costs exactly one retry
    const flaky = startFaultProxy(src, [
      { method: "HEAD", path: /\/manifests\//, times: 1, fault: { kind: "status", status: 503 } },
      { method: "GET", path: /\/manifests\//, times: 1, fault: { kind: "status", status: 500 } },
      { method: "GET", path: isBlobGet(), times: 1, fault: { kind: "status", status: 502 } },
    ]);
    const rateLimited = startFaultProxy(src, [
      { method: "GET", path: /\/manifests\//, times: 1, fault: { kind: "rateLimit", retryAfterSeconds: 1 } },
      { method: "GET", path: isBlobGet(), times: 1, fault: { kind: "rateLimit", retryAfterSeconds: 1 } },
    ]);
    proxies.push(flaky, rateLimited);

    op = await startOperator(kube, { maxConcurrentSyncs: cases.length });
    const hosts: Record<string, string> = {
      slow: slow.host,
      throttled: throttled.host,
      reset: reset.host,
      stall: stall.host,
      flaky: flaky.host,
      ratelimited: rateLimited.host,
    };

    // A reset (TCP RST) and a stall (no data, then close) hit the big blob mid-stream, once:
    // the fault goes on while the first GET streams and comes off when the retry arrives.
    const midBlob = async (proxy: ToxiProxy, rec: FaultProxy, img: PushedImage, fault: "reset" | "stall") => {
      const digest = img.blobs[1].digest;
      await waitFor(
        `first GET of the big blob through ${proxy.name}`,
        () => seenBlobGets(rec, digest) >= 1 || undefined,
      );
      await sleep(300); // some of the 600 kB are through (300 kB/s)
      await proxy.addToxic(
        fault === "reset"
          ? { name: "fault", type: "reset_peer", attributes: { timeout: 0 } }
          : { name: "fault", type: "timeout", attributes: { timeout: 1000 } },
      );
      await waitFor(
        `the retried GET of the big blob through ${proxy.name}`,
        () => seenBlobGets(rec, digest) >= 2 || undefined,
        {
          timeoutMs: 30_000,
        },
      );
      await proxy.removeToxic("fault");
    };
    const faulting = [
      midBlob(reset, recReset, images.reset, "reset"),
      midBlob(stall, recStall, images.stall, "stall"),
    ];

    for (const c of cases) {
      await kube.apply(imageSync(NS, c, spec(hosts[c], dst.host, `faults/${c}`, ["v1"])));
    }
    await Promise.all(faulting);
    const results: Record<string, StoredObject> = {};
    for (const c of cases) {
      results[c] = await waitForReady(kube, NS, c, { ok: ready, timeoutMs: 90_000, logs: op.log });
    }

    for (const c of cases) {
      const tags = results[c].status?.images?.[0].tags ?? [];
      assert.deepEqual(
        tags.map((t) => [t.tag, t.synced, t.sourceDigest]),
        [["v1", true, images[c].digest]],
        c,
      );
      await assertComplete(dst, `faults/${c}`, "v1", images[c]);
      const ev = await waitForEvent(kube, NS, c, "ImageSynced");
      assert.match(ev.message, new RegExp(`faults/${c}:v1 → .*faults/${c}:v1`));
    }

    // every HTTP fault cost exactly one retry, and the metrics say so
    assert.deepEqual(flaky.hits, [1, 1, 1]);
    assert.deepEqual(rateLimited.hits, [1, 1]);
    assert.equal(await retriesOf(op, "flaky"), 3);
    assert.equal(await retriesOf(op, "ratelimited"), 2);
    // Retry-After: 1 was honoured (the retry came at least a second later)
    for (const limited of rateLimited.seen.filter((s) => s.status === 429)) {
      const retry = rateLimited.seen.find((s) =>
        s.time >= limited.time && s !== limited && s.path === limited.path
      );
      assert(retry, `no retry of ${limited.path}`);
      assert(
        retry.time - limited.time >= 950,
        `${limited.path} retried ${retry.time - limited.time} ms after a 429 with Retry-After: 1`,
      );
    }
    // the cut streams were restarted (a retry each, at least), the slow ones needed none to finish
    assert(seenBlobGets(recReset, images.reset.blobs[1].digest) >= 2);
    assert(seenBlobGets(recStall, images.stall.blobs[1].digest) >= 2);
    assert((await retriesOf(op, "reset")) >= 1, await op.metrics.expose());
    assert((await retriesOf(op, "stall")) >= 1, await op.metrics.expose());

    // the same numbers on the operator's /metrics endpoint
    const scraped = await (await fetch(`${op.url}/metrics`)).text();
    assert.match(scraped, /portage_retries_total\{[^}]*name="flaky"[^}]*\} 3/);
    assert.match(scraped, /portage_sync_total\{[^}]*name="stall"[^}]*status="success"[^}]*\} 1/);
    assert.equal(op.exited(), false, "the operator keeps running");
    assertNoSecrets([{ where: "operator log", text: op.log() }, ...await clusterTexts(kube)], []);
  } finally {
    await op?.stop();
    for (const p of proxies) await p.stop();
    await toxi.stop();
    await Promise.all([src.stop(), dst.stop()]);
    await kube.stop();
  }
});

Deno.test("a registry that lies (blob bytes ≠ digest, digest header ≠ manifest): DigestMismatch, nothing tagged", async () => {
  const kube = await startKube();
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const proxies: FaultProxy[] = [];
  let op: InProcessOperator | undefined;
  try {
    await applyCrd(kube);
    const blobLie = await pushImage(src, { repository: "lie/blob", tag: "v1" }, {
      seed: 31,
      layers: [50_000],
    });
    const headerLie = await pushImage(src, { repository: "lie/header", tag: "v1" }, { seed: 32 });
    const honest = await pushImage(src, { repository: "lie/honest", tag: "v1" }, { seed: 33 });
    const victim = blobLie.blobs[1].digest;
    const lying = startFaultProxy(src, [
      { method: "GET", path: isBlobGet(victim.slice("sha256:".length)), fault: { kind: "corruptBody" } },
      // another image's manifest under this one's Docker-Content-Digest
      {
        method: "GET",
        path: /^\/v2\/lie\/header\/manifests\//,
        fault: {
          kind: "respond",
          respond: () =>
            new Response(honest.manifestBytes as Uint8Array<ArrayBuffer>, {
              headers: { "content-type": honest.mediaType, "docker-content-digest": headerLie.digest },
            }),
        },
      },
    ]);
    proxies.push(lying);
    op = await startOperator(kube);
    await kube.apply(imageSync(NS, "blob-lie", spec(lying.host, dst.host, "lie/blob", ["v1"])));
    await kube.apply(imageSync(NS, "header-lie", spec(lying.host, dst.host, "lie/header", ["v1"])));
    await kube.apply(imageSync(NS, "honest", spec(lying.host, dst.host, "lie/honest", ["v1"])));

    for (const name of ["blob-lie", "header-lie"]) {
      const obj = await waitForReady(kube, NS, name, { logs: op.log });
      const ready = condition(obj, "Ready")!;
      assert.equal(ready.status, "False");
      assert.equal(ready.reason, "SyncFailed");
      assert.match(ready.message, /digest/i);
      const tag = obj.status?.images?.[0].tags?.[0];
      assert.equal(tag?.synced, false);
      assert.equal(tag?.reason, "DigestMismatch", JSON.stringify(tag));
      assert(tag?.error?.includes(lying.host), tag?.error);
      const ev = await waitForEvent(kube, NS, name, "SyncFailed");
      assert.equal(ev.type, "Warning");
      assert.match(ev.message, /digest/i);
    }
    // the honest image through the same proxy is unaffected
    await waitForReady(kube, NS, "honest", { ok: ready, logs: op.log });
    await assertComplete(dst, "lie/honest", "v1", honest);
    assert.equal(op.exited(), false);
    // The lying ones are retried with backoff for as long as the operator runs; stop it, then
    // check that no attempt tagged anything or left an upload half done.
    await op.stop();
    op = undefined;
    for (const repo of ["lie/blob", "lie/header"]) {
      assert.equal((await getManifest(dst, repo, "v1")).status, 404, `${repo}:v1 must not be tagged`);
      const manifestPuts = (await dst.flushLog()).filter((l) => l.startsWith(`PUT /v2/${repo}/manifests/`));
      assert.deepEqual(manifestPuts, []);
      await assertUploadsSettled(dst, repo);
    }
    assert.equal(await blobExists(dst, "lie/blob", victim), false, "the corrupt blob was not committed");
    // nothing was copied on the word of a manifest that failed verification
    for (const b of [...headerLie.blobs, ...honest.blobs]) {
      assert.equal(await blobExists(dst, "lie/header", b.digest), false, `blob ${b.digest} in lie/header`);
    }
  } finally {
    await op?.stop();
    for (const p of proxies) await p.stop();
    await Promise.all([src.stop(), dst.stop()]);
    await kube.stop();
  }
});

Deno.test("SIGTERM mid-copy of a large blob: the tag keeps the old digest, a restarted operator finishes the copy", async () => {
  const kube = await startKube();
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const toxi = await startToxiproxy();
  const dir = await Deno.makeTempDir({ prefix: "portager-sigterm-" });
  const procs: OperatorProcess[] = [];
  try {
    await applyCrd(kube);
    const proxy = await toxi.createProxy("src", src.host);
    const old = await pushImage(src, { repository: "big/app", tag: "1.0" }, { seed: 41 });
    const run = (n: number) => {
      const p = spawnMainRun([
        `--kubeconfig=${kube.kubeconfigPath}`,
        "--metrics-addr=127.0.0.1:0",
        "--log-format=json",
        "--grace-period=1s",
      ], `${dir}/operator-${n}.log`);
      procs.push(p);
      return p;
    };
    const first = run(1);
    await kube.apply(imageSync(NS, "big", spec(proxy.host, dst.host, "big/app", ["1.0"])));
    let obj = await waitForReady(kube, NS, "big", { ok: ready, timeoutMs: 60_000 });
    assert.equal(obj.status?.images?.[0].tags?.[0].sourceDigest, old.digest);
    assert.equal((await getManifest(dst, "big/app", "1.0")).digest, old.digest);

    // A new 3 MB image under the same tag, pulled at 300 kB/s: the copy takes ~10 s.
    const fresh = await pushImage(src, { repository: "big/app", tag: "1.0" }, {
      seed: 42,
      layers: [3_000_000],
    });
    await proxy.addToxic({ name: "bw", type: "bandwidth", attributes: { rate: 300 } });
    const mark = (await dst.flushLog()).length;
    await kube.apply({
      ...imageSync(NS, "big", spec(proxy.host, dst.host, "big/app", ["1.0"])),
      metadata: { name: "big", namespace: NS, annotations: { "portager.portager.io/sync-now": "true" } },
    });
    // mid-copy: the destination has opened the upload of the big blob
    await waitFor("the upload of the big blob to start", async () => {
      const log = (await dst.flushLog()).slice(mark);
      return log.some((l) => /^POST \/v2\/big\/app\/blobs\/uploads\/ 202$/.test(l)) || undefined;
    }, { timeoutMs: 30_000, describe: () => first.log() });
    const status = await first.kill("SIGTERM");
    assert.equal(status.code, 0, `operator exit after SIGTERM:\n${await first.log()}`);
    const firstLog = await first.log();
    assert.match(firstLog, /grace period over; interrupting in-flight syncs/);
    assert.match(firstLog, /operator stopped/);

    // never a broken image: the tag still holds the old digest, complete
    await assertComplete(dst, "big/app", "1.0", old);
    obj = (await getImageSync(kube, NS, "big"))!;
    const syncing = condition(obj, "Syncing");
    assert.equal(syncing?.reason, "Interrupted", JSON.stringify(obj.status));
    assert.equal(
      obj.status?.images?.[0].tags?.[0].sourceDigest,
      old.digest,
      "status still names the old digest",
    );

    // restart (no throttling now): the interrupted sync resumes and completes
    await proxy.removeToxic("bw");
    const second = run(2);
    obj = await waitForReady(kube, NS, "big", {
      ok: (_c, o) => o.status?.images?.[0].tags?.[0].sourceDigest === fresh.digest && _c.status === "True",
      timeoutMs: 60_000,
      logs: () => "",
    }).catch(async (e) => {
      throw new Error(`${e.message}\n--- second operator ---\n${await second.log()}`);
    });
    assert.equal(condition(obj, "Syncing")?.status, "False");
    await assertComplete(dst, "big/app", "1.0", fresh);
    assert.equal((await second.kill("SIGTERM")).code, 0);
    assertNoSecrets([
      { where: "operator 1 log", text: firstLog },
      { where: "operator 2 log", text: await second.log() },
      ...await clusterTexts(kube),
    ], []);
  } finally {
    for (const p of procs) await p.kill("SIGKILL");
    await toxi.stop();
    await Promise.all([src.stop(), dst.stop()]);
    await kube.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Merge-patches an ImageSync as admin (metadata or spec), returning the stored object. */
async function patchImageSync(kube: KubeCluster, name: string, patch: unknown): Promise<StoredObject> {
  const res = await kube.adminFetch(
    `/apis/portager.portager.io/v1alpha1/namespaces/${NS}/imagesyncs/${name}`,
    {
      method: "PATCH",
      headers: { "content-type": "application/merge-patch+json" },
      body: JSON.stringify(patch),
    },
  );
  if (!res.ok) throw new Error(`PATCH ${name} → ${res.status}: ${await res.text()}`);
  return await res.json();
}

Deno.test("kube-apiserver killed and restarted under a running operator: watch resumes, no status lost, 409s retried", async () => {
  const kube = await startKube();
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const toxi = await startToxiproxy();
  let op: InProcessOperator | undefined;
  try {
    await applyCrd(kube);
    const proxy = await toxi.createProxy("src", src.host);
    const small = await pushImage(src, { repository: "kill/small", tag: "v1" }, { seed: 51 });
    const small2 = await pushImage(src, { repository: "kill/small", tag: "v2" }, { seed: 52 });
    const slowImg = await pushImage(src, { repository: "kill/slow", tag: "v1" }, {
      seed: 53,
      layers: [1_200_000],
    });
    const conflictImg = await pushImage(src, { repository: "kill/conflict", tag: "v1" }, {
      seed: 54,
      layers: [1_200_000],
    });
    const after = await pushImage(src, { repository: "kill/after", tag: "v1" }, { seed: 55 });
    op = await startOperator(kube, { backoffBaseMs: 300, backoffMaxMs: 3_000 });

    await kube.apply(imageSync(NS, "before", spec(proxy.host, dst.host, "kill/small", ["v1"])));
    await waitForReady(kube, NS, "before", { ok: ready, logs: op.log });

    // 1. A sync in flight when the apiserver dies; its copy ends while the apiserver is down,
    //    so the final status write fails and must not be lost.
    await proxy.addToxic({ name: "bw", type: "bandwidth", attributes: { rate: 300 } });
    await kube.apply(imageSync(NS, "slow", spec(proxy.host, dst.host, "kill/slow", ["v1"])));
    await waitFor("slow to be Syncing", async () => {
      const o = await getImageSync(kube, NS, "slow");
      return condition(o, "Syncing")?.status === "True" || undefined;
    });
    // A write to another kind after the informer's last ImageSync event moves etcd's revision
    // past it, so the restarted apiserver's watch cache starts later than the informer's
    // resourceVersion and the resumed watch is answered 410 Gone (otherwise whether it is
    // depends on whether an Event happened to be written last).
    await kube.apply({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "advance-revision", namespace: NS },
      data: { at: String(Date.now()) },
    });
    await kube.restartApiserver({
      whileDown: async () => {
        await proxy.removeToxic("bw");
        await waitFor("the slow copy to finish while the apiserver is down", async () => {
          return (await getManifest(dst, "kill/slow", "v1")).status === 200 || undefined;
        }, { timeoutMs: 30_000 });
        // the operator notices: its status write or its watch fails
        await waitFor(
          "the operator to see the apiserver gone",
          () => /reconcile failed|watch failed|list failed/.test(op!.log()) || undefined,
          { timeoutMs: 20_000 },
        );
      },
    });
    let obj = await waitForReady(kube, NS, "slow", { ok: ready, timeoutMs: 60_000, logs: op.log });
    assert.deepEqual(
      obj.status?.images?.[0].tags?.map((t) => [t.tag, t.synced, t.sourceDigest]),
      [["v1", true, slowImg.digest]],
    );
    assert.equal(condition(obj, "Syncing")?.status, "False");
    await assertComplete(dst, "kill/slow", "v1", slowImg);

    // 2. The watch resumed: a new object and a spec edit made after the restart are seen.
    await kube.apply(imageSync(NS, "after", spec(proxy.host, dst.host, "kill/after", ["v1"])));
    await patchImageSync(kube, "before", { spec: { images: [{ name: "kill/small", tags: ["v1", "v2"] }] } });
    await waitForReady(kube, NS, "after", { ok: ready, logs: op.log });
    obj = await waitForReady(kube, NS, "before", { ok: ready, logs: op.log });
    assert.deepEqual(obj.status?.images?.[0].tags?.map((t) => [t.tag, t.sourceDigest]), [
      ["v1", small.digest],
      ["v2", small2.digest],
    ]);
    await assertComplete(dst, "kill/after", "v1", after);

    // 3. Someone else writes the object while a sync runs: the final status patch carries the
    //    resourceVersion of the Syncing write, so it gets 409 Conflict and must be retried.
    await proxy.addToxic({ name: "bw", type: "bandwidth", attributes: { rate: 300 } });
    await kube.apply(imageSync(NS, "conflict", spec(proxy.host, dst.host, "kill/conflict", ["v1"])));
    const syncingRv = await waitFor("conflict to be Syncing", async () => {
      const o = await getImageSync(kube, NS, "conflict");
      return condition(o, "Syncing")?.status === "True" ? o!.metadata.resourceVersion : undefined;
    });
    const labelled = await patchImageSync(kube, "conflict", { metadata: { labels: { team: "mirror" } } });
    assert.notEqual(labelled.metadata.resourceVersion, syncingRv);
    await proxy.removeToxic("bw");
    obj = await waitForReady(kube, NS, "conflict", { ok: ready, logs: op.log });
    assert.equal(obj.metadata.labels?.team, "mirror", "the other writer's change survives");
    assert.deepEqual(obj.status?.images?.[0].tags?.map((t) => [t.synced, t.sourceDigest]), [[
      true,
      conflictImg.digest,
    ]]);
    // retried inside the same reconcile: one sync, no failure
    await waitForEvent(kube, NS, "conflict", "SyncComplete");
    const completes = (await eventsFor(kube, NS, "conflict")).filter((e) => e.reason === "SyncComplete");
    assert.deepEqual(completes.map((e) => e.count ?? 1), [1]);
    assert.doesNotMatch(
      op.lines.filter((l) => l.includes('"default/conflict"')).join("\n"),
      /reconcile failed/,
    );
    // the watch broke with the apiserver and came back through a relist (its resourceVersion
    // predates the restarted apiserver's watch cache: 410 Gone)
    assert.match(op.log(), /"msg":"watch (broke|failed)/);
    assert.match(op.log(), /410 Gone\); relisting/);
    assert.equal(op.exited(), false);
  } finally {
    await op?.stop();
    await toxi.stop();
    await Promise.all([src.stop(), dst.stop()]);
    await kube.stop();
  }
});

Deno.test("leader killed: the standby takes over within the lease duration and syncs", async () => {
  const kube = await startKube();
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const dir = await Deno.makeTempDir({ prefix: "portager-leader-" });
  const procs: OperatorProcess[] = [];
  const leaseDurationMs = 4_000, renewDeadlineMs = 3_000, retryPeriodMs = 500;
  try {
    await applyCrd(kube);
    const img = await pushImage(src, { repository: "lead/app", tag: "v1" }, { seed: 61 });
    const ids = ["op-a", "op-b"];
    for (const identity of ids) {
      procs.push(spawnElectingOperator({
        kubeconfig: kube.kubeconfigPath,
        identity,
        leaseNamespace: NS,
        leaseDurationMs,
        renewDeadlineMs,
        retryPeriodMs,
      }, `${dir}/${identity}.log`));
    }
    const leasePath = `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${DEFAULT_LEASE_NAME}`;
    const lease = async () => {
      const res = await kube.adminFetch(leasePath);
      if (!res.ok) {
        await res.body?.cancel();
        return undefined;
      }
      return (await res.json()).spec as { holderIdentity?: string; leaseTransitions?: number };
    };
    const logs = async () => (await Promise.all(procs.map((p) => p.log()))).join("\n--- next ---\n");
    const leader = await waitFor("a leader", async () => {
      const h = (await lease())?.holderIdentity;
      return h && ids.includes(h) ? h : undefined;
    }, { timeoutMs: 30_000, describe: logs });
    const standby = ids.find((i) => i !== leader)!;
    const [leaderProc, standbyProc] = leader === ids[0] ? procs : [procs[1], procs[0]];

    await kube.apply(imageSync(NS, "lead", spec(src.host, dst.host, "lead/app", ["v1"])));
    await waitForReady(kube, NS, "lead", { ok: ready, timeoutMs: 60_000 });
    assert.doesNotMatch(await standbyProc.log(), /"msg":"syncing"/, "the standby does not reconcile");
    const transitions = (await lease())?.leaseTransitions ?? 0;

    // kill -9: no graceful release, the lease must expire
    const killedAt = Date.now();
    await leaderProc.kill("SIGKILL");
    const tookOverAt = await waitFor(`${standby} to take the lease`, async () => {
      return (await lease())?.holderIdentity === standby ? Date.now() : undefined;
    }, { timeoutMs: 30_000, intervalMs: 100, describe: logs });
    const took = tookOverAt - killedAt;
    // it waits for the lease to expire (a record unchanged for a lease duration, timed from
    // the last renewal it saw, at most a retry period before the kill) ...
    assert(
      took >= leaseDurationMs - 2 * retryPeriodMs,
      `took over after ${took} ms: before the lease expired`,
    );
    // ... and then takes it at one of its next retries: well within a second lease duration
    // (client-go's default timings would be 15 s; a standby that ignored expiry would never)
    assert(
      took <= 2 * leaseDurationMs,
      `took over ${took} ms after the kill; lease duration ${leaseDurationMs} ms`,
    );
    assert.equal((await lease())?.leaseTransitions, transitions + 1);

    // the new leader works: a sync-now is served by it
    await patchImageSync(kube, "lead", {
      metadata: { annotations: { "portager.portager.io/sync-now": "true" } },
    });
    await waitFor(
      "the new leader to sync",
      async () => /"msg":"syncing"/.test(await standbyProc.log()) || undefined,
      {
        timeoutMs: 30_000,
        describe: logs,
      },
    );
    const obj = await waitForReady(kube, NS, "lead", {
      ok: (c, o) => c.status === "True" && !o.metadata.annotations?.["portager.portager.io/sync-now"],
    });
    assert.equal(obj.status?.images?.[0].tags?.[0].sourceDigest, img.digest);
    await waitForEvent(kube, NS, "lead", "SyncNowTriggered");
    // a graceful stop releases the lease at once
    assert.equal((await standbyProc.kill("SIGTERM")).code, 0, await standbyProc.log());
    assert.equal((await lease())?.holderIdentity ?? "", "");
  } finally {
    for (const p of procs) await p.kill("SIGKILL");
    await Promise.all([src.stop(), dst.stop()]);
    await kube.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("credential hygiene: no Authorization to a redirect target on another host, no Basic credentials to a realm the registry did not name, nothing in logs, Events or status", async () => {
  const kube = await startKube();
  const src = await startRegistry("basic");
  const dst = await startRegistry("bearer", { users: { bob: `bob-${crypto.randomUUID()}` } });
  const proxies: FaultProxy[] = [];
  let op: InProcessOperator | undefined;
  // "object storage" on another host (127.0.0.2) that serves blobs; records what it was sent
  const storeSeen: Array<string | null> = [];
  const store = Deno.serve({ hostname: "127.0.0.2", port: 0, onListen() {} }, async (req) => {
    storeSeen.push(req.headers.get("authorization"));
    const [repo, digest] = new URL(req.url).pathname.slice(1).split("/blobs/");
    return new Response((await getBlob(src, repo, digest)) as Uint8Array<ArrayBuffer>);
  });
  try {
    await applyCrd(kube);
    const img = await pushImage(src, { repository: "cdn/app", tag: "v1" }, { seed: 71, layers: [30_000] });
    // the source registry redirects blob downloads to the store, as registries backed by S3 or GCS do
    const viaCdn = startFaultProxy(src, [{
      method: "GET",
      path: /\/blobs\/sha256:/,
      fault: {
        kind: "respond",
        respond: (_req, url) =>
          new Response(null, {
            status: 307,
            headers: {
              location: `http://127.0.0.2:${store.addr.port}/${url.pathname.replace(/^\/v2\//, "")}`,
            },
          }),
      },
    }]);
    proxies.push(viaCdn);
    const wrongPassword = `wrong-${crypto.randomUUID()}`;
    await kube.apply(dockerConfigSecret(NS, "creds", {
      [viaCdn.host]: { username: src.username!, password: src.password! },
      [dst.host]: { username: dst.username!, password: dst.password! },
    }));
    await kube.apply(dockerConfigSecret(NS, "wrong-creds", {
      [viaCdn.host]: { username: src.username!, password: wrongPassword },
    }));
    op = await startOperator(kube);
    await kube.apply(imageSync(NS, "hygiene", {
      schedule: "@every 1h",
      source: { registry: viaCdn.host, authSecretRef: { name: "creds" } },
      destination: { registry: dst.host, auth: { method: "secret", secretRef: { name: "creds" } } },
      images: [{ name: "cdn/app", tags: ["v1"] }],
    }));
    await kube.apply(imageSync(NS, "wrong-password", {
      schedule: "@every 1h",
      source: { registry: viaCdn.host, authSecretRef: { name: "wrong-creds" } },
      destination: { registry: dst.host, auth: { method: "secret", secretRef: { name: "creds" } } },
      images: [{ name: "cdn/app", tags: ["v1"] }],
    }));
    await waitForReady(kube, NS, "hygiene", { ok: ready, logs: op.log });
    await assertComplete(dst as RegistryServer, "cdn/app", "v1", img);
    const refused = await waitForReady(kube, NS, "wrong-password", { logs: op.log });
    assert.equal(condition(refused, "Ready")?.status, "False");
    assert.equal(
      refused.status?.images?.[0].tags?.[0].reason,
      "Unauthorized",
      JSON.stringify(refused.status),
    );

    // the redirect target got the blobs, never the source registry's credentials
    assert(storeSeen.length >= img.blobs.length, `store saw ${storeSeen.length} requests`);
    assert.deepEqual(storeSeen.filter((a) => a !== null), [], "Authorization sent to another host");
    const blobGets = viaCdn.seen.filter((s) => s.method === "GET" && s.path.includes("/blobs/"));
    assert(blobGets.length > 0 && blobGets.every((s) => s.authorization?.startsWith("Basic ")));

    // the destination's token realm saw only the destination's user, never the source's
    const tokenRequests = dst.tokenRequests ?? [];
    assert(tokenRequests.length > 0);
    for (const r of tokenRequests) {
      assert(
        !r.hadAuthorization || r.user === dst.username,
        `token request with foreign credentials: ${JSON.stringify(r)}`,
      );
    }
    assert(tokenRequests.some((r) => r.user === dst.username && r.status === 200));

    // and no secret in what a user or log collector sees
    await waitForEvent(kube, NS, "wrong-password", "SyncFailed");
    assertNoSecrets([{ where: "operator log", text: op.log() }, ...await clusterTexts(kube)], [
      { secret: src.password!, user: src.username },
      { secret: wrongPassword, user: src.username },
      { secret: dst.password!, user: dst.username },
    ]);
    assert.equal(op.exited(), false);
  } finally {
    await op?.stop();
    for (const p of proxies) await p.stop();
    await store.shutdown();
    await Promise.all([src.stop(), dst.stop()]);
    await kube.stop();
  }
});
