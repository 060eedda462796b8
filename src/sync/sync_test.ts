import assert from "node:assert/strict";
import type { ImageSyncSpec } from "../api/mod.ts";
import { CredentialError } from "../credentials/mod.ts";
import { SyncError, syncImageSync } from "./sync.ts";

function spec(source: string, destination: string): ImageSyncSpec {
  return {
    schedule: "@daily",
    source: { registry: source },
    destination: { registry: destination, auth: { method: "anonymous" } },
    images: [{ name: "nginx", tags: ["1.27"] }],
  };
}

Deno.test("syncImageSync: credentials that cannot be had stop the whole sync before any request", async () => {
  const asked: string[] = [];
  const ok = { resolve: (host: string) => (asked.push(host), Promise.resolve(undefined)) };
  const refused = {
    resolve: (host: string) => {
      asked.push(host);
      return Promise.reject(new CredentialError("AuthFailed", `secret ns/push has no auth for ${host}`));
    },
  };
  const err = await syncImageSync(spec("index.docker.io/library", "127.0.0.1:9/mirror"), {
    sourceCredentials: ok,
    destinationCredentials: refused,
  }).then(() => undefined, (e) => e);
  assert.ok(err instanceof SyncError, String(err));
  assert.equal(err.reason, "AuthFailed");
  assert.equal(err.message, "secret ns/push has no auth for 127.0.0.1:9");
  assert.deepEqual(asked, ["docker.io", "127.0.0.1:9"], "Docker Hub credentials are looked up as docker.io");
});

/** A "registry" that accepts requests and never answers them until the test ends. */
function silentRegistry(): { host: string; stop: () => Promise<void> } {
  const stopped = Promise.withResolvers<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async () => {
    await stopped.promise;
    return new Response(null, { status: 503 });
  });
  return {
    host: `127.0.0.1:${server.addr.port}`,
    stop: async () => {
      stopped.resolve();
      await server.shutdown();
    },
  };
}

Deno.test("syncImageSync: past limits.syncTimeoutMs the sync stops and throws Timeout; a shutdown that came first is not a timeout", async () => {
  const reg = silentRegistry();
  const anonymous = { resolve: () => Promise.resolve(undefined) };
  const opts = { sourceCredentials: anonymous, destinationCredentials: anonymous };
  try {
    const started = performance.now();
    const err = await syncImageSync(spec(reg.host, reg.host), { ...opts, limits: { syncTimeoutMs: 300 } })
      .then(() => undefined, (e) => e);
    const ms = performance.now() - started;
    assert.ok(err instanceof SyncError, String(err));
    assert.equal(err.reason, "Timeout");
    assert.match(
      err.message,
      /^the sync did not finish within 300ms \(the sync timeout, --sync-timeout\): 0 of 1/,
    );
    assert.ok(ms < 5_000, `stopped after ${ms} ms`);

    // the caller's shutdown (both signals) before the deadline: reported by the caller, not as Timeout
    const shutdown = new AbortController();
    setTimeout(() => shutdown.abort(), 50);
    const report = await syncImageSync(spec(reg.host, reg.host), {
      ...opts,
      limits: { syncTimeoutMs: 5_000 },
      signal: shutdown.signal,
      cancelInFlight: shutdown.signal,
    });
    assert.equal(report.ok, false);
    assert.equal(report.images[0].tags[0].reason, "Aborted", JSON.stringify(report.images[0].tags[0]));
  } finally {
    await reg.stop();
  }
});
