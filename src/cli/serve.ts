/**
 * `portager serve -f DIR`: keep the ImageSyncs in a folder (or files) on their schedules with
 * no cluster — wiring only: the manager (src/controller) over the file store
 * (src/filestore), exactly as `run` is the manager over the apiserver. So the decisions are
 * the operator's: a new or changed spec syncs now, otherwise the schedule decides from
 * nextSyncTime, which advances only on success; failures retry with backoff; a sync cut
 * short by a kill resumes on restart. `/metrics`, `/healthz` and `/readyz` as the operator.
 * @module
 */
import { Manager } from "../controller/manager.ts";
import { defaultStatePath, FileStore, readState, StateFileError } from "../filestore/mod.ts";
import { createLogger, parseLogFormat } from "../log/mod.ts";
import { type FlagSpec, formatFlags, parseArgs, UsageError } from "./args.ts";
import { WEBHOOK_FLAGS, webhookOptions } from "./webhook.ts";
import { parseDuration } from "./common.ts";
import { formatLoadProblem, loadImageSyncs } from "./load.ts";
import { commonFlags, commonSettings, logLevelFlag } from "./sync.ts";
import { DEFAULT_SYNC_TIMEOUT, limitFlags, MAX_TRANSFERS_FLAG, maxTransfers } from "./limits.ts";
import { DEFAULT_CONCURRENCY, preloadStreamingHash } from "../oci/mod.ts";

/**
 * `portager serve`'s flags. Its `--concurrency` default stays the copier's (4), as the operator's:
 * `--max-concurrent-syncs` syncs run at once, each with its own transfers, so the process's peak
 * follows their product (docs/DEPLOY.md).
 */
export const SERVE_FLAGS: FlagSpec[] = [
  {
    name: "file",
    short: "f",
    type: "string",
    multiple: true,
    help: "folder of ImageSync *.yaml/*.yml/*.json files, or a file (repeatable); watched for changes",
  },
  ...commonFlags({ concurrency: DEFAULT_CONCURRENCY }),
  ...limitFlags({ syncTimeout: DEFAULT_SYNC_TIMEOUT }),
  {
    name: "state-file",
    type: "string",
    env: "PORTAGER_STATE_FILE",
    help: "where last results are kept across restarts (default $XDG_STATE_HOME/portager/state.json, " +
      "else ./.portager-state.json)",
  },
  {
    name: "metrics-addr",
    type: "string",
    env: "METRICS_ADDR",
    default: ":8080",
    help: "listen address for /metrics, /healthz, /readyz (port 0 picks a free one)",
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
    name: "grace-period",
    type: "string",
    env: "GRACE_PERIOD",
    default: "30s",
    help: "how long in-flight syncs may finish after SIGINT/SIGTERM",
  },
  { name: "log-format", type: "string", env: "LOG_FORMAT", default: "text", help: "text or json (stderr)" },
  {
    name: "log-level",
    type: "string",
    env: "LOG_LEVEL",
    default: "info",
    help: "debug, info, warn or error",
  },
  ...WEBHOOK_FLAGS,
  { name: "help", short: "h", type: "boolean", help: "show this help" },
];

const HELP = `Usage: portager serve -f DIR [flags]

Keeps every ImageSync in DIR (*.yaml, *.yml, *.json; or the files named) on its schedule, with
no cluster, deciding like the operator: a new or changed spec syncs now; otherwise the schedule
decides (cron or "@every <duration>"); nextSyncTime advances only on success and failures retry
with backoff. DIR is watched: an edited file resyncs, a removed one is dropped, and a file with
problems is reported while its last good version keeps running. Last results live in a state
file, so a restart does not sync again what is not due. SIGINT/SIGTERM stop gracefully.

Flags:
${formatFlags(SERVE_FLAGS)}

Examples:
  portager serve -f ./imagesyncs/ --metrics-addr 127.0.0.1:9090
  portager serve -f ./imagesyncs/ --secret dst-creds=./dst-secret.yaml --state-file /var/lib/portager/state.json
  curl -s localhost:8080/metrics | grep portage_sync_total`;

/** Runs `portager serve` until SIGINT/SIGTERM; returns the exit code. */
export async function serveCommand(args: string[]): Promise<number> {
  const { flags, positional } = parseArgs(args, SERVE_FLAGS);
  if (flags.help) {
    console.log(HELP);
    return 0;
  }
  if (positional.length > 0) {
    throw new UsageError(`unexpected argument "${positional[0]}" (folders go after -f: -f ${positional[0]})`);
  }
  const level = logLevelFlag(flags["log-level"]);
  let format;
  try {
    format = parseLogFormat(flags["log-format"] as string);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const settings = await commonSettings(flags, "serve");
  if (settings.files.includes("-")) throw new UsageError("serve reads folders and files, not standard input");
  const workers = Number(flags["max-concurrent-syncs"]);
  if (!Number.isInteger(workers) || workers < 1) {
    throw new UsageError(
      `--max-concurrent-syncs must be a whole number ≥ 1, got "${flags["max-concurrent-syncs"]}"`,
    );
  }
  const transfers = maxTransfers(flags);
  const gracePeriodMs = parseDuration(flags["grace-period"] as string, "--grace-period");
  const statePath = (flags["state-file"] as string | undefined) || defaultStatePath();
  for (const path of settings.files) {
    try {
      await Deno.stat(path);
    } catch (err) {
      throw new UsageError(`cannot read ${path}: ${(err as Error).message}`);
    }
  }
  let state;
  try {
    state = await readState(statePath);
  } catch (err) {
    if (err instanceof StateFileError) {
      console.error(`portager: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const log = createLogger({ level, format });
  const dir = statePath.includes("/") ? statePath.slice(0, statePath.lastIndexOf("/")) || "/" : ".";
  const persist = (await Deno.permissions.query({ name: "write", path: dir })).state === "granted";
  if (!persist) {
    // e.g. a binary compiled without --allow-write: keep serving, remember in memory only
    log.warn(
      "no permission to write the state file; results are kept in memory only and a restart will " +
        "sync what it cannot tell is done (run with --allow-write)",
      { path: statePath },
    );
  }
  const secrets = settings.credentials.secretSource();
  const store = new FileStore({
    files: settings.files,
    load: async (files) => {
      const r = await loadImageSyncs(files, { allowEmptyFolders: true });
      return {
        imageSyncs: r.imageSyncs,
        problems: r.problems.map((p) => ({ file: p.file, message: formatLoadProblem(p) })),
      };
    },
    statePath,
    state,
    persist,
    loadSecret: secrets.loadSecret,
    fallbackCredentials: secrets.fallback,
    logger: log,
  });
  // A long-running process: every blob streams (see runOperator).
  await preloadStreamingHash();
  const manager = new Manager({
    store,
    source: store,
    logger: log,
    workers,
    gracePeriodMs,
    sync: {
      insecureRegistries: settings.insecureRegistries,
      caCerts: settings.caCerts,
      concurrency: settings.concurrency,
      maxTransfers: transfers,
      userAgent: "portager-serve",
      allowCrossNamespaceRefs: secrets.allowCrossNamespaceRefs,
      limits: settings.limits,
      trustedRootPath: settings.trustedRootPath,
    },
    http: { metricsAddr: flags["metrics-addr"] as string },
    webhook: await webhookOptions(flags),
  });
  const stopped = new AbortController();
  const stop = () => stopped.abort();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  try {
    log.info("starting portager serve", { files: settings.files, workers });
    await manager.run(stopped.signal);
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
  }
  log.info("stopped");
  return 0;
}
