/**
 * Sharding: ImageSyncs split over N shards by a stable hash of `namespace/name`, every shard
 * electing its own leader on its own Lease, so each shard is an HA pair (or more replicas).
 *
 * - **Ownership.** Shard of an ImageSync = FNV-1a (32 bit) of the UTF-8 bytes of
 *   `namespace/name`, modulo the shard count N ({@linkcode shardOf}). It depends on nothing
 *   but the key and N, so every process computes the same owner without talking to the others.
 * - **Leases.** Shard `i` elects on the Lease `<lease-name>-shard-<i>`
 *   ({@linkcode shardLeaseName}); every write labels it `portager.portager.io/shard-group` and
 *   annotates it with the writer's shard count (`portager.portager.io/shards`).
 * - **Handover rule.** A process syncs only while (1) it holds its shard's Lease and (2) its
 *   last look at the group — every Lease with the group label, listed after each renewal —
 *   found no *live* Lease written with another shard count, and the unsharded Lease
 *   (`<lease-name>`, upstream's and an unsharded Portager's) not live either
 *   ({@linkcode ShardGate}). Live = a holder, and a record that changed within its lease
 *   duration as timed on this process's clock (client-go's observation rule, so clock skew
 *   does not matter). So when the shard count changes (N → N+1 in a rolling update), the
 *   processes of the old count stop taking work as soon as they see a Lease of the new count,
 *   and the new ones start only once every old Lease is released (a graceful exit releases it
 *   after its in-flight syncs ended) or expired: the two counts never sync at once, so no
 *   ImageSync is synced by two shards. The price is a pause in syncing while both counts run.
 * - **Label-selector shards** (as Flux shards: `--watch-label-selector`). The selector goes to
 *   the apiserver on list and watch, so a shard neither receives nor caches the others'
 *   ImageSyncs. Its Leases are named after the base Lease and the selector
 *   ({@linkcode selectorLeaseBase}) and annotated with the selector, so each selector shard
 *   elects on its own Lease(s). With `--shards N` as well, the selector picks the ImageSyncs and
 *   the hash splits them over N processes; without it, the selector shard is shard 0 of 1. The
 *   handover rule holds per selector (a live Lease of the same selector and another count closes
 *   the gate), and between processes that watch everything and selector shards: a live Lease of
 *   a hash shard without a selector closes a selector shard's gate and the other way round (so
 *   turning selector shards on or off in a rolling update pauses syncing, as a new count does).
 *   Selector shards do not block one another: their selectors are taken to be disjoint.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { type Lease, LEASE_LIST_LIMIT } from "../kube/mod.ts";
import type { LeaderElectorOptions, LeaseAccess } from "./leader.ts";
import { formatLabelSelector, parseLabelSelector } from "./label_selector.ts";

/** Label on every shard Lease: which group (the base Lease name) it belongs to. */
export const SHARD_GROUP_LABEL = "portager.portager.io/shard-group";
/** Annotation on every shard Lease: the shard count of the process that wrote it. */
export const SHARD_COUNT_ANNOTATION = "portager.portager.io/shards";
/** The label selector shards key on by convention (the chart's `labelShards`), as Flux's `sharding.fluxcd.io/key`. */
export const SHARD_KEY_LABEL = "sharding.portager.io/key";
/** Annotation on the Leases of a label-selector shard: its selector, canonical. */
export const SHARD_SELECTOR_ANNOTATION = "portager.portager.io/label-selector";
/** Most shards one group may have (the gate lists the group's Leases in one page). */
export const MAX_SHARDS = 256;

/** This process's place in the group. */
export interface ShardIdentity {
  /** Shard count N, 1 … {@linkcode MAX_SHARDS}. */
  shards: number;
  /** This process's shard, 0 … N-1. */
  index: number;
}

/** Throws a RangeError with an actionable message unless `shard` is a valid identity. */
export function validateShard(shard: ShardIdentity): void {
  const { shards, index } = shard;
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_SHARDS) {
    throw new RangeError(`the shard count must be a whole number from 1 to ${MAX_SHARDS}, got ${shards}`);
  }
  if (!Number.isInteger(index) || index < 0 || index >= shards) {
    throw new RangeError(`the shard index must be a whole number from 0 to ${shards - 1}, got ${index}`);
  }
}

/** FNV-1a, 32 bit, over the UTF-8 bytes of `text` (offset basis 2166136261, prime 16777619). */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(text)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The shard (0 … shards-1) that owns the ImageSync `namespace/name`. */
export function shardOf(key: string, shards: number): number {
  return fnv1a32(key) % shards;
}

/** The Lease shard `index` elects on: `<base>-shard-<index>`. */
export function shardLeaseName(base: string, index: number): string {
  return `${base}-shard-${index}`;
}

/**
 * The canonical form of a `--watch-label-selector` (see src/controller/label_selector.ts), or
 * undefined for none (blank selects everything); throws `InvalidLabelSelectorError`.
 */
export function canonicalSelector(selector: string | undefined): string | undefined {
  const canonical = formatLabelSelector(parseLabelSelector(selector ?? ""));
  return canonical === "" ? undefined : canonical;
}

/**
 * The base Lease name of the shard watching `selector` (canonical):
 * `<base>-<first 8 hex digits of SHA-256(selector)>` — the chart computes the same name with
 * `sha256sum`, to grant its pods that Lease alone.
 */
export function selectorLeaseBase(base: string, selector: string): string {
  return `${base}-${createHash("sha256").update(selector).digest("hex").slice(0, 8)}`;
}

/** The group label's value: the base Lease name, or a hash of it when too long for a label. */
export function shardGroup(base: string): string {
  return /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(base)
    ? base
    : `fnv-${fnv1a32(base).toString(16).padStart(8, "0")}`;
}

/** Lease access with a list of one group: src/kube's LeaseClient. */
export interface ShardLeaseAccess extends LeaseAccess {
  /** The Leases of `namespace` matching `labelSelector`. */
  list(namespace: string, options: { labelSelector: string; signal?: AbortSignal }): Promise<Lease[]>;
}

/**
 * Lease access for a shard's elector: every create and update carries the group label and
 * this process's shard count, so the other shards' gates can see which count holds it.
 */
export function shardLeaseAccess(
  leases: LeaseAccess,
  options: { base: string; shards: number; labelSelector?: string },
): LeaseAccess {
  // the group is the base Lease's, with or without a selector: one list shows every shard
  const selector = options.labelSelector === undefined
    ? {}
    : { [SHARD_SELECTOR_ANNOTATION]: options.labelSelector };
  const mark = (lease: Lease): Lease => {
    const md = lease.metadata as Lease["metadata"] & {
      labels?: Record<string, string>;
      annotations?: Record<string, string>;
    };
    return {
      ...lease,
      metadata: {
        ...md,
        labels: { ...md.labels, [SHARD_GROUP_LABEL]: shardGroup(options.base) },
        annotations: { ...md.annotations, ...selector, [SHARD_COUNT_ANNOTATION]: String(options.shards) },
      },
    };
  };
  return {
    get: (namespace, name, opts) => leases.get(namespace, name, opts),
    create: (lease, opts) => leases.create(mark(lease), opts),
    update: (lease, opts) => leases.update(mark(lease), opts),
  };
}

/** What {@linkcode ShardGate.check} found. */
export interface GateResult {
  /** True when this process may work (see the handover rule in the module doc). */
  open: boolean;
  /** Why not: the live Leases of another shard count (or the unsharded Lease). */
  blockers: string[];
}

/** Options of {@linkcode ShardGate}. */
export interface ShardGateOptions extends ShardIdentity {
  /** Lease list and get (src/kube's LeaseClient). */
  leases: ShardLeaseAccess;
  /** Namespace of the group's Leases. */
  namespace: string;
  /** Base Lease name: the unsharded Lease, the group, and the prefix of the shard Leases. */
  base: string;
  /** This process's label selector (canonical), if it is a selector shard. */
  labelSelector?: string;
  /** Clock in epoch ms, for tests; default `Date.now`. */
  now?: () => number;
}

/**
 * The second condition of the handover rule: no live Lease of another shard count. Call
 * {@linkcode check} while holding this shard's Lease; it is open only if the group is clean.
 */
export class ShardGate {
  readonly #o: ShardGateOptions;
  readonly #now: () => number;
  readonly #own: string;
  /** Per Lease name: its last record and when that record was first seen (local clock). */
  readonly #seen = new Map<string, { record: string; at: number }>();

  /** Creates a gate for one process; it keeps the observation clock of every Lease it saw. */
  constructor(options: ShardGateOptions) {
    validateShard(options);
    this.#o = options;
    this.#now = options.now ?? Date.now;
    const base = options.labelSelector === undefined
      ? options.base
      : selectorLeaseBase(options.base, options.labelSelector);
    this.#own = shardLeaseName(base, options.index);
  }

  #live(lease: Lease): boolean {
    const s = lease.spec ?? {};
    const record = JSON.stringify([s.holderIdentity ?? "", s.renewTime ?? "", s.acquireTime ?? ""]);
    const name = lease.metadata.name;
    const prev = this.#seen.get(name);
    const now = this.#now();
    if (!prev || prev.record !== record) this.#seen.set(name, { record, at: now });
    const at = this.#seen.get(name)!.at;
    if (!s.holderIdentity) return false;
    return now - at < (s.leaseDurationSeconds ?? 15) * 1000;
  }

  /**
   * Lists the group (and reads the unsharded Lease); open when no Lease that would overlap this
   * process is live: of the same selector (or none) and another count, or of a selector shard when
   * this process has none, or of a hash shard without one when this process has one.
   */
  async check(signal?: AbortSignal): Promise<GateResult> {
    const { leases, namespace, base, shards, labelSelector } = this.#o;
    const group = await leases.list(namespace, {
      labelSelector: `${SHARD_GROUP_LABEL}=${shardGroup(base)}`,
      signal,
    });
    const blockers: string[] = [];
    if (group.length >= LEASE_LIST_LIMIT) {
      blockers.push(`${group.length} Leases in the group: more than one page`);
    }
    for (const lease of group) {
      if (lease.metadata.name === this.#own) continue;
      const md = lease.metadata as Lease["metadata"] & { annotations?: Record<string, string> };
      const count = md.annotations?.[SHARD_COUNT_ANNOTATION];
      const selector = md.annotations?.[SHARD_SELECTOR_ANNOTATION];
      if (selector === labelSelector ? count === String(shards) : selector && labelSelector) continue;
      if (this.#live(lease)) {
        const what = selector === undefined ? "" : `, selector ${selector}`;
        blockers.push(
          `Lease ${lease.metadata.name} (shards=${count ?? "?"}${what}) held by ${lease.spec.holderIdentity}`,
        );
      }
    }
    const unsharded = await leases.get(namespace, base, { signal });
    if (unsharded && this.#live(unsharded)) {
      blockers.push(`unsharded Lease ${base} held by ${unsharded.spec.holderIdentity}`);
    }
    return { open: blockers.length === 0, blockers };
  }
}

/** Leader-election settings of an unsharded operator, with a Lease client that can list. */
export type ElectionSettings =
  & Omit<LeaderElectorOptions, "logger" | "onStartedLeading" | "onStoppedLeading">
  & {
    leases: ShardLeaseAccess;
  };

/** What {@linkcode shardElection} returns: the pieces a sharded operator is wired with. */
export interface ShardWiring {
  /** Election on this shard's Lease, whose writes carry the group label and shard count. */
  leaderElection: Omit<LeaderElectorOptions, "logger" | "onStartedLeading" | "onStoppedLeading">;
  /** The manager's `shard` option: identity, gate and selector (a label of the shard's metric). */
  shard: ShardIdentity & { gate: ShardGate; labelSelector?: string };
  /**
   * Whether this shard owns the ImageSync `namespace/name` (the event source's filter); unset
   * with one shard (all the selector picks).
   */
  owns?: (key: string) => boolean;
  /** The label selector to list and watch with (canonical); unset: every ImageSync. */
  labelSelector?: string;
}

/** What {@linkcode shardElection} shards by: a hash split, a label selector, or both. */
export interface ShardSettings extends ShardIdentity {
  /** Watch only the ImageSyncs this label selector picks (`--watch-label-selector`). */
  labelSelector?: string;
}

/**
 * Turns an unsharded operator's election settings into shard `shard.index` of `shard.shards`
 * (of the ImageSyncs `shard.labelSelector` picks, when set): its own Lease
 * `<name>-shard-<i>` (`<name>-<selector hash>-shard-<i>` with a selector), the gate, the
 * ownership filter and the selector to watch with. Throws `InvalidLabelSelectorError` or
 * RangeError on bad settings.
 */
export function shardElection(election: ElectionSettings, shard: ShardSettings): ShardWiring {
  validateShard(shard);
  const { shards, index } = shard;
  const labelSelector = canonicalSelector(shard.labelSelector);
  const base = election.name;
  const gate = new ShardGate({
    leases: election.leases,
    namespace: election.namespace,
    base,
    shards,
    index,
    labelSelector,
  });
  const prefix = labelSelector === undefined ? base : selectorLeaseBase(base, labelSelector);
  return {
    leaderElection: {
      ...election,
      name: shardLeaseName(prefix, index),
      leases: shardLeaseAccess(election.leases, { base, shards, labelSelector }),
    },
    shard: { shards, index, gate, labelSelector },
    owns: shards > 1 ? (key) => shardOf(key, shards) === index : undefined,
    labelSelector,
  };
}
