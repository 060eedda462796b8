// The chart's label-selector shards (values labelShards): what helm renders is what the operator
// needs — one Deployment per label shard and the main one, each passing its selector, selecting
// only its own pods, and allowed exactly the Lease the operator computes from its arguments
// (src/controller/shard.ts), alone and combined with hash shards.
import assert from "node:assert/strict";
import { shardElection } from "../src/controller/shard.ts";
import { HelmError, helmTemplate, type RenderedObject } from "./harness/helm.ts";

const CHART = new URL("../charts/portager", import.meta.url).pathname;
const KEY = "sharding.portager.io/key";
const COMMON = {
  "app.kubernetes.io/name": "portager",
  "app.kubernetes.io/instance": "portager",
  "control-plane": "controller-manager",
};

function args(d: RenderedObject): string[] {
  return d.spec.template.spec.containers[0].args;
}

function flag(d: RenderedObject, name: string): string | undefined {
  return args(d).find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

/** The Lease the operator elects on, from the Deployment's own arguments (as `portager run` reads them). */
function leaseOf(d: RenderedObject): string {
  const shards = flag(d, "shards");
  const never = () => Promise.reject(new Error("not called"));
  return shardElection({
    leases: { get: never, create: never, update: never, list: never },
    namespace: "portager-system",
    name: flag(d, "leader-election-id")!,
    identity: "x",
  }, {
    shards: shards ? Number(shards) : 1,
    index: Number(flag(d, "shard-index") ?? "0"),
    labelSelector: flag(d, "watch-label-selector"),
  }).leaderElection.name;
}

function leaseNames(objects: RenderedObject[]): string[] {
  const role = objects.find((o) => o.kind === "Role" && o.metadata.name === "portager-leader-election-role")!;
  return role.rules.filter((r: { verbs: string[] }) => r.verbs.includes("update")).flatMap((
    r: { resourceNames: string[] },
  ) => r.resourceNames);
}

Deno.test("helm template: labelShards renders the main shard and one Deployment per value, each with its selector, pods and Lease", async () => {
  const objects = await helmTemplate(CHART, {
    values: [{
      labelShards: { values: ["team-a", "team-b"] },
      replicaCount: 2,
      podDisruptionBudget: { enabled: true },
    }],
  });
  const deployments = objects.filter((o) => o.kind === "Deployment");
  assert.deepEqual(
    deployments.map((d) => [d.metadata.name, flag(d, "watch-label-selector")]),
    [
      ["portager-controller-manager-main", `!${KEY}`],
      ["portager-controller-manager-team-a", `${KEY} in (team-a)`],
      ["portager-controller-manager-team-b", `${KEY} in (team-b)`],
    ],
  );
  const selectors = new Set<string>();
  for (const d of deployments) {
    const group = d.metadata.name.replace("portager-controller-manager-", "");
    assert.deepEqual(d.spec.selector.matchLabels, { ...COMMON, "portager.portager.io/label-shard": group });
    for (const [k, v] of Object.entries(d.spec.selector.matchLabels)) {
      assert.equal(d.spec.template.metadata.labels[k], v, `${d.metadata.name}: pod label ${k}`);
    }
    selectors.add(JSON.stringify(d.spec.selector.matchLabels));
    assert.equal(d.spec.replicas, 2, "each label shard an HA pair");
    assert.ok(!args(d).some((a) => a.startsWith("--shard")), "no hash split unless shards: N");
    const pdb = objects.find((o) => o.kind === "PodDisruptionBudget" && o.metadata.name === d.metadata.name);
    assert.deepEqual(pdb?.spec.selector.matchLabels, d.spec.selector.matchLabels);
  }
  assert.equal(selectors.size, 3, "no pod is selected by two Deployments");
  // the Role grants each Deployment the very Lease the operator computes from its arguments
  assert.deepEqual(leaseNames(objects), deployments.map(leaseOf));
  assert.deepEqual(leaseNames(objects), [
    "c8073f84.portager.io-e1e94e76-shard-0",
    "c8073f84.portager.io-cc3e171d-shard-0",
    "c8073f84.portager.io-ffacc7cf-shard-0",
  ]);
  const role = objects.find((o) => o.kind === "Role" && o.metadata.name === "portager-leader-election-role")!;
  const leaseVerbs = role.rules.flatMap((r: { verbs: string[] }) => r.verbs);
  assert.ok(leaseVerbs.includes("list"), "the shard gate lists the group's Leases");
  // the metrics Service and NetworkPolicy still cover every shard's pods
  const service = objects.find((o) =>
    o.kind === "Service" && o.metadata.name === "portager-metrics-service"
  )!;
  assert.deepEqual(service.spec.selector, COMMON);
});

Deno.test("helm template: labelShards with shards: 2 splits each label shard by hash, each on its own Lease", async () => {
  const objects = await helmTemplate(CHART, { values: [{ labelShards: { values: ["team-a"] }, shards: 2 }] });
  const deployments = objects.filter((o) => o.kind === "Deployment");
  assert.deepEqual(
    deployments.map((d) => [d.metadata.name, flag(d, "watch-label-selector"), flag(d, "shard-index")]),
    [
      ["portager-controller-manager-main-shard-0", `!${KEY}`, "0"],
      ["portager-controller-manager-main-shard-1", `!${KEY}`, "1"],
      ["portager-controller-manager-team-a-shard-0", `${KEY} in (team-a)`, "0"],
      ["portager-controller-manager-team-a-shard-1", `${KEY} in (team-a)`, "1"],
    ],
  );
  assert.ok(deployments.every((d) => flag(d, "shards") === "2"));
  assert.equal(new Set(deployments.map((d) => JSON.stringify(d.spec.selector.matchLabels))).size, 4);
  assert.deepEqual(leaseNames(objects), deployments.map(leaseOf));
  assert.equal(new Set(leaseNames(objects)).size, 4);
});

Deno.test("helm template: labelShards that could not work are refused at install time", async () => {
  for (
    const [what, values, why] of [
      [
        "a value named main (the main shard's)",
        { labelShards: { values: ["main"] } },
        /labelShards\/values\/0/,
      ],
      [
        "a value that cannot name a Deployment",
        { labelShards: { values: ["Team_A"] } },
        /labelShards\/values\/0/,
      ],
      ["a value twice", { labelShards: { values: ["a", "a"] } }, /labelShards\/values/],
      ["a key that is no label key", { labelShards: { key: "bad key", values: ["a"] } }, /labelShards\/key/],
      [
        "without leader election",
        { labelShards: { values: ["a"] }, leaderElection: { enabled: false } },
        /labelShards\.values needs leaderElection\.enabled=true/,
      ],
    ] as const
  ) {
    const err = await helmTemplate(CHART, { values: [values] }).then(() => undefined, (e) => e);
    assert.ok(err instanceof HelmError, `${what}: rendered`);
    assert.match(err.output, why, what);
  }
  // none given: the chart renders as before, without selectors
  const plain = await helmTemplate(CHART, { values: [{ labelShards: { values: [] } }] });
  const d = plain.filter((o) => o.kind === "Deployment");
  assert.deepEqual(d.map((x) => x.metadata.name), ["portager-controller-manager"]);
  assert.equal(flag(d[0], "watch-label-selector"), undefined);
  assert.deepEqual(d[0].spec.selector.matchLabels, COMMON);
});

Deno.test("helm template: labelShards with the webhook: one Service over every label shard's pods, each pod serving it", async () => {
  const objects = await helmTemplate(CHART, {
    values: [{ labelShards: { values: ["team-a"] }, webhook: { enabled: true, existingSecret: "hook" } }],
  });
  const service = objects.find((o) => o.kind === "Service" && o.metadata.name === "portager-webhook")!;
  assert.deepEqual(service.spec.selector, COMMON, "a push may reach any shard's pod, which passes it on");
  const deployments = objects.filter((o) => o.kind === "Deployment");
  assert.equal(deployments.length, 2);
  for (const d of deployments) assert.ok(flag(d, "webhook-bind-address"), d.metadata.name);
});
