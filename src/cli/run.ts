/**
 * `portager run`: the operator. Watches ImageSyncs in a cluster (in-cluster, or through a
 * kubeconfig) and keeps them in sync until SIGTERM/SIGINT.
 * @module
 */
import { DEFAULT_LEASE_NAME } from "../controller/operator.ts";
import { InvalidLabelSelectorError, parseLabelSelector } from "../controller/label_selector.ts";
import { parseAllowedRegistries } from "../credentials/allowed_registries.ts";
import { createLogger, type LogFormat, type LogLevel, parseLogFormat, parseLogLevel } from "../log/mod.ts";
import { type FlagSpec, formatFlags, parseArgs, UsageError } from "./args.ts";
import { WEBHOOK_FLAGS, webhookOptions } from "./webhook.ts";
import {
  DEFAULT_SYNC_TIMEOUT,
  limitFlags,
  limitSettings,
  MAX_TRANSFERS_FLAG,
  maxTransfers,
} from "./limits.ts";
import { parseListenAddress } from "../server/http.ts";
import { parseDuration, readCaFiles, splitList } from "./common.ts";
import { EXIT } from "./mod.ts";

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
  MAX_TRANSFERS_FLAG,
  {
    name: "shards",
    type: "string",
    env: "PORTAGER_SHARDS",
    help: "split ImageSyncs over this many shards by a hash of namespace/name (each its own Lease)",
  },
  {
    name: "shard-index",
    type: "string",
    env: "PORTAGER_SHARD_INDEX",
    help: "this process's shard, 0 … shards-1 (with --shards)",
  },
  {
    name: "watch-label-selector",
    type: "string",
    env: "WATCH_LABEL_SELECTOR",
    help:
      'watch only the ImageSyncs this label selector picks, as Flux shards (e.g. "sharding.portager.io/key ' +
      'in (shard1)", and "!sharding.portager.io/key" for the main shard); each selector elects on its own Lease',
  },
  {
    name: "leader-elect",
    type: "boolean",
    env: "LEADER_ELECT",
    help: "elect a leader through a Lease (default: on in-cluster, off outside)",
  },
  {
    name: "leader-election-id",
    type: "string",
    env: "LEADER_ELECTION_ID",
    help:
      `name of the leader-election Lease (default ${DEFAULT_LEASE_NAME}, upstream's, so the two never lead at once)`,
  },
  {
    name: "lease-name",
    type: "string",
    env: "LEASE_NAME",
    help: "same as --leader-election-id (deprecated)",
  },
  {
    name: "lease-namespace",
    type: "string",
    env: "POD_NAMESPACE",
    help: "namespace of the Lease (default: the pod's, else default)",
  },
  {
    name: "health-probe-bind-address",
    type: "string",
    env: "HEALTH_PROBE_BIND_ADDRESS",
    help: 'listen address for /healthz and /readyz (default ":8081"; "0" turns them off)',
  },
  {
    name: "metrics-bind-address",
    type: "string",
    env: "METRICS_BIND_ADDRESS",
    help: 'listen address for /metrics, e.g. ":8443" (default "0": off, as upstream; the chart sets it)',
  },
  {
    name: "metrics-secure",
    type: "boolean",
    env: "METRICS_SECURE",
    default: true,
    help:
      "serve /metrics over HTTPS, to tokens allowed `get` on /metrics (TokenReview + SubjectAccessReview)",
  },
  {
    name: "enable-http2",
    type: "boolean",
    env: "ENABLE_HTTP2",
    default: false,
    help: "offer HTTP/2 on the HTTPS metrics server (off: HTTP/2 Rapid Reset and Stream Cancellation CVEs)",
  },
  {
    name: "metrics-cert-path",
    type: "string",
    env: "METRICS_CERT_PATH",
    help: "folder with the metrics server's certificate (default: a self-signed one made at start)",
  },
  {
    name: "metrics-cert-name",
    type: "string",
    env: "METRICS_CERT_NAME",
    default: "tls.crt",
    help: "certificate file",
  },
  { name: "metrics-cert-key", type: "string", env: "METRICS_CERT_KEY", default: "tls.key", help: "key file" },
  {
    name: "metrics-addr",
    type: "string",
    env: "METRICS_ADDR",
    help: "legacy: one plain-HTTP address for /metrics, /healthz and /readyz together, instead of " +
      "--metrics-bind-address and --health-probe-bind-address (excludes both)",
  },
  {
    name: "allow-cross-namespace-refs",
    type: "boolean",
    env: "ALLOW_CROSS_NAMESPACE_REFS",
    default: false,
    help: "let an ImageSync use a Secret in another namespace (off: refused as CrossNamespaceRefDenied)",
  },
  {
    name: "cloud-identity-namespaces",
    type: "string",
    env: "CLOUD_IDENTITY_NAMESPACES",
    help: "only these namespaces may use the operator's own cloud identity (auth method ecr, gar); " +
      "default every namespace",
  },
  {
    name: "allowed-registries",
    type: "string",
    env: "ALLOWED_REGISTRIES",
    help: "comma list of registry host patterns ImageSyncs may name as source or destination " +
      "(`*` wildcards, optional :port, e.g. ghcr.io,*.dkr.ecr.us-east-1.amazonaws.com); others are refused as " +
      "RegistryNotAllowed; default every registry",
  },
  { name: "log-format", type: "string", env: "LOG_FORMAT", help: "json or text (default json)" },
  { name: "log-level", type: "string", env: "LOG_LEVEL", help: "debug, info, warn or error (default info)" },
  {
    name: "zap-log-level",
    type: "string",
    help: "controller-runtime's: debug, info, error, or a number ≥ 1 (debug)",
  },
  {
    name: "zap-encoder",
    type: "string",
    help: "controller-runtime's: json or console (= --log-format text)",
  },
  {
    name: "zap-devel",
    type: "boolean",
    help: "controller-runtime's development mode: text logs at debug level",
  },
  {
    name: "zap-stacktrace-level",
    type: "string",
    help: "accepted for compatibility; errors carry their stack",
  },
  { name: "zap-time-encoding", type: "string", help: "accepted for compatibility; times are RFC 3339" },
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
  ...limitFlags({ syncTimeout: DEFAULT_SYNC_TIMEOUT }),
  ...WEBHOOK_FLAGS,
  { name: "help", short: "h", type: "boolean", help: "show this help" },
];

const HELP = `Usage: portager run [flags]

Runs the operator: watches ImageSync objects and syncs their images on schedule, on spec change,
and on the annotation portager.portager.io/sync-now: "true". Upstream Portager's command line
(controller-runtime's flags, Go syntax: -flag, --flag=value, --flag=false) works as is, and
\`run\` may be left out: \`portager --leader-elect --metrics-bind-address=:8443\`.

Flags:
${formatFlags(FLAGS)}

Examples:
  portager run --kubeconfig ~/.kube/config --log-format text
  portager run --namespace team-a,team-b --max-concurrent-syncs 4
  portager --leader-elect --health-probe-bind-address=:8081 --metrics-bind-address=:8443

No cluster? 'deno task demo' runs everything locally; 'portager sync -f FILE' needs no cluster.`;

/** The log level and format from ours and controller-runtime's zap flags (ours win when both are given). */
export function logSettings(
  flags: Record<string, unknown>,
): { level: LogLevel; format: LogFormat } {
  const devel = flags["zap-devel"] === true;
  let level: LogLevel = devel ? "debug" : "info";
  let format: LogFormat = devel ? "text" : "json";
  const zapLevel = flags["zap-log-level"] as string | undefined;
  if (zapLevel !== undefined) {
    if (/^\d+$/.test(zapLevel) && Number(zapLevel) >= 1) level = "debug";
    else if (["debug", "info", "error"].includes(zapLevel.toLowerCase())) {
      level = zapLevel.toLowerCase() as LogLevel;
    } else if (zapLevel.toLowerCase() === "panic" || zapLevel.toLowerCase() === "dpanic") level = "error";
    else {throw new UsageError(
        `--zap-log-level must be debug, info, error or a number ≥ 1, got "${zapLevel}"`,
      );}
  }
  const encoder = flags["zap-encoder"] as string | undefined;
  if (encoder !== undefined) {
    if (encoder === "json") format = "json";
    else if (encoder === "console") format = "text";
    else throw new UsageError(`--zap-encoder must be json or console, got "${encoder}"`);
  }
  try {
    if (flags["log-level"] !== undefined) level = parseLogLevel(flags["log-level"] as string);
    if (flags["log-format"] !== undefined) format = parseLogFormat(flags["log-format"] as string);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return { level, format };
}

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

/** `--shards N --shard-index i` as a shard identity; undefined when `--shards` is not given. */
export function parseShard(shards?: string, index?: string): { shards: number; index: number } | undefined {
  if (shards === undefined) {
    if (index !== undefined) throw new UsageError("--shard-index needs --shards");
    return undefined;
  }
  const n = Number(shards);
  if (!/^\d+$/.test(shards) || n < 1 || n > 256) {
    throw new UsageError(`--shards must be a whole number from 1 to 256, got "${shards}"`);
  }
  if (index === undefined && n > 1) throw new UsageError(`--shards ${n} needs --shard-index (0 … ${n - 1})`);
  const i = Number(index ?? "0");
  if (!/^\d+$/.test(index ?? "0") || i >= n) {
    throw new UsageError(`--shard-index must be a whole number from 0 to ${n - 1}, got "${index}"`);
  }
  return { shards: n, index: i };
}

/**
 * `--watch-label-selector` checked before anything starts (the apiserver would refuse a bad one
 * on every list); undefined when not given or blank (every ImageSync).
 */
export function checkSelector(selector?: string): string | undefined {
  try {
    return parseLabelSelector(selector ?? "").length > 0 ? selector!.trim() : undefined;
  } catch (err) {
    if (err instanceof InvalidLabelSelectorError) {
      throw new UsageError(`--watch-label-selector: ${err.message}`);
    }
    throw err;
  }
}

/** Runs `portager run` until a signal stops it; returns the exit code. */
export async function runCommand(args: string[]): Promise<number> {
  const { flags, positional } = parseArgs(args, FLAGS);
  if (flags.help) {
    console.log(HELP);
    return EXIT.ok;
  }
  if (positional.length > 0) throw new UsageError(`unexpected argument "${positional[0]}"`);
  const { level, format } = logSettings(flags);
  const leaseName = (flags["leader-election-id"] ?? flags["lease-name"]) as string | undefined;
  if (
    flags["leader-election-id"] !== undefined && flags["lease-name"] !== undefined &&
    flags["lease-name"] !== leaseName
  ) {
    throw new UsageError("--leader-election-id and --lease-name name the same Lease; give one");
  }
  const metricsAddr = flags["metrics-addr"] as string | undefined;
  const metricsBind = flags["metrics-bind-address"] as string | undefined;
  let probeBind = flags["health-probe-bind-address"] as string | undefined;
  for (
    const [flag, v] of [["--metrics-bind-address", metricsBind], ["--health-probe-bind-address", probeBind]]
  ) {
    if (metricsAddr !== undefined && v !== undefined) {
      throw new UsageError(
        `--metrics-addr (legacy, plain HTTP with the probes) and ${flag} exclude each other`,
      );
    }
  }
  // upstream's layout unless only the legacy --metrics-addr is given
  if (metricsAddr === undefined) probeBind ??= ":8081";
  for (
    const [flag, v] of [["--metrics-bind-address", metricsBind], ["--health-probe-bind-address", probeBind]]
  ) {
    if (v !== undefined && v !== "0") {
      try {
        parseListenAddress(v);
      } catch (err) {
        throw new UsageError(`${flag}: ${(err as Error).message}`);
      }
    }
  }
  const maxConcurrent = Number(flags["max-concurrent-syncs"]);
  if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1) {
    throw new UsageError(
      `--max-concurrent-syncs must be a whole number ≥ 1, got "${flags["max-concurrent-syncs"]}"`,
    );
  }
  const transfers = maxTransfers(flags);
  const shard = parseShard(flags.shards as string | undefined, flags["shard-index"] as string | undefined);
  if (shard && flags["leader-elect"] === false) {
    throw new UsageError("--shards needs leader election: each shard elects on its own Lease");
  }
  const allowedRegistries = flags["allowed-registries"] === undefined
    ? undefined
    : splitList([flags["allowed-registries"] as string]);
  if (allowedRegistries) {
    try {
      parseAllowedRegistries(allowedRegistries);
    } catch (err) {
      throw new UsageError(`--allowed-registries: ${(err as Error).message}`);
    }
  }
  const watchLabelSelector = checkSelector(flags["watch-label-selector"] as string | undefined);
  if (watchLabelSelector && flags["leader-elect"] === false) {
    throw new UsageError(
      "--watch-label-selector needs leader election: each selector elects on its own Lease",
    );
  }
  const gracePeriodMs = parseDuration(flags["grace-period"] as string, "--grace-period");
  const { limits, trustedRootPath } = await limitSettings(flags);
  const kubeconfig = flags.kubeconfig as string | undefined;
  if (!kubeconfig && !inCluster() && !(await defaultKubeconfigExists())) {
    console.error(
      "portager: no cluster found: not running in a pod, no --kubeconfig, no KUBECONFIG, no ~/.kube/config.\n" +
        "  Try it without a cluster:  deno task demo   (local apiserver + registries)\n" +
        "  or sync from files:        portager sync -f imagesync.yaml",
    );
    return EXIT.usage;
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
      maxTransfers: transfers,
      leaderElection: (flags["leader-elect"] as boolean | undefined) ??
        (inCluster() || shard !== undefined || watchLabelSelector !== undefined),
      shard,
      watchLabelSelector,
      leaseName,
      leaseNamespace: flags["lease-namespace"] as string | undefined,
      identity: `${Deno.hostname()}-${crypto.randomUUID().slice(0, 8)}`,
      metricsAddr,
      metricsBindAddress: metricsAddr === undefined ? metricsBind ?? "0" : undefined,
      healthProbeBindAddress: probeBind,
      metricsSecure: flags["metrics-secure"] as boolean,
      enableHttp2: flags["enable-http2"] as boolean,
      metricsCertPath: flags["metrics-cert-path"] as string | undefined,
      metricsCertName: flags["metrics-cert-name"] as string,
      metricsCertKey: flags["metrics-cert-key"] as string,
      allowCrossNamespaceRefs: flags["allow-cross-namespace-refs"] as boolean,
      cloudIdentityNamespaces: flags["cloud-identity-namespaces"] === undefined
        ? undefined
        : splitList([flags["cloud-identity-namespaces"] as string]),
      allowedRegistries,
      insecureRegistries: splitList(flags["insecure-registry"] as string[]),
      caCerts,
      syncLimits: limits,
      trustedRootPath,
      logger,
      signal: controller.signal,
      webhook: await webhookOptions(flags),
      gracePeriodMs,
    });
    return EXIT.ok;
  } catch (err) {
    // a kubeconfig that cannot be read or understood is the user's to fix: a message, not a trace
    if ((err as { reason?: unknown })?.reason === "KubeConfigInvalid") {
      console.error(`portager: ${(err as Error).message}`);
      return EXIT.usage;
    }
    throw err;
  } finally {
    Deno.removeSignalListener("SIGTERM", stop);
    Deno.removeSignalListener("SIGINT", stop);
  }
}
