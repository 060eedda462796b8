/**
 * Amazon ECR: registry tokens from `GetAuthorizationToken` (used as Basic auth, cached until
 * shortly before they expire) and `createDestinationRepos` (describe, create when missing).
 *
 * `@aws-sdk/client-ecr` is imported lazily, on the first ECR call, so users without ECR pay no
 * memory for it. The SDK's default credential chain is used as is: environment variables,
 * shared config and profiles, IRSA web identity (`AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`),
 * container and instance metadata; `AWS_ENDPOINT_URL_ECR`/`AWS_ENDPOINT_URL_STS` redirect it
 * (tests point them at moto). The region is the registry host's.
 * @module
 */
import type { Credential, CredentialResolver } from "../oci/mod.ts";
import { type EcrHost, parseEcrHost } from "../api/mod.ts";
import { CredentialError } from "./errors.ts";

export { type EcrHost, parseEcrHost };

/** Where credentials come from, for messages. */
const SOURCE = "AWS credential chain";
const DEFAULT_REFRESH_MARGIN_MS = 5 * 60_000;
const DEFAULT_TOKEN_LIFETIME_MS = 60 * 60_000;

type EcrSdk = typeof import("@aws-sdk/client-ecr");
type EcrClient = InstanceType<EcrSdk["ECRClient"]>;

let sdkPromise: Promise<EcrSdk> | undefined;

/** Loads the AWS SDK's ECR client on first use. */
function loadSdk(): Promise<EcrSdk> {
  sdkPromise ??= import("@aws-sdk/client-ecr");
  return sdkPromise;
}

/** Options shared by the ECR resolver and repository helper. */
export interface EcrOptions {
  /**
   * Region to use when the registry host is not an ECR host (tests that serve an ECR-issued
   * token from a local registry); an ECR host's own region always wins.
   */
  region?: string;
  /** Extra `ECRClient` configuration (endpoint, credentials, …), merged over the defaults. */
  clientConfig?: Record<string, unknown>;
  /** Refresh a token this long before `expiresAt` (default 5 minutes). */
  refreshMarginMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/** Where an ECR call goes: region and (when known) the registry's account. */
interface Target {
  region: string;
  accountId?: string;
  registry: string;
}

function targetFor(registry: string, opts: EcrOptions): Target {
  const host = parseEcrHost(registry);
  if (host) return { region: host.region, accountId: host.accountId, registry: host.host };
  if (opts.region) return { region: opts.region, registry };
  throw new CredentialError(
    "AuthFailed",
    `${registry} is not an Amazon ECR registry (<account>.dkr.ecr.<region>.amazonaws.com), so auth method ecr ` +
      `cannot get a token for it`,
    { registry, source: SOURCE },
  );
}

const clients = new WeakMap<EcrOptions, Map<string, EcrClient>>();

async function clientFor(target: Target, opts: EcrOptions): Promise<{ sdk: EcrSdk; client: EcrClient }> {
  const sdk = await loadSdk();
  let byRegion = clients.get(opts);
  if (!byRegion) clients.set(opts, byRegion = new Map());
  let client = byRegion.get(target.region);
  if (!client) {
    client = new sdk.ECRClient({ region: target.region, ...opts.clientConfig });
    byRegion.set(target.region, client);
  }
  return { sdk, client };
}

function errorName(e: unknown): string {
  const err = e as { name?: string; Code?: string; code?: string };
  return err?.name ?? err?.Code ?? err?.code ?? "Error";
}

/** Turns an SDK failure into a message that says which of the usual causes it is. */
export function describeAwsError(
  e: unknown,
  action: string,
  target: { registry: string; region: string },
): string {
  const name = errorName(e);
  const detail = e instanceof Error ? e.message : String(e);
  const where = `registry ${target.registry} (region ${target.region})`;
  if (name === "CredentialsProviderError" || /Could not load credentials/i.test(detail)) {
    return `no AWS credentials found for ${action} at ${where}: configure IRSA (AWS_ROLE_ARN and ` +
      `AWS_WEB_IDENTITY_TOKEN_FILE), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or an instance role`;
  }
  if (
    [
      "AccessDeniedException",
      "AccessDenied",
      "UnrecognizedClientException",
      "InvalidClientTokenId",
      "InvalidSignatureException",
      "ExpiredTokenException",
      "SignatureDoesNotMatch",
    ].includes(name)
  ) {
    return `AWS denied ${action} at ${where} (${name}): ${detail}`;
  }
  return `${action} failed at ${where} (${name}): ${detail}`;
}

/** Decodes an ECR authorization token (base64 of `AWS:<password>`) into Basic credentials. */
export function decodeEcrToken(token: string): { username: string; password: string } | undefined {
  let decoded: string;
  try {
    decoded = atob(token);
  } catch {
    return undefined;
  }
  const colon = decoded.indexOf(":");
  if (colon <= 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * When to fetch a new token: `margin` before it expires, but never later than half its
 * lifetime for short-lived tokens; an hour when the expiry is unknown.
 */
export function refreshTime(issuedAt: number, expiresAt: number | undefined, margin: number): number {
  if (expiresAt === undefined || !Number.isFinite(expiresAt)) return issuedAt + DEFAULT_TOKEN_LIFETIME_MS;
  const lifetime = Math.max(0, expiresAt - issuedAt);
  return lifetime > 2 * margin ? expiresAt - margin : issuedAt + lifetime / 2;
}

interface CachedToken {
  credential: { username: string; password: string };
  refreshAt: number;
}

/**
 * Resolves ECR registry hosts to Basic credentials from `GetAuthorizationToken`, one token per
 * region and account, cached until shortly before `expiresAt`. Failures throw
 * {@linkcode CredentialError} (AuthFailed) saying whether credentials are missing or denied.
 */
export class EcrCredentialResolver implements CredentialResolver {
  readonly #opts: EcrOptions;
  readonly #cache = new Map<string, CachedToken>();
  readonly #inflight = new Map<string, Promise<CachedToken>>();

  /** Creates a resolver; nothing is loaded or called until the first resolve. */
  constructor(opts: EcrOptions = {}) {
    this.#opts = opts;
  }

  /** Basic credentials (`AWS` + token) for an ECR registry host. */
  async resolve(registryHost: string): Promise<Credential | undefined> {
    const target = targetFor(registryHost, this.#opts);
    const key = `${target.region}/${target.accountId ?? ""}`;
    const now = (this.#opts.now ?? Date.now)();
    const cached = this.#cache.get(key);
    if (cached && now < cached.refreshAt) return { ...cached.credential };
    let pending = this.#inflight.get(key);
    if (!pending) {
      pending = this.#fetch(target).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, pending);
    }
    const fresh = await pending;
    this.#cache.set(key, fresh);
    return { ...fresh.credential };
  }

  async #fetch(target: Target): Promise<CachedToken> {
    const action = "ecr:GetAuthorizationToken";
    let out;
    try {
      const { sdk, client } = await clientFor(target, this.#opts);
      out = await client.send(new sdk.GetAuthorizationTokenCommand({}));
    } catch (e) {
      throw new CredentialError("AuthFailed", describeAwsError(e, action, target), {
        registry: target.registry,
        source: SOURCE,
        cause: e,
      });
    }
    const data = out.authorizationData?.[0];
    const credential = data?.authorizationToken ? decodeEcrToken(data.authorizationToken) : undefined;
    if (!credential) {
      throw new CredentialError(
        "AuthFailed",
        `${action} at registry ${target.registry} (region ${target.region}) returned no usable token`,
        { registry: target.registry, source: SOURCE },
      );
    }
    const issuedAt = (this.#opts.now ?? Date.now)();
    const expiresAt = data?.expiresAt ? new Date(data.expiresAt).getTime() : undefined;
    const margin = this.#opts.refreshMarginMs ?? DEFAULT_REFRESH_MARGIN_MS;
    return { credential, refreshAt: refreshTime(issuedAt, expiresAt, margin) };
  }
}

/** Creating a destination repository failed; reason RepoCreationFailed as upstream names it. */
export class RepositoryError extends Error {
  /** Always "RepoCreationFailed". */
  readonly reason = "RepoCreationFailed";
  /** Registry host. */
  readonly registry: string;
  /** Repository name. */
  readonly repository: string;

  /** Creates the error. */
  constructor(message: string, registry: string, repository: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "RepositoryError";
    this.registry = registry;
    this.repository = repository;
  }
}

/** Makes sure destination repositories exist before pushing (the `createDestinationRepos` flag). */
export interface RepositoryEnsurer {
  /** Creates `repository` (path under the registry host) if missing; says which happened. */
  ensureRepository(repository: string): Promise<"created" | "exists">;
}

/** {@linkcode RepositoryEnsurer} for an ECR registry: DescribeRepositories, then CreateRepository. */
export class EcrRepositories implements RepositoryEnsurer {
  readonly #target: Target;
  readonly #opts: EcrOptions;

  /** For the ECR registry `registry` (host, optionally with a path). */
  constructor(registry: string, opts: EcrOptions = {}) {
    this.#target = targetFor(registry, opts);
    this.#opts = opts;
  }

  /**
   * Describes the repository and creates it when missing; a concurrent creator winning the
   * race (RepositoryAlreadyExistsException) counts as "exists".
   */
  async ensureRepository(repository: string): Promise<"created" | "exists"> {
    const registryId = this.#target.accountId;
    const fail = (action: string, e: unknown) =>
      new RepositoryError(
        `could not ensure ECR repository "${repository}": ${describeAwsError(e, action, this.#target)}`,
        this.#target.registry,
        repository,
        e,
      );
    const { sdk, client } = await clientFor(this.#target, this.#opts).catch((e) => {
      throw fail("loading the AWS SDK", e);
    });
    try {
      await client.send(new sdk.DescribeRepositoriesCommand({ repositoryNames: [repository], registryId }));
      return "exists";
    } catch (e) {
      if (errorName(e) !== "RepositoryNotFoundException") throw fail("ecr:DescribeRepositories", e);
    }
    try {
      await client.send(new sdk.CreateRepositoryCommand({ repositoryName: repository, registryId }));
      return "created";
    } catch (e) {
      if (errorName(e) === "RepositoryAlreadyExistsException") return "exists";
      throw fail("ecr:CreateRepository", e);
    }
  }
}
