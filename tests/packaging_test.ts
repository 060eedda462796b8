/**
 * Packaging: the Dockerfile, deploy/ (kustomize) and the Helm chart, proven with real tools.
 *
 * - helm (built from its Go module) lints and renders the chart with several value sets;
 *   invalid values are refused by values.schema.json or the chart's own checks.
 * - Every rendered set is sent to a real kube-apiserver with server-side dry run; the chart and
 *   deploy/ are then installed for real, and a TokenRequest token for each ServiceAccount proves
 *   the RBAC is enough for the operator (real requests) and no more (access reviews).
 * - The `deno task bundle` output runs with exactly the permissions `deno task compile` bakes in.
 * @module
 */

import assert from "node:assert/strict";
import yaml from "js-yaml";
import { crdYaml } from "../src/api/mod.ts";
import { shardOf } from "../src/controller/shard.ts";
import { VERSION } from "../src/cli/version.ts";
import { driftedManifests, GENERATED_CRD_PATHS } from "../scripts/gen_manifests.ts";
import {
  HelmError,
  helmLint,
  helmTemplate,
  parseManifests,
  type RenderedObject,
  runHelm,
} from "./harness/helm.ts";
import { getManifest, pushImage } from "./harness/fixtures.ts";
import { type KubeCluster, startKube } from "./harness/kube.ts";
import { startRegistry } from "./harness/registry.ts";
import { freePorts } from "./harness/ports.ts";
import { RESULT_MARK as ECR_RESULT_MARK } from "./harness/ecr_child.ts";
import { MOTO_ACCOUNT, startMoto } from "./harness/moto.ts";

const ROOT = new URL("../", import.meta.url);
const CHART = new URL("charts/portager", ROOT).pathname;
const DENO = Deno.execPath();

function readRepoFile(path: string): string {
  return Deno.readTextFileSync(new URL(path, ROOT));
}

function denoJson(): { tasks: Record<string, string> } {
  return JSON.parse(readRepoFile("deno.json"));
}

// ---------------------------------------------------------------------------------------------
// Value sets the chart is rendered with.

const TEST_CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n";

/** Every optional feature on at once, the CA inline and trusted exclusively. */
const ALL_FEATURES = {
  replicaCount: 2,
  image: { digest: `sha256:${"ab".repeat(32)}` },
  leaderElection: { enabled: true, leaseName: "portager-test-leader" },
  watchNamespaces: ["team-a", "team-b"],
  maxConcurrentSyncs: 4,
  logging: { format: "text", level: "debug" },
  insecureRegistries: ["registry.local:5000"],
  extraArgs: ["--max-concurrent-syncs=5"],
  limits: {
    syncTimeout: "30m",
    requestTimeout: "45s",
    minTransferRate: "64Ki",
    maxManifests: 200,
    maxManifestBytes: 16777216,
    maxTags: 5000,
  },
  sigstore: { trustedRoot: { existingConfigMap: "sigstore-trusted-root" } },
  metrics: {
    enabled: true,
    port: 9090,
    readerServiceAccounts: [{ name: "prometheus", namespace: "monitoring" }],
    serviceMonitor: { enabled: true, labels: { release: "kps" } },
  },
  tenancy: {
    secretNamespaces: ["team-a"],
    allowCrossNamespaceRefs: true,
    cloudIdentityNamespaces: ["team-a"],
  },
  prometheusRule: { enabled: true, labels: { release: "kps" } },
  dashboard: { enabled: true },
  webhook: {
    enabled: true,
    existingSecret: "portager-webhook",
    from: [{ ipBlock: { cidr: "10.30.0.0/16" } }],
  },
  serviceAccount: {
    annotations: { "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/portager-ecr" },
  },
  aws: { existingSecret: "aws-creds" },
  caBundle: { enabled: true, inline: TEST_CA_PEM, mode: "replace" },
  nodeSelector: { "kubernetes.io/os": "linux" },
  tolerations: [{ key: "dedicated", operator: "Equal", value: "portager", effect: "NoSchedule" }],
  affinity: {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [{
        weight: 100,
        podAffinityTerm: {
          topologyKey: "kubernetes.io/hostname",
          labelSelector: { matchLabels: { "app.kubernetes.io/name": "portager" } },
        },
      }],
    },
  },
  topologySpreadConstraints: [{
    maxSkew: 1,
    topologyKey: "topology.kubernetes.io/zone",
    whenUnsatisfiable: "ScheduleAnyway",
    labelSelector: { matchLabels: { "app.kubernetes.io/name": "portager" } },
  }],
  priorityClassName: "system-cluster-critical",
  podAnnotations: { "example.com/team": "platform" },
  podLabels: { team: "platform" },
  imagePullSecrets: [{ name: "pull-secret" }],
  extraEnv: [{ name: "HTTPS_PROXY", value: "http://proxy.internal:3128" }],
  extraVolumes: [{ name: "scratch", emptyDir: {} }],
  extraVolumeMounts: [{ name: "scratch", mountPath: "/scratch" }],
  podDisruptionBudget: { enabled: true, minAvailable: 1 },
  startupProbe: { enabled: true },
  terminationGracePeriodSeconds: 60,
  networkPolicy: {
    enabled: true,
    metrics: { podSelector: { "app.kubernetes.io/name": "prometheus" } },
    egress: {
      registryCIDRs: ["10.20.0.0/16"],
      registryPorts: [443, 5000],
      apiServerCIDR: "10.0.0.1/32",
      extraRules: [{
        to: [{ ipBlock: { cidr: "169.254.169.254/32" } }],
        ports: [{ port: 80, protocol: "TCP" }],
      }],
    },
  },
};

/** CA from an existing Secret (appended), chart-made AWS Secret, GKE WI, no leader election/metrics. */
const CA_SECRET_APPEND = {
  caBundle: { enabled: true, existingSecret: "corp-ca", key: "bundle.pem", mode: "append" },
  aws: {
    credentials: {
      enabled: true,
      accessKeyId: "AKIAEXAMPLE",
      secretAccessKey: "secret/example",
      sessionToken: "session",
      region: "eu-west-1",
    },
  },
  serviceAccount: {
    annotations: { "iam.gke.io/gcp-service-account": "portager@proj.iam.gserviceaccount.com" },
  },
  leaderElection: { enabled: false },
  metrics: { enabled: false },
};

/** CA from an existing ConfigMap, a ServiceAccount the chart does not create, PDB by maxUnavailable. */
const CA_CONFIGMAP_OWN_SA = {
  runtimeFlags: "legacy",
  caBundle: { enabled: true, existingConfigMap: "trust-bundle", mode: "append" },
  serviceAccount: { create: false, name: "portager-own" },
  podDisruptionBudget: { enabled: true, maxUnavailable: 1 },
  networkPolicy: { enabled: true },
};

/** Three shards of two replicas each, with PDBs, the webhook and a NetworkPolicy over all of them. */
const SHARDED = {
  shards: 3,
  replicaCount: 2,
  leaderElection: { enabled: true, leaseName: "portager-test-leader" },
  podDisruptionBudget: { enabled: true, minAvailable: 1 },
  webhook: { enabled: true, existingSecret: "portager-webhook" },
  networkPolicy: { enabled: true },
};

const VALUE_SETS: Record<string, Record<string, unknown>> = {
  defaults: {},
  "shards: 3 × 2 replicas, PDBs, webhook, NetworkPolicy": SHARDED,
  "all features (caBundle inline, mode replace, IRSA, aws.existingSecret)": ALL_FEATURES,
  "caBundle existingSecret append, aws.credentials, GKE Workload Identity": CA_SECRET_APPEND,
  "caBundle existingConfigMap, own ServiceAccount, PDB maxUnavailable": CA_CONFIGMAP_OWN_SA,
};

// ---------------------------------------------------------------------------------------------
// Helpers over rendered objects.

function only(objects: RenderedObject[], kind: string): RenderedObject {
  const found = objects.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `expected one ${kind}, got ${found.map((o) => o.metadata.name).join(", ")}`);
  return found[0];
}

function kinds(objects: RenderedObject[]): string[] {
  return objects.map((o) => o.kind).sort();
}

function named(objects: RenderedObject[], kind: string, name: string): RenderedObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(found, `no ${kind} ${name} in ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(", ")}`);
  return found;
}

// deno-lint-ignore no-explicit-any
function verbsOf(role: RenderedObject, resource: string): any[] {
  return role.rules.filter((x: { resources?: string[] }) => x.resources?.includes(resource)).flatMap((
    x: { verbs: string[] },
  ) => x.verbs);
}

// deno-lint-ignore no-explicit-any
function container(deployment: RenderedObject): any {
  return deployment.spec.template.spec.containers[0];
}

function envValue(deployment: RenderedObject, name: string): string | undefined {
  return (container(deployment).env as Array<{ name: string; value?: string }>).find((e) => e.name === name)
    ?.value;
}

/** The hardening the issue asks for, on any pod template (chart or deploy/). */
function assertHardened(deployment: RenderedObject): void {
  const pod = deployment.spec.template.spec;
  const c = container(deployment);
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(pod.securityContext.runAsUser, 65532, "numeric user, so the kubelet can verify non-root");
  assert.equal(pod.securityContext.seccompProfile.type, "RuntimeDefault");
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.deepEqual(c.securityContext.capabilities.drop, ["ALL"]);
  assert.equal(c.securityContext.seccompProfile.type, "RuntimeDefault");
  assert.equal(c.livenessProbe.httpGet.path, "/healthz");
  assert.equal(c.readinessProbe.httpGet.path, "/readyz");
  // the probes use a port the container declares (its own "health" port with upstream's flags)
  const portNames = (c.ports as Array<{ name: string }>).map((p) => p.name);
  assert.ok(
    portNames.includes(c.livenessProbe.httpGet.port),
    `${c.livenessProbe.httpGet.port} in ${portNames}`,
  );
  assert.equal(c.readinessProbe.httpGet.port, c.livenessProbe.httpGet.port);
  assert.deepEqual(c.resources, {
    requests: { cpu: "10m", memory: "64Mi" },
    limits: { cpu: "500m", memory: "128Mi" },
  });
  assert.ok(
    (c.volumeMounts as Array<{ mountPath: string }>).some((m) => m.mountPath === "/tmp"),
    "a writable /tmp on the read-only root filesystem",
  );
}

// ---------------------------------------------------------------------------------------------
// Static checks.

/** The Dockerfile's instructions (comments dropped, continuation lines joined). */
function dockerInstructions(): string[] {
  const lines = readRepoFile("Dockerfile").split("\n").map((l) => l.trim()).filter((l) =>
    l && !l.startsWith("#")
  );
  const instructions: string[] = [];
  for (const line of lines) {
    const prev = instructions.at(-1);
    if (prev?.endsWith("\\")) instructions[instructions.length - 1] = prev.slice(0, -1).trim() + " " + line;
    else instructions.push(line);
  }
  return instructions;
}

/** The builder's compile step: the binary as /portager, and /manager (upstream's name) linking to it. */
const IMAGE_BUILD = "deno task compile && ./dist/portager version && mkdir image && " +
  "mv dist/portager image/portager && ln -s portager image/manager";

Deno.test("Dockerfile: pinned Deno builder runs `deno task compile`; distroless nonroot runs only the binary", () => {
  const instructions = dockerInstructions();
  const froms = instructions.map((l, i) => [l, i] as const).filter(([l]) => /^FROM\s/i.test(l));
  assert.equal(froms.length, 2, "two stages");
  const pinnedDeno = JSON.parse(readRepoFile("tools/deno/package.json")).devDependencies.deno;
  assert.equal(
    froms[0][0],
    `FROM denoland/deno:${pinnedDeno} AS builder`,
    "builder pinned to tools/deno/package.json's Deno",
  );
  assert.equal(froms[1][0], "FROM gcr.io/distroless/cc-debian12:nonroot");

  const builder = instructions.slice(froms[0][1] + 1, froms[1][1]);
  assert.ok(builder.includes(`RUN ${IMAGE_BUILD}`), "builder runs deno task compile and lays out image/");
  const compileTask = denoJson().tasks.compile;
  const output = compileTask.match(/--output[= ](\S+)/)?.[1];
  assert.equal(output, "dist/portager", "compile writes dist/portager");

  const final = instructions.slice(froms[1][1] + 1);
  const copies = final.filter((l) => /^COPY\s/i.test(l));
  assert.deepEqual(
    copies,
    ["COPY --from=builder /src/image/ /"],
    "only image/: the binary and its /manager link",
  );
  assert.ok(!final.some((l) => /^(RUN|ADD)\s/i.test(l)), "nothing else runs or is added in the final stage");
  assert.equal(final.filter((l) => /^USER\s/.test(l)).at(-1), "USER nonroot");
  const entry = final.filter((l) => l.startsWith("ENTRYPOINT")).at(-1)!;
  assert.deepEqual(JSON.parse(entry.slice("ENTRYPOINT".length)), ["/portager", "run"]);
  // The builder's WORKDIR is where the COPY source comes from.
  assert.ok(builder.includes("WORKDIR /src"));

  const ignore = readRepoFile(".dockerignore").split("\n").map((l) => l.trim());
  for (const needed of ["!deno.json", "!deno.lock", "!main.ts", "!src/", "!scripts/bundle_lazy_require.ts"]) {
    assert.ok(ignore.includes(needed), `.dockerignore lets ${needed.slice(1)} into the build context`);
  }
  assert.ok(builder.includes("RUN deno install --frozen"), "dependencies exactly as locked");
});

Deno.test("Docker builder stage: its COPY inputs and RUN steps install --frozen and bundle a program that runs", async () => {
  const instructions = dockerInstructions();
  const builder = instructions.slice(0, instructions.findIndex((l, i) => i > 0 && l.startsWith("FROM ")));
  const sources = builder.filter((l) => l.startsWith("COPY ")).flatMap((l) => l.split(/\s+/).slice(1, -1));
  assert.deepEqual(sources, ["deno.json", "deno.lock", "main.ts", "src/", "scripts/bundle_lazy_require.ts"]);
  const dir = await Deno.makeTempDir({ prefix: "portager-docker-context-" });
  try {
    for (const source of sources) {
      const out = await new Deno.Command("cp", { args: ["-r", "--parents", source, dir], cwd: ROOT.pathname })
        .output();
      assert.ok(out.success);
    }
    // .dockerignore keeps the unit tests out of the context
    for (const entry of [...Deno.readDirSync(`${dir}/src`)].filter((e) => e.isDirectory)) {
      for (const f of Deno.readDirSync(`${dir}/src/${entry.name}`)) {
        if (f.name.endsWith("_test.ts")) await Deno.remove(`${dir}/src/${entry.name}/${f.name}`);
      }
    }
    // The builder's ENV and RUN steps, in order, with this Deno first on PATH. Not run: apt-get
    // (this host has a CA file) and the compile + binary check, which need the runtime download;
    // `deno task bundle` stands in for `deno task compile` (its first step).
    const env: Record<string, string> = {
      NO_COLOR: "1",
      PATH: `${DENO.slice(0, DENO.lastIndexOf("/"))}:${Deno.env.get("PATH")}`,
    };
    let ranCompile = false;
    for (const line of builder) {
      if (line.startsWith("ENV ")) {
        const [name, value] = line.slice(4).split("=");
        env[name] = value;
      }
      if (!line.startsWith("RUN ") || line.includes("apt-get")) continue;
      let command = line.slice(4);
      if (command.includes("deno task compile")) {
        // The same layout, with the bundle standing in for the binary.
        assert.equal(command, IMAGE_BUILD);
        // `deno task bundle` writes dist/bundle/: main.js, which compile embeds, and its chunks
        command = "deno task bundle && mkdir image && cp dist/bundle/* image/ && " +
          "ln -s main.js image/portager && ln -s portager image/manager";
        ranCompile = true;
      }
      const out = await new Deno.Command("/bin/sh", { args: ["-c", command], cwd: dir, env, stdin: "null" })
        .output();
      const dec = new TextDecoder();
      assert.ok(out.success, `RUN ${command}\n${dec.decode(out.stderr)}${dec.decode(out.stdout)}`);
    }
    assert.ok(ranCompile);
    // /manager resolves to the binary
    assert.equal(await Deno.readLink(`${dir}/image/manager`), "portager");
    const version = await runDeno([...asCompiled(), "image/manager", "version"], { cwd: dir });
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, /^portager /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("generated CRD: deploy/crd.yaml and the chart's crds/ match src/api (scripts/gen_manifests.ts)", async () => {
  assert.deepEqual(GENERATED_CRD_PATHS, ["deploy/crd.yaml", "charts/portager/crds/imagesyncs.yaml"]);
  assert.deepEqual(
    await driftedManifests(),
    [],
    "regenerate with: deno run --allow-read --allow-write scripts/gen_manifests.ts",
  );
});

Deno.test("versions agree: chart appVersion, deploy/ image tags and the program's VERSION", () => {
  const chart = yaml.load(readRepoFile("charts/portager/Chart.yaml")) as Record<string, string>;
  assert.equal(chart.appVersion, VERSION);
  const deployment = parseManifests(readRepoFile("deploy/deployment.yaml"))[0];
  assert.equal(container(deployment).image, `ghcr.io/portager/portager:${VERSION}`);
  const kustomization = yaml.load(readRepoFile("deploy/kustomization.yaml")) as {
    images: Array<{ name: string; newTag: string }>;
  };
  assert.deepEqual(kustomization.images, [{ name: "ghcr.io/portager/portager", newTag: VERSION }]);
});

Deno.test("deploy/: kustomization lists every manifest; the Deployment is hardened and probes /healthz /readyz", () => {
  const kustomization = yaml.load(readRepoFile("deploy/kustomization.yaml")) as { resources: string[] };
  const files = [...Deno.readDirSync(new URL("deploy/", ROOT))]
    .map((e) => e.name)
    .filter((n) => n.endsWith(".yaml") && n !== "kustomization.yaml")
    .sort();
  assert.deepEqual([...kustomization.resources].sort(), files);
  const deployment = parseManifests(readRepoFile("deploy/deployment.yaml"))[0];
  assertHardened(deployment);
  const args = container(deployment).args as string[];
  assert.ok(args.includes("--leader-elect"));
  assert.ok(
    args.includes("--metrics-bind-address=:8443") && args.includes("--health-probe-bind-address=:8081"),
  );
  assert.equal(container(deployment).name, "manager");
  assert.equal(deployment.metadata.namespace, "portager-system");
  assert.equal(deployment.spec.template.spec.serviceAccountName, "portager");
});

// ---------------------------------------------------------------------------------------------
// helm lint and helm template.

Deno.test("helm lint --strict passes for every value set", async () => {
  for (const values of Object.values(VALUE_SETS)) {
    const out = await helmLint(CHART, { values: [values] });
    assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

Deno.test("helm refuses values that cannot work, naming the value", async (t) => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ["caBundle.mode outside append|replace (schema)", { caBundle: { mode: "both" } }, /caBundle[./]mode/],
    ["a misspelt top-level value (schema)", { replicas: 2 }, /replicas/],
    ["logging.format (schema)", { logging: { format: "xml" } }, /logging[./]format/],
    ["caBundle enabled without a source", { caBundle: { enabled: true } }, /exactly one of caBundle/],
    [
      "caBundle with two sources",
      { caBundle: { enabled: true, inline: TEST_CA_PEM, existingSecret: "x" } },
      /existingSecret, inline/,
    ],
    [
      "two replicas without leader election",
      { replicaCount: 2, leaderElection: { enabled: false } },
      /leaderElection/,
    ],
    [
      "aws.credentials and aws.existingSecret together",
      {
        aws: { existingSecret: "a", credentials: { enabled: true, accessKeyId: "k", secretAccessKey: "s" } },
      },
      /not both/,
    ],
    ["aws.credentials without keys", { aws: { credentials: { enabled: true } } }, /accessKeyId/],
    ["webhook without its Secret", { webhook: { enabled: true } }, /webhook\.existingSecret/],
    [
      "upstream's image kept from upstream's values",
      { image: { repository: "ghcr.io/jarodr47/portager" } },
      /image\.repository is upstream's image/,
    ],
    [
      "limits.syncTimeout not a duration (schema)",
      { limits: { syncTimeout: "soon" } },
      /limits[./]syncTimeout/,
    ],
    ["limits.maxManifests below 1 (schema)", { limits: { maxManifests: 0 } }, /limits[./]maxManifests/],
    [
      "limits.minTransferRate not a byte count (schema)",
      { limits: { minTransferRate: "fast" } },
      /limits[./]minTransferRate/,
    ],
    ["shards above 256 (schema)", { shards: 257 }, /shards/],
    ["shards 0 (schema)", { shards: 0 }, /shards/],
    ["shards not a whole number (schema)", { shards: 2.5 }, /shards/],
    [
      "shards without leader election",
      { shards: 2, leaderElection: { enabled: false } },
      /shards > 1 needs leaderElection\.enabled/,
    ],
    [
      "caBundle mounted where the binary may not read",
      { caBundle: { enabled: true, existingSecret: "ca", mountPath: "/certs" } },
      /mountPath must be \/etc\/portager/,
    ],
  ];
  for (const [name, values, message] of cases) {
    await t.step(name, async () => {
      const err = await helmTemplate(CHART, { values: [values] }).then(() => undefined, (e) => e);
      assert.ok(err instanceof HelmError, `helm accepted ${JSON.stringify(values)}`);
      assert.match(err.output, message);
    });
  }
});

Deno.test("helm template: defaults render the operator as upstream names it, least-privilege RBAC, the metrics Service", async () => {
  const objects = await helmTemplate(CHART);
  assert.deepEqual(kinds(objects), [
    "ClusterRole",
    "ClusterRole",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterRoleBinding",
    "Deployment",
    "Role",
    "RoleBinding",
    "Service",
    "ServiceAccount",
  ]);
  // upstream Portager v0.5's names, labels and container name
  const deployment = named(objects, "Deployment", "portager-controller-manager");
  assert.deepEqual(deployment.spec.selector.matchLabels, {
    "app.kubernetes.io/name": "portager",
    "app.kubernetes.io/instance": "portager",
    "control-plane": "controller-manager",
  });
  assert.equal(deployment.metadata.labels["control-plane"], "controller-manager");
  assertHardened(deployment);
  const c = container(deployment);
  assert.equal(c.name, "manager");
  assert.equal(c.image, `ghcr.io/portager/portager:${VERSION}`);
  // upstream's flags (runtimeFlags=upstream), then ours
  assert.deepEqual(c.args, [
    "--leader-elect",
    "--leader-election-id=c8073f84.portager.io",
    "--health-probe-bind-address=:8081",
    "--metrics-bind-address=:8443",
    "--metrics-secure=true",
    "--log-format=json",
    "--log-level=info",
    "--max-concurrent-syncs=2",
    "--grace-period=25s",
  ]);
  assert.equal(deployment.spec.template.spec.terminationGracePeriodSeconds, 30);
  assert.deepEqual(c.env.map((e: { name: string }) => e.name), ["POD_NAMESPACE", "POD_NAME"]);
  assert.equal(c.env[0].valueFrom.fieldRef.fieldPath, "metadata.namespace", "the Lease namespace");
  assert.equal(c.envFrom, undefined);
  assert.equal(deployment.spec.template.spec.serviceAccountName, "portager");
  assert.equal(only(objects, "ServiceAccount").metadata.name, "portager");

  const role = named(objects, "ClusterRole", "portager-manager-role");
  assert.deepEqual(verbsOf(role, "secrets"), [], "no Secret access unless tenancy.* grants it");
  assert.deepEqual(verbsOf(role, "imagesyncs"), ["get", "list", "watch", "patch", "update"]);
  assert.deepEqual(verbsOf(role, "imagesyncs/status"), ["get", "patch", "update"]);
  assert.deepEqual(verbsOf(role, "events"), ["create", "patch"]);
  assert.deepEqual(named(objects, "ClusterRole", "portager-metrics-reader").rules, [{
    nonResourceURLs: ["/metrics"],
    verbs: ["get"],
  }]);
  assert.equal(
    named(objects, "ClusterRoleBinding", "portager-manager-rolebinding").roleRef.name,
    role.metadata.name,
  );
  const leaseRole = named(objects, "Role", "portager-leader-election-role");
  assert.equal(leaseRole.metadata.namespace, "portager-system");
  assert.deepEqual(leaseRole.rules, [
    { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
    {
      apiGroups: ["coordination.k8s.io"],
      resources: ["leases"],
      resourceNames: ["c8073f84.portager.io"],
      verbs: ["get", "update"],
    },
  ]);
  named(objects, "RoleBinding", "portager-leader-election-rolebinding");
  for (const o of objects) {
    for (const rule of o.rules ?? []) assert.ok(!rule.verbs.includes("delete") && !rule.verbs.includes("*"));
  }
  const service = named(objects, "Service", "portager-metrics-service");
  assert.deepEqual(service.spec.ports, [{ name: "https", port: 8443, targetPort: 8443, protocol: "TCP" }]);
  assert.deepEqual(service.spec.selector, deployment.spec.selector.matchLabels);

  // namespace.create=true: the release Namespace, never deleted by Helm
  const withNs = await helmTemplate(CHART, {
    values: [{ namespace: { create: true, labels: { "pod-security.kubernetes.io/enforce": "restricted" } } }],
  });
  const nsObject = only(withNs, "Namespace");
  assert.equal(nsObject.metadata.name, "portager-system");
  assert.equal(nsObject.metadata.annotations["helm.sh/resource-policy"], "keep");
  assert.equal(nsObject.metadata.labels["pod-security.kubernetes.io/enforce"], "restricted");
  assert.ok(!objects.some((o) => o.kind === "Namespace"), "not by default: helm install could not create it");

  // runtimeFlags=legacy: the flags of binaries before upstream's, one plain-HTTP port
  const legacy = await helmTemplate(CHART, { values: [{ runtimeFlags: "legacy" }] });
  const lc = container(only(legacy, "Deployment"));
  assert.deepEqual(lc.args.slice(0, 3), [
    "--leader-elect",
    "--lease-name=c8073f84.portager.io",
    "--metrics-addr=:8443",
  ]);
  assert.deepEqual(lc.ports, [{ name: "http-metrics", containerPort: 8443, protocol: "TCP" }]);
  assert.equal(lc.readinessProbe.httpGet.port, "http-metrics");
  assert.deepEqual(only(legacy, "Service").spec.ports[0].name, "http-metrics");
  assert.ok(
    !legacy.some((o) => o.metadata.name === "portager-metrics-auth-role"),
    "no TokenReview without TLS",
  );
});

Deno.test("helm template: runtimeFlags=upstream passes upstream's flags; probes on 8081, metrics on https/8443 with authn/authz RBAC", async () => {
  const objects = await helmTemplate(CHART, { values: [{ metrics: { serviceMonitor: { enabled: true } } }] });
  const deployment = named(objects, "Deployment", "portager-controller-manager");
  const c = container(deployment);
  assert.deepEqual(c.args.slice(0, 5), [
    "--leader-elect",
    "--leader-election-id=c8073f84.portager.io",
    "--health-probe-bind-address=:8081",
    "--metrics-bind-address=:8443",
    "--metrics-secure=true",
  ]);
  assert.deepEqual(c.ports, [
    { name: "https", containerPort: 8443, protocol: "TCP" },
    { name: "health", containerPort: 8081, protocol: "TCP" },
  ]);
  assert.equal(c.livenessProbe.httpGet.port, "health");
  assert.equal(c.readinessProbe.httpGet.port, "health");
  const service = named(objects, "Service", "portager-metrics-service");
  assert.deepEqual(service.spec.ports, [{ name: "https", port: 8443, targetPort: 8443, protocol: "TCP" }]);
  const sm = named(objects, "ServiceMonitor", "portager-metrics-monitor");
  assert.deepEqual(sm.spec.endpoints[0], {
    port: "https",
    path: "/metrics",
    interval: "30s",
    scrapeTimeout: "10s",
    scheme: "https",
    bearerTokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
    tlsConfig: { insecureSkipVerify: true },
  });
  const auth = named(objects, "ClusterRole", "portager-metrics-auth-role");
  assert.deepEqual(auth.rules, [
    { apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"] },
    { apiGroups: ["authorization.k8s.io"], resources: ["subjectaccessreviews"], verbs: ["create"] },
  ]);
  assert.equal(
    named(objects, "ClusterRoleBinding", "portager-metrics-auth-rolebinding").roleRef.name,
    auth.metadata.name,
  );
  // metrics off: no metrics port, Service or ClusterRoles for it; probes keep their port
  const off = await helmTemplate(CHART, { values: [{ metrics: { enabled: false } }] });
  const offContainer = container(only(off, "Deployment"));
  assert.ok(offContainer.args.includes("--metrics-bind-address=0"));
  assert.deepEqual(offContainer.ports.map((p: { name: string }) => p.name), ["health"]);
  assert.ok(!off.some((o) => o.kind === "Service" || o.metadata.name.includes("metrics")));
});

Deno.test("helm template: Secret access per namespace (Role + RoleBinding each), the ClusterRole only when asked; tenancy flags only when set", async () => {
  const perNs = await helmTemplate(CHART, {
    values: [{ tenancy: { secretNamespaces: ["team-a", "team-b"] } }],
  });
  assert.deepEqual(verbsOf(named(perNs, "ClusterRole", "portager-manager-role"), "secrets"), []);
  for (const ns of ["team-a", "team-b"]) {
    const role = perNs.find((o) => o.kind === "Role" && o.metadata.namespace === ns)!;
    assert.equal(role.metadata.name, "portager-secret-reader");
    assert.deepEqual(role.rules, [{ apiGroups: [""], resources: ["secrets"], verbs: ["get"] }]);
    const binding = perNs.find((o) => o.kind === "RoleBinding" && o.metadata.namespace === ns)!;
    assert.deepEqual(binding.roleRef, {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "Role",
      name: role.metadata.name,
    });
    assert.deepEqual(binding.subjects, [{
      kind: "ServiceAccount",
      name: "portager",
      namespace: "portager-system",
    }]);
  }
  const args = container(only(perNs, "Deployment")).args as string[];
  assert.ok(
    !args.some((a) => a.startsWith("--allow-cross") || a.startsWith("--cloud-identity")),
    args.join(" "),
  );

  // the watched namespaces by default
  const watched = await helmTemplate(CHART, { values: [{ watchNamespaces: ["team-c"] }] });
  assert.deepEqual(
    watched.filter((o) => o.metadata.name === "portager-secret-reader").map((o) =>
      `${o.kind}/${o.metadata.namespace}`
    ),
    ["Role/team-c", "RoleBinding/team-c"],
  );

  const clusterWide = await helmTemplate(CHART, {
    values: [{
      tenancy: {
        secretsClusterWide: true,
        allowCrossNamespaceRefs: true,
        cloudIdentityNamespaces: ["ci", "prod"],
        allowedRegistries: ["ghcr.io", "*.dkr.ecr.us-east-1.amazonaws.com"],
      },
    }],
  });
  assert.deepEqual(verbsOf(named(clusterWide, "ClusterRole", "portager-manager-role"), "secrets"), ["get"]);
  assert.ok(!clusterWide.some((o) => o.metadata.name === "portager-secret-reader"));
  const cwArgs = container(only(clusterWide, "Deployment")).args as string[];
  assert.ok(cwArgs.includes("--allow-cross-namespace-refs"));
  assert.ok(cwArgs.includes("--cloud-identity-namespaces=ci,prod"));
  assert.ok(cwArgs.includes("--allowed-registries=ghcr.io,*.dkr.ecr.us-east-1.amazonaws.com"));
  // a pattern with a scheme or path is refused by the chart's schema
  await assert.rejects(
    helmTemplate(CHART, { values: [{ tenancy: { allowedRegistries: ["https://ghcr.io/acme"] } }] }),
  );
});

Deno.test("helm template: all features on", async () => {
  const objects = await helmTemplate(CHART, { values: [ALL_FEATURES] });
  assert.deepEqual(kinds(objects), [
    "ClusterRole",
    "ClusterRole",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterRoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "ConfigMap",
    "Deployment",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "PrometheusRule",
    "Role",
    "Role",
    "RoleBinding",
    "RoleBinding",
    "Service",
    "Service",
    "ServiceAccount",
    "ServiceMonitor",
  ]);
  const deployment = only(objects, "Deployment");
  assertHardened(deployment);
  const pod = deployment.spec.template.spec;
  const c = container(deployment);
  assert.equal(deployment.spec.replicas, 2);
  assert.equal(c.image, `ghcr.io/portager/portager@sha256:${"ab".repeat(32)}`);
  assert.deepEqual(c.args, [
    "--leader-elect",
    "--leader-election-id=portager-test-leader",
    "--health-probe-bind-address=:8081",
    "--metrics-bind-address=:9090",
    "--metrics-secure=true",
    "--log-format=text",
    "--log-level=debug",
    "--max-concurrent-syncs=4",
    "--grace-period=55s",
    "--namespace=team-a,team-b",
    "--allow-cross-namespace-refs",
    "--cloud-identity-namespaces=team-a",
    "--webhook-bind-address=:8082",
    "--webhook-secret-file=/etc/portager/webhook/secret",
    "--insecure-registry=registry.local:5000",
    "--sync-timeout=30m",
    "--request-timeout=45s",
    "--min-transfer-rate=64Ki",
    "--max-manifests=200",
    "--max-manifest-bytes=16777216",
    "--max-tags=5000",
    "--sigstore-trusted-root=/etc/portager/sigstore/trusted_root.json",
    "--max-concurrent-syncs=5",
  ]);
  // the Sigstore trusted root: the ConfigMap's one key, read-only under /etc/portager (the binary's reads)
  const rootVolume = pod.volumes.find((v: { name: string }) => v.name === "sigstore-trusted-root");
  assert.deepEqual(rootVolume.configMap, {
    name: "sigstore-trusted-root",
    defaultMode: 292,
    items: [{ key: "trusted_root.json", path: "trusted_root.json" }],
  });
  assert.ok(
    c.volumeMounts.some((m: { name: string; mountPath: string; readOnly?: boolean }) =>
      m.name === "sigstore-trusted-root" && m.mountPath === "/etc/portager/sigstore" && m.readOnly
    ),
  );
  // caBundle inline + replace: a ConfigMap, mounted; SSL_CERT_FILE replaces the trust store.
  const cm = named(objects, "ConfigMap", "portager-ca-bundle");
  assert.equal(cm.data["ca.crt"], TEST_CA_PEM);
  assert.equal(envValue(deployment, "SSL_CERT_FILE"), "/etc/portager/ca/ca.crt");
  assert.equal(envValue(deployment, "DENO_TLS_CA_STORE"), "system");
  assert.ok(!c.args.some((a: string) => a.startsWith("--ca-file")), "replace mode does not append");
  const caVolume = pod.volumes.find((v: { name: string }) => v.name === "ca-bundle");
  assert.equal(caVolume.configMap.name, cm.metadata.name);
  assert.ok(
    c.volumeMounts.some((m: { name: string; readOnly?: boolean }) => m.name === "ca-bundle" && m.readOnly),
  );
  assert.match(deployment.spec.template.metadata.annotations["checksum/ca-bundle"], /^[0-9a-f]{64}$/);
  // IRSA and AWS credentials from an existing Secret
  assert.equal(
    only(objects, "ServiceAccount").metadata.annotations["eks.amazonaws.com/role-arn"],
    "arn:aws:iam::123456789012:role/portager-ecr",
  );
  assert.deepEqual(c.envFrom, [{ secretRef: { name: "aws-creds" } }]);
  // extras and scheduling pass through
  assert.equal(envValue(deployment, "HTTPS_PROXY"), "http://proxy.internal:3128");
  assert.ok(pod.volumes.some((v: { name: string }) => v.name === "scratch"));
  assert.ok(c.volumeMounts.some((m: { mountPath: string }) => m.mountPath === "/scratch"));
  assert.deepEqual(pod.nodeSelector, ALL_FEATURES.nodeSelector);
  assert.deepEqual(pod.tolerations, ALL_FEATURES.tolerations);
  assert.deepEqual(pod.affinity, ALL_FEATURES.affinity);
  assert.deepEqual(pod.topologySpreadConstraints, ALL_FEATURES.topologySpreadConstraints);
  assert.equal(pod.priorityClassName, "system-cluster-critical");
  assert.deepEqual(pod.imagePullSecrets, [{ name: "pull-secret" }]);
  assert.equal(deployment.spec.template.metadata.labels.team, "platform");
  assert.equal(deployment.spec.template.metadata.annotations["example.com/team"], "platform");
  assert.equal(c.startupProbe.httpGet.path, "/healthz");
  assert.equal(pod.terminationGracePeriodSeconds, 60);
  // lease Role follows the lease name
  assert.deepEqual(
    named(objects, "Role", "portager-leader-election-role").rules[1].resourceNames,
    ["portager-test-leader"],
  );
  // Secrets readable in team-a only; Prometheus may read /metrics
  assert.equal(named(objects, "Role", "portager-secret-reader").metadata.namespace, "team-a");
  assert.deepEqual(named(objects, "ClusterRoleBinding", "portager-metrics-reader").subjects, [
    { kind: "ServiceAccount", name: "prometheus", namespace: "monitoring" },
  ]);
  // alerts and the dashboard (their content: tests/alerts_test.ts)
  assert.equal(only(objects, "PrometheusRule").metadata.labels.release, "kps");
  const dashboard = named(objects, "ConfigMap", "portager-dashboard");
  assert.equal(dashboard.metadata.labels.grafana_dashboard, "1");
  assert.equal(JSON.parse(dashboard.data["portager.json"]).uid, "portager-overview");
  // ServiceMonitor scrapes the metrics Service by its port name
  const sm = only(objects, "ServiceMonitor");
  const svc = named(objects, "Service", "portager-metrics-service");
  assert.equal(sm.spec.endpoints[0].scheme, "https");
  assert.equal(sm.metadata.labels.release, "kps");
  assert.equal(sm.spec.endpoints[0].port, svc.spec.ports[0].name);
  for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) assert.equal(svc.metadata.labels[k], v);
  // PDB and NetworkPolicy select the operator's pods
  const pdb = only(objects, "PodDisruptionBudget");
  assert.equal(pdb.spec.minAvailable, 1);
  assert.deepEqual(pdb.spec.selector.matchLabels, deployment.spec.selector.matchLabels);
  const np = only(objects, "NetworkPolicy");
  assert.deepEqual(np.spec.podSelector.matchLabels, deployment.spec.selector.matchLabels);
  assert.deepEqual(np.spec.ingress[0].ports, [{ port: 9090, protocol: "TCP" }]);
  // the webhook: its own port, Service and ingress rule, the secret mounted where the binary may read
  assert.deepEqual(np.spec.ingress[1], {
    ports: [{ port: 8082, protocol: "TCP" }],
    from: [{ ipBlock: { cidr: "10.30.0.0/16" } }],
  });
  const hook = named(objects, "Service", "portager-webhook");
  assert.deepEqual(hook.spec.ports, [{
    name: "webhook",
    port: 8082,
    targetPort: "webhook",
    protocol: "TCP",
  }]);
  assert.deepEqual(hook.spec.selector, deployment.spec.selector.matchLabels);
  assert.ok(
    c.ports.some((p: { name: string; containerPort: number }) =>
      p.name === "webhook" && p.containerPort === 8082
    ),
  );
  assert.deepEqual(pod.volumes.find((v: { name: string }) => v.name === "webhook-secret").secret, {
    secretName: "portager-webhook",
    defaultMode: 0o400,
    items: [{ key: "secret", path: "secret" }],
  });
  assert.deepEqual(np.spec.ingress[0].from[0].podSelector.matchLabels, {
    "app.kubernetes.io/name": "prometheus",
  });
  const egressPorts = np.spec.egress.map((r: { ports: Array<{ port: number }> }) =>
    r.ports.map((p) => p.port)
  );
  assert.deepEqual(egressPorts, [[53, 53], [443, 5000], [443, 6443], [80]]);
  assert.deepEqual(np.spec.egress[1].to, [{ ipBlock: { cidr: "10.20.0.0/16" } }]);
});

Deno.test("helm template: caBundle from a Secret appends; aws.credentials become a Secret, never plain env", async () => {
  const objects = await helmTemplate(CHART, { values: [CA_SECRET_APPEND] });
  assert.deepEqual(kinds(objects), [
    "ClusterRole",
    "ClusterRoleBinding",
    "Deployment",
    "Secret",
    "ServiceAccount",
  ]);
  const deployment = only(objects, "Deployment");
  const c = container(deployment);
  assert.ok(c.args.includes("--ca-file=/etc/portager/ca/bundle.pem"));
  assert.ok(c.args.includes("--leader-elect=false"));
  assert.equal(envValue(deployment, "SSL_CERT_FILE"), undefined, "append keeps the public roots");
  const caVolume = deployment.spec.template.spec.volumes.find((v: { name: string }) =>
    v.name === "ca-bundle"
  );
  assert.deepEqual(caVolume.secret, {
    secretName: "corp-ca",
    defaultMode: 0o444,
    items: [{ key: "bundle.pem", path: "bundle.pem" }],
  });
  const secret = only(objects, "Secret");
  assert.deepEqual(secret.stringData, {
    AWS_ACCESS_KEY_ID: "AKIAEXAMPLE",
    AWS_SECRET_ACCESS_KEY: "secret/example",
    AWS_SESSION_TOKEN: "session",
    AWS_REGION: "eu-west-1",
  });
  assert.deepEqual(c.envFrom, [{ secretRef: { name: secret.metadata.name } }]);
  assert.ok(!JSON.stringify(deployment).includes("secret/example"), "the secret key is not in the pod spec");
  assert.match(deployment.spec.template.metadata.annotations["checksum/aws-credentials"], /^[0-9a-f]{64}$/);
  assert.equal(
    only(objects, "ServiceAccount").metadata.annotations["iam.gke.io/gcp-service-account"],
    "portager@proj.iam.gserviceaccount.com",
  );
});

Deno.test("helm template: caBundle from a ConfigMap; an existing ServiceAccount; PDB by maxUnavailable", async () => {
  const objects = await helmTemplate(CHART, { values: [CA_CONFIGMAP_OWN_SA] });
  assert.ok(!objects.some((o) => o.kind === "ServiceAccount"));
  const deployment = only(objects, "Deployment");
  assert.equal(deployment.spec.template.spec.serviceAccountName, "portager-own");
  for (const binding of objects.filter((o) => o.kind.endsWith("Binding"))) {
    assert.deepEqual(binding.subjects, [{
      kind: "ServiceAccount",
      name: "portager-own",
      namespace: "portager-system",
    }]);
  }
  const caVolume = deployment.spec.template.spec.volumes.find((v: { name: string }) =>
    v.name === "ca-bundle"
  );
  assert.equal(caVolume.configMap.name, "trust-bundle");
  assert.ok(container(deployment).args.includes("--ca-file=/etc/portager/ca/ca.crt"));
  const pdb = only(objects, "PodDisruptionBudget");
  assert.equal(pdb.spec.maxUnavailable, 1);
  assert.equal(pdb.spec.minAvailable, undefined);
});

/** The Lease verbs of a sharded release: create any, list (the gate), get/update its shards', get the unsharded one. */
function shardLeaseRules(leaseName: string, shards: number): unknown[] {
  return [
    { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
    { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["list"] },
    {
      apiGroups: ["coordination.k8s.io"],
      resources: ["leases"],
      resourceNames: Array.from({ length: shards }, (_, i) => `${leaseName}-shard-${i}`),
      verbs: ["get", "update"],
    },
    { apiGroups: ["coordination.k8s.io"], resources: ["leases"], resourceNames: [leaseName], verbs: ["get"] },
  ];
}

Deno.test("helm template: shards: 3 renders a Deployment and PDB per shard with its own args and selector; Services span all shards; Lease RBAC per shard", async () => {
  const objects = await helmTemplate(CHART, { values: [SHARDED] });
  const unsharded = await helmTemplate(CHART, {
    values: [{ ...SHARDED, shards: undefined }],
  });
  const deployments = objects.filter((o) => o.kind === "Deployment");
  assert.deepEqual(
    deployments.map((d) => d.metadata.name),
    [0, 1, 2].map((i) => `portager-controller-manager-shard-${i}`),
  );
  const base = container(only(unsharded, "Deployment")).args as string[];
  const selectors: string[] = [];
  for (const [i, d] of deployments.entries()) {
    const shardLabel = { "portager.portager.io/shard": String(i) };
    assert.equal(d.spec.replicas, 2, "replicaCount pods per shard: an HA pair");
    assert.deepEqual(d.spec.selector.matchLabels, {
      "app.kubernetes.io/name": "portager",
      "app.kubernetes.io/instance": "portager",
      "control-plane": "controller-manager",
      ...shardLabel,
    });
    // the pods carry the selector's labels (the apiserver refuses a Deployment whose do not)
    const podLabels = d.spec.template.metadata.labels;
    for (const [k, v] of Object.entries(d.spec.selector.matchLabels)) assert.equal(podLabels[k], v, k);
    selectors.push(JSON.stringify(d.spec.selector.matchLabels));
    assertHardened(d);
    // everything the unsharded Deployment passes, plus this shard's identity
    const args = container(d).args as string[];
    assert.deepEqual(args.filter((a) => !a.startsWith("--shard")), base);
    assert.deepEqual(args.filter((a) => a.startsWith("--shard")), ["--shards=3", `--shard-index=${i}`]);
    assert.ok(args.includes("--leader-election-id=portager-test-leader"));
    const pdb = named(objects, "PodDisruptionBudget", `${d.metadata.name}`);
    assert.deepEqual(pdb.spec.selector.matchLabels, d.spec.selector.matchLabels);
    assert.equal(pdb.spec.minAvailable, 1);
  }
  assert.equal(new Set(selectors).size, 3, "no pod is selected by two shards' Deployments");
  assert.equal(objects.filter((o) => o.kind === "PodDisruptionBudget").length, 3);
  // metrics and webhook Services and the NetworkPolicy cover every shard's pods
  const common = {
    "app.kubernetes.io/name": "portager",
    "app.kubernetes.io/instance": "portager",
    "control-plane": "controller-manager",
  };
  assert.deepEqual(named(objects, "Service", "portager-metrics-service").spec.selector, common);
  assert.deepEqual(named(objects, "Service", "portager-webhook").spec.selector, common);
  assert.deepEqual(only(objects, "NetworkPolicy").spec.podSelector.matchLabels, common);
  assert.deepEqual(
    named(objects, "Role", "portager-leader-election-role").rules,
    shardLeaseRules("portager-test-leader", 3),
  );
  // unsharded (the default, null or 1): one Deployment as upstream's, no shard flags or list
  for (
    const values of [{ ...SHARDED, shards: undefined }, { ...SHARDED, shards: null }, {
      ...SHARDED,
      shards: 1,
    }]
  ) {
    const one = await helmTemplate(CHART, { values: [values] });
    const d = only(one, "Deployment");
    assert.equal(d.metadata.name, "portager-controller-manager");
    assert.ok(!("portager.portager.io/shard" in d.spec.selector.matchLabels));
    assert.ok(!(container(d).args as string[]).some((a) => a.startsWith("--shard")));
    assert.equal(only(one, "PodDisruptionBudget").metadata.name, "portager-controller-manager");
    assert.ok(!verbsOf(named(one, "Role", "portager-leader-election-role"), "leases").includes("list"));
  }
  // runtimeFlags=legacy passes the same shard flags
  const legacy = await helmTemplate(CHART, { values: [{ shards: 2, runtimeFlags: "legacy" }] });
  const legacyArgs = legacy.filter((o) => o.kind === "Deployment").map((d) =>
    (container(d).args as string[]).filter((a) => a.startsWith("--shard") || a.startsWith("--lease-name"))
  );
  assert.deepEqual(legacyArgs, [
    ["--lease-name=c8073f84.portager.io", "--shards=2", "--shard-index=0"],
    ["--lease-name=c8073f84.portager.io", "--shards=2", "--shard-index=1"],
  ]);
});

Deno.test("chart default Deployment and deploy/deployment.yaml agree on hardening, resources and probes", async () => {
  const chart = only(await helmTemplate(CHART), "Deployment");
  const plain = parseManifests(readRepoFile("deploy/deployment.yaml"))[0];
  const pick = (d: RenderedObject) => {
    const c = container(d);
    return {
      pod: d.spec.template.spec.securityContext,
      container: c.securityContext,
      resources: c.resources,
      liveness: c.livenessProbe,
      readiness: c.readinessProbe,
      ports: c.ports,
      env: c.env,
    };
  };
  assert.deepEqual(pick(plain), pick(chart));
});

// ---------------------------------------------------------------------------------------------
// The apiserver: dry runs, installs, and what the ServiceAccount can and cannot do.

/** REST collection of a rendered object (the kinds the chart and deploy/ contain). */
function collectionPath(o: RenderedObject, namespace: string): string {
  const plural: Record<string, [string, boolean]> = {
    Namespace: ["namespaces", false],
    CustomResourceDefinition: ["customresourcedefinitions", false],
    ClusterRole: ["clusterroles", false],
    ClusterRoleBinding: ["clusterrolebindings", false],
    ServiceAccount: ["serviceaccounts", true],
    Role: ["roles", true],
    RoleBinding: ["rolebindings", true],
    Service: ["services", true],
    Deployment: ["deployments", true],
    ConfigMap: ["configmaps", true],
    Secret: ["secrets", true],
    PodDisruptionBudget: ["poddisruptionbudgets", true],
    NetworkPolicy: ["networkpolicies", true],
    ServiceMonitor: ["servicemonitors", true],
    PrometheusRule: ["prometheusrules", true],
    Pod: ["pods", true],
  };
  const entry = plural[o.kind];
  if (!entry) throw new Error(`no REST mapping for kind ${o.kind}`);
  const base = o.apiVersion.includes("/") ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`;
  const ns = o.metadata.namespace ?? namespace;
  return entry[1] ? `${base}/namespaces/${ns}/${entry[0]}` : `${base}/${entry[0]}`;
}

/** POSTs `o` as admin; returns the status, the JSON body and any admission warnings. */
async function create(
  kube: KubeCluster,
  o: RenderedObject,
  opts: { dryRun?: boolean; namespace?: string } = {},
): Promise<{ status: number; body: Record<string, unknown>; warnings: string[] }> {
  const path = collectionPath(o, opts.namespace ?? "default") +
    (opts.dryRun ? "?dryRun=All&fieldValidation=Strict" : "?fieldValidation=Strict");
  const res = await kube.adminFetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(o),
  });
  const body = await res.json();
  const warnings = res.headers.get("warning") ? [res.headers.get("warning")!] : [];
  return { status: res.status, body, warnings };
}

async function createOk(
  kube: KubeCluster,
  o: RenderedObject,
  opts: { dryRun?: boolean } = {},
): Promise<void> {
  const r = await create(kube, o, opts);
  assert.ok(
    r.status === 201 || r.status === 200,
    `${opts.dryRun ? "dry-run " : ""}create ${o.kind} ${o.metadata.name} → ${r.status}: ${r.body.message}`,
  );
  assert.deepEqual(r.warnings, [], `${o.kind} ${o.metadata.name} drew warnings`);
}

/**
 * A minimal stand-in for a Prometheus-operator CRD (not ours), so the chart's objects of that
 * kind can be validated: `spec` is the schema of their spec.
 */
function monitoringCrd(kind: string, spec: Record<string, unknown>): RenderedObject {
  const plural = `${kind.toLowerCase()}s`;
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${plural}.monitoring.coreos.com` },
    spec: {
      group: "monitoring.coreos.com",
      scope: "Namespaced",
      names: { plural, singular: kind.toLowerCase(), kind, listKind: `${kind}List` },
      versions: [{
        name: "v1",
        served: true,
        storage: true,
        schema: { openAPIV3Schema: { type: "object", properties: { spec } } },
      }],
    },
  };
}

const SERVICE_MONITOR_CRD = monitoringCrd("ServiceMonitor", {
  type: "object",
  required: ["selector", "endpoints"],
  properties: {
    selector: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
    namespaceSelector: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
    endpoints: {
      type: "array",
      items: {
        type: "object",
        properties: {
          port: { type: "string" },
          path: { type: "string" },
          interval: { type: "string" },
          scrapeTimeout: { type: "string" },
          scheme: { type: "string", enum: ["http", "https"] },
          bearerTokenFile: { type: "string" },
          tlsConfig: {
            type: "object",
            properties: { insecureSkipVerify: { type: "boolean" } },
          },
        },
      },
    },
  },
});

/** The PrometheusRule stand-in checks the shape of its rule groups. */
const PROMETHEUS_RULE_CRD = monitoringCrd("PrometheusRule", {
  type: "object",
  properties: {
    groups: {
      type: "array",
      items: {
        type: "object",
        required: ["name", "rules"],
        properties: {
          name: { type: "string" },
          rules: {
            type: "array",
            items: {
              type: "object",
              required: ["expr"],
              properties: {
                alert: { type: "string" },
                expr: { type: "string" },
                for: { type: "string" },
                labels: { type: "object", additionalProperties: { type: "string" } },
                annotations: { type: "object", additionalProperties: { type: "string" } },
              },
            },
          },
        },
      },
    },
  },
});

function namespaceObject(name: string, labels: Record<string, string> = {}): RenderedObject {
  return { apiVersion: "v1", kind: "Namespace", metadata: { name, labels } };
}

/** A namespace enforcing (and warning about) the "restricted" Pod Security Standard. */
function restrictedNamespace(name: string): RenderedObject {
  return namespaceObject(name, {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
  });
}

/** The pod a Deployment would run, to put it through Pod Security admission. */
function podOf(deployment: RenderedObject): RenderedObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: `${deployment.metadata.name}-dry-run`, namespace: deployment.metadata.namespace },
    spec: deployment.spec.template.spec,
  };
}

/** Requests as a ServiceAccount token, trusting the cluster CA. */
class TokenClient {
  readonly #client: Deno.HttpClient;
  constructor(readonly kube: KubeCluster, readonly token: string) {
    this.#client = Deno.createHttpClient({ caCerts: [kube.caPem] });
  }
  async request(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    // A resource whose CRD was just established answers 429 "storage is (re)initializing"
    // with Retry-After until its watch cache is ready; retry as the operator's client does.
    for (let attempt = 0;; attempt++) {
      const res = await fetch(new URL(path, this.kube.server), {
        method,
        client: this.#client,
        headers: {
          authorization: `Bearer ${this.token}`,
          "content-type": method === "PATCH" ? "application/merge-patch+json" : "application/json",
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      if (res.status === 429 && attempt < 5) {
        await new Promise((r) =>
          setTimeout(r, 1000 * Math.min(5, Number(res.headers.get("retry-after")) || 1))
        );
        continue;
      }
      return { status: res.status, body: text ? JSON.parse(text) : {} };
    }
  }
  close(): void {
    this.#client.close();
  }
}

interface AccessCheck {
  verb: string;
  group?: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

async function canI(client: TokenClient, check: AccessCheck): Promise<boolean> {
  const r = await client.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
    apiVersion: "authorization.k8s.io/v1",
    kind: "SelfSubjectAccessReview",
    spec: { resourceAttributes: { group: "", ...check } },
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return (r.body.status as { allowed: boolean }).allowed;
}

function describe(c: AccessCheck): string {
  const res = [c.group, c.resource].filter(Boolean).join("/") + (c.subresource ? `/${c.subresource}` : "");
  return `${c.verb} ${res}${c.name ? ` ${c.name}` : ""} ${
    c.namespace ? `in ${c.namespace}` : "cluster-wide"
  }`;
}

const SYNC_GROUP = "portager.portager.io";

/** What the operator must be able to do, and what it must not (issue 5's least-privilege list). */
function permissionTable(
  ns: string,
  leaseName: string,
  workNs: string,
  secretsEverywhere: boolean,
): Array<[AccessCheck, boolean]> {
  return [
    // Secrets of a namespace not granted (the chart grants per namespace; deploy/ cluster-wide)
    [{ verb: "get", resource: "secrets", namespace: "default", name: "registry-creds" }, secretsEverywhere],
    [{ verb: "list", group: SYNC_GROUP, resource: "imagesyncs" }, true],
    // the authenticated /metrics endpoint
    [{ verb: "create", group: "authentication.k8s.io", resource: "tokenreviews" }, true],
    [{ verb: "create", group: "authorization.k8s.io", resource: "subjectaccessreviews" }, true],
    [{ verb: "watch", group: SYNC_GROUP, resource: "imagesyncs" }, true],
    [{ verb: "get", group: SYNC_GROUP, resource: "imagesyncs", namespace: workNs }, true],
    [{ verb: "patch", group: SYNC_GROUP, resource: "imagesyncs", namespace: workNs }, true],
    [
      { verb: "patch", group: SYNC_GROUP, resource: "imagesyncs", subresource: "status", namespace: workNs },
      true,
    ],
    [{ verb: "get", resource: "secrets", namespace: workNs, name: "registry-creds" }, true],
    [{ verb: "create", resource: "events", namespace: workNs }, true],
    [{ verb: "patch", resource: "events", namespace: workNs }, true],
    [{ verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: ns }, true],
    [{ verb: "get", group: "coordination.k8s.io", resource: "leases", namespace: ns, name: leaseName }, true],
    [
      { verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: ns, name: leaseName },
      true,
    ],
    // no more than needed
    [{ verb: "list", resource: "secrets" }, false],
    [{ verb: "list", resource: "secrets", namespace: workNs }, false],
    [{ verb: "watch", resource: "secrets", namespace: workNs }, false],
    [{ verb: "create", resource: "secrets", namespace: workNs }, false],
    [{ verb: "delete", group: SYNC_GROUP, resource: "imagesyncs", namespace: workNs }, false],
    [{ verb: "create", group: SYNC_GROUP, resource: "imagesyncs", namespace: workNs }, false],
    [{ verb: "delete", resource: "secrets", namespace: workNs }, false],
    [{ verb: "delete", resource: "events", namespace: workNs }, false],
    [
      { verb: "delete", group: "coordination.k8s.io", resource: "leases", namespace: ns, name: leaseName },
      false,
    ],
    [
      {
        verb: "update",
        group: "coordination.k8s.io",
        resource: "leases",
        namespace: workNs,
        name: leaseName,
      },
      false,
    ],
    [{ verb: "get", resource: "configmaps", namespace: workNs }, false],
    [{ verb: "list", resource: "pods", namespace: ns }, false],
  ];
}

/** SelfSubjectRulesReview in each namespace: no rule anywhere grants delete or a wildcard verb. */
async function assertNoDeleteAnywhere(client: TokenClient, namespaces: string[]): Promise<void> {
  for (const namespace of namespaces) {
    const r = await client.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", {
      apiVersion: "authorization.k8s.io/v1",
      kind: "SelfSubjectRulesReview",
      spec: { namespace },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const rules = (r.body.status as { resourceRules: Array<{ verbs: string[]; resources?: string[] }> })
      .resourceRules;
    assert.ok(rules.length > 0);
    for (const rule of rules) {
      for (const verb of ["delete", "deletecollection", "*"]) {
        assert.ok(!rule.verbs.includes(verb), `${namespace}: rule ${JSON.stringify(rule)} grants ${verb}`);
      }
      if (rule.resources?.includes("secrets")) assert.deepEqual(rule.verbs, ["get"]);
    }
  }
}

const WORK_NS = "team-a";

function imageSync(name: string): RenderedObject {
  return {
    apiVersion: `${SYNC_GROUP}/v1alpha1`,
    kind: "ImageSync",
    metadata: { name, namespace: WORK_NS },
    spec: {
      schedule: "@every 1h",
      source: { registry: "127.0.0.1:5000" },
      destination: { registry: "127.0.0.1:5001", auth: { method: "anonymous" } },
      images: [{ name: "library/alpine", tags: ["3.20"] }],
    },
  };
}

/** The operator's own requests, made with its token: each allowed one succeeds, the rest are 403. */
async function exerciseAsOperator(
  kube: KubeCluster,
  client: TokenClient,
  ns: string,
  leaseName: string,
): Promise<void> {
  const isPath = `/apis/${SYNC_GROUP}/v1alpha1/namespaces/${WORK_NS}/imagesyncs`;
  const name = `probe-${crypto.randomUUID().slice(0, 8)}`;
  await kube.apply(imageSync(name));
  assert.equal((await client.request("GET", `/apis/${SYNC_GROUP}/v1alpha1/imagesyncs`)).status, 200);
  assert.equal((await client.request("GET", `${isPath}/${name}`)).status, 200);
  const annotated = await client.request("PATCH", `${isPath}/${name}`, {
    metadata: { annotations: { "portager.portager.io/sync-now": null } },
  });
  assert.equal(annotated.status, 200, JSON.stringify(annotated.body));
  const status = await client.request("PATCH", `${isPath}/${name}/status`, {
    status: { observedGeneration: 1 },
  });
  assert.equal(status.status, 200, JSON.stringify(status.body));
  assert.equal((await client.request("DELETE", `${isPath}/${name}`)).status, 403);

  assert.equal(
    (await client.request("GET", `/api/v1/namespaces/${WORK_NS}/secrets/registry-creds`)).status,
    200,
  );
  assert.equal((await client.request("GET", `/api/v1/namespaces/${WORK_NS}/secrets`)).status, 403);
  assert.equal((await client.request("GET", `/api/v1/secrets`)).status, 403);

  const event = await client.request("POST", `/api/v1/namespaces/${WORK_NS}/events`, {
    apiVersion: "v1",
    kind: "Event",
    metadata: { name: `${name}.probe`, namespace: WORK_NS },
    involvedObject: { apiVersion: `${SYNC_GROUP}/v1alpha1`, kind: "ImageSync", name, namespace: WORK_NS },
    reason: "SyncComplete",
    message: "packaging test",
    type: "Normal",
    source: { component: "portager" },
  });
  assert.equal(event.status, 201, JSON.stringify(event.body));

  const leases = `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`;
  const lease = await client.request("POST", leases, {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: { name: leaseName },
    spec: { holderIdentity: "packaging-test", leaseDurationSeconds: 15 },
  });
  assert.equal(lease.status, 201, JSON.stringify(lease.body));
  const got = await client.request("GET", `${leases}/${leaseName}`);
  assert.equal(got.status, 200);
  const updated = await client.request("PUT", `${leases}/${leaseName}`, {
    ...got.body,
    spec: { ...(got.body.spec as object), holderIdentity: "" },
  });
  assert.equal(updated.status, 200, JSON.stringify(updated.body));
  assert.equal((await client.request("DELETE", `${leases}/${leaseName}`)).status, 403);
  await kube.adminFetch(`${leases}/${leaseName}`, { method: "DELETE" }).then((r) => r.body?.cancel());
}

async function checkServiceAccount(
  t: Deno.TestContext,
  kube: KubeCluster,
  sa: { namespace: string; name: string; leaseName: string; secretsEverywhere: boolean },
): Promise<void> {
  const token = await kube.tokenFor(sa.namespace, sa.name);
  const client = new TokenClient(kube, token);
  try {
    const who = await client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {
      apiVersion: "authentication.k8s.io/v1",
      kind: "SelfSubjectReview",
    });
    assert.equal(
      (who.body.status as { userInfo: { username: string } }).userInfo.username,
      `system:serviceaccount:${sa.namespace}:${sa.name}`,
    );
    await t.step("access reviews: everything the operator needs, nothing more", async () => {
      const wrong: string[] = [];
      for (
        const [check, want] of permissionTable(sa.namespace, sa.leaseName, WORK_NS, sa.secretsEverywhere)
      ) {
        if (await canI(client, check) !== want) wrong.push(`${want ? "cannot" : "CAN"} ${describe(check)}`);
      }
      assert.deepEqual(wrong, []);
    });
    await t.step(
      "rules review: no delete (or wildcard) verb in any namespace, secrets get-only",
      async () => {
        await assertNoDeleteAnywhere(client, [sa.namespace, WORK_NS, "default"]);
      },
    );
    await t.step("the operator's requests with the token succeed; the rest are Forbidden", async () => {
      await exerciseAsOperator(kube, client, sa.namespace, sa.leaseName);
    });
  } finally {
    client.close();
  }
}

/**
 * A sharded release's Lease access, as its ServiceAccount: list Leases in its namespace (the
 * gate), get/update every shard's Lease, get (not update) the unsharded one, nothing else; and
 * the gate's own list by group label and a shard's renewal succeed with the token.
 */
async function checkShardLeases(
  kube: KubeCluster,
  sa: { namespace: string; name: string; shards: number },
): Promise<void> {
  const client = new TokenClient(kube, await kube.tokenFor(sa.namespace, sa.name));
  try {
    const lease = (verb: string, name?: string, namespace = sa.namespace): AccessCheck => ({
      verb,
      group: "coordination.k8s.io",
      resource: "leases",
      namespace,
      ...(name ? { name } : {}),
    });
    const table: Array<[AccessCheck, boolean]> = [
      [lease("list"), true],
      [lease("create"), true],
      [lease("get", LEASE), true],
      [lease("update", LEASE), false],
      [lease("update", `${LEASE}-shard-${sa.shards}`), false],
      [lease("get", `${LEASE}-shard-${sa.shards}`), false],
      [lease("update", "another-lease"), false],
      [lease("watch"), false],
      [lease("delete", `${LEASE}-shard-0`), false],
      [lease("list", undefined, WORK_NS), false],
      [lease("list", undefined, "default"), false],
    ];
    for (let i = 0; i < sa.shards; i++) {
      table.push([lease("get", `${LEASE}-shard-${i}`), true], [lease("update", `${LEASE}-shard-${i}`), true]);
    }
    const wrong: string[] = [];
    for (const [check, want] of table) {
      if (await canI(client, check) !== want) wrong.push(`${want ? "cannot" : "CAN"} ${describe(check)}`);
    }
    assert.deepEqual(wrong, []);

    // The requests themselves: a shard Lease created, renewed and listed by its group label.
    const leases = `/apis/coordination.k8s.io/v1/namespaces/${sa.namespace}/leases`;
    const name = `${LEASE}-shard-${sa.shards - 1}`;
    const group = { "portager.portager.io/shard-group": LEASE };
    const created = await client.request("POST", leases, {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name, labels: group, annotations: { "portager.portager.io/shards": String(sa.shards) } },
      spec: { holderIdentity: "packaging-test", leaseDurationSeconds: 15 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const renewed = await client.request("PUT", `${leases}/${name}`, {
      ...created.body,
      spec: { ...(created.body.spec as object), renewTime: new Date().toISOString().replace("Z", "000Z") },
    });
    assert.equal(renewed.status, 200, JSON.stringify(renewed.body));
    const listed = await client.request(
      "GET",
      `${leases}?labelSelector=${encodeURIComponent(`portager.portager.io/shard-group=${LEASE}`)}&limit=500`,
    );
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.deepEqual((listed.body.items as RenderedObject[]).map((l) => l.metadata.name), [name]);
    assert.equal((await client.request("GET", `${leases}/${LEASE}`)).status, 404, "get allowed (none yet)");
    assert.equal((await client.request("DELETE", `${leases}/${name}`)).status, 403);
    await kube.adminFetch(`${leases}/${name}`, { method: "DELETE" }).then((r) => r.body?.cancel());
  } finally {
    client.close();
  }
}

Deno.test("the apiserver accepts every rendered value set, the chart and deploy/ install, and their RBAC is least privilege", async (t) => {
  const kube = await startKube();
  try {
    await kube.apply(yaml.load(readRepoFile("charts/portager/crds/imagesyncs.yaml")));
    await kube.apply(SERVICE_MONITOR_CRD);
    await kube.apply(PROMETHEUS_RULE_CRD);
    const chartNs = "portager-chart";
    await createOk(kube, restrictedNamespace(chartNs));
    await createOk(kube, restrictedNamespace(WORK_NS));
    await kube.apply({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "registry-creds", namespace: WORK_NS },
      type: "kubernetes.io/dockerconfigjson",
      data: { ".dockerconfigjson": btoa(JSON.stringify({ auths: {} })) },
    });

    for (const [name, values] of Object.entries(VALUE_SETS)) {
      await t.step(`server-side dry run: ${name}`, async () => {
        const objects = await helmTemplate(CHART, {
          values: [values],
          releaseName: "pkg",
          namespace: chartNs,
        });
        for (const o of objects) await createOk(kube, o, { dryRun: true });
        // The pod itself passes the "restricted" Pod Security Standard (enforced, not just warned).
        const deployments = objects.filter((o) => o.kind === "Deployment");
        assert.ok(deployments.length >= 1);
        for (const d of deployments) await createOk(kube, podOf(d), { dryRun: true });
      });
    }

    await t.step(
      "helm template --include-crds: the chart's CRD is the generated one and applies",
      async () => {
        const objects = await helmTemplate(CHART, {
          includeCrds: true,
          releaseName: "pkg",
          namespace: chartNs,
        });
        const crd = only(objects, "CustomResourceDefinition");
        assert.deepEqual(crd, yaml.load(crdYaml()));
        const r = await create(kube, crd, { dryRun: true });
        assert.equal(r.status, 409, "already installed (from crds/)");
      },
    );

    await t.step("install the chart (release pkg, namespace portager-chart, Secrets of team-a)", async () => {
      const objects = await helmTemplate(CHART, {
        releaseName: "pkg",
        namespace: chartNs,
        values: [{ tenancy: { secretNamespaces: [WORK_NS] } }],
      });
      for (const o of objects) await createOk(kube, o);
      const stored = await kube.adminFetch(
        `/apis/apps/v1/namespaces/${chartNs}/deployments/pkg-portager-controller-manager`,
      );
      const deployment = await stored.json();
      assert.equal(deployment.spec.template.spec.serviceAccountName, "pkg-portager");
      assert.equal(deployment.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem, true);
    });

    await t.step("the chart's ServiceAccount (TokenRequest)", async (t) => {
      await checkServiceAccount(t, kube, {
        namespace: chartNs,
        name: "pkg-portager",
        leaseName: "c8073f84.portager.io",
        secretsEverywhere: false,
      });
    });

    await t.step("install the chart with shards: 3 (release shd, namespace portager-sharded)", async (t) => {
      const shardNs = "portager-sharded";
      await createOk(kube, restrictedNamespace(shardNs));
      const objects = await helmTemplate(CHART, {
        releaseName: "shd",
        namespace: shardNs,
        values: [{ shards: 3, replicaCount: 2, tenancy: { secretNamespaces: [WORK_NS] } }],
      });
      for (const o of objects) await createOk(kube, o);
      // what every shard does, on shard 0's Lease (create, get, update; no delete)
      await checkServiceAccount(t, kube, {
        namespace: shardNs,
        name: "shd-portager",
        leaseName: `${LEASE}-shard-0`,
        secretsEverywhere: false,
      });
      await t.step("access reviews: the shard gate's Lease verbs, on these names only", async () => {
        await checkShardLeases(kube, { namespace: shardNs, name: "shd-portager", shards: 3 });
      });
    });

    const deployInstalled = await t.step("install deploy/ in kustomization order", async () => {
      const kustomization = yaml.load(readRepoFile("deploy/kustomization.yaml")) as { resources: string[] };
      for (const file of kustomization.resources) {
        for (const o of parseManifests(readRepoFile(`deploy/${file}`))) {
          if (o.kind === "CustomResourceDefinition") {
            assert.deepEqual(o, yaml.load(crdYaml()));
            continue; // installed above, identical
          }
          await createOk(kube, o);
          if (o.kind === "Deployment") await createOk(kube, podOf(o), { dryRun: true });
        }
      }
    });

    // Only meaningful once deploy/ is installed (if that failed, this test has failed already).
    if (deployInstalled) {
      await t.step("deploy/'s ServiceAccount portager in portager-system (TokenRequest)", async (t) => {
        await checkServiceAccount(t, kube, {
          namespace: "portager-system",
          name: "portager",
          leaseName: "c8073f84.portager.io",
          secretsEverywhere: true,
        });
      });
    }
  } finally {
    await kube.stop();
  }
});

// ---------------------------------------------------------------------------------------------
// The bundle that `deno task compile` turns into the binary.

/** The chart's default leader-election Lease (upstream's name). */
const LEASE = "c8073f84.portager.io";

/** The --allow-* flags `deno task compile` bakes into the image's binary (quotes removed). */
function compilePermissions(): string[] {
  const flags = denoJson().tasks.compile.split(/\s+/).map((f) => f.replace(/^'(.*)'$/, "$1"))
    .filter((f) => f.startsWith("--allow-"));
  assert.ok(flags.length > 0);
  assert.ok(!flags.includes("--allow-all") && !flags.includes("-A"));
  assert.ok(!flags.includes("--allow-run"), "exec plugins are the separate compile:exec-plugins target");
  return flags;
}

async function runDeno(
  args: string[],
  opts: { cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(DENO, {
    args,
    cwd: opts.cwd ?? ROOT.pathname,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * Runs the `deno task bundle` command into a temp dir (so parallel runs do not share dist/) and
 * returns the path of its entry point (the chunks beside it); the caller removes `dir`.
 */
async function buildBundle(): Promise<{ dir: string; bundle: string }> {
  const bundleTask = denoJson().tasks.bundle;
  assert.match(
    bundleTask,
    /^rm -rf dist\/bundle && deno bundle --minify --platform=deno --code-splitting --outdir=dist\/bundle main\.ts && deno run --allow-read=dist\/bundle --allow-write=dist\/bundle scripts\/bundle_lazy_require\.ts dist\/bundle$/,
  );
  const dir = await Deno.makeTempDir({ prefix: "portager-bundle-" });
  const bundle = `${dir}/bundle/main.js`;
  // deno bundle, then the require shim made lazy (scripts/bundle_lazy_require.ts)
  for (const step of bundleTask.split(" && ").slice(1)) {
    const args = step.split(/\s+/).slice(1).map((a: string) => a.replaceAll("dist/bundle", `${dir}/bundle`));
    const built = await runDeno(args);
    if (built.code !== 0) {
      await Deno.remove(dir, { recursive: true });
      assert.fail(`deno task bundle failed:\n${built.stderr}`);
    }
  }
  return { dir, bundle };
}

/** `deno run` flags that run the bundle as the compiled binary would: its permissions, no config. */
function asCompiled(): string[] {
  return ["run", "--no-config", "--no-prompt", ...compilePermissions()];
}

Deno.test("deno task bundle: the bundle runs `version` and `crd` with only the compile target's permissions", async () => {
  const { dir, bundle } = await buildBundle();
  try {
    const version = await runDeno([...asCompiled(), bundle, "version"], { cwd: dir });
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, new RegExp(`^portager ${VERSION.replaceAll(".", "\\.")} `));
    const crd = await runDeno([...asCompiled(), bundle, "crd"], { cwd: dir });
    assert.equal(crd.code, 0, crd.stderr);
    assert.equal(crd.stdout, crdYaml());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * The CRD, the release namespace `ns` (restricted) and WORK_NS, and the chart (release portager,
 * reading WORK_NS's Secrets) with `values` installed; returns the rendered objects.
 */
async function installForE2e(
  kube: KubeCluster,
  ns: string,
  values: Record<string, unknown>,
): Promise<RenderedObject[]> {
  await kube.apply(yaml.load(readRepoFile("charts/portager/crds/imagesyncs.yaml")));
  await createOk(kube, restrictedNamespace(ns));
  await createOk(kube, namespaceObject(WORK_NS));
  const objects = await helmTemplate(CHART, {
    releaseName: "portager",
    namespace: ns,
    values: [{ tenancy: { secretNamespaces: [WORK_NS] }, ...values }],
  });
  for (const o of objects) await createOk(kube, o);
  return objects;
}

/**
 * Runs the bundle as `portager run` with a Deployment's args (listen addresses moved to free
 * loopback ports), the image's permissions and the pod's env; output goes to `logFile`.
 */
function spawnBundled(
  deployment: RenderedObject,
  opts: {
    dir: string;
    bundle: string;
    kubeconfig: string;
    logFile: string;
    namespace: string;
    podName: string;
  },
): { process: Deno.ChildProcess; metricsPort: number; healthPort: number } {
  const [metricsPort, healthPort] = freePorts(2);
  const args = (container(deployment).args as string[]).map((a) =>
    a.replace(/^--metrics-bind-address=:\d+$/, `--metrics-bind-address=127.0.0.1:${metricsPort}`)
      .replace(/^--health-probe-bind-address=:\d+$/, `--health-probe-bind-address=127.0.0.1:${healthPort}`)
  );
  assert.ok(args.includes(`--metrics-bind-address=127.0.0.1:${metricsPort}`), args.join(" "));
  // Through sh so the operator's output goes straight to a file (no pipes to pump), and
  // `exec` so the child's pid is the operator's.
  const process = new Deno.Command("/bin/sh", {
    args: [
      "-c",
      'log=$1; shift; exec "$@" >"$log" 2>&1',
      "sh",
      opts.logFile,
      DENO,
      // The image's permissions; out of the cluster the kubeconfig stands in for the
      // service-account mount (/var/run/secrets), so it is the one extra read.
      ...asCompiled().map((f) => f.startsWith("--allow-read=") ? `${f},${opts.kubeconfig}` : f),
      opts.bundle,
      "run",
      `--kubeconfig=${opts.kubeconfig}`,
      ...args,
    ],
    cwd: opts.dir,
    stdin: "null",
    stdout: "null",
    stderr: "null",
    // As the pod's env (POD_NAMESPACE from the downward API); nothing else.
    clearEnv: true,
    env: { NO_COLOR: "1", POD_NAMESPACE: opts.namespace, POD_NAME: opts.podName },
  }).spawn();
  return { process, metricsPort, healthPort };
}

/** Waits (bounded) for the ImageSync `WORK_NS/name` to be Ready=True; returns it. */
// deno-lint-ignore no-explicit-any
async function waitReady(kube: KubeCluster, name: string, logFiles: string[]): Promise<any> {
  const path = `/apis/${SYNC_GROUP}/v1alpha1/namespaces/${WORK_NS}/imagesyncs/${name}`;
  const deadline = Date.now() + 90_000;
  for (;;) {
    const current = await (await kube.adminFetch(path)).json();
    const ready = current.status?.conditions?.find((c: { type: string }) => c.type === "Ready");
    if (ready?.status === "True") return current;
    if (Date.now() > deadline) {
      const logs = await Promise.all(logFiles.map((f) => Deno.readTextFile(f)));
      assert.fail(`ImageSync ${name} not Ready: ${JSON.stringify(current.status)}\n${logs.join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** GET https://127.0.0.1:`port`/metrics with curl (self-signed), as `token`'s ServiceAccount. */
async function scrapeMetrics(
  dir: string,
  port: number,
  token?: string,
): Promise<{ status: string; body: string }> {
  const file = `${dir}/scrape-${port}.txt`;
  const out = await new Deno.Command("curl", {
    args: [
      "-sk",
      "-o",
      file,
      "-w",
      "%{http_code}",
      ...(token ? ["-H", `Authorization: Bearer ${token}`] : []),
      `https://127.0.0.1:${port}/metrics`,
    ],
  }).output();
  return { status: new TextDecoder().decode(out.stdout), body: await Deno.readTextFile(file) };
}

/** An ImageSync in WORK_NS copying `repository:1.0` to `destination` with the dest-creds Secret. */
function appImageSync(
  name: string,
  source: string,
  destination: string,
  repository = "library/app",
): RenderedObject {
  const o = imageSync(name);
  o.spec = {
    ...o.spec,
    source: { registry: source },
    destination: { registry: destination, auth: { method: "secret", secretRef: { name: "dest-creds" } } },
    images: [{ name: repository, tags: ["1.0"] }],
  };
  return o;
}

/** The destination's credentials as a dockerconfigjson Secret the operator may only `get`. */
function destinationSecret(
  destination: { host: string; username?: string; password?: string },
): RenderedObject {
  const auth = btoa(`${destination.username}:${destination.password}`);
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "dest-creds", namespace: WORK_NS },
    type: "kubernetes.io/dockerconfigjson",
    data: { ".dockerconfigjson": btoa(JSON.stringify({ auths: { [destination.host]: { auth } } })) },
  };
}

Deno.test("end to end: the bundled operator, outside the cluster with the chart's ServiceAccount token, syncs an ImageSync", async () => {
  const { dir, bundle } = await buildBundle();
  const kube = await startKube();
  const source = await startRegistry("plain");
  const destination = await startRegistry("basic");
  let operator: Deno.ChildProcess | undefined;
  const logFile = `${dir}/operator.log`;
  try {
    const ns = "portager-e2e";
    const chartObjects = await installForE2e(kube, ns, {
      insecureRegistries: [source.host, destination.host],
      // every limit flag the chart can pass, parsed by the binary
      limits: {
        syncTimeout: "10m",
        requestTimeout: "1m",
        minTransferRate: "512",
        maxManifests: 500,
        maxManifestBytes: "16Mi",
        maxTags: 1000,
      },
      metrics: { readerServiceAccounts: [{ name: "prometheus", namespace: ns }] },
    });
    for (const name of ["prometheus", "someone-else"]) {
      await createOk(kube, { apiVersion: "v1", kind: "ServiceAccount", metadata: { name, namespace: ns } });
    }
    // Source image; destination credentials in a dockerconfigjson Secret the operator may only `get`.
    const pushed = await pushImage(source, { repository: "library/app", tag: "1.0" }, { seed: 7 });
    await kube.apply(destinationSecret(destination));
    await kube.apply(appImageSync("mirror-app", source.host, destination.host));

    const token = await kube.tokenFor(ns, "portager");
    const kubeconfig = await kube.kubeconfigForToken(token, { namespace: ns });
    const spawned = spawnBundled(only(chartObjects, "Deployment"), {
      dir,
      bundle,
      kubeconfig,
      logFile,
      namespace: ns,
      podName: "portager-e2e",
    });
    operator = spawned.process;
    const { metricsPort, healthPort } = spawned;

    // Ready=True once the sync is done (bounded wait: an operator that never gets there fails).
    const current = await waitReady(kube, "mirror-app", [logFile]);
    assert.deepEqual(
      current.status.images[0].tags.map((
        t: { tag: string; synced: boolean; sourceDigest: string },
      ) => [t.tag, t.synced, t.sourceDigest]),
      [["1.0", true, pushed.digest]],
    );
    const copied = await getManifest(destination, "library/app", "1.0");
    assert.equal(copied.status, 200);
    assert.equal(copied.digest, pushed.digest);

    // Probes on their own plain-HTTP port; /metrics over HTTPS, for tokens the chart's
    // metrics-reader binding lets in (TokenReview + SubjectAccessReview with the chart's RBAC).
    assert.equal(
      await fetch(`http://127.0.0.1:${healthPort}/readyz`).then(async (r) => {
        await r.body?.cancel();
        return r.status;
      }),
      200,
    );
    const scrape = (token?: string) => scrapeMetrics(dir, metricsPort, token);
    assert.equal((await scrape()).status, "401");
    assert.equal((await scrape(await kube.tokenFor(ns, "someone-else"))).status, "403");
    const scraped = await scrape(await kube.tokenFor(ns, "prometheus"));
    assert.equal(scraped.status, "200");
    assert.match(scraped.body, /^portage_sync_total\{.*name="mirror-app".*\} 1$/m);

    // The Lease was taken with the token (create/get/update on its name only).
    const lease =
      await (await kube.adminFetch(`/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${LEASE}`)).json();
    assert.ok(lease.spec?.holderIdentity, JSON.stringify(lease));

    operator.kill("SIGTERM");
    const status = await operator.status;
    operator = undefined;
    assert.equal(status.code, 0, await Deno.readTextFile(logFile));
    const released =
      await (await kube.adminFetch(`/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${LEASE}`)).json();
    assert.ok(
      !released.spec?.holderIdentity,
      `the Lease is released on shutdown: ${JSON.stringify(released.spec)}`,
    );
  } finally {
    if (operator) {
      operator.kill("SIGKILL");
      await operator.status;
    }
    await Promise.all([source.stop(), destination.stop()]);
    await kube.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("end to end: shards: 2 — one bundled operator per shard Deployment, with its args and the chart's ServiceAccount, syncs exactly its own ImageSyncs", async () => {
  const { dir, bundle } = await buildBundle();
  const kube = await startKube();
  const source = await startRegistry("plain");
  const destination = await startRegistry("basic");
  const operators: Deno.ChildProcess[] = [];
  const logFiles = [0, 1].map((i) => `${dir}/shard-${i}.log`);
  try {
    const ns = "portager-shards";
    const chartObjects = await installForE2e(kube, ns, {
      shards: 2,
      replicaCount: 1,
      insecureRegistries: [source.host, destination.host],
      metrics: { readerServiceAccounts: [{ name: "prometheus", namespace: ns }] },
    });
    await createOk(kube, {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: "prometheus", namespace: ns },
    });

    // Four ImageSyncs, each its own repository; FNV-1a(namespace/name) mod 2 puts some in each shard.
    const names = ["mirror-a", "mirror-b", "mirror-c", "mirror-d"];
    const owner = new Map(names.map((n) => [n, shardOf(`${WORK_NS}/${n}`, 2)]));
    assert.deepEqual(new Set(owner.values()), new Set([0, 1]), `both shards own some: ${[...owner]}`);
    const pushed = new Map<string, string>();
    for (const [i, name] of names.entries()) {
      const image = await pushImage(source, { repository: `library/${name}`, tag: "1.0" }, { seed: 20 + i });
      pushed.set(name, image.digest);
    }
    await kube.apply(destinationSecret(destination));
    for (const name of names) {
      await kube.apply(appImageSync(name, source.host, destination.host, `library/${name}`));
    }

    const kubeconfig = await kube.kubeconfigForToken(await kube.tokenFor(ns, "portager"), { namespace: ns });
    const deployments = chartObjects.filter((o) => o.kind === "Deployment");
    assert.equal(deployments.length, 2);
    const metricsPorts: number[] = [];
    for (const [i, d] of deployments.entries()) {
      const spawned = spawnBundled(d, {
        dir,
        bundle,
        kubeconfig,
        logFile: logFiles[i],
        namespace: ns,
        podName: `${d.metadata.name}-pod`,
      });
      operators.push(spawned.process);
      metricsPorts.push(spawned.metricsPort);
    }

    for (const name of names) {
      const current = await waitReady(kube, name, logFiles);
      assert.equal(current.status.images[0].tags[0].sourceDigest, pushed.get(name));
      const copied = await getManifest(destination, `library/${name}`, "1.0");
      assert.equal(copied.digest, pushed.get(name));
    }

    // Each shard elected on its own Lease, written with the shard count.
    for (const i of [0, 1]) {
      const lease = await (await kube.adminFetch(
        `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${LEASE}-shard-${i}`,
      )).json();
      assert.ok(lease.spec?.holderIdentity, JSON.stringify(lease));
      assert.equal(lease.metadata.annotations?.["portager.portager.io/shards"], "2");
    }
    // Each ImageSync was synced by its owner only: the sync counter is on one shard's /metrics.
    const token = await kube.tokenFor(ns, "prometheus");
    for (const [i, port] of metricsPorts.entries()) {
      const scraped = await scrapeMetrics(dir, port, token);
      assert.equal(scraped.status, "200");
      const own = names.filter((n) => owner.get(n) === i);
      assert.match(
        scraped.body,
        new RegExp(`^portage_shard_imagesyncs\\{.*shard="${i}".*\\} ${own.length}$`, "m"),
      );
      for (const name of names) {
        const synced = new RegExp(`^portage_sync_total\\{.*name="${name}".*\\} 1$`, "m").test(scraped.body);
        assert.equal(synced, owner.get(name) === i, `shard ${i} synced ${name}: ${synced}`);
      }
    }

    for (const operator of operators.splice(0)) {
      operator.kill("SIGTERM");
      assert.equal(
        (await operator.status).code,
        0,
        (await Promise.all(logFiles.map((f) => Deno.readTextFile(f)))).join("\n"),
      );
    }
  } finally {
    for (const operator of operators) {
      operator.kill("SIGKILL");
      await operator.status;
    }
    await Promise.all([source.stop(), destination.stop()]);
    await kube.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Switching from upstream Portager v0.5's chart with `helm upgrade`.

/** Values written as upstream's docs write them (its values layout, non-EKS AWS credentials, a CA). */
const UPSTREAM_VALUES = {
  replicaCount: 1,
  leaderElection: { enabled: true },
  metrics: { enabled: true, serviceMonitor: { enabled: false } },
  serviceAccount: {
    create: true,
    name: "",
    annotations: { "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/portager-ecr" },
  },
  aws: {
    credentials: {
      enabled: true,
      accessKeyId: "AKIAEXAMPLE",
      secretAccessKey: "example/secret",
      region: "us-east-1",
    },
    existingSecret: "",
  },
  caBundle: {
    enabled: true,
    inline: TEST_CA_PEM,
    key: "ca.crt",
    mountPath: "/etc/portager/ca",
    mode: "append",
  },
  podDisruptionBudget: { enabled: true, minAvailable: 1 },
  startupProbe: { enabled: true },
  terminationGracePeriodSeconds: 10,
  networkPolicy: {
    enabled: true,
    metrics: { namespaceSelector: { "kubernetes.io/metadata.name": "monitoring" } },
    egress: { registryCIDRs: ["10.0.0.0/8"], apiServerCIDR: "10.96.0.1/32" },
  },
  nodeSelector: {},
  tolerations: [],
  affinity: {},
  topologySpreadConstraints: [],
  priorityClassName: "",
  podAnnotations: {},
  podLabels: {},
  imagePullSecrets: [],
  extraEnv: [],
  extraVolumes: [],
  extraVolumeMounts: [],
};

/** A stand-in for upstream's chart: its objects' kinds, names, selector and labels (see its Chart.yaml). */
const UPSTREAM_CHART = new URL("tests/fixtures/upstream_chart_v0_5", ROOT).pathname;

Deno.test("helm upgrade from a release of upstream's chart (upstream-shaped values) to ours needs no manual step", async (t) => {
  const kube = await startKube();
  const dir = await Deno.makeTempDir({ prefix: "portager-upgrade-" });
  try {
    await kube.apply(yaml.load(readRepoFile("charts/portager/crds/imagesyncs.yaml")));
    const values = `${dir}/upstream-values.yaml`;
    await Deno.writeTextFile(values, JSON.stringify(UPSTREAM_VALUES));
    // Our chart as is, but for its kubeVersion constraint: the harness's kube-apiserver, built
    // from its module without release ldflags, reports v0.0.0-master, which Helm compares against it.
    const chart = `${dir}/portager`;
    const copied = await new Deno.Command("cp", { args: ["-r", CHART, chart] }).output();
    assert.ok(copied.success);
    const chartYaml = await Deno.readTextFile(`${chart}/Chart.yaml`);
    assert.match(chartYaml, /^kubeVersion: .*$/m);
    await Deno.writeTextFile(`${chart}/Chart.yaml`, chartYaml.replace(/^kubeVersion: .*$/m, ""));
    const helm = (args: string[]) => runHelm([...args, "--kubeconfig", kube.kubeconfigPath]);
    const ns = "portager-system";
    const get = async (path: string) => {
      const res = await kube.adminFetch(path);
      return { status: res.status, body: await res.json() };
    };

    await t.step("upstream's chart installs (into a namespace it then owns: --take-ownership)", async () => {
      // Upstream's chart renders the release Namespace, which `helm install` cannot create itself.
      await createOk(kube, namespaceObject(ns));
      await helm(["install", "portager", UPSTREAM_CHART, "-n", ns, "--take-ownership", "-f", values]);
    });

    await t.step("helm upgrade to our chart, no values given (the release's values are reused)", async () => {
      await helm(["upgrade", "portager", chart, "-n", ns]);
      const namespace = await get(`/api/v1/namespaces/${ns}`);
      assert.equal(namespace.status, 200, "the namespace upstream's chart created is kept");
      // (no namespace controller here: a deleted namespace would stay, Terminating)
      assert.equal(namespace.body.metadata.deletionTimestamp, undefined, "and not being deleted");
      assert.equal(namespace.body.metadata.annotations["helm.sh/resource-policy"], "keep");
      const deployment = await get(`/apis/apps/v1/namespaces/${ns}/deployments/portager-controller-manager`);
      assert.equal(deployment.status, 200);
      const c = deployment.body.spec.template.spec.containers[0];
      assert.equal(c.name, "manager");
      assert.equal(c.image, `ghcr.io/portager/portager:${VERSION}`);
      assert.ok(
        c.args.includes("--grace-period=5s"),
        "terminationGracePeriodSeconds: 10 from upstream's values",
      );
      assert.ok(c.args.includes("--ca-file=/etc/portager/ca/ca.crt"));
      // upstream's aws.credentials now reach the pod through a Secret, not inline env
      assert.deepEqual(c.envFrom, [{ secretRef: { name: "portager-aws" } }]);
      const sa = await get(`/api/v1/namespaces/${ns}/serviceaccounts/portager`);
      assert.equal(
        sa.body.metadata.annotations["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/portager-ecr",
      );
      for (
        const path of [
          `/api/v1/namespaces/${ns}/services/portager-metrics-service`,
          `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/portager-controller-manager`,
          `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies/portager-controller-manager`,
          `/api/v1/namespaces/${ns}/configmaps/portager-ca-bundle`,
          `/apis/rbac.authorization.k8s.io/v1/clusterroles/portager-manager-role`,
          `/apis/rbac.authorization.k8s.io/v1/clusterroles/portager-metrics-reader`,
          `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles/portager-leader-election-role`,
        ]
      ) assert.equal((await get(path)).status, 200, path);
      // the ClusterRole no longer grants every Secret (tenancy.*)
      const role = await get(`/apis/rbac.authorization.k8s.io/v1/clusterroles/portager-manager-role`);
      assert.deepEqual(verbsOf(role.body, "secrets"), []);
    });

    await t.step("and again with upstream's values file given explicitly", async () => {
      await helm(["upgrade", "portager", chart, "-n", ns, "-f", values]);
    });

    await t.step("helm uninstall keeps the namespace", async () => {
      await helm(["uninstall", "portager", "-n", ns]);
      assert.equal((await get(`/api/v1/namespaces/${ns}`)).body.metadata.deletionTimestamp, undefined);
      assert.equal(
        (await get(`/apis/apps/v1/namespaces/${ns}/deployments/portager-controller-manager`)).status,
        404,
      );
    });

    await t.step("a fresh install of our chart with upstream's values and --create-namespace", async () => {
      await helm(["install", "fresh", chart, "-n", "fresh-system", "--create-namespace", "-f", values]);
      const deployment = await get(
        `/apis/apps/v1/namespaces/fresh-system/deployments/fresh-portager-controller-manager`,
      );
      assert.equal(deployment.status, 200);
      const namespace = await get(`/api/v1/namespaces/fresh-system`);
      assert.equal(
        namespace.body.metadata.annotations?.["meta.helm.sh/release-name"],
        undefined,
        "not rendered",
      );
    });
  } finally {
    await kube.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// The image binary's permissions: what docs/DEPLOY.md says, and enough for what the code reads.

/** The permission flags docs/DEPLOY.md lists in its "Permissions" section (`--allow-…` in backticks). */
function documentedPermissions(): string[] {
  const doc = readRepoFile("docs/DEPLOY.md");
  const section = doc.slice(doc.indexOf("## Permissions of the image's binary"));
  assert.ok(section.length < doc.length, "docs/DEPLOY.md has a Permissions section");
  const body = section.slice(0, section.indexOf("\n## ", 1) === -1 ? undefined : section.indexOf("\n## ", 1));
  return [...body.matchAll(/`(--allow-[^`]+)`/g)].map((m) => m[1]);
}

Deno.test("compile permissions: no write, env and reads scoped, exactly as docs/DEPLOY.md lists them", () => {
  const flags = compilePermissions();
  assert.ok(!flags.some((f) => f.startsWith("--allow-write")), "the operator writes nothing");
  const env = flags.find((f) => f.startsWith("--allow-env="));
  const read = flags.find((f) => f.startsWith("--allow-read="));
  assert.ok(env && read, `scoped env and read: ${flags.join(" ")}`);
  assert.deepEqual(read.slice("--allow-read=".length).split(","), [
    "/var/run/secrets",
    "/etc/portager",
    "/home/nonroot/.config/gcloud",
  ]);
  assert.deepEqual(documentedPermissions(), flags);
});

Deno.test("compile permissions: every environment variable src/ reads is allowed", async () => {
  const env = compilePermissions().find((f) => f.startsWith("--allow-env="))!.slice("--allow-env=".length)
    .split(",");
  const allowed = (name: string) =>
    env.some((e) => e.endsWith("*") ? name.startsWith(e.slice(0, -1)) : e === name);
  const read = new Set<string>();
  const walk = async (dir: URL) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await walk(new URL(`${e.name}/`, dir));
      else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) {
        const text = await Deno.readTextFile(new URL(e.name, dir));
        // flag specs' env fallbacks, Deno.env.get("X"), and env("X") lookups
        for (const m of text.matchAll(/\benv(?::\s*|\.get\(|\()"([A-Za-z_][A-Za-z0-9_]*)"/g)) read.add(m[1]);
        // and names kept in constants, e.g. `const WEBHOOK_SECRET_ENV = "PORTAGER_WEBHOOK_SECRET"`
        for (const m of text.matchAll(/\b[A-Z_]*ENV[A-Z_]*\s*=\s*"([A-Z_][A-Z0-9_]*)"/g)) read.add(m[1]);
      }
    }
  };
  await walk(new URL("src/", ROOT));
  assert.ok(read.has("KUBERNETES_SERVICE_HOST") && read.has("LOG_LEVEL"), [...read].join(" "));
  assert.deepEqual(
    [...read].filter((n) => !allowed(n)).sort(),
    [],
    "add them to the compile task's --allow-env",
  );
  // The AWS SDK (bundled, lazily loaded) reads AWS_* and _X_AMZN_TRACE_ID through process.env.
  assert.ok(allowed("AWS_WEB_IDENTITY_TOKEN_FILE") && allowed("_X_AMZN_TRACE_ID"));
});

/**
 * A child's environment as in the image's pod (HOME of its user), plus only what Deno needs to find
 * its caches and this machine's CA: nothing else of this process leaks in.
 */
function podEnv(): Record<string, string> {
  const deno = Object.entries(Deno.env.toObject()).filter(([k]) =>
    /^(PATH|XDG_CACHE_HOME|DENO_\w+|NPM_CONFIG_\w+|NODE_EXTRA_CA_CERTS|SSL_CERT_\w+|https?_proxy|no_proxy)$/i
      .test(k)
  );
  return { ...Object.fromEntries(deno), HOME: "/home/nonroot", NO_COLOR: "1" };
}

Deno.test("compile permissions: ECR credentials through IRSA (AWS SDK) resolve with only the image's permissions (moto)", async () => {
  const moto = await startMoto();
  const dir = await Deno.makeTempDir({ prefix: "portager-ecr-perms-" });
  try {
    const roleArn = await moto.createWebIdentityRole("portager", ["ecr:GetAuthorizationToken"]);
    // Stands in for the projected token under /var/run/secrets/eks.amazonaws.com/: the one extra read.
    const tokenFile = `${dir}/token`;
    await Deno.writeTextFile(tokenFile, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwb3J0YWdlciJ9.sig");
    const permissions = compilePermissions().map((f) =>
      f.startsWith("--allow-read=") ? `${f},${tokenFile}` : f
    );
    const host = `${MOTO_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
    const child = new Deno.Command(DENO, {
      args: [
        "run",
        "--no-prompt",
        "--quiet",
        ...permissions,
        new URL("tests/harness/ecr_child.ts", ROOT).pathname,
      ],
      cwd: ROOT.pathname,
      clearEnv: true,
      // What EKS sets for IRSA, the pod's HOME, and what Deno needs to find its caches.
      env: {
        ...podEnv(),
        AWS_ROLE_ARN: roleArn,
        AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile,
        AWS_ROLE_SESSION_NAME: "portager",
        AWS_REGION: "us-east-1",
        AWS_ENDPOINT_URL_ECR: moto.url,
        AWS_ENDPOINT_URL_STS: moto.url,
        AWS_EC2_METADATA_DISABLED: "true",
      },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(JSON.stringify({ op: "resolve", registries: [host] })));
    await writer.close();
    const out = await child.output();
    const stdout = new TextDecoder().decode(out.stdout);
    const line = stdout.split("\n").find((l) => l.startsWith(ECR_RESULT_MARK));
    assert.ok(out.success && line, `${stdout}\n${new TextDecoder().decode(out.stderr)}`);
    const got = JSON.parse(line.slice(ECR_RESULT_MARK.length)) as Array<
      { username?: string; password?: string }
    >;
    assert.deepEqual(got.map((g) => [g.username, g.password]), [["AWS", `${MOTO_ACCOUNT}-auth-token`]], line);
  } finally {
    await moto.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("compile permissions: Google credentials from the metadata server (Workload Identity) resolve with only the image's permissions", async () => {
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    requests.push(`${req.headers.get("metadata-flavor")} ${new URL(req.url).pathname}`);
    return Response.json({ access_token: "ya29.workload-identity", expires_in: 3599, token_type: "Bearer" });
  });
  try {
    const out = await new Deno.Command(DENO, {
      args: [
        "run",
        "--no-prompt",
        "--quiet",
        ...compilePermissions(),
        new URL("tests/fixtures/gar_child.ts", ROOT).pathname,
        "us-docker.pkg.dev",
      ],
      cwd: ROOT.pathname,
      clearEnv: true,
      // A pod's environment on GKE: the image user's HOME, the metadata server.
      env: {
        ...podEnv(),
        GCE_METADATA_HOST: `127.0.0.1:${server.addr.port}`,
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const result = JSON.parse(stdout.trim().split("\n").at(-1)!);
    assert.deepEqual(result, {
      credential: { username: "oauth2accesstoken", password: "ya29.workload-identity" },
    });
    assert.deepEqual(requests, ["Google /computeMetadata/v1/instance/service-accounts/default/token"]);
  } finally {
    await server.shutdown();
  }
});
