import assert from "node:assert/strict";
import { sha256Digest } from "./blobs.ts";
import { RegistryClient } from "./client.ts";
import { OciError } from "./errors.ts";
import { OCI_INDEX, OCI_MANIFEST } from "./manifest.ts";
import { parseReference } from "./reference.ts";
import {
  addToFallbackIndex,
  copyReferrers,
  cosignTag,
  EMPTY_CONFIG_MEDIA_TYPE,
  findCosignTags,
  listReferrers,
  parseReferrersIndex,
  pushReferrer,
  referrersTag,
  resolveArtifactTypes,
} from "./referrers.ts";

const SUBJECT = "sha256:" + "1".repeat(64);
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

function desc(n: number, artifactType: string) {
  return {
    mediaType: OCI_MANIFEST,
    digest: "sha256:" + String(n % 10).repeat(64),
    size: 100 + n,
    artifactType,
  };
}

interface FakeOptions {
  /** Serve the referrers API (else 404, like distribution 2.8). */
  api?: boolean;
  /** Entries per API page (Link pagination). */
  pageSize?: number;
  /** Honour artifactType and say so in OCI-Filters-Applied. */
  filters?: boolean;
  /** Replace the API body with this text. */
  junk?: string;
  /** Override the Link header of every page. */
  link?: string;
}

/**
 * A small in-memory registry: manifests by tag and digest, and the referrers API computed from
 * the stored manifests' subjects (when `api`).
 */
function fakeRegistry(opts: FakeOptions) {
  const manifests = new Map<string, { bytes: Uint8Array; type: string }>();
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    if (url.pathname === "/v2/") return new Response("{}");
    let m = url.pathname.match(/^\/v2\/(.+)\/manifests\/([^/]+)$/);
    if (m) {
      const key = `${m[1]}@${m[2]}`;
      if (req.method === "PUT") {
        const bytes = new Uint8Array(await req.arrayBuffer());
        const stored = { bytes, type: req.headers.get("content-type") ?? "" };
        manifests.set(key, stored);
        manifests.set(`${m[1]}@${sha256Digest(bytes)}`, stored);
        return new Response(null, { status: 201, headers: { "docker-content-digest": sha256Digest(bytes) } });
      }
      const got = manifests.get(key);
      if (!got) return Response.json({ errors: [{ code: "MANIFEST_UNKNOWN" }] }, { status: 404 });
      const headers = {
        "content-type": got.type,
        "docker-content-digest": sha256Digest(got.bytes),
        "content-length": String(got.bytes.byteLength),
      };
      return new Response(req.method === "HEAD" ? null : got.bytes as Uint8Array<ArrayBuffer>, { headers });
    }
    m = url.pathname.match(/^\/v2\/(.+)\/referrers\/([^/]+)$/);
    if (m && opts.api) {
      if (opts.junk !== undefined) return new Response(opts.junk, { headers: { "content-type": OCI_INDEX } });
      const want = url.searchParams.get("artifactType");
      const all = [...manifests.entries()]
        .filter(([k]) => k.startsWith(`${m![1]}@sha256:`))
        .map(([k, v]) => ({ digest: k.slice(k.indexOf("@") + 1), ...v }))
        .map((v) => ({ ...v, json: JSON.parse(new TextDecoder().decode(v.bytes)) }))
        .filter((v) => v.json.subject?.digest === m![2])
        .map((v) => ({
          mediaType: v.type,
          digest: v.digest,
          size: v.bytes.byteLength,
          artifactType: v.json.artifactType,
        }))
        .filter((d) => !(opts.filters && want) || d.artifactType === want);
      const page = Number(url.searchParams.get("page") ?? "0");
      const size = opts.pageSize ?? 1000;
      const headers: Record<string, string> = { "content-type": OCI_INDEX };
      if (opts.filters && want) headers["oci-filters-applied"] = "artifactType";
      if ((page + 1) * size < all.length) {
        const next = new URLSearchParams(url.searchParams);
        next.set("page", String(page + 1));
        headers.link = `<${url.pathname}?${next}>; rel="next"`;
      }
      if (opts.link) headers.link = opts.link;
      return Response.json(
        { schemaVersion: 2, mediaType: OCI_INDEX, manifests: all.slice(page * size, (page + 1) * size) },
        { headers },
      );
    }
    return Response.json({ errors: [{ code: "NOT_FOUND" }] }, { status: 404 });
  });
  const host = `127.0.0.1:${server.addr.port}`;
  return {
    host,
    manifests,
    requests,
    client: new RegistryClient({ maxAttempts: 1 }),
    repo: (name = "app") => parseReference(`${host}/${name}`, { defaultTag: false }),
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

function artifact(artifactType: string, subject = SUBJECT, extra: Record<string, unknown> = {}) {
  const bytes = enc({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType,
    config: { mediaType: "application/vnd.oci.empty.v1+json", digest: sha256Digest(enc({})), size: 2 },
    layers: [],
    subject: { mediaType: OCI_MANIFEST, digest: subject, size: 10 },
    ...extra,
  });
  return { bytes, mediaType: OCI_MANIFEST };
}

Deno.test("referrersTag and cosignTag follow the tag schema and cosign's conventions", () => {
  assert.equal(referrersTag(SUBJECT), "sha256-" + "1".repeat(64));
  assert.equal(cosignTag(SUBJECT, "sig"), "sha256-" + "1".repeat(64) + ".sig");
  assert.throws(() => referrersTag("sha256:../../etc"), /not a digest/);
});

Deno.test("parseReferrersIndex rejects junk from a registry with clear errors", () => {
  const p = (v: unknown) => parseReferrersIndex(enc(v), "ctx");
  assert.deepEqual(p({ manifests: [] }), []);
  assert.deepEqual(p({}), []);
  assert.throws(() => parseReferrersIndex(new TextEncoder().encode("<html>"), "ctx"), /not JSON/);
  assert.throws(() => p([]), /not a JSON object/);
  assert.throws(() => p({ manifests: {} }), /"manifests" is not a list/);
  assert.throws(() => p({ manifests: [{ digest: "sha256:x", size: 1, mediaType: "a" }] }), /invalid digest/);
  assert.throws(() => p({ manifests: [{ digest: SUBJECT, size: -1, mediaType: "a" }] }), /no valid size/);
  assert.throws(() => p({ manifests: [{ digest: SUBJECT, size: 1 }] }), /no mediaType/);
  assert.throws(
    () => p({ manifests: [{ digest: SUBJECT, size: 1, mediaType: "a", annotations: { a: 1 } }] }),
    (e) => e instanceof OciError && e.reason === "Protocol" && /"a" is not a string/.test(e.message),
  );
});

Deno.test("listReferrers: API pages are followed and the artifactType filter applied here when the registry does not", async () => {
  await using reg = fakeRegistry({ api: true, pageSize: 2 });
  for (const t of ["application/spdx+json", "application/sarif+json", "application/spdx+json"]) {
    const a = artifact(t, SUBJECT, { annotations: { n: String(reg.manifests.size) } });
    await pushReferrer(reg.client, reg.repo(), a);
  }
  const subject = reg.repo().withDigest(SUBJECT);
  const all = await listReferrers(reg.client, subject);
  assert.equal(all.source, "api");
  assert.equal(all.referrers.length, 3);
  assert.ok(reg.requests.some((r) => r.includes("page=1")), "second page requested");
  const spdx = await listReferrers(reg.client, subject, { artifactType: "application/spdx+json" });
  assert.deepEqual(spdx.referrers.map((r) => r.artifactType), [
    "application/spdx+json",
    "application/spdx+json",
  ]);
  // No fallback tag was written on a registry with the API.
  assert.ok(!reg.requests.some((r) => r.startsWith("PUT") && r.includes(referrersTag(SUBJECT))));
});

Deno.test("listReferrers: trusts OCI-Filters-Applied", async () => {
  await using reg = fakeRegistry({ api: true, filters: true });
  await pushReferrer(reg.client, reg.repo(), artifact("application/sarif+json"));
  await pushReferrer(reg.client, reg.repo(), artifact("application/spdx+json"));
  const got = await listReferrers(reg.client, reg.repo().withDigest(SUBJECT), {
    artifactType: "application/sarif+json",
  });
  assert.deepEqual(got.referrers.map((r) => r.artifactType), ["application/sarif+json"]);
  assert.ok(reg.requests.some((r) => r.includes("artifactType=application%2Fsarif%2Bjson")));
});

Deno.test("listReferrers: bounded pages, loops and foreign links fail with Protocol", async () => {
  {
    await using reg = fakeRegistry({ api: true, pageSize: 1 });
    for (const t of ["a/1", "a/2", "a/3"]) await pushReferrer(reg.client, reg.repo(), artifact(t));
    await assert.rejects(
      listReferrers(reg.client, reg.repo().withDigest(SUBJECT), { maxPages: 2 }),
      /more than 2 pages/,
    );
    await assert.rejects(
      listReferrers(reg.client, reg.repo().withDigest(SUBJECT), { maxReferrers: 2 }),
      /more than 2 referrers/,
    );
  }
  {
    await using reg = fakeRegistry({ api: true, link: `</v2/app/referrers/${SUBJECT}>; rel="next"` });
    await assert.rejects(listReferrers(reg.client, reg.repo().withDigest(SUBJECT)), /links loop/);
  }
  {
    await using reg = fakeRegistry({
      api: true,
      link: `<http://evil.example/v2/app/referrers/x>; rel="next"`,
    });
    await assert.rejects(
      listReferrers(reg.client, reg.repo().withDigest(SUBJECT)),
      /another host \(evil\.example\)/,
    );
  }
  {
    await using reg = fakeRegistry({ api: true, junk: '{"manifests": "nope"}' });
    await assert.rejects(
      listReferrers(reg.client, reg.repo().withDigest(SUBJECT)),
      (e) => e instanceof OciError && e.reason === "Protocol" && /"manifests" is not a list/.test(e.message),
    );
  }
});

Deno.test("no referrers API: push writes the fallback index by read-merge-write, keeping foreign entries", async () => {
  await using reg = fakeRegistry({ api: false });
  const subject = reg.repo().withDigest(SUBJECT);
  assert.deepEqual(await listReferrers(reg.client, subject), { referrers: [], source: "tag" });
  // An entry some other tool wrote, with a field we do not know: kept as is.
  const foreign = { ...desc(7, "application/vnd.example"), "x-extra": true };
  const tagRef = reg.repo().withTag(referrersTag(SUBJECT));
  await reg.client.putManifest(tagRef, {
    bytes: enc({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [foreign], annotations: { keep: "me" } }),
    mediaType: OCI_INDEX,
  });
  const sbom = artifact("application/spdx+json");
  const pushed = await pushReferrer(reg.client, reg.repo(), sbom);
  assert.equal(pushed.fallbackTag, referrersTag(SUBJECT));
  assert.equal(pushed.digest, sha256Digest(sbom.bytes));
  await pushReferrer(reg.client, reg.repo(), artifact("application/sarif+json"));
  // Pushing the same referrer again does not duplicate it.
  await pushReferrer(reg.client, reg.repo(), sbom);
  const listed = await listReferrers(reg.client, subject);
  assert.equal(listed.source, "tag");
  assert.deepEqual(listed.referrers.map((r) => r.artifactType), [
    "application/vnd.example",
    "application/spdx+json",
    "application/sarif+json",
  ]);
  const index = await reg.client.getManifest(tagRef);
  assert.deepEqual(index.manifest.json.annotations, { keep: "me" });
  assert.equal((index.manifest.json.manifests as Record<string, unknown>[])[0]["x-extra"], true);
  const filtered = await listReferrers(reg.client, subject, { artifactType: "application/sarif+json" });
  assert.equal(filtered.referrers.length, 1);
  assert.equal(await addToFallbackIndex(reg.client, tagRef, listed.referrers[1]), false);
});

Deno.test("pushReferrer refuses a manifest without a subject and one over the size cap", async () => {
  await using reg = fakeRegistry({ api: true });
  const noSubject = enc({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: {}, layers: [] });
  await assert.rejects(
    pushReferrer(reg.client, reg.repo(), { bytes: noSubject, mediaType: OCI_MANIFEST }),
    (e) => e instanceof OciError && e.reason === "ManifestInvalid" && /no subject/.test(e.message),
  );
  const huge = artifact("a/b", SUBJECT, { annotations: { pad: "x".repeat(4 * 1024 * 1024) } });
  await assert.rejects(
    pushReferrer(reg.client, reg.repo(), huge),
    (e) => e instanceof OciError && e.reason === "ManifestTooLarge",
  );
  assert.equal(reg.requests.filter((r) => r.startsWith("PUT")).length, 0);
});

Deno.test("findCosignTags finds cosign's .sig/.att/.sbom tags by the subject digest", async () => {
  await using reg = fakeRegistry({ api: false });
  const sig = enc({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: desc(2, ""), layers: [] });
  await reg.client.putManifest(reg.repo().withTag(cosignTag(SUBJECT, "sig")), {
    bytes: sig,
    mediaType: OCI_MANIFEST,
  });
  const found = await findCosignTags(reg.client, reg.repo().withDigest(SUBJECT));
  assert.deepEqual(found.map((f) => [f.kind, f.tag, f.digest]), [[
    "sig",
    cosignTag(SUBJECT, "sig"),
    sha256Digest(sig),
  ]]);
});

Deno.test("resolveArtifactTypes reads the real type of entries listed with the empty config type (go-containerregistry's fallback index)", async () => {
  await using reg = fakeRegistry({ api: false });
  const sbom = artifact("application/spdx+json");
  await reg.client.putManifest(reg.repo().withDigest(sha256Digest(sbom.bytes)), sbom);
  const listed = [
    {
      mediaType: OCI_MANIFEST,
      digest: sha256Digest(sbom.bytes),
      size: sbom.bytes.byteLength,
      artifactType: EMPTY_CONFIG_MEDIA_TYPE,
    },
    desc(3, "application/sarif+json"),
  ];
  const resolved = await resolveArtifactTypes(reg.client, reg.repo().withDigest(SUBJECT), listed);
  assert.deepEqual(resolved.map((r) => r.artifactType), ["application/spdx+json", "application/sarif+json"]);
  // Only the unknown one was read.
  assert.equal(reg.requests.filter((r) => r.startsWith("GET") && r.includes("/manifests/")).length, 1);
  // Bounded: with no budget nothing is read and the entries stay as listed.
  assert.deepEqual(
    await resolveArtifactTypes(reg.client, reg.repo().withDigest(SUBJECT), listed, { max: 0 }),
    listed,
  );
});

Deno.test("copyReferrers: an earlier listing is used as is, and referrers counted for the image's other manifests share one bound", async () => {
  await using reg = fakeRegistry({ api: true });
  const refs = ["a/1", "a/2", "a/3"].map((t) => artifact(t));
  for (const r of refs) await reg.client.putManifest(reg.repo().withDigest(sha256Digest(r.bytes)), r);
  const listed = await listReferrers(reg.client, reg.repo().withDigest(SUBJECT));
  assert.equal(listed.referrers.length, 3);
  const copies: string[] = [];
  const copier = {
    copy(src: { digest?: string }) {
      copies.push(src.digest!);
      return Promise.resolve({ digest: src.digest!, bytesMoved: 0 });
    },
  };
  const clients = { source: reg.client, destination: reg.client, copier };
  const before = reg.requests.length;
  const mirror = reg.repo("mirror").withDigest(SUBJECT);
  const planned = await copyReferrers(clients, reg.repo().withDigest(SUBJECT), mirror, {
    listed,
    dryRun: true,
    counted: 197,
  });
  assert.deepEqual(planned.referrers.map((r) => r.action), ["would-copy", "would-copy", "would-copy"]);
  assert.deepEqual(
    reg.requests.slice(before).filter((r) => r.includes(`/referrers/${SUBJECT}`)),
    [`GET /v2/mirror/referrers/${SUBJECT}`],
    "the source is not listed again; the destination is",
  );
  copies.length = 0;
  await assert.rejects(
    copyReferrers(clients, reg.repo().withDigest(SUBJECT), mirror, {
      listed,
      dryRun: true,
      counted: 198,
    }),
    (e) =>
      e instanceof OciError && e.reason === "Protocol" &&
      /more than 200 referrers to copy for .* and the other manifests of its image; refusing an unbounded copy/
        .test(e.message),
  );
  assert.equal(copies.length, 2, "stopped at the bound");
});
