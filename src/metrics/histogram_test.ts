import assert from "node:assert/strict";
import { Histogram, Registry } from "prom-client";
import { CompactHistogram } from "./histogram.ts";

const BUCKETS = [1, 5, 10, 30, 60, 120, 300];
const OBSERVATIONS: Array<[{ name: string; namespace: string }, number]> = [
  [{ name: "mirror", namespace: "team-a" }, 0.4],
  [{ name: "mirror", namespace: "team-a" }, 5],
  [{ name: "mirror", namespace: "team-a" }, 301],
  [{ name: 'odd"name\\', namespace: "team-b" }, 42.5],
  [{ name: "other", namespace: "team-a" }, 119.999],
];

Deno.test("CompactHistogram: the exposition is line for line prom-client's Histogram's", async () => {
  const theirs = new Registry();
  const ours = new Registry();
  const cfg = {
    name: "portage_sync_duration_seconds",
    help: "Duration",
    labelNames: ["name", "namespace"] as const,
  };
  const h = new Histogram({ ...cfg, labelNames: [...cfg.labelNames], buckets: BUCKETS, registers: [theirs] });
  const c = new CompactHistogram({ ...cfg, buckets: BUCKETS, registers: [ours] });
  for (const [labels, v] of OBSERVATIONS) {
    h.observe(labels, v);
    c.observe(labels, v);
  }
  h.remove({ name: "other", namespace: "team-a" });
  c.remove({ name: "other", namespace: "team-a" });
  const text = await ours.metrics();
  assert.equal(text, await theirs.metrics());
  assert.ok(
    text.includes('portage_sync_duration_seconds_bucket{le="5",name="mirror",namespace="team-a"} 2'),
    text,
  );
  assert.ok(text.includes('portage_sync_duration_seconds_count{name="mirror",namespace="team-a"} 3'), text);
  assert.ok(!text.includes('name="other"'), "a removed series is gone");
});

Deno.test("CompactHistogram: unknown labels and non-numbers are refused as prom-client does", () => {
  const c = new CompactHistogram({
    name: "h",
    help: "h",
    labelNames: ["name"],
    buckets: BUCKETS,
    registers: [],
  });
  assert.throws(() => c.observe({ name: "a", bogus: "x" } as unknown as { name: string }, 1), /bogus/);
  assert.throws(() => c.observe({ name: "a" }, NaN), /not a valid number/);
});
