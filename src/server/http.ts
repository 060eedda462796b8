/**
 * The operator's HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (the process is
 * alive) and `/readyz` (watch established; leader or ready standby). Plain HTTP on
 * `Deno.serve`; HTTPS on `Deno.serve` when HTTP/2 is wanted, else on `node:https` (HTTP/1.1
 * only: controller-runtime turns HTTP/2 off by default since the HTTP/2 Rapid Reset and
 * Stream Cancellation CVEs, and Deno.serve always offers h2). `/metrics` may be guarded by a
 * filter (authentication and authorization, src/server/authn.ts). {@linkcode serveHttp} is the
 * one server lifecycle (listen, TLS, graceful shutdown, then a close hook) these endpoints and
 * the webhook endpoint share; the webhook's sits behind the connection guard (guard.ts).
 * @module
 */

import type { Logger } from "../log/mod.ts";
import { type ConnectionGuard, guardConnections, type GuardOptions } from "./guard.ts";

/** A readiness or liveness check: `ok` plus a short human reason. */
export interface ProbeResult {
  /** Whether the probe passes. */
  ok: boolean;
  /** e.g. "watch not established" */
  detail?: string;
}

/** Options for {@linkcode startServer}: what it answers, and how it listens. */
export interface ServerOptions extends Pick<ServeOptions, "logger" | "onListening" | "tls" | "http2"> {
  /** Produces the Prometheus exposition and its content type. */
  metrics?: () => Promise<{ body: string; contentType: string }>;
  /** /readyz; default always ready. */
  ready?: () => ProbeResult;
  /** /healthz; default always healthy. */
  healthy?: () => ProbeResult;
  /** Whether /healthz /livez /readyz are served here; default true (false: probes have their own port). */
  probes?: boolean;
  /** Checks each /metrics request: undefined lets it through, else the response to send. */
  authorize?: (req: Request) => Promise<Response | undefined>;
}

/** A running HTTP server. */
export interface MetricsServer {
  /** The address listened on. */
  hostname: string;
  /** The port listened on. */
  port: number;
  /** Stops accepting connections and waits for in-flight requests. */
  shutdown(): Promise<void>;
  /**
   * Serves new connections with another certificate and key (a rotated Secret); present on
   * the HTTP/1.1 HTTPS server only (Deno.serve cannot swap its certificate).
   */
  reloadTls?(tls: { cert: string; key: string }): void;
}

/**
 * Splits `host:port` (`:8080` means all interfaces, `[::1]:80` IPv6); a port of 0 asks the
 * kernel for a free one.
 */
export function parseListenAddress(addr: string): { hostname: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr.trim());
  if (!m) throw new RangeError(`listen address "${addr}" is not host:port (e.g. ":8080", "127.0.0.1:0")`);
  const port = Number(m[3]);
  if (port > 65535) throw new RangeError(`listen address "${addr}": port out of range`);
  const hostname = m[1] ?? (m[2] || "0.0.0.0");
  return { hostname, port };
}

function probe(result: ProbeResult): Response {
  const body = result.ok ? "ok\n" : `not ok: ${result.detail ?? "not ready"}\n`;
  return new Response(body, {
    status: result.ok ? 200 : 503,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

/** The request handler of {@linkcode startServer}. */
function handler(options: ServerOptions): (req: Request) => Promise<Response> {
  return async (req) => {
    const url = new URL(req.url);
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    switch (url.pathname) {
      case "/metrics": {
        if (!options.metrics) return new Response("no metrics\n", { status: 404 });
        const denied = await options.authorize?.(req);
        if (denied) return denied;
        const { body, contentType } = await options.metrics();
        return new Response(body, { headers: { "content-type": contentType } });
      }
      case "/healthz":
      case "/livez":
        if (options.probes === false) break;
        return probe(options.healthy?.() ?? { ok: true });
      case "/readyz":
        if (options.probes === false) break;
        return probe(options.ready?.() ?? { ok: true });
    }
    return new Response("not found\n", { status: 404 });
  };
}

/** Options of {@linkcode serveHttp}: how to listen and what to do around the handler. */
export interface ServeOptions {
  /** Where handler failures are logged. */
  logger?: Logger;
  /** The log message of a handler failure; default "http handler failed". */
  errorMessage?: string;
  /** Called once the socket is bound, with the chosen port (useful with port 0). */
  onListening?: (addr: { hostname: string; port: number }) => void;
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: string; key: string };
  /** With `tls`: offer HTTP/2 as well; default false (HTTP/1.1 only). */
  http2?: boolean;
  /**
   * Bound what a client controls below HTTP (connections open, slow or idle ones) with a
   * connection guard in front of the server (src/server/guard.ts); plain HTTP only.
   */
  guard?: GuardOptions;
  /** Runs at shutdown once no request is in flight any more (e.g. stopping what handlers fed). */
  onClose?: () => Promise<void>;
}

/**
 * Serves `handle` on `addr` until shutdown: Deno.serve for plain HTTP and for HTTPS with
 * HTTP/2; node:https for HTTPS over HTTP/1.1 (see the module doc). Shutdown stops accepting,
 * waits for the requests in flight, then runs `onClose`. The one server lifecycle of the
 * operator's endpoints (metrics, probes, webhooks).
 */
export async function serveHttp(
  addr: string,
  handle: (req: Request) => Promise<Response>,
  options: ServeOptions = {},
): Promise<MetricsServer> {
  const at = parseListenAddress(addr);
  if (options.guard && options.tls) throw new RangeError("the connection guard serves plain HTTP only");
  const server = options.guard
    ? await guardedServe(at, handle, options)
    : options.tls && !options.http2
    ? await startNodeHttps(at, options.tls, handle, options)
    : await denoServe({ ...at, ...options.tls }, handle, options);
  if (!options.onClose) return server;
  const stop = server.shutdown;
  let closing: Promise<void> | undefined;
  return {
    ...server,
    shutdown: () => closing ??= stop().then(options.onClose),
  };
}

/** Starts the metrics/health server on `addr`. */
export function startServer(addr: string, options: ServerOptions = {}): Promise<MetricsServer> {
  return serveHttp(addr, handler(options), options);
}

/** Deno.serve on a TCP address (optionally TLS) or a Unix socket, resolved once bound. */
function denoServe(
  listen: ({ hostname: string; port: number } & Partial<Deno.TlsCertifiedKeyPem>) | { path: string },
  handle: (req: Request) => Promise<Response>,
  options: ServeOptions,
): Promise<MetricsServer> {
  return new Promise((resolve, reject) => {
    let server: Deno.HttpServer;
    try {
      // a Unix socket's options differ from TCP's by `path` alone, so one call serves both
      server = Deno.serve({
        ...listen,
        onListen: (a: Deno.Addr) => {
          const bound = "path" in a ? { hostname: a.path, port: 0 } : {
            hostname: (a as Deno.NetAddr).hostname,
            port: (a as Deno.NetAddr).port,
          };
          options.onListening?.(bound);
          resolve({
            ...bound,
            async shutdown() {
              // graceful: aborting the signal instead drops the answers of requests in flight
              await server.shutdown();
              await server.finished;
            },
          });
        },
        onError: (err: unknown) => {
          options.logger?.error(options.errorMessage ?? "http handler failed", { error: err });
          return new Response("internal error\n", { status: 500 });
        },
      } as Deno.ServeTcpOptions, handle);
    } catch (err) {
      reject(err);
    }
  });
}

/**
 * Plain HTTP behind the connection guard: the server listens on a Unix socket in a private
 * temporary folder (on loopback TCP when no folder can be made, e.g. a read-only /tmp) and
 * the guard, on `at`, passes each bounded connection on to it.
 */
async function guardedServe(
  at: { hostname: string; port: number },
  handle: (req: Request) => Promise<Response>,
  options: ServeOptions,
): Promise<MetricsServer> {
  const dir = await Deno.makeTempDir({ prefix: "portager-http-" }).catch((err) => {
    options.logger?.debug("http: no folder for the guarded server's socket; loopback TCP instead", {
      error: err,
    });
    return undefined;
  });
  const removeDir = () => dir ? Deno.remove(dir, { recursive: true }).catch(() => {}) : Promise.resolve();
  const path = `${dir}/http.sock`;
  let inner: MetricsServer | undefined;
  let guard: ConnectionGuard | undefined;
  try {
    const innerOptions = { ...options, onListening: undefined };
    inner = await denoServe(dir ? { path } : { hostname: "127.0.0.1", port: 0 }, handle, innerOptions);
    const innerPort = inner.port;
    guard = guardConnections(Deno.listen({ ...at, transport: "tcp" }), {
      ...options.guard,
      connect: () =>
        dir
          ? Deno.connect({ transport: "unix", path })
          : Deno.connect({ hostname: "127.0.0.1", port: innerPort }),
      logger: options.logger,
    });
  } catch (err) {
    await inner?.shutdown();
    await removeDir();
    throw err;
  }
  const { hostname, port } = guard.addr;
  options.onListening?.({ hostname, port });
  const g = guard;
  const i = inner;
  return {
    hostname,
    port,
    async shutdown() {
      g.stopAccepting();
      await i.shutdown();
      await g.close();
      await removeDir();
    },
  };
}

/** A node request's body as a web stream, read as the handler reads it (paused in between). */
function bodyStream(req: import("node:http").IncomingMessage): ReadableStream<Uint8Array> {
  let done = false;
  const drop = () => {
    done = true;
    req.removeAllListeners("data");
    req.resume();
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      req.pause();
      req.on("data", (chunk: Uint8Array) => {
        if (done) return;
        controller.enqueue(new Uint8Array(chunk));
        if ((controller.desiredSize ?? 0) <= 0) req.pause();
      });
      req.once("end", () => {
        if (!done) controller.close();
        done = true;
      });
      req.once("error", (err) => {
        if (!done) controller.error(err);
        done = true;
      });
    },
    pull() {
      req.resume();
    },
    // the handler stopped reading (e.g. a body over its limit): the rest is dropped
    cancel: drop,
  });
}

/** HTTPS over HTTP/1.1 only, on node:https (imported only for it). */
async function startNodeHttps(
  at: { hostname: string; port: number },
  tls: { cert: string; key: string },
  handle: (req: Request) => Promise<Response>,
  options: ServeOptions,
): Promise<MetricsServer> {
  const https = await import("node:https");
  const server = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (typeof v === "string") headers.set(k, v);
      else if (Array.isArray(v)) { for (const x of v) headers.append(k, x); }
    }
    const host = /^[A-Za-z0-9.:[\]-]+$/.test(req.headers.host ?? "") ? req.headers.host : "localhost";
    const hasBody = req.method !== "GET" && req.method !== "HEAD";
    const request = new Request(`https://${host}${req.url?.startsWith("/") ? req.url : "/"}`, {
      method: req.method,
      headers,
      body: hasBody ? bodyStream(req) : undefined,
      duplex: "half",
    } as RequestInit);
    if (!hasBody) req.resume();
    handle(request).then(async (response) => {
      const body = req.method === "HEAD" ? undefined : new Uint8Array(await response.arrayBuffer());
      res.writeHead(response.status, Object.fromEntries(response.headers));
      res.end(body);
    }).catch((err) => {
      options.logger?.error(options.errorMessage ?? "http handler failed", { error: err });
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      res.end("internal error\n");
    }).finally(() => {
      // what the handler left of the body is read and dropped, so the connection can be reused
      req.removeAllListeners("data");
      req.resume();
    });
  });
  server.headersTimeout = 30_000;
  server.requestTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(at.port, at.hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const a = server.address() as { address: string; port: number };
  options.onListening?.({ hostname: a.address, port: a.port });
  return {
    hostname: a.address,
    port: a.port,
    reloadTls: (next) => server.setSecureContext({ cert: next.cert, key: next.key }),
    shutdown: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
}
