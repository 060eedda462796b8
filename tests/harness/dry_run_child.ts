/**
 * Child process for memory measurements: a dry-run copy of one image with the OCI engine
 * (`Copier`), printing one JSON line — the outcome, and the process's peak RSS (VmHWM, which
 * the kernel keeps, so no sampling can miss the peak).
 *
 * deno run -A tests/harness/dry_run_child.ts <source-ref> <destination-ref> [maxManifestBytes]
 */

import { Copier, OciError, parseReference, RegistryClient } from "../../src/oci/mod.ts";

function peakRssKiB(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
}

const [source, destination, maxBytes] = Deno.args;
const client = new RegistryClient({ maxAttempts: 1 });
const copier = new Copier(client, maxBytes ? { maxManifestBytes: Number(maxBytes) } : {});
const startKiB = peakRssKiB();
let outcome: Record<string, unknown>;
try {
  const r = await copier.copy(parseReference(source), parseReference(destination), { dryRun: true });
  outcome = { ok: true, blobs: r.blobs.length };
} catch (e) {
  outcome = {
    ok: false,
    reason: e instanceof OciError ? e.reason : String(e),
    message: (e as Error).message,
  };
}
console.log(JSON.stringify({ ...outcome, startKiB, peakKiB: peakRssKiB() }));
