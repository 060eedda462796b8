/**
 * The `/v2/` ping: finds where a registry answers (HTTPS, or plain HTTP for loopback and listed
 * insecure registries) and which auth challenge it makes, once per registry, as
 * go-containerregistry's `transport.Ping` does. A listed registry is probed over HTTPS first; a
 * loopback one over plain HTTP first (nothing on the network to protect against, and a process's
 * first TLS connection costs ~30 ms of CPU for a registry that is most often plain), then HTTPS
 * when the plain answer is an HTTPS server's refusal (400) or no answer.
 * @module
 */

import { type Challenge, chooseChallenge, parseChallenges } from "./auth.ts";
import { errorFromResponse, foreignChallenge, OciError } from "./errors.ts";
import { allowsPlainHttp, isLoopbackHost, registryApiHost } from "./reference.ts";
import type { RegistryResponse } from "./response.ts";
import { type Sender, SendFailure, sendFailureError } from "./send.ts";

/** How long the probe of a registry's first scheme (of two) waits (10 s). */
export const PROBE_TIMEOUT_MS = 10_000;

/** What the ping learnt about a registry. */
export interface PingResult {
  /** `https://host/` or `http://host/` of the registry API. */
  base: URL;
  /** The challenge its `/v2/` answered with, when it wants auth. */
  challenge?: Challenge;
}

/** Options of {@linkcode ping}. */
export interface PingOptions {
  /** Sends one exchange without retries (the probe of the first of two schemes). */
  probe: Sender;
  /** Sends with retries (the last scheme tried). */
  sender: Sender;
  /** Hosts that may be reached over plain HTTP besides loopback. */
  insecureRegistries?: string[];
  /** The idle timeout, for the probe's bound and error messages. */
  timeoutMs: number;
  /** Cancels the ping. */
  signal?: AbortSignal;
}

/** Pings `registry`'s `/v2/`: HTTPS, plain HTTP where allowed (first for loopback hosts). */
export async function ping(registry: string, opts: PingOptions): Promise<PingResult> {
  const apiHost = registryApiHost(registry);
  const schemes = isLoopbackHost(apiHost)
    ? ["http", "https"]
    : allowsPlainHttp(apiHost, opts.insecureRegistries) || allowsPlainHttp(registry, opts.insecureRegistries)
    ? ["https", "http"]
    : ["https"];
  const context = (url: URL) => ({
    registry,
    action: `reach the registry API at ${url.href}`,
    timeoutMs: opts.timeoutMs,
  });
  let lastError: unknown;
  let lastUrl = new URL(`https://${apiHost}/v2/`);
  // a loopback registry that answers neither way: the plain-HTTP attempt is the one to report
  let plain: { error: unknown; url: URL } | undefined;
  // the request that failed TLS (https), not the plain-HTTP fallback tried after it
  let tls: { failure: SendFailure; url: URL } | undefined;
  for (const [i, scheme] of schemes.entries()) {
    const base = new URL(`${scheme}://${apiHost}/`);
    const url = new URL("/v2/", base);
    lastUrl = url;
    const req = { registry, url, method: "GET", headers: {}, authOrigin: base.origin, signal: opts.signal };
    let res: RegistryResponse;
    try {
      // Probing HTTPS on a host that may be plain HTTP: one short attempt, then fall back.
      res = i < schemes.length - 1
        ? await opts.probe.send({ ...req, timeoutMs: Math.min(opts.timeoutMs, PROBE_TIMEOUT_MS) })
        : await opts.sender.send(req);
    } catch (e) {
      lastError = e;
      if (e instanceof SendFailure && e.kind === "Tls") tls = { failure: e, url };
      if (e instanceof SendFailure && e.kind === "Aborted") break;
      if (scheme === "http" && i === 0) plain = { error: e, url };
      continue;
    }
    if (res.status === 401 && new URL(res.url).origin !== base.origin) {
      await res.discard();
      throw foreignChallenge({ registry, base }, new URL(res.url), {
        action: `reach the registry API at ${url.href}`,
      });
    }
    if (res.status === 401) {
      const challenge = chooseChallenge(parseChallenges(res.headers.get("www-authenticate") ?? ""));
      await res.discard();
      return challenge ? { base, challenge } : { base };
    }
    if (res.ok) {
      await res.discard();
      return { base };
    }
    if (res.status === 400 && scheme === "http" && i < schemes.length - 1) {
      // an HTTPS server's answer to plain HTTP: speak TLS to it
      await res.discard();
      continue;
    }
    const text = await res.text();
    // HTTP spoken to a TLS-only registry whose certificate we could not verify: say that.
    if (tls) throw sendFailureError(tls.failure, context(tls.url));
    throw errorFromResponse(res.status, text, context(url));
  }
  if (tls) throw sendFailureError(tls.failure, context(tls.url));
  if (plain) [lastError, lastUrl] = [plain.error, plain.url];
  const err = sendFailureError(lastError, context(lastUrl));
  if (err.reason !== "Network" || schemes.length > 1) throw err;
  throw new OciError(
    err.reason,
    `${err.message} (plain HTTP is only tried for localhost, 127.0.0.1, ::1 and insecureRegistries)`,
    { registry, retryable: err.retryable, cause: err.cause },
  );
}
