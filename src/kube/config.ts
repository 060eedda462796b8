/**
 * Where the Kubernetes API is and how to authenticate to it: in-cluster (service-account
 * token re-read as it rotates) or a kubeconfig (`--kubeconfig`, `KUBECONFIG`, `~/.kube/config`)
 * with context selection, client certificates, tokens, token files, basic auth and exec
 * credential plugins.
 *
 * The kubeconfig is read with the same field semantics as client-go and
 * `@kubernetes/client-node`'s KubeConfig, but without importing that class: it pulls in the
 * whole generated API (about 75 MB RSS under Deno), and the operator only needs the fields.
 * @module
 */

import yaml from "js-yaml";

/** A problem loading the cluster configuration; `reason` is stable. */
export class KubeConfigError extends Error {
  /** Stable reason for conditions and logs. */
  readonly reason = "KubeConfigInvalid";
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "KubeConfigError";
  }
}

/** An exec credential plugin, as in a kubeconfig `users[].user.exec`. */
export interface ExecConfig {
  /** Plugin executable (relative paths resolve against the kubeconfig's directory). */
  command: string;
  /** Arguments. */
  args?: string[];
  /** Extra environment variables. */
  env?: Array<{ name: string; value: string }>;
  /** ExecCredential apiVersion; default client.authentication.k8s.io/v1. */
  apiVersion?: string;
  /** Directory relative commands resolve against (the kubeconfig's). */
  dir?: string;
}

/** How requests authenticate. */
export type AuthSource =
  | { kind: "none" }
  | { kind: "token"; token: string }
  | { kind: "tokenFile"; path: string }
  | { kind: "basic"; username: string; password: string }
  | { kind: "exec"; exec: ExecConfig; cacheKey: string };

/** Everything needed to talk to one cluster. */
export interface ClusterConnection {
  /** e.g. https://10.0.0.1:443, without a trailing slash. */
  server: string;
  /** PEM CA certificates to trust in addition to the system roots. */
  caCerts: string[];
  /** PEM client certificate and key for mutual TLS. */
  clientCert?: { cert: string; key: string };
  /** How requests authenticate. */
  auth: AuthSource;
  /** The context's namespace (or the service account's namespace in-cluster). */
  namespace?: string;
  /** HTTP(S) proxy for the API server. */
  proxyUrl?: string;
  /** Name of the context used, `inCluster` in a pod. */
  contextName: string;
  /** True for the in-cluster (service-account) configuration. */
  inCluster: boolean;
}

/** Options for {@linkcode loadKubeConfig}. */
export interface LoadKubeConfigOptions {
  /** Explicit kubeconfig path (the `--kubeconfig` flag); wins over everything else. */
  kubeconfig?: string;
  /** Context to use instead of `current-context`. */
  context?: string;
  /** Environment lookup; default Deno.env.get. */
  env?: (name: string) => string | undefined;
  /** Root of the service-account mount, default `/var/run/secrets/kubernetes.io/serviceaccount`. */
  serviceAccountDir?: string;
}

type RawNamed = { name?: unknown } & Record<string, unknown>;

interface RawCluster {
  server?: string;
  "certificate-authority"?: string;
  "certificate-authority-data"?: string;
  "insecure-skip-tls-verify"?: boolean;
  "proxy-url"?: string;
}

interface RawUser {
  token?: string;
  tokenFile?: string;
  "token-file"?: string;
  username?: string;
  password?: string;
  "client-certificate"?: string;
  "client-certificate-data"?: string;
  "client-key"?: string;
  "client-key-data"?: string;
  exec?: ExecConfig & { env?: Array<{ name: string; value: string }> | null };
  "auth-provider"?: { name?: string; config?: Record<string, string> };
}

interface RawContext {
  cluster?: string;
  user?: string;
  namespace?: string;
}

interface Kubeconfig {
  clusters: Map<string, { raw: RawCluster; dir: string }>;
  users: Map<string, { raw: RawUser; dir: string }>;
  contexts: Map<string, RawContext>;
  currentContext?: string;
}

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? (i === 0 ? "/" : ".") : path.slice(0, i);
}

function resolvePath(dir: string, p: string): string {
  if (p.startsWith("/")) return p;
  if (p.startsWith("~/")) return (Deno.env.get("HOME") ?? "") + p.slice(1);
  return `${dir}/${p}`;
}

function decodeBase64(data: string, what: string): string {
  try {
    const bin = atob(data.replace(/\s+/g, ""));
    return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch {
    throw new KubeConfigError(`${what} is not valid base64`);
  }
}

function readText(path: string, what: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (err) {
    throw new KubeConfigError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
}

function namedList(value: unknown, field: string, file: string): Array<{ name: string; body: unknown }> {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new KubeConfigError(`${file}: ${field} must be a list`);
  return value.map((e: RawNamed, i: number) => {
    if (!e || typeof e.name !== "string" || !e.name) {
      throw new KubeConfigError(`${file}: ${field}[${i}].name is missing`);
    }
    const key = field.slice(0, -1); // clusters → cluster
    return { name: e.name, body: e[key] ?? {} };
  });
}

/** Parses kubeconfig YAML text; `file` names it in errors and anchors relative paths. */
function parseKubeconfig(text: string, file: string): Kubeconfig {
  let doc: Record<string, unknown>;
  try {
    doc = (yaml.load(text) ?? {}) as Record<string, unknown>;
  } catch (err) {
    throw new KubeConfigError(`${file} is not valid YAML: ${(err as Error).message}`);
  }
  if (typeof doc !== "object" || Array.isArray(doc)) throw new KubeConfigError(`${file} is not a kubeconfig`);
  const dir = dirname(file);
  const out: Kubeconfig = { clusters: new Map(), users: new Map(), contexts: new Map() };
  for (const { name, body } of namedList(doc.clusters, "clusters", file)) {
    out.clusters.set(name, { raw: body as RawCluster, dir });
  }
  for (const { name, body } of namedList(doc.users, "users", file)) {
    out.users.set(name, { raw: body as RawUser, dir });
  }
  for (const { name, body } of namedList(doc.contexts, "contexts", file)) {
    out.contexts.set(name, body as RawContext);
  }
  if (typeof doc["current-context"] === "string" && doc["current-context"]) {
    out.currentContext = doc["current-context"];
  }
  return out;
}

/** Merges kubeconfigs as client-go does for KUBECONFIG lists: the first file to define a name wins. */
function merge(configs: Kubeconfig[]): Kubeconfig {
  const out: Kubeconfig = { clusters: new Map(), users: new Map(), contexts: new Map() };
  for (const c of configs) {
    for (const [k, v] of c.clusters) if (!out.clusters.has(k)) out.clusters.set(k, v);
    for (const [k, v] of c.users) if (!out.users.has(k)) out.users.set(k, v);
    for (const [k, v] of c.contexts) if (!out.contexts.has(k)) out.contexts.set(k, v);
    out.currentContext ??= c.currentContext;
  }
  return out;
}

function userAuth(name: string, raw: RawUser, dir: string): {
  auth: AuthSource;
  clientCert?: { cert: string; key: string };
} {
  let clientCert: { cert: string; key: string } | undefined;
  const certData = raw["client-certificate-data"];
  const certFile = raw["client-certificate"];
  const keyData = raw["client-key-data"];
  const keyFile = raw["client-key"];
  if (certData || certFile) {
    const cert = certData
      ? decodeBase64(certData, `user ${name} client-certificate-data`)
      : readText(resolvePath(dir, certFile!), "client certificate");
    if (!keyData && !keyFile) {
      throw new KubeConfigError(`user ${name} has a client certificate but no client key`);
    }
    const key = keyData
      ? decodeBase64(keyData, `user ${name} client-key-data`)
      : readText(resolvePath(dir, keyFile!), "client key");
    clientCert = { cert, key };
  }
  if (raw.token) return { auth: { kind: "token", token: raw.token.trim() }, clientCert };
  const tokenFile = raw.tokenFile ?? raw["token-file"];
  if (tokenFile) return { auth: { kind: "tokenFile", path: resolvePath(dir, tokenFile) }, clientCert };
  if (raw.exec) {
    if (!raw.exec.command) throw new KubeConfigError(`user ${name}: exec.command is missing`);
    return {
      auth: {
        kind: "exec",
        exec: { ...raw.exec, env: raw.exec.env ?? undefined, dir },
        cacheKey: name,
      },
      clientCert,
    };
  }
  const provider = raw["auth-provider"];
  if (provider) {
    const cfg = provider.config ?? {};
    // Legacy auth providers: use the token they cached in the kubeconfig, as client-go does
    // until it expires; refreshing them needs their (removed) plugins.
    const token = cfg["id-token"] ?? cfg["access-token"];
    if (cfg.tokenFile) {
      return { auth: { kind: "tokenFile", path: resolvePath(dir, cfg.tokenFile) }, clientCert };
    }
    if (token) return { auth: { kind: "token", token }, clientCert };
    throw new KubeConfigError(
      `user ${name}: auth-provider "${
        provider.name ?? "?"
      }" without a cached token is not supported; use an exec plugin`,
    );
  }
  if (raw.username !== undefined && raw.password !== undefined) {
    return { auth: { kind: "basic", username: raw.username, password: raw.password }, clientCert };
  }
  return { auth: { kind: "none" }, clientCert };
}

function connectionFrom(cfg: Kubeconfig, contextName: string | undefined, source: string): ClusterConnection {
  const name = contextName ?? cfg.currentContext;
  if (!name) throw new KubeConfigError(`${source}: no current-context; pass --context`);
  const ctx = cfg.contexts.get(name);
  if (!ctx) {
    const known = [...cfg.contexts.keys()].join(", ") || "none";
    throw new KubeConfigError(`${source}: context "${name}" not found (known: ${known})`);
  }
  if (!ctx.cluster) throw new KubeConfigError(`${source}: context "${name}" names no cluster`);
  const cluster = cfg.clusters.get(ctx.cluster);
  if (!cluster) {
    throw new KubeConfigError(`${source}: cluster "${ctx.cluster}" of context "${name}" not found`);
  }
  const raw = cluster.raw;
  if (!raw.server) throw new KubeConfigError(`${source}: cluster "${ctx.cluster}" has no server`);
  if (raw["insecure-skip-tls-verify"] === true) {
    throw new KubeConfigError(
      `${source}: cluster "${ctx.cluster}" sets insecure-skip-tls-verify, which Portager does not support; ` +
        `set certificate-authority(-data) instead`,
    );
  }
  const caCerts: string[] = [];
  if (raw["certificate-authority-data"]) {
    caCerts.push(
      decodeBase64(raw["certificate-authority-data"], `cluster ${ctx.cluster} certificate-authority-data`),
    );
  } else if (raw["certificate-authority"]) {
    caCerts.push(readText(resolvePath(cluster.dir, raw["certificate-authority"]), "certificate authority"));
  }
  let auth: AuthSource = { kind: "none" };
  let clientCert: ClusterConnection["clientCert"];
  if (ctx.user) {
    const user = cfg.users.get(ctx.user);
    if (!user) throw new KubeConfigError(`${source}: user "${ctx.user}" of context "${name}" not found`);
    ({ auth, clientCert } = userAuth(ctx.user, user.raw, user.dir));
  }
  return {
    server: raw.server.replace(/\/+$/, ""),
    caCerts,
    clientCert,
    auth,
    namespace: ctx.namespace || undefined,
    proxyUrl: raw["proxy-url"],
    contextName: name,
    inCluster: false,
  };
}

/** Reads kubeconfig file(s) and returns the connection of `context` (or the current one). */
export function loadKubeconfigFiles(files: string[], context?: string): ClusterConnection {
  const configs = files.map((f) => parseKubeconfig(readText(f, "kubeconfig"), f));
  return connectionFrom(merge(configs), context, files.join(":"));
}

/** The in-cluster connection from the pod's service-account mount and KUBERNETES_SERVICE_* env. */
export function loadInCluster(options: LoadKubeConfigOptions = {}): ClusterConnection {
  const env = options.env ?? ((n: string) => Deno.env.get(n));
  const dir = options.serviceAccountDir ?? SA_DIR;
  const host = env("KUBERNETES_SERVICE_HOST");
  const port = env("KUBERNETES_SERVICE_PORT");
  if (!host || !port) {
    throw new KubeConfigError("not running in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set");
  }
  const h = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  let namespace: string | undefined;
  try {
    namespace = Deno.readTextFileSync(`${dir}/namespace`).trim() || undefined;
  } catch {
    // optional
  }
  return {
    server: `https://${h}:${port}`,
    caCerts: [readText(`${dir}/ca.crt`, "service-account CA")],
    auth: { kind: "tokenFile", path: `${dir}/token` },
    namespace,
    contextName: "inCluster",
    inCluster: true,
  };
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds the cluster the way controller-runtime does: `--kubeconfig`, then `KUBECONFIG`
 * (a `:`-separated list, merged), then in-cluster, then `~/.kube/config`.
 */
export function loadKubeConfig(options: LoadKubeConfigOptions = {}): ClusterConnection {
  const env = options.env ?? ((n: string) => Deno.env.get(n));
  // --kubeconfig takes one path or, as KUBECONFIG, a ':'-separated list (the flag's env is KUBECONFIG)
  const list = (options.kubeconfig ?? env("KUBECONFIG") ?? "").split(":").filter((f) => f);
  if (list.length > 0) {
    return loadKubeconfigFiles(list.filter((f, i) => i === 0 || exists(f)), options.context);
  }
  if (env("KUBERNETES_SERVICE_HOST") && !options.context) return loadInCluster(options);
  const home = env("HOME");
  const fallback = home ? `${home}/.kube/config` : undefined;
  if (fallback && exists(fallback)) return loadKubeconfigFiles([fallback], options.context);
  throw new KubeConfigError(
    "no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, run in a pod, or create ~/.kube/config",
  );
}
