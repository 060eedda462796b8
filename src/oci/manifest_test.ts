import assert from "node:assert/strict";
import { ociThrows } from "./_test_utils.ts";
import { OciError } from "./errors.ts";
import {
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  filteredIndexBytes,
  OCI_INDEX,
  OCI_MANIFEST,
  parseManifest,
  parsePlatform,
  selectChildren,
} from "./manifest.ts";

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const d = (n: number) => "sha256:" + String(n).repeat(64).slice(0, 64);

const image = {
  schemaVersion: 2,
  mediaType: DOCKER_MANIFEST,
  config: { mediaType: "application/vnd.docker.container.image.v1+json", digest: d(1), size: 10 },
  layers: [
    { mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", digest: d(2), size: 20 },
    {
      mediaType: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
      digest: d(3),
      size: 30,
      urls: ["https://mcr.microsoft.com/x"],
    },
  ],
};

const index = {
  schemaVersion: 2,
  mediaType: OCI_INDEX,
  manifests: [
    { mediaType: OCI_MANIFEST, digest: d(4), size: 5, platform: { os: "linux", architecture: "amd64" } },
    {
      mediaType: OCI_MANIFEST,
      digest: d(5),
      size: 6,
      platform: { os: "linux", architecture: "arm64", variant: "v8" },
    },
    { mediaType: OCI_MANIFEST, digest: d(6), size: 7, platform: { os: "unknown", architecture: "unknown" } },
  ],
  annotations: { "org.example": "kept" },
};

Deno.test("parseManifest lists config and layers, skipping foreign layers", () => {
  const m = parseManifest(enc(image), { contentType: DOCKER_MANIFEST, context: "ctx" });
  assert.equal(m.mediaType, DOCKER_MANIFEST);
  assert.equal(m.isIndex, false);
  assert.deepEqual(m.blobs.map((b) => b.digest), [d(1), d(2)]);
});

Deno.test("parseManifest lists index children with platforms", () => {
  const m = parseManifest(enc(index), { contentType: OCI_INDEX, context: "ctx" });
  assert.equal(m.isIndex, true);
  assert.deepEqual(m.manifests.map((c) => c.platform?.architecture), ["amd64", "arm64", "unknown"]);
  const list = parseManifest(enc({ ...index, mediaType: DOCKER_MANIFEST_LIST }), {
    contentType: null,
    context: "ctx",
  });
  assert.equal(list.mediaType, DOCKER_MANIFEST_LIST);
});

Deno.test("parseManifest infers OCI types when mediaType is absent or generic", () => {
  const { mediaType: _, ...bare } = index;
  assert.equal(
    parseManifest(enc(bare), { contentType: "application/json", context: "ctx" }).mediaType,
    OCI_INDEX,
  );
  const { mediaType: __, ...bareImage } = image;
  assert.equal(parseManifest(enc(bareImage), { contentType: null, context: "ctx" }).mediaType, OCI_MANIFEST);
  // the header is used when the document does not say
  assert.equal(
    parseManifest(enc(bareImage), { contentType: DOCKER_MANIFEST, context: "ctx" }).mediaType,
    DOCKER_MANIFEST,
  );
});

Deno.test("parseManifest refuses schema1 and unknown or broken documents", () => {
  const s1 = ociThrows(() =>
    parseManifest(enc({ schemaVersion: 1, name: "x", fsLayers: [] }), {
      contentType: null,
      context: "registry r: manifest r/x:1",
    })
  );
  assert.equal(s1.reason, "UnsupportedMediaType");
  assert.match(s1.message, /^registry r: manifest r\/x:1: Docker schema 1 .* not supported/);
  assert.equal(
    ociThrows(() =>
      parseManifest(enc({ schemaVersion: 2, foo: 1 }), { contentType: "text/plain", context: "c" })
    ).reason,
    "UnsupportedMediaType",
  );
  assert.equal(
    ociThrows(() => parseManifest(new Uint8Array([1, 2]), { contentType: null, context: "c" })).reason,
    "ManifestInvalid",
  );
  assert.equal(
    ociThrows(() =>
      parseManifest(enc({ mediaType: OCI_INDEX, manifests: [{ digest: 1 }] }), {
        contentType: null,
        context: "c",
      })
    )
      .reason,
    "ManifestInvalid",
  );
});

Deno.test("platform filter selects children and writes a smaller index keeping other fields", () => {
  const m = parseManifest(enc(index), { contentType: OCI_INDEX, context: "ctx" });
  assert.deepEqual(selectChildren(m.manifests, []).length, 3);
  const arm = selectChildren(m.manifests, ["linux/arm64"]);
  assert.deepEqual(arm.map((c) => c.digest), [d(5)]);
  assert.deepEqual(selectChildren(m.manifests, ["linux/arm64/v7"]), []);
  assert.deepEqual(selectChildren(m.manifests, ["linux/arm64/v8", "linux/amd64"]).map((c) => c.digest), [
    d(4),
    d(5),
  ]);
  const bytes = filteredIndexBytes(m.json, arm);
  const out = JSON.parse(new TextDecoder().decode(bytes));
  assert.deepEqual(out, { ...index, manifests: [index.manifests[1]] });
  assert.deepEqual(filteredIndexBytes(m.json, arm), bytes, "deterministic");
  assert.deepEqual(parsePlatform("linux/arm/v7"), { os: "linux", architecture: "arm", variant: "v7" });
  assert.equal(ociThrows(() => parsePlatform("linux")).reason, "InvalidReference");
});

Deno.test("parseManifest validates every digest and size before anything uses them in a URL", () => {
  const image = (layer: Record<string, unknown>) =>
    enc({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: d(1), size: 2 },
      layers: [layer],
    });
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ digest: "../../../../v2/victim/manifests/prod", size: 1 }, /layers\[0\] has an invalid digest/],
    [{ digest: "sha256:abc", size: 1 }, /64 lowercase hex/],
    [{ digest: `sha256:${"A".repeat(64)}`, size: 1 }, /64 lowercase hex/],
    [{ digest: `sha512:${"a".repeat(64)}`, size: 1 }, /128 lowercase hex/],
    [{ digest: `md5:${"a".repeat(32)}`, size: 1 }, /only sha256 and sha512/],
    [{ digest: `sha256:${"a".repeat(64)}?x=1`, size: 1 }, /invalid digest/],
    [{ digest: d(2), size: -1 }, /invalid size/],
    [{ digest: d(2), size: 1.5 }, /invalid size/],
  ];
  for (const [layer, message] of bad) {
    assert.throws(
      () =>
        parseManifest(image({ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer }), {
          context: "m",
        }),
      (e) => e instanceof OciError && e.reason === "ManifestInvalid" && message.test(e.message),
      JSON.stringify(layer),
    );
  }
  const index = enc({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [{ digest: "sha256:../x", size: 1 }],
  });
  assert.throws(() => parseManifest(index, { context: "m" }), /manifests\[0\] has an invalid digest/);
  const ok = parseManifest(image({ digest: `sha512:${"b".repeat(128)}`, size: 3 }), { context: "m" });
  assert.equal(ok.blobs.length, 2);
});

Deno.test("parseManifest does not quote what it could not parse", () => {
  assert.throws(
    () => parseManifest(new TextEncoder().encode("AKIAIOSFODNN7EXAMPLE secret"), { context: "m" }),
    (e) => e instanceof OciError && e.message === "m: the manifest is not a JSON object",
  );
});
