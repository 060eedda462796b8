import assert from "node:assert/strict";
import type { Lease } from "../kube/mod.ts";
import { LeaderElector, type LeaderElectorOptions } from "./leader.ts";
import { MemoryLeases } from "./memory_leases.ts";

/** A clock the test moves. */
function clock(start = Date.parse("2026-01-01T00:00:00Z")) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

function elector(leases: MemoryLeases, identity: string, over: Partial<LeaderElectorOptions> = {}) {
  return new LeaderElector({
    leases,
    namespace: "ns",
    name: "lock",
    identity,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    ...over,
  });
}

function lease(spec: Lease["spec"]): Lease {
  return { metadata: { name: "lock", namespace: "ns" }, spec };
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((r) => setTimeout(r, 5));
}

/**
 * Runs candidate "a" on real time, retrying every 10 ms, until it leads; `events` lists its
 * start and stop calls.
 */
async function leading(leases: MemoryLeases, timing: Partial<LeaderElectorOptions>) {
  const events: string[] = [];
  const e = elector(leases, "a", {
    retryPeriodMs: 10,
    ...timing,
    onStartedLeading: () => events.push("start"),
    onStoppedLeading: () => events.push("stop"),
  });
  const ac = new AbortController();
  const running = e.run(ac.signal);
  await until(() => e.isLeader);
  return {
    e,
    events,
    stop: async () => {
      ac.abort();
      await running;
    },
  };
}

Deno.test("leader: a free lock is created with client-go's fields", async () => {
  const leases = new MemoryLeases();
  const c = clock();
  assert.equal(await elector(leases, "a", { now: c.now }).tryAcquireOrRenew(), true);
  const spec = leases.peek("lock")!.spec;
  assert.deepEqual(spec, {
    holderIdentity: "a",
    leaseDurationSeconds: 15,
    acquireTime: "2026-01-01T00:00:00.000000Z",
    renewTime: "2026-01-01T00:00:00.000000Z",
    leaseTransitions: 0,
  });
});

Deno.test("leader: a held lease is taken only after a whole lease duration unchanged, by the candidate's own clock", async () => {
  const leases = new MemoryLeases();
  // the holder's renewTime is an hour old by our clock (skew): that alone proves nothing
  leases.put(lease({
    holderIdentity: "upstream-pod",
    leaseDurationSeconds: 15,
    acquireTime: "2025-12-31T23:00:00.000000Z",
    renewTime: "2025-12-31T23:00:00.000000Z",
    leaseTransitions: 4,
  }));
  const c = clock();
  const e = elector(leases, "b", { now: c.now });
  assert.equal(await e.tryAcquireOrRenew(), false, "first sight starts the observation clock");
  c.advance(14_999);
  assert.equal(await e.tryAcquireOrRenew(), false);
  assert.equal(e.observedLeader, "upstream-pod");
  c.advance(2);
  assert.equal(await e.tryAcquireOrRenew(), true, "unchanged for 15 s: expired");
  const spec = leases.peek("lock")!.spec;
  assert.equal(spec.holderIdentity, "b");
  assert.equal(spec.leaseTransitions, 5, "a new holder is a transition");
  assert.equal(spec.acquireTime, spec.renewTime);
});

Deno.test("leader: a holder that keeps renewing is never displaced", async () => {
  const leases = new MemoryLeases();
  const c = clock();
  const holder = elector(leases, "a", { now: c.now });
  const other = elector(leases, "b", { now: c.now });
  assert.equal(await holder.tryAcquireOrRenew(), true);
  for (let i = 0; i < 20; i++) {
    c.advance(2_000);
    assert.equal(await other.tryAcquireOrRenew(), false);
    c.advance(1);
    // renewing keeps acquireTime and the transition count; only renewTime moves
    assert.equal(await holder.tryAcquireOrRenew(), true);
  }
  const spec = leases.peek("lock")!.spec;
  assert.equal(spec.holderIdentity, "a");
  assert.equal(spec.acquireTime, "2026-01-01T00:00:00.000000Z");
  assert.equal(spec.leaseTransitions, 0);
  assert.notEqual(spec.renewTime, spec.acquireTime);
});

Deno.test("leader: of two candidates racing for an expired lock, one wins (Conflict for the other)", async () => {
  const leases = new MemoryLeases();
  leases.put(lease({ holderIdentity: "", leaseDurationSeconds: 1, leaseTransitions: 2 }));
  const c = clock();
  const a = elector(leases, "a", { now: c.now });
  const b = elector(leases, "b", { now: c.now });
  // both read the same version; the second write is refused
  const wins = await Promise.all([a.tryAcquireOrRenew(), b.tryAcquireOrRenew()]);
  assert.deepEqual(wins.sort(), [false, true]);
  assert.equal(leases.peek("lock")!.spec.leaseTransitions, 3);
});

Deno.test("leader: run leads, steps down when it cannot renew in time, and releases as client-go does", async () => {
  const leases = new MemoryLeases();
  const { e, events, stop } = await leading(leases, { leaseDurationMs: 1_000, renewDeadlineMs: 100 });
  // the apiserver refuses every write from now on: after the renew deadline, step down
  const update = leases.update.bind(leases);
  leases.update = () => Promise.reject(new Error("apiserver away"));
  await until(() => !e.isLeader);
  assert.deepEqual(events, ["start", "stop"]);
  leases.update = update;
  await until(() => e.isLeader);
  await stop();
  assert.deepEqual(events, ["start", "stop", "start", "stop"]);
  const spec = leases.peek("lock")!.spec;
  assert.equal(spec.holderIdentity, "", "released: no holder");
  assert.equal(spec.leaseDurationSeconds, 1);
  assert.equal(spec.leaseTransitions, 0, "its own re-acquisition was no transition");
});

Deno.test("leader: a renew deadline not shorter than the lease duration is refused", () => {
  assert.throws(() => elector(new MemoryLeases(), "a", { renewDeadlineMs: 15_000 }), RangeError);
});

Deno.test("leader: a leader that finds another holder in the lease stops at once", async () => {
  const leases = new MemoryLeases();
  const { e, events, stop } = await leading(leases, { leaseDurationMs: 60_000, renewDeadlineMs: 50_000 });
  // someone forces the lease over (an admin edit, or a peer with a broken clock)
  const now = new Date().toISOString();
  leases.put(
    lease({ holderIdentity: "intruder", leaseDurationSeconds: 60, acquireTime: now, renewTime: now }),
  );
  await until(() => !e.isLeader);
  assert.deepEqual(events, ["start", "stop"], "well before the 50 s renew deadline");
  await stop();
  assert.equal(leases.peek("lock")!.spec.holderIdentity, "intruder", "not released: it is not ours");
});

Deno.test("leader: a renewal that hangs is cut at the renew deadline and the leader steps down before the lease runs out", async () => {
  const leases = new MemoryLeases();
  const leaseDurationMs = 5_000;
  const { e, events, stop } = await leading(leases, { leaseDurationMs, renewDeadlineMs: 100 });
  // the apiserver stops answering (a stalled connection): reads never end unless aborted
  const aborted: unknown[] = [];
  const get = leases.get.bind(leases);
  leases.get = (_ns, _name, opts?: { signal?: AbortSignal }) =>
    new Promise((_, reject) => {
      opts?.signal?.addEventListener("abort", () => {
        aborted.push(opts.signal!.reason);
        reject(opts.signal!.reason);
      }, { once: true });
    });
  // a standby takes the lease a lease duration after the last renewal it saw: stop before that
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    until(() => !e.isLeader).then(() => "stepped down"),
    new Promise((r) => timer = setTimeout(() => r("still leading when the lease ran out"), leaseDurationMs)),
  ]);
  clearTimeout(timer);
  assert.equal(outcome, "stepped down");
  assert.deepEqual(events, ["start", "stop"]);
  assert.ok(aborted.length > 0, "the hanging read was aborted");
  leases.get = get;
  await stop();
});
