/**
 * Where the validation gates plug into a sync. A gate runs on the source digest of a tag that
 * needs a copy — after the digests were compared (an up-to-date tag needs no gate, as
 * upstream) and before any blob moves. The sync runs `src/gates` through `validation.ts`;
 * {@linkcode unavailableGates} remains for callers that pass no check.
 * @module
 */
import type { ImageSyncSpec } from "../api/mod.ts";
import type { Reference } from "../oci/mod.ts";
import type { GateName } from "./result.ts";

/** A gate stopped a tag. */
export interface GateVerdict {
  /** The gate that stopped it. */
  gate: GateName;
  /** Stable reason (ValidationFailed, ValidationUnavailable, …). */
  reason: string;
  /** Why, in the gate's words. */
  message: string;
  /** Vulnerability gate: the findings at or above the threshold (id, severity). */
  cves?: { id: string; severity: string }[];
}

/** What a gate check is given. */
export interface GateRequest {
  /** The source reference with its tag. */
  source: Reference;
  /** The source manifest digest that would be copied. */
  digest: string;
  /** The enabled gates, in order. */
  gates: GateName[];
  /** Aborts the check. */
  signal?: AbortSignal;
}

/** Runs the enabled gates on one tag; resolves undefined when all passed. */
export type GateCheck = (request: GateRequest) => Promise<GateVerdict | undefined>;

/** The spec field of each gate. */
const GATE_FIELD: Record<GateName, string> = {
  cosign: "cosign",
  vulnerability: "vulnerabilityGate",
  sbom: "sbomGate",
};

/** The enabled validation gates of a spec, in the order they run. */
export function enabledGates(spec: ImageSyncSpec): GateName[] {
  const v = spec.validation;
  const gates: GateName[] = [];
  if (v?.cosign?.enabled) gates.push("cosign");
  if (v?.vulnerabilityGate?.enabled) gates.push("vulnerability");
  if (v?.sbomGate?.enabled) gates.push("sbom");
  return gates;
}

/** The gate check of a build without gates: the first enabled gate stops every tag to copy. */
export const unavailableGates: GateCheck = (request) =>
  Promise.resolve({
    gate: request.gates[0],
    reason: "ValidationUnavailable",
    message: `validation gate(s) ${request.gates.map((g) => GATE_FIELD[g]).join(", ")} enabled but not ` +
      `available in this Portager build, so the tag is not copied`,
  });
