/**
 * Amazon ECR: registry tokens from `GetAuthorizationToken` (used as Basic auth, cached until
 * shortly before they expire) and `createDestinationRepos` (describe, create when missing).
 *
 * `@aws-sdk/client-ecr` is imported lazily, on the first ECR call, so users without ECR pay no
 * memory for it. The SDK's default credential chain is used as is: environment variables,
 * shared config and profiles, IRSA web identity (`AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`),
 * container and instance metadata; `AWS_ENDPOINT_URL_ECR`/`AWS_ENDPOINT_URL_STS` redirect it
 * (tests point them at moto). The region is the registry host's (never `AWS_REGION`), and a
 * FIPS or dual-stack registry host gets the FIPS or dual-stack ECR API endpoint.
 *
 * SDK clients and tokens are shared by every resolver in the process (keyed by region, account
 * and the `AWS_*` environment), so the resolvers built afresh for each sync reuse a token until
 * shortly before it expires, and the credential chain (e.g. the STS web-identity session) is
 * not started again on every sync.
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
  /**
   * Registry hosts (`host[:port]`) to treat as the ECR registry of an account and region, for
   * tests that serve an ECR-issued token from a local registry. Never set by the CLI or the
   * operator: user specs with method ecr must name a real ECR host (the schema says so), and an
   * ECR host's own name always wins over this map.
   */
  hosts?: Record<string, { accountId: string; region: string }>;
  /**
   * Extra `ECRClient` configuration (endpoint, credentials, …), merged over the defaults. With
   * it, clients and tokens are cached per options object instead of process-wide.
   */
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
  fips: boolean;
  dualStack: boolean;
}

/** `ECRClient` settings for an ECR API call on behalf of a registry host. */
export interface EcrApiSettings {
  /** The registry host's region. */
  region: string;
  /** Set for a FIPS registry host (`dkr.ecr-fips`): use the FIPS ECR API endpoint too. */
  useFipsEndpoint?: true;
  /** Set for a dual-stack registry host (`dkr-ecr.<region>.on.aws`): use the dual-stack API endpoint. */
  useDualstackEndpoint?: true;
}

/**
 * The `ECRClient` settings for a registry host: its own region (not `AWS_REGION`, which may
 * name another), and FIPS / dual-stack API endpoints when the host is a FIPS / dual-stack one,
 * unless an explicit endpoint (`AWS_ENDPOINT_URL_ECR`, a VPC endpoint) decides where calls go.
 */
export function ecrApiSettings(
  host: Pick<EcrHost, "region" | "fips" | "dualStack">,
  options: { customEndpoint?: boolean } = {},
): EcrApiSettings {
  const settings: EcrApiSettings = { region: host.region };
  // The SDK refuses FIPS or dual-stack together with a custom endpoint.
  if (options.customEndpoint) return settings;
  if (host.fips) settings.useFipsEndpoint = true;
  if (host.dualStack) settings.useDualstackEndpoint = true;
  return settings;
}

function targetFor(registry: string, opts: EcrOptions): Target {
  const host = parseEcrHost(registry);
  if (host) {
    return {
      region: host.region,
      accountId: host.accountId,
      registry: host.host,
      fips: host.fips,
      dualStack: host.dualStack,
    };
  }
  const bare = registry.split("/")[0].toLowerCase();
  const alias = opts.hosts?.[bare];
  if (alias) {
    return {
      region: alias.region,
      accountId: alias.accountId,
      registry: bare,
      fips: false,
      dualStack: false,
    };
  }
  if (opts.region) return { region: opts.region, registry, fips: false, dualStack: false };
  throw new CredentialError(
    "AuthFailed",
    `${registry} is not an Amazon ECR registry (<account>.dkr.ecr.<region>.amazonaws.com), so auth method ecr ` +
      `cannot get a token for it`,
    { registry, source: SOURCE },
  );
}

interface CachedToken {
  credential: { username: string; password: string };
  refreshAt: number;
}

/** SDK clients, tokens and token fetches in flight, by {@linkcode cacheKey}. */
interface Store {
  clients: Map<string, EcrClient>;
  tokens: Map<string, CachedToken>;
  inflight: Map<string, Promise<CachedToken>>;
}

function newStore(): Store {
  return { clients: new Map(), tokens: new Map(), inflight: new Map() };
}

/** The process-wide store, for options without `clientConfig` (the CLI and the operator). */
const SHARED = newStore();
const perOptions = new WeakMap<EcrOptions, Store>();

function storeFor(opts: EcrOptions): Store {
  if (!opts.clientConfig) return SHARED;
  let store = perOptions.get(opts);
  if (!store) perOptions.set(opts, store = newStore());
  return store;
}

/**
 * The `AWS_*` environment, which the SDK reads when a client is created (credentials, profile,
 * endpoints): a client or token made under another environment is not reused.
 */
function awsEnvironment(): string {
  try {
    return JSON.stringify(Object.entries(Deno.env.toObject()).filter(([k]) => k.startsWith("AWS_")).sort());
  } catch {
    return ""; // no --allow-env for everything: the SDK reads what it may, and so do we
  }
}

function envVar(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** Whether the ECR API endpoint is set explicitly (options or the SDK's endpoint variables). */
function hasCustomEndpoint(opts: EcrOptions): boolean {
  if (opts.clientConfig?.endpoint !== undefined) return true;
  if ((envVar("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") ?? "").toLowerCase() === "true") return false;
  return !!(envVar("AWS_ENDPOINT_URL_ECR") || envVar("AWS_ENDPOINT_URL"));
}

function cacheKey(target: Target): string {
  const flags = `${target.fips ? "fips" : ""},${target.dualStack ? "dualstack" : ""}`;
  return `${target.region}|${target.accountId ?? ""}|${flags}|${awsEnvironment()}`;
}

async function clientFor(target: Target, opts: EcrOptions): Promise<{ sdk: EcrSdk; client: EcrClient }> {
  const sdk = await loadSdk();
  const store = storeFor(opts);
  const key = cacheKey(target);
  let client = store.clients.get(key);
  if (!client) {
    const settings = ecrApiSettings(target, { customEndpoint: hasCustomEndpoint(opts) });
    client = new sdk.ECRClient({ ...settings, ...opts.clientConfig });
    store.clients.set(key, client);
  }
  return { sdk, client };
}

/** The region in a token's `proxyEndpoint` (`https://<account>.dkr.ecr.<region>.amazonaws.com`). */
function proxyRegion(proxyEndpoint: string | undefined): string | undefined {
  if (!proxyEndpoint) return undefined;
  const host = proxyEndpoint.replace(/^[a-z]+:\/\//i, "").split(/[/:]/)[0];
  return parseEcrHost(host)?.region ??
    /^\d{12}\.dkr[.-]ecr(?:-fips)?\.([a-z0-9-]+)\./i.exec(host)?.[1]?.toLowerCase();
}

function errorName(e: unknown): string {
  const err = e as { name?: string; Code?: string; code?: string };
  return err?.name ?? err?.Code ?? err?.code ?? "Error";
}

/**
 * A 401/403 answer whose body the SDK could not parse as ECR's JSON (an XML or HTML error page
 * from a proxy, an endpoint policy or an emulator): its code and message, so it reads as a denial.
 */
function unparsedRefusal(e: unknown): { name: string; detail: string } | undefined {
  const err = e as {
    $metadata?: { httpStatusCode?: number };
    $response?: { body?: unknown };
    message?: string;
  };
  const status = err?.$metadata?.httpStatusCode;
  if ((status !== 401 && status !== 403) || !/Deserialization error/.test(err?.message ?? "")) {
    return undefined;
  }
  const body = typeof err.$response?.body === "string" ? err.$response.body : "";
  const code = /<Code>([^<]{1,100})<\/Code>/.exec(body)?.[1];
  const message = /<Message>([^<]{1,500})<\/Message>/.exec(body)?.[1];
  return {
    name: code ?? (status === 401 ? "UnrecognizedClientException" : "AccessDenied"),
    detail: message ??
      `the ECR API answered HTTP ${status} (its error body is not ECR's JSON, so AWS's own reason is unknown)`,
  };
}

/** Turns an SDK failure into a message that says which of the usual causes it is. */
export function describeAwsError(
  e: unknown,
  action: string,
  target: { registry: string; region: string },
): string {
  let name = errorName(e);
  let detail = e instanceof Error ? e.message : String(e);
  const refused = unparsedRefusal(e);
  if (refused) ({ name, detail } = refused);
  const where = `registry ${target.registry} (region ${target.region})`;
  if (/scoped to (a valid|correct|the correct) region/i.test(detail)) {
    return `region mismatch: AWS refused ${action} at ${where} (${name}): ${detail}; the ECR API endpoint ` +
      `(AWS_ENDPOINT_URL_ECR?) must be in the registry host's region`;
  }
  if (name === "CredentialsProviderError" || /Could not load credentials/i.test(detail)) {
    return `no AWS credentials found for ${action} at ${where}: configure IRSA (AWS_ROLE_ARN and ` +
      `AWS_WEB_IDENTITY_TOKEN_FILE), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or an instance role`;
  }
  if (
    [
      "AccessDeniedException",
      "AccessDenied",
      "UnauthorizedOperation",
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

/**
 * Resolves ECR registry hosts to Basic credentials from `GetAuthorizationToken`, one token per
 * region and account, cached (process-wide) until shortly before `expiresAt`. Failures throw
 * {@linkcode CredentialError} (AuthFailed) saying whether credentials are missing or denied, or
 * the token is for another region.
 */
export class EcrCredentialResolver implements CredentialResolver {
  readonly #opts: EcrOptions;

  /** Creates a resolver; nothing is loaded or called until the first resolve. */
  constructor(opts: EcrOptions = {}) {
    this.#opts = opts;
  }

  /** Basic credentials (`AWS` + token) for an ECR registry host. */
  async resolve(registryHost: string): Promise<Credential | undefined> {
    const target = targetFor(registryHost, this.#opts);
    const store = storeFor(this.#opts);
    const key = cacheKey(target);
    const now = (this.#opts.now ?? Date.now)();
    const cached = store.tokens.get(key);
    if (cached && now < cached.refreshAt) return { ...cached.credential };
    let pending = store.inflight.get(key);
    if (!pending) {
      pending = this.#fetch(target).finally(() => store.inflight.delete(key));
      store.inflight.set(key, pending);
    }
    const fresh = await pending;
    store.tokens.set(key, fresh);
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
    const issuedFor = proxyRegion(data?.proxyEndpoint);
    if (issuedFor && issuedFor !== target.region) {
      throw new CredentialError(
        "AuthFailed",
        `region mismatch: ${action} for registry ${target.registry} (region ${target.region}) returned a ` +
          `token for region ${issuedFor} (${data?.proxyEndpoint}), which that registry will not accept; ` +
          `the ECR API endpoint (AWS_ENDPOINT_URL_ECR?) must be in the registry host's region`,
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
