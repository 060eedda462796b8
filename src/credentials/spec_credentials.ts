/**
 * The credentials an ImageSync spec asks for, built the same way for the operator (Secrets
 * read from the cluster) and the no-cluster modes (Secrets stood in by files): the source's
 * `authSecretRef`, the destination's `auth.method`, and the repository creator for
 * `createDestinationRepos` on ECR. Each mode only supplies a secret loader (and, file mode, a
 * fallback for Secrets it has no file for); the `auth.method` switch lives here alone.
 *
 * Tenancy: a Secret in another namespace than the ImageSync's, the operator's own cloud
 * identity (`ecr`, `gar`), and a registry outside `--allowed-registries` are only used when the
 * options allow it; the refusal says nothing
 * about the other namespace (not whether the Secret exists, nor its type).
 * @module
 */
import type { CredentialResolver } from "../oci/mod.ts";
import { type ImageSyncSpec, splitRegistry } from "../api/mod.ts";
import { resolverFromSecret, type SecretLike } from "./docker_config.ts";
import { EcrCredentialResolver, type EcrOptions, EcrRepositories, type RepositoryEnsurer } from "./ecr.ts";
import { GarCredentialResolver, type GarOptions } from "./gar.ts";
import { CredentialError } from "./errors.ts";
import { type AllowedRegistries, checkAllowedRegistries } from "./allowed_registries.ts";

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

/**
 * Reads a Secret for credentials: the Secret itself (parsed by {@linkcode credentialsForSpec}),
 * or a resolver already built from one (file mode's `--secret` files); undefined when it does
 * not exist. A throw (e.g. the apiserver refused) becomes AuthFailed naming the Secret.
 */
export type SecretLoader = (ref: SecretRef) => Promise<SecretLike | CredentialResolver | undefined>;

/** How {@linkcode credentialsForSpec} finds Secrets and configures cloud credentials. */
export interface SpecCredentialOptions {
  /** The ImageSync's namespace: where a secretRef without a namespace points. */
  namespace: string;
  /** Reads a Secret; undefined when it does not exist. Read fresh on every sync. */
  loadSecret: SecretLoader;
  /**
   * Used where the spec names no Secret, and for a Secret the loader does not have (file mode:
   * Docker's config). Unset (the operator): no Secret named is anonymous, a missing one is
   * AuthFailed.
   */
  fallback?: CredentialResolver;
  /**
   * Whether a secretRef may name another namespace. Default true for the library and file
   * mode (one user); the operator passes false unless `--allow-cross-namespace-refs`.
   */
  allowCrossNamespaceRefs?: boolean;
  /**
   * Namespaces whose ImageSyncs may use the process's own cloud identity (`ecr`, `gar`);
   * undefined allows every namespace.
   */
  cloudIdentityNamespaces?: readonly string[];
  /**
   * The registries a spec may name (`--allowed-registries`), checked before any Secret is read;
   * undefined allows every registry.
   */
  allowedRegistries?: AllowedRegistries;
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

function isResolver(v: SecretLike | CredentialResolver): v is CredentialResolver {
  return typeof (v as CredentialResolver).resolve === "function";
}

async function secretResolver(
  ref: { name: string; namespace?: string } | undefined,
  role: string,
  registry: string,
  opts: SpecCredentialOptions,
): Promise<CredentialResolver> {
  if (!ref) return opts.fallback ?? ANONYMOUS;
  const full = { namespace: ref.namespace || opts.namespace, name: ref.name };
  const source = `secret ${full.namespace}/${full.name}`;
  if (full.namespace !== opts.namespace && opts.allowCrossNamespaceRefs === false) {
    // nothing is read: the message must not tell whether that Secret exists or what it holds
    throw new CredentialError(
      "CrossNamespaceRefDenied",
      `the ${role} secretRef names namespace "${full.namespace}"; this operator only reads Secrets in the ` +
        `ImageSync's own namespace "${opts.namespace}" (copy the Secret there, or start the operator with ` +
        `--allow-cross-namespace-refs)`,
      { registry },
    );
  }
  let secret: SecretLike | CredentialResolver | undefined;
  try {
    secret = await opts.loadSecret(full);
  } catch (err) {
    throw new CredentialError("AuthFailed", `cannot read ${source}: ${(err as Error).message}`, {
      source,
      cause: err,
    });
  }
  if (!secret) {
    if (opts.fallback) return opts.fallback;
    throw new CredentialError(
      "AuthFailed",
      `${source} not found (named for the ${role} registry ${registry})`,
      { source, registry },
    );
  }
  return isResolver(secret) ? secret : resolverFromSecret(secret, full);
}

function checkCloudIdentity(method: string, registry: string, opts: SpecCredentialOptions): void {
  const allowed = opts.cloudIdentityNamespaces;
  if (allowed === undefined || allowed.includes(opts.namespace)) return;
  throw new CredentialError(
    "CloudIdentityDenied",
    `auth method ${method} uses the operator's own cloud identity, which namespace "${opts.namespace}" ` +
      `may not use (the operator allows it for: ${allowed.length ? allowed.join(", ") : "no namespace"}; ` +
      `use method: secret with a Secret in this namespace)`,
    { registry },
  );
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
  checkAllowedRegistries(
    { source: spec.source.registry, destination: spec.destination.registry },
    opts.allowedRegistries,
  );
  const srcHost = splitRegistry(spec.source.registry).host;
  const dstHost = splitRegistry(spec.destination.registry).host;
  const source = await secretResolver(spec.source.authSecretRef, "source", srcHost, opts);
  const auth = spec.destination.auth;
  let destination: CredentialResolver = ANONYMOUS;
  let repositories: RepositoryEnsurer | undefined;
  switch (auth.method) {
    case "secret":
      // upstream treats "secret" without a secretRef as anonymous (file mode: Docker's config)
      destination = await secretResolver(auth.secretRef, "destination", dstHost, opts);
      break;
    case "ecr":
      checkCloudIdentity("ecr", dstHost, opts);
      destination = new EcrCredentialResolver(opts.ecr);
      if (spec.createDestinationRepos) {
        repositories = new EcrRepositories(spec.destination.registry, opts.ecr);
      }
      break;
    case "gar":
      checkCloudIdentity("gar", dstHost, opts);
      destination = new GarCredentialResolver(opts.gar);
      break;
    case "anonymous":
      break;
  }
  return { source, destination, repositories };
}
