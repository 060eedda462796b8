/**
 * The credentials an ImageSync spec asks for, built the same way for the operator (Secrets
 * read from the cluster) and the no-cluster modes (Secrets stood in by files): the source's
 * `authSecretRef`, the destination's `auth.method`, and the repository creator for
 * `createDestinationRepos` on ECR.
 * @module
 */
import type { CredentialResolver } from "../oci/mod.ts";
import { type ImageSyncSpec, splitRegistry } from "../api/mod.ts";
import { resolverFromSecret, type SecretLike } from "./docker_config.ts";
import { EcrCredentialResolver, type EcrOptions, EcrRepositories, type RepositoryEnsurer } from "./ecr.ts";
import { GarCredentialResolver, type GarOptions } from "./gar.ts";
import { CredentialError } from "./errors.ts";

/** A resolver that never has credentials: anonymous access. */
export const ANONYMOUS: CredentialResolver = {
  resolve: () => Promise.resolve(undefined),
};

/** A namespaced Secret name. */
export interface SecretRef {
  /** Namespace. */
  namespace: string;
  /** Name. */
  name: string;
}

/** How {@linkcode credentialsForSpec} finds Secrets and configures cloud credentials. */
export interface SpecCredentialOptions {
  /** The ImageSync's namespace: where a secretRef without a namespace points. */
  namespace: string;
  /** Reads a Secret; undefined when it does not exist. Read fresh on every sync. */
  loadSecret(ref: SecretRef): Promise<SecretLike | undefined>;
  /** Options for `method: ecr`. */
  ecr?: EcrOptions;
  /** Options for `method: gar`. */
  gar?: GarOptions;
}

/** The resolvers (and repository creator) for one spec. */
export interface SpecCredentials {
  /** For the source registry. */
  source: CredentialResolver;
  /** For the destination registry. */
  destination: CredentialResolver;
  /** Set when `createDestinationRepos` is on and the destination needs repositories created (ECR). */
  repositories?: RepositoryEnsurer;
}

async function secretResolver(
  ref: { name: string; namespace?: string },
  role: string,
  registry: string,
  opts: SpecCredentialOptions,
): Promise<CredentialResolver> {
  const full = { namespace: ref.namespace || opts.namespace, name: ref.name };
  const secret = await opts.loadSecret(full);
  if (!secret) {
    throw new CredentialError(
      "AuthFailed",
      `secret ${full.namespace}/${full.name} not found (named for the ${role} registry ${registry})`,
      { source: `secret ${full.namespace}/${full.name}`, registry },
    );
  }
  return resolverFromSecret(secret, full);
}

/**
 * Builds the source and destination resolvers a spec asks for. Secrets are read now (so a
 * missing or malformed Secret fails before any copy, with AuthFailed naming it); cloud tokens
 * are fetched lazily by the resolvers.
 */
export async function credentialsForSpec(
  spec: ImageSyncSpec,
  opts: SpecCredentialOptions,
): Promise<SpecCredentials> {
  const srcHost = splitRegistry(spec.source.registry).host;
  const dstHost = splitRegistry(spec.destination.registry).host;
  const source = spec.source.authSecretRef
    ? await secretResolver(spec.source.authSecretRef, "source", srcHost, opts)
    : ANONYMOUS;
  const auth = spec.destination.auth;
  let destination: CredentialResolver = ANONYMOUS;
  let repositories: RepositoryEnsurer | undefined;
  switch (auth.method) {
    case "secret":
      // Upstream treats "secret" without a secretRef as anonymous; the schema refuses it.
      if (auth.secretRef) destination = await secretResolver(auth.secretRef, "destination", dstHost, opts);
      break;
    case "ecr":
      destination = new EcrCredentialResolver(opts.ecr);
      if (spec.createDestinationRepos) {
        repositories = new EcrRepositories(spec.destination.registry, opts.ecr);
      }
      break;
    case "gar":
      destination = new GarCredentialResolver(opts.gar);
      break;
    case "anonymous":
      break;
  }
  return { source, destination, repositories };
}
