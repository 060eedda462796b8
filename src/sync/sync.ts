/**
 * "Sync this ImageSync spec once": resolve each image's tags, compare digests, copy what
 * differs, and report per tag. Shared by the operator, `portager sync` and `portager serve`.
 *
 * - One {@linkcode Copier} per sync, so a blob shared by several tags moves once.
 * - A tag's failure is recorded in its result, never thrown; only a failure that stops the
 *   whole spec (its credentials cannot be obtained) throws {@linkcode SyncError}.
 * - Until the validation gates exist, a tag that would be copied while a gate is enabled
 *   fails with reason ValidationUnavailable (an up-to-date tag stays synced, as upstream
 *   checks digests before the gates).
 * - Dry run reads only: the plan per tag (would copy / up to date / would fail).
 * - `signal` stops starting new tags (the rest are reported as Aborted); `cancelInFlight`
 *   also aborts copies in progress.
 * @module
 */
import type { ImageSpec, ImageSyncSpec, ImageSyncStatus } from "../api/mod.ts";
import { matchingTags, splitRegistry } from "../api/mod.ts";
import {
  Copier,
  type CopyProgress,
  type CredentialResolver,
  type Reference,
  RegistryClient,
  type RetryEvent,
} from "../oci/mod.ts";
import type { RepositoryEnsurer } from "../credentials/mod.ts";
import { formatBytes, shortDigest, type SyncEvent } from "./events.ts";
import { type ImageRepositories, imageRepositories } from "./naming.ts";
import { resolveImageTags } from "./tags.ts";

/** What happened (or, in a dry run, would happen) to one tag. */
export type TagAction = "copied" | "up-to-date" | "would-copy" | "failed";

/** The result of one tag. */
export interface TagResult {
  /** The tag. */
  tag: string;
  /** True when the destination has the tag at the source's digest (copied or up to date). */
  synced: boolean;
  /** What happened. */
  action: TagAction;
  /** Source manifest digest, when known. */
  sourceDigest?: string;
  /** Why it failed (or would fail). */
  error?: string;
  /** Stable failure reason: NotFound, Unauthorized, DigestMismatch, ValidationUnavailable, Aborted, … */
  reason?: string;
  /** Source reference. */
  source: string;
  /** Destination reference. */
  destination: string;
  /** Blob bytes moved (planned in a dry run). */
  bytesMoved: number;
  /** Blobs streamed (or to stream). */
  blobsCopied: number;
  /** Blobs mounted from another repository (or to mount). */
  blobsMounted: number;
  /** Blobs already present. */
  blobsSkipped: number;
  /** When the tag was checked or copied (ISO 8601), absent for tags not attempted. */
  lastSyncTime?: string;
  /** Whether the validation gates passed (only set when a gate is enabled). */
  verified?: boolean;
  /** Why a validation gate failed. */
  validationError?: string;
}

/** The result of one image (one `images[]` entry). */
export interface ImageResult {
  /** `images[].name`. */
  name: string;
  /** Source repository, e.g. `docker.io/library/nginx`. */
  sourceRepository: string;
  /** Destination repository, e.g. `registry.example.com/mirror/nginx`. */
  destinationRepository: string;
  /** Per-tag results in resolution order (explicit tags, then semver matches newest first). */
  tags: TagResult[];
  /** Semver resolution, when the image has a constraint. */
  semver?: {
    /** The constraint. */
    constraint: string;
    /** Matches kept. */
    matched: string[];
    /** Set when listing tags (or the constraint) failed; `matched` then comes from `previous`. */
    error?: { reason: string; message: string };
  };
  /** Set when the destination repository could not be created (all tags then fail). */
  repositoryError?: { reason: string; message: string };
}

/** The outcome of a whole sync. */
export interface SyncReport {
  /** Per-image results, in spec order. */
  images: ImageResult[];
  /** Tags considered (upstream's totalImages: image+tag combinations). */
  totalImages: number;
  /** Tags copied or already up to date. */
  syncedImages: number;
  /** Tags that failed (would fail, in a dry run). */
  failedImages: number;
  /** Tags copied (would be copied, in a dry run). */
  copiedImages: number;
  /** Tags already up to date. */
  upToDateImages: number;
  /** Images whose semver tags could not be resolved. */
  resolutionFailures: number;
  /** Blob bytes moved (planned, in a dry run). */
  bytesMoved: number;
  /** Blobs streamed. */
  blobsCopied: number;
  /** Blobs mounted. */
  blobsMounted: number;
  /** Blobs already present. */
  blobsSkipped: number;
  /** True when no tag failed and every semver resolution worked: Ready=True. */
  ok: boolean;
  /** Whether this was a dry run. */
  dryRun: boolean;
  /** Whether `signal` stopped the sync before every tag was attempted. */
  aborted: boolean;
  /** When the sync started (ISO 8601). */
  startedAt: string;
  /** When it finished (ISO 8601). */
  finishedAt: string;
}

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
  /** Blob and manifest transfers in flight at once (default 4). */
  concurrency?: number;
  /** Tags worked on at once (default 4; 1 in a dry run, so the plan counts shared blobs once). */
  tagConcurrency?: number;
  /** Copy only these platforms of multi-arch images. */
  platforms?: string[];
  /** Registries (host[:port]) that may be reached over plain HTTP besides loopback. */
  insecureRegistries?: string[];
  /** Extra trusted CA certificates (PEM). */
  caCerts?: string[];
  /** Per-request idle timeout (ms). */
  timeoutMs?: number;
  /** Attempts per registry request. */
  maxAttempts?: number;
  /** User-Agent for registry requests. */
  userAgent?: string;
  /** Called before each registry request retry (metrics). */
  onRetry?: (e: RetryEvent) => void;
  /** The status of the previous sync: tags resolved then are reused when listing tags fails. */
  previous?: ImageSyncStatus;
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
  /** Use these clients instead of creating them (they are not closed). */
  clients?: { source: RegistryClient; destination: RegistryClient };
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

function reasonOf(e: unknown, fallback = "Unknown"): string {
  const r = (e as { reason?: unknown })?.reason;
  return typeof r === "string" && r !== "" ? r : fallback;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The enabled validation gates of a spec. */
export function enabledGates(spec: ImageSyncSpec): string[] {
  const v = spec.validation;
  const gates: string[] = [];
  if (v?.cosign?.enabled) gates.push("cosign");
  if (v?.vulnerabilityGate?.enabled) gates.push("vulnerabilityGate");
  if (v?.sbomGate?.enabled) gates.push("sbomGate");
  return gates;
}

const HUB_HOSTS = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);

function credentialHost(registry: string): string {
  const host = splitRegistry(registry).host;
  return HUB_HOSTS.has(host.toLowerCase()) ? "docker.io" : host;
}

async function preflight(resolver: CredentialResolver, registry: string, role: string): Promise<void> {
  const host = credentialHost(registry);
  try {
    await resolver.resolve(host);
  } catch (e) {
    throw new SyncError(
      reasonOf(e, "AuthFailed"),
      messageOf(e) || `cannot get credentials for the ${role} registry ${host}`,
      e,
    );
  }
}

interface TagJob {
  result: ImageResult;
  image: ImageSpec;
  repos: ImageRepositories;
  tag: string;
  slot: number;
}

/**
 * Syncs every image and tag of `spec` once. Per-tag failures are in the report; throws
 * {@linkcode SyncError} only when the spec's credentials cannot be obtained at all.
 */
export async function syncImageSync(spec: ImageSyncSpec, opts: SyncOptions): Promise<SyncReport> {
  const now = () => (opts.now ?? (() => new Date()))();
  const startedAt = now().toISOString();
  const dryRun = opts.dryRun ?? false;
  const emit = (e: SyncEvent) => opts.onEvent?.(e);

  await preflight(opts.sourceCredentials, spec.source.registry, "source");
  await preflight(opts.destinationCredentials, spec.destination.registry, "destination");

  const clientOptions = {
    insecureRegistries: opts.insecureRegistries,
    caCerts: opts.caCerts,
    timeoutMs: opts.timeoutMs,
    maxAttempts: opts.maxAttempts,
    userAgent: opts.userAgent,
    onRetry: opts.onRetry,
  };
  const ownClients = !opts.clients;
  const source = opts.clients?.source ??
    new RegistryClient({ ...clientOptions, credentials: opts.sourceCredentials });
  const destination = opts.clients?.destination ??
    new RegistryClient({ ...clientOptions, credentials: opts.destinationCredentials });

  const progressTargets = new Map<string, { image: string; tag: string }>();
  const copier = new Copier({ source, destination }, {
    concurrency: opts.concurrency,
    platforms: opts.platforms,
    onProgress: opts.onProgress
      ? (p: CopyProgress) => {
        const target = progressTargets.get(p.ref);
        if (target) {
          opts.onProgress!({ ...target, destination: p.ref, bytes: p.bytes, totalBytes: p.totalBytes });
        }
      }
      : undefined,
  });

  const gates = enabledGates(spec);
  const images: ImageResult[] = [];
  const jobs: TagJob[] = [];
  const ensured = new Map<string, Promise<{ reason: string; message: string } | undefined>>();
  let resolutionFailures = 0;

  try {
    // 1. Per image: repositories, destination repository, tags.
    for (const image of spec.images) {
      let repos: ImageRepositories;
      try {
        repos = imageRepositories(spec, image);
      } catch (e) {
        const result: ImageResult = {
          name: image.name,
          sourceRepository: `${spec.source.registry}/${image.name}`,
          destinationRepository: `${spec.destination.registry}/${image.name}`,
          tags: [],
          repositoryError: { reason: reasonOf(e, "InvalidReference"), message: messageOf(e) },
        };
        for (const tag of image.tags ?? []) {
          result.tags.push(
            failedTag(tag, result.sourceRepository, result.destinationRepository, result.repositoryError!),
          );
        }
        images.push(result);
        continue;
      }
      const result: ImageResult = {
        name: image.name,
        sourceRepository: repos.source.name,
        destinationRepository: repos.destination.name,
        tags: [],
      };
      images.push(result);

      // Tags: explicit + semver against the source's tag list.
      let available: string[] | undefined;
      if (image.semver && image.semver.trim() !== "") {
        const constraint = image.semver;
        try {
          available = await source.listTags(repos.source, { signal: opts.cancelInFlight });
        } catch (e) {
          resolutionFailures++;
          const previousTags = (opts.previous?.images ?? []).find((i) =>
            i.name === image.name
          )?.tags?.map((t) => t.tag) ?? [];
          const fallback = safeMatches(previousTags, constraint, image.maxTags);
          const error = { reason: reasonOf(e), message: messageOf(e) };
          result.semver = { constraint, matched: fallback, error };
          emit({
            type: "TagResolutionFailed",
            warning: true,
            image: image.name,
            constraint,
            reason: error.reason,
            message:
              `Failed to resolve tags for ${repos.source.name} with semver "${constraint}": ${error.message}` +
              (fallback.length ? ` (keeping ${fallback.length} tag(s) resolved by the previous sync)` : ""),
          });
          available = fallback;
        }
      }
      let tags: string[];
      try {
        const resolved = resolveImageTags(image, available);
        tags = resolved.tags;
        if (image.semver && !result.semver) {
          result.semver = { constraint: image.semver, matched: resolved.matched };
          emit({
            type: "TagsResolved",
            warning: false,
            image: image.name,
            constraint: image.semver,
            tags: resolved.matched,
            totalMatches: resolved.totalMatches,
            message: `Resolved ${resolved.matched.length} tag(s) for ${repos.source.name} from semver ` +
              `"${image.semver}"` + (resolved.totalMatches > resolved.matched.length
                ? ` (newest ${resolved.matched.length} of ${resolved.totalMatches})`
                : "") +
              (resolved.matched.length ? `: ${preview(resolved.matched)}` : ""),
          });
        }
      } catch (e) {
        // An invalid constraint (the schema normally refuses it): keep the explicit tags.
        resolutionFailures++;
        const error = { reason: reasonOf(e, "InvalidSemver"), message: messageOf(e) };
        result.semver = { constraint: image.semver!, matched: [], error };
        emit({
          type: "TagResolutionFailed",
          warning: true,
          image: image.name,
          constraint: image.semver!,
          reason: error.reason,
          message: `Failed to resolve tags for ${repos.source.name}: ${error.message}`,
        });
        tags = resolveImageTags({ ...image, semver: undefined }, undefined).tags;
      }

      // Destination repository (createDestinationRepos), once per repository per sync.
      if (spec.createDestinationRepos && opts.repositories && !dryRun && tags.length > 0) {
        const path = repos.destinationPath;
        let pending = ensured.get(path);
        if (!pending) {
          pending = opts.repositories.ensureRepository(path).then(
            (outcome) => {
              emit({
                type: "RepoEnsured",
                warning: false,
                repository: path,
                created: outcome === "created",
                image: image.name,
                message: outcome === "created"
                  ? `Repository "${path}" created at ${repos.destination.registry}`
                  : `Repository "${path}" exists at ${repos.destination.registry}`,
              });
              return undefined;
            },
            (e) => ({ reason: reasonOf(e, "RepoCreationFailed"), message: messageOf(e) }),
          );
          ensured.set(path, pending);
        }
        const repoError = await pending;
        if (repoError) {
          result.repositoryError = repoError;
          for (const tag of tags) {
            const failed = failedTag(
              tag,
              repos.source.withTag(tag).toString(),
              repos.destination.withTag(tag).toString(),
              repoError,
            );
            failed.lastSyncTime = now().toISOString();
            result.tags.push(failed);
            emitFailed(emit, image.name, failed, dryRun);
          }
          continue;
        }
      }

      for (const tag of tags) {
        const slot = result.tags.length;
        result.tags.push(pendingTag(tag, repos));
        jobs.push({ result, image, repos, tag, slot });
      }
    }

    // 2. Tags, a few at a time; `signal` is checked before each.
    let next = 0;
    let aborted = false;
    const worker = async () => {
      while (next < jobs.length) {
        const job = jobs[next++];
        const image = job.result;
        if (opts.signal?.aborted) {
          aborted = true;
          image.tags[job.slot] = failedTag(
            job.tag,
            image.tags[job.slot].source,
            image.tags[job.slot].destination,
            { reason: "Aborted", message: "the sync was stopped before this tag was attempted" },
          );
          continue;
        }
        image.tags[job.slot] = await syncTag(job, {
          copier,
          source,
          destination,
          gates,
          dryRun,
          now,
          opts,
          emit,
          progressTargets,
        });
      }
    };
    // Tags are planned and copied concurrently; the Copier counts a shared blob once.
    const workers = Math.max(1, Math.floor(opts.tagConcurrency ?? 4));
    await Promise.all(Array.from({ length: Math.min(workers, Math.max(1, jobs.length)) }, worker));

    return summarize(images, {
      dryRun,
      aborted,
      resolutionFailures,
      startedAt,
      finishedAt: now().toISOString(),
    });
  } finally {
    if (ownClients) {
      source.close();
      destination.close();
    }
  }
}

function preview(tags: string[]): string {
  return tags.length > 10 ? `${tags.slice(0, 10).join(", ")}, …` : tags.join(", ");
}

function safeMatches(tags: string[], constraint: string, maxTags: number | undefined): string[] {
  try {
    return matchingTags(tags, constraint, { limit: maxTags ?? 10 });
  } catch {
    return [];
  }
}

function pendingTag(tag: string, repos: ImageRepositories): TagResult {
  return {
    tag,
    synced: false,
    action: "failed",
    source: repos.source.withTag(tag).toString(),
    destination: repos.destination.withTag(tag).toString(),
    bytesMoved: 0,
    blobsCopied: 0,
    blobsMounted: 0,
    blobsSkipped: 0,
  };
}

function failedTag(
  tag: string,
  source: string,
  destination: string,
  error: { reason: string; message: string },
): TagResult {
  return {
    tag,
    synced: false,
    action: "failed",
    reason: error.reason,
    error: error.message,
    source,
    destination,
    bytesMoved: 0,
    blobsCopied: 0,
    blobsMounted: 0,
    blobsSkipped: 0,
  };
}

function emitFailed(emit: (e: SyncEvent) => void, image: string, t: TagResult, dryRun: boolean): void {
  emit({
    type: "SyncFailed",
    warning: true,
    image,
    tag: t.tag,
    source: t.source,
    destination: t.destination,
    dryRun,
    reason: t.reason ?? "Unknown",
    message: `${
      dryRun ? "Would fail to copy" : "Failed to copy"
    } ${t.source} to ${t.destination}: ${t.error}`,
  });
}

interface TagContext {
  copier: Copier;
  source: RegistryClient;
  destination: RegistryClient;
  gates: string[];
  dryRun: boolean;
  now: () => Date;
  opts: SyncOptions;
  emit: (e: SyncEvent) => void;
  progressTargets: Map<string, { image: string; tag: string }>;
}

async function syncTag(job: TagJob, ctx: TagContext): Promise<TagResult> {
  const src: Reference = job.repos.source.withTag(job.tag);
  const dst: Reference = job.repos.destination.withTag(job.tag);
  const base = pendingTag(job.tag, job.repos);
  const image = job.image.name;
  const signal = ctx.opts.cancelInFlight;
  try {
    if (ctx.gates.length > 0) {
      // Digests first, as upstream: an up-to-date tag needs no gate; anything to copy does.
      const head = await ctx.source.headManifest(src, { signal });
      if (!head) {
        return done(failedTag(job.tag, base.source, base.destination, {
          reason: "NotFound",
          message: `source ${src} not found`,
        }));
      }
      const there = await ctx.destination.headManifest(dst, { signal });
      if (there?.digest === head.digest) return done(upToDate(base, head.digest));
      const message = `validation gate(s) ${ctx.gates.join(", ")} enabled but not available in this ` +
        `Portager build, so the tag is not copied`;
      const failed = failedTag(job.tag, base.source, base.destination, {
        reason: "ValidationUnavailable",
        message,
      });
      failed.sourceDigest = head.digest;
      failed.verified = false;
      failed.validationError = message;
      return done(failed);
    }
    ctx.progressTargets.set(dst.toString(), { image, tag: job.tag });
    const r = await ctx.copier.copy(src, dst, { dryRun: ctx.dryRun, signal });
    if (r.upToDate) return done(upToDate(base, r.digest));
    const result: TagResult = {
      ...base,
      synced: !ctx.dryRun,
      action: ctx.dryRun ? "would-copy" : "copied",
      sourceDigest: r.digest,
      bytesMoved: r.bytesMoved,
      blobsCopied: r.blobsCopied,
      blobsMounted: r.blobsMounted,
      blobsSkipped: r.blobsSkipped,
    };
    return done(result);
  } catch (e) {
    return done(
      failedTag(job.tag, base.source, base.destination, { reason: reasonOf(e), message: messageOf(e) }),
    );
  } finally {
    ctx.progressTargets.delete(dst.toString());
  }

  function upToDate(t: TagResult, digest: string): TagResult {
    return { ...t, synced: true, action: "up-to-date", sourceDigest: digest };
  }

  function done(t: TagResult): TagResult {
    t.lastSyncTime = ctx.now().toISOString();
    if (t.action === "failed") {
      emitFailed(ctx.emit, image, t, ctx.dryRun);
    } else if (t.action === "up-to-date") {
      ctx.emit({
        type: "ImageSkipped",
        warning: false,
        image,
        tag: t.tag,
        source: t.source,
        destination: t.destination,
        dryRun: ctx.dryRun,
        digest: t.sourceDigest!,
        message: `Image ${t.source} already up-to-date (digest: ${shortDigest(t.sourceDigest!)})`,
      });
    } else {
      const plan = `${formatBytes(t.bytesMoved)} in ${t.blobsCopied} blob(s), ${t.blobsMounted} mounted, ` +
        `${t.blobsSkipped} already there`;
      ctx.emit({
        type: "ImageSynced",
        warning: false,
        image,
        tag: t.tag,
        source: t.source,
        destination: t.destination,
        dryRun: ctx.dryRun,
        digest: t.sourceDigest!,
        bytesMoved: t.bytesMoved,
        message: ctx.dryRun
          ? `Would copy ${t.source} → ${t.destination} (digest: ${shortDigest(t.sourceDigest!)}; ${plan})`
          : `Synced ${t.source} → ${t.destination} (digest: ${shortDigest(t.sourceDigest!)}; ${plan})`,
      });
    }
    return t;
  }
}

function summarize(
  images: ImageResult[],
  meta: {
    dryRun: boolean;
    aborted: boolean;
    resolutionFailures: number;
    startedAt: string;
    finishedAt: string;
  },
): SyncReport {
  const tags = images.flatMap((i) => i.tags);
  const sum = (f: (t: TagResult) => number) => tags.reduce((n, t) => n + f(t), 0);
  const failedImages = tags.filter((t) => t.action === "failed").length;
  return {
    images,
    totalImages: tags.length,
    syncedImages: tags.filter((t) => t.synced).length,
    failedImages,
    copiedImages: tags.filter((t) => t.action === "copied" || t.action === "would-copy").length,
    upToDateImages: tags.filter((t) => t.action === "up-to-date").length,
    resolutionFailures: meta.resolutionFailures,
    bytesMoved: sum((t) => t.bytesMoved),
    blobsCopied: sum((t) => t.blobsCopied),
    blobsMounted: sum((t) => t.blobsMounted),
    blobsSkipped: sum((t) => t.blobsSkipped),
    ok: failedImages === 0 && meta.resolutionFailures === 0 && !meta.aborted,
    dryRun: meta.dryRun,
    aborted: meta.aborted,
    startedAt: meta.startedAt,
    finishedAt: meta.finishedAt,
  };
}
