import assert from "node:assert/strict";
import { type ImageSync, SYNC_NOW_ANNOTATION } from "../api/mod.ts";
import { cachedView, shouldEnqueueUpdate } from "./operator.ts";

/** An ImageSync as the apiserver returns it, with the fields the cache must drop. */
function stored(overrides: { generation?: number; annotations?: Record<string, string> } = {}): ImageSync {
  return {
    apiVersion: "portager.portager.io/v1alpha1",
    kind: "ImageSync",
    metadata: {
      name: "app",
      namespace: "team-a",
      uid: "7e48772e-fa63-4e7a-bfe5-33475be73980",
      resourceVersion: "316",
      generation: overrides.generation ?? 1,
      annotations: {
        "kubectl.kubernetes.io/last-applied-configuration": JSON.stringify({ spec: { images: [] } }),
        ...overrides.annotations,
      },
      managedFields: [{ manager: "kubectl", operation: "Update", fieldsV1: { "f:spec": {} } }],
    },
    spec: {
      schedule: "@every 24h",
      source: { registry: "src.example" },
      destination: { registry: "dst.example", auth: { method: "anonymous" } },
      images: [{ name: "app", tags: ["1.0"] }],
    },
    status: { observedGeneration: 1, conditions: [] },
  } as ImageSync;
}

Deno.test("cachedView: the informer cache keeps what reconcile reads — spec, status, identity, annotations — without managedFields and kubectl's last-applied copy", () => {
  const obj = stored({ annotations: { [SYNC_NOW_ANNOTATION]: "true", "team": "a" } });
  assert.deepEqual(cachedView(obj), {
    apiVersion: "portager.portager.io/v1alpha1",
    kind: "ImageSync",
    metadata: {
      name: "app",
      namespace: "team-a",
      uid: "7e48772e-fa63-4e7a-bfe5-33475be73980",
      resourceVersion: "316",
      generation: 1,
      annotations: { [SYNC_NOW_ANNOTATION]: "true", "team": "a" },
    },
    spec: obj.spec,
    status: obj.status,
  });
  const plain = cachedView(stored());
  assert.equal(plain.metadata.annotations, undefined, "only last-applied was there");
  assert.ok(!("managedFields" in plain.metadata));
  const deleting = stored();
  (deleting.metadata as Record<string, unknown>).deletionTimestamp = "2026-11-26T20:00:00Z";
  assert.equal(cachedView(deleting).metadata.deletionTimestamp, "2026-11-26T20:00:00Z");
});

Deno.test("shouldEnqueueUpdate: judged on cached views — spec change, sync-now set, deletion; not status writes", () => {
  const base = cachedView(stored());
  assert.equal(shouldEnqueueUpdate(base, cachedView(stored())), false, "a status write (same generation)");
  assert.equal(shouldEnqueueUpdate(base, cachedView(stored({ generation: 2 }))), true, "spec changed");
  const syncNow = cachedView(stored({ annotations: { [SYNC_NOW_ANNOTATION]: "true" } }));
  assert.equal(shouldEnqueueUpdate(base, syncNow), true, "sync-now set");
  assert.equal(shouldEnqueueUpdate(syncNow, syncNow), false, "sync-now still set");
  const deleting = stored();
  (deleting.metadata as Record<string, unknown>).deletionTimestamp = "2026-11-26T20:00:00Z";
  assert.equal(shouldEnqueueUpdate(base, cachedView(deleting)), true, "deletion started");
});
