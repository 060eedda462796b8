import assert from "node:assert/strict";
import { parseReference } from "../oci/mod.ts";
import { GateError } from "./artifacts.ts";
import { checkSbom, CYCLONEDX_ARTIFACT_TYPE, SPDX_ARTIFACT_TYPE } from "./sbom.ts";

const subject = parseReference(`127.0.0.1:5000/app@sha256:${"ab".repeat(32)}`);
const ref = (artifactType: string) => ({
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest: `sha256:${"cd".repeat(32)}`,
  size: 10,
  artifactType,
});

Deno.test("SBOM gate: an SPDX or CycloneDX referrer passes", () => {
  assert.match(
    checkSbom(subject, [ref("application/sarif+json"), ref(SPDX_ARTIFACT_TYPE)]),
    /spdx\+json SBOM attached/,
  );
  assert.match(checkSbom(subject, [ref(CYCLONEDX_ARTIFACT_TYPE)]), /cyclonedx\+json SBOM attached/);
});

Deno.test("SBOM gate: no SBOM referrer (other types only, or none) fails with SbomMissing", () => {
  for (
    const referrers of [[], [
      ref("application/sarif+json"),
      ref("application/vnd.dev.sigstore.bundle.v0.3+json"),
    ]]
  ) {
    assert.throws(() => checkSbom(subject, referrers), (e) => {
      assert.ok(e instanceof GateError);
      assert.equal(e.reason, "SbomMissing");
      assert.equal(
        e.message,
        `no SBOM found for ${subject}; an SPDX or CycloneDX SBOM must be attached as an OCI referrer`,
      );
      return true;
    });
  }
});
