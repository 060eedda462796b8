/**
 * A hostile registry for tests: a Deno.serve on loopback that speaks just enough of the
 * distribution API (ping, manifests by tag and digest, blobs, tag list) to get a client going,
 * and then misbehaves as a test asks: drips bodies a byte at a time, serves crafted indexes,
 * redirects to a host of its own choosing. It records every request.
 */

import { createHash } from "node:crypto";

/** One request the hostile registry saw. */
export interface SeenRequest {
  method: string;
  /** Path and query. */
  path: string;
  authorization: string | null;
}

/** Content the registry serves: bytes, or a generator for large crafted bodies. */
export interface Content {
  mediaType: string;
  /** The body, or a function making it per request (so 48 × 4 MiB need not stay in memory). */
  bytes: Uint8Array | (() => Uint8Array);
}

/** A running hostile registry. */
export interface HostileRegistry {
  /** `host:port` (what references use). */
  host: string;
  /** `http://host:port`. */
  origin: string;
  /** Every request, in order. */
  seen: SeenRequest[];
  /** Manifests by tag or digest. */
  manifests: Map<string, Content>;
  /** Blobs by digest. */
  blobs: Map<string, Uint8Array>;
  /** A request handler tried before the built-in routes; return undefined to fall through. */
  intercept?: (req: Request, url: URL) => Response | Promise<Response> | undefined;
  /** Adds a manifest (under its digest, and a tag when given); returns its descriptor. */
  addManifest(json: unknown, mediaType: string, tag?: string): Descriptorish;
  /** Adds a blob; returns its descriptor. */
  addBlob(bytes: Uint8Array, mediaType?: string): Descriptorish;
  /** Stops the server, releasing held and dripping responses. */
  stop(): Promise<void>;
}

/** What a manifest lists for a piece of content. */
export interface Descriptorish {
  mediaType: string;
  digest: string;
  size: number;
}

/** What a test server records of a request: method, path with query, Authorization. */
export function seenRequest(req: Request, url: URL): SeenRequest {
  return {
    method: req.method,
    path: url.pathname + url.search,
    authorization: req.headers.get("authorization"),
  };
}

/** `sha256:<hex>` of bytes. */
export function digestOf(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** A body that sends one byte every `everyMs` until the client goes away or `stop` is called. */
export function drip(bytes: Uint8Array, everyMs: number, stopped: AbortSignal): ReadableStream<Uint8Array> {
  let i = 0;
  let timer: ReturnType<typeof setInterval> | undefined;
  return new ReadableStream<Uint8Array>({
    start(c) {
      const end = () => {
        clearInterval(timer);
        try {
          c.close();
        } catch { /* already closed */ }
      };
      stopped.addEventListener("abort", end, { once: true });
      timer = setInterval(() => {
        if (i >= bytes.byteLength) return end();
        try {
          c.enqueue(bytes.subarray(i, ++i));
        } catch {
          clearInterval(timer);
        }
      }, everyMs);
    },
    cancel() {
      clearInterval(timer);
    },
  });
}

/** Starts a hostile registry on `hostname` (default 127.0.0.1), anonymous unless `intercept` says otherwise. */
export function startHostileRegistry(hostname = "127.0.0.1"): HostileRegistry {
  const stopped = new AbortController();
  const seen: SeenRequest[] = [];
  const manifests = new Map<string, Content>();
  const blobs = new Map<string, Uint8Array>();
  const enc = new TextEncoder();
  const self: HostileRegistry = {
    host: "",
    origin: "",
    seen,
    manifests,
    blobs,
    addManifest(json, mediaType, tag) {
      const bytes = enc.encode(JSON.stringify(json));
      const digest = digestOf(bytes);
      manifests.set(digest, { mediaType, bytes });
      if (tag) manifests.set(tag, { mediaType, bytes });
      return { mediaType, digest, size: bytes.byteLength };
    },
    addBlob(bytes, mediaType = "application/vnd.oci.image.layer.v1.tar") {
      const digest = digestOf(bytes);
      blobs.set(digest, bytes);
      return { mediaType, digest, size: bytes.byteLength };
    },
    async stop() {
      stopped.abort();
      await server.shutdown();
    },
  };
  const server = Deno.serve({ hostname, port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    seen.push(seenRequest(req, url));
    const own = await self.intercept?.(req, url);
    if (own) return own;
    if (url.pathname === "/v2/") return Response.json({});
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (m && m[2] === "manifests") {
      const content = manifests.get(decodeURIComponent(m[3]));
      if (!content) return new Response(null, { status: 404 });
      const bytes = typeof content.bytes === "function" ? content.bytes() : content.bytes;
      const headers = {
        "content-type": content.mediaType,
        "docker-content-digest": digestOf(bytes),
        "content-length": String(bytes.byteLength),
      };
      return new Response(req.method === "HEAD" ? null : bytes as Uint8Array<ArrayBuffer>, { headers });
    }
    if (m && m[2] === "blobs") {
      const bytes = blobs.get(decodeURIComponent(m[3]));
      if (!bytes) return new Response(null, { status: 404 });
      const headers = { "content-length": String(bytes.byteLength) };
      return new Response(req.method === "HEAD" ? null : bytes as Uint8Array<ArrayBuffer>, { headers });
    }
    return new Response(null, { status: 404 });
  });
  self.host = `${hostname}:${server.addr.port}`;
  self.origin = `http://${self.host}`;
  return self;
}

/**
 * Adds the crafted image of issue 14: an index of `children` distinct image manifests, each
 * padded with an annotation to `childBytes` (4 MiB by default, the largest manifest a client
 * accepts). Child bodies are made per request; only their digests are kept.
 */
export function addCraftedIndex(
  reg: HostileRegistry,
  tag: string,
  opts: { children?: number; childBytes?: number } = {},
): Descriptorish {
  const count = opts.children ?? 48;
  const target = opts.childBytes ?? 4 * 1024 * 1024 - 64;
  const config = reg.addBlob(new TextEncoder().encode("{}"), "application/vnd.oci.image.config.v1+json");
  const layer = reg.addBlob(new TextEncoder().encode("layer"));
  const descriptors: Descriptorish[] = [];
  for (let i = 0; i < count; i++) {
    const make = () => {
      const base = {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config,
        layers: [layer],
        annotations: { pad: "" },
      };
      const overhead = new TextEncoder().encode(JSON.stringify(base)).byteLength + String(i).length + 1;
      base.annotations.pad = `${i}-` + "x".repeat(Math.max(0, target - overhead - 1));
      return new TextEncoder().encode(JSON.stringify(base));
    };
    const first = make();
    const digest = digestOf(first);
    reg.manifests.set(digest, { mediaType: OCI_MANIFEST, bytes: make });
    descriptors.push({
      mediaType: OCI_MANIFEST,
      digest,
      size: first.byteLength,
      platform: { os: "linux", architecture: `arch${i}` },
    } as Descriptorish);
  }
  return reg.addManifest({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: descriptors }, OCI_INDEX, tag);
}

/**
 * Adds a small image manifest under `tag` (padded by `padBytes`) and returns a handler for
 * `intercept` that drips every manifest GET a byte per `everyMs` (default 200) until `stopped`;
 * HEADs and other requests fall through to the built-in routes.
 */
export function drippingManifest(
  reg: HostileRegistry,
  opts: { tag: string; stopped: AbortSignal; padBytes?: number; everyMs?: number },
): (req: Request, url: URL) => Response | undefined {
  const config = reg.addBlob(new TextEncoder().encode("{}"), "application/vnd.oci.image.config.v1+json");
  const pad = opts.padBytes ? { annotations: { pad: "x".repeat(opts.padBytes) } } : {};
  const m = reg.addManifest(
    { schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [], ...pad },
    OCI_MANIFEST,
    opts.tag,
  );
  const bytes = reg.manifests.get(m.digest)!.bytes as Uint8Array;
  return (req, url) =>
    req.method === "GET" && url.pathname.includes("/manifests/")
      ? new Response(drip(bytes, opts.everyMs ?? 200, opts.stopped), {
        headers: { "content-type": OCI_MANIFEST },
      })
      : undefined;
}

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
