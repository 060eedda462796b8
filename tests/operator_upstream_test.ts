// The operator as an upstream Portager v0.5 user runs it, on the harness apiserver:
// - its image's command line (controller-runtime flags, no `run`): probes on their own port,
//   /metrics over HTTPS for tokens allowed `get /metrics` (TokenReview + SubjectAccessReview);
// - leader election on upstream's Lease `c8073f84.portager.io`, never leading at the same time as
//   a real client-go elector (k8s.io/client-go/tools/leaderelection, as upstream runs it);
// - tenancy: an ImageSync cannot borrow another namespace's Secret, nor the operator's cloud
//   identity where that is restricted.
import assert from "node:assert/strict";
import { crdObject } from "../src/api/mod.ts";
import { runOperator } from "../src/controller/mod.ts";
import { createLogger } from "../src/log/mod.ts";
import { selfSignedCertificate } from "../src/server/self_signed.ts";
import { pushImage } from "./harness/fixtures.ts";
import { type KubeCluster, startKube } from "./harness/kube.ts";
import { startLeaderPeer, UPSTREAM_LEASE_NAME } from "./harness/leader_peer.ts";
import {
  condition,
  createNamespace,
  dockerConfigSecret,
  getImageSync,
  imageSync,
  spawnElectingOperator,
  waitFor,
  waitForReady,
} from "./harness/operator.ts";
import { startRegistry } from "./harness/registry.ts";

const REPO = new URL("..", import.meta.url).pathname;

/** JSON log lines of a child's log file. */
async function logLines(file: string): Promise<Array<Record<string, unknown>>> {
  const text = await Deno.readTextFile(file).catch(() => "");
  return text.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

/**
 * How far a read may trail a write it does not yet show (the apiserver's watch cache), on a loaded
 * machine. Our elector taking over early by a renewal period or more (300 ms here) still fails.
 */
const CACHE_LAG_MS = 150;

/**
 * Waits until `holder` renews upstream's Lease in "le" and returns a monotonic time
 * (`performance.now()`) about when that renewal was written: the start of the last read that
 * did not see it yet — give or take the apiserver's watch-cache lag, which serves such reads
 * ({@linkcode CACHE_LAG_MS}). Durations in this test are monotonic: the wall clock here may be slewed.
 */
async function renewalSeen(kube: KubeCluster, holder: string): Promise<number> {
  let before = performance.now();
  const first = await leaseOf(kube, "le", UPSTREAM_LEASE_NAME);
  assert.equal(first?.spec.holderIdentity, holder);
  for (let i = 0; i < 500; i++) {
    const start = performance.now();
    const lease = await leaseOf(kube, "le", UPSTREAM_LEASE_NAME);
    assert.equal(lease?.spec.holderIdentity, holder);
    if (lease!.spec.renewTime !== first!.spec.renewTime) return before;
    before = start;
  }
  throw new Error(`${holder} never renewed the Lease`);
}

/** One read of upstream's Lease in "le": when it started (monotonic) and what it showed. */
interface LeaseRead {
  start: number;
  holder: string;
  renewTime: string;
}

/**
 * Reads upstream's Lease in "le" back to back (10 ms apart) until `stop()`, which resolves with
 * every read. `changes(n)` resolves once `n` reads have shown another record than the read
 * before them (see {@linkcode clientGoRecord}).
 */
function trackLease(kube: KubeCluster) {
  const reads: LeaseRead[] = [];
  let stopped = false;
  let changes = 0;
  const loop = (async () => {
    while (!stopped) {
      const start = performance.now();
      const spec = (await leaseOf(kube, "le", UPSTREAM_LEASE_NAME))?.spec;
      const read = { start, holder: spec?.holderIdentity ?? "", renewTime: spec?.renewTime ?? "" };
      const prev = reads.at(-1);
      if (prev && clientGoRecord(prev) !== clientGoRecord(read)) changes++;
      reads.push(read);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return {
    changes: (n: number) => waitFor(`${n} changes of the Lease record`, () => changes >= n || undefined),
    stop: async () => {
      stopped = true;
      await loop;
      return reads;
    },
  };
}

/**
 * The Lease record as client-go's elector compares it to restart its lease clock: its
 * LeaderElectionRecord marshalled as JSON, where renewTime is a metav1.Time — whole seconds
 * (k8s.io/client-go tools/leaderelection/resourcelock LeaseLock.Get). Renewals within one second
 * (a retry period under 1 s) are no change to it. Holder and renewTime stand for the record here:
 * its other fields do not change while one holder renews.
 */
function clientGoRecord(read: LeaseRead): string {
  return `${read.holder} ${read.renewTime.slice(0, 19)}`;
}

async function leaseOf(kube: KubeCluster, ns: string, name: string) {
  const res = await kube.adminFetch(`/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${name}`);
  if (res.status === 404) {
    await res.body?.cancel();
    return undefined;
  }
  return (await res.json()) as {
    spec: {
      holderIdentity?: string;
      leaseDurationSeconds?: number;
      acquireTime?: string;
      renewTime?: string;
      leaseTransitions?: number;
    };
  };
}

Deno.test("upstream's command line: probes on their own port, /metrics over HTTPS with TokenReview + SubjectAccessReview", async () => {
  const kube = await startKube();
  const dir = await Deno.makeTempDir({ prefix: "portager-upstream-flags-" });
  let child: Deno.ChildProcess | undefined;
  try {
    await kube.apply(crdObject());
    // upstream's chart: the metrics-reader ClusterRole, bound to the scraper's ServiceAccount
    await kube.apply({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "metrics-reader" },
      rules: [{ nonResourceURLs: ["/metrics"], verbs: ["get"] }],
    });
    const reader = await kube.tokenFor("monitoring", "prometheus");
    const stranger = await kube.tokenFor("team-a", "app");
    await kube.apply({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "prometheus-metrics-reader" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "metrics-reader" },
      subjects: [{ kind: "ServiceAccount", name: "prometheus", namespace: "monitoring" }],
    });
    await createNamespace(kube, "portager-system");

    const log = `${dir}/operator.log`;
    // as upstream's Deployment runs /manager, with Go's one-dash spelling mixed in
    child = new Deno.Command("/bin/sh", {
      args: [
        "-c",
        'log=$1; shift; exec "$@" >"$log" 2>&1',
        "sh",
        log,
        Deno.execPath(),
        "run",
        "-A",
        "--quiet",
        `${REPO}main.ts`,
        "--leader-elect",
        "-health-probe-bind-address=127.0.0.1:0",
        "--metrics-bind-address=127.0.0.1:0",
        `--kubeconfig=${kube.kubeconfigPath}`,
        "--zap-log-level=debug",
      ],
      env: { POD_NAMESPACE: "portager-system", NO_COLOR: "1" },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const address = async (msg: string) => {
      const lines = await waitFor(`"${msg}" in the log`, async () => {
        const lines = await logLines(log);
        return lines.some((l) => l.msg === msg) ? lines : undefined;
      }, { timeoutMs: 30_000, describe: () => Deno.readTextFile(log).catch(() => "") });
      return lines.find((l) => l.msg === msg)!;
    };
    const probes = await address("serving /healthz /readyz");
    const metrics = await address("serving /metrics");
    assert.equal(metrics.scheme, "https");
    assert.notEqual(probes.address, metrics.address, "two ports, as upstream");

    const probeBase = `http://${probes.address}`;
    await waitFor("ready", async () => {
      const r = await fetch(`${probeBase}/readyz`);
      await r.body?.cancel();
      return r.status === 200 || undefined;
    }, { timeoutMs: 30_000 });
    const h = await fetch(`${probeBase}/healthz`);
    assert.equal(h.status, 200);
    await h.body?.cancel();
    const noMetricsThere = await fetch(`${probeBase}/metrics`);
    assert.equal(noMetricsThere.status, 404);
    await noMetricsThere.body?.cancel();

    // the certificate is self-signed (made at start): curl -k, as a scraper with insecureSkipVerify
    const scrape = async (token?: string) => {
      const out = await new Deno.Command("curl", {
        args: [
          "-sk",
          "--http2",
          "-o",
          "-",
          "-w",
          "\n%{http_code} %{http_version}",
          ...(token ? ["-H", `Authorization: Bearer ${token}`] : []),
          `https://${metrics.address}/metrics`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      const [status, version] = text.slice(text.lastIndexOf("\n") + 1).split(" ");
      return { status: Number(status), version, text };
    };
    const anonymous = await scrape();
    assert.equal(anonymous.status, 401, anonymous.text);
    const bogus = await scrape("not-a-token");
    assert.equal(bogus.status, 401, bogus.text);
    const denied = await scrape(stranger);
    assert.equal(denied.status, 403, denied.text);
    assert.match(denied.text, /Forbidden \(user=system:serviceaccount:team-a:app, verb=get/);
    const allowed = await scrape(reader);
    assert.equal(allowed.status, 200, allowed.text);
    assert.equal(allowed.version, "1.1", "HTTP/2 is off unless --enable-http2");
    assert.match(allowed.text, /^portage_leader 1$/m);
    assert.match(allowed.text, /^leader_election_master_status\{name="c8073f84\.portager\.io"\} 1$/m);

    // leader election on upstream's Lease, in the pod's namespace
    const lease = await waitFor("the Lease", async () => {
      const l = await leaseOf(kube, "portager-system", UPSTREAM_LEASE_NAME);
      return l?.spec.holderIdentity ? l : undefined;
    }, { timeoutMs: 30_000 });
    assert.equal(lease.spec.leaseDurationSeconds, 15);
    assert.ok(lease.spec.acquireTime && lease.spec.renewTime);

    child.kill("SIGTERM");
    assert.equal((await child.status).code, 0);
    child = undefined;
    const released = await leaseOf(kube, "portager-system", UPSTREAM_LEASE_NAME);
    assert.equal(released?.spec.holderIdentity ?? "", "", "released on SIGTERM");
  } finally {
    if (child) {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
    }
    await kube.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("leader election interoperates with client-go's: never both leading on c8073f84.portager.io", async () => {
  const kube = await startKube();
  const dir = await Deno.makeTempDir({ prefix: "portager-leader-peer-" });
  const timings = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 300 };
  const stops: Array<() => Promise<unknown>> = [];
  try {
    await kube.apply(crdObject());
    await createNamespace(kube, "le");
    const ours = (n: number) => {
      const p = spawnElectingOperator({
        kubeconfig: kube.kubeconfigPath,
        identity: `portager-${n}`,
        leaseNamespace: "le",
        // leaseName left out: the default must be upstream's
        ...timings,
      }, `${dir}/ours-${n}.log`);
      stops.push(() => p.kill("SIGKILL"));
      return p;
    };
    /** Whether our operator leads now, from its log ("became leader" after the last step-down). */
    const oursLeading = async (file: string) => {
      let leading = false;
      for (const l of await logLines(file)) {
        if (l.msg === "became leader") leading = true;
        if (
          String(l.msg).startsWith("lost leadership") || l.msg === "released leader lease"
        ) {
          leading = false;
        }
      }
      return leading;
    };
    const violations: string[] = [];
    /** Samples both sides every 50 ms for `ms`; records any instant where both lead. */
    const watch = async (ms: number, peer: { isLeading(): boolean }, file: string) => {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if (peer.isLeading() && (await oursLeading(file))) violations.push(new Date().toISOString());
        await new Promise((r) => setTimeout(r, 50));
      }
    };

    // 1. client-go leads first; ours stands by for several lease durations
    const peer = await startLeaderPeer(kube.kubeconfigPath, {
      namespace: "le",
      identity: "upstream-pod",
      ...timings,
    });
    stops.push(() => peer.stop({ signal: "SIGKILL" }));
    await peer.waitFor("LEADING upstream-pod");
    const a = ours(1);
    await watch(4 * timings.leaseDurationMs, peer, a.logFile);
    assert.equal(await oursLeading(a.logFile), false, "ours stands by while client-go renews");
    assert.equal((await leaseOf(kube, "le", UPSTREAM_LEASE_NAME))?.spec.holderIdentity, "upstream-pod");

    // 2. client-go releases (SIGTERM, releaseOnCancel): ours takes over
    await peer.stop();
    await waitFor("ours to lead", async () => (await oursLeading(a.logFile)) || undefined, {
      timeoutMs: 15_000,
    });
    const held = await leaseOf(kube, "le", UPSTREAM_LEASE_NAME);
    assert.equal(held?.spec.holderIdentity, "portager-1");
    assert.equal(held?.spec.leaseTransitions, 1, "taking the lease client-go released is one transition");

    // 3. a new client-go peer stands by while ours renews
    const peer2 = await startLeaderPeer(kube.kubeconfigPath, {
      namespace: "le",
      identity: "upstream-pod-2",
      ...timings,
      traceReads: true,
    });
    stops.push(() => peer2.stop({ signal: "SIGKILL" }));
    await watch(4 * timings.leaseDurationMs, peer2, a.logFile);
    assert.equal(peer2.isLeading(), false, "client-go stands by while ours renews");

    // 4. ours crashes (no release): client-go takes over only once the lease expired by its clock,
    //    which restarts when the record it reads changes — with renewTime in whole seconds (see
    //    clientGoRecord). So the lease runs from the first renewal in the second of our last one,
    //    not from our last renewal: with a 300 ms retry period client-go may take over up to ~1 s
    //    less than a lease after our last renewal (runs of this step: 2652–2853 ms after our last
    //    renewal, 3275–3905 ms after the record changed for client-go; its reads in the message).
    //    The reads run from before the kill to the takeover, so a renewal in flight when SIGKILL
    //    lands is counted too.
    const track = trackLease(kube);
    await track.changes(1); // from here our last record's appearance is bounded by a read before it
    // killed 700 ms into a second of renewals: our last renewals are no change to client-go
    await new Promise((r) => setTimeout(r, 700));
    await a.kill("SIGKILL");
    await peer2.waitFor("LEADING upstream-pod-2", { timeoutMs: 20_000 });
    const tookOver = performance.now();
    const reads = await track.stop();
    const last = reads.findLast((r) => r.holder === "portager-1")!;
    const first = reads.findIndex((r) => clientGoRecord(r) === clientGoRecord(last));
    assert.ok(first > 0, "the reads saw the record before our last one");
    // the last record of ours appeared after the start of the read before it showed it
    const waited = tookOver - reads[first - 1].start;
    assert.ok(
      waited >= timings.leaseDurationMs - CACHE_LAG_MS,
      `client-go took over ${waited.toFixed(0)} ms after our last record (${last.renewTime}) appeared: ` +
        `it did not wait for the lease\n${
          peer2.logs().filter((l) => l.startsWith("READ ")).slice(-12).join("\n")
        }`,
    );

    // 5. client-go crashes: ours (new process) takes over only after a whole lease duration
    const b = ours(2);
    await watch(2 * timings.leaseDurationMs, peer2, b.logFile);
    const lastRenewOfPeer = await renewalSeen(kube, "upstream-pod-2");
    await peer2.stop({ signal: "SIGKILL" });
    await waitFor("ours to lead again", async () => (await oursLeading(b.logFile)) || undefined, {
      timeoutMs: 20_000,
    });
    assert.ok(
      performance.now() - lastRenewOfPeer >= timings.leaseDurationMs - CACHE_LAG_MS,
      `ours waited a whole lease duration (took over ${
        performance.now() - lastRenewOfPeer
      } ms after the last renewal)`,
    );
    assert.deepEqual(violations, [], "both led at these instants");
    await b.kill("SIGTERM");
  } finally {
    for (const stop of stops) await stop().catch(() => undefined);
    await kube.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tenancy: another namespace's Secret is refused without saying anything about it; allowed by the flag", async () => {
  const kube = await startKube();
  const src = await startRegistry("plain");
  const dst = await startRegistry("basic", { users: { pusher: "push-pass" } });
  const runs: Array<{ stop: () => Promise<void> }> = [];
  const start = (opts: { allowCrossNamespaceRefs?: boolean; cloudIdentityNamespaces?: string[] }) => {
    const ac = new AbortController();
    const lines: string[] = [];
    const done = runOperator({
      kubeconfig: kube.kubeconfigPath,
      leaderElection: false,
      metricsAddr: "127.0.0.1:0",
      insecureRegistries: [src.host, dst.host],
      logger: createLogger({ level: "debug", format: "json", write: (l) => lines.push(l) }),
      signal: ac.signal,
      backoffBaseMs: 500,
      backoffMaxMs: 2_000,
      gracePeriodMs: 2_000,
      ...opts,
    });
    const run = {
      stop: async () => {
        ac.abort();
        await done;
      },
    };
    runs.push(run);
    return run;
  };
  try {
    await kube.apply(crdObject());
    await pushImage(src, { repository: "lib/app", tag: "v1" }, { seed: 21 });
    for (const ns of ["team-a", "team-b"]) await createNamespace(kube, ns);
    // team-b's push credentials; team-a has none
    await kube.apply(
      dockerConfigSecret("team-b", "regcred", { [dst.host]: { username: "pusher", password: "push-pass" } }),
    );
    await kube.apply({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "opaque", namespace: "team-b" },
      type: "Opaque",
      data: { x: btoa("y") },
    });
    const borrow = (name: string, secret: string) =>
      imageSync("team-a", name, {
        schedule: "@every 1h",
        source: { registry: `${src.host}/lib` },
        destination: {
          registry: dst.host,
          repositoryPrefix: name,
          auth: { method: "secret", secretRef: { name: secret, namespace: "team-b" } },
        },
        images: [{ name: "app", tags: ["v1"] }],
      });
    await kube.apply(borrow("borrow-existing", "regcred"));
    await kube.apply(borrow("borrow-missing", "no-such-secret"));
    await kube.apply(borrow("borrow-opaque", "opaque"));
    await kube.apply(imageSync("team-a", "cloud", {
      schedule: "@every 1h",
      source: { registry: `${src.host}/lib` },
      destination: { registry: "us-docker.pkg.dev/p/r", auth: { method: "gar" } },
      images: [{ name: "app", tags: ["v1"] }],
    }));

    const op = start({ cloudIdentityNamespaces: ["infra"] });
    const messages: string[] = [];
    for (const name of ["borrow-existing", "borrow-missing", "borrow-opaque"]) {
      const obj = await waitForReady(kube, "team-a", name, { timeoutMs: 30_000 });
      const ready = condition(obj, "Ready")!;
      assert.equal(ready.status, "False");
      assert.equal(ready.reason, "CrossNamespaceRefDenied");
      messages.push(ready.message.replace(/no-such-secret|regcred|opaque/g, "NAME"));
    }
    // whether it exists, and its type, make no difference to what team-a reads
    assert.equal(new Set(messages).size, 1, messages.join("\n"));
    assert.doesNotMatch(messages[0], /not found|Opaque|type|dockerconfigjson/);
    assert.match(messages[0], /--allow-cross-namespace-refs/);
    const cloud = condition(await waitForReady(kube, "team-a", "cloud", { timeoutMs: 30_000 }), "Ready")!;
    assert.equal(cloud.reason, "CloudIdentityDenied");
    // nothing reached the destination registry: no credentials were tried there
    assert.deepEqual((await dst.flushLog()).filter((l) => !/flush-\d+/.test(l)), []);
    await op.stop();

    // the flag allows it: team-b's Secret is used and the image arrives
    start({ allowCrossNamespaceRefs: true });
    // (Ready=False is retried with backoff by the new operator)
    const ok = await waitForReady(kube, "team-a", "borrow-existing", {
      timeoutMs: 60_000,
      ok: (c) => c.status === "True",
    });
    assert.equal(condition(ok, "Ready")?.reason, "SyncSucceeded");
    assert.equal((await getImageSync(kube, "team-a", "borrow-existing"))?.status?.syncedImages, 1);
  } finally {
    for (const r of runs) await r.stop().catch(() => undefined);
    await src.stop();
    await dst.stop();
    await kube.stop();
  }
});

Deno.test("--metrics-cert-path: the given certificate is served, and a rotated one without a restart", async () => {
  const kube = await startKube();
  const dir = await Deno.makeTempDir({ prefix: "portager-metrics-cert-" });
  const ac = new AbortController();
  let done: Promise<void> | undefined;
  try {
    const first = await selfSignedCertificate(["localhost"], { commonName: "first" });
    const second = await selfSignedCertificate(["localhost"], { commonName: "second" });
    await Deno.writeTextFile(`${dir}/tls.crt`, first.cert);
    await Deno.writeTextFile(`${dir}/tls.key`, first.key);
    const listening = Promise.withResolvers<number>();
    done = runOperator({
      kubeconfig: kube.kubeconfigPath,
      leaderElection: false,
      metricsBindAddress: "127.0.0.1:0",
      healthProbeBindAddress: "0",
      metricsCertPath: dir,
      onListening: (a) => listening.resolve(a.port),
      logger: createLogger({ level: "warn", format: "json", write: () => {} }),
      signal: ac.signal,
    });
    const port = await listening.promise;
    /** The status of an unauthenticated scrape trusting only `ca`, or "untrusted". */
    const scrape = async (ca: string) => {
      const client = Deno.createHttpClient({ caCerts: [ca] });
      try {
        const res = await fetch(`https://localhost:${port}/metrics`, { client });
        await res.body?.cancel();
        return res.status;
      } catch {
        return "untrusted";
      } finally {
        client.close();
      }
    };
    assert.equal(await scrape(first.cert), 401, "our certificate, and no token: 401");
    assert.equal(await scrape(second.cert), "untrusted");
    // the Secret is rotated in place, as a kubelet updates a mounted Secret
    await Deno.writeTextFile(`${dir}/tls.key.new`, second.key);
    await Deno.writeTextFile(`${dir}/tls.crt.new`, second.cert);
    await Deno.rename(`${dir}/tls.key.new`, `${dir}/tls.key`);
    await Deno.rename(`${dir}/tls.crt.new`, `${dir}/tls.crt`);
    await waitFor("the rotated certificate", async () => (await scrape(second.cert)) === 401 || undefined, {
      timeoutMs: 30_000,
      intervalMs: 500,
    });
    assert.equal(await scrape(first.cert), "untrusted", "the old one is no longer served");
  } finally {
    ac.abort();
    await done;
    await kube.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
