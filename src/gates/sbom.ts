/**
 * The SBOM gate: an SPDX (`application/spdx+json`) or CycloneDX
 * (`application/vnd.cyclonedx+json`) referrer must be attached to the source image (as
 * upstream, presence is checked, not content).
 * @module
 */

import type { Reference } from "../oci/mod.ts";
import type { Referrer } from "../oci/referrers.ts";
import { GateError } from "./artifacts.ts";

/** Artifact type of SPDX JSON SBOMs. */
export const SPDX_ARTIFACT_TYPE = "application/spdx+json";
/** Artifact type of CycloneDX JSON SBOMs. */
export const CYCLONEDX_ARTIFACT_TYPE = "application/vnd.cyclonedx+json";

/** Passes (returning what was found) when an SBOM referrer exists; throws SbomMissing otherwise. */
export function checkSbom(subject: Reference, referrers: readonly Referrer[]): string {
  const sbom = referrers.find((r) =>
    r.artifactType === SPDX_ARTIFACT_TYPE || r.artifactType === CYCLONEDX_ARTIFACT_TYPE
  );
  if (sbom) return `${sbom.artifactType} SBOM attached (${sbom.digest})`;
  throw new GateError(
    "SbomMissing",
    `no SBOM found for ${subject}; an SPDX or CycloneDX SBOM must be attached as an OCI referrer`,
  );
}
