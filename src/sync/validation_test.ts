import assert from "node:assert/strict";
import { parseReference, RegistryClient } from "../oci/mod.ts";
import { validationCheck } from "./validation.ts";

const DIGEST = "sha256:" + "ab".repeat(32);
// Nothing listens on port 1.
const source = parseReference("127.0.0.1:1/app:v1");

Deno.test("validationCheck: a failing gate becomes a verdict with upstream's validationError", async () => {
  using client = new RegistryClient({ maxAttempts: 1 });
  const check = validationCheck(client, { cosign: { enabled: true } });
  const verdict = await check({ source, digest: DIGEST, gates: ["cosign"] });
  assert.deepEqual(verdict, {
    gate: "cosign",
    reason: "ValidationFailed",
    message:
      "cosign verification failed: cosign verification enabled but neither publicKey nor keylessIssuer is configured",
  });
});

Deno.test("validationCheck: gates run on the source digest, and an unreachable source fails, never passes", async () => {
  using client = new RegistryClient({ maxAttempts: 1 });
  const check = validationCheck(client, { sbomGate: { enabled: true } });
  const verdict = await check({ source, digest: DIGEST, gates: ["sbom"] });
  assert.equal(verdict?.gate, "sbom");
  assert.match(
    verdict!.message,
    new RegExp(`^SBOM gate failed: failed to fetch referrers for 127\\.0\\.0\\.1:1/app@${DIGEST}`),
  );
});

Deno.test("validationCheck: no gate enabled passes", async () => {
  using client = new RegistryClient({ maxAttempts: 1 });
  assert.equal(await validationCheck(client, {})({ source, digest: DIGEST, gates: [] }), undefined);
});
