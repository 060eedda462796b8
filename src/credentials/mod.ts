/**
 * Registry credentials: Docker config / dockerconfigjson Secrets matched the way Docker does,
 * Amazon ECR tokens (AWS SDK, imported lazily) and repository creation, Google Artifact
 * Registry tokens, and the per-spec wiring of all of them. Every resolver implements
 * `CredentialResolver` from `src/oci`; failures are {@linkcode CredentialError}s with reason
 * AuthFailed and messages naming the secret and registry, never their content.
 *
 * ```ts
 * const creds = await credentialsForSpec(spec, { namespace: "default", loadSecret });
 * await syncImageSync(spec, { sourceCredentials: creds.source, destinationCredentials: creds.destination,
 *   repositories: creds.repositories });
 * ```
 * @module
 */
export { CredentialError, type CredentialErrorOptions, type CredentialErrorReason } from "./errors.ts";
export {
  type AllowedRegistries,
  checkAllowedRegistries,
  MAX_ALLOWED_REGISTRY_PATTERNS,
  parseAllowedRegistries,
} from "./allowed_registries.ts";
export {
  convertToHostname,
  credentialFromEntry,
  DOCKER_HUB_KEY,
  type DockerAuthEntry,
  type DockerConfig,
  DockerConfigResolver,
  type DockerConfigResolverOptions,
  findAuthEntry,
  type FoundEntry,
  parseDockerConfig,
  type ParseDockerConfigOptions,
  resolverFromSecret,
  type SecretLike,
} from "./docker_config.ts";
export {
  decodeEcrToken,
  describeAwsError,
  type EcrApiSettings,
  ecrApiSettings,
  EcrCredentialResolver,
  type EcrHost,
  type EcrOptions,
  EcrRepositories,
  parseEcrHost,
  refreshTime,
  type RepositoryEnsurer,
  RepositoryError,
} from "./ecr.ts";
export {
  type AuthorizedUserKey,
  GAR_USERNAME,
  GarCredentialResolver,
  type GarOptions,
  type GoogleCredentials,
  isGarHost,
  type JwtOptions,
  parseGoogleCredentials,
  pemToPkcs8,
  type ServiceAccountKey,
  signJwtAssertion,
} from "./gar.ts";
export {
  ANONYMOUS,
  credentialsForSpec,
  type SecretLoader,
  type SecretRef,
  type SpecCredentialOptions,
  type SpecCredentials,
} from "./spec_credentials.ts";
