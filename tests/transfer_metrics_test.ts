/**
 * The transfer budget's gauges (`portager_transfers_in_flight`, `portager_transfers_waiting`,
 * `portager_transfers_max`) as an operator's /metrics shows them, read from the budget the
 * operator's syncs really share: two ImageSyncs synced through `makePrepareSync` against CNCF
 * distribution registries, their source's blob GETs held by a proxy so the transfers stay in
 * flight and in the queue while the test scrapes.
 */

import assert from "node:assert/strict";
import { pushImage } from "./harness/fixtures.ts";
import { forward } from "./harness/fault_proxy.ts";
import { type RegistryServer, startRegistry } from "./harness/registry.ts";
import type { ImageSyncSpec } from "../src/api/mod.ts";
import { createLogger } from "../src/log/mod.ts";
import { createMetrics, type Metrics } from "../src/metrics/mod.ts";
import { type EventSource, makePrepareSync, Manager, type Store } from "../src/controller/mod.ts";

/** A proxy in front of `upstream` holding every blob GET until `release()`. */
function holdingProxy(upstream: RegistryServer) {
  const base = upstream.url.replace(/\/+$/, "");
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const state = { held: 0 };
  let self = "";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    if (req.method === "GET" && url.pathname.includes("/blobs/sha256:")) {
      state.held++;
      await gate;
    }
    return await forward(base, self, req, url);
  });
  self = `http://127.0.0.1:${server.addr.port}`;
  return { host: `127.0.0.1:${server.addr.port}`, state, release, stop: () => server.shutdown() };
}

/** The three transfer gauges of one scrape. */
async function transferGauges(metrics: Metrics): Promise<{ inFlight: number; waiting: number; max: number }> {
  const text = await metrics.expose();
  const value = (name: string) => {
    const line = text.split("\n").find((l) => l.startsWith(`${name} `));
    assert.ok(line, `${name} is not in the exposition:\n${text}`);
    return Number(line.slice(name.length + 1));
  };
  return {
    inFlight: value("portager_transfers_in_flight"),
    waiting: value("portager_transfers_waiting"),
    max: value("portager_transfers_max"),
  };
}

Deno.test("/metrics shows the operator's transfers in flight under its budget and those waiting for it, not for their sync's own limit", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const proxy = holdingProxy(src);
  const stop = new AbortController();
  try {
    // two images of 5 blobs each (config + 4 layers), one per ImageSync
    for (const [i, repo] of ["one", "two"].entries()) {
      await pushImage(src, { repository: `lib/${repo}`, tag: "1" }, {
        seed: 70 + i,
        layers: [4096, 4096, 4096, 4096],
      });
    }
    const metrics = createMetrics();
    // each sync lets 2 transfers through its copier (3 more wait there); the budget runs 3
    const prepare = makePrepareSync({ loadSecret: () => Promise.resolve(undefined) }, {
      metrics,
      maxTransfers: 3,
      concurrency: 2,
    });
    assert.deepEqual(await transferGauges(metrics), { inFlight: 0, waiting: 0, max: 3 });

    const syncs = ["one", "two"].map(async (name) => {
      const spec: ImageSyncSpec = {
        schedule: "@daily",
        source: { registry: `${proxy.host}/lib` },
        destination: { registry: `${dst.host}/mirror`, auth: { method: "anonymous" } },
        images: [{ name, tags: ["1"] }],
      };
      const obj = {
        apiVersion: "portager.portager.io/v1alpha1",
        kind: "ImageSync",
        metadata: { name, namespace: "ns" },
        spec,
      } as const;
      const run = await prepare(obj, spec, stop.signal);
      return await run(spec, {
        signal: stop.signal,
        cancelInFlight: stop.signal,
        onEvent: () => {},
        onRetry: () => {},
      });
    });

    // 4 transfers passed their copiers (2 each): 3 hold the budget, 1 waits for it; the 6
    // blobs their own copier holds back are not the budget's waiters
    const seen: Array<{ inFlight: number; waiting: number }> = [];
    const deadline = Date.now() + 30_000;
    for (;;) {
      const g = await transferGauges(metrics);
      seen.push(g);
      if (g.inFlight === 3 && g.waiting === 1 && proxy.state.held === 3) break;
      assert.ok(
        Date.now() < deadline,
        `the gauges never showed 3 in flight and 1 waiting: ${JSON.stringify(seen.slice(-5))}`,
      );
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const g of seen) {
      assert.ok(
        g.inFlight <= 3 && g.waiting <= 1,
        `a scrape showed ${JSON.stringify(g)}, over the budget's figures`,
      );
    }

    proxy.release();
    const reports = await Promise.all(syncs);
    for (const r of reports) assert.equal(r.ok, true);
    assert.equal(proxy.state.held, 10, "every blob was read once");
    assert.deepEqual(await transferGauges(metrics), { inFlight: 0, waiting: 0, max: 3 });
  } finally {
    stop.abort();
    proxy.release();
    await proxy.stop();
    await src.stop();
    await dst.stop();
  }
});

Deno.test("a Manager exposes its syncs' transfer budget on its metrics", async () => {
  const store = {
    imagesyncs: {},
    recorder: { record() {} },
    loadSecret: () => Promise.resolve(undefined),
    close: () => Promise.resolve(),
  } as unknown as Store;
  const source = {
    keys: () => [],
    ready: () => ({ ok: true }),
    run: () => Promise.resolve(),
  } as unknown as EventSource;
  const manager = new Manager({
    store,
    source,
    logger: createLogger({ level: "error", format: "json", write: () => {} }),
    metrics: createMetrics(),
    sync: { maxTransfers: 5 },
  });
  assert.deepEqual(await transferGauges(manager.metrics), { inFlight: 0, waiting: 0, max: 5 });
});
