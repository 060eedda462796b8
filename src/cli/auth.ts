/**
 * Credentials for the no-cluster modes. Without a cluster there are no Secrets, so:
 * - Docker's config (`--authfile`, else `$DOCKER_CONFIG/config.json`, else
 *   `~/.docker/config.json`) serves both source and destination, as `docker pull/push` would;
 * - `--secret NAME=PATH` stands in for a `secretRef`/`authSecretRef` named NAME (or
 *   `NAMESPACE/NAME`); PATH is a Docker config JSON file or a Kubernetes Secret manifest of
 *   type `kubernetes.io/dockerconfigjson`. A spec naming a Secret that no `--secret` provides
 *   falls back to Docker's config;
 * - auth method `ecr` uses the AWS credential chain and `gar` Google credentials, through
 *   src/credentials; `anonymous` sends nothing.
 * @module
 */
import yaml from "js-yaml";
import type { ImageSyncSpec, SecretReference } from "../api/mod.ts";
import {
  ANONYMOUS,
  CredentialError,
  credentialsForSpec,
  DockerConfigResolver,
  type EcrOptions,
  type GarOptions,
  parseDockerConfig,
  resolverFromSecret,
  type SecretLike,
  type SecretRef,
  type SpecCredentialOptions,
  type SpecCredentials,
} from "../credentials/mod.ts";
import { UsageError } from "./args.ts";

/** Where the Docker config comes from. */
export interface DockerConfigLocation {
  /** The path read, or undefined when none was found. */
  path?: string;
  /** How it was chosen: `--authfile`, `$DOCKER_CONFIG`, `~/.docker/config.json`. */
  origin: string;
}

/** Options for {@linkcode FileCredentials.forSpec}. */
export interface ForSpecOptions {
  /** Options for auth method ecr (tests point it at a local endpoint). */
  ecr?: EcrOptions;
  /** Options for auth method gar. */
  gar?: GarOptions;
}

/** The credentials available to a run: Docker's config and the `--secret` stand-ins. */
export class FileCredentials {
  /** Docker config credentials (anonymous for hosts it has no entry for). */
  readonly docker: DockerConfigResolver | undefined;
  /** Where the Docker config came from. */
  readonly dockerLocation: DockerConfigLocation;
  /** `--secret` resolvers by `name` and `namespace/name`. */
  readonly secrets: ReadonlyMap<string, DockerConfigResolver>;

  /** Wraps already-loaded credentials; see {@linkcode loadFileCredentials}. */
  constructor(
    docker: DockerConfigResolver | undefined,
    secrets: ReadonlyMap<string, DockerConfigResolver>,
    location: DockerConfigLocation = { origin: "none" },
  ) {
    this.docker = docker;
    this.secrets = secrets;
    this.dockerLocation = location;
  }

  /** The `--secret` for a reference: `namespace/name` first, then the bare name. */
  secretFor(ref: SecretReference | undefined, namespace: string): DockerConfigResolver | undefined {
    if (!ref) return undefined;
    return this.secrets.get(`${ref.namespace ?? namespace}/${ref.name}`) ?? this.secrets.get(ref.name);
  }

  /**
   * What file mode gives src/credentials: `--secret` files stand in for Secrets (by
   * `namespace/name`, then the bare name), Docker's config answers for a Secret with no file
   * and where none is named; cross-namespace names are allowed (there are no tenants).
   */
  secretSource(): Omit<SpecCredentialOptions, "namespace"> {
    return {
      loadSecret: (ref: SecretRef) => Promise.resolve(this.secretFor(ref, ref.namespace)),
      fallback: this.docker ?? ANONYMOUS,
      allowCrossNamespaceRefs: true,
    };
  }

  /** The resolvers a spec asks for, through src/credentials as in the operator. */
  forSpec(spec: ImageSyncSpec, namespace: string, options: ForSpecOptions = {}): Promise<SpecCredentials> {
    return credentialsForSpec(spec, {
      ...this.secretSource(),
      namespace,
      ecr: options.ecr,
      gar: options.gar,
    });
  }
}

/** Picks the Docker config path the way the Docker CLI does, `--authfile` first. */
export function dockerConfigPath(
  authfile: string | undefined,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): DockerConfigLocation {
  if (authfile) return { path: authfile, origin: "--authfile" };
  const dir = env("DOCKER_CONFIG");
  if (dir) return { path: `${dir.replace(/\/+$/, "")}/config.json`, origin: "$DOCKER_CONFIG" };
  const home = env("HOME") ?? env("USERPROFILE");
  if (home) return { path: `${home}/.docker/config.json`, origin: "~/.docker/config.json" };
  return { origin: "none" };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * Builds a resolver from the text of a `--secret` file: a Kubernetes Secret manifest (YAML or
 * JSON, `data` base64 or `stringData`) or a plain Docker config JSON.
 */
export function resolverFromSecretFile(text: string, ref: { namespace: string; name: string }, path: string) {
  let doc: unknown;
  try {
    doc = yaml.load(text);
  } catch (err) {
    throw new CredentialError(
      "AuthFailed",
      `--secret ${ref.name}=${path}: not YAML or JSON (${(err as Error).name})`,
    );
  }
  if (isRecord(doc) && (doc.kind === "Secret" || (doc.type !== undefined && !("auths" in doc)))) {
    return resolverFromSecret(doc as SecretLike, ref, { required: true });
  }
  const source = `--secret ${ref.name}=${path}`;
  return new DockerConfigResolver(parseDockerConfig(text, { source }), { source, required: true });
}

function parseSecretFlag(flag: string): { name: string; namespace?: string; path: string } {
  const eq = flag.indexOf("=");
  const left = eq > 0 ? flag.slice(0, eq) : "";
  const path = eq > 0 ? flag.slice(eq + 1) : "";
  if (!left || !path) {
    throw new UsageError(`--secret wants NAME=PATH (or NAMESPACE/NAME=PATH), got "${flag}"`);
  }
  const slash = left.indexOf("/");
  if (slash >= 0) return { namespace: left.slice(0, slash), name: left.slice(slash + 1), path };
  return { name: left, path };
}

/** Options for {@linkcode loadFileCredentials}. */
export interface FileCredentialOptions {
  /** `--authfile`. */
  authfile?: string;
  /** `--secret` values, `NAME=PATH` or `NAMESPACE/NAME=PATH`. */
  secrets?: string[];
  /** Environment lookup; default `Deno.env.get`. */
  env?: (name: string) => string | undefined;
}

/**
 * Reads Docker's config and every `--secret` file. A missing default Docker config means
 * anonymous access; an unreadable or malformed `--authfile` or `--secret` is a UsageError
 * naming the file (never its content).
 */
export async function loadFileCredentials(options: FileCredentialOptions = {}): Promise<FileCredentials> {
  const location = dockerConfigPath(options.authfile, options.env);
  let docker: DockerConfigResolver | undefined;
  if (location.path) {
    let text: string | undefined;
    try {
      text = await Deno.readTextFile(location.path);
    } catch (err) {
      if (options.authfile || !(err instanceof Deno.errors.NotFound)) {
        throw new UsageError(`cannot read ${location.origin} ${location.path}: ${(err as Error).message}`);
      }
    }
    if (text !== undefined) {
      const source = `${location.origin === "--authfile" ? "--authfile " : ""}${location.path}`;
      try {
        docker = new DockerConfigResolver(parseDockerConfig(text, { source }), { source });
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    }
  }
  const secrets = new Map<string, DockerConfigResolver>();
  for (const flag of options.secrets ?? []) {
    const { name, namespace, path } = parseSecretFlag(flag);
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (err) {
      throw new UsageError(`--secret ${name}: cannot read ${path}: ${(err as Error).message}`);
    }
    try {
      const resolver = resolverFromSecretFile(text, { namespace: namespace ?? "default", name }, path);
      secrets.set(namespace ? `${namespace}/${name}` : name, resolver);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  return new FileCredentials(docker, secrets, location);
}
