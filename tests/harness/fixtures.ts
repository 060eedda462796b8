/**
 * Deterministic test images written straight into a registry over the distribution API:
 * random-looking layers from a seeded PRNG, a config, an OCI or Docker v2s2 manifest, and
 * optionally a multi-platform index (OCI index or Docker manifest list).
 *
 * Same seed + options → same bytes → same digests, on every run and machine. This is test
 * tooling and deliberately does not use src/oci. It handles Basic auth, the Bearer token
 * challenge (token fetched with Basic credentials) and a private CA.
 * @module
 */

/** Where and how to reach a registry (a RegistryServer from ./registry.ts fits). */
export interface RegistryAccess {
  /** "http://127.0.0.1:PORT" or "https://…". */
  url: string;
  /** User for Basic auth or for the token request. */
  username?: string;
  /** Password for `username`. */
  password?: string;
  /** A private CA (PEM) to trust for https. */
  caCertPem?: string;
}

/** A content descriptor: digest and size. */
export interface BlobRef {
  /** "sha256:…". */
  digest: string;
  /** Size in bytes. */
  size: number;
}

/** What {@linkcode pushImage} wrote. */
export interface PushedImage {
  /** "host/repo:tag" (children of an index: "host/repo@digest"). */
  ref: string;
  /** Digest of the manifest (or index) bytes. */
  digest: string;
  /** Media type of the manifest (or index). */
  mediaType: string;
  /** The exact manifest bytes pushed. */
  manifestBytes: Uint8Array;
  /** Config and layer blobs; for an index, the de-duplicated union over its children. */
  blobs: BlobRef[];
  /** For an index: the per-platform images, in `platforms` order. */
  children?: PushedImage[];
  /** For a single image or child: its platform, e.g. "linux/amd64". */
  platform?: string;
}

/** Options for {@linkcode pushImage} and {@linkcode buildImage}. */
export interface ImageOptions {
  /** PRNG seed for the image's own layers and config (default 1). */
  seed?: number;
  /** Sizes in bytes of the image's own layers (default [1536, 4096]). */
  layers?: number[];
  /** Manifest flavour (default "oci"). */
  format?: "oci" | "docker";
  /** Several platforms → an index whose children are pushed by digest; e.g. ["linux/amd64"]. */
  platforms?: string[];
  /** Platform of a single image (default "linux/amd64"). */
  platform?: string;
  /** Sizes of base layers that are identical for every seed and platform (put before `layers`). */
  sharedLayers?: number[];
}

/** Media types used by the fixtures. */
export const MediaTypes = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar+gzip",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
} as const;

/** Every manifest media type, for Accept headers. */
export const MANIFEST_ACCEPT: readonly string[] = [
  MediaTypes.ociManifest,
  MediaTypes.ociIndex,
  MediaTypes.dockerManifest,
  MediaTypes.dockerList,
  MediaTypes.dockerSchema1Signed,
  "application/vnd.docker.distribution.manifest.v1+json",
];

/** Thrown when the registry refuses a fixture operation; `reason` is always "FixturePushFailed". */
export class FixtureError extends Error {
  /** Stable machine-readable reason. */
  readonly reason = "FixturePushFailed";
  /** Creates the error for `what`, with the registry's HTTP status and body. */
  constructor(what: string, readonly status: number, readonly body: string) {
    super(`${what}: HTTP ${status} ${body.slice(0, 500)}`);
    this.name = "FixtureError";
  }
}

// ---------------------------------------------------------------------------------------------
// Deterministic content

/** mulberry32: a tiny, fast 32-bit PRNG; returns a function yielding uint32 values. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Mixes several integers into one 32-bit seed. */
function mix(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0x5bd1e995) >>> 0;
  }
  return h >>> 0;
}

/** `size` pseudo-random bytes from `seed` (incompressible, so sizes are what they say). */
export function randomBytes(seed: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  const next = mulberry32(seed);
  for (let i = 0; i < size; i += 4) {
    const v = next();
    out[i] = v & 0xff;
    if (i + 1 < size) out[i + 1] = (v >>> 8) & 0xff;
    if (i + 2 < size) out[i + 2] = (v >>> 16) & 0xff;
    if (i + 3 < size) out[i + 3] = (v >>> 24) & 0xff;
  }
  return out;
}

/** "sha256:<hex>" of some bytes. */
export async function sha256Digest(bytes: Uint8Array): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return `sha256:${Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

const SHARED_SEED = 0x5ba5e;
const encoder = new TextEncoder();

function parsePlatform(platform: string): { os: string; architecture: string; variant?: string } {
  const [os, architecture, variant] = platform.split("/");
  if (!os || !architecture) throw new Error(`bad platform "${platform}", want os/arch[/variant]`);
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** One image or index, built in memory (nothing pushed). */
export interface BuiltImage {
  /** Manifest (or index) media type. */
  mediaType: string;
  /** Manifest (or index) bytes. */
  manifestBytes: Uint8Array;
  /** Its digest. */
  digest: string;
  /** Config and layers with their bytes (empty for an index). */
  blobs: Array<BlobRef & { bytes: Uint8Array; mediaType: string }>;
  /** Per-platform images of an index. */
  children?: BuiltImage[];
  /** Platform of a single image. */
  platform?: string;
}

async function buildSingle(
  seed: number,
  platform: string,
  platformIndex: number,
  opts: ImageOptions,
): Promise<BuiltImage> {
  const docker = opts.format === "docker";
  const layerType = docker ? MediaTypes.dockerLayer : MediaTypes.ociLayer;
  const shared = (opts.sharedLayers ?? []).map((size, i) => randomBytes(mix(SHARED_SEED, i, size), size));
  const own = (opts.layers ?? [1536, 4096]).map((size, i) =>
    randomBytes(mix(seed, platformIndex, i, size), size)
  );
  const layers = [];
  for (const bytes of [...shared, ...own]) {
    layers.push({ bytes, mediaType: layerType, size: bytes.length, digest: await sha256Digest(bytes) });
  }
  const config = {
    ...parsePlatform(platform),
    created: "2024-01-01T00:00:00Z",
    config: { Labels: { "io.portager.test.seed": String(seed), "io.portager.test.platform": platform } },
    // Layers are random bytes, not real tarballs; their "diff ids" are their own digests.
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
    history: layers.map((_, i) => ({ created: "2024-01-01T00:00:00Z", created_by: `fixture layer ${i}` })),
  };
  const configBytes = encoder.encode(JSON.stringify(config));
  const configBlob = {
    bytes: configBytes,
    mediaType: docker ? MediaTypes.dockerConfig : MediaTypes.ociConfig,
    size: configBytes.length,
    digest: await sha256Digest(configBytes),
  };
  const mediaType = docker ? MediaTypes.dockerManifest : MediaTypes.ociManifest;
  const descriptor = (b: { mediaType: string; digest: string; size: number }) => ({
    mediaType: b.mediaType,
    digest: b.digest,
    size: b.size,
  });
  const manifest = {
    schemaVersion: 2,
    mediaType,
    config: descriptor(configBlob),
    layers: layers.map(descriptor),
  };
  const manifestBytes = encoder.encode(JSON.stringify(manifest, null, 2));
  return {
    mediaType,
    manifestBytes,
    digest: await sha256Digest(manifestBytes),
    blobs: [configBlob, ...layers],
    platform,
  };
}

/** Builds (without pushing) the image {@linkcode pushImage} would push for these options. */
export async function buildImage(opts: ImageOptions = {}): Promise<BuiltImage> {
  const seed = opts.seed ?? 1;
  if (!opts.platforms) return await buildSingle(seed, opts.platform ?? "linux/amd64", 0, opts);
  const children: BuiltImage[] = [];
  for (const [i, platform] of opts.platforms.entries()) {
    children.push(await buildSingle(seed, platform, i + 1, opts));
  }
  const docker = opts.format === "docker";
  const mediaType = docker ? MediaTypes.dockerList : MediaTypes.ociIndex;
  const index = {
    schemaVersion: 2,
    mediaType,
    manifests: children.map((c) => ({
      mediaType: c.mediaType,
      digest: c.digest,
      size: c.manifestBytes.length,
      platform: parsePlatform(c.platform!),
    })),
  };
  const manifestBytes = encoder.encode(JSON.stringify(index, null, 2));
  return { mediaType, manifestBytes, digest: await sha256Digest(manifestBytes), blobs: [], children };
}

/** A signed Docker schema1 manifest, built in memory (nothing pushed). */
export interface BuiltSchema1 {
  /** Always {@linkcode MediaTypes.dockerSchema1Signed}. */
  mediaType: string;
  /** The full signed (pretty JWS) bytes to PUT. */
  manifestBytes: Uint8Array;
  /** The digest a registry assigns: sha256 of the canonical payload, i.e. without signatures. */
  digest: string;
  /** The layer blobs the manifest references (top layer last, as in `layers`). */
  blobs: Array<BlobRef & { bytes: Uint8Array; mediaType: string }>;
}

/** libtrust key id: base32 of the first 30 bytes of sha256(SPKI DER), in groups of four. */
async function libtrustKeyId(key: CryptoKey): Promise<string> {
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", key));
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", spki)).slice(0, 30);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  let s = "";
  for (const byte of hash) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      s += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return s.match(/.{1,4}/g)!.join(":");
}

function b64url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * Builds a Docker schema1 manifest for `repository:tag` over deterministic layers, signed the
 * way libtrust does (ES256 pretty JWS with a fresh key), so a schema1-enabled registry accepts it.
 */
export async function buildSchema1(
  ref: { repository: string; tag: string },
  opts: { seed?: number; layers?: number[] } = {},
): Promise<BuiltSchema1> {
  const seed = opts.seed ?? 1;
  const blobs = [];
  for (const [i, size] of (opts.layers ?? [1536, 4096]).entries()) {
    const bytes = randomBytes(mix(seed, 0x51, i, size), size);
    blobs.push({ bytes, size, digest: await sha256Digest(bytes), mediaType: MediaTypes.dockerLayer });
  }
  // schema1 lists the top layer first; each history entry is a v1 image JSON string
  const ids = blobs.map((b) => b.digest.slice(7));
  const history = ids.map((id, i) => {
    const v1: Record<string, unknown> = { id, created: "2024-01-01T00:00:00Z" };
    if (i > 0) v1.parent = ids[i - 1];
    if (i === ids.length - 1) Object.assign(v1, { architecture: "amd64", os: "linux" });
    return { v1Compatibility: JSON.stringify(v1) };
  }).reverse();
  const manifest = {
    schemaVersion: 1,
    name: ref.repository,
    tag: ref.tag,
    architecture: "amd64",
    fsLayers: [...blobs].reverse().map((b) => ({ blobSum: b.digest })),
    history,
  };
  const payload = encoder.encode(JSON.stringify(manifest, null, 3));
  const text = new TextDecoder().decode(payload);
  const formatLength = text.trimEnd().slice(0, -1).trimEnd().length; // up to the last "]"
  const formatTail = payload.slice(formatLength);
  const keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", keys.publicKey);
  const kid = await libtrustKeyId(keys.publicKey);
  const protectedHeader = b64url(encoder.encode(JSON.stringify({
    formatLength,
    formatTail: b64url(formatTail),
    time: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
  })));
  const signature = new Uint8Array(
    await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      keys.privateKey,
      encoder.encode(`${protectedHeader}.${b64url(payload)}`),
    ),
  );
  const signatures = [{
    header: { jwk: { crv: "P-256", kid, kty: "EC", x: jwk.x, y: jwk.y }, alg: "ES256" },
    signature: b64url(signature),
    protected: protectedHeader,
  }];
  const signed = text.slice(0, formatLength) + `,\n   "signatures": ${JSON.stringify(signatures, null, 3)}` +
    new TextDecoder().decode(formatTail);
  return {
    mediaType: MediaTypes.dockerSchema1Signed,
    manifestBytes: encoder.encode(signed),
    digest: await sha256Digest(payload),
    blobs,
  };
}

// ---------------------------------------------------------------------------------------------
// A tiny registry client (Basic, Bearer challenge, private CA)

interface RequestInitLite {
  method?: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
}

function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = header.match(/^\s*(\w+)\s*(.*)$/);
  const params: Record<string, string> = {};
  if (!m) return { scheme: "", params };
  for (const p of m[2].matchAll(/(\w+)="([^"]*)"/g)) params[p[1].toLowerCase()] = p[2];
  return { scheme: m[1].toLowerCase(), params };
}

/** One conversation with a registry about one repository; remembers the token it got. */
class Session {
  #reg: RegistryAccess;
  #repo: string;
  #client?: Deno.HttpClient;
  #auth?: string;

  constructor(reg: RegistryAccess, repo: string) {
    this.#reg = reg;
    this.#repo = repo;
    if (reg.caCertPem) this.#client = Deno.createHttpClient({ caCerts: [reg.caCertPem] });
    if (reg.username !== undefined) this.#auth = `Basic ${this.#basic()}`;
  }

  #basic(): string {
    return btoa(`${this.#reg.username ?? ""}:${this.#reg.password ?? ""}`);
  }

  #fetch(url: string, init: RequestInit): Promise<Response> {
    return fetch(url, this.#client ? { ...init, client: this.#client } : init);
  }

  /** Sends a request (path relative to the registry URL, or an absolute URL); retries once after auth. */
  async request(path: string, init: RequestInitLite = {}): Promise<Response> {
    const url = new URL(path, this.#reg.url).toString();
    const send = () => {
      const headers: Record<string, string> = { ...init.headers };
      if (this.#auth) headers.authorization = this.#auth;
      return this.#fetch(url, {
        method: init.method ?? "GET",
        headers,
        body: init.body as Uint8Array<ArrayBuffer> | undefined,
      });
    };
    const res = await send();
    if (res.status !== 401) return res;
    const challenge = parseChallenge(res.headers.get("www-authenticate") ?? "");
    if (challenge.scheme === "bearer" && challenge.params.realm) {
      await res.body?.cancel();
      await this.#fetchToken(challenge.params);
      return await send();
    }
    if (
      challenge.scheme === "basic" && this.#reg.username !== undefined && !this.#auth?.startsWith("Basic")
    ) {
      await res.body?.cancel();
      this.#auth = `Basic ${this.#basic()}`;
      return await send();
    }
    return res;
  }

  async #fetchToken(params: Record<string, string>): Promise<void> {
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set("service", params.service);
    const scopes = new Set([`repository:${this.#repo}:pull,push`]);
    if (params.scope && !params.scope.startsWith(`repository:${this.#repo}:`)) scopes.add(params.scope);
    for (const s of scopes) url.searchParams.append("scope", s);
    const headers: Record<string, string> = {};
    if (this.#reg.username !== undefined) headers.authorization = `Basic ${this.#basic()}`;
    // The token realm of the test registries is plain HTTP on 127.0.0.1; no custom CA needed,
    // but use the same client in case it is https with the same CA.
    const res = await this.#fetch(url.toString(), { headers });
    const text = await res.text();
    if (!res.ok) throw new FixtureError(`token request to ${url}`, res.status, text);
    const body = JSON.parse(text) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new FixtureError(`token response from ${url} has no token`, res.status, text);
    this.#auth = `Bearer ${token}`;
  }

  close(): void {
    this.#client?.close();
  }
}

async function withSession<T>(reg: RegistryAccess, repo: string, fn: (s: Session) => Promise<T>): Promise<T> {
  const s = new Session(reg, repo);
  try {
    return await fn(s);
  } finally {
    s.close();
  }
}

async function uploadBlob(
  s: Session,
  repo: string,
  blob: { digest: string; bytes: Uint8Array },
): Promise<void> {
  const head = await s.request(`/v2/${repo}/blobs/${blob.digest}`, { method: "HEAD" });
  await head.body?.cancel();
  if (head.status === 200) return;
  const start = await s.request(`/v2/${repo}/blobs/uploads/`, { method: "POST" });
  const startText = await start.text();
  const location = start.headers.get("location");
  if (start.status !== 202 || !location) {
    throw new FixtureError(`starting blob upload to ${repo}`, start.status, startText);
  }
  const target = location.includes("?")
    ? `${location}&digest=${encodeURIComponent(blob.digest)}`
    : `${location}?digest=${encodeURIComponent(blob.digest)}`;
  const res = await s.request(target, {
    method: "PUT",
    headers: { "content-type": "application/octet-stream" },
    body: blob.bytes,
  });
  const text = await res.text();
  if (res.status !== 201) {
    throw new FixtureError(`uploading blob ${blob.digest} to ${repo}`, res.status, text);
  }
}

async function putManifest(
  s: Session,
  repo: string,
  reference: string,
  bytes: Uint8Array,
  mediaType: string,
): Promise<{ status: number; digest?: string; body: string }> {
  const res = await s.request(`/v2/${repo}/manifests/${reference}`, {
    method: "PUT",
    headers: { "content-type": mediaType },
    body: bytes,
  });
  const body = await res.text();
  return { status: res.status, digest: res.headers.get("docker-content-digest") ?? undefined, body };
}

function hostOf(reg: RegistryAccess): string {
  return new URL(reg.url).host;
}

async function pushBuilt(
  s: Session,
  reg: RegistryAccess,
  repo: string,
  img: BuiltImage,
  reference: string,
): Promise<PushedImage> {
  let children: PushedImage[] | undefined;
  if (img.children) {
    children = [];
    for (const child of img.children) children.push(await pushBuilt(s, reg, repo, child, child.digest));
  } else {
    for (const blob of img.blobs) await uploadBlob(s, repo, blob);
  }
  const put = await putManifest(s, repo, reference, img.manifestBytes, img.mediaType);
  if (put.status !== 201) {
    throw new FixtureError(`pushing manifest ${repo}:${reference}`, put.status, put.body);
  }
  if (put.digest && put.digest !== img.digest) {
    throw new FixtureError(`registry computed digest ${put.digest}, expected ${img.digest}`, put.status, "");
  }
  const sep = reference.startsWith("sha256:") ? "@" : ":";
  const blobs = children
    ? [...new Map(children.flatMap((c) => c.blobs).map((b) => [b.digest, b])).values()]
    : img.blobs.map((b) => ({ digest: b.digest, size: b.size }));
  const out: PushedImage = {
    ref: `${hostOf(reg)}/${repo}${sep}${reference}`,
    digest: img.digest,
    mediaType: img.mediaType,
    manifestBytes: img.manifestBytes,
    blobs,
  };
  if (children) out.children = children;
  if (img.platform) out.platform = img.platform;
  return out;
}

/**
 * Builds a deterministic image (or, with `platforms`, an index of per-platform images) and
 * pushes it: blobs first, children by digest, the tag last. Throws FixtureError if refused.
 */
export async function pushImage(
  reg: RegistryAccess,
  ref: { repository: string; tag: string },
  opts: ImageOptions = {},
): Promise<PushedImage> {
  const img = await buildImage(opts);
  return await withSession(reg, ref.repository, (s) => pushBuilt(s, reg, ref.repository, img, ref.tag));
}

/** A manifest as the registry serves it. */
export interface FetchedManifest {
  /** HTTP status (200, 404, 401, …). */
  status: number;
  /** The Docker-Content-Digest header, if any. */
  digest?: string;
  /** The body bytes (empty on error statuses other than the registry's error JSON). */
  bytes: Uint8Array;
  /** The Content-Type header, if any. */
  mediaType?: string;
}

/** GETs a manifest by tag or digest, accepting every manifest media type; never throws on status. */
export async function getManifest(
  reg: RegistryAccess,
  repo: string,
  reference: string,
): Promise<FetchedManifest> {
  return await withSession(reg, repo, async (s) => {
    const res = await s.request(`/v2/${repo}/manifests/${reference}`, {
      headers: { accept: MANIFEST_ACCEPT.join(", ") },
    });
    const bytes = new Uint8Array(await res.arrayBuffer());
    const out: FetchedManifest = { status: res.status, bytes };
    const digest = res.headers.get("docker-content-digest");
    const mediaType = res.headers.get("content-type");
    if (digest) out.digest = digest;
    if (mediaType) out.mediaType = mediaType;
    return out;
  });
}

/** Whether the registry has blob `digest` in `repo` (HEAD answers 200). */
export async function blobExists(reg: RegistryAccess, repo: string, digest: string): Promise<boolean> {
  return await withSession(reg, repo, async (s) => {
    const res = await s.request(`/v2/${repo}/blobs/${digest}`, { method: "HEAD" });
    await res.body?.cancel();
    if (res.status !== 200 && res.status !== 404) {
      throw new FixtureError(`HEAD blob ${repo}@${digest}`, res.status, "");
    }
    return res.status === 200;
  });
}

/**
 * Pushes a signed schema1 image (layers, then the manifest by tag). The registry must run
 * with `startRegistry(kind, { schema1: true })`; CNCF distribution refuses schema1 otherwise.
 */
export async function pushSchema1Image(
  reg: RegistryAccess,
  ref: { repository: string; tag: string },
  opts: { seed?: number; layers?: number[] } = {},
): Promise<PushedImage> {
  const img = await buildSchema1(ref, opts);
  return await withSession(reg, ref.repository, async (s) => {
    for (const blob of img.blobs) await uploadBlob(s, ref.repository, blob);
    const put = await putManifest(s, ref.repository, ref.tag, img.manifestBytes, img.mediaType);
    if (put.status !== 201) {
      throw new FixtureError(`pushing schema1 manifest ${ref.repository}:${ref.tag}`, put.status, put.body);
    }
    if (put.digest !== img.digest) {
      throw new FixtureError(
        `registry computed digest ${put.digest}, expected ${img.digest}`,
        put.status,
        "",
      );
    }
    return {
      ref: `${hostOf(reg)}/${ref.repository}:${ref.tag}`,
      digest: img.digest,
      mediaType: img.mediaType,
      manifestBytes: img.manifestBytes,
      blobs: img.blobs.map((b) => ({ digest: b.digest, size: b.size })),
    };
  });
}

/** Downloads a blob's bytes (throws FixtureError unless 200). */
export async function getBlob(reg: RegistryAccess, repo: string, digest: string): Promise<Uint8Array> {
  return await withSession(reg, repo, async (s) => {
    const res = await s.request(`/v2/${repo}/blobs/${digest}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (res.status !== 200) {
      throw new FixtureError(`GET blob ${repo}@${digest}`, res.status, new TextDecoder().decode(bytes));
    }
    return bytes;
  });
}

/** Uploads raw bytes as a blob (monolithic); returns its descriptor. */
export async function pushBlob(reg: RegistryAccess, repo: string, bytes: Uint8Array): Promise<BlobRef> {
  const digest = await sha256Digest(bytes);
  await withSession(reg, repo, (s) => uploadBlob(s, repo, { digest, bytes }));
  return { digest, size: bytes.length };
}

/**
 * PUTs arbitrary manifest bytes with a given Content-Type (for schema1 or malformed manifest
 * tests). Never throws on status: the caller inspects what the registry answered.
 * (Five positional arguments, against the house style, because the shared harness contract
 * names this signature.)
 */
export async function pushRawManifest(
  reg: RegistryAccess,
  repo: string,
  reference: string,
  bytes: Uint8Array,
  mediaType: string,
): Promise<{ status: number; digest?: string; body: string }> {
  return await withSession(reg, repo, (s) => putManifest(s, repo, reference, bytes, mediaType));
}

/** Deletes a manifest by digest (the registries run with delete enabled); returns the status. */
export async function deleteManifest(reg: RegistryAccess, repo: string, digest: string): Promise<number> {
  return await withSession(reg, repo, async (s) => {
    const res = await s.request(`/v2/${repo}/manifests/${digest}`, { method: "DELETE" });
    await res.body?.cancel();
    return res.status;
  });
}
