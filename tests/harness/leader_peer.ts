/**
 * A real client-go leader-election peer: `k8s.io/client-go/tools/leaderelection` on a
 * coordination.k8s.io/v1 Lease, as controller-runtime runs it for upstream Portager
 * (tests/harness/go/leader_peer/main.go, built by scripts/build-tools.sh against the client-go
 * of the harness's kube-apiserver version). Tests run it beside our operator on the harness
 * apiserver to prove the two never lead at once.
 *
 * The peer prints one line per event, which {@linkcode LeaderPeer.waitFor} waits for:
 * `STARTED <id>`, `NEW_LEADER <holder>`, `LEADING <id>`, `STOPPED <id>` (it was leading and
 * stopped), `EXIT <id> signal|lost`. Losing the Lease without a signal exits with status 1,
 * as controller-runtime's manager does.
 *
 * ```ts
 * const peer = await startLeaderPeer(kube.kubeconfigPath, { identity: "upstream-pod" });
 * try {
 *   await peer.waitFor(`LEADING ${peer.identity}`);
 * } finally {
 *   await peer.stop(); // SIGTERM: releases the Lease (releaseOnCancel)
 * }
 * ```
 * @module
 */

import { type LineProcess, spawnLineProcess, type WaitForOptions } from "./line_process.ts";
import { toolPath } from "./tools.ts";

export { LineWaitError, type WaitForOptions } from "./line_process.ts";

/** The Lease name upstream Portager (controller-runtime's LeaderElectionID) uses. */
export const UPSTREAM_LEASE_NAME = "c8073f84.portager.io";

/** Options for {@linkcode startLeaderPeer}; timings as client-go's LeaderElectionConfig. */
export interface LeaderPeerOptions {
  /** Namespace of the Lease (default "default"). */
  namespace?: string;
  /** Name of the Lease (default {@linkcode UPSTREAM_LEASE_NAME}). */
  leaseName?: string;
  /** Holder identity (default "client-go-peer-<random>"). */
  identity?: string;
  /** LeaseDuration in ms (default 15000, controller-runtime's default). */
  leaseDurationMs?: number;
  /** RenewDeadline in ms (default 10000). */
  renewDeadlineMs?: number;
  /** RetryPeriod in ms (default 2000). */
  retryPeriodMs?: number;
  /** Release the Lease when stopped with SIGTERM/SIGINT (default true). */
  releaseOnCancel?: boolean;
  /**
   * Log every read of the Lease on stderr ({@linkcode LeaderPeer.logs}) as client-go's elector
   * sees it: `READ <unix µs> <monotonic µs> <changed|same> <renewTime> <raw record>` (default false).
   */
  traceReads?: boolean;
}

/** A running peer. */
export interface LeaderPeer {
  /** Its holder identity. */
  identity: string;
  /** Every event line so far, in order (see the module doc). */
  lines(): readonly string[];
  /** stderr lines (client-go's klog output), for diagnosis. */
  logs(): readonly string[];
  /** True while its last LEADING has not been followed by STOPPED or its exit. */
  isLeading(): boolean;
  /**
   * Resolves with the index (in lines()) of the first line at or after `opts.since` equal to
   * `line` (or matching it, a RegExp); rejects with LineWaitError on timeout (default 30 s) or
   * when the peer exits first.
   */
  waitFor(line: string | RegExp, opts?: WaitForOptions): Promise<number>;
  /** Resolves with the exit status when the peer exits by itself or is stopped. */
  status: Promise<Deno.CommandStatus>;
  /**
   * Stops the peer: SIGTERM by default (the elector is cancelled, releasing the Lease when
   * releaseOnCancel); SIGKILL simulates a crash that leaves the Lease held until it expires.
   */
  stop(opts?: { signal?: Deno.Signal }): Promise<Deno.CommandStatus>;
}

function goDuration(ms: number): string {
  return `${Math.round(ms)}ms`;
}

/**
 * Starts a client-go elector with `kubeconfig` (e.g. the harness's admin kubeconfig or one for
 * a ServiceAccount token) and resolves once it runs (`STARTED`), before it acquires anything.
 * Throws ToolMissingError if it is not built.
 */
export async function startLeaderPeer(
  kubeconfig: string,
  opts: LeaderPeerOptions = {},
): Promise<LeaderPeer> {
  const identity = opts.identity ?? `client-go-peer-${crypto.randomUUID().slice(0, 8)}`;
  const args = [
    "-kubeconfig",
    kubeconfig,
    "-namespace",
    opts.namespace ?? "default",
    "-lease-name",
    opts.leaseName ?? UPSTREAM_LEASE_NAME,
    "-identity",
    identity,
    "-lease-duration",
    goDuration(opts.leaseDurationMs ?? 15_000),
    "-renew-deadline",
    goDuration(opts.renewDeadlineMs ?? 10_000),
    "-retry-period",
    goDuration(opts.retryPeriodMs ?? 2_000),
    `-release-on-cancel=${opts.releaseOnCancel ?? true}`,
    `-trace-reads=${opts.traceReads ?? false}`,
  ];
  const proc: LineProcess = spawnLineProcess(toolPath("leader-peer"), args);
  try {
    await proc.waitFor(`STARTED ${identity}`, { timeoutMs: 20_000 });
  } catch (e) {
    await proc.stop({ signal: "SIGKILL" });
    throw e;
  }
  return {
    identity,
    lines: () => proc.stdout,
    logs: () => proc.stderr,
    isLeading() {
      if (proc.exited()) return false;
      for (let i = proc.stdout.length - 1; i >= 0; i--) {
        if (proc.stdout[i] === `LEADING ${identity}`) return true;
        if (proc.stdout[i] === `STOPPED ${identity}`) return false;
      }
      return false;
    },
    waitFor: (line, o) => proc.waitFor(line, o),
    status: proc.status,
    stop: (o = {}) => proc.stop({ signal: o.signal ?? "SIGTERM", graceMs: 15_000 }),
  };
}
