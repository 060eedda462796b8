/**
 * A registry that serves the OCI 1.1 referrers API (`GET /v2/<name>/referrers/<digest>`):
 * go-containerregistry's `pkg/registry` with `registry.WithReferrersSupport(true)`, in memory,
 * on 127.0.0.1 (tests/harness/go/referrers_registry/main.go, built by scripts/build-tools.sh).
 * Debian's docker-registry (./registry.ts) has no referrers API, so the pair covers both sides
 * of the referrers fallback.
 *
 * By default (`strict`) a thin layer makes `pkg/registry` answer as distribution-spec v1.1
 * says: a referrer's `artifactType` is the manifest's own (else its config's media type), the
 * `artifactType` query filters and sets `OCI-Filters-Applied: artifactType`, a manifest PUT
 * with a `subject` answers `OCI-Subject`, entries are sorted by digest, and `pageSize`
 * paginates with a `Link: <…>; rel="next"` header. `strict: false` is raw `pkg/registry`.
 * A referrers request for a repository that does not exist answers 404 NAME_UNKNOWN.
 *
 * ```ts
 * const reg = await startReferrersRegistry();
 * try {
 *   const img = await pushImage(reg, "app", "v1");
 *   const res = await fetch(`${reg.url}/v2/app/referrers/${img.digest}`);
 * } finally {
 *   await reg.stop();
 * }
 * ```
 * @module
 */

import { accessEntries, HARNESS_MARK, markedRequest } from "./access_log.ts";
import { makeCA, makeCert } from "./certs.ts";
import { type LineProcess, spawnLineProcess } from "./line_process.ts";
import { toolPath } from "./tools.ts";

/** A running referrers registry; `url`/`caCertPem` fit fixtures.ts's RegistryAccess. */
export interface ReferrersRegistry {
  /** "127.0.0.1:PORT" — the registry part of an image reference. */
  host: string;
  /** "http://host", or "https://host" with `tls`. */
  url: string;
  /** tls: the private CA certificate (PEM) that signed the serving certificate. */
  caCertPem?: string;
  /** tls: path of the same CA certificate. */
  caCertFile?: string;
  /**
   * "METHOD /request-uri STATUS" for every request read from the registry's log so far, in
   * order, e.g. "GET /v2/app/referrers/sha256:… 200". Lines arrive asynchronously; call
   * {@linkcode ReferrersRegistry.flushLog} to be sure every request answered so far is included.
   */
  requestLog(): string[];
  /** Waits until every request answered so far is in the log, then returns requestLog(). */
  flushLog(): Promise<string[]>;
  /** The registry's stderr lines, for diagnosis. */
  logs(): string[];
  /** Stops the registry (its content is gone: storage is in memory) and removes its files. */
  stop(): Promise<void>;
}

/** Options for {@linkcode startReferrersRegistry}. */
export interface StartReferrersRegistryOptions {
  /** Serve HTTPS with a certificate from a private CA (default false). */
  tls?: boolean;
  /** distribution-spec v1.1 behaviour in front of pkg/registry (default true; see module doc). */
  strict?: boolean;
  /** strict: referrers per page; more entries are paginated with a Link header (default: all). */
  pageSize?: number;
}

/** Thrown when the registry does not come up; `reason` is always "RegistryStartFailed". */
export class ReferrersRegistryError extends Error {
  /** Stable machine-readable reason. */
  readonly reason = "RegistryStartFailed";
  /** Creates the error with the registry's output for diagnosis. */
  constructor(message: string, output: readonly string[]) {
    super(`${message}\n--- referrers-registry output ---\n${output.slice(-40).join("\n")}`);
    this.name = "ReferrersRegistryError";
  }
}

const ACCESS = /^ACCESS (\S+) (\S+) (\d{3})$/;

/**
 * Starts the referrers registry on a free 127.0.0.1 port (the OS picks it, so no port race)
 * and resolves once it listens. Throws ToolMissingError if it is not built.
 */
export async function startReferrersRegistry(
  opts: StartReferrersRegistryOptions = {},
): Promise<ReferrersRegistry> {
  const bin = toolPath("referrers-registry");
  const dir = await Deno.makeTempDir({ prefix: "portager-referrers-registry-" });
  let proc: LineProcess | undefined;
  try {
    const args = ["-listen", "127.0.0.1:0", `-strict=${opts.strict ?? true}`];
    if (opts.pageSize !== undefined) args.push("-page-size", String(opts.pageSize));
    let caCertPem: string | undefined;
    let caCertFile: string | undefined;
    if (opts.tls) {
      const ca = await makeCA(dir, "portager-test-referrers-ca");
      const serving = await makeCert(dir, ca, {
        cn: "127.0.0.1",
        sans: ["127.0.0.1", "localhost"],
        name: "registry",
      });
      args.push("-tls-cert", serving.certFile, "-tls-key", serving.keyFile);
      caCertPem = ca.certPem;
      caCertFile = ca.certFile;
    }
    proc = spawnLineProcess(bin, args);
    const running = proc;
    let host: string;
    try {
      const i = await running.waitFor(/^LISTENING /, { timeoutMs: 20_000 });
      host = running.stdout[i].slice("LISTENING ".length);
    } catch (e) {
      throw new ReferrersRegistryError(`referrers registry did not start: ${e}`, running.stderr);
    }
    let stopped: Promise<void> | undefined;
    let flushes = 0;
    const url = `${opts.tls ? "https" : "http"}://${host}`;
    const server: ReferrersRegistry = {
      host,
      url,
      requestLog: () => accessEntries(running.stdout, ACCESS),
      async flushLog() {
        // the registry writes a request's line before answering it: once the marker request's
        // line has been read, so has every line before it
        const mark = `flush-${++flushes}`;
        await markedRequest(url, mark, caCertPem);
        await running.waitFor(`ACCESS GET /v2/?${HARNESS_MARK}${mark} 200`, { timeoutMs: 10_000 });
        return server.requestLog();
      },
      logs: () => [...running.stderr],
      stop() {
        stopped ??= (async () => {
          await running.stop();
          await Deno.remove(dir, { recursive: true }).catch(() => {});
        })();
        return stopped;
      },
    };
    if (caCertPem) {
      server.caCertPem = caCertPem;
      server.caCertFile = caCertFile;
    }
    return server;
  } catch (e) {
    await proc?.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
}
