/**
 * Why the webhook endpoint refused a request: one error class with a stable `reason` (the
 * metric's and the log's word) and the HTTP status the sender gets, with a message that tells
 * the person configuring the sender what to fix. A refused request changes nothing.
 * @module
 */

/** The stable reasons a webhook request is refused. */
export type WebhookErrorReason =
  | "Unauthenticated"
  | "Malformed"
  | "TooLarge"
  | "Timeout"
  | "Replayed"
  | "Stale"
  | "RateLimited"
  | "NotFound"
  | "MethodNotAllowed"
  | "Unavailable";

const STATUS: Record<WebhookErrorReason, number> = {
  Unauthenticated: 401,
  Malformed: 400,
  TooLarge: 413,
  Timeout: 408,
  Replayed: 409,
  Stale: 400,
  RateLimited: 429,
  NotFound: 404,
  MethodNotAllowed: 405,
  Unavailable: 503,
};

/** A refused webhook request: `reason`, the HTTP `status`, and an actionable message. */
export class WebhookError extends Error {
  /** Stable machine-readable reason. */
  readonly reason: WebhookErrorReason;
  /** HTTP status answered. */
  readonly status: number;
  /** Seconds the sender should wait (429, 503), sent as `Retry-After`. */
  readonly retryAfterSeconds?: number;

  /** Creates the error; the status follows from the reason. */
  constructor(reason: WebhookErrorReason, message: string, options: { retryAfterSeconds?: number } = {}) {
    super(message);
    this.name = "WebhookError";
    this.reason = reason;
    this.status = STATUS[reason];
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}
