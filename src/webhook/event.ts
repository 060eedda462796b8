/**
 * What every payload format is reduced to: a push of a repository (and a tag) at a registry,
 * with the sender's delivery id and time when it gives them (for replay protection).
 * @module
 */

import { isValidTag } from "../oci/mod.ts";
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

/** Longest registry host or repository a push may name (255, a reference's own bound). */
export const MAX_NAME_LENGTH = 255;
/** Longest delivery id or digest a push may carry (256): ids are remembered for the replay window. */
export const MAX_ID_LENGTH = 256;

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

const PRINTABLE = /^[\x21-\x7e]+$/;

/** A sender's value, clipped and quoted, for a message. */
function quoted(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

/**
 * Why a push cannot be a real one, or undefined: a registry host or repository that is not
 * printable ASCII of at most {@linkcode MAX_NAME_LENGTH}, a tag outside the reference grammar,
 * an id or digest longer than {@linkcode MAX_ID_LENGTH}. What a push names ends up in logs,
 * in Events of the ImageSyncs it matches and in the replay memory, so each is bounded here.
 */
export function pushProblem(push: PushEvent): string | undefined {
  for (const [what, value] of [["registry host", push.registry], ["repository", push.repository]] as const) {
    if (value.length > MAX_NAME_LENGTH || !PRINTABLE.test(value)) {
      return `the ${what} ${quoted(value)} is not a name (printable, at most ${MAX_NAME_LENGTH} characters)`;
    }
  }
  if (push.tag !== undefined && !isValidTag(push.tag)) {
    return `the tag ${quoted(push.tag)} is not a tag (1 to 128 letters, digits, '_', '.', '-')`;
  }
  for (const [what, value] of [["id", push.id], ["digest", push.digest]] as const) {
    if (value !== undefined && value.length > MAX_ID_LENGTH) {
      return `the ${what} is longer than ${MAX_ID_LENGTH} characters`;
    }
  }
  return undefined;
}
