import assert from "node:assert/strict";
import { sha256Digest } from "./blobs.ts";
import type { FetchedManifest, ManifestHead, RegistryClient } from "./client.ts";
import { Copier, type CopierOptions } from "./copy.ts";
import { NEW_REPOSITORY_CHECK_MIN_SIZE } from "./copy_blobs.ts";
import { OciError } from "./errors.ts";
import { OCI_INDEX, OCI_MANIFEST, parseManifest } from "./manifest.ts";
import { parseReference, type Reference } from "./reference.ts";
import { type RetryEvent, RetryPolicy } from "./retry.ts";

const enc = new TextEncoder();

/** An in-memory registry standing in for a RegistryClient; `ops` records every call in order. */
class FakeRegistry {
  readonly manifests = new Map<string, { bytes: Uint8Array; mediaType: string }>();
  readonly blobs = new Map<string, Uint8Array>();
  readonly tags = new Map<string, string>();
  readonly ops: string[] = [];
  readonly retry: RetryPolicy;
  /** Blob GETs that fail once with a retryable error. */
  readonly flaky = new Set<string>();
  /** startUpload fails with this error when set. */
  uploadRefused?: OciError;
  /** Blobs whose source body was cancelled. */
  readonly cancelled: string[] = [];
  /** Delay of every manifest GET (ms), to make copies overlap. */
  delayMs = 0;
  /** What pullsUnmetered answers: whether manifest GETs announced no rate limit. */
  unmetered = true;

  constructor(retry = new RetryPolicy({ retryBaseMs: 1 })) {
    this.retry = retry;
  }

  get maxAttempts(): number {
    return this.retry.maxAttempts;
  }

  get client(): RegistryClient {
    return this as unknown as RegistryClient;
  }

  blob(content: string): { digest: string; size: number; mediaType: string } {
    const bytes = enc.encode(content);
    const digest = sha256Digest(bytes);
    this.blobs.set(digest, bytes);
    return { digest, size: bytes.byteLength, mediaType: "application/octet-stream" };
  }

  manifest(
    json: unknown,
    mediaType: string,
    tag?: string,
  ): { digest: string; size: number; mediaType: string } {
    const bytes = enc.encode(JSON.stringify(json));
    const digest = sha256Digest(bytes);
    this.manifests.set(digest, { bytes, mediaType });
    if (tag) this.tags.set(tag, digest);
    return { digest, size: bytes.byteLength, mediaType };
  }

  image(layers: string[], tag?: string) {
    const config = this.blob(`config of ${layers.join()}`);
    return this.manifest(
      { schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: layers.map((l) => this.blob(l)) },
      OCI_MANIFEST,
      tag,
    );
  }

  /** An index of linux images by architecture. */
  multiArch(byArch: Record<string, { digest: string; size: number; mediaType: string }>, tag?: string) {
    const manifests = Object.entries(byArch).map(([architecture, d]) => ({
      ...d,
      platform: { os: "linux", architecture },
    }));
    return this.manifest({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }, OCI_INDEX, tag);
  }

  #resolve(ref: Reference): string | undefined {
    return ref.digest ?? this.tags.get(ref.tag ?? "latest");
  }

  pullsUnmetered(): boolean {
    return this.unmetered;
  }

  headManifest(ref: Reference): Promise<ManifestHead | undefined> {
    this.ops.push(`headManifest ${ref.digest ?? ref.tag}`);
    const digest = this.#resolve(ref);
    const m = digest ? this.manifests.get(digest) : undefined;
    return Promise.resolve(m && { digest: digest!, mediaType: m.mediaType, size: m.bytes.byteLength });
  }

  async getManifest(ref: Reference): Promise<FetchedManifest> {
    this.ops.push(`getManifest ${ref.digest ?? ref.tag}`);
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    const digest = this.#resolve(ref);
    const m = digest ? this.manifests.get(digest) : undefined;
    if (!m) throw new OciError("NotFound", `${ref} not found`);
    const manifest = parseManifest(m.bytes, { contentType: m.mediaType, context: "test" });
    return { digest: digest!, mediaType: m.mediaType, size: m.bytes.byteLength, bytes: m.bytes, manifest };
  }

  putManifest(ref: Reference, m: { bytes: Uint8Array; mediaType: string }): Promise<string> {
    const digest = sha256Digest(m.bytes);
    this.ops.push(`putManifest ${ref.tag ?? ref.digest}`);
    this.manifests.set(digest, { bytes: m.bytes, mediaType: m.mediaType });
    if (ref.tag) this.tags.set(ref.tag, digest);
    return Promise.resolve(digest);
  }

  /** What repositoryUnknown answers: true, false (default) or true until a tag is written. */
  repositoryMissing: boolean | "untilTagged" = false;
  /** repositoryUnknown calls (apart from `ops`, which existing tests compare whole). */
  probes = 0;

  repositoryUnknown(): Promise<boolean> {
    this.probes++;
    const m = this.repositoryMissing;
    return Promise.resolve(m === "untilTagged" ? this.tags.size === 0 : m);
  }

  headBlob(_repo: Reference, digest: string): Promise<{ size: number } | undefined> {
    const b = this.blobs.get(digest);
    return Promise.resolve(b && { size: b.byteLength });
  }

  getBlob(_repo: Reference, digest: string, opts: { onChunk?: (n: number) => void } = {}) {
    this.ops.push(`getBlob ${digest}`);
    if (this.flaky.delete(digest)) {
      return Promise.reject(new OciError("Network", "connection reset", { retryable: true }));
    }
    const bytes = this.blobs.get(digest)!;
    opts.onChunk?.(bytes.byteLength);
    const cancelled = this.cancelled;
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(bytes);
        c.close();
      },
      cancel() {
        cancelled.push(digest);
      },
    });
    return Promise.resolve({ stream, size: bytes.byteLength });
  }

  startUpload(): Promise<string> {
    this.ops.push("startUpload");
    if (this.uploadRefused) return Promise.reject(this.uploadRefused);
    return Promise.resolve(`/v2/app/blobs/uploads/session-${this.ops.length}`);
  }

  mountBlob(): Promise<{ mounted: true }> {
    return Promise.resolve({ mounted: true });
  }

  async uploadBlob(
    _dst: Reference,
    blob: { digest: string; stream: ReadableStream<Uint8Array> },
    opts: { location?: string } = {},
  ): Promise<void> {
    this.ops.push(`uploadBlob ${blob.digest}${opts.location ? ` to ${opts.location}` : ""}`);
    this.blobs.set(blob.digest, new Uint8Array(await new Response(blob.stream).arrayBuffer()));
  }
}

const src = (tag: string) => parseReference(`src.example/app:${tag}`);
const dst = (tag: string) => parseReference(`dst.example/app:${tag}`);

/** A source and a destination registry; `makeCopier` makes a Copier from one to the other. */
function registries() {
  const from = new FakeRegistry();
  const to = new FakeRegistry();
  const makeCopier = (opts?: CopierOptions) =>
    new Copier({ source: from.client, destination: to.client }, opts);
  return { from, to, makeCopier };
}

Deno.test("copy: blobs first, then child manifests, then the tag, digests preserved", async () => {
  const { from, to, makeCopier } = registries();
  const amd = from.image(["base", "amd"]);
  const arm = from.image(["base", "arm"]);
  const index = from.multiArch({ amd64: amd, arm64: arm }, "1");
  const result = await makeCopier().copy(src("1"), dst("1"));
  assert.equal(result.digest, index.digest);
  assert.equal(result.blobsCopied, 5, "base shared by both children moves once");
  assert.equal(result.manifestsPushed, 3);
  assert.equal(to.tags.get("1"), index.digest);
  const writes = to.ops.filter((o) => o.startsWith("upload") || o.startsWith("put"));
  assert.deepEqual(writes.slice(-3).map((o) => o.split(" ")[0]), [
    "putManifest",
    "putManifest",
    "putManifest",
  ]);
  assert.equal(writes.at(-1), "putManifest 1", "the tag is written last");
  assert(writes.slice(0, 5).every((o) => o.startsWith("uploadBlob")), "every blob before any manifest");
});

Deno.test("copy: an up-to-date destination is detected from manifests alone", async () => {
  const { from, to, makeCopier } = registries();
  from.image(["a"], "1");
  const copier = makeCopier();
  await copier.copy(src("1"), dst("1"));
  from.ops.length = 0;
  to.ops.length = 0;
  const again = await copier.copy(src("1"), dst("1"));
  assert.equal(again.upToDate, true);
  assert.deepEqual(from.ops, ["headManifest 1"]);
  assert.deepEqual(to.ops, ["headManifest 1"]);
});

Deno.test("copy: an unchanged tag's two HEADs are in flight together (one round trip, not two)", async () => {
  const { from, to, makeCopier } = registries();
  from.image(["a"], "1");
  const copier = makeCopier();
  await copier.copy(src("1"), dst("1"));
  // the source's HEAD answers only once the destination's HEAD has been asked
  let destinationAsked!: () => void;
  const asked = new Promise<void>((r) => destinationAsked = r);
  const head = from.client.headManifest.bind(from.client);
  from.client.headManifest = async (ref, o) => (await asked, head(ref, o));
  const toHead = to.client.headManifest.bind(to.client);
  to.client.headManifest = (ref, o) => (destinationAsked(), toHead(ref, o));
  const again = await copier.copy(src("1"), dst("1"));
  assert.equal(again.upToDate, true);
});

Deno.test("copy: when the source cannot be read, the destination's HEAD is cancelled", async () => {
  const { to, makeCopier } = registries();
  let cancelled = false;
  to.client.headManifest = (_ref, o) =>
    new Promise((_, reject) => {
      o?.signal?.addEventListener("abort", () => {
        cancelled = true;
        reject(o.signal!.reason);
      });
    });
  await assert.rejects(
    makeCopier().copy(src("missing"), dst("missing")),
    (e) => e instanceof OciError && e.reason === "NotFound",
  );
  assert.equal(cancelled, true);
});

Deno.test("copy: blob checks are not held to the transfer limit; transfers start largest first", async () => {
  const { from, to, makeCopier } = registries();
  // 1 small config, then layers of growing size: in descriptor order the largest comes last
  const img = from.image(["a", "bb".repeat(10), "ccc".repeat(100), "dddd".repeat(1000)], "1");
  let inFlight = 0;
  let most = 0;
  const head = to.client.headBlob.bind(to.client);
  to.client.headBlob = async (repo, digest, o) => {
    most = Math.max(most, ++inFlight);
    await new Promise((r) => setTimeout(r, 5));
    inFlight--;
    return head(repo, digest, o);
  };
  const result = await makeCopier({ concurrency: 1 }).copy(src("1"), dst("1"));
  assert.equal(result.blobsCopied, 5);
  assert.equal(
    most,
    4,
    "all four layers' HEADs in flight together with one transfer slot (a new image's config is not checked)",
  );
  const sizes = from.ops.filter((o) => o.startsWith("getBlob")).map((o) =>
    from.blobs.get(o.split(" ")[1])!.length
  );
  assert.deepEqual(sizes, [...sizes].sort((a, b) => b - a), `transfers by size, largest first: ${sizes}`);
  const tree = parseManifest(from.manifests.get(img.digest)!.bytes, { context: "t" }).blobs.map((b) =>
    b.digest
  );
  assert.deepEqual(result.blobs.map((b) => b.digest), tree, "the result lists blobs in the manifest's order");

  const narrow = registries();
  narrow.from.image(["a", "b", "c", "d"], "1");
  let now = 0;
  let peak = 0;
  const narrowHead = narrow.to.client.headBlob.bind(narrow.to.client);
  narrow.to.client.headBlob = async (repo, digest, o) => {
    peak = Math.max(peak, ++now);
    await new Promise((r) => setTimeout(r, 5));
    now--;
    return narrowHead(repo, digest, o);
  };
  await narrow.makeCopier({ concurrency: 4, checkConcurrency: 2 }).copy(src("1"), dst("1"));
  assert.equal(peak, 2, "checkConcurrency bounds the HEADs in flight");
});

Deno.test("copy: a blob's transfer starts once its own check answered, not after every check", async () => {
  const { from, to, makeCopier } = registries();
  from.image(["a".repeat(100), "b".repeat(10), "c"], "1");
  let firstGet!: () => void;
  const got = new Promise<string>((r) => firstGet = () => r("transfer"));
  const getBlob = from.client.getBlob.bind(from.client);
  from.client.getBlob = (repo, digest, o) => (firstGet(), getBlob(repo, digest, o));
  const order: string[] = [];
  const head = to.client.headBlob.bind(to.client);
  let checks = 0;
  to.client.headBlob = async (repo, digest, o) => {
    // the last check (the smallest layer; a new image's config is not checked) answers only once a transfer began,
    // or after 2 s if none does (then the order below says so)
    if (++checks === 3) {
      let timer!: ReturnType<typeof setTimeout>;
      order.push(
        await Promise.race([got, new Promise<string>((r) => timer = setTimeout(() => r("timeout"), 2000))]),
      );
      clearTimeout(timer);
    }
    return head(repo, digest, o);
  };
  const result = await makeCopier({ checkConcurrency: 1 }).copy(src("1"), dst("1"));
  assert.equal(result.blobsCopied, 4);
  assert.deepEqual(order, ["transfer"], "the largest blob moved while the smallest was still being checked");
});

Deno.test("copy: a dry run plans and writes nothing", async () => {
  const { from, to, makeCopier } = registries();
  from.image(["a", "bb"], "1");
  const result = await makeCopier().copy(src("1"), dst("1"), {
    dryRun: true,
  });
  assert.equal(result.dryRun, true);
  assert.equal(result.blobsCopied, 3);
  assert.equal(result.manifestsPushed, 0);
  assert.deepEqual(to.ops.filter((o) => !o.startsWith("head")), []);
});

Deno.test("copy: a blob whose transfer broke is restarted under the retry policy, reported as BlobRestart", async () => {
  const { from, makeCopier } = registries();
  const retries: RetryEvent[] = [];
  const img = from.image(["layer"], "1");
  const layer = parseManifest(from.manifests.get(img.digest)!.bytes, { context: "t" }).blobs[1].digest;
  from.flaky.add(layer);
  const retry = new RetryPolicy({ retryBaseMs: 1, onRetry: (e) => retries.push(e) });
  const result = await makeCopier({ retry }).copy(
    src("1"),
    dst("1"),
  );
  assert.equal(result.blobsCopied, 2);
  assert.deepEqual(retries.map((r) => [r.reason, r.attempt, r.path]), [[
    "BlobRestart",
    1,
    `/v2/app/blobs/${layer}`,
  ]]);
  assert.equal(from.ops.filter((o) => o === `getBlob ${layer}`).length, 2);
});

Deno.test("copy: a blob's upload session is opened beside its source GET; a refused session lets the source body go", async () => {
  const { from, to, makeCopier } = registries();
  from.image(["layer"], "1");
  await makeCopier().copy(src("1"), dst("1"));
  const gets = from.ops.filter((o) => o.startsWith("getBlob"));
  assert.equal(gets.length, 2);
  // each blob: its session asked for before any upload began, and the upload sent to that session
  const sessions = to.ops.filter((o) => o === "startUpload").length;
  assert.equal(sessions, 2);
  const uploads = to.ops.filter((o) => o.startsWith("uploadBlob"));
  assert(uploads.every((o) => / to \/v2\/app\/blobs\/uploads\/session-\d+$/.test(o)), uploads.join());

  const refused = registries();
  refused.from.image(["layer"], "1");
  refused.to.uploadRefused = new OciError("Unauthorized", "push denied");
  await assert.rejects(refused.makeCopier().copy(src("1"), dst("1")), /push denied/);
  const read = refused.from.ops.filter((o) => o.startsWith("getBlob")).map((o) => o.split(" ")[1]);
  assert(read.length > 0);
  assert.deepEqual(refused.from.cancelled.sort(), read.sort(), "every opened source body is cancelled");
  assert.deepEqual(refused.to.ops.filter((o) => o.startsWith("uploadBlob") || o.startsWith("put")), []);
});

Deno.test("copy: a platform filter pushes a smaller index; no match is NoMatchingPlatform", async () => {
  const { from, to, makeCopier } = registries();
  const amd = from.image(["amd"]);
  const arm = from.image(["arm"]);
  from.multiArch({ amd64: amd, arm64: arm }, "1");
  const only = makeCopier({ platforms: ["linux/arm64"] });
  const result = await only.copy(src("1"), dst("1"));
  assert.equal(result.indexRewritten, true);
  const pushed = parseManifest(to.manifests.get(to.tags.get("1")!)!.bytes, { context: "t" });
  assert.deepEqual(pushed.manifests.map((m) => m.digest), [arm.digest]);
  assert(!to.manifests.has(amd.digest));
  const none = makeCopier({ platforms: ["windows/amd64"] });
  await assert.rejects(
    none.copy(src("1"), dst("2")),
    (e) => e instanceof OciError && e.reason === "NoMatchingPlatform",
  );
});

Deno.test("copy: a destination pinned to another digest is refused before anything moves", async () => {
  const { from, to, makeCopier } = registries();
  from.image(["a"], "1");
  const pinned = parseReference(`dst.example/app@sha256:${"0".repeat(64)}`);
  await assert.rejects(
    makeCopier().copy(src("1"), pinned),
    (e) => e instanceof OciError && e.reason === "InvalidReference",
  );
  assert.deepEqual(to.ops, []);
});

Deno.test("copy: a manifest tree over the count or byte cap fails before any child is read", async () => {
  const { from, makeCopier } = registries();
  const children = Object.fromEntries(["amd64", "arm64", "s390x"].map((a) => [a, from.image([a])]));
  const index = from.multiArch(children, "1");
  const indexSize = from.manifests.get(index.digest)!.bytes.byteLength;
  const childBytes = Object.values(children).reduce((n, c) => n + c.size, 0);
  for (
    const [opts, message] of [
      [{ maxManifests: 3 }, /more than 3 manifests \(the maxManifests limit\)/],
      [
        { maxManifestBytes: indexSize + childBytes - 1 },
        /bytes of manifests to hold, more than the \d+ allowed/,
      ],
    ] as const
  ) {
    from.ops.length = 0;
    const copier = makeCopier(opts);
    const err = await copier.copy(src("1"), dst("1"), { dryRun: true }).catch((e) => e);
    assert(err instanceof OciError, String(err));
    assert.equal(err.reason, "ManifestTreeTooLarge");
    assert.match(err.message, message);
    assert.deepEqual(from.ops.filter((o) => o.startsWith("getManifest")), [`getManifest ${index.digest}`]);
  }
  const fits = makeCopier({
    maxManifests: 4,
    maxManifestBytes: indexSize + childBytes,
  });
  assert.equal((await fits.copy(src("1"), dst("1"), { dryRun: true })).blobsCopied, 6);
});

Deno.test("copy: the manifest byte cap covers the copies a copier runs at once, released as each ends", async () => {
  const { from, makeCopier } = registries();
  from.delayMs = 20;
  const sizeOf = (tag: string) => {
    const index = from.multiArch(
      { amd64: from.image([`${tag}-amd`]), arm64: from.image([`${tag}-arm`]) },
      tag,
    );
    const children = parseManifest(from.manifests.get(index.digest)!.bytes, { context: "t" }).manifests;
    return index.size + children.reduce((n, c) => n + c.size, 0);
  };
  const one = sizeOf("1");
  const two = sizeOf("2");
  const copier = makeCopier({
    maxManifestBytes: Math.max(one, two) + 10,
  });
  await copier.copy(src("1"), dst("1"), { dryRun: true });
  await copier.copy(src("2"), dst("2"), { dryRun: true });
  const both = await Promise.allSettled([
    copier.copy(src("1"), dst("3"), { dryRun: true }),
    copier.copy(src("2"), dst("4"), { dryRun: true }),
  ]);
  const failed = both.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
  assert.equal(failed.length, 1, "one of two overlapping copies is over the shared cap");
  assert.equal(failed[0].reason.reason, "ManifestTreeTooLarge");
  assert.match(failed[0].reason.message, /with the copies beside it/);
  await copier.copy(src("1"), dst("5"), { dryRun: true });
});

Deno.test("copy: a deadline signal that ends a wait between attempts is a Timeout OciError", async () => {
  const { from, makeCopier } = registries();
  const img = from.image(["layer"], "1");
  from.flaky.add(parseManifest(from.manifests.get(img.digest)!.bytes, { context: "t" }).blobs[1].digest);
  const retry = new RetryPolicy({ retryBaseMs: 60_000, retryMaxDelayMs: 60_000 });
  const copier = makeCopier({ retry });
  const err = await copier.copy(src("1"), dst("1"), { signal: AbortSignal.timeout(100) }).catch((e) => e);
  assert(err instanceof OciError, String(err));
  assert.equal(err.reason, "Timeout");
  assert.match(err.message, /stopped: the deadline passed/);
  const ac = new AbortController();
  from.flaky.add(parseManifest(from.manifests.get(img.digest)!.bytes, { context: "t" }).blobs[1].digest);
  setTimeout(() => ac.abort(new Error("shutting down")), 50);
  const stopped = await copier.copy(src("1"), dst("2"), { signal: ac.signal }).catch((e) => e);
  assert.equal(stopped.reason, "Aborted");
});

/** Records the destination's blob checks of `reg` by digest. */
function recordBlobChecks(reg: FakeRegistry): string[] {
  const checked: string[] = [];
  const head = reg.client.headBlob.bind(reg.client);
  reg.client.headBlob = (repo, digest, o) => (checked.push(digest), head(repo, digest, o));
  return checked;
}

Deno.test("copy: a likely-new tag reads the source manifest with one GET beside the destination HEAD; Docker Hub and metered registries keep HEAD then GET", async () => {
  const { from, to, makeCopier } = registries();
  const img = from.image(["a"], "1");
  const r = await makeCopier().copy(src("1"), dst("1"), { likelyNew: true });
  assert.equal(r.digest, img.digest);
  assert.equal(to.tags.get("1"), img.digest);
  assert.deepEqual(from.ops.filter((o) => o.includes("Manifest")), ["getManifest 1"]);
  assert.deepEqual(to.ops.filter((o) => o.startsWith("headManifest")), ["headManifest 1"]);
  // the destination had it after all: up to date, nothing written, the same two requests
  // (and the destination's repository probe beside its HEAD)
  from.ops.length = 0;
  to.ops.length = 0;
  const again = await makeCopier().copy(src("1"), dst("1"), { likelyNew: true });
  assert.equal(again.upToDate, true);
  assert.deepEqual(from.ops, ["getManifest 1"]);
  assert.deepEqual(to.ops, ["headManifest 1"]);
  assert.equal(to.probes, 2, "one per copier");

  const hub = new FakeRegistry();
  hub.image(["a"], "1");
  const copier = new Copier({ source: hub.client, destination: new FakeRegistry().client });
  await copier.copy(parseReference("docker.io/library/app:1"), dst("1"), { likelyNew: true });
  assert.deepEqual(hub.ops.filter((o) => o.includes("Manifest")).map((o) => o.split(" ")[0]), [
    "headManifest",
    "getManifest",
  ]);
  // a registry whose GETs announced a rate limit (or none seen yet) is HEADed first too
  const metered = registries();
  metered.from.image(["a"], "1");
  metered.from.unmetered = false;
  await metered.makeCopier().copy(src("1"), dst("1"), { likelyNew: true });
  assert.deepEqual(metered.from.ops.filter((o) => o.includes("Manifest")).map((o) => o.split(" ")[0]), [
    "headManifest",
    "getManifest",
  ]);
});

Deno.test("copy: digests the caller already read are not asked again, and exactly that source digest is copied", async () => {
  const { from, to, makeCopier } = registries();
  const old = from.image(["old"], "1");
  from.image(["new"], "1"); // the tag moved after the caller's HEAD
  const r = await makeCopier().copy(src("1"), dst("1"), { known: { source: old.digest } });
  assert.equal(r.digest, old.digest);
  assert.equal(to.tags.get("1"), old.digest);
  assert.deepEqual(from.ops.filter((o) => o.includes("Manifest")), [`getManifest ${old.digest}`]);
  assert.deepEqual(to.ops.filter((o) => o.startsWith("headManifest")), []);
  // known to be there already: up to date without a request
  from.ops.length = 0;
  const again = await makeCopier().copy(src("1"), dst("1"), {
    known: { source: old.digest, destination: old.digest },
  });
  assert.equal(again.upToDate, true);
  assert.deepEqual(from.ops, []);
});

Deno.test("copy: a new image's config blob is uploaded without a destination check; its layers are checked", async () => {
  const { from, to, makeCopier } = registries();
  const img = from.image(["a", "b"], "1");
  const [config, ...layers] = parseManifest(from.manifests.get(img.digest)!.bytes, { context: "t" }).blobs;
  const checked = recordBlobChecks(to);
  const r = await makeCopier().copy(src("1"), dst("1"));
  assert.equal(r.blobsCopied, 3);
  assert.deepEqual(checked.sort(), layers.map((l) => l.digest).sort());
  assert.ok(to.ops.some((o) => o.startsWith(`uploadBlob ${config.digest}`)), to.ops.join());
  // the same registry on both sides keeps the check (it may lead to a mount)
  const same = new FakeRegistry();
  same.image(["a"], "1");
  const sameChecked = recordBlobChecks(same);
  await new Copier(same.client).copy(src("1"), parseReference("src.example/other:2"));
  assert.equal(sameChecked.length, 2, "config and layer checked");
});

Deno.test("copy: a likely-new tag whose GET is refused goes the HEAD way, so the failure is told as before", async () => {
  const { from, makeCopier } = registries();
  const img = from.image(["a"], "1");
  const get = from.client.getManifest.bind(from.client);
  from.client.getManifest = (ref, o) =>
    ref.tag ? Promise.reject(new OciError("ManifestInvalid", "refused by tag")) : get(ref, o);
  const r = await makeCopier().copy(src("1"), dst("1"), { likelyNew: true });
  assert.equal(r.digest, img.digest);
  assert.deepEqual(from.ops.filter((o) => o.includes("Manifest")), [
    "headManifest 1",
    `getManifest ${img.digest}`,
  ]);
});

Deno.test("copy: a tag into a repository the destination says does not exist uploads its blobs unchecked", async () => {
  const { from, to, makeCopier } = registries();
  to.repositoryMissing = "untilTagged";
  const img = from.image(["a", "b", "c"], "1");
  const blobs = parseManifest(from.manifests.get(img.digest)!.bytes, { context: "t" }).blobs;
  const checked = recordBlobChecks(to);
  const r = await makeCopier().copy(src("1"), dst("1"), { likelyNew: true });
  assert.equal(r.blobsCopied, 4);
  assert.deepEqual(checked, [], "no blob HEAD in a new repository");
  assert.equal(to.probes, 1);
  for (const b of blobs) assert.deepEqual(to.blobs.get(b.digest), from.blobs.get(b.digest));
  assert.equal(to.tags.get("1"), img.digest);

  // the next copy (the next sync's copier) probes again: the repository exists now, so its
  // blobs are checked and the ones already there not uploaded again
  const next = from.image(["a", "b", "d"], "2");
  const copier = makeCopier();
  const r2 = await copier.copy(src("2"), dst("2"), { likelyNew: true });
  assert.equal(to.probes, 2);
  assert.equal(checked.length, 3, "layers checked (the config is uploaded unchecked as before)");
  assert.equal(r2.blobsSkipped, 2);
  assert.equal(r2.blobsCopied, 2);
  assert.equal(to.tags.get("2"), next.digest);
  // a repository this copier saw exist is not asked about again
  await copier.copy(src("1"), dst("3"), { likelyNew: true });
  assert.equal(to.probes, 2);

  // without likelyNew (the CLI) the probe waits for the HEAD: not sent for a tag already there
  to.repositoryMissing = true;
  to.ops.length = 0;
  const up = await makeCopier().copy(src("1"), dst("1"));
  assert.equal(up.upToDate, true);
  assert.equal(to.probes, 2);
  const elsewhere = registries();
  elsewhere.to.repositoryMissing = true;
  elsewhere.from.image(["a", "b"], "1");
  const elsewhereChecked = recordBlobChecks(elsewhere.to);
  await elsewhere.makeCopier().copy(src("1"), dst("1"));
  assert.equal(elsewhere.to.probes, 1);
  assert.deepEqual(elsewhereChecked, []);
});

Deno.test("copy: two tags copied at once into a new repository upload a shared blob once; a dry run plans the same", async () => {
  const { from, to, makeCopier } = registries();
  const a = from.image(["shared", "a"], "a");
  const b = from.image(["shared", "b"], "b");
  const shared = parseManifest(from.manifests.get(a.digest)!.bytes, { context: "t" }).blobs[1].digest;
  from.delayMs = 5;
  to.repositoryMissing = "untilTagged";
  const checked = recordBlobChecks(to);
  const plan = await makeCopier().copy(src("a"), dst("a"), { likelyNew: true, dryRun: true });
  assert.deepEqual(plan.blobs.map((p) => p.action), ["copy", "copy", "copy"]);
  assert.equal(plan.bytesMoved, plan.blobs.reduce((n, p) => n + p.size, 0));
  assert.deepEqual(checked, [], "the plan checks no blob either");
  const copier = makeCopier();
  const [ra, rb] = await Promise.all([
    copier.copy(src("a"), dst("a"), { likelyNew: true }),
    copier.copy(src("b"), dst("b"), { likelyNew: true }),
  ]);
  assert.deepEqual(checked, []);
  assert.equal(to.ops.filter((o) => o.startsWith(`uploadBlob ${shared}`)).length, 1, to.ops.join("\n"));
  assert.equal(ra.blobsCopied + rb.blobsCopied, 5);
  assert.equal(ra.blobsSkipped + rb.blobsSkipped, 1);
  assert.equal(to.tags.get("a"), a.digest);
  assert.equal(to.tags.get("b"), b.digest);
});

Deno.test("copy: a new repository still gets a HEAD for a large blob, and a same-registry copy mounts without HEADs", async () => {
  const { from, to, makeCopier } = registries();
  to.repositoryMissing = true;
  const large = "x".repeat(NEW_REPOSITORY_CHECK_MIN_SIZE);
  const img = from.image([large, "small"], "1");
  const [, big] = parseManifest(from.manifests.get(img.digest)!.bytes, { context: "t" }).blobs;
  const checked = recordBlobChecks(to);
  await makeCopier().copy(src("1"), dst("1"), { likelyNew: true });
  assert.deepEqual(checked, [big.digest]);

  const same = new FakeRegistry();
  same.image(["a", "b"], "1");
  same.repositoryMissing = true;
  const sameChecked = recordBlobChecks(same);
  const r = await new Copier(same.client).copy(src("1"), parseReference("src.example/other:2"), {
    likelyNew: true,
  });
  assert.deepEqual(sameChecked, []);
  assert.equal(r.blobsMounted, 3);
  assert.equal(r.blobsCopied, 0);
});

Deno.test("copy: a destination that does not say the repository is unknown keeps the blob checks", async () => {
  const { from, to, makeCopier } = registries();
  from.image(["a", "b"], "1");
  to.repositoryMissing = false;
  const checked = recordBlobChecks(to);
  await makeCopier().copy(src("1"), dst("1"), { likelyNew: true });
  assert.equal(checked.length, 2, "both layers checked");
});
