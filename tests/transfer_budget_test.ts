/**
 * The process's transfer budget (`--max-transfers`, `SyncOptions.transferBudget`) against real
 * CNCF distribution registries: several ImageSyncs synced at once through one counting proxy in
 * front of the destination never have more blob uploads in flight than the budget, each copier
 * keeping its own limit under it, and every image arrives intact. A budget of one, with
 * multi-arch indexes, platform filters (a copier each) and blobs shared between tags, proves no
 * transfer holds a slot while waiting for another.
 */

import assert from "node:assert/strict";
import { getBlob, getManifest, type PushedImage, pushImage, sha256Digest } from "./harness/fixtures.ts";
import { forward } from "./harness/fault_proxy.ts";
import { type RegistryServer, startRegistry } from "./harness/registry.ts";
import type { ImageSyncSpec } from "../src/api/mod.ts";
import { Limiter } from "../src/oci/mod.ts";
import { syncImageSync, type SyncReport } from "../src/sync/mod.ts";

const ANONYMOUS = { resolve: () => Promise.resolve(undefined) };

/** How long the proxy holds each upload request's answer, so uploads of one sync overlap. */
const HOLD_MS = 40;

/**
 * A proxy in front of `upstream` counting blob upload requests (POST, PATCH, PUT under
 * `/blobs/uploads/`) in flight: from the request's arrival until its answer is sent. Each is
 * answered `HOLD_MS` late, so without a budget the copiers' transfers pile up.
 */
function countingProxy(upstream: RegistryServer) {
  const base = upstream.url.replace(/\/+$/, "");
  const state = { now: 0, max: 0, uploads: 0 };
  let self = "";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const upload = req.method !== "GET" && req.method !== "HEAD" && url.pathname.includes("/blobs/uploads/");
    if (upload) {
      state.uploads++;
      state.max = Math.max(state.max, ++state.now);
    }
    try {
      const res = await forward(base, self, req, url);
      if (!upload) return res;
      const body = await res.bytes();
      await new Promise((r) => setTimeout(r, HOLD_MS));
      return new Response(body, { status: res.status, headers: res.headers });
    } finally {
      if (upload) state.now--;
    }
  });
  self = `http://127.0.0.1:${server.addr.port}`;
  return {
    host: `127.0.0.1:${server.addr.port}`,
    state,
    reset() {
      Object.assign(state, { now: 0, max: 0, uploads: 0 });
    },
    stop: () => server.shutdown(),
  };
}

/** Three ImageSyncs' worth of source images: `app` tags sharing base layers, and a multi-arch index. */
async function pushSources(src: RegistryServer): Promise<Map<string, PushedImage>> {
  const pushed = new Map<string, PushedImage>();
  for (const [i, tag] of ["1", "2", "3"].entries()) {
    pushed.set(
      `app:${tag}`,
      await pushImage(src, { repository: "lib/app", tag }, {
        seed: 10 + i,
        layers: [32768, 16384, 8192],
        sharedLayers: [65536, 4096],
      }),
    );
  }
  pushed.set(
    "multi:1",
    await pushImage(src, { repository: "lib/multi", tag: "1" }, {
      seed: 40,
      layers: [24576, 12288],
      sharedLayers: [49152],
      platforms: ["linux/amd64", "linux/arm64", "linux/s390x"],
    }),
  );
  return pushed;
}

/** The three specs, writing under `prefix` at `dstHost`; the third filters platforms (a copier more). */
function specs(src: RegistryServer, dstHost: string, prefix: string): ImageSyncSpec[] {
  const spec = (name: string, images: ImageSyncSpec["images"]): ImageSyncSpec => ({
    schedule: "@daily",
    source: { registry: `${src.host}/lib` },
    destination: { registry: `${dstHost}/${prefix}/${name}`, auth: { method: "anonymous" } },
    images,
  });
  return [
    spec("a", [{ name: "app", tags: ["1", "2", "3"] }]),
    spec("b", [{ name: "app", tags: ["1", "2"] }, { name: "multi", tags: ["1"] }]),
    spec("c", [
      { name: "multi", tags: ["1"] },
      { name: "app", tags: ["3"], platforms: ["linux/amd64"] },
    ]),
  ];
}

/** Runs the specs at once (as the operator's workers do), sharing `budget` when given. */
function syncAll(all: ImageSyncSpec[], budget?: Limiter): Promise<SyncReport[]> {
  return Promise.all(all.map((spec) =>
    syncImageSync(spec, {
      sourceCredentials: ANONYMOUS,
      destinationCredentials: ANONYMOUS,
      transferBudget: budget,
      // a deadlock would end here as a Timeout failure, not a hung test
      limits: { syncTimeoutMs: 120_000 },
    })
  ));
}

/** Every tag of every report synced, and the destination serving each image byte for byte. */
async function assertIntact(
  reports: SyncReport[],
  dst: RegistryServer,
  prefix: string,
  pushed: Map<string, PushedImage>,
): Promise<void> {
  for (const r of reports) {
    for (const image of r.images) {
      for (const t of image.tags) {
        assert.equal(t.action, "copied", `${image.name}:${t.tag}: ${t.error ?? ""}`);
      }
    }
    assert.equal(r.ok, true);
  }
  const expect: Array<[string, string, string]> = [
    ["a", "app", "1"],
    ["a", "app", "2"],
    ["a", "app", "3"],
    ["b", "app", "1"],
    ["b", "app", "2"],
    ["b", "multi", "1"],
    ["c", "multi", "1"],
  ];
  for (const [sync, name, tag] of expect) {
    const img = pushed.get(`${name}:${tag}`)!;
    const repo = `${prefix}/${sync}/${name}`;
    const got = await getManifest(dst, repo, tag);
    assert.equal(got.digest, img.digest, `${repo}:${tag}`);
    for (const b of img.blobs) {
      const bytes = await getBlob(dst, repo, b.digest);
      assert.equal(await sha256Digest(bytes), b.digest, `${repo} blob ${b.digest}`);
    }
    for (const child of img.children ?? []) {
      assert.equal((await getManifest(dst, repo, child.digest)).digest, child.digest);
    }
  }
  // the filtered copy holds the amd64 image's blobs (app:3 is a single amd64 image: copied as is)
  const filtered = pushed.get("app:3")!;
  assert.equal((await getManifest(dst, `${prefix}/c/app`, "3")).digest, filtered.digest);
}

Deno.test("several syncs at once never upload more blobs at once than the process's budget; images arrive intact", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const proxy = countingProxy(dst);
  try {
    const pushed = await pushSources(src);

    // without a budget the three syncs' copiers (4 transfers each) overlap well past 2
    const free = await syncAll(specs(src, proxy.host, "free"));
    await assertIntact(free, dst, "free", pushed);
    assert.ok(
      proxy.state.max > 2,
      `without a budget ${proxy.state.max} uploads overlapped; the test needs > 2`,
    );

    proxy.reset();
    const budget = new Limiter(2);
    const capped = await syncAll(specs(src, proxy.host, "capped"), budget);
    await assertIntact(capped, dst, "capped", pushed);
    assert.ok(proxy.state.uploads > 0);
    assert.ok(proxy.state.max <= 2, `${proxy.state.max} uploads in flight at once, over the budget of 2`);
    assert.equal(proxy.state.max, 2, "the budget is used");
    assert.equal(budget.active, 0, "every slot given back");
    assert.equal(budget.waiting, 0);

    // a budget of one: indexes (child manifests), a platform filter (its own copier), blobs
    // shared between tags and syncs — any transfer waiting for a slot while holding one would hang
    proxy.reset();
    const one = new Limiter(1);
    const serial = await syncAll(specs(src, proxy.host, "one"), one);
    await assertIntact(serial, dst, "one", pushed);
    assert.equal(proxy.state.max, 1);
  } finally {
    await proxy.stop();
    await src.stop();
    await dst.stop();
  }
});

Deno.test("a sync cancelled while its transfers wait for the budget leaves the queue; the others finish", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const proxy = countingProxy(dst);
  try {
    const pushed = await pushSources(src);
    const budget = new Limiter(1);
    const [a, b, c] = specs(src, proxy.host, "cancel");
    const cancel = new AbortController();
    const running = syncAll([a, c], budget);
    const cancelled = syncImageSync(b, {
      sourceCredentials: ANONYMOUS,
      destinationCredentials: ANONYMOUS,
      transferBudget: budget,
      signal: cancel.signal,
      cancelInFlight: cancel.signal,
    });
    // cancel once some of its work is queued behind the others' transfers
    while (budget.waiting < 2 && proxy.state.uploads < 20) await new Promise((r) => setTimeout(r, 5));
    cancel.abort();
    const report = await cancelled;
    assert.equal(report.ok, false, "the cancelled sync did not claim success");
    const done = await running;
    for (const r of done) assert.equal(r.ok, true);
    assert.equal((await getManifest(dst, "cancel/a/app", "3")).digest, pushed.get("app:3")!.digest);
    assert.equal((await getManifest(dst, "cancel/c/multi", "1")).digest, pushed.get("multi:1")!.digest);
    assert.equal(budget.active, 0, "no slot is left held by the cancelled sync");
    assert.equal(budget.waiting, 0);
  } finally {
    await proxy.stop();
    await src.stop();
    await dst.stop();
  }
});
