/**
 * The ImageSync schema (zod): the single source of truth for the TypeScript types, the
 * validation messages and the CRD's openAPIV3Schema. Field names and defaults follow upstream
 * Portager v0.5 (`portager.portager.io/v1alpha1`).
 *
 * Spec objects are strict (an unknown field is a problem with its path) except the validation
 * gates, which are accepted permissively as upstream has them. Descriptions become the CRD's
 * documentation (`kubectl explain imagesync.spec`), and `x-kubernetes-validations` metadata
 * carries the CEL rules the apiserver enforces for the same checks the refinements do here.
 * @module
 */
// zod/mini (the functional API on zod's core): building these schemas and the first validation cost
// about half of what zod's classic API costs at start-up (`portager sync -f`). A namespace import,
// here and in src/api: the bundler then keeps only what is used and drops zod's ~40 locales
// (z.locales, 264 KB; bench/tools_test.ts checks the bundle); English messages, as classic zod
// sets them, come from the one locale configured below.
import * as z from "zod/mini";
import en from "zod/v4/locales/en.js";
import { registryProblem, repositoryPathProblem, tagProblem } from "./names.ts";
import { scheduleProblem } from "./schedule.ts";
import { MAX_PATTERN_LENGTH, tagPatternProblem } from "./tag_pattern.ts";

/** API group of the ImageSync kind. */
export const GROUP = "portager.portager.io";
/** API version of the ImageSync kind. */
export const VERSION = "v1alpha1";
/** `apiVersion` field value for ImageSync objects. */
export const API_VERSION = `${GROUP}/${VERSION}`;
/** Resource plural, as in `/apis/portager.portager.io/v1alpha1/namespaces/x/imagesyncs`. */
export const PLURAL = "imagesyncs";
/** Kind name. */
export const KIND = "ImageSync";
/** Annotation that, set to "true", makes the controller sync now and then remove it. */
export const SYNC_NOW_ANNOTATION = "portager.portager.io/sync-now";
/** Default of `images[].maxTags`: how many semver-matched tags are kept (newest first). */
export const DEFAULT_MAX_TAGS = 10;
/** Most entries in `tagPatterns` or `excludeTagPatterns`. */
export const MAX_TAG_PATTERNS = 20;
/** Most entries in `images[].platforms`. */
export const MAX_PLATFORMS = 16;
/** `destination.overwrite` values: what to do with a destination tag at another digest. */
export const OVERWRITE_POLICIES = ["always", "never"] as const;
/** The destination auth methods upstream Portager v0.5 knows. */
export const AUTH_METHODS = ["secret", "ecr", "gar", "anonymous"] as const;

z.config(en());

/** `schema` with `description` for the CRD (what classic zod's `.describe()` registers). */
function described<T extends z.ZodMiniType>(schema: T, description: string): T {
  return withMeta(schema, { description });
}

/** An optional field with `description` for the CRD (classic zod's `.optional().describe()`). */
function optionalField<T extends z.ZodMiniType>(schema: T, description: string): z.ZodMiniOptional<T> {
  return described(z.optional(schema), description);
}

/** `schema` with JSON-schema metadata for the CRD (classic zod's `.meta()`). */
function withMeta<T extends z.ZodMiniType>(schema: T, meta: z.core.GlobalMeta): T {
  z.globalRegistry.add(schema as z.ZodMiniType, meta);
  return schema;
}

function rule<T>(problem: (value: T) => string | undefined) {
  return z.superRefine((value: T, ctx) => {
    const message = problem(value);
    if (message) ctx.addIssue({ code: "custom", message });
  });
}

/** CEL rule applied by the apiserver, with the message it returns. */
interface CelRule {
  rule: string;
  message: string;
}

function cel(...rules: CelRule[]): { "x-kubernetes-validations": CelRule[] } {
  return { "x-kubernetes-validations": rules };
}

const REGISTRY_CEL = cel({
  rule: "!self.contains('://')",
  message: "registry must not include a scheme: write the host, e.g. ghcr.io, not https://ghcr.io",
});

const registryField = (description: string) =>
  withMeta(z.string().check(rule(registryProblem)), { description, ...REGISTRY_CEL });

/** A reference to a `kubernetes.io/dockerconfigjson` Secret. */
export const SecretReferenceSchema = described(
  z.strictObject({
    name: described(z.string().check(z.minLength(1, "secret name is empty")), "Name of the Secret."),
    namespace: optionalField(
      z.string().check(z.minLength(1)),
      "Namespace of the Secret; defaults to the ImageSync's namespace.",
    ),
  }),
  "A kubernetes.io/dockerconfigjson Secret.",
);

/** Where images are pulled from. */
export const SourceSchema = described(
  z.strictObject({
    registry: registryField(
      "Source registry host with an optional path prefix and no scheme, e.g. cgr.dev/my-org or " +
        "docker.io/library. Image names are relative to it.",
    ),
    authSecretRef: optionalField(
      SecretReferenceSchema,
      "dockerconfigjson Secret with pull credentials; omit for public registries.",
    ),
  }),
  "Where images are pulled from.",
);

/** How to authenticate to the destination. */
export const DestinationAuthSchema = described(
  z.strictObject({
    method: described(
      z.enum(AUTH_METHODS),
      "secret: a dockerconfigjson Secret (secretRef); ecr: the AWS credential chain (IRSA) for an " +
        "ECR registry; gar: Google credentials (Workload Identity or GOOGLE_APPLICATION_CREDENTIALS); " +
        "anonymous: no credentials.",
    ),
    secretRef: optionalField(
      SecretReferenceSchema,
      "dockerconfigjson Secret with push credentials for method secret; without it the destination is " +
        "reached anonymously, as upstream does.",
    ),
  }),
  "How to authenticate to the destination registry.",
);

/** Where images are pushed to. */
export const DestinationSchema = described(
  z.strictObject({
    registry: registryField(
      "Destination registry host with an optional path prefix and no scheme, e.g. " +
        "123456789012.dkr.ecr.us-east-1.amazonaws.com or registry.example.com:5000/mirror.",
    ),
    auth: DestinationAuthSchema,
    repositoryPrefix: optionalField(
      z.string().check(rule((p: string) => repositoryPathProblem(p, "repositoryPrefix"))),
      "Prepended to image names at the destination: with prefix mirror, image library/nginx is " +
        "pushed to <registry>/mirror/library/nginx.",
    ),
    overwrite: optionalField(
      z.enum(OVERWRITE_POLICIES),
      "What to do when a destination tag already points to another digest than the source's: " +
        "always (the default) moves it; never leaves it as it is and reports the tag with reason " +
        "TagConflict, for registries whose tags must be immutable.",
    ),
  }),
  "Where images are pushed to.",
);

function tagPatternList(description: string) {
  const pattern = z.string().check(z.maxLength(MAX_PATTERN_LENGTH), rule(tagPatternProblem));
  return optionalField(z.array(pattern).check(z.maxLength(MAX_TAG_PATTERNS)), description);
}

/** Why `text` is not `os/architecture[/variant]`, or undefined when it is. */
function platformProblem(text: string): string | undefined {
  return /^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/.test(text)
    ? undefined
    : `invalid platform "${text}": expected os/architecture or os/architecture/variant in lowercase, e.g. ` +
      `linux/arm64 or linux/arm/v7`;
}

/** One image (repository) to sync and which of its tags. */
export const ImageSpecSchema = withMeta(
  z.strictObject({
    name: described(
      z.string().check(rule((n: string) => repositoryPathProblem(n, "image name"))),
      "Repository path relative to the source registry, e.g. nginx or library/nginx. The same path " +
        "(after repositoryPrefix) is used at the destination.",
    ),
    tags: optionalField(
      z.array(z.string().check(rule(tagProblem))),
      'Explicit tags to sync, e.g. [latest, "1.22"]. Synced first, before semver matches.',
    ),
    // A constraint that does not parse fails only this image's tag resolution (as upstream), so
    // it is not a refusal of the whole spec here.
    semver: optionalField(
      z.string(),
      'Semver constraint (Masterminds syntax: 1.x, 1.2.x, ~1.3.0, ^1.3.0, ">= 1.22.0, < 1.23.0", ' +
        "||) matched against the source's tags; tags that are not versions are skipped, " +
        "pre-releases only match a constraint that names one. One that does not parse fails only " +
        "this image's tag resolution (TagResolutionFailed); its explicit tags still sync.",
    ),
    maxTags: described(
      z._default(z.int().check(z.minimum(0, "must be 0 (unlimited) or more")), DEFAULT_MAX_TAGS),
      "How many semver (or tagPatterns) matches to sync, newest first; 0 means unlimited. Explicit " +
        "tags are not counted.",
    ),
    tagPatterns: tagPatternList(
      "Regular expressions (a subset of RE2's syntax, e.g. 'v?\\d+\\.\\d+\\.\\d+-alpine') matched " +
        "against the whole of each source tag; matching tags are synced, narrowed by semver when set. " +
        "The source's tags are listed to match them.",
    ),
    excludeTagPatterns: tagPatternList(
      "Regular expressions (same syntax) for source tags never to sync from tagPatterns or semver " +
        "matches, e.g. '.*-rc\\d*'. Explicit tags are always synced.",
    ),
    platforms: optionalField(
      z.array(z.string().check(rule(platformProblem))).check(z.maxLength(MAX_PLATFORMS)),
      'Copy only these platforms of a multi-arch image, e.g. ["linux/amd64", "linux/arm64"]. The ' +
        "destination then holds a smaller index with another digest than the source's; status " +
        "records both. A single-platform image is copied as it is.",
    ),
  }).check(z.superRefine((image, ctx) => {
    if (typeof image !== "object" || image === null) return;
    const hasTags = Array.isArray(image.tags) && image.tags.length > 0;
    const hasSemver = typeof image.semver === "string" && image.semver.trim() !== "";
    const hasPatterns = Array.isArray(image.tagPatterns) && image.tagPatterns.length > 0;
    if (!hasTags && !hasSemver && !hasPatterns) {
      ctx.addIssue({ code: "custom", message: "needs tags or semver" });
    }
  }, { when: () => true })),
  {
    description: "An image (repository) to sync and which of its tags.",
    ...cel({
      rule: "(has(self.tags) && size(self.tags) > 0) || (has(self.semver) && size(self.semver) > 0) || " +
        "(has(self.tagPatterns) && size(self.tagPatterns) > 0)",
      message: "needs tags or semver",
    }),
  },
);

/** Cosign signature gate (upstream's fields). */
export const CosignSchema = described(
  z.looseObject({
    enabled: described(z.boolean(), "Verify cosign signatures before copying."),
    publicKey: optionalField(
      z.string(),
      "PEM public key (ECDSA P-256/P-384/P-521, RSA, Ed25519) for key-based verification; " +
        "takes precedence over keylessIssuer. No transparency log is required.",
    ),
    keylessIssuer: optionalField(
      z.string(),
      "OIDC issuer for keyless (Fulcio) verification: certificate chain, issuer, SCT and " +
        "transparency-log entry are checked against the Sigstore trusted root.",
    ),
  }),
  "Cosign signature verification: one valid signature (.sig tag or Sigstore bundle referrer) passes.",
);

/** Vulnerability gate (upstream's fields). */
export const VulnerabilityGateSchema = described(
  z.looseObject({
    enabled: described(
      z.boolean(),
      "Block images whose attached SARIF report has findings at or above maxSeverity.",
    ),
    maxSeverity: described(
      z._default(z.enum(["critical", "high", "medium", "low"]), "critical"),
      "Findings at or above this severity block the sync.",
    ),
    requireCveReport: described(
      z._default(z.boolean(), true),
      "Block when no vulnerability report is attached.",
    ),
  }),
  "Vulnerability severity gate.",
);

/** SBOM gate (upstream's field). */
export const SbomGateSchema = described(
  z.looseObject({
    enabled: described(z.boolean(), "Require an SPDX or CycloneDX SBOM attached to the source image."),
  }),
  "SBOM presence gate.",
);

/** Pre-sync validation gates, run on the source digest of a tag that needs a copy. */
export const ValidationSchema = described(
  z.looseObject({
    cosign: z.optional(CosignSchema),
    vulnerabilityGate: z.optional(VulnerabilityGateSchema),
    sbomGate: z.optional(SbomGateSchema),
  }),
  "Pre-sync validation gates, in order cosign, vulnerability, SBOM, on the source digest of a tag " +
    "that needs a copy; a failing tag is not copied (ValidationFailed). A gate that cannot check fails.",
);

/** Carrying referrers (ours; off by default, so upstream manifests behave as before). */
export const CopyReferrersSchema = described(
  z.strictObject({
    enabled: described(
      z.boolean(),
      "Copy each synced image's referrers (signatures, attestations, SBOMs, scan reports) with it, " +
        "recursively and with digests preserved; also cosign's sha256-<hex>.sig/.att/.sbom tags.",
    ),
    artifactTypes: optionalField(
      z.array(z.string().check(z.minLength(1))),
      "Only referrers of these artifact types (at every depth), e.g. application/spdx+json; " +
        "when set, cosign's tags are not copied. All types when absent.",
    ),
  }),
  "Copy referrers with the images (not in upstream Portager).",
);

/** The desired state of an ImageSync. */
export const ImageSyncSpecSchema = described(
  z.strictObject({
    schedule: described(
      z.string().check(rule(scheduleProblem)),
      'When to sync: a 5-field cron expression ("0 */6 * * *", UTC, CRON_TZ=<zone> prefix allowed), ' +
        '@hourly/@daily/@weekly/@monthly/@yearly, or "@every <duration>" (30s, 5m, 1h30m).',
    ),
    source: SourceSchema,
    destination: DestinationSchema,
    images: described(
      z.array(ImageSpecSchema).check(z.minLength(1, "needs at least one image")),
      "Images to sync.",
    ),
    createDestinationRepos: optionalField(
      z.boolean(),
      "Create missing destination repositories before pushing (ECR; other registries create them on push).",
    ),
    validation: z.optional(ValidationSchema),
    copyReferrers: z.optional(CopyReferrersSchema),
    // method ecr with a host that is not ECR is AuthFailed when its token is asked for (as
    // upstream), not a refusal of the spec.
  }),
  "The desired state: what to sync, from where, to where, and when.",
);

const timeField = (description: string) => withMeta(z.string(), { description, format: "date-time" });

/** A Kubernetes condition (metav1.Condition). */
export const ConditionSchema = described(
  z.object({
    type: described(z.string().check(z.maxLength(316)), "Condition type: Ready or Syncing."),
    status: described(z.enum(["True", "False", "Unknown"]), "True, False or Unknown."),
    reason: described(
      z.string().check(z.minLength(1), z.maxLength(1024)),
      "CamelCase reason, e.g. SyncSucceeded, AuthFailed.",
    ),
    message: described(z.string().check(z.maxLength(32768)), "Human-readable details."),
    lastTransitionTime: timeField("When the status last changed."),
    observedGeneration: optionalField(
      z.int().check(z.minimum(0)),
      "The generation the condition was set for.",
    ),
  }),
  "A condition of the ImageSync.",
);

/** The result of the last sync of one tag. */
export const TagStatusSchema = described(
  z.object({
    tag: described(z.string(), "The tag."),
    synced: described(z.boolean(), "Whether the destination has this tag at the source's digest."),
    sourceDigest: optionalField(z.string(), "Manifest digest at the source, e.g. sha256:…"),
    destinationDigest: optionalField(
      z.string(),
      "Manifest digest at the destination when it differs from the source's: images[].platforms " +
        "wrote a smaller index.",
    ),
    lastSyncTime: z.optional(timeField("When this tag was last synced.")),
    error: optionalField(z.string(), "Why the tag failed, when synced is false."),
    reason: optionalField(
      z.string(),
      "Stable failure reason, e.g. NotFound, Unauthorized, TagConflict (destination.overwrite never).",
    ),
    verified: optionalField(z.boolean(), "Whether the validation gates passed."),
    validationError: optionalField(z.string(), "Why a validation gate failed."),
  }),
  "Sync result of one tag.",
);

/** The results of the last sync of one image. */
export const ImageStatusSchema = described(
  z.object({
    name: described(z.string(), "Image name as in spec.images[].name."),
    tags: optionalField(z.array(TagStatusSchema), "Per-tag results."),
  }),
  "Sync results of one image.",
);

/** The observed state of an ImageSync. */
export const ImageSyncStatusSchema = described(
  z.object({
    lastSyncTime: z.optional(timeField("When the last sync finished.")),
    nextSyncTime: z.optional(timeField("When the next scheduled sync is due.")),
    conditions: withMeta(z.optional(z.array(ConditionSchema)), {
      description: "Ready and Syncing conditions.",
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["type"],
    }),
    images: optionalField(z.array(ImageStatusSchema), "Per-image, per-tag results of the last sync."),
    totalImages: optionalField(z.int().check(z.minimum(0)), "Number of image tags in the last sync."),
    syncedImages: optionalField(z.int().check(z.minimum(0)), "Image tags synced or already up to date."),
    failedImages: optionalField(z.int().check(z.minimum(0)), "Image tags that failed."),
    observedGeneration: optionalField(z.int().check(z.minimum(0)), "The generation the last sync was for."),
  }),
  "The observed state of the ImageSync.",
);

/** Object metadata as far as Portager reads it; everything else is kept as is. */
export const MetadataSchema = z.looseObject({
  name: z.string().check(z.minLength(1, "is required")),
  namespace: z.optional(z.string()),
  generation: z.optional(z.number()),
  annotations: z.optional(z.record(z.string(), z.string())),
  labels: z.optional(z.record(z.string(), z.string())),
});

/** A whole ImageSync object, as found in a file or returned by the apiserver. */
export const ImageSyncSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION, `must be ${API_VERSION}`),
  kind: z.literal(KIND, `must be ${KIND}`),
  metadata: MetadataSchema,
  spec: ImageSyncSpecSchema,
  status: z.optional(ImageSyncStatusSchema),
});

/** A reference to a dockerconfigjson Secret. */
export type SecretReference = z.input<typeof SecretReferenceSchema>;
/** How to authenticate to the destination. */
export type DestinationAuth = z.input<typeof DestinationAuthSchema>;
/** One image of the spec (`maxTags` may be omitted: it defaults to 10). */
export type ImageSpec = z.input<typeof ImageSpecSchema>;
/** The validation gates. */
export type ValidationConfig = z.input<typeof ValidationSchema>;
/** The desired state of an ImageSync (defaults may be omitted). */
export type ImageSyncSpec = z.input<typeof ImageSyncSpecSchema>;
/** A condition. */
export type Condition = z.input<typeof ConditionSchema>;
/** Result of one tag in status. */
export type TagStatus = z.input<typeof TagStatusSchema>;
/** Results of one image in status. */
export type ImageStatus = z.input<typeof ImageStatusSchema>;
/** The observed state of an ImageSync. */
export type ImageSyncStatus = z.input<typeof ImageSyncStatusSchema>;
/** A whole ImageSync object. */
export type ImageSync = z.input<typeof ImageSyncSchema>;
/** A spec that passed validation: defaults applied, so `maxTags` is always set. */
export type ValidImageSyncSpec = z.output<typeof ImageSyncSpecSchema>;
/** An ImageSync object that passed validation, its spec with defaults applied. */
export type ValidImageSync = z.output<typeof ImageSyncSchema>;
