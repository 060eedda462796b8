/**
 * The validation gates (`src/gates`) as the sync's {@linkcode GateCheck}: run on the source
 * digest of a tag that needs a copy, before any blob moves. A failing gate becomes a verdict
 * whose message is upstream's `validationError` (`cosign verification failed: …`).
 * @module
 */
import { formatGateFailure, type GatesConfig, runGates } from "../gates/mod.ts";
import type { RegistryClient } from "../oci/mod.ts";
import type { GateCheck } from "./gates.ts";

/** Options for {@linkcode validationCheck}. */
export interface ValidationCheckOptions {
  /** A parsed `trusted_root.json` for keyless checks; Sigstore's public-good root when absent. */
  trustedRoot?: unknown;
}

/** A gate check that runs the spec's enabled gates against the source registry. */
export function validationCheck(
  source: RegistryClient,
  config: GatesConfig,
  opts: ValidationCheckOptions = {},
): GateCheck {
  return async (request) => {
    const outcome = await runGates(source, request.source.withDigest(request.digest), {
      config,
      trustedRoot: opts.trustedRoot,
      signal: request.signal,
    });
    if (outcome.verified || !outcome.failed) return undefined;
    return {
      gate: outcome.failed.gate,
      reason: "ValidationFailed",
      message: formatGateFailure(outcome.failed),
      ...(outcome.failed.cves ? { cves: outcome.failed.cves } : {}),
    };
  };
}
