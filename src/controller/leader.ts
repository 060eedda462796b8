/**
 * Leader election on a coordination.k8s.io Lease, with client-go's rules: a candidate takes
 * the lease when it is free or when its record has not changed for a whole lease duration (as
 * timed on the candidate's own clock, so clock skew does not matter); the leader renews every
 * retry period and, as client-go's, steps down when a renew round (its attempts from a retry
 * period after the last renewal on) has not succeeded within the renew deadline — an attempt still
 * in flight then is aborted, so a stalled connection cannot keep it leading; on shutdown the
 * leader releases the lease so a standby takes over at once.
 * @module
 */

import { isKubeReason, type Lease, type LeaseClient, microTime } from "../kube/mod.ts";
import { sleep } from "../oci/mod.ts";
import type { Logger } from "../log/mod.ts";

/** The Lease operations the elector needs (src/kube's LeaseClient; a fake in tests). */
export type LeaseAccess = Pick<LeaseClient, "get" | "create" | "update">;

/** Options of {@linkcode LeaderElector}. */
export interface LeaderElectorOptions {
  /** Lease API access. */
  leases: LeaseAccess;
  /** Namespace of the Lease. */
  namespace: string;
  /** Name of the Lease. */
  name: string;
  /** This candidate's identity (pod name, or host + random suffix). */
  identity: string;
  /** How long a lease is valid without renewal; default 15 s. */
  leaseDurationMs?: number;
  /** The leader steps down when it could not renew for this long; default 10 s. */
  renewDeadlineMs?: number;
  /** Interval between acquire/renew attempts; default 2 s. */
  retryPeriodMs?: number;
  /** Where election changes are logged. */
  logger?: Logger;
  /** Called when this candidate becomes leader. */
  onStartedLeading?: () => void;
  /** Called when this candidate stops being leader (lost the lease or shutting down). */
  onStoppedLeading?: () => void;
  /**
   * Clock in epoch ms, for tests; default: `Date.now` for the times written into the Lease and
   * the monotonic `performance.now` for every duration (as client-go's observation clock), so a
   * wall clock that is slewed or stepped never shortens a lease this candidate waits out.
   */
  now?: () => number;
}

/** Runs leader election for one candidate. */
export class LeaderElector {
  #o: Required<Omit<LeaderElectorOptions, "logger" | "onStartedLeading" | "onStoppedLeading" | "now">>;
  #now: () => number;
  #clock: () => number;
  #log?: Logger;
  #onStart?: () => void;
  #onStop?: () => void;
  #leader = false;
  #observedRecord = "";
  #observedAt = 0;
  #observedHolder = "";
  #lastSuccess = 0;
  /** A leader's renew round must succeed by this clock time; undefined: no round under way. */
  #renewBy?: number;
  #lease?: Lease;

  /** Creates an elector; call `run` to campaign. */
  constructor(options: LeaderElectorOptions) {
    this.#o = {
      leases: options.leases,
      namespace: options.namespace,
      name: options.name,
      identity: options.identity,
      leaseDurationMs: options.leaseDurationMs ?? 15_000,
      renewDeadlineMs: options.renewDeadlineMs ?? 10_000,
      retryPeriodMs: options.retryPeriodMs ?? 2_000,
    };
    if (this.#o.renewDeadlineMs >= this.#o.leaseDurationMs) {
      throw new RangeError("leader election: the renew deadline must be shorter than the lease duration");
    }
    this.#log = options.logger;
    this.#now = options.now ?? Date.now;
    this.#clock = options.now ?? (() => performance.now());
    this.#onStart = options.onStartedLeading;
    this.#onStop = options.onStoppedLeading;
  }

  /** Whether this candidate holds the lease. */
  get isLeader(): boolean {
    return this.#leader;
  }

  /** The holder last seen in the lease ("" when free or unknown). */
  get observedLeader(): string {
    return this.#observedHolder;
  }

  /** True when the last lease read or write succeeded within two lease durations. */
  get healthy(): boolean {
    return this.#lastSuccess > 0 && this.#clock() - this.#lastSuccess < 2 * this.#o.leaseDurationMs;
  }

  #observe(lease: Lease): void {
    const s = lease.spec ?? {};
    // client-go compares the whole record: any change restarts the observation clock
    const record = JSON.stringify([
      s.holderIdentity ?? "",
      s.renewTime ?? "",
      s.acquireTime ?? "",
      s.leaseDurationSeconds ?? 0,
      s.leaseTransitions ?? 0,
    ]);
    if (record !== this.#observedRecord) {
      this.#observedRecord = record;
      this.#observedAt = this.#clock();
    }
    this.#observedHolder = s.holderIdentity ?? "";
    this.#lease = lease;
  }

  /** One acquire-or-renew attempt; true when this candidate holds the lease afterwards. */
  async tryAcquireOrRenew(signal?: AbortSignal): Promise<boolean> {
    const { leases, namespace, name, identity } = this.#o;
    const durationSeconds = Math.max(1, Math.round(this.#o.leaseDurationMs / 1000));
    const now = microTime(new Date(this.#now()));
    // the record this candidate writes, as client-go's fields
    const spec = (acquireTime: string, leaseTransitions: number): Lease["spec"] => ({
      holderIdentity: identity,
      leaseDurationSeconds: durationSeconds,
      acquireTime,
      renewTime: now,
      leaseTransitions,
    });
    let lease: Lease | undefined;
    try {
      lease = await leases.get(namespace, name, { signal });
    } catch (err) {
      this.#warn("cannot read leader lease", err);
      return false;
    }
    if (!lease) {
      const created = { metadata: { name, namespace }, spec: spec(now, 0) };
      // AlreadyExists: another candidate created it first
      return await this.#write("create", () => leases.create(created, { signal }), "AlreadyExists");
    }
    this.#observe(lease);
    this.#lastSuccess = this.#clock();
    const holder = lease.spec?.holderIdentity ?? "";
    const leaseMs = (lease.spec?.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (holder && holder !== identity && this.#observedAt + leaseMs > this.#clock()) return false;
    const mine = holder === identity;
    const next: Lease = {
      metadata: lease.metadata,
      spec: spec(
        mine && lease.spec.acquireTime ? lease.spec.acquireTime : now,
        // as client-go: a change of holder is a transition
        (lease.spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
      ),
    };
    // Conflict: another candidate wrote since our read
    return await this.#write("update", () => leases.update(next, { signal }), "Conflict");
  }

  /**
   * One write of the lease: the stored lease is observed and counts as contact; a refusal is
   * logged unless it is `expected` (another candidate was first).
   */
  async #write(what: "create" | "update", write: () => Promise<Lease>, expected: string): Promise<boolean> {
    try {
      this.#observe(await write());
      this.#lastSuccess = this.#clock();
      return true;
    } catch (err) {
      if (!isKubeReason(err, expected)) this.#warn(`cannot ${what} leader lease`, err);
      return false;
    }
  }

  #warn(msg: string, err: unknown): void {
    this.#log?.warn(msg, { lease: `${this.#o.namespace}/${this.#o.name}`, error: err });
  }

  /**
   * Campaigns and leads until `signal` aborts; then releases the lease if held. Resolves
   * after the release.
   */
  async run(signal: AbortSignal): Promise<void> {
    const period = this.#o.retryPeriodMs;
    while (!signal.aborted) {
      const ok = await this.#attempt(signal);
      if (signal.aborted) break;
      if (ok) {
        this.#renewBy = undefined; // renewed: the next attempt starts a new round
        if (!this.#leader) {
          this.#leader = true;
          this.#log?.info("became leader", {
            lease: `${this.#o.namespace}/${this.#o.name}`,
            identity: this.#o.identity,
          });
          this.#call(this.#onStart);
        }
        await sleep(period, signal).catch(() => {}); // aborted: the loop ends
        continue;
      }
      // another holder in the lease: it is theirs now, stop at once (client-go waits for the
      // renew deadline; stepping down earlier can only shorten an overlap)
      const taken = this.#observedHolder !== "" && this.#observedHolder !== this.#o.identity;
      if (this.#leader && (taken || this.#renewLeft() <= 0)) {
        this.#leader = false;
        this.#renewBy = undefined;
        this.#log?.error(
          taken
            ? "lost leadership: another holder took the lease"
            : "lost leadership: could not renew the lease in time",
          { lease: `${this.#o.namespace}/${this.#o.name}`, holder: this.#observedHolder || undefined },
        );
        this.#call(this.#onStop);
      }
      // a leader retries until its renew deadline, and steps down there; client-go jitters
      // acquire retries by up to 20 %
      const wait = this.#leader ? Math.min(period, this.#renewLeft()) : period * (1 + Math.random() * 0.2);
      await sleep(wait, signal).catch(() => {});
    }
    await this.release();
  }

  /** Time left in a leader's renew round. */
  #renewLeft(): number {
    return (this.#renewBy ?? Infinity) - this.#clock();
  }

  /**
   * One acquire-or-renew attempt. A leader's first attempt after a renewal starts a renew round;
   * every attempt of the round is cut at its deadline, as client-go's renew context cuts it: a
   * renewal hanging on a stalled connection (the client's own timeout is 30 s) would otherwise
   * keep this candidate leading after a standby took the lease.
   */
  async #attempt(signal: AbortSignal): Promise<boolean> {
    if (!this.#leader) return await this.tryAcquireOrRenew(signal);
    this.#renewBy ??= this.#clock() + this.#o.renewDeadlineMs;
    const left = this.#renewLeft();
    if (left <= 0) return false;
    const cut = new AbortController();
    const onAbort = () => cut.abort(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(
      () => cut.abort(new DOMException("leader election: renew deadline passed", "TimeoutError")),
      left,
    );
    try {
      return await this.tryAcquireOrRenew(cut.signal);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    }
  }

  #call(fn?: () => void): void {
    try {
      fn?.();
    } catch (err) {
      this.#log?.error("leader election callback failed", { error: err });
    }
  }

  /** Gives up the lease (holder cleared) if this candidate holds it. */
  async release(): Promise<void> {
    if (!this.#leader) return;
    this.#leader = false;
    this.#call(this.#onStop);
    const { leases, namespace, name, identity } = this.#o;
    try {
      const lease = await leases.get(namespace, name);
      if (!lease || lease.spec?.holderIdentity !== identity) return;
      const now = microTime(new Date(this.#now()));
      await leases.update({
        metadata: lease.metadata,
        // as client-go's release: no holder, a 1 s lease, transitions kept
        spec: {
          holderIdentity: "",
          leaseDurationSeconds: 1,
          acquireTime: now,
          renewTime: now,
          leaseTransitions: lease.spec.leaseTransitions ?? 0,
        },
      });
      this.#log?.info("released leader lease", { lease: `${namespace}/${name}` });
    } catch (err) {
      this.#warn("could not release leader lease; a standby takes over when it expires", err);
    }
  }
}
