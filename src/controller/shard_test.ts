import assert from "node:assert/strict";
import type { Lease } from "../kube/mod.ts";
import { LeaderElector } from "./leader.ts";
import { MemoryLeases } from "./memory_leases.ts";
import {
  fnv1a32,
  selectorLeaseBase,
  SHARD_COUNT_ANNOTATION,
  SHARD_GROUP_LABEL,
  SHARD_SELECTOR_ANNOTATION,
  shardElection,
  ShardGate,
  shardGroup,
  shardLeaseAccess,
  shardLeaseName,
  shardOf,
  validateShard,
} from "./shard.ts";

/** MemoryLeases that can also list by one `key=value` label selector, as the apiserver. */
class ListingLeases extends MemoryLeases {
  readonly names = new Set<string>();
  lists = 0;

  override create(lease: Lease): Promise<Lease> {
    this.names.add(lease.metadata.name);
    return super.create(lease);
  }

  override put(lease: Lease): void {
    this.names.add(lease.metadata.name);
    super.put(lease);
  }

  list(_namespace: string, options: { labelSelector: string }): Promise<Lease[]> {
    this.lists++;
    const [k, v] = options.labelSelector.split("=");
    const all = [...this.names].map((n) => this.peek(n)!);
    return Promise.resolve(
      all.filter((l) => (l.metadata as { labels?: Record<string, string> }).labels?.[k] === v),
    );
  }
}

function clock(start = Date.parse("2026-01-01T00:00:00Z")) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

Deno.test("shard: FNV-1a 32 matches the published test vectors", () => {
  assert.equal(fnv1a32(""), 0x811c9dc5);
  assert.equal(fnv1a32("a"), 0xe40c292c);
  assert.equal(fnv1a32("foobar"), 0xbf9cf968);
  // UTF-8 bytes, not UTF-16 code units
  assert.equal(fnv1a32("é"), fnv1a32("\u00e9"));
  assert.notEqual(fnv1a32("é"), fnv1a32("e\u0301"));
});

Deno.test("shard: ownership is a pure function of namespace/name and the count", () => {
  // pinned: a change of hash would move every ImageSync to another shard on upgrade
  assert.equal(shardOf("default/app", 3), fnv1a32("default/app") % 3);
  assert.deepEqual(
    ["team-a/web", "team-a/api", "team-b/web", "prod/db"].map((k) => shardOf(k, 4)),
    ["team-a/web", "team-a/api", "team-b/web", "prod/db"].map((k) => fnv1a32(k) % 4),
  );
  for (const n of [1, 2, 3, 7]) {
    for (let i = 0; i < 50; i++) {
      const s = shardOf(`ns-${i}/sync-${i * 7}`, n);
      assert.ok(Number.isInteger(s) && s >= 0 && s < n);
    }
  }
});

Deno.test("shard: 3000 ImageSyncs spread evenly over 3 shards (±10 %)", () => {
  const counts = [0, 0, 0];
  for (let i = 0; i < 3000; i++) counts[shardOf(`bench-${i % 7}/imagesync-${i}`, 3)]++;
  for (const c of counts) assert.ok(c > 900 && c < 1100, `uneven: ${counts}`);
});

Deno.test("shard: identities and names are validated", () => {
  validateShard({ shards: 3, index: 2 });
  assert.throws(() => validateShard({ shards: 3, index: 3 }), /from 0 to 2, got 3/);
  assert.throws(() => validateShard({ shards: 0, index: 0 }), /from 1 to 256/);
  assert.throws(() => validateShard({ shards: 1.5, index: 0 }), /whole number/);
  assert.equal(shardLeaseName("c8073f84.portager.io", 2), "c8073f84.portager.io-shard-2");
  assert.equal(shardGroup("c8073f84.portager.io"), "c8073f84.portager.io");
  assert.match(shardGroup("x".repeat(64)), /^fnv-[0-9a-f]{8}$/);
});

Deno.test("shard: the shard's Lease writes carry the group label and the shard count", async () => {
  const leases = new ListingLeases();
  const marked = shardLeaseAccess(leases, { base: "lock", shards: 3 });
  await marked.create({
    metadata: { name: "lock-shard-1", namespace: "ns", labels: { keep: "me" } },
    spec: { holderIdentity: "a" },
  });
  const stored = leases.peek("lock-shard-1")!;
  const md = stored.metadata as { labels?: Record<string, string>; annotations?: Record<string, string> };
  assert.deepEqual(md.labels, { keep: "me", [SHARD_GROUP_LABEL]: "lock" });
  assert.equal(md.annotations?.[SHARD_COUNT_ANNOTATION], "3");
  // a process of another count taking the Lease over rewrites the count
  await shardLeaseAccess(leases, { base: "lock", shards: 4 }).update(stored);
  const after = leases.peek("lock-shard-1")!.metadata as { annotations?: Record<string, string> };
  assert.equal(after.annotations?.[SHARD_COUNT_ANNOTATION], "4");
});

function held(name: string, holder: string, shards: number, renew = "2026-01-01T00:00:00.000000Z"): Lease {
  return {
    metadata: {
      name,
      namespace: "ns",
      labels: { [SHARD_GROUP_LABEL]: "lock" },
      annotations: { [SHARD_COUNT_ANNOTATION]: String(shards) },
    } as Lease["metadata"],
    spec: { holderIdentity: holder, leaseDurationSeconds: 15, renewTime: renew, acquireTime: renew },
  };
}

Deno.test("shard gate: open when every live Lease of the group has this count", async () => {
  const leases = new ListingLeases();
  const c = clock();
  leases.put(held("lock-shard-0", "a", 3));
  leases.put(held("lock-shard-1", "b", 3));
  leases.put(held("lock-shard-2", "c", 3));
  const gate = new ShardGate({ leases, namespace: "ns", base: "lock", shards: 3, index: 0, now: c.now });
  assert.deepEqual(await gate.check(), { open: true, blockers: [] });
});

Deno.test("shard gate: a live Lease of another count closes it until released", async () => {
  const leases = new ListingLeases();
  const c = clock();
  leases.put(held("lock-shard-0", "a", 3));
  leases.put(held("lock-shard-3", "new", 4));
  const gate = new ShardGate({ leases, namespace: "ns", base: "lock", shards: 3, index: 0, now: c.now });
  const res = await gate.check();
  assert.equal(res.open, false);
  assert.match(res.blockers[0], /lock-shard-3 \(shards=4\) held by new/);
  // released (client-go's release: no holder)
  leases.put({ ...held("lock-shard-3", "", 4), spec: { holderIdentity: "", leaseDurationSeconds: 1 } });
  assert.equal((await gate.check()).open, true);
});

Deno.test("shard gate: a crashed holder of another count blocks for one lease duration on this clock", async () => {
  const leases = new ListingLeases();
  const c = clock();
  // renewTime far in the past: only the local observation clock counts (skew-proof)
  leases.put(held("lock-shard-3", "dead", 4, "2020-01-01T00:00:00.000000Z"));
  const gate = new ShardGate({ leases, namespace: "ns", base: "lock", shards: 3, index: 0, now: c.now });
  assert.equal((await gate.check()).open, false);
  c.advance(14_000);
  assert.equal((await gate.check()).open, false);
  c.advance(1_500);
  assert.equal((await gate.check()).open, true);
  // a renewal (the record changed) makes it live again
  leases.put(held("lock-shard-3", "dead", 4, "2026-01-01T00:00:20.000000Z"));
  assert.equal((await gate.check()).open, false);
});

Deno.test("shard gate: the unsharded Lease (upstream's, or an unsharded Portager) held live closes it", async () => {
  const leases = new ListingLeases();
  const c = clock();
  leases.put({
    metadata: { name: "lock", namespace: "ns" },
    spec: { holderIdentity: "upstream", leaseDurationSeconds: 15 },
  });
  const gate = new ShardGate({ leases, namespace: "ns", base: "lock", shards: 2, index: 1, now: c.now });
  const res = await gate.check();
  assert.equal(res.open, false);
  assert.match(res.blockers[0], /unsharded Lease lock held by upstream/);
});

/**
 * A process of the group as the manager runs it: elector on its shard Lease; works while
 * leader and the gate is open (checked after each election step).
 */
function member(
  leases: ListingLeases,
  c: ReturnType<typeof clock>,
  id: string,
  shards: number,
  index: number,
  labelSelector?: string,
) {
  const w = shardElection({
    leases,
    namespace: "ns",
    name: "lock",
    identity: id,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
  }, { shards, index, labelSelector });
  // the wiring's gate, on the test's clock
  const gate = new ShardGate({
    leases,
    namespace: "ns",
    base: "lock",
    shards,
    index,
    labelSelector: w.labelSelector,
    now: c.now,
  });
  const elector = new LeaderElector({ ...w.leaderElection, now: c.now });
  const m = {
    id,
    shards,
    index,
    owns: (k: string) => w.owns?.(k) ?? true,
    leader: false,
    working: false,
    alive: true,
    async step() {
      if (!m.alive) return;
      m.leader = await elector.tryAcquireOrRenew();
      m.working = m.leader && (await gate.check()).open;
    },
    async exit() {
      // graceful: stop working, then release (the manager releases after in-flight syncs end)
      m.working = false;
      m.alive = false;
      if (m.leader) await elector.release();
      m.leader = false;
    },
  };
  return m;
}

Deno.test("shard handover: resharding 3 → 4 never has two counts working, and no key is owned twice", async () => {
  const leases = new ListingLeases();
  const c = clock();
  const keys = Array.from({ length: 200 }, (_, i) => `ns-${i % 5}/sync-${i}`);
  const old = [0, 1, 2].flatMap((
    i,
  ) => [member(leases, c, `old-${i}a`, 3, i), member(leases, c, `old-${i}b`, 3, i)]);
  const all = [...old];
  const check = () => {
    const working = all.filter((m) => m.working);
    const counts = new Set(working.map((m) => m.shards));
    assert.ok(counts.size <= 1, `two shard counts working at once: ${working.map((m) => m.id)}`);
    for (const k of keys) {
      const owners = working.filter((m) => m.owns(k));
      assert.ok(owners.length <= 1, `${k} owned by ${owners.map((m) => m.id)}`);
    }
    return working;
  };
  for (let t = 0; t < 3; t++) {
    for (const m of all) await m.step();
    check();
    c.advance(2_000);
  }
  assert.deepEqual(check().map((m) => m.index).sort(), [0, 1, 2]);
  // every key has exactly one working owner
  for (const k of keys) assert.equal(all.filter((m) => m.working && m.owns(k)).length, 1);

  // rolling update: the new count's pods start beside the old ones
  const fresh = [0, 1, 2, 3].flatMap((
    i,
  ) => [member(leases, c, `new-${i}a`, 4, i), member(leases, c, `new-${i}b`, 4, i)]);
  all.push(...fresh);
  for (let t = 0; t < 3; t++) {
    for (const m of all) await m.step();
    check();
    c.advance(2_000);
  }
  // shard 3 of the new count holds its (new) Lease, which stops the old count; it waits itself
  assert.ok(fresh.some((m) => m.index === 3 && m.leader));
  assert.equal(all.filter((m) => m.working).length, 0);

  // the old pods go one by one: one exits gracefully, one is killed (its Lease must expire)
  for (const [i, m] of old.entries()) {
    if (i === 1) m.alive = false; // SIGKILL: no release
    else await m.exit();
    for (const x of all) await x.step();
    check();
    c.advance(2_000);
  }
  for (let t = 0; t < 10; t++) {
    for (const m of all) await m.step();
    check();
    c.advance(2_000);
  }
  const working = check();
  assert.deepEqual(working.map((m) => m.index).sort(), [0, 1, 2, 3]);
  assert.ok(working.every((m) => m.shards === 4));
  for (const k of keys) assert.equal(all.filter((m) => m.working && m.owns(k)).length, 1);
});

Deno.test("shard handover: a killed shard leader's standby takes over within the lease", async () => {
  const leases = new ListingLeases();
  const c = clock();
  const ms = [0, 1, 2].flatMap((
    i,
  ) => [member(leases, c, `p-${i}a`, 3, i), member(leases, c, `p-${i}b`, 3, i)]);
  for (const m of ms) await m.step();
  const leader1 = ms.find((m) => m.index === 1 && m.working)!;
  const standby1 = ms.find((m) => m.index === 1 && m !== leader1)!;
  assert.equal(standby1.working, false);
  leader1.alive = false; // SIGKILL
  let waited = 0;
  while (!standby1.working) {
    c.advance(2_000);
    waited += 2_000;
    for (const m of ms) await m.step();
    assert.ok(waited <= 18_000, "standby did not take over within lease duration + a retry period");
  }
  assert.ok(waited >= 14_000, `took over after ${waited} ms, before the lease expired`);
});

const MAIN = "!sharding.portager.io/key";
const TEAM_A = "sharding.portager.io/key in (team-a)";

Deno.test("shard: a label-selector shard elects on its own Lease, named after the canonical selector", async () => {
  const settings = {
    leases: new ListingLeases(),
    namespace: "ns",
    name: "lock",
    identity: "p",
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
  };
  const a = shardElection(settings, {
    shards: 1,
    index: 0,
    labelSelector: "sharding.portager.io/key in ( team-a )",
  });
  // spacing does not change the selector, so it does not change the Lease
  assert.equal(a.labelSelector, TEAM_A);
  // pinned: the chart computes the same name (sha256sum of the selector, first 8 hex digits)
  assert.equal(selectorLeaseBase("lock", TEAM_A), "lock-cc3e171d");
  assert.equal(a.leaderElection.name, "lock-cc3e171d-shard-0");
  assert.equal(a.owns, undefined, "one shard of the selector: everything the apiserver sends");
  const main = shardElection(settings, { shards: 1, index: 0, labelSelector: MAIN });
  assert.equal(main.leaderElection.name, `${selectorLeaseBase("lock", MAIN)}-shard-0`);
  assert.notEqual(main.leaderElection.name, a.leaderElection.name);
  // combined with a hash split: the selector's ImageSyncs over 2 processes, in the selector's group
  const a1 = shardElection(settings, { shards: 2, index: 1, labelSelector: TEAM_A });
  assert.equal(a1.leaderElection.name, "lock-cc3e171d-shard-1");
  assert.equal(a1.owns!("team-a/x"), shardOf("team-a/x", 2) === 1);
  // without a selector nothing changes (blank is none)
  const plain = shardElection(settings, { shards: 3, index: 2, labelSelector: " " });
  assert.equal(plain.labelSelector, undefined);
  assert.equal(plain.leaderElection.name, "lock-shard-2");
  assert.throws(
    () => shardElection(settings, { shards: 1, index: 0, labelSelector: "key in ()" }),
    /invalid label selector "key in \(\)": "in" needs at least one value/,
  );
  // its Lease says which selector holds it, in the base Lease's group (one list shows every shard)
  await a.leaderElection.leases.create({
    metadata: { name: "lock-cc3e171d-shard-0", namespace: "ns" },
    spec: {},
  });
  const md = settings.leases.peek("lock-cc3e171d-shard-0")!.metadata as {
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  assert.equal(md.annotations?.[SHARD_SELECTOR_ANNOTATION], TEAM_A);
  assert.equal(md.labels?.[SHARD_GROUP_LABEL], "lock");
});

Deno.test("shard gate: selector shards and the main shard work side by side; an unsharded operator stops them all", async () => {
  const leases = new ListingLeases();
  const c = clock();
  const ms = [MAIN, TEAM_A, "sharding.portager.io/key in (team-b)"].flatMap((sel, i) => [
    member(leases, c, `p-${i}a`, 1, 0, sel),
    member(leases, c, `p-${i}b`, 1, 0, sel),
  ]);
  for (let t = 0; t < 2; t++) {
    for (const m of ms) await m.step();
    c.advance(2_000);
  }
  // one leader per selector, each working: the selectors' groups do not block one another
  assert.deepEqual(ms.map((m) => m.working), [true, false, true, false, true, false]);

  // an unsharded Portager (or upstream's operator) holding the base Lease watches everything:
  // the selector shards stop taking work while it is live
  leases.put({
    metadata: { name: "lock", namespace: "ns" },
    spec: { holderIdentity: "old", leaseDurationSeconds: 15 },
  });
  for (const m of ms) await m.step();
  assert.ok(ms.every((m) => !m.working));
  // released (a rolling update from unsharded to selector shards): they start
  leases.put({
    metadata: { name: "lock", namespace: "ns" },
    spec: { holderIdentity: "", leaseDurationSeconds: 15 },
  });
  for (const m of ms) await m.step();
  assert.equal(ms.filter((m) => m.working).length, 3);
});

Deno.test("shard handover: a selector shard resharded 1 → 2 never has both counts working", async () => {
  const leases = new ListingLeases();
  const c = clock();
  const one = [member(leases, c, "one-a", 1, 0, TEAM_A), member(leases, c, "one-b", 1, 0, TEAM_A)];
  const other = member(leases, c, "main", 1, 0, MAIN);
  for (const m of [...one, other]) await m.step();
  assert.ok(one[0].working && other.working);
  const two = [member(leases, c, "two-0", 2, 0, TEAM_A), member(leases, c, "two-1", 2, 1, TEAM_A)];
  const all = [...one, ...two, other];
  for (let t = 0; t < 3; t++) {
    for (const m of all) await m.step();
    assert.ok(!(one.some((m) => m.working) && two.some((m) => m.working)), "two counts of team-a at once");
    assert.ok(other.working, "the main shard is not part of team-a's handover");
    c.advance(2_000);
  }
  for (const m of one) await m.exit();
  for (let t = 0; t < 10; t++) {
    for (const m of all) await m.step();
    assert.ok(!(one.some((m) => m.working) && two.some((m) => m.working)), "two counts of team-a at once");
    c.advance(2_000);
  }
  assert.deepEqual(two.map((m) => m.working), [true, true]);
});

Deno.test("shard handover: hash shards without a selector and selector shards never work at once (turning label shards on)", async () => {
  const leases = new ListingLeases();
  const c = clock();
  // two hash shards that watch every ImageSync
  const hash = [member(leases, c, "h-0", 2, 0), member(leases, c, "h-1", 2, 1)];
  for (const m of hash) await m.step();
  assert.deepEqual(hash.map((m) => m.working), [true, true]);
  // rolling update to a main shard and a team-a shard
  const sel = [member(leases, c, "main", 1, 0, MAIN), member(leases, c, "a", 1, 0, TEAM_A)];
  const all = [...hash, ...sel];
  const step = async () => {
    for (const m of all) await m.step();
    const working = all.filter((m) => m.working).map((m) => m.id);
    assert.ok(
      !(hash.some((m) => m.working) && sel.some((m) => m.working)),
      `a process watching everything beside selector shards: ${working}`,
    );
    c.advance(2_000);
  };
  for (let t = 0; t < 3; t++) await step();
  // both sides wait while the other's Leases are live: nothing syncs until the old pods go
  assert.ok(all.every((m) => !m.working));
  for (const m of hash) await m.exit();
  for (let t = 0; t < 10; t++) await step();
  assert.deepEqual(sel.map((m) => m.working), [true, true]);
});
