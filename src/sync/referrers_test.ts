import assert from "node:assert/strict";
import { parseReference, RegistryClient, sha256Digest } from "../oci/mod.ts";
import type { SyncEvent } from "./events.ts";
import { referrerCarrier } from "./referrers.ts";
import { pendingTag, type TagResult } from "./result.ts";
import type { TagJob } from "./run.ts";

const DIGEST = "sha256:" + "ab".repeat(32);

function job(): TagJob {
  const t = pendingTag("v1", { source: "127.0.0.1:1/app:v1", destination: "127.0.0.1:2/app:v1" });
  return {
    image: "app",
    result: {
      name: "app",
      sourceRepository: "127.0.0.1:1/app",
      destinationRepository: "127.0.0.1:2/app",
      tags: [t],
    },
    slot: 0,
    tag: "v1",
    source: parseReference("127.0.0.1:1/app:v1"),
    destination: parseReference("127.0.0.1:2/app:v1"),
  };
}

Deno.test("referrerCarrier: a failed tag is left as it is, nothing is read", async () => {
  using source = new RegistryClient({ maxAttempts: 1 });
  using destination = new RegistryClient({ maxAttempts: 1 });
  const events: SyncEvent[] = [];
  const carry = referrerCarrier({ source, destination }, { enabled: true }, {
    dryRun: false,
    emit: (e) => events.push(e),
  });
  const failed: TagResult = { ...job().result.tags[0], reason: "NotFound", error: "gone" };
  assert.equal(await carry(job(), failed), failed);
  assert.deepEqual(events, []);
});

Deno.test("referrerCarrier: a registry that cannot be read fails the tag with ReferrerCopyFailed, image still synced", async () => {
  using source = new RegistryClient({ maxAttempts: 1 });
  using destination = new RegistryClient({ maxAttempts: 1 });
  const carry = referrerCarrier({ source, destination }, { enabled: true }, {
    dryRun: false,
    emit: () => {},
  });
  const copied: TagResult = { ...job().result.tags[0], synced: true, action: "copied", sourceDigest: DIGEST };
  const t = await carry(job(), copied);
  assert.equal(t.action, "failed");
  assert.equal(t.synced, true);
  assert.equal(t.reason, "ReferrerCopyFailed");
  assert.match(t.error!, new RegExp(`^copying referrers of 127\\.0\\.0\\.1:1/app@${DIGEST} failed: `));
});

Deno.test("referrerCarrier: an index with more platform manifests than the bound fails the tag with ReferrerCopyFailed naming images[].platforms, before any referrer is read", async () => {
  const index = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: Array.from({ length: 65 }, (_, i) => ({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: "sha256:" + i.toString(16).padStart(64, "0"),
      size: 100,
      platform: { os: "linux", architecture: `arch${i}` },
    })),
  }));
  const digest = sha256Digest(index);
  const requests: string[] = [];
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    requests.push(`${req.method} ${path}`);
    if (path === "/v2/") return new Response("{}");
    if (path === `/v2/app/manifests/${digest}`) {
      return new Response(index, { headers: { "content-type": "application/vnd.oci.image.index.v1+json" } });
    }
    return new Response(null, { status: 404 });
  });
  const host = `127.0.0.1:${server.addr.port}`;
  using source = new RegistryClient({ maxAttempts: 1 });
  using destination = new RegistryClient({ maxAttempts: 1 });
  const carry = referrerCarrier({ source, destination }, { enabled: true }, {
    dryRun: false,
    emit: () => {},
  });
  const j = {
    ...job(),
    source: parseReference(`${host}/app:v1`),
    destination: parseReference(`${host}/app:v1`),
  };
  const copied: TagResult = { ...j.result.tags[0], synced: true, action: "up-to-date", sourceDigest: digest };
  const t = await carry(j, copied);
  assert.deepEqual([t.action, t.synced, t.reason], ["failed", true, "ReferrerCopyFailed"]);
  assert.match(
    t.error!,
    /lists 65 platform manifests; the referrers of at most 64 are carried — narrow images\[\]\.platforms/,
  );
  assert.deepEqual(requests.filter((r) => r !== "GET /v2/"), [`GET /v2/app/manifests/${digest}`]);
});
