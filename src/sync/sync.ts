/**
 * "Sync this ImageSync spec once": resolve each image's tags, compare digests, copy what
 * differs, and report per tag. Shared by the operator, `portager sync` and `portager serve`.
 *
 * - One {@linkcode Copier} per sync, so a blob shared by several tags moves once.
 * - A tag's failure is recorded in its result, never thrown; only a failure that stops the
 *   whole spec (its credentials cannot be obtained) throws {@linkcode SyncError}.
 * - Three steps: plan (`plan.ts`: repositories, tag resolution with its fallback, destination
 *   repositories) → run (`run.ts`: digests, gates, copies, a few tags at a time) → summarize
 *   (`result.ts`: the counts). This module only sets up the clients and wires them.
 * - Gates run on the source digest of a tag that needs a copy, before any blob moves
 *   (`gates.ts`, `validation.ts`, `src/gates`); a failing tag is not copied (an up-to-date tag
 *   stays synced without a gate, as upstream checks digests first).
 * - Dry run reads only: the plan per tag (would copy / up to date / would fail).
 * - `signal` stops starting new tags (the rest are reported as Aborted); `cancelInFlight`
 *   also aborts copies in progress.
 * - `limits` bound what the sync may cost (`options.ts`): past `syncTimeoutMs` both signals
 *   fire and, unless every tag finished anyway, the sync throws {@linkcode SyncError} with
 *   reason Timeout, so the caller's worker is free again.
 * @module
 */
import type { ImageSyncSpec, ImageSyncStatus } from "../api/mod.ts";
import { splitRegistry } from "../api/mod.ts";
import {
  Copier,
  type CopyProgress,
  type Credential,
  type CredentialResolver,
  type Limiter,
  normalizeRegistryHost,
  RegistryClient,
  type RetryEvent,
} from "../oci/mod.ts";
import type { RepositoryEnsurer } from "../credentials/mod.ts";
import { clientKey, type RegistryClientCache, reportRetry, withRetryHook } from "./client_cache.ts";
import type { SyncEvent } from "./events.ts";
import { enabledGates, type GateCheck } from "./gates.ts";
import { planSync } from "./plan.ts";
import { referrerCarrier } from "./referrers.ts";
import { validationCheck } from "./validation.ts";
import { formatDurationMs, type SyncLimits } from "./options.ts";
import { reasonOf, summarize, type SyncReport } from "./result.ts";
import { DEFAULT_TAG_CONCURRENCY, runTags, type TagJob } from "./run.ts";

/** Bytes moved by one tag's copy so far. */
export interface SyncProgress {
  /** The image. */
  image: string;
  /** The tag. */
  tag: string;
  /** Destination reference. */
  destination: string;
  /** Bytes moved so far by this tag's copy. */
  bytes: number;
  /** Bytes this copy plans to move, when known. */
  totalBytes?: number;
}

/** Options for {@linkcode syncImageSync}. */
export interface SyncOptions {
  /** Credentials for the source registry. */
  sourceCredentials: CredentialResolver;
  /** Credentials for the destination registry. */
  destinationCredentials: CredentialResolver;
  /** Creates missing destination repositories when the spec sets createDestinationRepos (ECR). */
  repositories?: RepositoryEnsurer;
  /** Plan only: read both registries, write nothing, create no repository. */
  dryRun?: boolean;
  /** Blob and manifest transfers in flight at once (default: the copier's `DEFAULT_CONCURRENCY`). */
  concurrency?: number;
  /**
   * The process's transfer budget, shared with the other syncs it runs at once: every copier
   * of this sync (one per platform filter, the referrers') holds one of its slots per blob or
   * manifest transfer, on top of `concurrency` (see `CopierOptions.budget`). Default none.
   */
  transferBudget?: Limiter;
  /** Tags worked on at once (default 4; the Copier counts a blob shared by tags once, dry run too). */
  tagConcurrency?: number;
  /** Copy only these platforms of multi-arch images. */
  platforms?: string[];
  /** Registries (host[:port]) that may be reached over plain HTTP besides loopback. */
  insecureRegistries?: string[];
  /** Extra trusted CA certificates (PEM). */
  caCerts?: string[];
  /** Per-request idle timeout (ms). */
  timeoutMs?: number;
  /** What the sync may cost: its deadline, request deadlines, transfer rate, manifest and tag caps. */
  limits?: SyncLimits;
  /** Attempts per registry request (default: the client's `DEFAULT_ATTEMPTS`). */
  maxAttempts?: number;
  /** User-Agent for registry requests. */
  userAgent?: string;
  /** Called before each registry request retry (metrics). */
  onRetry?: (e: RetryEvent) => void;
  /** The status of the previous sync: tags resolved then are reused when listing tags fails. */
  previous?: ImageSyncStatus;
  /**
   * The caller keeps each synced tag's digests in its status and passes it as `previous` (the
   * operator): a tag it has no record of is taken as new at the destination, so its source
   * manifest is read with one GET rather than a HEAD and then a GET (never for Docker Hub).
   */
  tagsRecorded?: boolean;
  /** Receives events as the sync goes. */
  onEvent?: (e: SyncEvent) => void;
  /** Receives byte progress of copies. */
  onProgress?: (e: SyncProgress) => void;
  /** Stops starting new tags (checked between tags). */
  signal?: AbortSignal;
  /** Aborts copies in progress. */
  cancelInFlight?: AbortSignal;
  /** Clock (for lastSyncTime). */
  now?: () => Date;
  /**
   * Runs the validation gates on the source digest of a tag that needs a copy, before any blob
   * moves; default: the spec's `validation` gates (`src/gates`) against the source registry.
   */
  checkGates?: GateCheck;
  /** A parsed Sigstore `trusted_root.json` for keyless checks (default: the public-good root). */
  trustedRoot?: unknown;
  /**
   * A Sigstore `trusted_root.json` file for keyless checks (a flag's value); default: the file
   * named by PORTAGER_SIGSTORE_TRUSTED_ROOT, else the public-good root.
   */
  trustedRootPath?: string;
  /** Use these clients instead of creating them (they are not closed). */
  clients?: { source: RegistryClient; destination: RegistryClient };
  /**
   * Share registry clients with other syncs of this process (same registry, same resolved
   * credential, same settings) for a short while instead of creating two per sync; retries
   * are still reported to this sync's `onRetry`.
   */
  clientCache?: RegistryClientCache;
}

/** A failure that stops the whole sync before any tag; `reason` is the condition reason (AuthFailed). */
export class SyncError extends Error {
  /** Stable reason, e.g. AuthFailed. */
  readonly reason: string;

  /** Creates the error. */
  constructor(reason: string, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "SyncError";
    this.reason = reason;
  }
}

/** The host credentials are looked up for: Docker Hub by its one name, `docker.io`. */
function credentialHost(registry: string): string {
  return normalizeRegistryHost(splitRegistry(registry).host);
}

/** The credential for the spec's registry, resolved now: a failure stops the sync with AuthFailed. */
async function preflight(
  resolver: CredentialResolver,
  registry: string,
  role: string,
): Promise<{ host: string; credential: Credential | undefined }> {
  const host = credentialHost(registry);
  try {
    return { host, credential: await resolver.resolve(host) };
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw new SyncError(
      reasonOf(e, "AuthFailed"),
      message || `cannot get credentials for the ${role} registry ${host}`,
      e,
    );
  }
}

/**
 * Syncs every image and tag of `spec` once: plan → run → summarize. Per-tag failures are in
 * the report; throws {@linkcode SyncError} only when the spec's credentials cannot be
 * obtained at all.
 */
export function syncImageSync(spec: ImageSyncSpec, opts: SyncOptions): Promise<SyncReport> {
  // a shared client reports a retry to the sync whose call chain made the request
  return opts.clientCache ? withRetryHook(opts.onRetry, () => syncOnce(spec, opts)) : syncOnce(spec, opts);
}

async function syncOnce(spec: ImageSyncSpec, opts: SyncOptions): Promise<SyncReport> {
  const now = opts.now ?? (() => new Date());
  const startedAt = now().toISOString();
  const dryRun = opts.dryRun ?? false;
  const emit = (e: SyncEvent) => opts.onEvent?.(e);

  const resolved = {
    source: await preflight(opts.sourceCredentials, spec.source.registry, "source"),
    destination: await preflight(opts.destinationCredentials, spec.destination.registry, "destination"),
  };

  const deadline = syncDeadline(opts);
  const signal = deadline.signal;
  const cancelInFlight = deadline.cancelInFlight;
  const { source, destination, close } = registryClients(opts, resolved);
  // copier progress is per destination reference; the run step says which tag it is
  const copying = new Map<string, TagJob>();
  const onProgress = opts.onProgress;
  const copierOptions = {
    concurrency: opts.concurrency,
    budget: opts.transferBudget,
    maxManifests: opts.limits?.maxManifests,
    maxManifestBytes: opts.limits?.maxManifestBytes,
    onProgress: onProgress &&
      ((p: CopyProgress) => {
        const job = copying.get(p.ref);
        if (job) {
          onProgress({
            image: job.image,
            tag: job.tag,
            destination: p.ref,
            bytes: p.bytes,
            totalBytes: p.totalBytes,
          });
        }
      }),
  };
  // one Copier per platform filter, so a blob shared by tags under one filter moves once
  const copiers = new Map<string, Copier>();
  const copierFor = (job: TagJob) => {
    const platforms = job.platforms ?? opts.platforms ?? [];
    const key = [...platforms].sort().join(",");
    let copier = copiers.get(key);
    if (!copier) {
      copier = new Copier({ source, destination }, { ...copierOptions, platforms });
      copiers.set(key, copier);
    }
    return copier;
  };
  try {
    const plan = await planSync(spec, {
      listTags: (repository) => source.listTags(repository, { signal: cancelInFlight }),
      previous: opts.previous,
      repositories: opts.repositories,
      dryRun,
      now,
      emit,
    });
    // a destination repository's reads ask the push scope its copy needs: one token, not two
    if (!dryRun) { for (const job of plan.jobs) destination.willPush(job.destination); }
    const { aborted } = await runTags(plan.jobs, {
      copierFor,
      overwrite: spec.destination.overwrite,
      source,
      destination,
      gates: enabledGates(spec),
      checkGates: opts.checkGates ??
        validationCheck(source, spec.validation ?? {}, {
          trustedRoot: opts.trustedRoot,
          trustedRootPath: opts.trustedRootPath,
        }),
      carryReferrers: spec.copyReferrers?.enabled
        ? referrerCarrier({ source, destination }, spec.copyReferrers, {
          dryRun,
          concurrency: opts.concurrency,
          budget: opts.transferBudget,
          emit,
        })
        : undefined,
      dryRun,
      tagConcurrency: opts.tagConcurrency ?? DEFAULT_TAG_CONCURRENCY,
      tagsRecorded: opts.tagsRecorded,
      now,
      emit,
      signal,
      cancelInFlight,
      onCopy: (job, active) => {
        if (active) copying.set(job.destination.toString(), job);
        else copying.delete(job.destination.toString());
      },
    });
    const report = summarize(plan.images, { dryRun, aborted, startedAt, finishedAt: now().toISOString() });
    if (deadline.expired() && !report.ok) throw deadline.error(report);
    return report;
  } catch (e) {
    if (deadline.expired() && !(e instanceof SyncError && e.reason === "Timeout")) throw deadline.error();
    throw e;
  } finally {
    deadline.clear();
    close();
  }
}

/** The sync's signals with its deadline (`limits.syncTimeoutMs`) folded in. */
function syncDeadline(opts: SyncOptions): {
  signal?: AbortSignal;
  cancelInFlight?: AbortSignal;
  expired(): boolean;
  error(report?: SyncReport): SyncError;
  clear(): void;
} {
  const ms = opts.limits?.syncTimeoutMs ?? 0;
  if (!(ms > 0)) {
    return {
      signal: opts.signal,
      cancelInFlight: opts.cancelInFlight,
      expired: () => false,
      error: () => new SyncError("Timeout", "the sync timed out"),
      clear: () => {},
    };
  }
  const timer = new AbortController();
  const handle = setTimeout(
    () => timer.abort(new DOMException(`the sync deadline of ${ms} ms passed`, "TimeoutError")),
    ms,
  );
  const join = (s?: AbortSignal) => s ? AbortSignal.any([s, timer.signal]) : timer.signal;
  return {
    signal: join(opts.signal),
    cancelInFlight: join(opts.cancelInFlight),
    // a shutdown that came first is the caller's to report (Interrupted), not a timeout
    expired: () => timer.signal.aborted && !opts.signal?.aborted && !opts.cancelInFlight?.aborted,
    error: (report) =>
      new SyncError(
        "Timeout",
        `the sync did not finish within ${formatDurationMs(ms)} (the sync timeout, --sync-timeout)` +
          (report
            ? `: ${report.syncedImages} of ${report.totalImages} tag(s) synced before it was stopped`
            : "") +
          "; the next sync continues from there (raise --sync-timeout, or split the ImageSync)",
      ),
    clear: () => clearTimeout(handle),
  };
}

/** The caller's clients, shared ones from `opts.clientCache`, or two new ones; `close` ends this sync's use. */
function registryClients(
  opts: SyncOptions,
  resolved: Record<"source" | "destination", { host: string; credential: Credential | undefined }>,
): {
  source: RegistryClient;
  destination: RegistryClient;
  close: () => void;
} {
  if (opts.clients) return { ...opts.clients, close: () => {} };
  const settings = {
    insecureRegistries: opts.insecureRegistries,
    caCerts: opts.caCerts,
    timeoutMs: opts.timeoutMs,
    maxAttempts: opts.maxAttempts,
    userAgent: opts.userAgent,
    requestDeadlineMs: opts.limits?.requestDeadlineMs,
    minBytesPerSecond: opts.limits?.minBytesPerSecond,
    maxTags: opts.limits?.maxTags,
  };
  const cache = opts.clientCache;
  if (cache) {
    // the shared client answers the credential this sync resolved, for its registry alone:
    // the key says whose it is, and no other host gets it
    const lease = ({ host, credential }: { host: string; credential: Credential | undefined }) =>
      cache.acquire(clientKey({ host, credential, settings }), () =>
        new RegistryClient({
          ...settings,
          onRetry: reportRetry,
          credentials: {
            resolve: (h) => Promise.resolve(normalizeRegistryHost(h) === host ? credential : undefined),
          },
        }));
    const src = lease(resolved.source);
    const dst = lease(resolved.destination);
    return {
      source: src.client,
      destination: dst.client,
      close: () => {
        src.release();
        dst.release();
      },
    };
  }
  const options = { ...settings, onRetry: opts.onRetry };
  const source = new RegistryClient({ ...options, credentials: opts.sourceCredentials });
  const destination = new RegistryClient({ ...options, credentials: opts.destinationCredentials });
  return {
    source,
    destination,
    close: () => {
      source.close();
      destination.close();
    },
  };
}
