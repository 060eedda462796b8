/**
 * Leases in memory with the apiserver's optimistic concurrency (a write at a stale
 * resourceVersion is a Conflict, a second create AlreadyExists): the elector's store in unit
 * tests, where a real apiserver is not wanted.
 * @module
 */

import { KubeError, type Lease } from "../kube/mod.ts";
import type { LeaseAccess } from "./leader.ts";

function kubeError(status: number, reason: string): KubeError {
  return new KubeError(`lease: ${reason}`, { status, reason });
}

/** One namespace's Leases, in memory. */
export class MemoryLeases implements LeaseAccess {
  readonly #leases = new Map<string, Lease>();
  #rv = 0;
  /** GETs served, to count election attempts. */
  gets = 0;

  /** The Lease as stored, if any. */
  peek(name: string): Lease | undefined {
    const l = this.#leases.get(name);
    return l ? structuredClone(l) : undefined;
  }

  /** Reads a Lease. */
  get(_namespace: string, name: string): Promise<Lease | undefined> {
    this.gets++;
    return Promise.resolve(this.peek(name));
  }

  /** Creates a Lease; AlreadyExists when it exists. */
  create(lease: Lease): Promise<Lease> {
    if (this.#leases.has(lease.metadata.name)) return Promise.reject(kubeError(409, "AlreadyExists"));
    return Promise.resolve(this.#store(lease));
  }

  /** Replaces a Lease; Conflict when `resourceVersion` is not the stored one. */
  update(lease: Lease): Promise<Lease> {
    const cur = this.#leases.get(lease.metadata.name);
    if (!cur) return Promise.reject(kubeError(404, "NotFound"));
    if (cur.metadata.resourceVersion !== lease.metadata.resourceVersion) {
      return Promise.reject(kubeError(409, "Conflict"));
    }
    return Promise.resolve(this.#store(lease));
  }

  /** Writes a Lease as another candidate would (no version check). */
  put(lease: Lease): void {
    this.#store(lease);
  }

  #store(lease: Lease): Lease {
    const stored = {
      ...structuredClone(lease),
      metadata: { ...lease.metadata, resourceVersion: String(++this.#rv) },
    };
    this.#leases.set(lease.metadata.name, stored);
    return structuredClone(stored);
  }
}
