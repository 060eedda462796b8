import assert from "node:assert/strict";
import { parseReference, RegistryClient } from "../oci/mod.ts";
import { formatGateFailure, gatesEnabled, runGates } from "./mod.ts";

const DIGEST = "sha256:" + "ab".repeat(32);
// Nothing listens on port 1: every registry call fails to connect.
const unreachable = parseReference(`127.0.0.1:1/app@${DIGEST}`);

Deno.test("formatGateFailure writes upstream's prefixes", () => {
  assert.equal(
    formatGateFailure({
      gate: "cosign",
      passed: false,
      reason: "SignatureMissing",
      detail: "no signatures found for x",
    }),
    "cosign verification failed: no signatures found for x",
  );
  assert.equal(
    formatGateFailure({ gate: "vulnerability", passed: false, reason: "VulnerabilitiesFound", detail: "d" }),
    "vulnerability gate failed: d",
  );
  assert.equal(
    formatGateFailure({ gate: "sbom", passed: false, reason: "SbomMissing", detail: "d" }),
    "SBOM gate failed: d",
  );
});

Deno.test("gatesEnabled is true only when a gate is enabled", () => {
  assert.equal(gatesEnabled(undefined), false);
  assert.equal(gatesEnabled({}), false);
  assert.equal(
    gatesEnabled({ cosign: { enabled: false, publicKey: "x" }, sbomGate: { enabled: false } }),
    false,
  );
  assert.equal(gatesEnabled({ vulnerabilityGate: { enabled: true } }), true);
});

Deno.test("runGates: a misconfigured cosign gate fails and skips the later gates", async () => {
  using client = new RegistryClient({ maxAttempts: 1 });
  const outcome = await runGates(client, unreachable, {
    config: { cosign: { enabled: true }, sbomGate: { enabled: true } },
  });
  assert.equal(outcome.verified, false);
  assert.equal(outcome.results.length, 1, "the SBOM gate did not run");
  assert.deepEqual(outcome.failed, {
    gate: "cosign",
    passed: false,
    reason: "GateMisconfigured",
    detail: "cosign verification enabled but neither publicKey nor keylessIssuer is configured",
  });
});

Deno.test("runGates: a registry that cannot be reached fails every gate, never passes it", async () => {
  using client = new RegistryClient({ maxAttempts: 1 });
  const sbom = await runGates(client, unreachable, { config: { sbomGate: { enabled: true } } });
  assert.equal(sbom.verified, false);
  assert.equal(sbom.failed?.reason, "ReferrersUnavailable");
  assert.match(sbom.failed!.detail, /failed to fetch referrers for 127\.0\.0\.1:1\/app@sha256:/);
  const vuln = await runGates(client, unreachable, {
    config: { vulnerabilityGate: { enabled: true, requireCveReport: false } },
  });
  assert.equal(vuln.verified, false, "requireCveReport: false does not turn 'could not list' into a pass");
  const pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n";
  const cosign = await runGates(client, unreachable, {
    config: { cosign: { enabled: true, publicKey: pem } },
  });
  assert.equal(cosign.failed?.reason, "KeyInvalid");
});

Deno.test("runGates: cancellation propagates instead of becoming a gate result", async () => {
  using client = new RegistryClient({ maxAttempts: 1 });
  const ac = new AbortController();
  ac.abort(new Error("stop"));
  await assert.rejects(
    runGates(client, unreachable, { config: { sbomGate: { enabled: true } }, signal: ac.signal }),
  );
});

Deno.test("runGates: keyless with a trusted root file that cannot be read fails with TrustedRootInvalid", async () => {
  using client = new RegistryClient({ maxAttempts: 1 });
  const dir = await Deno.makeTempDir();
  try {
    const config = { cosign: { enabled: true, keylessIssuer: "https://issuer.example" } };
    const missing = await runGates(client, unreachable, { config, trustedRootPath: `${dir}/nope.json` });
    assert.equal(missing.failed?.reason, "TrustedRootInvalid");
    assert.match(missing.failed!.detail, /cannot read the Sigstore trusted root .*nope\.json/);
    await Deno.writeTextFile(`${dir}/junk.json`, "{ not json");
    const junk = await runGates(client, unreachable, { config, trustedRootPath: `${dir}/junk.json` });
    assert.match(junk.failed!.detail, /junk\.json is not JSON/);
    await Deno.writeTextFile(`${dir}/empty.json`, "{}");
    const empty = await runGates(client, unreachable, { config, trustedRootPath: `${dir}/empty.json` });
    assert.match(empty.failed!.detail, /no certificate authority or no transparency log/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
