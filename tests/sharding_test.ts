// Sharding on the harness apiserver, with child processes that can really be killed.
// Hash shards: 3 shards × 2 replicas and the 3000 ImageSyncs. Proves: every ImageSync
// synced exactly once (manifest PUTs in the destination registry's access log), each by a process
// of the shard that owns it, a killed shard leader's keys picked up by its standby, per-shard
// metrics, and resharding 3 → 4 (the new count waits while Leases of the old count are live, then
// takes over). Label-selector shards: a main shard and two selector shards each sync only their
// ImageSyncs; relabeling one hands it over (the old shard forgets it, the new one reconciles it
// once, nothing is copied again).
// Progress is read from the children's logs as they grow (a poll of 3000 ImageSyncs' status would
// cost the apiserver ~9 MB of JSON each time); Ready is checked once per phase.
import assert from "node:assert/strict";
import { crdObject } from "../src/api/mod.ts";
import {
  canonicalSelector,
  selectorLeaseBase,
  SHARD_KEY_LABEL,
  shardLeaseName,
  shardOf,
} from "../src/controller/shard.ts";
import { pushImage } from "./harness/fixtures.ts";
import { type KubeCluster, startKube } from "./harness/kube.ts";
import {
  condition,
  createNamespace,
  imageSync,
  imageSyncPath,
  type OperatorProcess,
  spawnElectingOperator,
  waitFor,
} from "./harness/operator.ts";
import { type RegistryServer, startRegistry } from "./harness/registry.ts";
import { API_VERSION, PLURAL } from "../src/api/mod.ts";

const NS = ["shard-a", "shard-b"];
const LEASE_NS = "portager-system";
const BASE = "portager-shard-test";
// the proof: 3000 ImageSyncs, 2700 before the kill and 300 after
const FIRST = 2_700;
const SECOND = 300;
const TIMINGS = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 300 };

/**
 * A child's JSON log, read as it grows (only the new bytes on each `poll`): the keys it
 * reconciled (it logs the next scheduled sync after each reconcile), how often, the keys it
 * dropped, whether its gate opened, and its metrics port.
 */
class ChildLog {
  readonly file: string;
  /** Reconciles per key. */
  readonly reconciles = new Map<string, number>();
  /** Keys its informer dropped (deleted, or no longer selected). */
  readonly dropped = new Set<string>();
  gateOpen = false;
  metricsPort?: number;
  #offset = 0;
  #rest = "";
  readonly #decoder = new TextDecoder();

  constructor(file: string) {
    this.file = file;
  }

  async poll(): Promise<this> {
    const f = await Deno.open(this.file).catch(() => undefined);
    if (!f) return this;
    try {
      await f.seek(this.#offset, Deno.SeekMode.Start);
      const buf = new Uint8Array(1 << 16);
      for (;;) {
        const n = await f.read(buf);
        if (n === null || n === 0) break;
        this.#offset += n;
        this.#lines(this.#decoder.decode(buf.subarray(0, n), { stream: true }));
      }
    } finally {
      f.close();
    }
    return this;
  }

  #lines(text: string): void {
    const lines = (this.#rest + text).split("\n");
    this.#rest = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith("{")) continue;
      let l: Record<string, unknown>;
      try {
        l = JSON.parse(line);
      } catch {
        continue;
      }
      const key = typeof l.imagesync === "string" ? l.imagesync : undefined;
      if (l.msg === "next sync scheduled" && key) {
        this.reconciles.set(key, (this.reconciles.get(key) ?? 0) + 1);
      } else if (typeof l.msg === "string" && l.msg.startsWith("ImageSync deleted") && key) {
        this.dropped.add(key);
      } else if (l.msg === "shard gate open: working") this.gateOpen = true;
      else if (
        typeof l.msg === "string" && l.msg.startsWith("serving /metrics") && typeof l.address === "string"
      ) {
        this.metricsPort = Number(l.address.split(":").pop());
      }
    }
  }
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

/** Ready=True ImageSyncs of `namespaces`, by key. */
async function readyKeys(kube: KubeCluster, namespaces = NS): Promise<Set<string>> {
  const keys = new Set<string>();
  for (const ns of namespaces) {
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

/** Waits until `log`'s child serves `/metrics` with the line `want`. */
async function waitForMetric(log: ChildLog, want: string, describe: () => Promise<string>): Promise<void> {
  const port = await waitFor(`metrics port in ${log.file}`, async () => (await log.poll()).metricsPort, {
    describe,
  });
  await waitFor(`${log.file} reporting ${want}`, async () => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return text.includes(want) ? true : undefined;
  }, { timeoutMs: 10_000, describe });
}

/** Asserts one manifest PUT per destination repository `<ns>-<name>/app` of `keys`, and no other. */
async function assertOnePutEach(dst: RegistryServer, keys: string[]): Promise<void> {
  const puts = new Map<string, number>();
  for (const line of await dst.flushLog()) {
    const m = /^PUT \/v2\/(.+)\/manifests\/v1 201/.exec(line);
    if (m) puts.set(m[1], (puts.get(m[1]) ?? 0) + 1);
  }
  for (const k of keys) {
    const repo = `${k.replace("/", "-")}/app`;
    assert.equal(puts.get(repo), 1, `${k}: ${puts.get(repo) ?? 0} manifest PUTs`);
  }
  assert.equal(puts.size, keys.length);
}

/** Polls every log until each key of `keys` was reconciled by one of them. */
async function waitReconciled(
  what: string,
  logs: ChildLog[],
  keys: string[],
  opts: { timeoutMs: number; describe: () => Promise<string> },
): Promise<void> {
  await waitFor(what, async () => {
    for (const l of logs) await l.poll();
    return keys.every((k) => logs.some((l) => l.reconciles.has(k))) ? true : undefined;
  }, { ...opts, intervalMs: 1_000 });
}

/** The spec of ImageSync `name` in `ns`: one tag of `src`'s lib/app into `<ns>-<name>/app`. */
function spec(src: RegistryServer, dst: RegistryServer, ns: string, name: string): Record<string, unknown> {
  return {
    schedule: "@every 1h",
    source: { registry: `${src.host}/lib` },
    destination: { registry: dst.host, repositoryPrefix: `${ns}-${name}`, auth: { method: "anonymous" } },
    images: [{ name: "app", tags: ["v1"] }],
  };
}

/** One child operator of a {@linkcode Cluster}: its process, identity and growing log. */
interface Child {
  p: OperatorProcess;
  id: string;
  log: ChildLog;
}

/**
 * The harness apiserver with the CRD, the given namespaces and the Lease namespace, a source
 * registry holding lib/app:v1, a destination registry, and the child operators started on them.
 */
class Cluster {
  readonly children: Child[] = [];
  private constructor(
    readonly kube: KubeCluster,
    readonly src: RegistryServer,
    readonly dst: RegistryServer,
    readonly dir: string,
  ) {}

  static async start(namespaces: string[]): Promise<Cluster> {
    const c = new Cluster(
      await startKube(),
      await startRegistry("plain"),
      await startRegistry("plain"),
      await Deno.makeTempDir({ prefix: "portager-sharding-" }),
    );
    try {
      await c.kube.apply(crdObject());
      for (const ns of [...namespaces, LEASE_NS]) await createNamespace(c.kube, ns);
      await pushImage(c.src, { repository: "lib/app", tag: "v1" }, { seed: 16, layers: [2048] });
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  /** Starts an electing operator `id` on the group's base Lease, with `opts` (shard, selector). */
  spawn(id: string, opts: { shard?: { shards: number; index: number }; watchLabelSelector?: string }): Child {
    const file = `${this.dir}/${id}.log`;
    const p = spawnElectingOperator({
      kubeconfig: this.kube.kubeconfigPath,
      identity: id,
      leaseNamespace: LEASE_NS,
      leaseName: BASE,
      insecureRegistries: [this.src.host, this.dst.host],
      ...opts,
      ...TIMINGS,
    }, file);
    const child = { p, id, log: new ChildLog(file) };
    this.children.push(child);
    return child;
  }

  /** The last lines of every child's log, for failure messages. */
  describe = async (): Promise<string> => {
    const out: string[] = [];
    for (const x of this.children) {
      out.push(`${x.id}: ${(await x.p.log()).split("\n").slice(-6).join("\n  ")}`);
    }
    return out.join("\n");
  };

  async stop(): Promise<void> {
    await Promise.all(this.children.map((x) => x.p.kill("SIGKILL")));
    await this.src.stop();
    await this.dst.stop();
    await this.kube.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

Deno.test({
  name:
    "sharding: 3 shards × 2 replicas sync each of 3000 ImageSyncs exactly once, survive a killed leader, reshard 3 → 4",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const c = await Cluster.start(NS);
    const { kube, src, dst, describe } = c;
    const procs: Array<Child & { shards: number; index: number }> = [];
    const spawn = (shards: number, index: number, replica: string) => {
      const child = {
        ...c.spawn(`s${shards}-${index}${replica}`, { shard: { shards, index } }),
        shards,
        index,
      };
      procs.push(child);
      return child;
    };
    const name = (i: number) => `sync-${String(i).padStart(4, "0")}`;
    const create = async (from: number, to: number) => {
      const all: Promise<unknown>[] = [];
      for (let i = from; i < to; i++) {
        all.push(kube.apply(imageSync(NS[i % 2], name(i), spec(src, dst, NS[i % 2], name(i)))));
        if (all.length >= 16) await Promise.all(all.splice(0));
      }
      await Promise.all(all);
    };
    const keysOf = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, j) => `${NS[(from + j) % 2]}/${name(from + j)}`);
    // each key reconciled by exactly one process, once, and that process of the key's shard
    const onceByItsShard = (keys: string[]) => {
      for (const k of keys) {
        const by = procs.filter((x) => x.log.reconciles.has(k));
        assert.deepEqual(
          by.map((x) => x.log.reconciles.get(k)),
          [1],
          `${k} reconciled by ${by.map((x) => x.id)}`,
        );
        assert.equal(by[0].index, shardOf(k, 3), `${k} reconciled by ${by[0].id}, not its shard`);
      }
    };
    const t0 = Date.now();
    const phases: string[] = [];
    const mark = (what: string) => phases.push(`${what} ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    try {
      for (let i = 0; i < 3; i++) for (const r of ["a", "b"]) spawn(3, i, r);
      // every shard has a leader before any ImageSync exists
      for (let i = 0; i < 3; i++) {
        await waitFor(`a leader of shard ${i}`, () => holderOf(kube, shardLeaseName(BASE, i)), {
          timeoutMs: 60_000,
          describe,
        });
      }
      mark("leaders");

      // phase 1: the first batch, each reconciled by exactly one process, of its own shard, and Ready
      await create(0, FIRST);
      mark(`${FIRST} created`);
      const first = keysOf(0, FIRST);
      const logs = procs.map((x) => x.log);
      await waitReconciled(`${FIRST} ImageSyncs reconciled`, logs, first, { timeoutMs: 600_000, describe });
      mark(`${FIRST} reconciled`);
      const ready1 = await readyKeys(kube);
      assert.deepEqual(first.filter((k) => !ready1.has(k)), [], "reconciled but not Ready");
      const perShard = [0, 1, 2].map((i) => first.filter((k) => shardOf(k, 3) === i).length);
      assert.ok(perShard.every((n) => n > FIRST / 6), `uneven split ${perShard}`);
      onceByItsShard(first);

      // per-shard metrics: each process reports its shard's count
      for (const x of procs) {
        await waitForMetric(
          x.log,
          `portage_shard_imagesyncs{shard="${x.index}",shards="3"} ${perShard[x.index]}`,
          describe,
        );
      }

      // phase 2: SIGKILL shard 1's leader; its standby takes over and syncs the new keys
      const holder1 = (await holderOf(kube, shardLeaseName(BASE, 1)))!;
      const killed = procs.find((x) => x.id === holder1)!;
      const standby = procs.find((x) => x.index === 1 && x !== killed)!;
      await killed.p.kill("SIGKILL");
      await create(FIRST, FIRST + SECOND);
      const second = keysOf(FIRST, FIRST + SECOND);
      await waitReconciled(`${SECOND} more ImageSyncs reconciled`, logs, second, {
        timeoutMs: 300_000,
        describe,
      });
      mark(`${SECOND} more reconciled`);
      assert.equal(await holderOf(kube, shardLeaseName(BASE, 1)), standby.id);
      const shard1 = second.filter((k) => shardOf(k, 3) === 1);
      assert.ok(shard1.length > 0);
      for (const k of shard1) {
        assert.ok(standby.log.reconciles.has(k), `${k} not picked up by the standby ${standby.id}`);
      }
      onceByItsShard(second);

      // phase 3: resharding 3 → 4 as a rolling update: the 4-count pods start beside the old ones
      const resharded = [0, 1, 2, 3].map((i) => spawn(4, i, "n"));
      await waitFor(
        "the 4-count shard 3 holding its Lease",
        async () => (await holderOf(kube, shardLeaseName(BASE, 3))) === "s4-3n" ? true : undefined,
        { timeoutMs: 60_000, describe },
      );
      // …which stops the old count; the new one waits while old Leases are live
      for (const x of resharded) {
        assert.equal((await x.log.poll()).reconciles.size, 0, `${x.id} worked beside the old count`);
      }
      // the old pods go (SIGTERM: in-flight syncs finish, then the Lease is released)
      for (const x of procs.filter((x) => x.shards === 3 && x !== killed)) await x.p.kill("SIGTERM");
      await waitFor("the 4-count pods working", async () => {
        for (const x of resharded) if (!(await x.log.poll()).gateOpen) return undefined;
        return true;
      }, { timeoutMs: 60_000, describe });
      mark("4 shards working");
      // on taking over, each new shard reconciles every key it owns now, and only those (their
      // status says synced: no copy)
      const all = [...first, ...second];
      const newLogs = resharded.map((x) => x.log);
      await waitReconciled("every ImageSync reconciled by its shard of the new count", newLogs, all, {
        timeoutMs: 300_000,
        describe,
      });
      mark("all reconciled by the new count");
      for (const k of all) {
        const by = resharded.filter((x) => x.log.reconciles.has(k)).map((x) => x.id);
        assert.deepEqual(by, [`s4-${shardOf(k, 4)}n`], `${k} reconciled by ${by}`);
      }

      // exactly once overall: one manifest PUT per destination repository, whatever happened
      await assertOnePutEach(dst, all);
      console.log(`sharding, ${all.length} ImageSyncs: ${phases.join(", ")}`);
    } finally {
      await c.stop();
    }
  },
});

const SEL_NS = "teams";
/** The metric series of a selector shard: its count, labelled with its selector. */
const shardSeries = (selector: string) =>
  `portage_shard_imagesyncs{shard="0",shards="1",selector="${canonicalSelector(selector)}"}`;
const SELECTORS = [
  { id: "main", selector: `!${SHARD_KEY_LABEL}`, label: undefined },
  { id: "team-a", selector: `${SHARD_KEY_LABEL} in (team-a)`, label: "team-a" },
  { id: "team-b", selector: `${SHARD_KEY_LABEL} in (team-b)`, label: "team-b" },
];

Deno.test({
  name:
    "sharding by label selector: the main shard and two selector shards each sync only their ImageSyncs; relabeling hands one over",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const c = await Cluster.start([SEL_NS]);
    const { kube, src, dst, describe } = c;
    const procs = SELECTORS.map((s) => ({ ...s, ...c.spawn(s.id, { watchLabelSelector: s.selector }) }));
    const owner = (i: number) => procs[i % 3];
    const keys = Array.from({ length: 30 }, (_, i) => `${SEL_NS}/sync-${i}`);
    try {
      // each selector elects on its own Lease, named after the selector
      for (const x of procs) {
        const lease = shardLeaseName(selectorLeaseBase(BASE, canonicalSelector(x.selector)!), 0);
        await waitFor(
          `${x.id} holding ${lease}`,
          async () => (await holderOf(kube, lease)) === x.id || undefined,
          {
            timeoutMs: 60_000,
            describe,
          },
        );
      }

      for (const [i, key] of keys.entries()) {
        const name = key.split("/")[1];
        const obj = imageSync(SEL_NS, name, spec(src, dst, SEL_NS, name));
        const label = owner(i).label;
        if (label) (obj.metadata as Record<string, unknown>).labels = { [SHARD_KEY_LABEL]: label };
        await kube.apply(obj);
      }
      const logs = procs.map((x) => x.log);
      await waitReconciled("30 ImageSyncs reconciled", logs, keys, { timeoutMs: 120_000, describe });
      const ready = await readyKeys(kube, [SEL_NS]);
      assert.deepEqual(keys.filter((k) => !ready.has(k)), []);
      for (const [i, k] of keys.entries()) {
        const by = procs.filter((x) => x.log.reconciles.has(k));
        assert.deepEqual(by.map((x) => `${x.id}×${x.log.reconciles.get(k)}`), [`${owner(i).id}×1`], k);
      }
      await assertOnePutEach(dst, keys);
      // each shard's cache holds its 10 ImageSyncs only: the apiserver sent it no others
      for (const x of procs) {
        await waitForMetric(x.log, `${shardSeries(x.selector)} 10`, describe);
      }

      // relabel: one of the main shard's to team-a, one of team-a's to team-b
      const moves = [{ key: keys[0], from: procs[0], to: procs[1] }, {
        key: keys[1],
        from: procs[1],
        to: procs[2],
      }];
      for (const m of moves) {
        const res = await kube.adminFetch(imageSyncPath(SEL_NS, m.key.split("/")[1]), {
          method: "PATCH",
          headers: { "content-type": "application/merge-patch+json" },
          body: JSON.stringify({ metadata: { labels: { [SHARD_KEY_LABEL]: m.to.label } } }),
        });
        assert.equal(res.status, 200, await res.text());
      }
      await waitFor("the new owners reconciling the relabeled ImageSyncs", async () => {
        for (const l of logs) await l.poll();
        return moves.every((m) => m.to.log.reconciles.has(m.key) && m.from.log.dropped.has(m.key)) ||
          undefined;
      }, { timeoutMs: 60_000, intervalMs: 500, describe });
      for (const x of procs) {
        const want = { main: 9, "team-a": 10, "team-b": 11 }[x.id];
        await waitForMetric(x.log, `${shardSeries(x.selector)} ${want}`, describe);
      }
      for (const l of logs) await l.poll();
      for (const m of moves) {
        // the new owner reconciled it once; the old one not again
        assert.equal(m.to.log.reconciles.get(m.key), 1, `${m.key} at ${m.to.id}`);
        assert.equal(m.from.log.reconciles.get(m.key), 1, `${m.key} at ${m.from.id}`);
      }
      // the status said synced: nothing was copied again
      await assertOnePutEach(dst, keys);
    } finally {
      await c.stop();
    }
  },
});
