/**
 * The plan step of a sync: per image, its repositories, its tags (explicit + semver, with the
 * fallback of `tags.ts`), and its destination repository ensured once per sync
 * (createDestinationRepos). The outcome is one result per image, with a pending slot for
 * each tag to run and the tags that already failed (bad reference, repository not created).
 * @module
 */
import type { ImageSpec, ImageSyncSpec, ImageSyncStatus } from "../api/mod.ts";
import type { RepositoryEnsurer } from "../credentials/mod.ts";
import type { Reference } from "../oci/mod.ts";
import { type SyncEvent, tagEvent } from "./events.ts";
import { type ImageRepositories, imageRepositories } from "./naming.ts";
import { failedTag, type Failure, failureOf, type ImageResult, pendingTag } from "./result.ts";
import type { TagJob } from "./run.ts";
import { listsSourceTags, resolveTags } from "./tags.ts";

/** What the plan step needs. */
export interface PlanContext {
  /** Lists a source repository's tags (semver images only). */
  listTags: (repository: Reference) => Promise<string[]>;
  /** The previous sync's status: its tags are the fallback when listing fails. */
  previous?: ImageSyncStatus;
  /** Creates missing destination repositories (createDestinationRepos); not called in a dry run. */
  repositories?: RepositoryEnsurer;
  /** Plan only: create nothing. */
  dryRun: boolean;
  /** Clock (lastSyncTime of tags that fail here). */
  now: () => Date;
  /** Receives TagsResolved, TagResolutionFailed, RepoEnsured and SyncFailed events. */
  emit: (e: SyncEvent) => void;
}

/** The plan: per-image results (in spec order) and the tags to run. */
export interface SyncPlan {
  /** One result per image; tags to run hold a pending result until they ran. */
  images: ImageResult[];
  /** The tags to run, in order. */
  jobs: TagJob[];
}

/** Plans every image of `spec`. Never throws for one image's problem: it is in that image's result. */
export async function planSync(spec: ImageSyncSpec, ctx: PlanContext): Promise<SyncPlan> {
  const plan: SyncPlan = { images: [], jobs: [] };
  const ensured = new Map<string, Promise<Failure | undefined>>();
  for (const image of spec.images) {
    let repos: ImageRepositories;
    try {
      repos = imageRepositories(spec, image);
    } catch (e) {
      plan.images.push(unnamedImage(spec, image, failureOf(e, "InvalidReference")));
      continue;
    }
    const result: ImageResult = {
      name: image.name,
      sourceRepository: repos.source.name,
      destinationRepository: repos.destination.name,
      tags: [],
    };
    plan.images.push(result);

    const previousTags = ctx.previous?.images?.find((i) => i.name === image.name)?.tags;
    const tags = await imageTags(image, repos, result, ctx);
    const refs = (tag: string) => ({
      source: repos.source.withTag(tag).toString(),
      destination: repos.destination.withTag(tag).toString(),
    });
    const repoError = await ensureRepository(spec, image, repos, tags.length > 0, { ctx, ensured });
    if (repoError) {
      result.repositoryError = repoError;
      for (const tag of tags) {
        const failed = failedTag(tag, refs(tag), repoError);
        failed.lastSyncTime = ctx.now().toISOString();
        result.tags.push(failed);
        ctx.emit(tagEvent(image.name, failed, ctx.dryRun));
      }
      continue;
    }
    for (const tag of tags) {
      const previous = previousTags?.find((t) => t.tag === tag);
      plan.jobs.push({
        image: image.name,
        result,
        slot: result.tags.length,
        tag,
        source: repos.source.withTag(tag),
        destination: repos.destination.withTag(tag),
        ...(image.platforms?.length ? { platforms: image.platforms } : {}),
        ...(previous?.sourceDigest
          ? {
            previous: { sourceDigest: previous.sourceDigest, destinationDigest: previous.destinationDigest },
          }
          : {}),
      });
      result.tags.push(pendingTag(tag, refs(tag)));
    }
  }
  return plan;
}

/** An image whose names do not make a valid reference: each explicit tag fails with `failure`. */
function unnamedImage(spec: ImageSyncSpec, image: ImageSpec, failure: Failure): ImageResult {
  const sourceRepository = `${spec.source.registry}/${image.name}`;
  const destinationRepository = `${spec.destination.registry}/${image.name}`;
  return {
    name: image.name,
    sourceRepository,
    destinationRepository,
    tags: (image.tags ?? []).map((tag) =>
      failedTag(tag, { source: sourceRepository, destination: destinationRepository }, failure)
    ),
    repositoryError: failure,
  };
}

/** The image's tags to sync; records and announces its selection from the source's tags. */
async function imageTags(
  image: ImageSpec,
  repos: ImageRepositories,
  result: ImageResult,
  ctx: PlanContext,
): Promise<string[]> {
  const previousTags = ctx.previous?.images?.find((i) => i.name === image.name)?.tags?.map((t) => t.tag);
  const r = await resolveTags(image, { listTags: () => ctx.listTags(repos.source), previousTags });
  if (!listsSourceTags(image)) return r.tags;
  const selectors = {
    constraint: image.semver?.trim() ? image.semver : "",
    ...(image.tagPatterns?.length ? { tagPatterns: image.tagPatterns } : {}),
    ...(image.excludeTagPatterns?.length ? { excludeTagPatterns: image.excludeTagPatterns } : {}),
  };
  const about = { image: image.name, sourceRepository: repos.source.name, ...selectors };
  result.selection = { ...selectors, matched: r.matched };
  if (r.error) {
    result.selection.error = r.error;
    ctx.emit({
      type: "TagResolutionFailed",
      warning: true,
      ...about,
      reason: r.error.reason,
      error: r.error.message,
      keptTags: r.matched,
    });
  } else {
    ctx.emit({
      type: "TagsResolved",
      warning: false,
      ...about,
      tags: r.matched,
      totalMatches: r.totalMatches,
    });
  }
  return r.tags;
}

/** Ensures the image's destination repository once per sync; resolves the failure, if any. */
function ensureRepository(
  spec: ImageSyncSpec,
  image: ImageSpec,
  repos: ImageRepositories,
  hasTags: boolean,
  state: { ctx: PlanContext; ensured: Map<string, Promise<Failure | undefined>> },
): Promise<Failure | undefined> {
  const { ctx, ensured } = state;
  if (!spec.createDestinationRepos || !ctx.repositories || ctx.dryRun || !hasTags) {
    return Promise.resolve(undefined);
  }
  const path = repos.destinationPath;
  let pending = ensured.get(path);
  if (!pending) {
    pending = ctx.repositories.ensureRepository(path).then(
      (outcome) => {
        ctx.emit({
          type: "RepoEnsured",
          warning: false,
          image: image.name,
          repository: path,
          registry: repos.destination.registry,
          created: outcome === "created",
        });
        return undefined;
      },
      (e) => failureOf(e, "RepoCreationFailed"),
    );
    ensured.set(path, pending);
  }
  return pending;
}
