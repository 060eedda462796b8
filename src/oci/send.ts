/**
 * The bottom sender: one HTTP exchange with `fetch`, redirects followed by hand so that
 * `Authorization` only ever reaches the origin it was meant for, an idle timeout on the answer
 * and on every body read, and a custom CA bundle through `Deno.createHttpClient`. The senders
 * above it (retry, then auth in the transport) wrap it the way go-containerregistry composes
 * `http.RoundTripper`s.
 * @module
 */

import { OciError, type OciErrorReason } from "./errors.ts";
import { RegistryResponse } from "./response.ts";

/** Idle timeout per request: no response headers or no body bytes for this long (60 s). */
export const DEFAULT_TIMEOUT_MS = 60_000;
/** Redirects followed per request. */
export const MAX_REDIRECTS = 10;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** One HTTP exchange as the senders pass it down. */
export interface SendRequest {
  /** The registry (host as in references) the exchange is for, in retry reports and errors. */
  registry: string;
  /** Absolute URL. */
  url: URL;
  /** HTTP method. */
  method: string;
  /** Request headers. */
  headers: Record<string, string>;
  /** A replayable body, or a one-shot stream (never retried, never redirected). */
  body?: Uint8Array | string | ReadableStream<Uint8Array>;
  /** The only origin `Authorization` is sent to; it is dropped on a redirect elsewhere. */
  authOrigin: string;
  /** Cancels the exchange. */
  signal?: AbortSignal;
  /** Idle timeout for this exchange, overriding the sender's. */
  timeoutMs?: number;
  /** Whether the exchange may be repeated (default: unless the body is a stream). */
  idempotent?: boolean;
}

/** Anything that performs an exchange: the HTTP sender and the layers wrapping it. */
export interface Sender {
  /** Sends the request; fails with {@linkcode SendFailure} when no response arrived. */
  send(req: SendRequest): Promise<RegistryResponse>;
}

/** A request failure before any response, classified. */
export class SendFailure extends Error {
  /** What went wrong. */
  readonly kind: "Network" | "Timeout" | "Aborted" | "Tls";
  /** The underlying error. */
  readonly error: unknown;

  /** Wraps a failure of one exchange. */
  constructor(kind: "Network" | "Timeout" | "Aborted" | "Tls", error: unknown) {
    super(String(error));
    this.name = "SendFailure";
    this.kind = kind;
    this.error = error;
  }
}

/** The messages of an error and its causes, joined (Deno's fetch hides the reason in `cause`). */
export function describeCause(e: unknown): string {
  const parts: string[] = [];
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur; i++) {
    const msg = cur instanceof Error ? cur.message : String(cur);
    if (msg && !parts.includes(msg)) parts.push(msg);
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join(": ");
}

/** What a failed exchange was for, to say so in the error. */
export interface FailureContext {
  /** Registry host as in references. */
  registry: string;
  /** What the request did ("pull manifest"). */
  action: string;
  /** The reference worked on. */
  reference?: string;
  /** The idle timeout that expired, for the message. */
  timeoutMs: number;
}

/** Turns a failure of an exchange into an {@linkcode OciError} naming what was being done. */
export function sendFailureError(e: unknown, ctx: FailureContext): OciError {
  const { registry, reference } = ctx;
  const what = reference ? `${ctx.action} ${reference}` : ctx.action;
  if (e instanceof SendFailure) {
    const reasons: Record<SendFailure["kind"], OciErrorReason> = {
      Network: "Network",
      Tls: "Network",
      Timeout: "Timeout",
      Aborted: "Aborted",
    };
    const detail = e.kind === "Timeout"
      ? `no response for ${ctx.timeoutMs} ms`
      : e.kind === "Tls"
      ? `TLS verification failed (${describeCause(e.error)}); give the registry's CA with caCerts`
      : e.kind === "Aborted"
      ? "the operation was cancelled"
      : describeCause(e.error);
    return new OciError(
      reasons[e.kind],
      `registry ${registry}: ${e.kind === "Aborted" ? "aborted" : "cannot"} ${what}: ${detail}`,
      { registry, reference, retryable: e.kind === "Network" || e.kind === "Timeout", cause: e.error },
    );
  }
  if (e instanceof OciError) return e;
  return new OciError("Network", `registry ${registry}: cannot ${what}: ${describeCause(e)}`, {
    registry,
    reference,
    cause: e,
  });
}

/** Options of the {@linkcode HttpSender}. */
export interface HttpSenderOptions {
  /** PEM CA certificates trusted in addition to the system roots. */
  caCerts?: string[];
  /** Idle timeout (default {@linkcode DEFAULT_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** User-Agent header, unless the request sets one. */
  userAgent?: string;
}

/** Sends one exchange with fetch: manual redirects, idle timeouts, custom CAs. */
export class HttpSender implements Sender {
  readonly #opts: HttpSenderOptions;
  #client?: Deno.HttpClient;

  /** Creates the sender; call {@linkcode HttpSender.close} when done if `caCerts` were given. */
  constructor(opts: HttpSenderOptions = {}) {
    this.#opts = opts;
    if (opts.caCerts && opts.caCerts.length > 0) {
      this.#client = Deno.createHttpClient({ caCerts: opts.caCerts });
    }
  }

  /** The idle timeout requests get unless they set their own. */
  get timeoutMs(): number {
    return this.#opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Releases the HTTP client holding the custom CA bundle. */
  close(): void {
    this.#client?.close();
    this.#client = undefined;
  }

  /**
   * One HTTP exchange, following redirects by hand: `Authorization` goes only to `authOrigin`
   * (never to a redirect target on another host). Guarded by an idle timeout.
   */
  async send(req: SendRequest): Promise<RegistryResponse> {
    const dog = new Watchdog(req.timeoutMs ?? this.timeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, dog.controller.signal]) : dog.controller.signal;
    let method = req.method;
    let body = req.body;
    const upload: { error?: unknown } = {};
    if (body instanceof ReadableStream) body = watchedUpload(body, dog, upload);
    let current = req.url;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const headers = new Headers(req.headers);
      if (!headers.has("user-agent")) headers.set("user-agent", this.#opts.userAgent ?? "portager-oci");
      headers.set("accept-encoding", "identity");
      if (current.origin !== req.authOrigin) headers.delete("authorization");
      if (body === undefined) headers.delete("content-type");
      let res: Response;
      dog.arm();
      try {
        const init: RequestInit & { client?: Deno.HttpClient } = {
          method,
          headers,
          body: body as BodyInit | undefined,
          redirect: "manual",
          signal,
        };
        if (this.#client) init.client = this.#client;
        res = await fetch(current, init);
      } catch (e) {
        dog.disarm();
        throw classify(e, { signal: req.signal, dog, upload });
      }
      dog.disarm();
      const location = res.headers.get("location");
      if (REDIRECT_STATUSES.has(res.status) && location) {
        await res.body?.cancel().catch(() => {});
        if (body instanceof ReadableStream && res.status !== 303) {
          throw new OciError(
            "Protocol",
            `registry redirected a streamed ${method} ${current.pathname} to ${
              new URL(location, current).host
            }; streamed uploads cannot follow redirects`,
          );
        }
        current = new URL(location, current);
        if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === "POST")) {
          method = "GET";
          body = undefined;
        }
        continue;
      }
      const wrapped = res.body ? guardedBody(res.body, dog, current) : null;
      return new RegistryResponse(res.status, res.headers, current.href, wrapped);
    }
    throw new OciError(
      "TooManyRedirects",
      `more than ${MAX_REDIRECTS} redirects starting at ${req.url.origin}${req.url.pathname}`,
    );
  }
}

/** Says why fetch failed: cancelled, timed out, the upload body broke, TLS, or the network. */
function classify(
  e: unknown,
  ctx: { signal?: AbortSignal; dog: Watchdog; upload: { error?: unknown } },
): Error {
  if (ctx.signal?.aborted) return new SendFailure("Aborted", ctx.signal.reason);
  if (ctx.dog.timedOut) return new SendFailure("Timeout", e);
  // The body stream failed (digest mismatch, source broke): that is the real error.
  if (ctx.upload.error instanceof OciError) return ctx.upload.error;
  if (ctx.upload.error !== undefined) return new SendFailure("Network", ctx.upload.error);
  const text = describeCause(e);
  if (/certificate|UnknownIssuer|tls handshake|InvalidCertificate/i.test(text)) {
    return new SendFailure("Tls", e);
  }
  return new SendFailure("Network", e);
}

/** Arms a timer while a request or a body read is pending, aborting its signal on expiry. */
class Watchdog {
  readonly controller = new AbortController();
  timedOut = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #ms: number;

  constructor(ms: number) {
    this.#ms = ms;
  }

  arm(): void {
    this.disarm();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.timedOut = true;
      this.controller.abort(new DOMException("idle timeout", "TimeoutError"));
    }, this.#ms);
  }

  disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * Passes a request body through, re-arming the idle timer on every chunk and keeping the
 * source's error (fetch only reports "fetch failed", not what broke the body).
 */
function watchedUpload(
  source: ReadableStream<Uint8Array>,
  dog: Watchdog,
  failure: { error?: unknown },
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        dog.arm();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (e) {
        failure.error = e;
        controller.error(e);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** Wraps a response body so a read that stalls longer than the idle timeout fails. */
function guardedBody(
  body: ReadableStream<Uint8Array>,
  dog: Watchdog,
  url: URL,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      dog.arm();
      try {
        const { done, value } = await reader.read();
        dog.disarm();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (e) {
        dog.disarm();
        controller.error(
          dog.timedOut
            ? new OciError(
              "Timeout",
              `${url.host}: no data received for ${url.pathname} within the idle timeout`,
              { registry: url.host, retryable: true },
            )
            : e,
        );
      }
    },
    cancel(reason) {
      dog.disarm();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
