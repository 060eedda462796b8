/**
 * Registry clients shared by the syncs of one process for a short while, so a thousand
 * ImageSyncs against the same registry with the same credentials ping it (and fetch a token
 * per scope) once, not once per sync; with `caCerts`, they also share one HTTP client and its
 * connections instead of a TLS handshake per sync.
 *
 * Credential hygiene: credentials are still read and resolved fresh for every sync; a client
 * is shared only by syncs whose resolved credential for its registry is the same (the key is a
 * SHA-256 of registry, credential and client settings, so no credential is kept readable as a
 * key), and the shared client answers that credential for that registry alone. A rotated
 * password makes a new key, so the next sync builds a new client; the old one is retired once
 * its TTL is over and closed when its last sync ends.
 *
 * Bounded: an entry serves syncs that start within `ttlMs` of its creation (default
 * {@linkcode DEFAULT_CLIENT_TTL_MS}), so what a client learnt from a ping (its auth challenge)
 * is never older than that when a sync starts with it; at most `maxEntries` (default
 * {@linkcode DEFAULT_CLIENT_CACHE_ENTRIES}) are kept, the oldest retired first.
 *
 * A ping or token fetch in flight is shared as well: if the sync that started it is cancelled
 * meanwhile (its deadline passed), a sync waiting for the same one fails that request with
 * the same error (its tag fails; the next sync retries it). A failed ping is not kept: the next
 * request pings again.
 * @module
 */
import type { AsyncLocalStorage } from "node:async_hooks";
import { sha256Hex } from "../oci/digest.ts";
import type { Credential, RegistryClient, RetryEvent } from "../oci/mod.ts";

/** How long a shared client takes new syncs after it was created: one minute. */
export const DEFAULT_CLIENT_TTL_MS = 60_000;
/** Most shared clients kept at once (registry × credentials × settings). */
export const DEFAULT_CLIENT_CACHE_ENTRIES = 64;

/** Options for {@linkcode RegistryClientCache}. */
export interface RegistryClientCacheOptions {
  /** How long a client takes new syncs after its creation (ms); default {@linkcode DEFAULT_CLIENT_TTL_MS}. */
  ttlMs?: number;
  /** Most clients kept; default {@linkcode DEFAULT_CLIENT_CACHE_ENTRIES}. */
  maxEntries?: number;
  /** Monotonic clock (ms), for tests; default `performance.now`. */
  now?: () => number;
}

/** What makes two syncs' clients interchangeable. */
export interface ClientKey {
  /** The registry host as credentials are looked up (`docker.io` for Docker Hub). */
  host: string;
  /** The credential resolved for that host by this sync; undefined = anonymous. */
  credential: Credential | undefined;
  /** Every client setting (timeouts, CAs, insecure registries, User-Agent, limits). */
  settings: unknown;
}

/** A client lent to one sync; `release` when the sync ends. */
export interface ClientLease {
  /** The client. */
  client: RegistryClient;
  /** Ends this sync's use; a retired client is closed when its last user releases it. */
  release(): void;
}

interface Entry {
  client: RegistryClient;
  createdAt: number;
  users: number;
  retired: boolean;
}

type RetryHook = (e: RetryEvent) => void;

/**
 * The retry hook of the sync whose code is running (shared clients report retries through it).
 * `node:async_hooks` is loaded by the first sync that sets a hook: only processes that share
 * clients (the operator, `serve`) pay for Deno's Node compatibility layer; `sync -f` does not.
 */
let retryHook: AsyncLocalStorage<RetryHook> | undefined;
let loadingRetryHook: Promise<AsyncLocalStorage<RetryHook>> | undefined;

/**
 * Runs `fn` with `onRetry` as the hook {@linkcode reportRetry} calls: a retry made by a shared
 * client is counted for the sync whose call chain made the request.
 */
export async function withRetryHook<T>(onRetry: RetryHook | undefined, fn: () => Promise<T>): Promise<T> {
  if (!onRetry) return await fn();
  loadingRetryHook ??= import("node:async_hooks").then((m) =>
    retryHook = new m.AsyncLocalStorage<RetryHook>()
  );
  return await (await loadingRetryHook).run(onRetry, fn);
}

/** The `onRetry` of a shared client: reports to the hook of the sync that made the request. */
export function reportRetry(e: RetryEvent): void {
  retryHook?.getStore()?.(e);
}

/** The key of a client: a SHA-256 over registry, credential and settings. */
export function clientKey(key: ClientKey): string {
  return sha256Hex(JSON.stringify([key.host, key.credential ?? null, key.settings]));
}

/** Registry clients shared across syncs for a short TTL; see the module documentation. */
export class RegistryClientCache {
  readonly #entries = new Map<string, Entry>();
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #now: () => number;

  /** Creates an empty cache. */
  constructor(opts: RegistryClientCacheOptions = {}) {
    this.#ttlMs = opts.ttlMs ?? DEFAULT_CLIENT_TTL_MS;
    this.#max = Math.max(1, opts.maxEntries ?? DEFAULT_CLIENT_CACHE_ENTRIES);
    this.#now = opts.now ?? (() => performance.now());
  }

  /** Clients kept (taking new syncs). */
  get size(): number {
    return this.#entries.size;
  }

  /** The client for `key` (see {@linkcode clientKey}), created with `create` when none is fresh. */
  acquire(key: string, create: () => RegistryClient): ClientLease {
    const now = this.#now();
    for (const [k, e] of this.#entries) {
      if (now - e.createdAt < this.#ttlMs) break; // insertion order is creation order
      this.#retire(k, e);
    }
    let entry = this.#entries.get(key);
    if (!entry) {
      while (this.#entries.size >= this.#max) {
        const [k, e] = this.#entries.entries().next().value!;
        this.#retire(k, e);
      }
      entry = { client: create(), createdAt: now, users: 0, retired: false };
      this.#entries.set(key, entry);
    }
    const e = entry;
    e.users++;
    let released = false;
    return {
      client: e.client,
      release: () => {
        if (released) return;
        released = true;
        e.users--;
        if (e.retired && e.users === 0) e.client.close();
      },
    };
  }

  /** Retires every client: each is closed now, or when its last sync ends. */
  close(): void {
    for (const [k, e] of this.#entries) this.#retire(k, e);
  }

  #retire(key: string, e: Entry): void {
    this.#entries.delete(key);
    e.retired = true;
    if (e.users === 0) e.client.close();
  }
}
