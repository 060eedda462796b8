/**
 * What every payload format is reduced to: a push of a repository (and a tag) at a registry,
 * with the sender's delivery id and time when it gives them (for replay protection).
 * @module
 */

import { WebhookError } from "./errors.ts";

/** The payload formats the endpoint understands; each has its own path `/webhook/<source>`. */
export type WebhookSource = "distribution" | "harbor" | "dockerhub" | "github" | "quay";

/** Every {@linkcode WebhookSource}, in the order the docs list them. */
export const WEBHOOK_SOURCES: readonly WebhookSource[] = [
  "distribution",
  "harbor",
  "dockerhub",
  "github",
  "quay",
];

/** Events taken from one request at most; a larger batch is refused as malformed. */
export const MAX_EVENTS_PER_REQUEST = 100;

/** One push, as read from a payload. */
export interface PushEvent {
  /** Which format it came in. */
  source: WebhookSource;
  /** Registry host pushed to, as in references (`127.0.0.1:5000`, `docker.io`, `ghcr.io`). */
  registry: string;
  /** Repository path in that registry (`team/app`). */
  repository: string;
  /** The tag pushed; undefined for a push by digest only. */
  tag?: string;
  /** The manifest digest, when the payload gives it. */
  digest?: string;
  /** The sender's id of this delivery or event, for the replay window. */
  id?: string;
  /** When the sender says the push happened (ms since the epoch). */
  timestamp?: number;
}

/** What a parser gets besides the JSON body. */
export interface ParseContext {
  /** Request headers. */
  headers: Headers;
  /** `?registry=host` on the endpoint URL: the host to match for senders that do not name one reliably. */
  registry?: string;
}

/** Reads the JSON value at `obj[key]` as a non-empty string, or undefined. */
export function str(obj: unknown, key: string): string | undefined {
  if (!obj || typeof obj !== "object") return undefined;
  const v = (obj as Record<string, unknown>)[key];
  return typeof v === "string" && v !== "" ? v : undefined;
}

/** The JSON object at `obj[key]`, or undefined. */
export function obj(value: unknown, key: string): Record<string, unknown> | undefined {
  if (!value || typeof value !== "object") return undefined;
  const v = (value as Record<string, unknown>)[key];
  return v && typeof v === "object" && !Array.isArray(v) ? v as Record<string, unknown> : undefined;
}

/** A malformed-payload error naming the format and what is missing. */
export function malformed(source: WebhookSource, what: string): WebhookError {
  return new WebhookError("Malformed", `${source} payload: ${what}`);
}

/** Seconds or milliseconds since the epoch, or an ISO date, as ms; undefined when absent or unreadable. */
export function parseTime(v: unknown): number | undefined {
  if (typeof v === "number" && Number.isFinite(v)) return v < 1e12 ? v * 1000 : v;
  if (typeof v === "string" && v !== "") {
    const t = Date.parse(v);
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}

/** Splits `host/path/repo:tag` (no scheme) into host, repository and tag. */
export function splitImageUrl(
  url: string,
): { registry: string; repository: string; tag?: string } | undefined {
  const bare = url.replace(/^[a-z]+:\/\//i, "").replace(/@.*$/, "");
  const slash = bare.indexOf("/");
  if (slash <= 0) return undefined;
  const registry = bare.slice(0, slash);
  let repository = bare.slice(slash + 1);
  let tag: string | undefined;
  const colon = repository.lastIndexOf(":");
  if (colon > repository.lastIndexOf("/")) {
    tag = repository.slice(colon + 1) || undefined;
    repository = repository.slice(0, colon);
  }
  if (!repository) return undefined;
  return { registry, repository, tag };
}
