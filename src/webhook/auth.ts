/**
 * Who may notify: one shared secret, checked the way each sender can present it — GitHub
 * signs the body (HMAC-SHA256 in `X-Hub-Signature-256`); distribution and Harbor send a
 * header (`Authorization: Bearer <secret>`, or the bare secret as Harbor's "Auth Header");
 * Docker Hub and Quay can only call a URL, so they carry it as `?token=<secret>`. Comparisons
 * take constant time. The secret comes from a file (a mounted Secret, re-read so a rotation
 * needs no restart) or the environment.
 * @module
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { WebhookError } from "./errors.ts";
import type { WebhookSource } from "./event.ts";

/** Shortest shared secret accepted: a guessable secret would make the endpoint open. */
export const MIN_SECRET_LENGTH = 16;
/** How long a secret read from a file is used before the file is read again. */
export const SECRET_REFRESH_MS = 10_000;

/** Thrown at start-up when the secret cannot be read or is too short. */
export class WebhookSecretError extends Error {
  /** Stable reason. */
  readonly reason = "WebhookSecretInvalid";

  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "WebhookSecretError";
  }
}

/** Where the shared secret is read from. */
export interface SecretSourceOptions {
  /** A file holding the secret (trailing newline ignored); re-read every {@linkcode SECRET_REFRESH_MS}. */
  file?: string;
  /** The secret itself (e.g. from an environment variable). */
  value?: string;
}

function checked(secret: string, from: string): string {
  const s = secret.replace(/\r?\n$/, "");
  if (s.length < MIN_SECRET_LENGTH) {
    throw new WebhookSecretError(
      `the webhook secret from ${from} has ${s.length} characters; use at least ${MIN_SECRET_LENGTH} ` +
        "(e.g. openssl rand -hex 32)",
    );
  }
  return s;
}

/** The shared secret, kept fresh when it comes from a file. */
export class WebhookSecret {
  readonly #file?: string;
  #value: string;
  #readAt: number;

  private constructor(value: string, file: string | undefined) {
    this.#value = value;
    this.#file = file;
    this.#readAt = Date.now();
  }

  /** Reads the secret once (throws {@linkcode WebhookSecretError} when absent, unreadable or short). */
  static async load(options: SecretSourceOptions): Promise<WebhookSecret> {
    if (options.file) {
      let text: string;
      try {
        text = await Deno.readTextFile(options.file);
      } catch (err) {
        throw new WebhookSecretError(
          `cannot read the webhook secret file ${options.file}: ${(err as Error).message}`,
        );
      }
      return new WebhookSecret(checked(text, options.file), options.file);
    }
    if (options.value !== undefined) {
      return new WebhookSecret(checked(options.value, "the environment"), undefined);
    }
    throw new WebhookSecretError(
      "the webhook endpoint needs a shared secret: --webhook-secret-file or PORTAGER_WEBHOOK_SECRET",
    );
  }

  /** The current secret; a file is re-read when the last read is older than the refresh period. */
  async current(): Promise<string> {
    if (this.#file && Date.now() - this.#readAt > SECRET_REFRESH_MS) {
      this.#readAt = Date.now();
      try {
        this.#value = checked(await Deno.readTextFile(this.#file), this.#file);
      } catch {
        // keep the last good secret: a rotation half-written must not open or close the endpoint
      }
    }
    return this.#value;
  }
}

function same(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  // compare equal-length digests so neither the content nor the length leaks through timing
  const hx = createHmac("sha256", "portager-compare").update(x).digest();
  const hy = createHmac("sha256", "portager-compare").update(y).digest();
  return timingSafeEqual(hx, hy);
}

/** `sha256=<hex>` of the body under `secret`, as GitHub signs. */
export function githubSignature(secret: string, body: Uint8Array): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/**
 * Checks that a request carries the secret the way its sender can; throws
 * {@linkcode WebhookError} `Unauthenticated` saying what was expected.
 */
export function authenticate(
  source: WebhookSource,
  request: { headers: Headers; url: URL; body: Uint8Array; secret: string },
): void {
  const secret = request.secret;
  if (source === "github") {
    const sig = request.headers.get("x-hub-signature-256");
    if (!sig) {
      throw new WebhookError(
        "Unauthenticated",
        "missing X-Hub-Signature-256: set the webhook's secret in GitHub to the shared secret",
      );
    }
    if (!same(sig.trim().toLowerCase(), githubSignature(secret, request.body))) {
      throw new WebhookError(
        "Unauthenticated",
        "X-Hub-Signature-256 does not match the body under the shared secret",
      );
    }
    return;
  }
  const auth = request.headers.get("authorization");
  if (auth !== null) {
    const token = auth.replace(/^Bearer\s+/i, "").trim();
    if (same(token, secret)) return;
    throw new WebhookError("Unauthenticated", "the Authorization header does not carry the shared secret");
  }
  const query = request.url.searchParams.get("token");
  if (query !== null && (source === "dockerhub" || source === "quay")) {
    if (same(query, secret)) return;
    throw new WebhookError("Unauthenticated", "the token in the URL is not the shared secret");
  }
  throw new WebhookError(
    "Unauthenticated",
    source === "dockerhub" || source === "quay"
      ? `no credentials: end the ${source} webhook URL with ?token=<shared secret>`
      : `no credentials: send "Authorization: Bearer <shared secret>"`,
  );
}
