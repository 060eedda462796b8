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
