/**
 * The validation gates (`src/gates`) as the sync's {@linkcode GateCheck}: run on the source
 * digest of a tag that needs a copy, before any blob moves. A failing gate becomes a verdict
 * whose message is upstream's `validationError` (`cosign verification failed: …`).
 * @module
 */
import { formatGateFailure, type GatesConfig, runGates } from "../gates/mod.ts";
import type { RegistryClient } from "../oci/mod.ts";
import type { GateCheck } from "./gates.ts";

/**
 * Environment variable naming a Sigstore `trusted_root.json` file for keyless checks (private
 * Sigstore, air-gapped clusters); the chart sets it when a trusted-root ConfigMap is mounted.
 */
export const TRUSTED_ROOT_ENV = "PORTAGER_SIGSTORE_TRUSTED_ROOT";

/** Options for {@linkcode validationCheck}. */
export interface ValidationCheckOptions {
  /** A parsed `trusted_root.json` for keyless checks. */
  trustedRoot?: unknown;
  /**
   * A `trusted_root.json` file for keyless checks; default: the file named by
   * {@linkcode TRUSTED_ROOT_ENV}, else Sigstore's public-good root.
   */
  trustedRootPath?: string;
}

function envTrustedRoot(): string | undefined {
  try {
    // Literal name: the packaging test scans src/ for the environment variables read.
    return Deno.env.get("PORTAGER_SIGSTORE_TRUSTED_ROOT") || undefined;
  } catch {
    // No env permission: the public-good root.
    return undefined;
  }
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
      trustedRootPath: opts.trustedRootPath ?? envTrustedRoot(),
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
