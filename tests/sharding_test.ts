// Sharding on the harness apiserver: 3 shards × 2 replicas (child processes that can really be
// killed), a few hundred ImageSyncs (3000 would not finish in a test's time on 2 shared cores;
// the bench's B6 runs the large count). Proves: every ImageSync synced exactly once (manifest
// PUTs in the destination registry's access log), each by a process of the shard that owns it,
// a killed shard leader's keys picked up by its standby, per-shard metrics, and resharding 3 → 4
// (the new count waits while Leases of the old count are live, then takes over).
import assert from "node:assert/strict";
import { crdObject } from "../src/api/mod.ts";
import { shardLeaseName, shardOf } from "../src/controller/shard.ts";
import { pushImage } from "./harness/fixtures.ts";
import { type KubeCluster, startKube } from "./harness/kube.ts";
import {
  condition,
  createNamespace,
  imageSync,
  type OperatorProcess,
  spawnElectingOperator,
  waitFor,
} from "./harness/operator.ts";
import { startRegistry } from "./harness/registry.ts";
import { API_VERSION, PLURAL } from "../src/api/mod.ts";

const NS = ["shard-a", "shard-b"];
const LEASE_NS = "portager-system";
const BASE = "portager-shard-test";
const FIRST = 450;
const SECOND = 90;
const TIMINGS = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 300 };

/** JSON log lines of a child's log file. */
async function logLines(file: string): Promise<Array<Record<string, unknown>>> {
  const text = await Deno.readTextFile(file).catch(() => "");
  return text.split("\n").filter((l) => l.startsWith("{")).map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      return {};
    }
  });
}

/** Keys this process reconciled (it logs the next scheduled sync after each successful one). */
async function reconciled(file: string): Promise<Set<string>> {
  const keys = new Set<string>();
  for (const l of await logLines(file)) {
    if (l.msg === "next sync scheduled" && typeof l.imagesync === "string") keys.add(l.imagesync);
  }
  return keys;
}

async function holderOf(kube: KubeCluster, name: string): Promise<string | undefined> {
  const res = await kube.adminFetch(`/apis/coordination.k8s.io/v1/namespaces/${LEASE_NS}/leases/${name}`);
  if (res.status === 404) {
    await res.body?.cancel();
    return undefined;
  }
  const lease = await res.json();
  return lease.spec?.holderIdentity || undefined;
}

/** Ready=True ImageSyncs of both namespaces, by key. */
async function readyKeys(kube: KubeCluster): Promise<Set<string>> {
  const keys = new Set<string>();
  for (const ns of NS) {
    const list = await (await kube.adminFetch(`/apis/${API_VERSION}/namespaces/${ns}/${PLURAL}`)).json();
    for (const o of list.items ?? []) {
      const ready = condition(o, "Ready");
      if (ready?.status === "True" && ready.observedGeneration === o.metadata.generation) {
        keys.add(`${o.metadata.namespace}/${o.metadata.name}`);
      }
    }
  }
  return keys;
}

/** The metrics port a child logged. */
async function metricsPort(file: string): Promise<number | undefined> {
  for (const l of await logLines(file)) {
    if (typeof l.msg === "string" && l.msg.startsWith("serving /metrics") && typeof l.address === "string") {
      return Number(l.address.split(":").pop());
    }
  }
  return undefined;
}

Deno.test({
  name:
    "sharding: 3 shards × 2 replicas sync each ImageSync exactly once, survive a killed leader, reshard 3 → 4",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const kube = await startKube();
    const src = await startRegistry("plain");
    const dst = await startRegistry("plain");
    const dir = await Deno.makeTempDir({ prefix: "portager-sharding-" });
    const procs: Array<{ p: OperatorProcess; id: string; shards: number; index: number; log: string }> = [];
    const spawn = (shards: number, index: number, replica: string) => {
      const id = `s${shards}-${index}${replica}`;
      const log = `${dir}/${id}.log`;
      const p = spawnElectingOperator({
        kubeconfig: kube.kubeconfigPath,
        identity: id,
        leaseNamespace: LEASE_NS,
        leaseName: BASE,
        insecureRegistries: [src.host, dst.host],
        shard: { shards, index },
        ...TIMINGS,
      }, log);
      const entry = { p, id, shards, index, log };
      procs.push(entry);
      return entry;
    };
    const create = async (from: number, to: number) => {
      const all: Promise<unknown>[] = [];
      for (let i = from; i < to; i++) {
        const name = `sync-${String(i).padStart(4, "0")}`;
        all.push(kube.apply(imageSync(NS[i % 2], name, {
          schedule: "@every 1h",
          source: { registry: `${src.host}/lib` },
          destination: {
            registry: dst.host,
            repositoryPrefix: `${NS[i % 2]}-${name}`,
            auth: { method: "anonymous" },
          },
          images: [{ name: "app", tags: ["v1"] }],
        })));
        if (all.length >= 16) await Promise.all(all.splice(0));
      }
      await Promise.all(all);
    };
    const keysOf = (from: number, to: number) =>
      Array.from(
        { length: to - from },
        (_, j) => `${NS[(from + j) % 2]}/sync-${String(from + j).padStart(4, "0")}`,
      );
    const describe = async () => {
      const out: string[] = [];
      for (const x of procs) out.push(`${x.id}: ${(await x.p.log()).split("\n").slice(-6).join("\n  ")}`);
      return out.join("\n");
    };
    try {
      await kube.apply(crdObject());
      for (const ns of [...NS, LEASE_NS]) await createNamespace(kube, ns);
      await pushImage(src, { repository: "lib/app", tag: "v1" }, { seed: 16, layers: [2048] });

      for (let i = 0; i < 3; i++) for (const r of ["a", "b"]) spawn(3, i, r);
      // every shard has a leader before any ImageSync exists
      for (let i = 0; i < 3; i++) {
        await waitFor(`a leader of shard ${i}`, () => holderOf(kube, shardLeaseName(BASE, i)), {
          timeoutMs: 60_000,
          describe,
        });
      }

      // phase 1: the first batch, all Ready, each synced exactly once by its own shard
      await create(0, FIRST);
      const first = keysOf(0, FIRST);
      await waitFor(`${FIRST} ImageSyncs Ready`, async () => {
        const ready = await readyKeys(kube);
        return first.every((k) => ready.has(k)) ? true : undefined;
      }, { timeoutMs: 120_000, intervalMs: 1_000, describe });
      const perShard = [0, 1, 2].map((i) => first.filter((k) => shardOf(k, 3) === i).length);
      assert.ok(perShard.every((n) => n > FIRST / 6), `uneven split ${perShard}`);

      const seen = new Map<string, string[]>();
      for (const x of procs) {
        for (const k of await reconciled(x.log)) {
          assert.equal(shardOf(k, 3), x.index, `${k} reconciled by ${x.id}, not its shard`);
          seen.set(k, [...(seen.get(k) ?? []), x.id]);
        }
      }
      for (const k of first) assert.equal(seen.get(k)?.length, 1, `${k} reconciled by ${seen.get(k)}`);

      // per-shard metrics: each process reports its shard's count
      for (const x of procs) {
        const port = await waitFor(`metrics port of ${x.id}`, () => metricsPort(x.log), { describe });
        const want = `portage_shard_imagesyncs{shard="${x.index}",shards="3"} ${perShard[x.index]}`;
        await waitFor(`${x.id} reporting ${want}`, async () => {
          const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
          return text.includes(want) ? true : undefined;
        }, { timeoutMs: 10_000, describe });
      }

      // phase 2: SIGKILL shard 1's leader; its standby takes over and syncs the new keys
      const holder1 = (await holderOf(kube, shardLeaseName(BASE, 1)))!;
      const killed = procs.find((x) => x.id === holder1)!;
      const standby = procs.find((x) => x.index === 1 && x !== killed)!;
      await killed.p.kill("SIGKILL");
      await create(FIRST, FIRST + SECOND);
      const second = keysOf(FIRST, FIRST + SECOND);
      await waitFor(`${SECOND} more ImageSyncs Ready`, async () => {
        const ready = await readyKeys(kube);
        return second.every((k) => ready.has(k)) ? true : undefined;
      }, { timeoutMs: 120_000, intervalMs: 1_000, describe });
      assert.equal(await holderOf(kube, shardLeaseName(BASE, 1)), standby.id);
      const byStandby = await reconciled(standby.log);
      const shard1 = second.filter((k) => shardOf(k, 3) === 1);
      assert.ok(shard1.length > 0);
      for (const k of shard1) assert.ok(byStandby.has(k), `${k} not picked up by the standby ${standby.id}`);

      // phase 3: resharding 3 → 4 as a rolling update: the 4-count pods start beside the old ones
      const resharded = [0, 1, 2, 3].map((i) => spawn(4, i, "n"));
      await waitFor(
        "the 4-count shard 3 holding its Lease",
        async () => (await holderOf(kube, shardLeaseName(BASE, 3))) === "s4-3n" ? true : undefined,
        {
          timeoutMs: 60_000,
          describe,
        },
      );
      // …which stops the old count; the new one waits while old Leases are live
      for (const x of resharded) {
        assert.equal((await reconciled(x.log)).size, 0, `${x.id} worked beside the old count`);
      }
      // the old pods go (SIGTERM: in-flight syncs finish, then the Lease is released)
      for (const x of procs.filter((x) => x.shards === 3 && x !== killed)) await x.p.kill("SIGTERM");
      // a change to every ImageSync of the first batch (a new generation: sync now) after the handover
      await waitFor("the 4-count pods working", async () => {
        for (const x of resharded) {
          const lines = await logLines(x.log);
          if (!lines.some((l) => l.msg === "shard gate open: working")) return undefined;
        }
        return true;
      }, { timeoutMs: 60_000, describe });
      const all = [...first, ...second];
      // on taking over, each new shard reconciles every key it owns now, and only those (their
      // status says synced: no copy)
      const newOwners = new Map<string, string[]>();
      await waitFor("every ImageSync reconciled by its shard of the new count", async () => {
        newOwners.clear();
        for (const x of resharded) {
          for (const k of await reconciled(x.log)) newOwners.set(k, [...(newOwners.get(k) ?? []), x.id]);
        }
        return all.every((k) => newOwners.has(k)) ? true : undefined;
      }, { timeoutMs: 60_000, describe });
      for (const k of all) {
        assert.deepEqual(
          newOwners.get(k),
          [`s4-${shardOf(k, 4)}n`],
          `${k} reconciled by ${newOwners.get(k)}`,
        );
      }

      // exactly once overall: one manifest PUT per destination repository, whatever happened
      const log = await dst.flushLog();
      const puts = new Map<string, number>();
      for (const line of log) {
        const m = /^PUT \/v2\/(.+)\/manifests\/v1 201/.exec(line);
        if (m) puts.set(m[1], (puts.get(m[1]) ?? 0) + 1);
      }
      for (const k of all) {
        const [ns, name] = k.split("/");
        assert.equal(
          puts.get(`${ns}-${name}/app`),
          1,
          `${k}: ${puts.get(`${ns}-${name}/app`) ?? 0} manifest PUTs`,
        );
      }
      assert.equal(puts.size, all.length);
    } finally {
      await Promise.all(procs.map((x) => x.p.kill("SIGKILL")));
      await src.stop();
      await dst.stop();
      await kube.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
