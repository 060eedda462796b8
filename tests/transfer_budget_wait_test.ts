/**
 * The process's transfer budget is for moving bytes, not for waiting: a sync whose source
 * registry answers `429 Too Many Requests` with `Retry-After` waits out the pause without its
 * budget slots, so another sync reading a healthy registry is not held up behind it. Real CNCF
 * distribution registries; the rate limit comes from the fault proxy in front of one of them.
 */

import assert from "node:assert/strict";
import { pushImage } from "./harness/fixtures.ts";
import { startFaultProxy } from "./harness/fault_proxy.ts";
import { startRegistry } from "./harness/registry.ts";
import type { ImageSyncSpec } from "../src/api/mod.ts";
import { Limiter } from "../src/oci/mod.ts";
import { syncImageSync } from "../src/sync/mod.ts";

const ANONYMOUS = { resolve: () => Promise.resolve(undefined) };

/** Seconds the rate-limited registry asks for: far longer than the healthy sync takes. */
const RETRY_AFTER_S = 20;

Deno.test("a sync waiting out a registry's Retry-After holds no budget slot: another registry's sync goes through meanwhile", async () => {
  const limited = await startRegistry("plain");
  const healthy = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const proxy = startFaultProxy(limited, []);
  const stopSlow = new AbortController();
  try {
    await pushImage(limited, { repository: "lib/slow", tag: "1" }, { seed: 81, layers: [4096, 4096, 4096] });
    await pushImage(healthy, { repository: "lib/fast", tag: "1" }, { seed: 82, layers: [4096, 4096, 4096] });
    // each of the slow image's 4 blobs (config + 3 layers) is answered 429 once
    proxy.setRules([{
      method: "GET",
      path: /\/blobs\/sha256:/,
      times: 4,
      fault: { kind: "rateLimit", retryAfterSeconds: RETRY_AFTER_S },
    }]);
    const blobGets = () => proxy.seen.filter((r) => r.method === "GET" && r.path.includes("/blobs/sha256:"));
    const spec = (registry: string, name: string): ImageSyncSpec => ({
      schedule: "@daily",
      source: { registry: `${registry}/lib` },
      destination: { registry: `${dst.host}/mirror`, auth: { method: "anonymous" } },
      images: [{ name, tags: ["1"] }],
    });
    // a budget of 4: the slow sync's copier (4 transfers) alone would fill it
    const budget = new Limiter(4);
    const slow = syncImageSync(spec(proxy.host, "slow"), {
      sourceCredentials: ANONYMOUS,
      destinationCredentials: ANONYMOUS,
      transferBudget: budget,
      signal: stopSlow.signal,
      cancelInFlight: stopSlow.signal,
    });
    const deadline = Date.now() + 30_000;
    while (blobGets().length < 4) {
      assert.ok(Date.now() < deadline, "the slow sync never asked for its blobs");
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(budget.active, 0, "the slow sync's transfers hold no budget slot while they wait");

    const fast = await syncImageSync(spec(healthy.host, "fast"), {
      sourceCredentials: ANONYMOUS,
      destinationCredentials: ANONYMOUS,
      transferBudget: budget,
    });
    assert.equal(fast.ok, true, JSON.stringify(fast.images));
    assert.equal(fast.images[0].tags[0].action, "copied");
    const seen = blobGets();
    assert.equal(seen.length, 4, "the healthy sync finished before the slow one's pause ended");
    assert.ok(seen.every((r) => r.status === 429));

    stopSlow.abort(new Error("test over"));
    const report = await slow;
    assert.equal(report.ok, false, "the slow sync was stopped mid-pause");
    assert.equal(budget.active, 0);
    assert.equal(budget.waiting, 0);
  } finally {
    stopSlow.abort();
    await proxy.stop();
    await limited.stop();
    await healthy.stop();
    await dst.stop();
  }
});
