/**
 * `portager sync -f PATH`: run the ImageSync(s) in a file, folder or standard input once,
 * with no cluster. Every input problem is reported before anything runs; `--dry-run` prints
 * the plan (up to date / would copy with bytes and blobs / would fail) and writes nothing.
 *
 * Exit codes: 0 all tags synced or up to date (dry run: the plan was computed, even if it
 * would copy), 1 some tags failed (dry run: would fail), 2 bad input.
 * @module
 */
import { createLogger, type Logger, parseLogLevel } from "../log/mod.ts";
import {
  eventMessage,
  imageRepositories,
  listsSourceTags,
  mergeTags,
  type SyncEvent,
  syncImageSync,
  type SyncReport,
} from "../sync/mod.ts";
import { type FlagSpec, formatFlags, parseArgs, UsageError } from "./args.ts";
import { type FileCredentials, loadFileCredentials } from "./auth.ts";
import { readCaFiles, splitList } from "./common.ts";
import { limitFlags, limitSettings } from "./limits.ts";
import { Limiter } from "../oci/mod.ts";
import type { SyncLimits } from "../sync/options.ts";
import { EXIT } from "./mod.ts";
import { formatLoadProblem, type LoadedImageSync, loadImageSyncs, type LoadProblem } from "./load.ts";
import {
  countTags,
  formatSummary,
  imageOfRef,
  plain,
  Progress,
  type SummaryRow,
  type TagLine,
} from "./progress.ts";

/**
 * `sync -f`'s default `--concurrency`: blob and manifest transfers in flight at once. A one-shot
 * copy runs one ImageSync at a time, so its transfers are the process's; 8 fills the gaps one
 * transfer's round trips leave (B1 40 × 1 MiB cold copy 3–5 % sooner than at 4, same CPU; 16 was
 * slower) and costs ≤ 1–2 MiB of buffers per transfer (peak +7.5 MiB there). `serve` and the operator, which run several syncs at
 * once, keep the copier's `DEFAULT_CONCURRENCY`, 4 (docs/DEPLOY.md, memory).
 */
export const SYNC_CONCURRENCY = 8;

/** Flags shared by `sync` and `serve`, with the command's `--concurrency` default. */
export function commonFlags(options: { concurrency: number }): FlagSpec[] {
  return [
    {
      name: "authfile",
      type: "string",
      env: "REGISTRY_AUTH_FILE",
      help:
        "Docker config with registry credentials (default $DOCKER_CONFIG/config.json, ~/.docker/config.json)",
    },
    {
      name: "secret",
      type: "string",
      multiple: true,
      help:
        "NAME=PATH: a dockerconfigjson Secret manifest or Docker config standing in for secretRef NAME (repeatable)",
    },
    {
      name: "concurrency",
      type: "string",
      env: "PORTAGER_CONCURRENCY",
      default: String(options.concurrency),
      help: "blob and manifest transfers in flight at once per ImageSync",
    },
    {
      name: "insecure-registry",
      type: "string",
      multiple: true,
      env: "INSECURE_REGISTRIES",
      help: "registry host allowed over plain HTTP (repeatable or comma list; loopback always is)",
    },
    {
      name: "ca-file",
      type: "string",
      multiple: true,
      help: "extra CA bundle (PEM) trusted for registries (repeatable)",
    },
  ];
}

/** `portager sync`'s flags. */
export const SYNC_FLAGS: FlagSpec[] = [
  {
    name: "file",
    short: "f",
    type: "string",
    multiple: true,
    help: "ImageSync YAML/JSON file, folder of them, or - for standard input (repeatable)",
  },
  ...commonFlags({ concurrency: SYNC_CONCURRENCY }),
  ...limitFlags(),
  {
    name: "dry-run",
    type: "boolean",
    help: "print the plan per tag; read only, write nothing to any registry",
  },
  {
    name: "output",
    short: "o",
    type: "string",
    default: "text",
    help: "text or json (one JSON document on stdout)",
  },
  {
    name: "log-level",
    type: "string",
    env: "LOG_LEVEL",
    default: "warn",
    help: "debug, info, warn or error (stderr)",
  },
  { name: "help", short: "h", type: "boolean", help: "show this help" },
];

const HELP = `Usage: portager sync -f PATH [flags]

Runs the ImageSync(s) in PATH once, with no cluster: a file (several YAML documents allowed),
a folder of *.yaml/*.yml/*.json files, or - for standard input. Every input problem is listed
before anything runs. Credentials come from Docker's config; --secret NAME=PATH stands in for
a Secret the spec names; auth method ecr uses the AWS credential chain.

Flags:
${formatFlags(SYNC_FLAGS)}

Exit codes: 0 all tags synced or up to date (--dry-run: plan computed), 1 some tags failed
(--dry-run: would fail), 2 bad input (invalid file, unreadable file, bad flags).

Examples:
  portager sync -f mirror.yaml --dry-run          # what would be copied, writing nothing
  portager sync -f mirror.yaml                    # copy now, live progress on a terminal
  portager sync -f imagesyncs/ --output json      # a folder, machine-readable result
  portager sync -f mirror.yaml --secret dst-creds=./dst-secret.yaml --authfile ./auth.json
  kubectl get imagesync mirror -o yaml | portager sync -f - --dry-run`;

/** Parsed flag values shared by `sync` and `serve`. */
export interface CommonSettings {
  files: string[];
  concurrency: number;
  insecureRegistries: string[];
  caCerts: string[];
  credentials: FileCredentials;
  /** The limit flags (`limits.ts`): deadlines, transfer rate, manifest and tag caps. */
  limits: SyncLimits;
  /** `--sigstore-trusted-root`. */
  trustedRootPath?: string;
}

/**
 * Reads the shared flags (and the limit flags, which each command lists with its own
 * `--sync-timeout` default); bad values and unreadable files are UsageErrors.
 */
export async function commonSettings(
  flags: Record<string, unknown>,
  command: string,
  options: { env?: (name: string) => string | undefined } = {},
): Promise<CommonSettings> {
  const files = (flags.file as string[] | undefined) ?? [];
  if (files.length === 0) throw new UsageError(`${command} needs -f PATH (a file, a folder, or - for stdin)`);
  const concurrency = Number(flags.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new UsageError(`--concurrency must be a whole number ≥ 1, got "${flags.concurrency}"`);
  }
  return {
    files,
    concurrency,
    insecureRegistries: splitList(flags["insecure-registry"] as string[]),
    caCerts: await readCaFiles(flags["ca-file"] as string[]),
    ...await limitSettings(flags),
    credentials: await loadFileCredentials({
      authfile: flags.authfile as string | undefined,
      secrets: flags.secret as string[],
      env: options.env,
    }),
  };
}

/** Parses `--log-level`; a bad value is a UsageError. */
export function logLevelFlag(value: unknown): ReturnType<typeof parseLogLevel> {
  try {
    return parseLogLevel(String(value));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** One ImageSync's outcome in `--output json`. */
export interface SyncOutcomeJson {
  name: string;
  namespace: string;
  file: string;
  /** Set when the ImageSync failed as a whole (credentials, cancelled). */
  error?: string;
  reason?: string;
  report?: SyncReport;
}

function problemJson(p: LoadProblem): Record<string, unknown> {
  return { ...p, text: formatLoadProblem(p) };
}

function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

/** The per-tag events of a sync as a display line (undefined for other events). */
export function tagLineOf(
  e: SyncEvent,
): { source: string; destination: string; result: TagLine } | undefined {
  switch (e.type) {
    case "ImageSynced":
      return {
        source: e.source,
        destination: e.destination,
        result: {
          tag: e.tag,
          action: e.dryRun ? "would-copy" : "copied",
          sourceDigest: e.digest,
          bytesMoved: e.bytesMoved,
        },
      };
    case "ImageSkipped":
      return {
        source: e.source,
        destination: e.destination,
        result: { tag: e.tag, action: "up-to-date", sourceDigest: e.digest },
      };
    case "SyncFailed":
      return {
        source: e.source,
        destination: e.destination,
        result: { tag: e.tag, action: "failed", reason: e.reason, error: e.error },
      };
    case "ValidationFailed":
      return {
        source: e.source,
        destination: e.destination,
        result: {
          tag: e.tag,
          action: "failed",
          reason: "ValidationFailed",
          error: `validation failed: ${e.validationError}`,
        },
      };
    case "TagConflict":
      return {
        source: e.source,
        destination: e.destination,
        result: { tag: e.tag, action: "failed", reason: "TagConflict", error: eventMessage(e) },
      };
    default:
      return undefined;
  }
}

/** Runs one ImageSync through src/sync, reporting each finished tag to the display. */
async function runOne(
  item: LoadedImageSync,
  settings: CommonSettings,
  options: { dryRun: boolean; progress?: Progress; signal: AbortSignal; cancel: AbortSignal; logger: Logger },
): Promise<SyncOutcomeJson> {
  const { metadata, spec } = item.object;
  const namespace = metadata.namespace || "default";
  const label = metadata.name;
  const out: SyncOutcomeJson = { name: metadata.name, namespace, file: item.file };
  const printed = new Set<string>();
  const progress = options.progress;
  try {
    const creds = await settings.credentials.forSpec(spec, namespace);
    // announce each image with its explicit tags; semver images get their count once resolved
    const destinations = new Map<string, string>();
    for (const image of spec.images) {
      let dst: string;
      try {
        dst = imageRepositories(spec, image).destination.name;
      } catch {
        continue; // the sync reports the bad reference on each of its tags
      }
      destinations.set(image.name, dst);
      if (!listsSourceTags(image)) progress?.image(label, dst, mergeTags(image.tags ?? [], []).length);
    }
    const report = await syncImageSync(spec, {
      sourceCredentials: creds.source,
      destinationCredentials: creds.destination,
      repositories: creds.repositories,
      dryRun: options.dryRun,
      concurrency: settings.concurrency,
      // ImageSyncs run one after another: the sync's copiers (one per platform filter, the
      // referrers') share --concurrency, the process's transfers
      transferBudget: new Limiter(settings.concurrency),
      insecureRegistries: settings.insecureRegistries,
      caCerts: settings.caCerts,
      limits: settings.limits,
      trustedRootPath: settings.trustedRootPath,
      signal: options.signal,
      cancelInFlight: options.cancel,
      onProgress: (e) =>
        progress?.bytes(label, { ref: e.destination, bytes: e.bytes, totalBytes: e.totalBytes }),
      onEvent: (e) => {
        if (e.type === "TagsResolved") {
          const image = spec.images.find((i) => i.name === e.image);
          const dst = image && destinations.get(image.name);
          if (image && dst) progress?.image(label, dst, mergeTags(image.tags ?? [], e.tags).length);
          return;
        }
        const line = tagLineOf(e);
        if (line) {
          const image = {
            sourceRepository: imageOfRef(line.source),
            destinationRepository: imageOfRef(line.destination),
          };
          printed.add(line.destination);
          progress?.tag(label, image, line.result);
          return;
        }
        options.logger.info(eventMessage(e), { imagesync: item.key, reason: e.type });
      },
    });
    // tags the events did not announce (so the output never misses one)
    for (const img of report.images) {
      for (const t of img.tags) {
        if (!printed.has(t.destination)) progress?.tag(label, img, t);
      }
    }
    out.report = report;
  } catch (err) {
    out.error = (err as Error).message;
    out.reason = (err as { reason?: string }).reason ?? "SyncFailed";
    progress?.line(`FAILED      ${label}  ${out.reason}: ${out.error}`);
    options.logger.debug("ImageSync failed", { imagesync: item.key, error: err });
  }
  return out;
}

/** Runs `portager sync`; returns the exit code. */
export async function syncCommand(args: string[]): Promise<number> {
  const { flags, positional } = parseArgs(args, SYNC_FLAGS);
  if (flags.help) {
    console.log(HELP);
    return EXIT.ok;
  }
  if (positional.length > 0) {
    throw new UsageError(`unexpected argument "${positional[0]}" (files go after -f: -f ${positional[0]})`);
  }
  const output = flags.output as string;
  if (output !== "text" && output !== "json") {
    throw new UsageError(`--output must be text or json, got "${output}"`);
  }
  const logger = createLogger({ level: logLevelFlag(flags["log-level"]), format: "text" });
  const dryRun = flags["dry-run"] === true;
  const settings = await commonSettings(flags, "sync");

  const loaded = await loadImageSyncs(settings.files);
  if (loaded.problems.length > 0) {
    const n = loaded.problems.length;
    console.error(`portager: ${n} problem${n === 1 ? "" : "s"} in the input; nothing was synced:`);
    for (const p of loaded.problems) console.error(`  ${plain(formatLoadProblem(p))}`);
    if (output === "json") printJson({ ok: false, dryRun, problems: loaded.problems.map(problemJson) });
    return EXIT.usage;
  }

  const tty = output === "text" && Deno.stdout.isTerminal();
  const progress = output === "text" ? new Progress({ tty, dryRun }) : undefined;
  // the first Ctrl-C starts no new tag; the second also cuts copies in flight
  const abort = new AbortController();
  const cancel = new AbortController();
  const stop = () => {
    if (abort.signal.aborted) {
      cancel.abort(new Error("interrupted"));
      return;
    }
    abort.abort(new Error("interrupted"));
    progress?.line("interrupted: finishing the tags in flight (press Ctrl-C again to stop them too)");
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  const started = performance.now();
  const outcomes: SyncOutcomeJson[] = [];
  try {
    if (dryRun && progress) progress.line("dry run: reading only, nothing is written to any registry");
    for (const item of loaded.imageSyncs) {
      if (abort.signal.aborted) break;
      outcomes.push(
        await runOne(item, settings, {
          dryRun,
          progress,
          signal: abort.signal,
          cancel: cancel.signal,
          logger,
        }),
      );
    }
  } finally {
    progress?.close();
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
  }
  const seconds = (performance.now() - started) / 1000;
  const rows: SummaryRow[] = outcomes.map((o) => ({
    imageSync: o.name,
    images: o.report?.images ?? [],
    error: o.error ? `${o.reason}: ${o.error}` : undefined,
  }));
  const totals = countTags(rows.flatMap((r) => r.images));
  const failed = totals.failed > 0 || outcomes.some((o) => o.error) || abort.signal.aborted;
  if (output === "json") {
    printJson({
      ok: !failed,
      dryRun,
      interrupted: abort.signal.aborted || undefined,
      imageSyncs: outcomes,
      totals: { ...totals, seconds: Math.round(seconds * 1000) / 1000 },
    });
  } else {
    console.log("");
    console.log(formatSummary(rows, { dryRun, seconds }));
    if (abort.signal.aborted) console.log("interrupted");
  }
  return failed ? EXIT.failed : EXIT.ok;
}
