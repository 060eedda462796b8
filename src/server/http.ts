/**
 * The operator's HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (the process is
 * alive) and `/readyz` (watch established; leader or ready standby). Plain HTTP on
 * `Deno.serve`; HTTPS on `Deno.serve` when HTTP/2 is wanted, else on `node:https` (HTTP/1.1
 * only: controller-runtime turns HTTP/2 off by default since the HTTP/2 Rapid Reset and
 * Stream Cancellation CVEs, and Deno.serve always offers h2). `/metrics` may be guarded by a
 * filter (authentication and authorization, src/server/authn.ts).
 * @module
 */

import type { Logger } from "../log/mod.ts";

/** A readiness or liveness check: `ok` plus a short human reason. */
export interface ProbeResult {
  /** Whether the probe passes. */
  ok: boolean;
  /** e.g. "watch not established" */
  detail?: string;
}

/** Options for {@linkcode startServer}. */
export interface ServerOptions {
  /** Produces the Prometheus exposition and its content type. */
  metrics?: () => Promise<{ body: string; contentType: string }>;
  /** /readyz; default always ready. */
  ready?: () => ProbeResult;
  /** /healthz; default always healthy. */
  healthy?: () => ProbeResult;
  /** Whether /healthz /livez /readyz are served here; default true (false: probes have their own port). */
  probes?: boolean;
  /** Where handler failures are logged. */
  logger?: Logger;
  /** Called once the socket is bound, with the chosen port (useful with port 0). */
  onListening?: (addr: { hostname: string; port: number }) => void;
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: string; key: string };
  /** With `tls`: offer HTTP/2 as well; default false (HTTP/1.1 only). */
  http2?: boolean;
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

/** Starts the metrics/health server on `addr`. */
export function startServer(addr: string, options: ServerOptions = {}): Promise<MetricsServer> {
  const { hostname, port } = parseListenAddress(addr);
  const handle = handler(options);
  if (options.tls && !options.http2) return startNodeHttps({ hostname, port }, options.tls, handle, options);
  const log = options.logger;
  const ac = new AbortController();
  return new Promise((resolve, reject) => {
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = Deno.serve({
        hostname,
        port,
        signal: ac.signal,
        ...options.tls,
        onListen: (a) => {
          options.onListening?.({ hostname: a.hostname, port: a.port });
          resolve({
            hostname: a.hostname,
            port: a.port,
            async shutdown() {
              ac.abort();
              await server.finished;
            },
          });
        },
        onError: (err) => {
          log?.error("http handler failed", { error: err });
          return new Response("internal error\n", { status: 500 });
        },
      }, handle);
    } catch (err) {
      reject(err);
    }
  });
}

/** HTTPS over HTTP/1.1 only, on node:https (imported only for it). */
async function startNodeHttps(
  at: { hostname: string; port: number },
  tls: { cert: string; key: string },
  handle: (req: Request) => Promise<Response>,
  options: ServerOptions,
): Promise<MetricsServer> {
  const https = await import("node:https");
  const server = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (typeof v === "string") headers.set(k, v);
      else if (Array.isArray(v)) { for (const x of v) headers.append(k, x); }
    }
    const host = /^[A-Za-z0-9.:[\]-]+$/.test(req.headers.host ?? "") ? req.headers.host : "localhost";
    const request = new Request(`https://${host}${req.url?.startsWith("/") ? req.url : "/"}`, {
      method: req.method,
      headers,
    });
    // GET and HEAD only: a request body is never read
    req.resume();
    handle(request).then(async (response) => {
      const body = req.method === "HEAD" ? undefined : new Uint8Array(await response.arrayBuffer());
      res.writeHead(response.status, Object.fromEntries(response.headers));
      res.end(body);
    }).catch((err) => {
      options.logger?.error("http handler failed", { error: err });
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      res.end("internal error\n");
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
