/**
 * The webhook endpoint: `POST /webhook/<source>` on its own port. Each request is read with a
 * bounded body, authenticated, rate-limited, parsed, checked against the replay window, and
 * its pushes handed to the coalescer; the answer (202, or a 4xx saying what is wrong) never
 * waits for a sync. Once per burst the pushes are matched against the ImageSyncs and each
 * matching one is synced now, once: queued by this instance when it syncs it, else requested
 * from the one that does (any replica's endpoint works: standbys and other shards pass it on).
 * @module
 */

import type { ImageSync } from "../api/mod.ts";
import { type GuardOptions, type MetricsServer, serveHttp } from "../server/mod.ts";
import type { Logger } from "../log/mod.ts";
import { authenticate, type WebhookSecret } from "./auth.ts";
import { parseDistribution } from "./distribution.ts";
import { parseDockerHub } from "./docker_hub.ts";
import { WebhookError } from "./errors.ts";
import {
  type ParseContext,
  type PushEvent,
  pushProblem,
  WEBHOOK_SOURCES,
  type WebhookSource,
} from "./event.ts";
import { parseGitHub } from "./github.ts";
import { parseHarbor } from "./harbor.ts";
import { matchPushes } from "./match.ts";
import { parseQuay } from "./quay.ts";
import { ReplayGuard, type ReplayGuardOptions } from "./replay.ts";
import { Coalescer, TokenBucket } from "./throttle.ts";

/** Largest request body read (1 MiB); a larger one is refused with 413. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/** How long reading a body may take (10 s); a slower sender gets 408. */
export const DEFAULT_BODY_TIMEOUT_MS = 10_000;
/** Requests handled at once (32); more get 429 at once, so slow senders cannot pile up memory. */
export const DEFAULT_MAX_IN_FLIGHT = 32;

/** The label `result` of `portager_webhook_requests_total`. */
export type WebhookResult = "received" | "accepted" | "rejected";

const PARSERS: Record<WebhookSource, (body: unknown, ctx: ParseContext) => PushEvent[]> = {
  distribution: parseDistribution,
  harbor: parseHarbor,
  dockerhub: parseDockerHub,
  github: parseGitHub,
  quay: parseQuay,
};

/** An ImageSync (`namespace/name`) a push matched, and the push as text for its Event. */
export interface SyncRequest {
  /** `namespace/name`. */
  key: string;
  /** What was pushed, e.g. "a push of host/repo:tag (harbor webhook)". */
  requestedBy: string;
}

/** What the endpoint needs from the runtime that owns the queue. */
export interface WebhookTarget {
  /** Every ImageSync a push may concern (read once per burst). */
  list(signal?: AbortSignal): Promise<ImageSync[]>;
  /**
   * Syncs these ImageSyncs now: queued here when this instance syncs them, else requested from
   * the one that does (a standby's or another shard's push). Resolves once handed over.
   */
  syncNow(requests: SyncRequest[], signal?: AbortSignal): Promise<void>;
  /** Whether pushes can be taken now (e.g. not when shutting down); else they get 503. */
  accepting(): boolean;
}

/** Options of {@linkcode WebhookEndpoint}. */
export interface WebhookOptions {
  /** The shared secret. */
  secret: WebhookSecret;
  /** Logger. */
  logger?: Logger;
  /** Counts each request once as received, then once as accepted or rejected. */
  count?: (source: string, result: WebhookResult) => void;
  /** Largest body read; default {@linkcode DEFAULT_MAX_BODY_BYTES}. */
  maxBodyBytes?: number;
  /** How long reading a body may take; default {@linkcode DEFAULT_BODY_TIMEOUT_MS}. */
  bodyTimeoutMs?: number;
  /** Requests handled at once; default {@linkcode DEFAULT_MAX_IN_FLIGHT}. */
  maxInFlight?: number;
  /** Accepted requests per second in the long run; default 10. */
  ratePerSecond?: number;
  /** Accepted requests at once; default 50. */
  burst?: number;
  /** Pushes of a burst are gathered this long, then matched once; default 1 s. */
  coalesceMs?: number;
  /** Replay window and clock skew. */
  replay?: ReplayGuardOptions;
  /** Bounds on connections (open at once, slow, idle); defaults in src/server/guard.ts. */
  guard?: GuardOptions;
}

/** A text description of a push, for the Event of the sync it triggers. */
export function describePush(push: PushEvent): string {
  return `a push of ${push.registry}/${push.repository}${
    push.tag ? `:${push.tag}` : ""
  } (${push.source} webhook)`;
}

async function readBounded(req: Request, max: number, timeoutMs: number): Promise<Uint8Array> {
  const declared = Number(req.headers.get("content-length") ?? "NaN");
  const tooLarge = () => new WebhookError("TooLarge", `the body is larger than ${max} bytes`);
  if (Number.isFinite(declared) && declared > max) {
    await req.body?.cancel();
    throw tooLarge();
  }
  if (!req.body) return new Uint8Array();
  const parts: Uint8Array[] = [];
  let size = 0;
  const reader = req.body.getReader();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    reader.cancel().catch(() => {});
  }, timeoutMs);
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (timedOut) throw new WebhookError("Timeout", `the body took longer than ${timeoutMs} ms to arrive`);
      if (done) break;
      size += value.byteLength;
      if (size > max) {
        await reader.cancel();
        throw tooLarge();
      }
      parts.push(value);
    }
  } catch (err) {
    if (timedOut && !(err instanceof WebhookError && err.reason === "Timeout")) {
      throw new WebhookError("Timeout", `the body took longer than ${timeoutMs} ms to arrive`);
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

function json(status: number, body: Record<string, unknown>, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body) + "\n", {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** The endpoint's logic, independent of the socket: `handle` answers one request. */
export class WebhookEndpoint {
  readonly #o: WebhookOptions;
  readonly #target: WebhookTarget;
  readonly #bucket: TokenBucket;
  readonly #replay: ReplayGuard;
  readonly #coalescer: Coalescer;
  readonly #stop = new AbortController();
  #inFlight = 0;

  /** Creates the endpoint over the runtime's queue. */
  constructor(target: WebhookTarget, options: WebhookOptions) {
    this.#o = options;
    this.#target = target;
    this.#bucket = new TokenBucket({ ratePerSecond: options.ratePerSecond, burst: options.burst });
    this.#replay = new ReplayGuard(options.replay);
    this.#coalescer = new Coalescer((pushes) => this.#flush(pushes), { delayMs: options.coalesceMs });
  }

  /** Answers one request: 202 with the pushes taken, or the refusal's status and message. */
  async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const m = /^\/webhook\/([a-z]+)\/?$/.exec(url.pathname);
    const source = WEBHOOK_SOURCES.find((s) => s === m?.[1]);
    if (url.pathname === "/healthz" || url.pathname === "/readyz") return new Response("ok\n");
    if (!source) {
      await req.body?.cancel();
      return json(404, {
        reason: "NotFound",
        message: `no such endpoint; use /webhook/<${WEBHOOK_SOURCES.join("|")}>`,
      });
    }
    this.#o.count?.(source, "received");
    this.#inFlight++;
    try {
      if (this.#inFlight > (this.#o.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT)) {
        await req.body?.cancel();
        throw new WebhookError("RateLimited", "too many notifications in flight; retry", {
          retryAfterSeconds: 1,
        });
      }
      if (req.method !== "POST") {
        await req.body?.cancel();
        throw new WebhookError("MethodNotAllowed", "notifications are POSTed");
      }
      const body = await readBounded(
        req,
        this.#o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
        this.#o.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS,
      );
      authenticate(source, { headers: req.headers, url, body, secret: await this.#o.secret.current() });
      if (!this.#target.accepting()) {
        throw new WebhookError("Unavailable", "this instance cannot take pushes now (shutting down); retry", {
          retryAfterSeconds: 5,
        });
      }
      const wait = this.#bucket.take();
      if (wait > 0) {
        throw new WebhookError("RateLimited", `too many notifications; retry in ${wait} s`, {
          retryAfterSeconds: wait,
        });
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
      } catch {
        // not the parser's message: it quotes the body, which is not ours to log
        throw new WebhookError("Malformed", "the body is not JSON (UTF-8)");
      }
      const registry = url.searchParams.get("registry") ?? undefined;
      let found: PushEvent[];
      try {
        found = PARSERS[source](parsed, { headers: req.headers, registry });
      } catch (err) {
        if (err instanceof WebhookError) throw err;
        throw new WebhookError("Malformed", `${source} payload: unexpected shape`);
      }
      for (const push of found) {
        const problem = pushProblem(push);
        if (problem) throw new WebhookError("Malformed", `${source} payload: ${problem}`);
      }
      const pushes = this.#replay.admit(found);
      this.#coalescer.add(pushes);
      this.#o.count?.(source, "accepted");
      this.#o.logger?.debug("webhook accepted", { source, pushes: pushes.length });
      return json(202, { accepted: pushes.length });
    } catch (err) {
      if (!(err instanceof WebhookError)) throw err;
      this.#o.count?.(source, "rejected");
      this.#o.logger?.info("webhook refused", { source, reason: err.reason, message: err.message });
      const headers: Record<string, string> = err.retryAfterSeconds
        ? { "retry-after": String(err.retryAfterSeconds) }
        : {};
      if (err.status === 405) headers.allow = "POST";
      return json(err.status, { reason: err.reason, message: err.message }, headers);
    } finally {
      this.#inFlight--;
    }
  }

  async #flush(pushes: PushEvent[]): Promise<void> {
    let imagesyncs: ImageSync[];
    try {
      imagesyncs = await this.#target.list(this.#stop.signal);
    } catch (err) {
      this.#o.logger?.error("webhook: cannot list ImageSyncs; pushes dropped", {
        error: err,
        pushes: pushes.length,
      });
      return;
    }
    const matches = matchPushes(pushes, imagesyncs);
    const requests = matches.map(({ key, push }) => ({ key, requestedBy: describePush(push) }));
    for (const { key, requestedBy } of requests) {
      this.#o.logger?.info("push matched; syncing now", { imagesync: key, push: requestedBy });
    }
    if (matches.length === 0) {
      this.#o.logger?.debug("webhook: no ImageSync matches", { pushes: pushes.length });
      return;
    }
    try {
      await this.#target.syncNow(requests, this.#stop.signal);
    } catch (err) {
      this.#o.logger?.error("webhook: cannot sync the matched ImageSyncs", { error: err });
    }
  }

  /** Stops: no more flushes; a flush in progress finishes. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.#coalescer.close();
  }
}

/** A running webhook server. */
export type WebhookServer = MetricsServer;

/**
 * Listens on `addr` (`:8082`, `127.0.0.1:0`) and serves {@linkcode WebhookEndpoint} behind the
 * connection guard (src/server/guard.ts: connections open at once, slow and idle ones
 * bounded); shutdown stops accepting, waits for the requests in flight, then for a flush in
 * progress.
 */
export function startWebhookServer(
  addr: string,
  target: WebhookTarget,
  options: WebhookOptions & { onListening?: (a: { hostname: string; port: number }) => void },
): Promise<WebhookServer> {
  const endpoint = new WebhookEndpoint(target, options);
  return serveHttp(addr, (req) => endpoint.handle(req), {
    logger: options.logger,
    errorMessage: "webhook handler failed",
    onListening: options.onListening,
    guard: {
      // a body's own deadline answers 408 first, from the endpoint
      requestTimeoutMs: (options.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS) + 10_000,
      ...options.guard,
    },
    onClose: () => endpoint.close(),
  });
}
