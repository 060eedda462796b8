/**
 * A small Kubernetes REST client on Deno's fetch: JSON requests with the cluster's CA, client
 * certificate and credentials (token files re-read as they rotate, exec plugins cached until
 * expiry, both refreshed on 401), typed errors, and watch streams of newline-delimited JSON.
 * @module
 */

import type { AuthSource, ClusterConnection, ExecConfig } from "./config.ts";
import { sleep } from "../oci/mod.ts";

/** A failed Kubernetes API call. `reason` is stable; `status` is the HTTP status (0: no response). */
export class KubeError extends Error {
  /** Stable reason: NotFound, Conflict, Gone, Forbidden, Unauthorized, Network, Timeout, ... */
  readonly reason: string;
  /** HTTP status; 0 when there was no response. */
  readonly status: number;
  /** The apiserver's Status object, when it sent one. */
  readonly details?: KubeStatus;
  /** Creates the error. */
  constructor(
    message: string,
    options: { reason: string; status: number; details?: KubeStatus; cause?: unknown },
  ) {
    super(message, { cause: options.cause });
    this.name = "KubeError";
    this.reason = options.reason;
    this.status = options.status;
    this.details = options.details;
  }
}

/** The apiserver's `Status` kind (errors, and watch ERROR events). */
export interface KubeStatus {
  /** Always "Status". */
  kind?: "Status";
  /** "Failure" for errors. */
  status?: string;
  /** Human-readable description. */
  message?: string;
  /** Machine-readable reason (NotFound, Conflict, Expired, ...). */
  reason?: string;
  /** HTTP status code. */
  code?: number;
  /** Kind, name and causes of the failure. */
  details?: Record<string, unknown>;
}

const REASON_BY_STATUS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotSupported",
  409: "Conflict",
  410: "Gone",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

/** Builds a KubeError from a status code and the apiserver's Status body; `what` names the request. */
export function kubeErrorFrom(status: number, options: { body?: KubeStatus; what: string }): KubeError {
  const { body, what } = options;
  let reason = body?.reason || REASON_BY_STATUS[status] || (status >= 500 ? "InternalError" : "Unknown");
  // 409 is AlreadyExists on create and Conflict on a stale update; keep the apiserver's word
  if (status === 409 && body?.reason === "AlreadyExists") reason = "AlreadyExists";
  if (status === 410) reason = "Gone";
  const msg = body?.message ? `${what}: ${body.message}` : `${what}: HTTP ${status}`;
  return new KubeError(msg, { reason, status, details: body });
}

/** Whether `err` is a KubeError with the given reason. */
export function isKubeReason(err: unknown, reason: string): boolean {
  return err instanceof KubeError && err.reason === reason;
}

/** Runs an exec credential plugin; injectable for tests. */
export type CommandRunner = (
  exec: ExecConfig,
  execInfo: string,
) => Promise<{ code: number; stdout: string; stderr: string }>;

async function runCommand(
  exec: ExecConfig,
  execInfo: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: Record<string, string> = { KUBERNETES_EXEC_INFO: execInfo };
  for (const e of exec.env ?? []) env[e.name] = e.value;
  const command = exec.command.includes("/") && !exec.command.startsWith("/") && exec.dir
    ? `${exec.dir}/${exec.command}`
    : exec.command;
  const out = await new Deno.Command(command, {
    args: exec.args ?? [],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

interface Credential {
  header?: string;
  clientCert?: { cert: string; key: string };
  /** Epoch ms after which the credential must be refreshed. */
  refreshAt: number;
}

/** Produces the Authorization header (and exec-plugin client certificates) for requests. */
class CredentialSource {
  #auth: AuthSource;
  #cached?: Credential;
  #pending?: Promise<Credential>;
  #run: CommandRunner;

  constructor(auth: AuthSource, run: CommandRunner) {
    this.#auth = auth;
    this.#run = run;
  }

  get(force = false): Promise<Credential> {
    if (!force && this.#cached && Date.now() < this.#cached.refreshAt) return Promise.resolve(this.#cached);
    this.#pending ??= this.#load().then((c) => {
      this.#cached = c;
      return c;
    }).finally(() => this.#pending = undefined);
    return this.#pending;
  }

  async #load(): Promise<Credential> {
    const a = this.#auth;
    switch (a.kind) {
      case "none":
        return { refreshAt: Infinity };
      case "token":
        return { header: `Bearer ${a.token}`, refreshAt: Infinity };
      case "basic":
        return {
          header: `Basic ${
            btoa(String.fromCharCode(...new TextEncoder().encode(`${a.username}:${a.password}`)))
          }`,
          refreshAt: Infinity,
        };
      case "tokenFile": {
        let token: string;
        try {
          token = (await Deno.readTextFile(a.path)).trim();
        } catch (err) {
          throw new KubeError(`cannot read token file ${a.path}: ${(err as Error).message}`, {
            reason: "Unauthorized",
            status: 0,
          });
        }
        // client-go re-reads projected tokens every minute; they rotate well before expiry
        return { header: `Bearer ${token}`, refreshAt: Date.now() + 60_000 };
      }
      case "exec":
        return await this.#exec(a.exec);
    }
  }

  async #exec(exec: ExecConfig): Promise<Credential> {
    const apiVersion = exec.apiVersion ?? "client.authentication.k8s.io/v1";
    const info = JSON.stringify({ apiVersion, kind: "ExecCredential", spec: { interactive: false } });
    let out: { code: number; stdout: string; stderr: string };
    try {
      out = await this.#run(exec, info);
    } catch (err) {
      throw new KubeError(
        `exec credential plugin ${exec.command} failed to start: ${(err as Error).message}`,
        {
          reason: "Unauthorized",
          status: 0,
          cause: err,
        },
      );
    }
    if (out.code !== 0) {
      throw new KubeError(
        `exec credential plugin ${exec.command} exited with ${out.code}: ${out.stderr.trim().slice(0, 300)}`,
        { reason: "Unauthorized", status: 0 },
      );
    }
    let cred: { status?: Record<string, string> };
    try {
      cred = JSON.parse(out.stdout);
    } catch {
      throw new KubeError(`exec credential plugin ${exec.command} printed no ExecCredential JSON`, {
        reason: "Unauthorized",
        status: 0,
      });
    }
    const st = cred.status ?? {};
    const expiry = st.expirationTimestamp ? Date.parse(st.expirationTimestamp) : Infinity;
    return {
      header: st.token ? `Bearer ${st.token}` : undefined,
      clientCert: st.clientCertificateData && st.clientKeyData
        ? { cert: st.clientCertificateData, key: st.clientKeyData }
        : undefined,
      // refresh a little before expiry
      refreshAt: Number.isFinite(expiry) ? expiry - 10_000 : Infinity,
    };
  }
}

/** Query parameters; undefined values are left out. */
export type Query = Record<string, string | number | boolean | undefined>;

/** Options of one API request. */
export interface RequestOptions {
  /** Query parameters. */
  query?: Query;
  /** JSON body. */
  body?: unknown;
  /** Content-Type of the body; default application/json. */
  contentType?: string;
  /** Aborts the request. */
  signal?: AbortSignal;
  /** Default: the client's timeout. */
  timeoutMs?: number;
}

/** One watch event. `object` is the resource, or a Status for ERROR. */
export interface WatchEvent<T = Record<string, unknown>> {
  /** What happened to the object. */
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  /** The object, or a Status for ERROR. */
  object: T;
}

/** Options of {@linkcode KubeClient}. */
export interface KubeClientOptions {
  /** User-Agent header; default "portager". */
  userAgent?: string;
  /** Timeout of non-watch requests; default 30 s. */
  timeoutMs?: number;
  /** Runs exec credential plugins; default Deno.Command (needs --allow-run). */
  runCommand?: CommandRunner;
  /** Called after each request with its method and HTTP status, or "<error>" without an answer. */
  onResponse?: (method: string, code: number | "<error>") => void;
}

function queryString(q: Query | undefined): string {
  if (!q) return "";
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined) p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : "";
}

async function readStatus(res: Response): Promise<KubeStatus | undefined> {
  const text = await res.text().catch(() => "");
  try {
    const v = JSON.parse(text);
    return typeof v === "object" && v ? v : undefined;
  } catch {
    return text ? { message: text.slice(0, 500) } : undefined;
  }
}

/** The Kubernetes API client. Call `close()` when done (it owns an HTTP client). */
export class KubeClient {
  /** Where the API server is and how to authenticate. */
  readonly connection: ClusterConnection;
  #creds: CredentialSource;
  #clients = new Map<string, Deno.HttpClient>();
  #userAgent: string;
  #timeoutMs: number;
  #closed = false;
  #onResponse?: (method: string, code: number | "<error>") => void;

  /** Creates a client for `connection`. */
  constructor(connection: ClusterConnection, options: KubeClientOptions = {}) {
    this.connection = connection;
    this.#creds = new CredentialSource(connection.auth, options.runCommand ?? runCommand);
    this.#userAgent = options.userAgent ?? "portager";
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#onResponse = options.onResponse;
  }

  /** The namespace of the kubeconfig context or the pod, if any. */
  get defaultNamespace(): string | undefined {
    return this.connection.namespace;
  }

  #httpClient(extraCert?: { cert: string; key: string }): Deno.HttpClient {
    const cert = extraCert ?? this.connection.clientCert;
    const key = cert ? cert.cert : "";
    let c = this.#clients.get(key);
    if (!c) {
      const opts: Deno.CreateHttpClientOptions = { caCerts: this.connection.caCerts };
      if (this.connection.proxyUrl) opts.proxy = { url: this.connection.proxyUrl };
      c = cert
        ? Deno.createHttpClient({ ...opts, cert: cert.cert, key: cert.key })
        : Deno.createHttpClient(opts);
      this.#clients.set(key, c);
    }
    return c;
  }

  async #fetch(
    method: string,
    path: string,
    options: RequestOptions & { watch?: boolean },
  ): Promise<{ res: Response; cleanup: () => void }> {
    if (this.#closed) throw new KubeError("Kubernetes client is closed", { reason: "Closed", status: 0 });
    const url = `${this.connection.server}${path}${queryString(options.query)}`;
    const what = `${method} ${path}`;
    for (let attempt = 0;; attempt++) {
      const cred = await this.#creds.get(attempt === 1);
      const headers = new Headers({ "user-agent": this.#userAgent, accept: "application/json" });
      if (cred.header) headers.set("authorization", cred.header);
      let body: string | undefined;
      if (options.body !== undefined) {
        headers.set("content-type", options.contentType ?? "application/json");
        body = JSON.stringify(options.body);
      }
      // one controller per attempt: the caller's signal and (for plain requests) a timeout
      const ac = new AbortController();
      const onAbort = () => ac.abort(options.signal?.reason);
      if (options.signal?.aborted) onAbort();
      options.signal?.addEventListener("abort", onAbort, { once: true });
      const timeoutMs = options.watch ? 0 : options.timeoutMs ?? this.#timeoutMs;
      const timer = timeoutMs > 0 ? setTimeout(() => ac.abort(new Error("timeout")), timeoutMs) : undefined;
      const cleanup = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
      };
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers,
          body,
          signal: ac.signal,
          client: this.#httpClient(cred.clientCert),
        });
      } catch (err) {
        cleanup();
        this.#onResponse?.(method, "<error>");
        const aborted = options.signal?.aborted;
        const timedOut = !aborted && ac.signal.aborted;
        throw new KubeError(
          aborted
            ? `${what}: aborted`
            : timedOut
            ? `${what}: no answer within ${timeoutMs} ms`
            : `${what}: ${(err as Error).message}`,
          { reason: aborted ? "Aborted" : timedOut ? "Timeout" : "Network", status: 0, cause: err },
        );
      }
      this.#onResponse?.(method, res.status);
      if (res.status === 401 && attempt === 0 && this.connection.auth.kind !== "none") {
        await res.body?.cancel();
        cleanup();
        continue; // refresh a rotated token or an expired exec credential once
      }
      if (res.status === 429 && attempt < 3) {
        const after = Math.min(10, Number(res.headers.get("retry-after")) || 1);
        await res.body?.cancel();
        cleanup();
        try {
          await sleep(after * 1000, options.signal);
        } catch {
          throw new KubeError(`${what}: aborted`, { reason: "Aborted", status: 0 });
        }
        continue;
      }
      if (!res.ok) {
        const st = await readStatus(res);
        cleanup();
        throw kubeErrorFrom(res.status, { body: st, what });
      }
      return { res, cleanup };
    }
  }

  /** Sends one request and returns the parsed JSON answer; failures are KubeError. */
  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const { res, cleanup } = await this.#fetch(method, path, options);
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw new KubeError(`${method} ${path}: ${(err as Error).message}`, {
        reason: "Network",
        status: 0,
        cause: err,
      });
    } finally {
      cleanup();
    }
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new KubeError(`${method} ${path}: answer is not JSON`, {
        reason: "InvalidResponse",
        status: res.status,
      });
    }
  }

  /**
   * Opens a watch (`?watch=1` is added). Resolves once the apiserver accepted it (so the watch
   * is established), with the stream of events; the stream ends when the server closes it and
   * throws a KubeError with reason Network when the connection breaks. Aborting `signal` ends it.
   */
  async watch<T = Record<string, unknown>>(
    path: string,
    options: { query?: Query; signal?: AbortSignal } = {},
  ): Promise<AsyncGenerator<WatchEvent<T>>> {
    const { res, cleanup } = await this.#fetch("GET", path, {
      query: { ...options.query, watch: 1 },
      signal: options.signal,
      watch: true,
    });
    return readWatch<T>(res, path, options.signal, cleanup);
  }

  /** Releases the HTTP clients. */
  close(): void {
    this.#closed = true;
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }
}

/** Size of the one buffer a watch stream is read into. */
const WATCH_BUFFER_BYTES = 64 * 1024;

/**
 * The text of a response body, chunk by chunk, read into ONE reused buffer. A default reader
 * of a fetch body gets every chunk in a freshly allocated 64 KiB ArrayBuffer; on a watch that
 * is one per event, and the garbage (external memory V8 collects late) grew the operator's RSS
 * by tens of MiB while 1000 ImageSyncs synced. A BYOB reader fills our buffer instead.
 */
async function* bodyText(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = body.getReader({ mode: "byob" });
  } catch {
    // not a byte stream: fall back to the default reader
  }
  if (!byob) {
    const reader = body.getReader();
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        yield decoder.decode(value, { stream: true });
      }
    } finally {
      await reader.cancel().catch(() => {});
    }
    return;
  }
  let buffer = new ArrayBuffer(WATCH_BUFFER_BYTES);
  try {
    while (true) {
      const { done, value } = await byob.read(new Uint8Array(buffer));
      if (value) buffer = value.buffer as ArrayBuffer; // the read transferred it; same memory
      if (done) break;
      yield decoder.decode(value, { stream: true });
    }
  } finally {
    await byob.cancel().catch(() => {});
  }
}

async function* readWatch<T>(
  res: Response,
  path: string,
  signal: AbortSignal | undefined,
  cleanup: () => void,
): AsyncGenerator<WatchEvent<T>> {
  if (!res.body) {
    cleanup();
    return;
  }
  const chunks = bodyText(res.body);
  let buf = "";
  try {
    while (true) {
      let chunk: IteratorResult<string>;
      try {
        chunk = await chunks.next();
      } catch (err) {
        if (signal?.aborted) return;
        throw new KubeError(`watch ${path}: ${(err as Error).message}`, {
          reason: "Network",
          status: 0,
          cause: err,
        });
      }
      if (chunk.done) break;
      buf += chunk.value;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        let ev: WatchEvent<T>;
        try {
          ev = JSON.parse(line);
        } catch {
          throw new KubeError(`watch ${path}: malformed event`, { reason: "InvalidResponse", status: 200 });
        }
        yield ev;
      }
    }
  } finally {
    await chunks.return(undefined).catch(() => {});
    cleanup();
  }
}
