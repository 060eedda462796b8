/**
 * Smoke tests of the registry harness: every registry flavour (plain, basic, tls, bearer) takes
 * fixture images (OCI, Docker v2s2, a two-platform index) and serves them back byte for byte.
 */

import assert from "node:assert/strict";
import {
  blobExists,
  buildImage,
  buildSchema1,
  FixtureError,
  getBlob,
  getManifest,
  MediaTypes,
  type PushedImage,
  pushImage,
  pushRawManifest,
  pushSchema1Image,
  type RegistryAccess,
} from "./harness/fixtures.ts";
import { type RegistryKind, type RegistryServer, startRegistry } from "./harness/registry.ts";

/** Awaits `fn`, asserts it rejects with an instance of `cls`, and returns that error. */
async function rejectsWith<E extends Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  cls: new (...args: any[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    assert(e instanceof cls, `expected ${cls.name}, got ${e}`);
    return e;
  }
  throw new assert.AssertionError({ message: `expected ${cls.name}, but it resolved` });
}

async function assertServedBack(reg: RegistryAccess, repo: string, img: PushedImage, reference: string) {
  const got = await getManifest(reg, repo, reference);
  assert.deepEqual(got.status, 200, `GET ${repo}:${reference}`);
  assert.deepEqual(got.digest, img.digest);
  assert.deepEqual(got.mediaType, img.mediaType);
  assert.deepEqual(got.bytes, img.manifestBytes);
  for (const blob of img.blobs) {
    assert(await blobExists(reg, repo, blob.digest), `blob ${blob.digest} missing in ${repo}`);
  }
  for (const child of img.children ?? []) await assertServedBack(reg, repo, child, child.digest);
}

/** Pushes the three fixture shapes into `reg` and checks each one reads back identically. */
async function pushAndReadBack(reg: RegistryServer): Promise<void> {
  const oci = await pushImage(reg, { repository: "smoke/oci", tag: "v1" }, { seed: 1 });
  assert.deepEqual(oci.mediaType, MediaTypes.ociManifest);
  assert.deepEqual(oci.ref, `${reg.host}/smoke/oci:v1`);
  assert.deepEqual(oci.blobs.length, 3); // config + two default layers
  await assertServedBack(reg, "smoke/oci", oci, "v1");
  await assertServedBack(reg, "smoke/oci", oci, oci.digest);

  const docker = await pushImage(reg, { repository: "smoke/docker", tag: "v1" }, {
    seed: 2,
    format: "docker",
    layers: [10_000],
  });
  assert.deepEqual(docker.mediaType, MediaTypes.dockerManifest);
  await assertServedBack(reg, "smoke/docker", docker, "v1");

  const multi = await pushImage(reg, { repository: "smoke/multi", tag: "v1" }, {
    seed: 3,
    platforms: ["linux/amd64", "linux/arm64"],
    sharedLayers: [2048],
  });
  assert.deepEqual(multi.mediaType, MediaTypes.ociIndex);
  assert.deepEqual(multi.children?.map((c) => c.platform), ["linux/amd64", "linux/arm64"]);
  assert.deepEqual(multi.children?.map((c) => c.mediaType), [MediaTypes.ociManifest, MediaTypes.ociManifest]);
  await assertServedBack(reg, "smoke/multi", multi, "v1");
  // the shared base layer is one blob used by both platforms
  const [amd, arm] = multi.children!;
  assert.deepEqual(amd.blobs[1].digest, arm.blobs[1].digest);
  assert(amd.blobs[2].digest !== arm.blobs[2].digest);
  // the layer bytes that come back are the ones the fixture generated
  const built = await buildImage({
    seed: 3,
    platforms: ["linux/amd64", "linux/arm64"],
    sharedLayers: [2048],
  });
  const layer = built.children![0].blobs[2];
  assert.deepEqual(await getBlob(reg, "smoke/multi", layer.digest), layer.bytes);

  const list = await pushImage(reg, { repository: "smoke/multi", tag: "docker" }, {
    seed: 4,
    format: "docker",
    platforms: ["linux/amd64", "linux/arm/v7"],
  });
  assert.deepEqual(list.mediaType, MediaTypes.dockerList);
  assert.deepEqual(list.children?.map((c) => c.mediaType), [
    MediaTypes.dockerManifest,
    MediaTypes.dockerManifest,
  ]);
  await assertServedBack(reg, "smoke/multi", list, "docker");

  const missing = await getManifest(reg, "smoke/oci", "nope");
  assert.deepEqual(missing.status, 404);

  const log = await reg.flushLog();
  assert(!log.some((l) => l.includes("portager-harness")), "harness probes are hidden");
  assert(log.includes("PUT /v2/smoke/oci/manifests/v1 201"), log.join("\n"));
  assert(log.includes(`GET /v2/smoke/oci/manifests/${oci.digest} 200`), log.join("\n"));
  assert(
    log.some((l) => /^PUT \/v2\/smoke\/docker\/blobs\/uploads\/\S+digest=sha256%3A[0-9a-f]{64} 201$/.test(l)),
  );
  assert(log.includes("GET /v2/smoke/oci/manifests/nope 404"), log.join("\n"));
}

async function withRegistry(kind: RegistryKind, fn: (reg: RegistryServer) => Promise<void>): Promise<void> {
  const reg = await startRegistry(kind);
  try {
    await fn(reg);
  } finally {
    await reg.stop();
  }
}

Deno.test("fixtures are deterministic: same seed same digests, shared layers shared across seeds", async () => {
  const a = await buildImage({ seed: 7, sharedLayers: [512], layers: [100, 200] });
  const b = await buildImage({ seed: 7, sharedLayers: [512], layers: [100, 200] });
  const c = await buildImage({ seed: 8, sharedLayers: [512], layers: [100, 200] });
  assert.deepEqual(a.digest, b.digest);
  assert.deepEqual(a.manifestBytes, b.manifestBytes);
  assert(a.digest !== c.digest);
  assert.deepEqual(a.blobs[1].digest, c.blobs[1].digest); // shared base layer
  assert(a.blobs[2].digest !== c.blobs[2].digest);
  assert.deepEqual(a.blobs.slice(1).map((l) => l.size), [512, 100, 200]);
  const oci = await buildImage({ seed: 7, sharedLayers: [512], layers: [100, 200] });
  const docker = await buildImage({ seed: 7, sharedLayers: [512], layers: [100, 200], format: "docker" });
  assert(oci.digest !== docker.digest);
  assert.deepEqual(oci.blobs.slice(1).map((l) => l.digest), docker.blobs.slice(1).map((l) => l.digest));
});

Deno.test("plain registry: fixture images push and read back", async () => {
  await withRegistry("plain", async (reg) => {
    assert.deepEqual(reg.url, `http://${reg.host}`);
    await pushAndReadBack(reg);
  });
});

Deno.test("basic registry: htpasswd credentials are required and work", async () => {
  await withRegistry("basic", async (reg) => {
    assert.deepEqual(reg.username, "alice");
    assert(reg.password && reg.password.length >= 16);
    const anon = await fetch(`${reg.url}/v2/`);
    await anon.body?.cancel();
    assert.deepEqual(anon.status, 401);
    assert.match(anon.headers.get("www-authenticate") ?? "", /^Basic realm=/);
    const err = await rejectsWith(
      () => pushImage({ url: reg.url, username: "alice", password: "wrong" }, { repository: "x", tag: "t" }),
      FixtureError,
    );
    assert.deepEqual(err.status, 401);
    await pushAndReadBack(reg);
  });
});

Deno.test("tls registry: served with a private CA that clients must trust", async () => {
  await withRegistry("tls", async (reg) => {
    assert.deepEqual(reg.url, `https://${reg.host}`);
    assert.match(reg.caCertPem ?? "", /-----BEGIN CERTIFICATE-----/);
    assert.deepEqual(await Deno.readTextFile(reg.caCertFile!), reg.caCertPem);
    // without the CA the certificate is not trusted
    await assert.rejects(() => fetch(`${reg.url}/v2/`));
    await pushAndReadBack(reg);
  });
});

Deno.test("bearer registry: real token challenge, ACL enforced by the registry", async () => {
  await withRegistry("bearer", async (reg) => {
    const anon = await fetch(`${reg.url}/v2/`);
    await anon.body?.cancel();
    assert.deepEqual(anon.status, 401);
    const challenge = anon.headers.get("www-authenticate") ?? "";
    assert.match(challenge, /^Bearer /);
    assert(challenge.includes(`realm="${reg.tokenRealm}"`), challenge);
    assert(challenge.includes(`service="portager-test-registry"`), challenge);
    assert.match(reg.tokenRealm ?? "", /^http:\/\/127\.0\.0\.1:\d+\/token$/);

    await pushAndReadBack(reg);
    const requests = reg.tokenRequests!;
    const oci = requests.find((r) => r.scope.includes("repository:smoke/oci:pull,push"));
    assert(oci, JSON.stringify(requests));
    assert.deepEqual(oci.user, "alice");
    assert(oci.hadAuthorization);
    assert.deepEqual(oci.granted, [{ type: "repository", name: "smoke/oci", actions: ["pull", "push"] }]);

    // readonly/*: the token grants pull only, and the registry refuses the push
    const before = requests.length;
    const denied = await rejectsWith(
      () => pushImage(reg, { repository: "readonly/x", tag: "v1" }),
      FixtureError,
    );
    assert.deepEqual(denied.status, 401);
    const ro = requests.slice(before).find((r) => r.scope.includes("repository:readonly/x:pull,push"));
    assert.deepEqual(ro?.granted, [{ type: "repository", name: "readonly/x", actions: ["pull"] }]);
    const log = await reg.flushLog();
    assert(log.includes("POST /v2/readonly/x/blobs/uploads/ 401"), log.join("\n"));
    assert(!log.some((l) => l.startsWith("PUT /v2/readonly/x/")), log.join("\n"));

    // anonymous tokens carry no access: the registry still answers 401
    const anonymous = await getManifest({ url: reg.url }, "smoke/oci", "v1");
    assert.deepEqual(anonymous.status, 401);
    assert(requests.some((r) => !r.hadAuthorization && r.granted.length === 0 && r.status === 200));

    // a wrong password is refused by the token server itself
    const bad = await rejectsWith(
      () => getManifest({ url: reg.url, username: "alice", password: "wrong" }, "smoke/oci", "v1"),
      FixtureError,
    );
    assert.deepEqual(bad.status, 401);
    assert.deepEqual(requests.at(-1)?.status, 401);
  });
});

Deno.test("bearer registry: custom users and ACL", async () => {
  const reg = await startRegistry("bearer", {
    users: { writer: "w-secret", reader: "r-secret" },
    acl: [
      { user: "writer", repository: "*", actions: ["*"] },
      { user: "reader", repository: "team/*", actions: ["pull"] },
    ],
  });
  try {
    assert.deepEqual(reg.username, "writer");
    const img = await pushImage(reg, { repository: "team/app", tag: "1.0" }, { seed: 9 });
    const reader = { url: reg.url, username: "reader", password: "r-secret" };
    const got = await getManifest(reader, "team/app", "1.0");
    assert.deepEqual(got.status, 200);
    assert.deepEqual(got.digest, img.digest);
    const err = await rejectsWith(
      () => pushImage(reader, { repository: "team/app", tag: "2.0" }),
      FixtureError,
    );
    assert.deepEqual(err.status, 401);
    // outside team/* the reader gets nothing at all
    assert.deepEqual((await getManifest(reader, "other/app", "1.0")).status, 401);
  } finally {
    await reg.stop();
  }
});

Deno.test("pushRawManifest: the registry validates what it is given", async () => {
  await withRegistry("plain", async (reg) => {
    const bogus = await pushRawManifest(
      reg,
      "raw/x",
      "bad",
      new TextEncoder().encode("{not json"),
      MediaTypes.ociManifest,
    );
    assert.deepEqual(bogus.status, 400);
    // a manifest whose blobs were never uploaded is refused as well
    const built = await buildImage({ seed: 11 });
    const orphan = await pushRawManifest(reg, "raw/x", "orphan", built.manifestBytes, built.mediaType);
    assert.deepEqual(orphan.status, 400);
    assert.match(orphan.body, /MANIFEST_BLOB_UNKNOWN/);
  });
});

Deno.test("schema1: signed schema1 manifests only where the registry enables them", async () => {
  const reg = await startRegistry("plain", { schema1: true });
  try {
    const img = await pushSchema1Image(reg, { repository: "old/app", tag: "v1" }, { seed: 5 });
    assert.equal(img.mediaType, MediaTypes.dockerSchema1Signed);
    const got = await getManifest(reg, "old/app", "v1");
    assert.equal(got.status, 200);
    assert.equal(got.digest, img.digest);
    assert.equal(got.mediaType, MediaTypes.dockerSchema1Signed);
    // the registry re-signs schema1 on the way out; the signed payload is what stays the same
    const decode = (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b));
    const served = decode(got.bytes);
    const pushed = decode(img.manifestBytes);
    assert.deepEqual(served.fsLayers, pushed.fsLayers);
    assert.deepEqual(served.history, pushed.history);
    assert.equal(served.name, "old/app");
    for (const b of img.blobs) assert(await blobExists(reg, "old/app", b.digest));
  } finally {
    await reg.stop();
  }
  // a default registry refuses the same kind of manifest
  await withRegistry("plain", async (plain) => {
    const built = await buildSchema1({ repository: "old/app", tag: "v1" }, { seed: 5 });
    const refused = await pushRawManifest(plain, "old/app", "v1", built.manifestBytes, built.mediaType);
    // distribution 2.8 answers 500 UNKNOWN ("schema1 not supported") here
    assert(refused.status >= 400, `status ${refused.status}`);
    assert.equal((await getManifest(plain, "old/app", "v1")).status, 404);
    assert(plain.logs().some((l) => l.includes("manifest schema v1 unsupported")), plain.logs().join("\n"));
  });
});
