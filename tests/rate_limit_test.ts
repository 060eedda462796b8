/**
 * Rate-limit awareness against a loopback front that answers like Docker Hub: every response
 * carries `ratelimit-limit: 100;w=21600` and `ratelimit-remaining: N;w=21600`, and only manifest
 * GETs spend N (HEADs and blobs are free). Real Debian registries behind and at the
 * destination; the operator on the harness apiserver for the status of a paused sync.
 */
import assert from "node:assert/strict";
import type { ImageSyncSpec, ImageSyncStatus } from "../src/api/mod.ts";
import { createMetrics } from "../src/metrics/mod.ts";
import { registryBudgets } from "../src/oci/mod.ts";
import { readyMessage, statusFromReport, syncImageSync } from "../src/sync/mod.ts";
import { getManifest, pushImage } from "./harness/fixtures.ts";
import { startKube } from "./harness/kube.ts";
import { applyCrd, imageSync, startOperator, waitForReady } from "./harness/operator.ts";
import { type RegistryServer, startRegistry } from "./harness/registry.ts";

/** A Docker-Hub-like front: counts what it forwards and spends the budget on manifest GETs. */
interface Front {
  host: string;
  remaining: number;
  /** `METHOD path` of every request forwarded. */
  seen: string[];
  stop(): Promise<void>;
}

async function startFront(upstream: RegistryServer, remaining: number): Promise<Front> {
  const ac = new AbortController();
  const front: Front = { host: "", remaining, seen: [], stop: async () => {} };
  const listening = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: ac.signal,
    onListen: (a) => listening.resolve(a.port),
  }, async (req) => {
    const url = new URL(req.url);
    front.seen.push(`${req.method} ${url.pathname}`);
    if (req.method === "GET" && /\/manifests\//.test(url.pathname)) {
      if (front.remaining <= 0) {
        return new Response('{"errors":[{"code":"TOOMANYREQUESTS"}]}', {
          status: 429,
          headers: { "ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600" },
        });
      }
      front.remaining--;
    }
    const res = await fetch(`${upstream.url}${url.pathname}${url.search}`, {
      method: req.method,
      headers: req.headers,
      redirect: "manual",
    });
    const headers = new Headers(res.headers);
    headers.set("ratelimit-limit", "100;w=21600");
    headers.set("ratelimit-remaining", `${front.remaining};w=21600`);
    return new Response(req.method === "HEAD" ? null : res.body, { status: res.status, headers });
  });
  front.stop = async () => {
    ac.abort();
    await server.finished;
  };
  front.host = `127.0.0.1:${await listening.promise}`;
  return front;
}

function spec(src: string, dst: string, tags: string[]): ImageSyncSpec {
  return {
    schedule: "@every 24h",
    source: { registry: src },
    destination: { registry: dst, auth: { method: "anonymous" } },
    images: [{ name: "team/app", tags }],
  } as unknown as ImageSyncSpec;
}

const ANONYMOUS = { resolve: () => Promise.resolve(undefined) };

Deno.test("rate limit: an unchanged sync spends nothing (HEADs only); the remaining budget is a metric", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const front = await startFront(src, 100);
  try {
    for (const [i, tag] of ["1.0", "1.1", "1.2"].entries()) {
      await pushImage(src, { repository: "team/app", tag }, { seed: 20 + i });
    }
    const s = spec(front.host, dst.host, ["1.0", "1.1", "1.2"]);
    const opts = { sourceCredentials: ANONYMOUS, destinationCredentials: ANONYMOUS };
    const first = await syncImageSync(s, opts);
    assert.equal(first.failedImages, 0, readyMessage(first));
    assert.equal(front.remaining, 97, "each copy spent one manifest GET");
    front.seen.length = 0;
    const second = await syncImageSync(s, opts);
    assert.equal(second.syncedImages, 3, readyMessage(second));
    assert.deepStrictEqual(front.seen.filter((l) => l.startsWith("GET ") && l.includes("/manifests/")), []);
    assert.ok(front.seen.filter((l) => l.startsWith("HEAD ")).length >= 3, front.seen.join("\n"));
    assert.equal(front.remaining, 97, "an unchanged sync costs no budget");

    const metrics = createMetrics();
    metrics.watchRateLimits(() => registryBudgets.snapshot());
    const text = await metrics.expose();
    assert.match(text, new RegExp(`portager_registry_ratelimit_remaining\\{registry="${front.host}"\\} 97`));
  } finally {
    await front.stop();
    await src.stop();
    await dst.stop();
  }
});

Deno.test("rate limit: the operator pauses a registry's manifest pulls at the reserve, and the status says so", async () => {
  const kube = await startKube();
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  // 12 left of 100: the reserve (10) leaves two pulls for Portager
  const front = await startFront(src, 12);
  let op: Awaited<ReturnType<typeof startOperator>> | undefined;
  try {
    const tags = ["2.0", "2.1", "2.2", "2.3"];
    for (const [i, tag] of tags.entries()) {
      await pushImage(src, { repository: "team/app", tag }, { seed: 40 + i });
    }
    await applyCrd(kube);
    await kube.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: "limits" } });
    op = await startOperator(kube, { namespaces: ["limits"], backoffBaseMs: 60_000, backoffMaxMs: 60_000 });
    await kube.apply(
      imageSync("limits", "hub", spec(front.host, dst.host, tags) as unknown as Record<string, unknown>),
    );
    const obj = await waitForReady(kube, "limits", "hub", { ok: (c) => c.status === "False", logs: op.log });
    const ready = obj.status!.conditions!.find((c) => c.type === "Ready")!;
    assert.match(
      ready.message,
      new RegExp(
        `^2 of 4 image\\(s\\) failed to sync; first: team/app:2\\.\\d: registry ${
          front.host.replace(/\./g, "\\.")
        }: ` +
          "paused until \\S+Z to stay within its rate limit: \\d+ of 100 manifest pulls left per 6h, 10 kept in reserve",
      ),
    );
    // stopped before the limit: the registry's own budget never reached 0
    assert.equal(front.remaining, 10);
    assert.equal(front.seen.filter((l) => l.startsWith("GET ") && l.includes("/manifests/")).length, 2);
    const copied = await Promise.all(
      tags.map((t) => getManifest(dst, "team/app", t).then((m) => m.status === 200 ? t : undefined)),
    );
    assert.equal(copied.filter(Boolean).length, 2);
    const metricsText = await (await fetch(`${op.url}/metrics`)).text();
    assert.match(
      metricsText,
      new RegExp(`portager_registry_ratelimit_remaining\\{registry="${front.host}"\\} 10`),
    );
  } finally {
    await op?.stop();
    await front.stop();
    await src.stop();
    await dst.stop();
    await kube.stop();
  }
});

Deno.test("rate limit: an unchanged platform-filtered index, synced again with its last status, costs no manifest GET", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const front = await startFront(src, 100);
  try {
    await pushImage(src, { repository: "team/multi", tag: "1.0" }, {
      platforms: ["linux/amd64", "linux/arm64", "linux/s390x"],
    });
    const s = {
      ...spec(front.host, dst.host, ["1.0"]),
      images: [{ name: "team/multi", tags: ["1.0"], platforms: ["linux/amd64", "linux/arm64"] }],
    } as unknown as ImageSyncSpec;
    const opts = { sourceCredentials: ANONYMOUS, destinationCredentials: ANONYMOUS };
    const first = await syncImageSync(s, opts);
    assert.equal(first.failedImages, 0, readyMessage(first));
    front.seen.length = 0;
    const left = front.remaining;
    const second = await syncImageSync(s, { ...opts, previous: statusFromReport(first) as ImageSyncStatus });
    assert.equal(second.syncedImages, 1, readyMessage(second));
    assert.deepStrictEqual(front.seen.filter((l) => l.startsWith("GET ") && l.includes("/manifests/")), []);
    assert.equal(front.remaining, left);
  } finally {
    await front.stop();
    await src.stop();
    await dst.stop();
  }
});
