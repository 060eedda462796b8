/**
 * The operator's HTTP endpoint on `Deno.serve`: `/metrics` (Prometheus text), `/healthz`
 * (the process is alive) and `/readyz` (watch established; leader or ready standby).
 * @module
 */

import type { Logger } from "./log.ts";

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
}

/** A running HTTP server. */
export interface MetricsServer {
  /** The address listened on. */
  hostname: string;
  /** The port listened on. */
  port: number;
  /** Stops accepting connections and waits for in-flight requests. */
  shutdown(): Promise<void>;
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

/** Starts the metrics/health server on `addr`. */
export function startServer(addr: string, options: ServerOptions = {}): Promise<MetricsServer> {
  const { hostname, port } = parseListenAddress(addr);
  const log = options.logger;
  const ac = new AbortController();
  return new Promise((resolve, reject) => {
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = Deno.serve({
        hostname,
        port,
        signal: ac.signal,
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
      }, async (req) => {
        const url = new URL(req.url);
        if (req.method !== "GET" && req.method !== "HEAD") {
          return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
        }
        switch (url.pathname) {
          case "/metrics": {
            if (!options.metrics) return new Response("no metrics\n", { status: 404 });
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
      });
    } catch (err) {
      reject(err);
    }
  });
}
