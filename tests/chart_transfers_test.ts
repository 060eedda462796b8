// The chart's maxTransfers value: the process's budget of blob and manifest transfers reaches
// `portager run` as --max-transfers only when set (else the binary's default, 8), and a value
// the binary would refuse is refused by the chart's schema before it reaches a pod.
import assert from "node:assert/strict";
import { HelmError, helmTemplate, type RenderedObject } from "./harness/helm.ts";

const CHART = new URL("../charts/portager", import.meta.url).pathname;

async function runArgs(values: Record<string, unknown>): Promise<string[]> {
  const objects = await helmTemplate(CHART, { values: [values] });
  const deployment = objects.find((o: RenderedObject) => o.kind === "Deployment")!;
  return deployment.spec.template.spec.containers[0].args;
}

Deno.test("helm template: maxTransfers passes --max-transfers next to --max-concurrent-syncs; unset passes none", async () => {
  const set = await runArgs({ maxConcurrentSyncs: 4, maxTransfers: 8 });
  const i = set.indexOf("--max-concurrent-syncs=4");
  assert.ok(i >= 0);
  assert.equal(set[i + 1], "--max-transfers=8");
  const unset = await runArgs({});
  assert.equal(unset.find((a) => a.startsWith("--max-transfers")), undefined);
});

Deno.test("helm template: a maxTransfers the binary would refuse fails the chart's schema", async () => {
  for (const bad of [0, -1, 2.5, "8"]) {
    const err = await runArgs({ maxTransfers: bad }).then(() => undefined, (e) => e);
    assert.ok(err instanceof HelmError, `maxTransfers ${JSON.stringify(bad)} rendered`);
    assert.match(err.message, /maxTransfers/);
  }
});
