// The operator end to end against a real kube-apiserver (etcd + kube-apiserver from the harness)
// and real registries (CNCF distribution: plain, htpasswd Basic, Bearer with a token server).
// The operator runs in-process (runOperator with an AbortController) except where a kill is the
// point: there it is `main.ts run` in a subprocess that gets SIGKILL.
import assert from "node:assert/strict";
import { loadAll } from "js-yaml";
import { API_VERSION, crdObject, type ImageSync, SYNC_NOW_ANNOTATION } from "../src/api/mod.ts";
import { type OperatorOptions, runOperator } from "../src/controller/mod.ts";
import { createMetrics, type Metrics } from "../src/metrics/mod.ts";
import { createLogger } from "../src/log/mod.ts";
import { type KubeCluster, startKube } from "./harness/kube.ts";
import { getManifest, type PushedImage, pushImage } from "./harness/fixtures.ts";
import { startFaultProxy } from "./harness/fault_proxy.ts";
import { ImageSyncClient, KubeClient, KubeError, loadKubeconfigFiles } from "../src/kube/mod.ts";
import { type RegistryServer, startRegistry } from "./harness/registry.ts";
import { promtoolCheckMetrics } from "./harness/supply_chain.ts";

const ISYNC = "/apis/portager.portager.io/v1alpha1";

interface KubeEvent {
  reason: string;
  type: string;
  message: string;
  count?: number;
  reportingComponent?: string;
  involvedObject: { name: string; kind: string };
}

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  lastTransitionTime: string;
}

type Stored = ImageSync & {
  metadata: ImageSync["metadata"] & { generation: number; resourceVersion: string; uid: string };
  status?: ImageSync["status"] & { conditions?: Condition[] };
};

/** Polls `probe` until it returns a truthy value; fails with `what` and the last value seen. */
async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${what}; last: ${last instanceof Error ? last.stack : JSON.stringify(last)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function json<T>(res: Response): Promise<T> {
  const text = await res.text();
  if (!res.ok) throw new Error(`${res.status}: ${text}`);
  return JSON.parse(text) as T;
}

function ready(o: Stored | undefined): Condition | undefined {
  return o?.status?.conditions?.find((c) => c.type === "Ready");
}

/** A running in-process operator. */
interface Op {
  port: number;
  metrics: Metrics;
  logs: string[];
  stop(): Promise<void>;
  isLeader(): Promise<boolean>;
  syncs(name: string): Promise<number>;
}

/** The apiserver's audit policy: one line per request (metadata only), none for its receipt. */
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
`;

/** The operator's requests in audit-log lines, as "verb resource[/subresource]" (a watch once). */
function operatorRequests(lines: string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const line of lines) {
    if (!line.trim()) continue;
    const e = JSON.parse(line) as {
      auditID: string;
      verb: string;
      userAgent?: string;
      objectRef?: { resource?: string; subresource?: string };
    };
    if (!e.userAgent?.startsWith("portager-operator") || seen.has(e.auditID)) continue;
    seen.add(e.auditID);
    const sub = e.objectRef?.subresource ? `/${e.objectRef.subresource}` : "";
    out.push(`${e.verb} ${e.objectRef?.resource ?? "(none)"}${sub}`);
  }
  return out;
}

class Env {
  kube!: KubeCluster;
  /** The apiserver's audit log (JSON lines). */
  auditLog = "";
  /** Audit lines logged so far. */
  async audit(): Promise<string[]> {
    return (await Deno.readTextFile(this.auditLog)).split("\n");
  }
  src!: RegistryServer;
  dst!: RegistryServer;
  basic!: RegistryServer;
  bearer!: RegistryServer;
  images = new Map<string, PushedImage>();
  /** Every log line of every operator, to check that no credential leaks. */
  allLogs: string[] = [];

  async ns(name: string): Promise<string> {
    await this.kube.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name } });
    return name;
  }

  async get(ns: string, name: string): Promise<Stored | undefined> {
    const res = await this.kube.adminFetch(`${ISYNC}/namespaces/${ns}/imagesyncs/${name}`);
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    return await json<Stored>(res);
  }

  async events(ns: string, object?: string): Promise<KubeEvent[]> {
    const list = await json<{ items: KubeEvent[] }>(
      await this.kube.adminFetch(`/api/v1/namespaces/${ns}/events`),
    );
    return list.items.filter((e) => !object || e.involvedObject.name === object);
  }

  async patch(ns: string, name: string, body: unknown): Promise<Stored> {
    return await json<Stored>(
      await this.kube.adminFetch(`${ISYNC}/namespaces/${ns}/imagesyncs/${name}`, {
        method: "PATCH",
        headers: { "content-type": "application/merge-patch+json" },
        body: JSON.stringify(body),
      }),
    );
  }

  async remove(ns: string, name: string): Promise<void> {
    const res = await this.kube.adminFetch(`${ISYNC}/namespaces/${ns}/imagesyncs/${name}`, {
      method: "DELETE",
    });
    await res.body?.cancel();
  }

  async dockerSecret(ns: string, name: string, reg: RegistryServer): Promise<void> {
    const auth = btoa(`${reg.username}:${reg.password}`);
    const config = JSON.stringify({
      auths: { [reg.host]: { username: reg.username, password: reg.password, auth } },
    });
    await this.kube.apply({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name, namespace: ns },
      type: "kubernetes.io/dockerconfigjson",
      data: { ".dockerconfigjson": btoa(config) },
    });
  }

  /** Waits until the object's Ready condition satisfies `ok` (and returns the object). */
  waitReady(
    ns: string,
    name: string,
    ok: (c: Condition, o: Stored) => boolean,
    what: string,
  ): Promise<Stored> {
    return waitFor(`${ns}/${name}: ${what}`, async () => {
      const o = await this.get(ns, name);
      const c = ready(o);
      return o && c && ok(c, o) ? o : undefined;
    });
  }

  async startOperator(kubeconfig: string, opts: Partial<OperatorOptions> = {}): Promise<Op> {
    const ac = new AbortController();
    const logs: string[] = [];
    const metrics = createMetrics();
    let onPort!: (p: number) => void;
    const portP = new Promise<number>((r) => onPort = r);
    const done = runOperator({
      kubeconfig,
      leaderElection: false,
      metricsAddr: "127.0.0.1:0",
      onListening: (a) => onPort(a.port),
      logger: createLogger({
        level: "debug",
        write: (l) => {
          logs.push(l);
          this.allLogs.push(l);
        },
      }),
      signal: ac.signal,
      gracePeriodMs: 20_000,
      backoffBaseMs: 300,
      backoffMaxMs: 3_000,
      metrics,
      ...opts,
    });
    const port = await Promise.race([
      portP,
      done.then(() => Promise.reject(new Error(`operator exited early:\n${logs.join("\n")}`))),
    ]);
    let stopped: Promise<void> | undefined;
    return {
      port,
      metrics,
      logs,
      stop: () => {
        ac.abort();
        stopped ??= done;
        return stopped;
      },
      isLeader: async () => (await metrics.isLeader.get()).values[0]?.value === 1,
      syncs: async (name) =>
        (await metrics.syncTotal.get()).values.filter((v) => v.labels.name === name)
          .reduce((n, v) => n + v.value, 0),
    };
  }
}

async function readyz(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  await res.body?.cancel();
  return res.status;
}

function imageSync(ns: string, name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: API_VERSION, kind: "ImageSync", metadata: { name, namespace: ns }, spec };
}

/** Blob uploads and manifest pushes in registry access-log lines. */
function writes(lines: string[]): string[] {
  return lines.filter((l) => /^(POST|PUT|PATCH) \/v2\/.*\/(blobs\/uploads|manifests)/.test(l));
}

Deno.test("operator against a real apiserver and registries", async (t) => {
  const env = new Env();
  const started: Array<{ stop(): Promise<void> }> = [];
  const auditDir = await Deno.makeTempDir({ prefix: "portager-audit-" });
  env.auditLog = `${auditDir}/audit.log`;
  await Deno.writeTextFile(`${auditDir}/policy.yaml`, AUDIT_POLICY);
  try {
    [env.kube, env.src, env.dst, env.basic, env.bearer] = await Promise.all([
      startKube({
        apiserverArgs: [
          `--audit-policy-file=${auditDir}/policy.yaml`,
          `--audit-log-path=${env.auditLog}`,
          "--audit-log-format=json",
          "--audit-log-mode=blocking",
        ],
      }),
      startRegistry("plain"),
      startRegistry("plain"),
      startRegistry("basic"),
      startRegistry("bearer"),
    ]);
    const { kube, src, dst } = env;
    for (const [tag, seed] of [["1.0", 1], ["1.1", 2], ["1.2", 3]] as const) {
      env.images.set(tag, await pushImage(src, { repository: "app", tag }, { seed, layers: [2048, 4096] }));
    }

    await t.step("the CRD generated from src/api applies and is served", async () => {
      const stored = await kube.apply(crdObject()) as { metadata: { name: string } };
      assert.equal(stored.metadata.name, "imagesyncs.portager.portager.io");
    });

    await t.step("the apiserver refuses invalid ImageSyncs with the CEL messages", async () => {
      await env.ns("invalid");
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{
          schedule: "@every 1h",
          source: { registry: "src.example" },
          destination: { registry: "oci://dst.example", auth: { method: "anonymous" } },
          images: [{ name: "app", tags: ["1"] }],
        }, /registry must not include a scheme/],
        [{
          schedule: "@every 1h",
          source: { registry: "src.example" },
          destination: { registry: "dst.example", auth: { method: "anonymous" } },
          images: [{ name: "app" }],
        }, /needs tags or semver/],
        [{
          schedule: "@every 1h",
          source: { registry: "https://src.example" },
          destination: { registry: "dst.example", auth: { method: "anonymous" } },
          images: [{ name: "app", tags: ["1"] }],
        }, /registry must not include a scheme/],
      ];
      for (const [spec, message] of cases) {
        const res = await kube.adminFetch(`${ISYNC}/namespaces/invalid/imagesyncs`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(imageSync("invalid", "bad", spec)),
        });
        const body = await res.json() as { message: string; reason: string };
        assert.equal(res.status, 422, JSON.stringify(body));
        assert.equal(body.reason, "Invalid");
        assert.match(body.message, message);
      }
      // upstream's default sample: method secret with no secretRef is anonymous, not invalid
      const sample = await kube.adminFetch(`${ISYNC}/namespaces/invalid/imagesyncs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(imageSync("invalid", "upstream-sample", {
          schedule: "@every 1h",
          source: { registry: "src.example" },
          destination: { registry: "dst.example", auth: { method: "secret" } },
          images: [{ name: "app", tags: ["1"] }],
        })),
      });
      assert.equal(sample.status, 201, await sample.text());
      const gone = await kube.adminFetch(`${ISYNC}/namespaces/invalid/imagesyncs/upstream-sample`, {
        method: "DELETE",
      });
      await gone.body?.cancel();
    });

    await t.step(
      "kube client: a status write at a stale resourceVersion is retried from a fresh read (409)",
      async () => {
        await env.ns("conflict");
        await kube.apply(imageSync("conflict", "c", {
          schedule: "@every 1h",
          source: { registry: "src.example" },
          destination: { registry: "dst.example", auth: { method: "anonymous" } },
          images: [{ name: "app", tags: ["1"] }],
        }));
        const client = new KubeClient(loadKubeconfigFiles([kube.kubeconfigPath]));
        try {
          const isc = new ImageSyncClient(client);
          const stale = (await isc.get("conflict", "c"))!;
          await env.patch("conflict", "c", { metadata: { labels: { touched: "yes" } } });
          const seen: unknown[] = [];
          const stored = await isc.updateStatus(stale, (cur) => {
            seen.push(cur.metadata.resourceVersion);
            return { totalImages: 7 };
          });
          assert.equal(seen.length, 2, "built once on the stale object, once after the 409");
          assert.notEqual(seen[0], seen[1]);
          assert.equal(stored?.status?.totalImages, 7);
          assert.equal(
            stored?.metadata.labels?.touched,
            "yes",
            "the merge patch kept the other writer's change",
          );
        } finally {
          client.close();
          // its registries do not exist: leave no sync to wait for in later steps
          await env.remove("conflict", "c");
        }
      },
    );

    await t.step(
      "kube client: a rotated token file is re-read on 401; exec credential plugins work",
      async () => {
        await env.ns("tok");
        const tokenB = await kube.tokenFor("tok", "rotator");
        const secret = await kube.apply({
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: "bind", namespace: "tok" },
        }) as {
          metadata: { uid: string };
        };
        // token A is bound to the Secret: deleting the Secret revokes it
        const tr = await json<{ status: { token: string } }>(
          await kube.adminFetch("/api/v1/namespaces/tok/serviceaccounts/rotator/token", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              apiVersion: "authentication.k8s.io/v1",
              kind: "TokenRequest",
              spec: {
                expirationSeconds: 3600,
                boundObjectRef: { apiVersion: "v1", kind: "Secret", name: "bind", uid: secret.metadata.uid },
              },
            }),
          }),
        );
        const tokenA = tr.status.token;
        const dir = await Deno.makeTempDir({ prefix: "portager-tok-" });
        const ca = btoa(kube.caPem);
        const kubeconfig = (user: string) =>
          `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: ${kube.server}\n` +
          `    certificate-authority-data: ${ca}\nusers:\n- name: u\n  user:\n${user}\ncontexts:\n- name: x\n` +
          `  context: {cluster: c, user: u}\ncurrent-context: x\n`;
        const tokenPost = (token: string) =>
          fetch(`${kube.server}/api`, { headers: { authorization: `Bearer ${token}` }, client: caClient });
        const caClient = Deno.createHttpClient({ caCerts: [kube.caPem] });
        const clients: KubeClient[] = [];
        try {
          await Deno.writeTextFile(`${dir}/token`, tokenA);
          await Deno.writeTextFile(`${dir}/file.yaml`, kubeconfig(`    tokenFile: token`));
          const fileClient = new KubeClient(loadKubeconfigFiles([`${dir}/file.yaml`]));
          clients.push(fileClient);
          assert.ok(
            (await fileClient.request<{ versions: string[] }>("GET", "/api")).versions.includes("v1"),
          );
          // rotate: the file gets token B, and token A stops working
          await Deno.writeTextFile(`${dir}/token`, tokenB);
          const del = await kube.adminFetch("/api/v1/namespaces/tok/secrets/bind", { method: "DELETE" });
          await del.body?.cancel();
          await waitFor("token A to be revoked", async () => {
            const res = await tokenPost(tokenA);
            await res.body?.cancel();
            return res.status === 401;
          });
          assert.ok(
            (await fileClient.request<{ versions: string[] }>("GET", "/api")).versions.includes("v1"),
          );

          const cred = JSON.stringify({
            apiVersion: "client.authentication.k8s.io/v1",
            kind: "ExecCredential",
            status: { token: tokenB },
          });
          await Deno.writeTextFile(`${dir}/cred.json`, cred);
          await Deno.writeTextFile(
            `${dir}/exec.yaml`,
            kubeconfig(
              `    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/cat\n` +
                `      args: ["${dir}/cred.json"]`,
            ),
          );
          const execClient = new KubeClient(loadKubeconfigFiles([`${dir}/exec.yaml`]));
          clients.push(execClient);
          assert.ok(
            (await execClient.request<{ versions: string[] }>("GET", "/api")).versions.includes("v1"),
          );
          await Deno.writeTextFile(
            `${dir}/bad.yaml`,
            kubeconfig(`    exec:\n      command: /bin/false`),
          );
          const badClient = new KubeClient(loadKubeconfigFiles([`${dir}/bad.yaml`]));
          clients.push(badClient);
          await assert.rejects(badClient.request("GET", "/api"), (e: Error) => {
            assert.ok(e instanceof KubeError);
            assert.equal(e.reason, "Unauthorized");
            assert.match(e.message, /exec credential plugin \/bin\/false exited with 1/);
            return true;
          });
        } finally {
          for (const c of clients) c.close();
          caClient.close();
          await Deno.remove(dir, { recursive: true });
        }
      },
    );

    const op = await env.startOperator(kube.kubeconfigPath);
    started.push(op);
    await waitFor("operator /readyz", async () => await readyz(op.port) === 200);

    const plainSpec = (tags: string[], extra: Record<string, unknown> = {}) => ({
      schedule: "@every 1h",
      source: { registry: src.host },
      destination: { registry: dst.host, auth: { method: "anonymous" }, repositoryPrefix: "mirror" },
      images: [{ name: "app", tags }],
      ...extra,
    });

    await t.step("create → Ready with per-tag status, Events and the images at the destination", async () => {
      await env.ns("team-a");
      const mark = (await env.audit()).length;
      await kube.apply(imageSync("team-a", "mirror", plainSpec(["1.0", "1.1"])));
      const o = await env.waitReady("team-a", "mirror", (c) => c.status === "True", "Ready=True");
      // reconcile reads the informer's cache: no GET before its write (issue 16)
      const requests = operatorRequests((await env.audit()).slice(mark));
      assert.ok(!requests.includes("get imagesyncs"), requests.join(", "));
      assert.ok(requests.includes("patch imagesyncs/status"), requests.join(", "));
      const st = o.status!;
      assert.equal(ready(o)!.reason, "SyncSucceeded");
      assert.equal(st.observedGeneration, o.metadata.generation);
      assert.equal(st.totalImages, 2);
      assert.equal(st.syncedImages, 2);
      assert.equal(st.failedImages, 0);
      const tags = st.images![0].tags!;
      assert.deepEqual(tags.map((x) => [x.tag, x.synced, x.sourceDigest]), [
        ["1.0", true, env.images.get("1.0")!.digest],
        ["1.1", true, env.images.get("1.1")!.digest],
      ]);
      const syncing = st.conditions!.find((c) => c.type === "Syncing")!;
      assert.equal(syncing.status, "False");
      assert.equal(syncing.reason, "SyncComplete");
      const nextMs = Date.parse(st.nextSyncTime!) - Date.parse(st.lastSyncTime!);
      assert.ok(nextMs > 3_500_000 && nextMs <= 3_600_000, `nextSyncTime is lastSyncTime + 1h: ${nextMs}`);
      for (const tag of ["1.0", "1.1"]) {
        const m = await getManifest(dst, "mirror/app", tag);
        assert.equal(m.status, 200);
        assert.equal(m.digest, env.images.get(tag)!.digest);
      }
      const evs = await waitFor("ImageSynced and SyncComplete Events", async () => {
        const e = await env.events("team-a", "mirror");
        return e.some((x) => x.reason === "SyncComplete") && e.some((x) => x.reason === "ImageSynced") && e;
      });
      const synced = evs.filter((e) => e.reason === "ImageSynced");
      // two tags, two Events kubectl describe shows (client-go's correlator keeps distinct
      // messages), from upstream's component
      assert.deepEqual(synced.map((e) => e.count), [1, 1]);
      assert.deepEqual(synced.map((e) => /:(1\.[01]) /.exec(e.message)?.[1]).sort(), ["1.0", "1.1"]);
      assert.equal(synced[0].involvedObject.kind, "ImageSync");
      assert.deepEqual(synced.map((e) => e.reportingComponent), [
        "imagesync-controller",
        "imagesync-controller",
      ]);
      assert.match(evs.find((e) => e.reason === "SyncComplete")!.message, /2 synced, 0 failed, 2 total/);
    });

    await t.step("a spec edit syncs again at once", async () => {
      const before = (await env.get("team-a", "mirror"))!;
      await kube.apply(imageSync("team-a", "mirror", plainSpec(["1.0", "1.1", "1.2"])));
      const o = await env.waitReady(
        "team-a",
        "mirror",
        (c, x) => c.status === "True" && x.status?.observedGeneration === before.metadata.generation + 1,
        "observedGeneration to follow the edit",
      );
      assert.equal(o.status!.totalImages, 3);
      const m = await getManifest(dst, "mirror/app", "1.2");
      assert.equal(m.digest, env.images.get("1.2")!.digest);
    });

    await t.step(
      "the sync-now annotation syncs, is removed, and leaves a SyncNowTriggered Event",
      async () => {
        const before = (await env.get("team-a", "mirror"))!;
        const mark = (await env.audit()).length;
        await env.patch("team-a", "mirror", { metadata: { annotations: { [SYNC_NOW_ANNOTATION]: "true" } } });
        const o = await waitFor("a new sync and the annotation gone", async () => {
          const x = await env.get("team-a", "mirror");
          return x && x.status?.lastSyncTime !== before.status!.lastSyncTime &&
            !x.metadata.annotations?.[SYNC_NOW_ANNOTATION] && ready(x)?.status === "True" && x;
        });
        assert.equal(o.status!.syncedImages, 3);
        // from the watch cache: the annotation removed once, no read, the status written once
        // (twice only when the sync outlasts the Syncing=True delay), then Events only
        const requests = operatorRequests((await env.audit()).slice(mark))
          .filter((r) => !r.endsWith(" events"));
        const writes = requests.filter((r) => r === "patch imagesyncs/status").length;
        assert.deepEqual(
          requests.filter((r) => r !== "patch imagesyncs/status"),
          ["patch imagesyncs"],
          requests.join(", "),
        );
        assert.ok(writes >= 1 && writes <= 2, requests.join(", "));
        // Ready stayed True, so its transition time did not move
        assert.equal(ready(o)!.lastTransitionTime, ready(before)!.lastTransitionTime);
        await waitFor(
          "SyncNowTriggered Event",
          async () => (await env.events("team-a", "mirror")).some((e) => e.reason === "SyncNowTriggered"),
        );
      },
    );

    await t.step("@every 2s: the second sync copies nothing", async () => {
      await env.ns("team-b");
      await kube.apply(imageSync("team-b", "fast", { ...plainSpec(["1.0", "1.1"]), schedule: "@every 2s" }));
      const first = await env.waitReady("team-b", "fast", (c) => c.status === "True", "first sync");
      const mark = (await dst.flushLog()).length;
      const second = await waitFor("a second scheduled sync", async () => {
        const x = await env.get("team-b", "fast");
        return x && x.status?.lastSyncTime !== first.status!.lastSyncTime && ready(x)?.status === "True" && x;
      });
      assert.equal(second.metadata.generation, first.metadata.generation, "no spec change triggered it");
      const log = (await dst.flushLog()).slice(mark);
      assert.ok(log.some((l) => /^(HEAD|GET) \/v2\/mirror\/app\/manifests\//.test(l)), log.join("\n"));
      assert.deepEqual(writes(log), [], "the second sync pushed something");
      await waitFor(
        "ImageSkipped Event",
        async () => (await env.events("team-b", "fast")).some((e) => e.reason === "ImageSkipped"),
      );
      await env.remove("team-b", "fast");
    });

    await t.step("an invalid cron expression → Ready=False InvalidSchedule (and an Event)", async () => {
      await env.ns("team-c");
      await kube.apply(imageSync("team-c", "badcron", { ...plainSpec(["1.0"]), schedule: "61 * * * *" }));
      const o = await env.waitReady("team-c", "badcron", (c) => c.status === "False", "Ready=False");
      assert.equal(ready(o)!.reason, "InvalidSchedule");
      assert.match(ready(o)!.message, /invalid schedule/);
      assert.equal(o.status?.lastSyncTime, undefined, "nothing was synced");
      await waitFor(
        "InvalidSchedule Event",
        async () =>
          (await env.events("team-c", "badcron")).some((e) =>
            e.reason === "InvalidSchedule" && e.type === "Warning"
          ),
      );
    });

    await t.step("a missing Secret → AuthFailed naming it and the registry; creating it heals", async () => {
      const spec = {
        schedule: "@every 1h",
        source: { registry: src.host },
        destination: {
          registry: env.basic.host,
          auth: { method: "secret", secretRef: { name: "basic-creds" } },
        },
        images: [{ name: "app", tags: ["1.0"] }],
      };
      await kube.apply(imageSync("team-c", "nosecret", spec));
      const o = await env.waitReady("team-c", "nosecret", (c) => c.reason === "AuthFailed", "AuthFailed");
      assert.equal(ready(o)!.status, "False");
      assert.match(ready(o)!.message, /secret team-c\/basic-creds not found/);
      assert.ok(ready(o)!.message.includes(env.basic.host), ready(o)!.message);
      // the Secret is read fresh on the backoff retry
      await env.dockerSecret("team-c", "basic-creds", env.basic);
      await env.waitReady("team-c", "nosecret", (c) => c.status === "True", "Ready after the Secret exists");
      const m = await getManifest(env.basic, "app", "1.0");
      assert.equal(m.digest, env.images.get("1.0")!.digest);
    });

    await t.step("a Bearer-token destination through a dockerconfigjson Secret", async () => {
      await env.ns("team-e");
      await env.dockerSecret("team-e", "bearer-creds", env.bearer);
      await kube.apply(imageSync("team-e", "tokens", {
        schedule: "@every 1h",
        source: { registry: src.host },
        destination: {
          registry: env.bearer.host,
          repositoryPrefix: "mirror",
          auth: { method: "secret", secretRef: { name: "bearer-creds" } },
        },
        images: [{ name: "app", tags: ["1.0", "1.1"] }],
      }));
      await env.waitReady("team-e", "tokens", (c) => c.status === "True", "Ready=True");
      const m = await getManifest(env.bearer, "mirror/app", "1.1");
      assert.equal(m.digest, env.images.get("1.1")!.digest);
      assert.ok((env.bearer.tokenRequests ?? []).length > 0, "the token server issued tokens");
    });

    await t.step(
      "metrics: upstream's series for the synced ImageSyncs, and promtool accepts them",
      async () => {
        const text = await (await fetch(`http://127.0.0.1:${op.port}/metrics`)).text();
        assert.match(text, /portage_sync_total\{name="mirror",namespace="team-a",status="success"\} [3-9]/);
        assert.match(text, /portage_images_copied_total\{name="mirror",namespace="team-a"\} 3/);
        assert.match(
          text,
          /portage_image_info\{name="mirror",namespace="team-a",synced="3",failed="0",total="3"\} 1/,
        );
        // controller-runtime's series, with its label names and values (issue 15 item 10)
        for (
          const series of [
            /^controller_runtime_reconcile_total\{controller="imagesync",result="success"\} [1-9]/m,
            /^controller_runtime_reconcile_total\{controller="imagesync",result="requeue_after"\} [1-9]/m,
            /^controller_runtime_reconcile_errors_total\{controller="imagesync"\} \d+/m,
            /^controller_runtime_reconcile_time_seconds_count\{controller="imagesync"\} [1-9]/m,
            /^controller_runtime_active_workers\{controller="imagesync"\} \d+/m,
            /^controller_runtime_max_concurrent_reconciles\{controller="imagesync"\} 2$/m, // the default workers
            /^workqueue_depth\{name="imagesync",controller="imagesync",priority="0"\} \d+/m,
            /^workqueue_adds_total\{name="imagesync",controller="imagesync"\} [1-9]/m,
            /^workqueue_queue_duration_seconds_bucket\{le="1e-8",name="imagesync",controller="imagesync"\} \d+/m,
            /^workqueue_work_duration_seconds_count\{name="imagesync",controller="imagesync"\} [1-9]/m,
            /^workqueue_retries_total\{name="imagesync",controller="imagesync"\} \d+/m,
            /^workqueue_unfinished_work_seconds\{name="imagesync",controller="imagesync"\} [\d.e-]+$/m,
            /^workqueue_longest_running_processor_seconds\{name="imagesync",controller="imagesync"\} [\d.e-]+$/m,
            /^rest_client_requests_total\{code="200",host="127\.0\.0\.1:\d+",method="GET"\} [1-9]/m,
            /^rest_client_requests_total\{code="\d+",host="127\.0\.0\.1:\d+",method="PATCH"\} [1-9]/m,
            /^process_cpu_seconds_total [\d.e-]+$/m,
            /^process_resident_memory_bytes [1-9]\d+$/m,
            /^process_start_time_seconds 1\d{9}$/m,
            /^process_open_fds [1-9]\d*$/m,
          ]
        ) assert.match(text, series);
        const promtool = await promtoolCheckMetrics(text);
        assert.equal(promtool.code, 0, promtool.output);
      },
    );

    await op.stop();

    await t.step("a restarted operator copies nothing that is in sync", async () => {
      const op2 = await env.startOperator(kube.kubeconfigPath);
      started.push(op2);
      const before = (await env.get("team-a", "mirror"))!;
      const mark = (await dst.flushLog()).length;
      await env.patch("team-a", "mirror", { metadata: { annotations: { [SYNC_NOW_ANNOTATION]: "true" } } });
      await waitFor("the restarted operator's sync", async () => {
        const x = await env.get("team-a", "mirror");
        return x && x.status?.lastSyncTime !== before.status!.lastSyncTime && ready(x)?.status === "True";
      });
      assert.deepEqual(writes((await dst.flushLog()).slice(mark)), []);
      const skipped = await op2.metrics.imagesSkipped.get();
      assert.equal(skipped.values.find((v) => v.labels.name === "mirror")?.value, 3);
      await op2.stop();
    });

    await t.step("--namespace: an operator watching one namespace leaves the others alone", async () => {
      await env.ns("only-here");
      await env.ns("not-here");
      await kube.apply(imageSync("not-here", "ignored", plainSpec(["1.0"])));
      await kube.apply(imageSync("only-here", "watched", plainSpec(["1.0"])));
      const scoped = await env.startOperator(kube.kubeconfigPath, { namespaces: ["only-here"] });
      started.push(scoped);
      await env.waitReady("only-here", "watched", (c) => c.status === "True", "Ready=True");
      await scoped.stop();
      assert.equal((await env.get("not-here", "ignored"))?.status, undefined);
      assert.equal(await scoped.syncs("ignored"), 0);
      await env.remove("not-here", "ignored");
    });

    await t.step("shutdown lets an in-flight sync finish within the grace period", async () => {
      await env.ns("team-g");
      let release!: () => void;
      const gate = new Promise<void>((r) => release = r);
      let held = 0;
      const proxy = startFaultProxy(src, [{
        method: "GET",
        path: /^\/v2\/app\/blobs\//,
        fault: {
          kind: "respond",
          respond: async (req, url) => {
            held++;
            await gate;
            return await fetch(new URL(url.pathname, src.url), { headers: req.headers });
          },
        },
      }]);
      try {
        const op3 = await env.startOperator(kube.kubeconfigPath, { gracePeriodMs: 60_000 });
        started.push(op3);
        await kube.apply(imageSync("team-g", "graceful", {
          schedule: "@every 1h",
          source: { registry: proxy.host },
          destination: { registry: dst.host, auth: { method: "anonymous" }, repositoryPrefix: "graceful" },
          images: [{ name: "app", tags: ["1.0"] }],
        }));
        await waitFor("a blob download held in flight", async () => {
          const x = await env.get("team-g", "graceful");
          return held > 0 && x?.status?.conditions?.find((c) => c.type === "Syncing")?.status === "True";
        });
        // shutdown begins while the copy is held; the copy can only finish after it began
        const stopping = op3.stop();
        release();
        await stopping;
        const o = (await env.get("team-g", "graceful"))!;
        assert.equal(ready(o)?.status, "True");
        assert.equal(o.status?.conditions?.find((c) => c.type === "Syncing")?.reason, "SyncComplete");
        assert.equal((await getManifest(dst, "graceful/app", "1.0")).digest, env.images.get("1.0")!.digest);
      } finally {
        release();
        await proxy.stop();
      }
    });

    await t.step(
      "a sync cut by the end of the grace period is marked Interrupted and resumes on restart",
      async () => {
        let release!: () => void;
        const gate = new Promise<void>((r) => release = r);
        let held = 0;
        const proxy = startFaultProxy(src, [{
          method: "GET",
          path: /^\/v2\/app\/blobs\//,
          fault: {
            kind: "respond",
            respond: async (req, url) => {
              held++;
              await gate;
              return await fetch(new URL(url.pathname, src.url), { headers: req.headers });
            },
          },
        }]);
        try {
          const op4 = await env.startOperator(kube.kubeconfigPath, { gracePeriodMs: 200 });
          started.push(op4);
          await kube.apply(imageSync("team-g", "cut", {
            schedule: "@every 1h",
            source: { registry: proxy.host },
            destination: { registry: dst.host, auth: { method: "anonymous" }, repositoryPrefix: "cut" },
            images: [{ name: "app", tags: ["1.1"] }],
          }));
          await waitFor("a blob download held in flight", () => Promise.resolve(held > 0));
          await op4.stop();
          const o = (await env.get("team-g", "cut"))!;
          const syncing = o.status?.conditions?.find((c) => c.type === "Syncing");
          assert.equal(syncing?.status, "False");
          assert.equal(syncing?.reason, "Interrupted");
          assert.equal(o.status?.lastSyncTime, undefined, "no final status was written for a cut sync");
          assert.equal(
            (await getManifest(dst, "cut/app", "1.1")).status,
            404,
            "a tag points to an incomplete image",
          );
          release();
          const op5 = await env.startOperator(kube.kubeconfigPath);
          started.push(op5);
          await env.waitReady("team-g", "cut", (c) => c.status === "True", "the resumed sync");
          assert.equal((await getManifest(dst, "cut/app", "1.1")).digest, env.images.get("1.1")!.digest);
          await op5.stop();
        } finally {
          release();
          await proxy.stop();
        }
      },
    );

    await t.step(
      "two operators with leader election: only the leader syncs; the standby takes over",
      async () => {
        await env.ns("team-d");
        const le = {
          leaderElection: true,
          leaseName: "le-test",
          leaseNamespace: "default",
          leaseDurationMs: 4000,
          renewDeadlineMs: 3000,
          retryPeriodMs: 500,
        };
        const a = await env.startOperator(kube.kubeconfigPath, { ...le, identity: "op-a" });
        started.push(a);
        await waitFor("op-a leads", () => a.isLeader());
        const b = await env.startOperator(kube.kubeconfigPath, { ...le, identity: "op-b" });
        started.push(b);
        await waitFor("op-b is a ready standby", async () => await readyz(b.port) === 200);
        assert.equal(await b.isLeader(), false);
        await kube.apply(imageSync("team-d", "elected", plainSpec(["1.0"])));
        await env.waitReady("team-d", "elected", (c) => c.status === "True", "Ready=True");
        assert.equal(await a.syncs("elected"), 1);
        assert.equal(await b.syncs("elected"), 0, "the standby synced");
        await a.stop(); // releases the Lease
        await waitFor("op-b leads", () => b.isLeader());
        const before = (await env.get("team-d", "elected"))!;
        await env.patch("team-d", "elected", {
          metadata: { annotations: { [SYNC_NOW_ANNOTATION]: "true" } },
        });
        await waitFor("op-b syncs", async () => {
          const x = await env.get("team-d", "elected");
          return x && x.status?.lastSyncTime !== before.status!.lastSyncTime;
        });
        assert.equal(await b.syncs("elected"), 1);
        await b.stop();
        const lease = await json<{ spec: { holderIdentity?: string } }>(
          await kube.adminFetch("/apis/coordination.k8s.io/v1/namespaces/default/leases/le-test"),
        );
        assert.ok(!lease.spec.holderIdentity, "the Lease is released on shutdown");
      },
    );

    await t.step("a killed leader (SIGKILL, no release) is replaced when its Lease expires", async () => {
      await env.ns("team-k");
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "main.ts",
          "run",
          "--kubeconfig",
          kube.kubeconfigPath,
          "--leader-elect",
          "--lease-name",
          "le-kill",
          "--lease-namespace",
          "default",
          "--metrics-addr",
          "127.0.0.1:0",
          "--log-format",
          "json",
        ],
        cwd: new URL("..", import.meta.url).pathname,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const out: string[] = [];
      const pump = (s: ReadableStream<Uint8Array>) =>
        s.pipeThrough(new TextDecoderStream()).pipeTo(new WritableStream({ write: (c) => void out.push(c) }));
      const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
      let killed = false;
      try {
        const holder = await waitFor("the subprocess to lead", async () => {
          const res = await kube.adminFetch("/apis/coordination.k8s.io/v1/namespaces/default/leases/le-kill");
          if (res.status !== 200) return void await res.body?.cancel();
          return (await res.json() as { spec: { holderIdentity?: string } }).spec.holderIdentity;
        });
        await kube.apply(imageSync(
          "team-k",
          "killed",
          plainSpec(["1.0", "1.1"], {
            destination: { registry: dst.host, auth: { method: "anonymous" }, repositoryPrefix: "killtest" },
          }),
        ));
        await env.waitReady("team-k", "killed", (c) => c.status === "True", "the subprocess leader syncs");
        const standby = await env.startOperator(kube.kubeconfigPath, {
          leaderElection: true,
          leaseName: "le-kill",
          leaseNamespace: "default",
          identity: "standby",
        });
        started.push(standby);
        await waitFor("standby ready", async () => await readyz(standby.port) === 200);
        assert.equal(await standby.isLeader(), false);
        child.kill("SIGKILL");
        killed = true;
        await child.status;
        await waitFor("the standby to take over the expired Lease", () => standby.isLeader(), 45_000);
        const lease = await json<{ spec: { holderIdentity?: string } }>(
          await kube.adminFetch("/apis/coordination.k8s.io/v1/namespaces/default/leases/le-kill"),
        );
        assert.equal(lease.spec.holderIdentity, "standby");
        assert.notEqual(holder, "standby");
        // the new leader syncs, and copies nothing the killed one already copied
        const before = (await env.get("team-k", "killed"))!;
        const mark = (await dst.flushLog()).length;
        await env.patch("team-k", "killed", { metadata: { annotations: { [SYNC_NOW_ANNOTATION]: "true" } } });
        await waitFor("the new leader's sync", async () => {
          const x = await env.get("team-k", "killed");
          return x && x.status?.lastSyncTime !== before.status!.lastSyncTime && ready(x)?.status === "True";
        });
        assert.deepEqual(writes((await dst.flushLog()).slice(mark)), []);
        await standby.stop();
      } finally {
        if (!killed) {
          child.kill("SIGKILL");
          await child.status;
        }
        await pumps.catch(() => {});
        env.allLogs.push(...out.join("").split("\n"));
      }
    });

    await t.step(
      "as the portager ServiceAccount bound to deploy/rbac.yaml's least-privilege roles",
      async () => {
        const docs = loadAll(
          await Deno.readTextFile(new URL("../deploy/rbac.yaml", import.meta.url)),
        ) as Array<
          { kind: string }
        >;
        await env.ns("portager-system");
        for (const d of docs) await kube.apply(d);
        const token = await kube.tokenFor("portager-system", "portager");
        const kubeconfig = await kube.kubeconfigForToken(token);
        await env.ns("team-rbac");
        await env.dockerSecret("team-rbac", "push-creds", env.basic);
        const sa = await env.startOperator(kubeconfig, {
          leaderElection: true,
          // the default Lease (upstream's c8073f84.portager.io), under deploy/rbac.yaml's Role
          leaseNamespace: "portager-system",
          identity: "sa-operator",
        });
        started.push(sa);
        await kube.apply(imageSync("team-rbac", "least", {
          schedule: "@every 1h",
          source: { registry: src.host },
          destination: {
            registry: env.basic.host,
            repositoryPrefix: "rbac",
            auth: { method: "secret", secretRef: { name: "push-creds" } },
          },
          images: [{ name: "app", tags: ["1.0"] }],
        }));
        await env.waitReady(
          "team-rbac",
          "least",
          (c) => c.status === "True",
          "Ready=True as the ServiceAccount",
        );
        await env.patch("team-rbac", "least", {
          metadata: { annotations: { [SYNC_NOW_ANNOTATION]: "true" } },
        });
        await waitFor("annotation removed by the ServiceAccount", async () => {
          const x = await env.get("team-rbac", "least");
          return x && !x.metadata.annotations?.[SYNC_NOW_ANNOTATION];
        });
        await waitFor(
          "Events written by the ServiceAccount",
          async () => (await env.events("team-rbac", "least")).some((e) => e.reason === "SyncComplete"),
        );
        const m = await getManifest(env.basic, "rbac/app", "1.0");
        assert.equal(m.digest, env.images.get("1.0")!.digest);
        await sa.stop();
        const forbidden = sa.logs.filter((l) => /forbidden/i.test(l));
        assert.deepEqual(forbidden, [], "the operator needed a permission it does not have");
      },
    );

    await t.step("no password or token appears in any log line, Event or status", async () => {
      const secrets = [
        env.basic.password!,
        env.bearer.password!,
        btoa(`${env.basic.username}:${env.basic.password}`),
      ];
      const evs: KubeEvent[] = [];
      const statuses: unknown[] = [];
      for (const ns of ["team-a", "team-c", "team-d", "team-e", "team-g", "team-k", "team-rbac"]) {
        evs.push(...await env.events(ns));
        const list = await json<{ items: Stored[] }>(
          await kube.adminFetch(`${ISYNC}/namespaces/${ns}/imagesyncs`),
        );
        statuses.push(...list.items.map((i) => i.status));
      }
      const haystack = [env.allLogs.join("\n"), JSON.stringify(evs), JSON.stringify(statuses)].join("\n");
      assert.ok(env.allLogs.length > 50, "the operators logged");
      for (const s of secrets) assert.ok(!haystack.includes(s), "a credential leaked");
    });
  } finally {
    for (const s of started) await s.stop().catch(() => {});
    await Promise.all(
      [env.src, env.dst, env.basic, env.bearer].filter((r) => r).map((r) => r.stop()),
    );
    await env.kube?.stop();
    await Deno.remove(auditDir, { recursive: true }).catch(() => {});
  }
});
