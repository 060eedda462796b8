/**
 * `deno task demo`: Portager end to end on this machine, no cluster needed. Starts the test
 * harness's kube-apiserver (+ etcd) and two local registries, seeds a source image (three
 * versions, one of them multi-arch), applies the CRD and an ImageSync, runs the operator against
 * them and prints `kubectl get imagesyncs`-style output until the ImageSync is Ready.
 *
 *   deno task demo            # show it going Ready, then clean up
 *   deno task demo --keep     # keep everything running; prints a kubeconfig to use with kubectl
 * @module
 */
import { crdObject, GROUP, PLURAL, VERSION } from "../src/api/mod.ts";
import { runOperator } from "../src/controller/mod.ts";
import { createLogger } from "../src/log/mod.ts";
import { pushImage } from "../tests/harness/fixtures.ts";
import { startKube } from "../tests/harness/kube.ts";
import { startRegistry } from "../tests/harness/registry.ts";

const keep = Deno.args.includes("--keep");
const verbose = Deno.args.includes("--verbose");
const NS = "default";
const NAME = "demo-mirror";

function say(msg: string): void {
  console.log(`\x1b[1m==>\x1b[0m ${msg}`);
}

/** Renders the apiserver's Table response (the printer columns) the way kubectl does. */
function renderTable(table: {
  columnDefinitions: Array<{ name: string; priority?: number }>;
  rows: Array<{ cells: unknown[] }>;
}): string {
  const cols = table.columnDefinitions.map((c, i) => ({ c, i })).filter(({ c }) => !c.priority);
  const lines = [cols.map(({ c }) => c.name.toUpperCase())];
  for (const row of table.rows) lines.push(cols.map(({ i }) => String(row.cells[i] ?? "<none>")));
  const widths = lines[0].map((_, j) => Math.max(...lines.map((l) => l[j].length)) + 3);
  return lines.map((l) => l.map((cell, j) => cell.padEnd(widths[j])).join("").trimEnd()).join("\n");
}

say("starting etcd + kube-apiserver and two registries on 127.0.0.1");
const kube = await startKube();
const source = await startRegistry("plain");
const destination = await startRegistry("basic", { users: { demo: "demo-password" } });
const stopAll = async () => {
  await destination.stop();
  await source.stop();
  await kube.stop();
};

const operatorStop = new AbortController();
let operatorDone: Promise<void> | undefined;
try {
  say(`seeding ${source.host}/demo/app with 1.0.0, 1.1.0 (linux/amd64 + linux/arm64) and 2.0.0`);
  await pushImage(source, { repository: "demo/app", tag: "1.0.0" }, {
    seed: 1,
    layers: [2 << 20, 512 << 10],
  });
  await pushImage(source, { repository: "demo/app", tag: "1.1.0" }, {
    seed: 2,
    layers: [1 << 20],
    sharedLayers: [2 << 20],
    platforms: ["linux/amd64", "linux/arm64"],
  });
  await pushImage(source, { repository: "demo/app", tag: "2.0.0" }, { seed: 3, layers: [1 << 20] });

  say("applying the ImageSync CRD, a dockerconfigjson Secret and an ImageSync");
  await kube.apply(crdObject());
  const auth = btoa(`demo:demo-password`);
  await kube.apply({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "destination-creds", namespace: NS },
    type: "kubernetes.io/dockerconfigjson",
    data: { ".dockerconfigjson": btoa(JSON.stringify({ auths: { [destination.host]: { auth } } })) },
  });
  const imageSync = {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: "ImageSync",
    metadata: { name: NAME, namespace: NS },
    spec: {
      schedule: "@every 1h",
      source: { registry: source.host },
      destination: {
        registry: destination.host,
        auth: { method: "secret", secretRef: { name: "destination-creds" } },
        repositoryPrefix: "mirror",
      },
      images: [{ name: "demo/app", semver: "^1.0.0", tags: ["2.0.0"] }],
    },
  };
  await kube.apply(imageSync);
  console.log(`\n# ImageSync ${NS}/${NAME}\n${JSON.stringify(imageSync.spec, null, 2)}\n`);

  say("running the operator (portager run --kubeconfig <demo kubeconfig>)");
  operatorDone = runOperator({
    kubeconfig: kube.kubeconfigPath,
    leaderElection: false,
    metricsAddr: "127.0.0.1:0",
    insecureRegistries: [source.host, destination.host],
    logger: createLogger({ level: verbose ? "debug" : "warn", format: "text" }),
    signal: operatorStop.signal,
  });

  const path = `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}`;
  const deadline = Date.now() + 120_000;
  let ready = false;
  let last = "";
  while (Date.now() < deadline) {
    const res = await kube.adminFetch(path, {
      headers: { accept: "application/json;as=Table;v=v1;g=meta.k8s.io,application/json" },
    });
    const table = await res.json();
    const text = renderTable(table);
    if (text !== last) {
      console.log(`\n$ kubectl get imagesyncs\n${text}`);
      last = text;
    }
    const obj = await (await kube.adminFetch(`${path}/${NAME}`)).json();
    const readyCond = (obj.status?.conditions ?? []).find((c: { type: string }) => c.type === "Ready");
    if (readyCond?.status === "True") {
      ready = true;
      console.log(`\n# status.images (per tag)`);
      for (const image of obj.status.images ?? []) {
        for (const t of image.tags ?? []) {
          console.log(`  ${image.name}:${t.tag}  synced=${t.synced}  ${t.sourceDigest ?? ""}`);
        }
      }
      const events = await (await kube.adminFetch(`/api/v1/namespaces/${NS}/events`)).json();
      console.log(`\n$ kubectl get events`);
      for (const e of events.items ?? []) {
        console.log(`  ${e.type.padEnd(8)} ${e.reason.padEnd(18)} ${e.message}`);
      }
      break;
    }
    if (readyCond?.status === "False") console.log(`  Ready=False ${readyCond.reason}: ${readyCond.message}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
  if (!ready) throw new Error("the ImageSync did not become Ready within 120 s (rerun with --verbose)");
  say(`ImageSync ${NS}/${NAME} is Ready: ${destination.host}/mirror/demo/app holds the synced tags`);
  if (keep) {
    say(`kept running. kubectl --kubeconfig ${kube.kubeconfigPath} get imagesyncs -A   (Ctrl-C stops)`);
    await new Promise<void>((resolve) => {
      Deno.addSignalListener("SIGINT", () => resolve());
      Deno.addSignalListener("SIGTERM", () => resolve());
    });
  }
} finally {
  operatorStop.abort();
  await operatorDone?.catch(() => {});
  await stopAll();
}
