/**
 * A real, throw-away Kubernetes control plane for integration tests: etcd + kube-apiserver
 * (built by scripts/build-tools.sh) on 127.0.0.1 free ports, with a private CA, an admin client
 * certificate (system:masters), a service-account signing key so TokenRequest works, and RBAC
 * authorization so tests can act as a ServiceAccount. No controller-manager or scheduler runs:
 * namespaces never finish terminating, pods never get scheduled, and no garbage collection.
 *
 * ```ts
 * const kube = await startKube();
 * try {
 *   await kube.apply(crdObject());
 *   const token = await kube.tokenFor("portager", "portager");
 *   const kubeconfig = await kube.kubeconfigForToken(token);
 * } finally {
 *   await kube.stop();
 * }
 * ```
 * @module
 */

import { type CertAuthority, makeCA, makeCert, makeKeyPair } from "./certs.ts";
import { freePorts } from "./ports.ts";
import { toolPath } from "./tools.ts";
import { sleep } from "./process.ts";

/** A running etcd + kube-apiserver pair; stop() kills both and removes every file. */
export interface KubeCluster {
  /** The apiserver URL, `https://127.0.0.1:PORT`. */
  server: string;
  /** PEM of the private CA that signed the serving and admin certificates. */
  caPem: string;
  /** Path of an admin kubeconfig (client certificate in group system:masters, data inlined). */
  kubeconfigPath: string;
  /** fetch() against the apiserver as admin over mTLS; `path` is relative to `server`. */
  adminFetch(path: string, init?: RequestInit): Promise<Response>;
  /** A TokenRequest token for namespace/serviceAccount (both created if missing). */
  tokenFor(
    namespace: string,
    serviceAccount: string,
    opts?: { expirationSeconds?: number; audiences?: string[] },
  ): Promise<string>;
  /** Writes a kubeconfig that authenticates with `token` (default namespace in its context). */
  kubeconfigForToken(token: string, opts?: { namespace?: string }): Promise<string>;
  /** Creates `obj` as admin, or replaces it if it exists; returns the stored object. */
  apply(obj: unknown): Promise<unknown>;
  /** Kills both processes (SIGTERM, then SIGKILL), waits for them, removes the temp dir. */
  stop(): Promise<void>;
  /**
   * Kills kube-apiserver (SIGKILL unless `signal` says otherwise), runs `whileDown`, then starts
   * it again on the same port with the same etcd data and waits for /readyz: clients keep their
   * kubeconfig, watches break and must resume.
   */
  restartApiserver(opts?: { signal?: Deno.Signal; whileDown?: () => Promise<void> }): Promise<void>;
  /** The temp dir holding certs, kubeconfigs, etcd data and the logs. */
  dir: string;
  /** etcd client URL, `http://127.0.0.1:PORT`. */
  etcdUrl: string;
  /** Path of the CA certificate file. */
  caFile: string;
  /** Admin client certificate PEM (CN=admin, O=system:masters). */
  adminCertPem: string;
  /** Admin client key PEM. */
  adminKeyPem: string;
  /** Paths of the captured stderr logs of both processes. */
  logFiles: { etcd: string; apiserver: string };
}

/** Options for startKube. */
export interface StartKubeOptions {
  /** How long to wait for etcd health and apiserver /readyz together (default 90 s). */
  readyTimeoutMs?: number;
  /** Extra kube-apiserver flags, appended after the harness's own (later flags win). */
  apiserverArgs?: string[];
  /** Print the startup time to stderr (default true). */
  printTiming?: boolean;
}

/** Errors of the Kubernetes harness; `reason` is StartFailed, RequestFailed or Timeout. */
export class KubeHarnessError extends Error {
  /** Stable machine-readable reason. */
  readonly reason: "StartFailed" | "RequestFailed" | "Timeout";
  /** HTTP status for RequestFailed. */
  readonly status?: number;
  /** Creates the error. */
  constructor(
    reason: "StartFailed" | "RequestFailed" | "Timeout",
    message: string,
    status?: number,
  ) {
    super(message);
    this.name = "KubeHarnessError";
    this.reason = reason;
    this.status = status;
  }
}

const STOP_GRACE_MS = 5000;
const SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local";

/** A child process whose stderr/stdout go straight to files in the cluster dir. */
class LoggedProcess {
  readonly child: Deno.ChildProcess;
  readonly status: Promise<Deno.CommandStatus>;
  readonly logFile: string;
  exited = false;

  private constructor(child: Deno.ChildProcess, logFile: string) {
    this.child = child;
    this.logFile = logFile;
    this.status = child.status.then((s) => {
      this.exited = true;
      return s;
    });
  }

  /**
   * Spawns `cmd` through `sh -c 'exec ...'` so the server writes its logs to real files (the log
   * is readable while it runs, and Deno pumps no pipes) and `child.pid` is the server itself.
   */
  static spawn(cmd: string, args: string[], logBase: string): LoggedProcess {
    const logFile = `${logBase}.log`;
    const child = new Deno.Command("/bin/sh", {
      args: [
        "-c",
        'log=$1 out=$2; shift 2; exec "$@" >>"$out" 2>>"$log"',
        "sh",
        logFile,
        `${logBase}.out.log`,
        cmd,
        ...args,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    return new LoggedProcess(child, logFile);
  }

  /** SIGTERM, wait up to graceMs, then SIGKILL; resolves when the process has exited. */
  async stop(graceMs: number): Promise<void> {
    if (!this.exited) {
      try {
        this.child.kill("SIGTERM");
      } catch { /* already gone */ }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = await Promise.race([
        this.status.then(() => false),
        new Promise<boolean>((r) => timer = setTimeout(() => r(true), graceMs)),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        try {
          this.child.kill("SIGKILL");
        } catch { /* already gone */ }
      }
    }
    await this.status;
  }

  /** Last `lines` lines of the stderr log. */
  async tail(lines = 40): Promise<string> {
    try {
      const text = await Deno.readTextFile(this.logFile);
      return text.trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }
}

/** fetch that gives up after `ms` (own timer, cleared, so test sanitizers stay quiet). */
async function fetchWithTimeout(
  url: string,
  init: RequestInit & { client?: Deno.HttpClient },
  ms: number,
): Promise<Response> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  try {
    return await fetch(url, { ...init, signal: ac.signal });
  } finally {
    clearTimeout(timer);
  }
}

function b64(text: string): string {
  return btoa(text);
}

function addressInUse(log: string): boolean {
  return /address already in use/i.test(log);
}

async function startEtcd(
  dir: string,
  deadline: number,
): Promise<{ proc: LoggedProcess; url: string }> {
  const etcd = toolPath("etcd");
  for (let attempt = 1;; attempt++) {
    const [clientPort, peerPort] = freePorts(2);
    const url = `http://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    const dataDir = `${dir}/etcd-data-${attempt}`;
    const proc = LoggedProcess.spawn(etcd, [
      "--name=default",
      `--data-dir=${dataDir}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=default=${peer}`,
      `--initial-cluster-token=portager-test-${crypto.randomUUID()}`,
      "--unsafe-no-fsync",
      "--log-level=warn",
      "--logger=zap",
      "--log-outputs=stderr",
    ], `${dir}/etcd`);
    // A port taken by someone else makes etcd exit at once; a stranger's etcd on it would
    // answer /health, so we also require our own process to be alive after that.
    while (Date.now() < deadline && !proc.exited) {
      try {
        const res = await fetchWithTimeout(`${url}/health`, {}, 1000);
        const body = await res.text();
        if (res.ok && body.includes('"health":"true"')) {
          await sleep(100);
          if (!proc.exited) return { proc, url };
          break;
        }
      } catch { /* not listening yet */ }
      await sleep(100);
    }
    const log = await proc.tail();
    await proc.stop(1000);
    if (attempt < 3 && addressInUse(log) && Date.now() < deadline) continue;
    throw new KubeHarnessError(
      proc.exited ? "StartFailed" : "Timeout",
      `etcd did not become healthy on ${url}; last log lines:\n${log}`,
    );
  }
}

interface ClusterFiles {
  ca: CertAuthority;
  servingCert: string;
  servingKey: string;
  saPub: string;
  saKey: string;
}

async function startApiserver(
  dir: string,
  files: ClusterFiles,
  etcdUrl: string,
  client: Deno.HttpClient,
  deadline: number,
  extraArgs: string[],
  again?: { port: number; etcdPrefix: string },
): Promise<{ proc: LoggedProcess; server: string; port: number; etcdPrefix: string }> {
  const bin = toolPath("kube-apiserver");
  await Deno.mkdir(`${dir}/apiserver-certs`, { recursive: true });
  // a unique prefix: even a mixed-up etcd would not share data between clusters
  const etcdPrefix = again?.etcdPrefix ?? `/registry-${crypto.randomUUID().slice(0, 8)}`;
  for (let attempt = 1;; attempt++) {
    const port = again?.port ?? freePorts(1)[0];
    const server = `https://127.0.0.1:${port}`;
    const proc = LoggedProcess.spawn(bin, [
      `--etcd-servers=${etcdUrl}`,
      `--etcd-prefix=${etcdPrefix}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${port}`,
      `--cert-dir=${dir}/apiserver-certs`,
      `--tls-cert-file=${files.servingCert}`,
      `--tls-private-key-file=${files.servingKey}`,
      `--client-ca-file=${files.ca.certFile}`,
      `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
      `--service-account-key-file=${files.saPub}`,
      `--service-account-signing-key-file=${files.saKey}`,
      "--authorization-mode=RBAC",
      "--service-cluster-ip-range=10.0.0.0/24",
      // no token controller runs, so pods must not need a "default" ServiceAccount
      "--disable-admission-plugins=ServiceAccount",
      // the "kubernetes" Endpoints would be 127.0.0.1, which validation rejects
      "--endpoint-reconciler-type=none",
      "--enable-priority-and-fairness=false",
      "--allow-privileged=true",
      "--profiling=false",
      "--v=1",
      "--log-flush-frequency=1s",
      ...extraArgs,
    ], `${dir}/kube-apiserver`);
    let lastReadyz = "";
    while (Date.now() < deadline && !proc.exited) {
      try {
        const res = await fetchWithTimeout(`${server}/readyz?verbose`, { client }, 2000);
        const text = await res.text();
        if (res.status === 200) return { proc, server, port, etcdPrefix };
        lastReadyz = `; last /readyz (${res.status}):\n${text.trim()}`;
      } catch { /* not listening yet, or TLS to a stranger */ }
      await sleep(200);
    }
    const log = await proc.tail();
    await proc.stop(STOP_GRACE_MS);
    // a restart must keep its port; a first start may pick another
    if (!again && attempt < 3 && addressInUse(log) && Date.now() < deadline) continue;
    throw new KubeHarnessError(
      proc.exited ? "StartFailed" : "Timeout",
      `kube-apiserver did not become ready on ${server}${lastReadyz}\nlast log lines:\n${log}`,
    );
  }
}

function kubeconfigYaml(
  server: string,
  caPem: string,
  user: Record<string, string>,
  namespace = "default",
): string {
  const userLines = Object.entries(user).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}`);
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: portager-test",
    "  cluster:",
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(caPem)}`,
    "users:",
    "- name: portager-test-user",
    "  user:",
    ...userLines,
    "contexts:",
    "- name: portager-test",
    "  context:",
    "    cluster: portager-test",
    "    user: portager-test-user",
    `    namespace: ${namespace}`,
    "current-context: portager-test",
    "",
  ].join("\n");
}

interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  spec?: Record<string, unknown>;
}

interface ApiResource {
  name: string;
  namespaced: boolean;
  kind: string;
}

/**
 * Starts etcd and kube-apiserver in a new temp dir and waits until /readyz answers 200 to the
 * admin; throws KubeHarnessError (with the log tail) if either fails to start.
 */
export async function startKube(opts: StartKubeOptions = {}): Promise<KubeCluster> {
  const t0 = performance.now();
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 90_000);
  // Resolve the binaries first: a missing build should fail before anything is created.
  toolPath("etcd");
  toolPath("kube-apiserver");
  const dir = await Deno.makeTempDir({ prefix: "portager-kube-" });
  const procs: LoggedProcess[] = [];
  let client: Deno.HttpClient | undefined;
  const onUnload = () => {
    // The test process is exiting without stop(): do not leave servers behind.
    for (const p of procs) {
      try {
        p.child.kill("SIGKILL");
      } catch { /* gone */ }
    }
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* gone */ }
  };
  globalThis.addEventListener("unload", onUnload);

  async function cleanup(): Promise<void> {
    // apiserver first (it talks to etcd), then etcd
    for (const p of [...procs].reverse()) await p.stop(STOP_GRACE_MS);
    procs.length = 0;
    client?.close();
    client = undefined;
    globalThis.removeEventListener("unload", onUnload);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }

  try {
    const etcdStart = startEtcd(dir, deadline).then((r) => {
      procs.push(r.proc);
      return r;
    });
    const ca = await makeCA(dir, "ca");
    const [serving, admin, sa] = await Promise.all([
      makeCert(dir, ca, {
        cn: "kube-apiserver",
        sans: ["127.0.0.1", "localhost", "kubernetes.default.svc", "10.0.0.1"],
        name: "apiserver",
      }),
      makeCert(dir, ca, {
        cn: "admin",
        organizations: ["system:masters"],
        client: true,
        name: "admin",
      }),
      makeKeyPair(dir, "service-account", { keyType: "rsa" }),
    ]);
    client = Deno.createHttpClient({
      caCerts: [ca.certPem],
      cert: admin.certPem,
      key: admin.keyPem,
    });
    const etcd = await etcdStart;
    const tEtcd = performance.now();
    const files: ClusterFiles = {
      ca,
      servingCert: serving.certFile,
      servingKey: serving.keyFile,
      saPub: sa.publicKeyFile,
      saKey: sa.privateKeyFile,
    };
    const api = await startApiserver(dir, files, etcd.url, client, deadline, opts.apiserverArgs ?? []);
    procs.push(api.proc);
    let apiProc = api.proc;
    const adminClient = client;
    const restartApiserver = async (
      r: { signal?: Deno.Signal; whileDown?: () => Promise<void> } = {},
    ): Promise<void> => {
      try {
        apiProc.child.kill(r.signal ?? "SIGKILL");
      } catch { /* already gone */ }
      await apiProc.stop(STOP_GRACE_MS);
      procs.splice(procs.indexOf(apiProc), 1);
      await r.whileDown?.();
      const again = await startApiserver(
        dir,
        files,
        etcd.url,
        adminClient,
        Date.now() + (opts.readyTimeoutMs ?? 90_000),
        opts.apiserverArgs ?? [],
        { port: api.port, etcdPrefix: api.etcdPrefix },
      );
      apiProc = again.proc;
      // apiserver before etcd in procs: cleanup stops them in reverse order
      procs.push(apiProc);
    };
    if (opts.printTiming ?? true) {
      console.error(
        `[kube harness] apiserver ready at ${api.server} in ${
          ((performance.now() - t0) / 1000).toFixed(1)
        }s (etcd healthy after ${((tEtcd - t0) / 1000).toFixed(1)}s)`,
      );
    }
    const kubeconfigPath = `${dir}/admin.kubeconfig`;
    await Deno.writeTextFile(
      kubeconfigPath,
      kubeconfigYaml(api.server, ca.certPem, {
        "client-certificate-data": b64(admin.certPem),
        "client-key-data": b64(admin.keyPem),
      }),
    );
    return makeCluster({
      dir,
      server: api.server,
      etcdUrl: etcd.url,
      ca,
      adminCertPem: admin.certPem,
      adminKeyPem: admin.keyPem,
      kubeconfigPath,
      client,
      logFiles: { etcd: etcd.proc.logFile, apiserver: api.proc.logFile },
      cleanup,
      restartApiserver,
    });
  } catch (e) {
    await cleanup();
    throw e;
  }
}

function makeCluster(c: {
  dir: string;
  server: string;
  etcdUrl: string;
  ca: CertAuthority;
  adminCertPem: string;
  adminKeyPem: string;
  kubeconfigPath: string;
  client: Deno.HttpClient;
  logFiles: { etcd: string; apiserver: string };
  cleanup: () => Promise<void>;
  restartApiserver: KubeCluster["restartApiserver"];
}): KubeCluster {
  let stopped: Promise<void> | undefined;
  let kubeconfigCount = 0;
  const discovery = new Map<string, ApiResource[]>();

  function adminFetch(path: string, init: RequestInit = {}): Promise<Response> {
    if (stopped) return Promise.reject(new KubeHarnessError("RequestFailed", "cluster stopped"));
    return fetch(new URL(path, c.server), { ...init, client: c.client });
  }

  /** JSON request as admin; throws RequestFailed unless the status is 2xx or in `allow`. */
  async function request(
    method: string,
    path: string,
    body?: unknown,
    allow: number[] = [],
  ): Promise<{ status: number; json: Record<string, unknown> }> {
    const res = await adminFetch(path, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = text ? JSON.parse(text) : {};
    } catch { /* not JSON */ }
    if (!res.ok && !allow.includes(res.status)) {
      const msg = typeof json.message === "string" ? json.message : text.slice(0, 500);
      throw new KubeHarnessError(
        "RequestFailed",
        `${method} ${path} → ${res.status}: ${msg}`,
        res.status,
      );
    }
    return { status: res.status, json };
  }

  function apiBase(apiVersion: string): string {
    return apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  }

  /** The resource serving `kind` in `apiVersion`; polls while a new CRD is being published. */
  async function resourceFor(apiVersion: string, kind: string): Promise<ApiResource> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      let list = discovery.get(apiVersion);
      if (!list) {
        const { status, json } = await request("GET", apiBase(apiVersion), undefined, [404, 503]);
        if (status === 200) {
          list = (json.resources as ApiResource[] | undefined) ?? [];
        }
      }
      const found = list?.find((r) => r.kind === kind && !r.name.includes("/"));
      if (found) {
        discovery.set(apiVersion, list!);
        return found;
      }
      if (Date.now() > deadline) {
        throw new KubeHarnessError(
          "Timeout",
          `the apiserver serves no kind ${kind} in ${apiVersion} (is its CRD applied?)`,
        );
      }
      await sleep(200);
    }
  }

  async function waitForCrd(name: string): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { json } = await request(
        "GET",
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`,
      );
      const conds = ((json.status as Record<string, unknown> | undefined)?.conditions ??
        []) as Array<{ type: string; status: string }>;
      if (conds.some((x) => x.type === "Established" && x.status === "True")) return;
      if (Date.now() > deadline) {
        throw new KubeHarnessError("Timeout", `CRD ${name} not Established after 30 s`);
      }
      await sleep(100);
    }
  }

  async function apply(obj: unknown): Promise<unknown> {
    const o = obj as KubeObject;
    if (!o?.apiVersion || !o.kind || !o.metadata?.name) {
      throw new KubeHarnessError(
        "RequestFailed",
        "apply needs an object with apiVersion, kind and metadata.name",
      );
    }
    const res = await resourceFor(o.apiVersion, o.kind);
    const ns = o.metadata.namespace ?? "default";
    const collection = `${apiBase(o.apiVersion)}${res.namespaced ? `/namespaces/${ns}` : ""}/${res.name}`;
    const body = structuredClone(o);
    if (res.namespaced) body.metadata!.namespace = ns;
    let stored: Record<string, unknown>;
    const created = await request("POST", collection, body, [409]);
    if (created.status !== 409) {
      stored = created.json;
    } else {
      const item = `${collection}/${encodeURIComponent(o.metadata.name)}`;
      for (let attempt = 1;; attempt++) {
        const current = await request("GET", item);
        const meta = current.json.metadata as { resourceVersion: string };
        body.metadata!.resourceVersion = meta.resourceVersion;
        const put = await request("PUT", item, body, attempt < 5 ? [409] : []);
        if (put.status !== 409) {
          stored = put.json;
          break;
        }
      }
    }
    if (o.apiVersion.startsWith("apiextensions.k8s.io/") && o.kind === "CustomResourceDefinition") {
      await waitForCrd(o.metadata.name);
      const spec = o.spec as {
        group: string;
        names: { kind: string };
        versions: Array<{ name: string; served: boolean }>;
      };
      for (const v of spec.versions.filter((v) => v.served)) {
        discovery.delete(`${spec.group}/${v.name}`);
        await resourceFor(`${spec.group}/${v.name}`, spec.names.kind);
      }
    }
    return stored;
  }

  async function tokenFor(
    namespace: string,
    serviceAccount: string,
    opts: { expirationSeconds?: number; audiences?: string[] } = {},
  ): Promise<string> {
    await request("POST", "/api/v1/namespaces", {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: namespace },
    }, [409]);
    const nsPath = `/api/v1/namespaces/${encodeURIComponent(namespace)}`;
    await request("POST", `${nsPath}/serviceaccounts`, {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: serviceAccount, namespace },
    }, [409]);
    const { json } = await request(
      "POST",
      `${nsPath}/serviceaccounts/${encodeURIComponent(serviceAccount)}/token`,
      {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: {
          expirationSeconds: opts.expirationSeconds ?? 3600,
          ...(opts.audiences ? { audiences: opts.audiences } : {}),
        },
      },
    );
    const token = (json.status as { token?: string } | undefined)?.token;
    if (!token) {
      throw new KubeHarnessError("RequestFailed", "TokenRequest returned no token");
    }
    return token;
  }

  async function kubeconfigForToken(
    token: string,
    opts: { namespace?: string } = {},
  ): Promise<string> {
    const path = `${c.dir}/token-${++kubeconfigCount}.kubeconfig`;
    await Deno.writeTextFile(
      path,
      kubeconfigYaml(c.server, c.ca.certPem, { token }, opts.namespace),
    );
    return path;
  }

  function stop(): Promise<void> {
    stopped ??= c.cleanup();
    return stopped;
  }

  return {
    server: c.server,
    caPem: c.ca.certPem,
    caFile: c.ca.certFile,
    kubeconfigPath: c.kubeconfigPath,
    dir: c.dir,
    etcdUrl: c.etcdUrl,
    adminCertPem: c.adminCertPem,
    adminKeyPem: c.adminKeyPem,
    logFiles: c.logFiles,
    adminFetch,
    tokenFor,
    kubeconfigForToken,
    apply,
    stop,
    restartApiserver: (opts) => {
      if (stopped) return Promise.reject(new KubeHarnessError("RequestFailed", "cluster stopped"));
      return c.restartApiserver(opts);
    },
  };
}
