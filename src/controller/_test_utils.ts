/**
 * Test helpers of src/controller: an ImageSync and a condition as the apiserver stores them.
 * @module
 */

import type { ImageSync } from "../api/mod.ts";

/** An ImageSync in namespace "ns" named "s", generation 1 unless said, one image, hourly. */
export function obj(
  over: { generation?: number; status?: ImageSync["status"]; schedule?: string } = {},
): ImageSync {
  return {
    apiVersion: "portager.portager.io/v1alpha1",
    kind: "ImageSync",
    metadata: { name: "s", namespace: "ns", generation: over.generation ?? 1 },
    spec: {
      schedule: over.schedule ?? "@every 1h",
      source: { registry: "src.example" },
      destination: { registry: "dst.example", auth: { method: "anonymous" } },
      images: [{ name: "app", tags: ["1.0"] }],
    },
    status: over.status,
  };
}

/** A condition with an empty message, last changed at the start of 2025-03-01. */
export const cond = (type: string, status: "True" | "False", reason: string) => ({
  type,
  status,
  reason,
  message: "",
  lastTransitionTime: "2025-03-01T00:00:00Z",
});
