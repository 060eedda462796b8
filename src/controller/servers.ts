/**
 * The manager's HTTP servers: /metrics and the probes (/healthz /readyz) on one address or
 * two, HTTPS with a certificate that is re-read when rotated (controller-runtime's
 * certwatcher), authorization of /metrics by the caller's check.
 * @module
 */

import type { Metrics } from "../metrics/mod.ts";
import { sleep } from "../oci/mod.ts";
import { type MetricsServer, type ProbeResult, startServer } from "../server/http.ts";
import type { Logger } from "../log/mod.ts";

/** Where /metrics and the probes listen. */
export interface HttpOptions {
  /** /metrics (and the probes too when `healthProbeAddr` is unset); port 0 picks a free port. */
  metricsAddr?: string;
  /** /healthz /readyz on their own port; unset: served with /metrics. */
  healthProbeAddr?: string;
  /** Called once the metrics server listens. */
  onListening?: (addr: { hostname: string; port: number }) => void;
  /** Called once the probe server listens (when it is separate). */
  onProbesListening?: (addr: { hostname: string; port: number }) => void;
  /** No probes at all (controller-runtime's `--health-probe-bind-address=0`). */
  probesOff?: boolean;
  /** Serve /metrics over HTTPS with this certificate and key (PEM). */
  metricsTls?: { cert: string; key: string };
  /** With `metricsTls`: offer HTTP/2 too; default false. */
  http2?: boolean;
  /** Checks /metrics requests (authentication and authorization); undefined lets one through. */
  metricsAuthorize?: (req: Request) => Promise<Response | undefined>;
  /**
   * Re-reads the metrics certificate every `intervalMs` (default 10 s) and serves a changed one
   * to new connections, as controller-runtime's certwatcher does for a rotated Secret.
   */
  metricsTlsReload?: { load(): Promise<{ cert: string; key: string }>; intervalMs?: number };
}

/** What the servers serve, and how they are stopped. */
export interface ServedByManager {
  /** The registry /metrics exposes. */
  metrics: Metrics;
  /** Readiness for /readyz. */
  ready(): ProbeResult;
  /** Where serving is logged. */
  logger: Logger;
  /** Aborted when the servers stop (ends the certificate watch); aborted here when start-up fails. */
  stop: AbortController;
}

/**
 * Starts the servers `http` asks for (none when it names no address); each one's listen
 * address is logged and handed to its `onListening`. Rejects, having stopped what it started,
 * when an address cannot be served.
 */
export async function startHttpServers(
  http: HttpOptions | undefined,
  served: ServedByManager,
): Promise<MetricsServer[]> {
  if (!http?.metricsAddr && !http?.healthProbeAddr) return [];
  const servers: MetricsServer[] = [];
  const metrics = async () => ({
    body: await served.metrics.expose(),
    contentType: served.metrics.contentType,
  });
  const ready = () => served.ready();
  const separate = http.healthProbeAddr !== undefined || http.probesOff === true;
  try {
    if (http.metricsAddr) {
      const what = separate ? "/metrics" : "/metrics /healthz /readyz";
      const scheme = http.metricsTls ? "https" : "http";
      const server = await startServer(http.metricsAddr, {
        metrics,
        ready: separate ? undefined : ready,
        probes: !separate,
        tls: http.metricsTls,
        http2: http.http2,
        authorize: http.metricsAuthorize,
        logger: served.logger,
        onListening: (a) => {
          served.logger.info(`serving ${what}`, {
            address: `${a.hostname}:${a.port}`,
            scheme,
            access: http.metricsAuthorize ? "TokenReview+SubjectAccessReview" : "anyone",
          });
          http.onListening?.(a);
        },
      });
      servers.push(server);
      if (http.metricsTls && http.metricsTlsReload) {
        void watchCertificate(server, http.metricsTls, {
          reload: http.metricsTlsReload,
          logger: served.logger,
          stop: served.stop.signal,
        });
      }
    }
    if (http.healthProbeAddr) {
      servers.push(
        await startServer(http.healthProbeAddr, {
          ready,
          logger: served.logger,
          onListening: (a) => {
            served.logger.info("serving /healthz /readyz", { address: `${a.hostname}:${a.port}` });
            http.onProbesListening?.(a);
          },
        }),
      );
    }
  } catch (err) {
    served.stop.abort();
    await Promise.all(servers.map((s) => s.shutdown()));
    throw err;
  }
  return servers;
}

/** Serves a rotated metrics certificate to new connections until `stop` aborts. */
async function watchCertificate(
  server: MetricsServer,
  current: { cert: string; key: string },
  options: { reload: NonNullable<HttpOptions["metricsTlsReload"]>; logger: Logger; stop: AbortSignal },
): Promise<void> {
  const reload = options.reload;
  if (!server.reloadTls) {
    options.logger.warn(
      "the metrics certificate is not reloaded with --enable-http2; a rotated one needs a restart",
    );
    return;
  }
  let failed = "";
  while (!options.stop.aborted) {
    await sleep(reload.intervalMs ?? 10_000, options.stop).catch(() => {});
    if (options.stop.aborted) return;
    try {
      const next = await reload.load();
      failed = "";
      if (next.cert === current.cert && next.key === current.key) continue;
      server.reloadTls(next);
      current = next;
      options.logger.info("serving a rotated metrics certificate");
    } catch (err) {
      // say it once per distinct failure; the certificate in use stays
      const message = (err as Error).message;
      if (message !== failed) {
        options.logger.warn("cannot reload the metrics certificate", { error: message });
      }
      failed = message;
    }
  }
}
