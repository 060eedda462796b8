/**
 * coordination.k8s.io/v1 Leases for leader election: get, create and update (a PUT carrying
 * the resourceVersion, so two candidates cannot both win: the second gets 409 Conflict).
 * @module
 */

import type { KubeClient } from "./client.ts";
import { unlessNotFound } from "./not_found.ts";

/** A coordination.k8s.io/v1 Lease. */
export interface Lease {
  /** Always coordination.k8s.io/v1. */
  apiVersion?: "coordination.k8s.io/v1";
  /** Always Lease. */
  kind?: "Lease";
  /** Name, namespace and resourceVersion. */
  metadata: { name: string; namespace: string; resourceVersion?: string; [k: string]: unknown };
  /** Holder, duration and times of the lease. */
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    /** MicroTime, RFC 3339 with microseconds. */
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

/** Most Leases {@linkcode LeaseClient.list} returns (one page). */
export const LEASE_LIST_LIMIT = 500;

/** Formats a Date as a Kubernetes MicroTime (RFC 3339, 6 fractional digits, UTC). */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

function leasePath(namespace: string, name?: string): string {
  const base = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
  return name ? `${base}/${encodeURIComponent(name)}` : base;
}

/** Reads, creates and updates Leases. */
export class LeaseClient {
  /** The client used. */
  readonly kube: KubeClient;

  /** Creates the Lease API over `kube`. */
  constructor(kube: KubeClient) {
    this.kube = kube;
  }

  /** The Lease, or undefined if it does not exist. */
  async get(
    namespace: string,
    name: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<Lease | undefined> {
    return await unlessNotFound(this.kube.request<Lease>("GET", leasePath(namespace, name), options));
  }

  /**
   * The Leases of `namespace` matching `labelSelector`: one page of at most {@linkcode LEASE_LIST_LIMIT}
   * (a sharded operator's group has one Lease per shard; a full page means there may be more).
   * Needs the `list` verb on leases.
   */
  async list(
    namespace: string,
    options: { labelSelector: string; signal?: AbortSignal },
  ): Promise<Lease[]> {
    const res = await this.kube.request<{ items?: Lease[] }>("GET", leasePath(namespace), {
      query: { labelSelector: options.labelSelector, limit: LEASE_LIST_LIMIT },
      signal: options.signal,
    });
    return res.items ?? [];
  }

  /** Creates the Lease; AlreadyExists if another candidate was faster. */
  create(lease: Lease, options: { signal?: AbortSignal } = {}): Promise<Lease> {
    return this.kube.request<Lease>("POST", leasePath(lease.metadata.namespace), {
      body: { apiVersion: "coordination.k8s.io/v1", kind: "Lease", ...lease },
      signal: options.signal,
    });
  }

  /** Replaces the Lease at its resourceVersion; Conflict if someone else wrote it meanwhile. */
  update(lease: Lease, options: { signal?: AbortSignal } = {}): Promise<Lease> {
    return this.kube.request<Lease>("PUT", leasePath(lease.metadata.namespace, lease.metadata.name), {
      body: { apiVersion: "coordination.k8s.io/v1", kind: "Lease", ...lease },
      signal: options.signal,
    });
  }
}
