/**
 * `portager run`: the operator. Watches ImageSyncs in a cluster (in-cluster, or through a
 * kubeconfig) and keeps them in sync until SIGTERM/SIGINT.
 * @module
 */
import { createLogger, parseLogFormat, parseLogLevel } from "../server/log.ts";
import { type FlagSpec, formatFlags, parseArgs, UsageError } from "./args.ts";
import { parseDuration, readCaFiles, splitList } from "./common.ts";

const FLAGS: FlagSpec[] = [
  {
    name: "kubeconfig",
    type: "string",
    env: "KUBECONFIG",
    help: "kubeconfig file (else in-cluster, else ~/.kube/config)",
  },
  { name: "context", type: "string", env: "KUBE_CONTEXT", help: "kubeconfig context to use" },
  {
    name: "namespace",
    short: "n",
    type: "string",
    multiple: true,
    env: "WATCH_NAMESPACE",
    help: "watch only these namespaces (repeat or comma list); default all",
  },
  {
    name: "max-concurrent-syncs",
    type: "string",
    env: "MAX_CONCURRENT_SYNCS",
    default: "2",
    help: "ImageSyncs synced at the same time",
  },
  {
    name: "leader-elect",
    type: "boolean",
    env: "LEADER_ELECT",
    help: "elect a leader through a Lease (default: on in-cluster, off outside)",
  },
  {
    name: "lease-name",
    type: "string",
    env: "LEASE_NAME",
    default: "portager-leader",
    help: "name of the leader-election Lease",
  },
  {
    name: "lease-namespace",
    type: "string",
    env: "POD_NAMESPACE",
    help: "namespace of the Lease (default: the pod's, else default)",
  },
  {
    name: "metrics-addr",
    type: "string",
    env: "METRICS_ADDR",
    default: ":8080",
    help: "listen address for /metrics, /healthz, /readyz",
  },
  { name: "log-format", type: "string", env: "LOG_FORMAT", default: "json", help: "json or text" },
  {
    name: "log-level",
    type: "string",
    env: "LOG_LEVEL",
    default: "info",
    help: "debug, info, warn or error",
  },
  {
    name: "insecure-registry",
    type: "string",
    multiple: true,
    env: "INSECURE_REGISTRIES",
    help: "registry host allowed over plain HTTP (repeatable)",
  },
  {
    name: "ca-file",
    type: "string",
    multiple: true,
    env: "SSL_CERT_FILE",
    help: "extra CA bundle (PEM) trusted for registries (repeatable)",
  },
  {
    name: "grace-period",
    type: "string",
    env: "GRACE_PERIOD",
    default: "30s",
    help: "how long in-flight syncs may finish after SIGTERM",
  },
  { name: "help", short: "h", type: "boolean", help: "show this help" },
];

const HELP = `Usage: portager run [flags]

Runs the operator: watches ImageSync objects and syncs their images on schedule, on spec change,
and on the annotation portager.portager.io/sync-now: "true".

Flags:
${formatFlags(FLAGS)}

Examples:
  portager run --kubeconfig ~/.kube/config --log-format text
  portager run --namespace team-a,team-b --max-concurrent-syncs 4

No cluster? 'deno task demo' runs everything locally; 'portager sync -f FILE' needs no cluster.`;

function inCluster(): boolean {
  return Deno.env.get("KUBERNETES_SERVICE_HOST") !== undefined;
}

async function defaultKubeconfigExists(): Promise<boolean> {
  const home = Deno.env.get("HOME");
  if (!home) return false;
  try {
    await Deno.stat(`${home}/.kube/config`);
    return true;
  } catch {
    return false;
  }
}

/** Runs `portager run` until a signal stops it; returns the exit code. */
export async function runCommand(args: string[]): Promise<number> {
  const { flags, positional } = parseArgs(args, FLAGS);
  if (flags.help) {
    console.log(HELP);
    return 0;
  }
  if (positional.length > 0) throw new UsageError(`unexpected argument "${positional[0]}"`);
  let level, format;
  try {
    level = parseLogLevel(flags["log-level"] as string);
    format = parseLogFormat(flags["log-format"] as string);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const maxConcurrent = Number(flags["max-concurrent-syncs"]);
  if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1) {
    throw new UsageError(
      `--max-concurrent-syncs must be a whole number ≥ 1, got "${flags["max-concurrent-syncs"]}"`,
    );
  }
  const gracePeriodMs = parseDuration(flags["grace-period"] as string, "--grace-period");
  const kubeconfig = flags.kubeconfig as string | undefined;
  if (!kubeconfig && !inCluster() && !(await defaultKubeconfigExists())) {
    console.error(
      "portager: no cluster found: not running in a pod, no --kubeconfig, no KUBECONFIG, no ~/.kube/config.\n" +
        "  Try it without a cluster:  deno task demo   (local apiserver + registries)\n" +
        "  or sync from files:        portager sync -f imagesync.yaml",
    );
    return 2;
  }
  const logger = createLogger({ level, format });
  const caCerts = await readCaFiles(flags["ca-file"] as string[]);
  const controller = new AbortController();
  const stop = () => controller.abort();
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  try {
    const { runOperator } = await import("../controller/mod.ts");
    await runOperator({
      kubeconfig,
      context: flags.context as string | undefined,
      namespaces: splitList(flags.namespace as string[]),
      maxConcurrentSyncs: maxConcurrent,
      leaderElection: (flags["leader-elect"] as boolean | undefined) ?? inCluster(),
      leaseName: flags["lease-name"] as string,
      leaseNamespace: flags["lease-namespace"] as string | undefined,
      identity: `${Deno.hostname()}-${crypto.randomUUID().slice(0, 8)}`,
      metricsAddr: flags["metrics-addr"] as string,
      insecureRegistries: splitList(flags["insecure-registry"] as string[]),
      caCerts,
      logger,
      signal: controller.signal,
      gracePeriodMs,
    });
    return 0;
  } finally {
    Deno.removeSignalListener("SIGTERM", stop);
    Deno.removeSignalListener("SIGINT", stop);
  }
}
