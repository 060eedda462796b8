/**
 * The ImageSync API: the zod schema (single source of truth for types, validation messages and
 * the CRD), schedule parsing, the semver constraint grammar of `images[].semver`, registry and
 * repository naming rules, and ECR host parsing.
 *
 * ```ts
 * await loadCronParser(); // or import "src/api/cron.ts": cron schedules need cron-parser
 * const r = validateImageSync(obj);
 * if (!r.ok) console.error(formatProblems(r.problems)); // spec.images[2]: needs tags or semver
 * const due = nextRun(r.value.spec.schedule, lastSync);
 * ```
 * @module
 */
export {
  API_VERSION,
  AUTH_METHODS,
  type Condition,
  ConditionSchema,
  CosignSchema,
  DEFAULT_MAX_TAGS,
  type DestinationAuth,
  DestinationAuthSchema,
  DestinationSchema,
  GROUP,
  type ImageSpec,
  ImageSpecSchema,
  type ImageStatus,
  ImageStatusSchema,
  type ImageSync,
  ImageSyncSchema,
  type ImageSyncSpec,
  ImageSyncSpecSchema,
  type ImageSyncStatus,
  ImageSyncStatusSchema,
  KIND,
  MAX_PLATFORMS,
  MAX_TAG_PATTERNS,
  MetadataSchema,
  OVERWRITE_POLICIES,
  PLURAL,
  SbomGateSchema,
  type SecretReference,
  SecretReferenceSchema,
  SourceSchema,
  SYNC_NOW_ANNOTATION,
  type TagStatus,
  TagStatusSchema,
  type ValidationConfig,
  ValidationSchema,
  type ValidImageSync,
  type ValidImageSyncSpec,
  VERSION,
  VulnerabilityGateSchema,
} from "./schema.ts";
export {
  formatPath,
  formatProblems,
  type Problem,
  validateImageSync,
  validateImageSyncSpec,
  type ValidationResult,
} from "./validate.ts";
export { crdObject, crdYaml, PRINTER_COLUMNS, toStructuralSchema } from "./crd.ts";
export {
  loadCronParser,
  needsCronParser,
  nextRun,
  parseGoDuration,
  parseSchedule,
  type Schedule,
  ScheduleError,
  scheduleProblem,
} from "./schedule.ts";
export {
  compareVersions,
  matchingTags,
  type MatchingTagsOptions,
  parseVersion,
  type SemVer,
  SemverConstraint,
  semverConstraintProblem,
  SemverError,
} from "./semver.ts";
export {
  MAX_REPOSITORY_LENGTH,
  type RegistryParts,
  registryProblem,
  repositoryPathProblem,
  splitRegistry,
  tagProblem,
} from "./names.ts";
export { type EcrHost, parseEcrHost } from "./ecr_host.ts";
export { ValueError, valueProblem } from "./value_error.ts";
export {
  MAX_PATTERN_LENGTH,
  MAX_PROGRAM_SIZE,
  MAX_REPEAT,
  TagPattern,
  TagPatternError,
  tagPatternProblem,
} from "./tag_pattern.ts";
