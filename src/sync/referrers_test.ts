import assert from "node:assert/strict";
import { parseReference, RegistryClient } from "../oci/mod.ts";
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
