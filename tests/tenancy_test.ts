/**
 * Tenancy rules the operator enforces on the apiserver harness, beyond those of
 * tests/operator_upstream_test.ts (Secrets of other namespaces, the cloud identity):
 * `--allowed-registries`.
 */
import assert from "node:assert/strict";
import { crdObject } from "../src/api/mod.ts";
import { runOperator } from "../src/controller/mod.ts";
import { createLogger } from "../src/log/mod.ts";
import { getManifest, pushImage } from "./harness/fixtures.ts";
import { startKube } from "./harness/kube.ts";
import { condition, createNamespace, imageSync, waitForEvent, waitForReady } from "./harness/operator.ts";
import { startRegistry } from "./harness/registry.ts";

Deno.test("tenancy: --allowed-registries refuses an ImageSync naming another registry before any request to it; allowed ones sync", async () => {
  const kube = await startKube();
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const outside = await startRegistry("plain");
  const ac = new AbortController();
  let done: Promise<void> | undefined;
  try {
    await kube.apply(crdObject());
    await pushImage(src, { repository: "lib/app", tag: "v1" }, { seed: 31 });
    await createNamespace(kube, "team-a");
    const spec = (destination: string) => ({
      schedule: "@every 1h",
      source: { registry: `${src.host}/lib` },
      destination: { registry: destination, auth: { method: "anonymous" } },
      images: [{ name: "app", tags: ["v1"] }],
    });
    await kube.apply(imageSync("team-a", "inside", spec(dst.host)));
    await kube.apply(imageSync("team-a", "outside", spec(`${outside.host}/exfil`)));
    const [srcHost, dstPort] = [src.host, dst.host.split(":")[1]];
    done = runOperator({
      kubeconfig: kube.kubeconfigPath,
      leaderElection: false,
      metricsAddr: "127.0.0.1:0",
      insecureRegistries: [src.host, dst.host, outside.host],
      // an exact host and a pattern with a port wildcard… that the outside registry's port misses
      allowedRegistries: [srcHost, `127.0.0.*:${dstPort}`],
      logger: createLogger({ level: "error", format: "json", write: () => {} }),
      signal: ac.signal,
      gracePeriodMs: 2_000,
    });
    const refused = condition(await waitForReady(kube, "team-a", "outside", { timeoutMs: 30_000 }), "Ready")!;
    assert.equal(refused.status, "False");
    assert.equal(refused.reason, "RegistryNotAllowed");
    assert.match(
      refused.message,
      new RegExp(
        `^the destination registry ${outside.host.replace(/\./g, "\\.")} is not one this operator syncs with`,
      ),
    );
    const event = await waitForEvent(kube, "team-a", "outside", "RegistryNotAllowed", { timeoutMs: 10_000 });
    assert.equal(event.type, "Warning");
    const ok = await waitForReady(kube, "team-a", "inside", {
      timeoutMs: 30_000,
      ok: (c) => c.status === "True",
    });
    assert.equal(ok.status?.syncedImages, 1);
    assert.equal((await getManifest(dst, "app", "v1")).status, 200);
    // nothing reached the registry outside the list: not a ping, not a HEAD
    assert.deepEqual((await outside.flushLog()).filter((l) => !/flush-\d+/.test(l)), []);
  } finally {
    ac.abort();
    await done?.catch(() => undefined);
    await outside.stop();
    await dst.stop();
    await src.stop();
    await kube.stop();
  }
});
