/**
 * SHA-256 and SHA-512 for digests and keys, without Deno's Node compatibility layer where a
 * copy does not need it: the first `node:` module a process loads costs it ~25–30 ms of CPU and
 * ~9 MB (B1 in docs/PERFORMANCE.md), so
 *
 * - small inputs hashed synchronously (manifests, cache and budget keys) go through
 *   `@noble/hashes`, a small audited pure-JavaScript implementation ({@linkcode hashHex});
 * - a whole blob held in memory is hashed by Web Crypto's one-shot digest, native and off the
 *   main thread ({@linkcode webHashHex});
 * - only a blob hashed while it streams needs an incremental hash, which Web Crypto lacks:
 *   {@linkcode streamingHash} loads `node:crypto`'s native one the first time it is asked for
 *   (or at start, {@linkcode preloadStreamingHash}, in the operator: once it is loaded, every
 *   blob streams).
 *
 * The streaming hash runs on the main thread, where Deno also does `fetch`'s network I/O.
 * Hashing on a worker thread instead was built and measured (issue 16, round 5; "B1: hashing on
 * a worker" in docs/PERFORMANCE.md) and not kept: it frees the main thread (~110 → ~18 ms per
 * 200 MiB) but costs the process more CPU in all (a second isolate, its own Node layer, a copy
 * of every byte) and 20–50 MiB more peak RSS, and B1 on two cores is bound by the CPU of the
 * whole stack (registry B alone spends ~0.5 s per copy): the cold copy got 40–50 ms slower.
 * @module
 */

import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

/** The digest algorithms of OCI content this client computes. */
export type DigestAlgorithm = "sha256" | "sha512";

/** Whether `algorithm` (the part of a digest before `:`) is one this client computes. */
export function isDigestAlgorithm(algorithm: string): algorithm is DigestAlgorithm {
  return algorithm === "sha256" || algorithm === "sha512";
}

const encoder = new TextEncoder();

/**
 * The hex digest of `data` (a string is hashed as UTF-8), synchronously and in JavaScript: for
 * small inputs (manifests, keys), where it costs microseconds; blobs go through
 * {@linkcode webHashHex} or {@linkcode streamingHash}.
 */
export function hashHex(algorithm: DigestAlgorithm, data: Uint8Array | string): string {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  return bytesToHex(algorithm === "sha256" ? sha256(bytes) : sha512(bytes));
}

/** The hex SHA-256 of `data` (a string is hashed as UTF-8); see {@linkcode hashHex}. */
export function sha256Hex(data: Uint8Array | string): string {
  return hashHex("sha256", data);
}

const WEB_CRYPTO_NAMES: Record<DigestAlgorithm, string> = { sha256: "SHA-256", sha512: "SHA-512" };

/** The hex digest of bytes held in memory, by Web Crypto (native; runs off the main thread). */
export async function webHashHex(algorithm: DigestAlgorithm, data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest(WEB_CRYPTO_NAMES[algorithm], data as Uint8Array<ArrayBuffer>);
  return bytesToHex(new Uint8Array(digest));
}

/** An incremental hash: bytes in as they arrive, the hex digest once at the end. */
export interface StreamingHash {
  /** Hashes the next bytes. */
  update(chunk: Uint8Array): void;
  /** The hex digest of every byte given; call once. */
  hex(): string;
}

let nodeCrypto: Promise<typeof import("node:crypto")> | undefined;
let nodeCryptoLoaded = false;

/** Starts loading `node:crypto` (once); resolves when it is loaded. */
function loadNodeCrypto(): Promise<typeof import("node:crypto")> {
  nodeCrypto ??= import("node:crypto").then((module) => {
    nodeCryptoLoaded = true;
    return module;
  });
  return nodeCrypto;
}

/**
 * Whether {@linkcode streamingHash}'s native hash is loaded: once it is, a blob costs nothing
 * more to stream than to read whole, and streaming holds less of it in memory.
 */
export function streamingHashLoaded(): boolean {
  return nodeCryptoLoaded;
}

/**
 * Loads {@linkcode streamingHash}'s native hash now, for a long-running process (the operator,
 * `serve`): the Node compatibility layer is loaded there anyway, and with the hash loaded every
 * blob streams ({@linkcode streamingHashLoaded}) instead of small ones being read whole.
 */
export async function preloadStreamingHash(): Promise<void> {
  await loadNodeCrypto();
}

/**
 * A native incremental hash (`node:crypto`, loaded the first time one is asked for, so a
 * process that never streams a large blob never loads the Node compatibility layer).
 */
export async function streamingHash(algorithm: DigestAlgorithm): Promise<StreamingHash> {
  const hash = (await loadNodeCrypto()).createHash(algorithm);
  return {
    update: (chunk) => void hash.update(chunk),
    hex: () => hash.digest("hex"),
  };
}
