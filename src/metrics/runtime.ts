/**
 * The runtime series that controller-runtime dashboards and alerts read, with its names,
 * label names and values (`controller="imagesync"`, the work queue named after it):
 * `controller_runtime_reconcile_total{controller,result}`,
 * `controller_runtime_reconcile_errors_total`, `controller_runtime_reconcile_time_seconds`,
 * `controller_runtime_active_workers`, `controller_runtime_max_concurrent_reconciles`, client-go's
 * `workqueue_*` family, `rest_client_requests_total{code,host,method}`,
 * `leader_election_master_status{name}`, and the Prometheus process collector's `process_*`
 * (CPU, resident and virtual memory, open and max file descriptors, start time). Help texts,
 * buckets and semantics are controller-runtime v0.24's (upstream Portager v0.5's): its default
 * priority queue labels `workqueue_depth` with `priority` (ours: "0", its normal priority) and
 * counts every add with a delay, a RequeueAfter included, in `workqueue_retries_total`.
 * Histograms are {@linkcode CompactHistogram}s (one small array each).
 * @module
 */

import process from "node:process";
import { Counter, Gauge, type Registry } from "prom-client";
import { CompactHistogram } from "./histogram.ts";

/** controller-runtime's reconcile results. */
export type ReconcileOutcome = "success" | "error" | "requeue" | "requeue_after";

/** controller-runtime's reconcile time buckets (seconds). */
const RECONCILE_BUCKETS = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.15,
  0.2,
  0.25,
  0.3,
  0.35,
  0.4,
  0.45,
  0.5,
  0.6,
  0.7,
  0.8,
  0.9,
  1.0,
  1.25,
  1.5,
  1.75,
  2.0,
  2.5,
  3.0,
  3.5,
  4.0,
  4.5,
  5,
  6,
  7,
  8,
  9,
  10,
  15,
  20,
  25,
  30,
  40,
  50,
  60,
];
/**
 * client-go's workqueue duration buckets, `prometheus.ExponentialBuckets(10e-9, 10, 12)`, computed
 * as Go does (each bound the previous times 10) so every bound is the same float64 as upstream's.
 */
const QUEUE_BUCKETS: number[] = [];
for (let b = 10e-9; QUEUE_BUCKETS.length < 12; b *= 10) QUEUE_BUCKETS.push(b);

/** Reads a /proc file; undefined where there is none or no permission (the series is then left out). */
function readProc(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

function openFds(): number | undefined {
  try {
    let n = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
    return n;
  } catch {
    return undefined;
  }
}

/** The runtime metrics of one manager; see the module doc. */
export class RuntimeMetrics {
  /** The controller label value (and work queue name). */
  readonly controller: string;
  readonly #reconcileTotal: Counter<"controller" | "result">;
  readonly #reconcileErrors: Counter<"controller">;
  readonly #reconcilePanics: Counter<"controller">;
  readonly #reconcileTimeouts: Counter<"controller">;
  readonly #reconcileTime: CompactHistogram<"controller">;
  readonly #activeWorkers: Gauge<"controller">;
  readonly #maxConcurrent: Gauge<"controller">;
  readonly #adds: Counter<"name" | "controller">;
  readonly #retries: Counter<"name" | "controller">;
  readonly #depth: Gauge<"name" | "controller" | "priority">;
  readonly #queueDuration: CompactHistogram<"name" | "controller">;
  readonly #workDuration: CompactHistogram<"name" | "controller">;
  readonly #restRequests: Counter<"code" | "host" | "method">;
  readonly #leader: Gauge<"name">;
  #inFlight: () => number[] = () => [];

  /** Registers the series on `registry`; `controller` defaults to "imagesync". */
  constructor(registry: Registry, options: { controller?: string } = {}) {
    const controller = this.controller = options.controller ?? "imagesync";
    const registers = [registry];
    this.#reconcileTotal = new Counter({
      name: "controller_runtime_reconcile_total",
      help: "Total number of reconciliations per controller",
      labelNames: ["controller", "result"],
      registers,
    });
    for (const result of ["success", "error", "requeue", "requeue_after"]) {
      this.#reconcileTotal.inc({ controller, result }, 0);
    }
    // controller-runtime shows these from the start at 0 (initMetrics); ours never returns a
    // terminal error (every failure is retried), as upstream's reconciler
    const counter = (what: string, help: string) => {
      const c = new Counter({
        name: `controller_runtime_${what}_total`,
        help: `Total number of ${help} per controller`,
        labelNames: ["controller"],
        registers,
      });
      c.inc({ controller }, 0);
      return c;
    };
    this.#reconcileErrors = counter("reconcile_errors", "reconciliation errors");
    counter("terminal_reconcile_errors", "terminal reconciliation errors");
    this.#reconcilePanics = counter("reconcile_panics", "reconciliation panics");
    this.#reconcileTimeouts = counter("reconcile_timeouts", "reconciliation timeouts");
    this.#reconcileTime = new CompactHistogram({
      name: "controller_runtime_reconcile_time_seconds",
      help: "Length of time per reconciliation per controller",
      labelNames: ["controller"],
      buckets: RECONCILE_BUCKETS,
      registers,
    });
    this.#activeWorkers = new Gauge({
      name: "controller_runtime_active_workers",
      help: "Number of currently used workers per controller",
      labelNames: ["controller"],
      registers,
    });
    this.#activeWorkers.set({ controller }, 0);
    this.#maxConcurrent = new Gauge({
      name: "controller_runtime_max_concurrent_reconciles",
      help: "Maximum number of concurrent reconciles per controller",
      labelNames: ["controller"],
      registers,
    });
    const q = { name: controller, controller };
    const labelNames = ["name", "controller"] as const;
    // controller-runtime's default priority queue labels the depth by priority; ours has one
    // priority, controller-runtime's default 0
    this.#depth = new Gauge({
      name: "workqueue_depth",
      help: "Current depth of workqueue by workqueue and priority",
      labelNames: [...labelNames, "priority"],
      registers,
    });
    this.#depth.set({ ...q, priority: "0" }, 0);
    this.#adds = new Counter({
      name: "workqueue_adds_total",
      help: "Total number of adds handled by workqueue",
      labelNames,
      registers,
    });
    this.#adds.inc(q, 0);
    this.#retries = new Counter({
      name: "workqueue_retries_total",
      help: "Total number of items added to the workqueue with a non-zero delay (rate-limited requeues, " +
        "explicit RequeueAfter or AddAfter calls)",
      labelNames,
      registers,
    });
    this.#retries.inc(q, 0);
    this.#queueDuration = new CompactHistogram({
      name: "workqueue_queue_duration_seconds",
      help: "How long in seconds an item stays in workqueue before being requested",
      labelNames,
      buckets: QUEUE_BUCKETS,
      registers,
    });
    this.#workDuration = new CompactHistogram({
      name: "workqueue_work_duration_seconds",
      help: "How long in seconds processing an item from workqueue takes.",
      labelNames,
      buckets: QUEUE_BUCKETS,
      registers,
    });
    const inFlight = () => this.#inFlight();
    new Gauge({
      name: "workqueue_unfinished_work_seconds",
      help: "How many seconds of work has been done that is in progress and hasn't been observed by " +
        "work_duration. Large values indicate stuck threads. One can deduce the number of stuck threads " +
        "by observing the rate at which this increases.",
      labelNames,
      registers,
      collect() {
        this.set(q, inFlight().reduce((a, b) => a + b, 0));
      },
    });
    new Gauge({
      name: "workqueue_longest_running_processor_seconds",
      help: "How many seconds has the longest running processor for workqueue been running.",
      labelNames,
      registers,
      collect() {
        this.set(q, Math.max(0, ...inFlight()));
      },
    });
    this.#restRequests = new Counter({
      name: "rest_client_requests_total",
      help: "Number of HTTP requests, partitioned by status code, method, and host.",
      labelNames: ["code", "host", "method"],
      registers,
    });
    this.#leader = new Gauge({
      name: "leader_election_master_status",
      help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 " +
        "indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.",
      labelNames: ["name"],
      registers,
    });
    registerProcessMetrics(registry);
  }

  /** The work queue's hooks (client-go's metrics provider). */
  queueHooks(): {
    added(): void;
    retried(): void;
    waited(seconds: number): void;
    worked(seconds: number): void;
  } {
    const q = { name: this.controller, controller: this.controller };
    return {
      added: () => this.#adds.inc(q),
      retried: () => this.#retries.inc(q),
      waited: (s) => this.#queueDuration.observe(q, s),
      worked: (s) => this.#workDuration.observe(q, s),
    };
  }

  /** The queue's depth changed. */
  setDepth(depth: number): void {
    this.#depth.set({ name: this.controller, controller: this.controller, priority: "0" }, depth);
  }

  /** Where unfinished work and the longest running processor are read from at each scrape. */
  watchInFlight(read: () => number[]): void {
    this.#inFlight = read;
  }

  /** The number of workers. */
  setMaxConcurrent(n: number): void {
    this.#maxConcurrent.set({ controller: this.controller }, n);
  }

  /**
   * A reconcile started (active workers +1); call the returned function with its outcome and,
   * when the reconcile threw rather than returned its error, what it threw: an exception with
   * no stable `reason` (a TypeError, …) is a bug, counted as controller-runtime counts a
   * recovered panic (an error too); `timedOut` when the sync timeout (`--sync-timeout`, our
   * ReconciliationTimeout) stopped it.
   */
  reconcileStarted(): (
    outcome: ReconcileOutcome,
    options?: { thrown?: unknown; timedOut?: boolean },
  ) => void {
    const controller = this.controller;
    this.#activeWorkers.inc({ controller });
    const start = performance.now();
    return (outcome, options = {}) => {
      this.#reconcileTime.observe({ controller }, (performance.now() - start) / 1000);
      this.#activeWorkers.dec({ controller });
      this.#reconcileTotal.inc({ controller, result: outcome });
      if (outcome === "error") this.#reconcileErrors.inc({ controller });
      if (
        options.thrown !== undefined && typeof (options.thrown as { reason?: unknown })?.reason !== "string"
      ) {
        this.#reconcilePanics.inc({ controller });
      }
      if (options.timedOut) this.#reconcileTimeouts.inc({ controller });
    };
  }

  /** An apiserver request ended with HTTP `code` (or "<error>" without an answer), as client-go counts. */
  restRequest(host: string, method: string, code: number | "<error>"): void {
    this.#restRequests.inc({ code: String(code), host, method: method.toUpperCase() });
  }

  /** Whether this instance holds the Lease `name`. */
  setLeader(name: string, leading: boolean): void {
    this.#leader.set({ name }, leading ? 1 : 0);
  }
}

/** The Prometheus process collector's series; each is left out where the system does not tell. */
function registerProcessMetrics(registry: Registry): void {
  const registers = [registry];
  new Counter({
    name: "process_cpu_seconds_total",
    help: "Total user and system CPU time spent in seconds.",
    registers,
    collect() {
      const u = process.cpuUsage();
      this.reset();
      this.inc((u.user + u.system) / 1e6);
    },
  });
  new Gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes.",
    registers,
    collect() {
      this.set(Deno.memoryUsage().rss);
    },
  });
  new Gauge({
    name: "process_start_time_seconds",
    help: "Start time of the process since unix epoch in seconds.",
    registers,
    collect() {
      this.set(Math.floor(performance.timeOrigin / 1000));
    },
  });
  // the /proc series only where /proc can be read (Linux, with the permission): a series that
  // cannot be measured is left out rather than shown as 0
  if (openFds() !== undefined) {
    new Gauge({
      name: "process_open_fds",
      help: "Number of open file descriptors.",
      registers,
      collect() {
        this.set(openFds() ?? 0);
      },
    });
  }
  const maxFds = Number(/^Max open files\s+(\d+)/m.exec(readProc("/proc/self/limits") ?? "")?.[1]);
  if (Number.isFinite(maxFds)) {
    new Gauge({
      name: "process_max_fds",
      help: "Maximum number of open file descriptors.",
      registers,
      collect() {
        this.set(maxFds);
      },
    });
  }
  if (vsize() !== undefined) {
    new Gauge({
      name: "process_virtual_memory_bytes",
      help: "Virtual memory size in bytes.",
      registers,
      collect() {
        this.set(vsize() ?? 0);
      },
    });
  }
}

/** /proc/self/stat field 23 (vsize); the command name (field 2) may hold spaces. */
function vsize(): number | undefined {
  const stat = readProc("/proc/self/stat");
  if (!stat) return undefined;
  const v = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[20]);
  return Number.isFinite(v) ? v : undefined;
}

const byRegistry = new WeakMap<Registry, RuntimeMetrics>();

/** The runtime metrics on `registry`, created on first use (one set per registry). */
export function runtimeMetrics(registry: Registry, options: { controller?: string } = {}): RuntimeMetrics {
  let m = byRegistry.get(registry);
  if (!m) {
    m = new RuntimeMetrics(registry, options);
    byRegistry.set(registry, m);
  }
  return m;
}
