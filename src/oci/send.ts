/**
 * The bottom sender: one HTTP exchange with `fetch`, redirects followed by hand so that
 * `Authorization` only ever reaches the origin it was meant for, an idle timeout on the answer
 * and on every body read, and a custom CA bundle through `Deno.createHttpClient`. The senders
 * above it (retry, then auth in the transport) wrap it the way go-containerregistry composes
 * `http.RoundTripper`s.
 * @module
 */

import { describeCause, OciError, type OciErrorReason } from "./errors.ts";
import { type IntoReader, readerInto } from "./read_into.ts";
import { RegistryResponse } from "./response.ts";
import { type QueuedTimer, timers } from "./timer_queue.ts";

/** Idle timeout per request: no response headers or no body bytes for this long (60 s). */
export const DEFAULT_TIMEOUT_MS = 60_000;
/**
 * Total time a request that is not a blob transfer may take, answer and body included (2 min):
 * manifests, tokens, tag list pages, pings and error bodies are small, so a registry sending
 * one a byte at a time is cut off instead of holding a sync worker for ever.
 */
export const DEFAULT_REQUEST_DEADLINE_MS = 120_000;
/**
 * Slowest blob transfer we wait for (1 KiB/s), measured over the time spent waiting on the
 * other side (not on our own back-pressure) in windows of {@linkcode DEFAULT_RATE_WINDOW_MS}.
 */
export const DEFAULT_MIN_BYTES_PER_SECOND = 1024;
/** The window the minimum transfer rate is measured over (30 s). */
export const DEFAULT_RATE_WINDOW_MS = 30_000;
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
  /**
   * A blob transfer: bounded by the minimum transfer rate instead of the total request
   * deadline, since a large blob legitimately takes long.
   */
  bulk?: boolean;
  /** Whether the exchange may be repeated (default: unless the body is a stream). */
  idempotent?: boolean;
  /** The rate-limit budget it spends: the registry, and the account when one is used (default `registry`). */
  budget?: string;
  /** Wraps each wait before an attempt; see {@linkcode WaitWrapper}. */
  duringWait?: WaitWrapper;
}

/**
 * Runs one wait of a request in which nothing is sent (a retry's backoff, a registry's
 * `Retry-After` pause), so the caller can give back what it holds for the exchange meanwhile:
 * the copier gives its slot of the process's transfer budget to another sync's transfer, and
 * takes one again before the next attempt. Must run `wait` and settle as it does.
 */
export type WaitWrapper = (wait: () => Promise<void>) => Promise<void>;

/** Runs `wait` through the request's {@linkcode WaitWrapper}, if any. */
export function waitFor(req: { duringWait?: WaitWrapper }, wait: () => Promise<void>): Promise<void> {
  return req.duringWait ? req.duringWait(wait) : wait();
}

/**
 * Whether a request body is a one-shot stream. Decided without the global `ReadableStream`: its
 * first read loads Deno's streams code (~4 ms), which a request without a body does not need
 * before it is sent.
 */
export function isStreamBody(body: SendRequest["body"]): body is ReadableStream<Uint8Array> {
  return body !== undefined && typeof body !== "string" && !(body instanceof Uint8Array);
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

/** A limit of ours that ended an exchange: its message says which one. */
export class LimitExceeded extends Error {
  /** Describes the limit, e.g. "the 120000 ms request deadline passed". */
  constructor(message: string) {
    super(message);
    this.name = "LimitExceeded";
  }
}

/** Whether an abort reason is a deadline (`AbortSignal.timeout`, or a TimeoutError given by a caller). */
export function isDeadline(reason: unknown): boolean {
  return reason instanceof DOMException && reason.name === "TimeoutError";
}

/** Turns a failure of an exchange into an {@linkcode OciError} naming what was being done. */
export function sendFailureError(e: unknown, ctx: FailureContext): OciError {
  const { registry, reference } = ctx;
  const what = reference ? `${ctx.action} ${reference}` : ctx.action;
  if (e instanceof SendFailure && e.kind === "Aborted" && isDeadline(e.error)) {
    return new OciError("Timeout", `registry ${registry}: cannot ${what}: the deadline passed`, {
      registry,
      reference,
      cause: e.error,
    });
  }
  if (e instanceof SendFailure) {
    const reasons: Record<SendFailure["kind"], OciErrorReason> = {
      Network: "Network",
      Tls: "Network",
      Timeout: "Timeout",
      Aborted: "Aborted",
    };
    const detail = e.kind === "Timeout"
      ? (e.error instanceof LimitExceeded ? e.error.message : `no response for ${ctx.timeoutMs} ms`)
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
  /** Total time of a request that is not a blob transfer (default {@linkcode DEFAULT_REQUEST_DEADLINE_MS}). */
  requestDeadlineMs?: number;
  /** Slowest blob transfer accepted (default {@linkcode DEFAULT_MIN_BYTES_PER_SECOND}); 0 turns the check off. */
  minBytesPerSecond?: number;
  /** Window of the transfer-rate check (default {@linkcode DEFAULT_RATE_WINDOW_MS}). */
  rateWindowMs?: number;
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
    const dog = new Watchdog({
      idleMs: req.timeoutMs ?? this.timeoutMs,
      deadlineMs: req.bulk ? undefined : this.#opts.requestDeadlineMs ?? DEFAULT_REQUEST_DEADLINE_MS,
      minBytesPerSecond: req.bulk ? this.#opts.minBytesPerSecond ?? DEFAULT_MIN_BYTES_PER_SECOND : 0,
      rateWindowMs: this.#opts.rateWindowMs ?? DEFAULT_RATE_WINDOW_MS,
    });
    const signal = req.signal ? AbortSignal.any([req.signal, dog.controller.signal]) : dog.controller.signal;
    let method = req.method;
    let body = req.body;
    const upload: { error?: unknown } = {};
    if (isStreamBody(body)) body = watchedUpload(body, dog, upload);
    let current = req.url;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      if (current.protocol !== "https:" && current.protocol !== "http:") {
        // fetch would read file: and data: URLs: a registry must not make us read local files.
        dog.finish();
        throw new OciError(
          "Protocol",
          `refusing to follow the registry to a ${current.protocol} URL` +
            (hop > 0 ? ` (redirected from ${req.url.host}${req.url.pathname})` : "") +
            "; only http and https are spoken",
        );
      }
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
        dog.finish();
        throw classify(e, { signal: req.signal, dog, upload });
      }
      dog.rest();
      dog.uploaded();
      const location = res.headers.get("location");
      if (REDIRECT_STATUSES.has(res.status) && location) {
        await res.body?.cancel().catch(() => {});
        if (isStreamBody(body) && res.status !== 303) {
          dog.finish();
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
      if (!res.body) dog.finish();
      const wrapped = res.body ? new GuardedReader(res.body, dog, current, req.signal) : null;
      return new RegistryResponse(res.status, res.headers, current.href, wrapped);
    }
    dog.finish();
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
  if (ctx.dog.expired) return new SendFailure("Timeout", ctx.dog.expired);
  // The body stream failed (digest mismatch, source broke): that is the real error.
  if (ctx.upload.error instanceof OciError) return ctx.upload.error;
  if (ctx.upload.error !== undefined) return new SendFailure("Network", ctx.upload.error);
  const text = describeCause(e);
  if (/certificate|UnknownIssuer|tls handshake|InvalidCertificate/i.test(text)) {
    return new SendFailure("Tls", e);
  }
  return new SendFailure("Network", e);
}

/** The limits of one exchange. */
interface Limits {
  /** No progress for this long fails the exchange. */
  idleMs: number;
  /** The whole exchange, body included, must end within this (unset for blob transfers). */
  deadlineMs?: number;
  /** Slowest accepted transfer while waiting on the other side (0 = unchecked). */
  minBytesPerSecond: number;
  /** Window of the rate check. */
  rateWindowMs: number;
}

/**
 * Watches one exchange: an idle timer armed while we wait on the other side, a total deadline
 * for small requests, and a minimum rate for blob bodies. Any of them aborts its signal.
 *
 * The idle timer is armed and disarmed around every body chunk (thousands per blob), so it is
 * lazy: arming notes the time and starts a timer only when none is pending; when the timer
 * fires while still waiting it either expires the exchange or sleeps for the rest of the idle
 * time. The exchange still ends exactly `idleMs` after the wait began, with one timer per idle
 * period instead of a setTimeout/clearTimeout pair per chunk.
 *
 * The timers are the {@linkcode timers} queue's, not `setTimeout`: the first `setTimeout` of a
 * process loads Deno's Node timers (6–12 ms), which the first request would wait for.
 */
class Watchdog {
  readonly controller = new AbortController();
  /** The limit that ended the exchange, once one did. */
  expired?: LimitExceeded;
  #idle: QueuedTimer | undefined;
  /** When the current wait on the other side began (undefined: not waiting). */
  #waitingSince: number | undefined;
  #deadline: QueuedTimer | undefined;
  readonly #limits: Limits;
  #waitedMs = 0;
  #bytes = 0;
  #uploadSince?: number;

  constructor(limits: Limits) {
    this.#limits = limits;
    if (limits.deadlineMs !== undefined && limits.deadlineMs > 0) {
      this.#deadline = timers.schedule(
        () => this.#expire(`the ${limits.deadlineMs} ms request deadline passed`),
        limits.deadlineMs,
      );
    }
  }

  #expire(message: string): void {
    if (this.expired) return;
    this.expired = new LimitExceeded(message);
    this.#stopIdleTimer();
    this.controller.abort(new DOMException(message, "TimeoutError"));
  }

  /** We start waiting on the other side: the idle time counts from now. */
  arm(): void {
    if (this.expired) return;
    this.#waitingSince = performance.now();
    if (this.#idle === undefined) this.#idleTimer(this.#limits.idleMs);
  }

  #idleTimer(ms: number): void {
    // A body its reader stopped pulling without cancelling leaves this timer pending until it
    // fires (then it stops): it must not keep the process alive meanwhile (ref: false).
    this.#idle = timers.schedule(
      () => {
        this.#idle = undefined;
        if (this.#waitingSince === undefined) return; // not waiting: the next arm() starts a timer
        const left = this.#limits.idleMs - (performance.now() - this.#waitingSince);
        if (left > 0) this.#idleTimer(left);
        else this.#expire(`no data for ${this.#limits.idleMs} ms (idle timeout)`);
      },
      ms,
      { ref: false },
    );
  }

  /** The other side answered: not waiting on it any more (a pending timer finds that out). */
  disarm(): void {
    this.#waitingSince = undefined;
  }

  /** Not waiting, and nothing to wait for until the next arm(): the pending timer is cleared. */
  rest(): void {
    this.#stopIdleTimer();
  }

  #stopIdleTimer(): void {
    this.#waitingSince = undefined;
    timers.cancel(this.#idle);
    this.#idle = undefined;
  }

  /** The exchange is over (body read, cancelled or failed): no more limits. */
  finish(): void {
    this.#stopIdleTimer();
    timers.cancel(this.#deadline);
    this.#deadline = undefined;
  }

  /**
   * Counts `bytes` that took `waitedMs` of waiting on the other side; fails the exchange when
   * a full window of waiting moved fewer bytes than the minimum rate asks.
   */
  progress(bytes: number, waitedMs: number): void {
    const min = this.#limits.minBytesPerSecond;
    if (min <= 0) return;
    this.#bytes += bytes;
    this.#waitedMs += waitedMs;
    if (this.#waitedMs < this.#limits.rateWindowMs) return;
    const rate = this.#bytes * 1000 / this.#waitedMs;
    if (rate < min) {
      this.#expire(
        `the transfer ran at ${Math.round(rate)} bytes/s over ${Math.round(this.#waitedMs / 1000)} s, ` +
          `below the minimum of ${min} bytes/s`,
      );
      return;
    }
    this.#bytes = 0;
    this.#waitedMs = 0;
  }

  /** An upload chunk was handed to fetch; the time until fetch asks again is the server's. */
  handedOver(): void {
    this.#uploadSince = performance.now();
  }

  /** fetch asks for the next upload chunk: the server took what we handed over. */
  uploadPulled(bytes: number): void {
    if (this.#uploadSince === undefined) return;
    this.progress(bytes, performance.now() - this.#uploadSince);
    this.#uploadSince = undefined;
  }

  /** The upload body is done (answer headers arrived): the rate check is for the download now. */
  uploaded(): void {
    this.#uploadSince = undefined;
    this.#bytes = 0;
    this.#waitedMs = 0;
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
  let last = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      dog.uploadPulled(last);
      if (dog.expired) {
        controller.error(dog.expired);
        return;
      }
      // Reading the source is not waiting on the server (the source has limits of its own).
      dog.disarm();
      try {
        const { done, value } = await reader.read();
        dog.arm();
        if (done) controller.close();
        else {
          last = value.byteLength;
          controller.enqueue(value);
          dog.handedOver();
        }
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

/**
 * A response body read under the exchange's limits: a read stalling past the idle timeout, a
 * body outliving the request deadline or a blob arriving slower than the minimum rate fails
 * with a Timeout {@linkcode OciError}; a caller's deadline signal fails it the same way.
 *
 * Reads go into the caller's buffer (BYOB reads of fetch's body, which reads the socket into
 * it), so a caller that reuses its buffers — blob copies, small bodies — leaves no 64 KiB
 * `ArrayBuffer` of garbage per read: V8 frees those only after a GC, which is what set the
 * copy's peak memory (B4 in docs/PERFORMANCE.md). A blob copy reads through it directly, one
 * stream stage less per read than through the body stream ({@linkcode RegistryResponse.body}).
 */
class GuardedReader implements IntoReader {
  readonly #source: IntoReader;
  readonly #dog: Watchdog;
  readonly #url: URL;
  readonly #signal?: AbortSignal;
  readonly #onAbort = () => {
    this.#source.cancel(this.#dog.expired ?? this.#signal?.reason).catch(() => {});
  };

  constructor(body: ReadableStream<Uint8Array>, dog: Watchdog, url: URL, signal?: AbortSignal) {
    this.#source = readerInto(body);
    this.#dog = dog;
    this.#url = url;
    this.#signal = signal;
    // fetch aborts a body through a signal of the Request it made, which the collector may take
    // once the response is out; a stalled read would then wait for ever. So the body is
    // cancelled here, from signals this reader holds.
    dog.controller.signal.addEventListener("abort", this.#onAbort, { once: true });
    signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  async read(view: Uint8Array): Promise<ReadableStreamReadResult<Uint8Array>> {
    const dog = this.#dog;
    dog.arm();
    const started = performance.now();
    try {
      const result = await this.#source.read(view);
      dog.disarm();
      if (dog.expired) throw dog.expired;
      if (this.#signal?.aborted) throw this.#signal.reason;
      if (result.done) {
        this.#finish();
        return result;
      }
      dog.progress(result.value.byteLength, performance.now() - started);
      if (dog.expired) throw dog.expired;
      return result;
    } catch (e) {
      this.#finish();
      throw bodyError(e, { dog, url: this.#url, signal: this.#signal });
    }
  }

  cancel(reason?: unknown): Promise<void> {
    this.#finish();
    return this.#source.cancel(reason);
  }

  release(): void {
    this.#source.release();
  }

  /** The exchange is over: no more limits, and no listener left on the caller's signal. */
  #finish(): void {
    this.#dog.finish();
    this.#dog.controller.signal.removeEventListener("abort", this.#onAbort);
    this.#signal?.removeEventListener("abort", this.#onAbort);
  }
}

/** The error a failed body read ends in: which limit, the caller's deadline, or the network's error. */
function bodyError(e: unknown, ctx: { dog: Watchdog; url: URL; signal?: AbortSignal }): unknown {
  const { dog, url } = ctx;
  if (dog.expired) {
    return new OciError("Timeout", `${url.host}: reading ${url.pathname} failed: ${dog.expired.message}`, {
      registry: url.host,
      retryable: true,
    });
  }
  if (ctx.signal?.aborted && isDeadline(ctx.signal.reason)) {
    return new OciError("Timeout", `${url.host}: reading ${url.pathname} stopped: the deadline passed`, {
      registry: url.host,
    });
  }
  return e;
}
