/**
 * The floor of B1: the least work any copier must do, with no checks, no retries and every
 * blob in flight at once. Run as its own process (like the tools it is compared with):
 *
 *   deno run -A bench/floor.ts upload <dst-url> <repository> <tag> <manifest-file> <blob-file>…
 *     uploads blob files (named by digest) straight to the destination, then the manifest;
 *   deno run -A bench/floor.ts stream <src-url> <dst-url> <repository> <tag>
 *     streams every blob GET source → PUT destination in parallel, then the manifest;
 *   deno run -A bench/floor.ts heads <src-url> <dst-url> <repository:tag>…
 *     B2's floor with latency: the upstream operator's unchanged-sync strategy — a /v2/ ping on
 *     each side, then per tag a HEAD of the source manifest, then of the destination's, one
 *     pair after the other; exits 1 if any pair differs.
 *
 * Plain HTTP only, no auth: the benchmark registries are local and open.
 * @module
 */

const MANIFEST_TYPES = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

async function check(res: Response, what: string, ok: number[]): Promise<void> {
  if (!ok.includes(res.status)) {
    throw new Error(`${what}: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`);
  }
}

/** Uploads one blob monolithically (POST then PUT with the whole body, streamed). */
async function putBlob(
  dst: string,
  repository: string,
  digest: string,
  body: ReadableStream<Uint8Array>,
  size: number,
): Promise<void> {
  const start = await fetch(`${dst}/v2/${repository}/blobs/uploads/`, { method: "POST" });
  await start.body?.cancel();
  await check(start, `POST upload ${digest}`, [202]);
  const location = new URL(start.headers.get("location") ?? "", dst);
  location.searchParams.set("digest", digest);
  const put = await fetch(location, {
    method: "PUT",
    body,
    headers: { "content-type": "application/octet-stream", "content-length": String(size) },
  });
  await check(put, `PUT blob ${digest}`, [201]);
  await put.body?.cancel();
}

async function putManifest(
  dst: string,
  repository: string,
  tag: string,
  bytes: Uint8Array,
  mediaType: string,
): Promise<void> {
  const res = await fetch(`${dst}/v2/${repository}/manifests/${tag}`, {
    method: "PUT",
    body: bytes as Uint8Array<ArrayBuffer>,
    headers: { "content-type": mediaType },
  });
  await check(res, "PUT manifest", [201]);
  await res.body?.cancel();
}

interface ManifestJson {
  mediaType?: string;
  config: { digest: string; size: number };
  layers: Array<{ digest: string; size: number }>;
}

async function upload(args: string[]): Promise<void> {
  const [dst, repository, tag, manifestFile, ...blobFiles] = args;
  const bytes = await Deno.readFile(manifestFile);
  const manifest = JSON.parse(new TextDecoder().decode(bytes)) as ManifestJson;
  await Promise.all(blobFiles.map(async (file) => {
    const digest = file.slice(file.lastIndexOf("/") + 1).replace("-", ":");
    const f = await Deno.open(file);
    const { size } = await f.stat();
    await putBlob(dst, repository, digest, f.readable, size);
  }));
  await putManifest(
    dst,
    repository,
    tag,
    bytes,
    manifest.mediaType ?? "application/vnd.oci.image.manifest.v1+json",
  );
}

async function stream(args: string[]): Promise<void> {
  const [src, dst, repository, tag] = args;
  const res = await fetch(`${src}/v2/${repository}/manifests/${tag}`, {
    headers: { accept: MANIFEST_TYPES },
  });
  await check(res, "GET manifest", [200]);
  const mediaType = res.headers.get("content-type") ?? "";
  const bytes = new Uint8Array(await res.arrayBuffer());
  const manifest = JSON.parse(new TextDecoder().decode(bytes)) as ManifestJson;
  await Promise.all([manifest.config, ...manifest.layers].map(async (d) => {
    const blob = await fetch(`${src}/v2/${repository}/blobs/${d.digest}`);
    await check(blob, `GET blob ${d.digest}`, [200]);
    await putBlob(dst, repository, d.digest, blob.body!, d.size);
  }));
  await putManifest(dst, repository, tag, bytes, mediaType);
}

async function headDigest(url: string): Promise<string | null> {
  const res = await fetch(url, { method: "HEAD", headers: { accept: MANIFEST_TYPES } });
  await res.body?.cancel();
  await check(res, `HEAD ${url}`, [200, 404]);
  return res.headers.get("docker-content-digest");
}

async function heads(args: string[]): Promise<void> {
  const [src, dst, ...refs] = args;
  for (const base of [src, dst]) {
    const ping = await fetch(`${base}/v2/`);
    await ping.body?.cancel();
  }
  let differ = 0;
  for (const ref of refs) {
    const i = ref.lastIndexOf(":");
    const [repository, tag] = [ref.slice(0, i), ref.slice(i + 1)];
    const a = await headDigest(`${src}/v2/${repository}/manifests/${tag}`);
    const b = await headDigest(`${dst}/v2/${repository}/manifests/${tag}`);
    if (!a || a !== b) differ++;
  }
  if (differ) throw new Error(`${differ} tag(s) differ`);
}

if (import.meta.main) {
  const [mode, ...rest] = Deno.args;
  if (mode === "upload") await upload(rest);
  else if (mode === "stream") await stream(rest);
  else if (mode === "heads") await heads(rest);
  else {
    console.error(
      "usage: floor.ts upload DST REPO TAG MANIFEST BLOB… | stream SRC DST REPO TAG | heads SRC DST REPO:TAG…",
    );
    Deno.exit(2);
  }
}
