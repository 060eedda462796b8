// The real operator, run as upstream Portager v0.5's image runs it (controller-runtime flags,
// leader election), on the harness apiserver, scraped as a controller-runtime dashboard scrapes
// it (issue 15 items 5, 9, 10):
// - controller-runtime's runtime series with its names, labels and values (`controller` and the
//   work queue `name` "imagesync"), checked by `promtool check metrics`, and moving as they do:
//   reconciles counted by result, the queue drained back to depth 0, the Lease holder at 1,
//   apiserver requests by code and method, the process's CPU, memory, fds and start time;
// - a sync of four tags leaves four ImageSynced Events (client-go's correlator keeps distinct
//   messages apart), reported by upstream's component `imagesync-controller`;
// - a sync whose credentials fail (AuthFailed) is, as upstream, not in `portage_sync_total`; a
//   tag refused by a validation gate is not in `portage_images_failed_total`.
import assert from "node:assert/strict";
import { crdObject } from "../src/api/mod.ts";
import { promtoolCheckMetrics } from "./harness/supply_chain.ts";
import { pushImage } from "./harness/fixtures.ts";
import { type KubeCluster, startKube } from "./harness/kube.ts";
import {
  createNamespace,
  eventsFor,
  imageSync,
  spawnUpstreamOperator,
  type UpstreamOperator,
  waitFor,
  waitForReady,
} from "./harness/operator.ts";
import { type RegistryServer, startRegistry } from "./harness/registry.ts";

const TAGS = ["1.0", "1.1", "1.2", "1.3"];
const Q = 'name="imagesync",controller="imagesync"';

/** The value of the one sample `series` (name and labels exactly as exposed), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Like {@linkcode sample}, but the series must be there. */
function value(text: string, series: string): number {
  const v = sample(text, series);
  assert.ok(v !== undefined, `${series} is not exposed:\n${text}`);
  return v;
}

Deno.test("runtime metrics, Events and sync counts of the operator as upstream's users read them", async () => {
  const started = Date.now() / 1000;
  let kube: KubeCluster | undefined;
  let src: RegistryServer | undefined;
  let dst: RegistryServer | undefined;
  let operator: UpstreamOperator | undefined;
  try {
    [kube, src, dst] = await Promise.all([startKube(), startRegistry("plain"), startRegistry("plain")]);
    for (const [i, tag] of TAGS.entries()) {
      await pushImage(src, { repository: "app", tag }, { seed: 40 + i, layers: [1024] });
    }
    await kube.apply(crdObject());
    await createNamespace(kube, "portager-system");
    await createNamespace(kube, "team-a");

    // upstream's command line (no `run`), /metrics over plain HTTP as --metrics-secure=false;
    // the JSON log (stderr) is kept for the waits and failure messages
    const upstreamFlags = [
      "--leader-elect",
      "--health-probe-bind-address=127.0.0.1:0",
      "--metrics-bind-address=127.0.0.1:0",
      "--metrics-secure=false",
      `--kubeconfig=${kube.kubeconfigPath}`,
      `--insecure-registry=${src.host},${dst.host}`,
    ];
    operator = await spawnUpstreamOperator(upstreamFlags, {
      env: { POD_NAMESPACE: "portager-system", NO_COLOR: "1" },
    });
    const { tail, scrape } = operator;
    assert.equal(operator.metrics.scheme, "http");

    // the Lease holder says so under upstream's Lease name
    let text = await waitFor("leader_election_master_status 1", async () => {
      const t = await scrape();
      return sample(t, 'leader_election_master_status{name="c8073f84.portager.io"}') === 1 ? t : undefined;
    }, { timeoutMs: 30_000, describe: tail });
    const before = {
      requeueAfter: value(
        text,
        'controller_runtime_reconcile_total{controller="imagesync",result="requeue_after"}',
      ),
      errors: value(text, 'controller_runtime_reconcile_errors_total{controller="imagesync"}'),
      adds: value(text, `workqueue_adds_total{${Q}}`),
    };
    assert.equal(before.requeueAfter, 0, "no reconcile before the first ImageSync");
    assert.equal(value(text, 'controller_runtime_max_concurrent_reconciles{controller="imagesync"}'), 2);
    // shown from the start, as controller-runtime's initMetrics does
    for (const c of ["terminal_reconcile_errors", "reconcile_panics", "reconcile_timeouts"]) {
      assert.equal(value(text, `controller_runtime_${c}_total{controller="imagesync"}`), 0);
    }

    // a sync of four tags
    await kube.apply(imageSync("team-a", "mirror", {
      schedule: "@every 1h",
      source: { registry: src.host },
      destination: { registry: dst.host, auth: { method: "anonymous" } },
      images: [{ name: "app", tags: TAGS }],
    }));
    const synced = await waitForReady(kube, "team-a", "mirror", {
      ok: (c) => c.reason === "SyncSucceeded",
      timeoutMs: 60_000,
    });
    assert.equal(synced.status?.syncedImages, 4);

    // four ImageSynced Events, one per tag, from upstream's component
    const imageSynced = await waitFor("four ImageSynced Events", async () => {
      const evs = (await eventsFor(kube!, "team-a", "mirror")).filter((e) => e.reason === "ImageSynced");
      return evs.length >= 4 ? evs : undefined;
    }, {
      timeoutMs: 15_000,
      describe: async () => JSON.stringify(await eventsFor(kube!, "team-a", "mirror")),
    });
    assert.equal(imageSynced.length, 4, "one Event per tag, not one for the last");
    for (const tag of TAGS) {
      const e = imageSynced.find((e) => e.message.startsWith(`Synced ${src!.host}/app:${tag} → `));
      assert.ok(e, `no ImageSynced Event for ${tag}: ${JSON.stringify(imageSynced.map((e) => e.message))}`);
      assert.equal(e.count, 1);
      assert.equal(e.type, "Normal");
      assert.equal(e.source?.component, "imagesync-controller");
      assert.equal(e.reportingComponent, "imagesync-controller");
    }

    // the queue drains back to 0 and no worker stays busy
    text = await waitFor("an idle work queue", async () => {
      const t = await scrape();
      return sample(t, `workqueue_depth{${Q},priority="0"}`) === 0 &&
          sample(t, 'controller_runtime_active_workers{controller="imagesync"}') === 0 &&
          sample(t, `workqueue_unfinished_work_seconds{${Q}}`) === 0
        ? t
        : undefined;
    }, { timeoutMs: 15_000 });
    const check = await promtoolCheckMetrics(text);
    assert.equal(check.code, 0, check.output);
    assert.equal(check.output.trim(), "", "promtool reported lint problems");

    // a successful sync ends in RequeueAfter (the schedule), as upstream's reconciler returns
    assert.ok(
      value(text, 'controller_runtime_reconcile_total{controller="imagesync",result="requeue_after"}') >= 1,
    );
    const reconciles = value(text, 'controller_runtime_reconcile_time_seconds_count{controller="imagesync"}');
    assert.ok(reconciles >= 1);
    assert.equal(
      value(text, 'controller_runtime_reconcile_time_seconds_bucket{le="+Inf",controller="imagesync"}'),
      reconciles,
    );
    assert.ok(value(text, `workqueue_adds_total{${Q}}`) > before.adds);
    assert.ok(value(text, `workqueue_queue_duration_seconds_count{${Q}}`) >= 1);
    assert.equal(value(text, `workqueue_work_duration_seconds_count{${Q}}`), reconciles);
    assert.ok(value(text, `workqueue_retries_total{${Q}}`) >= 1, "the schedule's RequeueAfter is a retry");
    assert.equal(value(text, `workqueue_longest_running_processor_seconds{${Q}}`), 0);

    // apiserver requests by code, host and method, as client-go counts them
    const api = new URL(kube.server).host;
    assert.ok(value(text, `rest_client_requests_total{code="200",host="${api}",method="GET"}`) >= 1);
    assert.ok(
      value(text, `rest_client_requests_total{code="201",host="${api}",method="POST"}`) >= 4,
      "the Events were created",
    );

    // the process collector's series, from /proc
    const cpu = value(text, "process_cpu_seconds_total");
    const rss = value(text, "process_resident_memory_bytes");
    const fds = value(text, "process_open_fds");
    assert.ok(cpu > 0);
    assert.ok(rss > 10 * 2 ** 20 && rss < 512 * 2 ** 20, `rss ${rss}`);
    assert.ok(value(text, "process_virtual_memory_bytes") > rss);
    assert.ok(fds > 3 && value(text, "process_max_fds") > fds);
    const start = value(text, "process_start_time_seconds");
    assert.ok(start >= Math.floor(started) - 1 && start <= Date.now() / 1000, `start time ${start}`);

    // credentials that fail: AuthFailed, counted as upstream does — a reconcile error, no
    // portage_sync_total sample; ours adds portage_sync_start_failures_total
    await kube.apply(imageSync("team-a", "locked", {
      schedule: "@every 1h",
      source: { registry: src.host },
      destination: { registry: dst.host, auth: { method: "secret", secretRef: { name: "absent" } } },
      images: [{ name: "app", tags: ["1.0"] }],
    }));
    const locked = await waitForReady(kube, "team-a", "locked", { ok: (c) => c.status === "False" });
    assert.equal(locked.status?.conditions?.find((c) => c.type === "Ready")?.reason, "AuthFailed");
    text = await waitFor("the failed reconcile counted", async () => {
      const t = await scrape();
      return sample(t, 'controller_runtime_reconcile_errors_total{controller="imagesync"}')! > before.errors
        ? t
        : undefined;
    }, { timeoutMs: 15_000 });
    assert.ok(value(text, 'controller_runtime_reconcile_total{controller="imagesync",result="error"}') >= 1);
    assert.ok(
      !/^portage_sync_total\{name="locked"/m.test(text),
      "an AuthFailed sync is not in portage_sync_total",
    );
    assert.ok(
      value(
        text,
        'portage_sync_start_failures_total{name="locked",namespace="team-a",reason="AuthFailed"}',
      ) >= 1,
    );
    assert.equal(value(text, 'portage_sync_total{name="mirror",namespace="team-a",status="success"}'), 1);

    // a tag refused by a validation gate (cosign: no signature for this key) counts in
    // validation_failed_total and in image_info's failed, not in images_failed_total, as upstream
    const key = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign"]);
    const spki = new Uint8Array(await crypto.subtle.exportKey("spki", key.publicKey));
    const pem = `-----BEGIN PUBLIC KEY-----\n${
      btoa(String.fromCharCode(...spki))
    }\n-----END PUBLIC KEY-----\n`;
    await kube.apply(imageSync("team-a", "gated", {
      schedule: "@every 1h",
      source: { registry: src.host },
      destination: { registry: dst.host, auth: { method: "anonymous" }, repositoryPrefix: "gated" },
      images: [{ name: "app", tags: ["1.0"] }],
      validation: { cosign: { enabled: true, publicKey: pem } },
    }));
    const gated = await waitForReady(kube, "team-a", "gated", { ok: (c) => c.status === "False" });
    assert.equal(gated.status?.failedImages, 1);
    text = await waitFor("the gated sync's metrics", async () => {
      const t = await scrape();
      return /^portage_sync_total\{name="gated"/m.test(t) ? t : undefined;
    }, { timeoutMs: 15_000 });
    const g = 'name="gated",namespace="team-a"';
    assert.equal(value(text, `portage_sync_total{${g},status="failure"}`), 1);
    assert.equal(value(text, `portage_images_validation_failed_total{${g},gate="validation"}`), 1);
    assert.equal(value(text, `portage_images_failed_total{${g}}`), 0);
    assert.equal(value(text, `portage_image_info{${g},synced="0",failed="1",total="1"}`), 1);
  } finally {
    await operator?.stop();
    await Promise.all([src?.stop(), dst?.stop(), kube?.stop()]);
  }
});
