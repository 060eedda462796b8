/**
 * Smoke tests of the wave-2 harness tools, each exercised for real: the referrers registry
 * (go-containerregistry's pkg/registry with the OCI 1.1 referrers API) with `oras attach`,
 * `cosign` key-based signing into Debian's docker-registry, `crane digest`, and the client-go
 * leader-election peer on the harness apiserver.
 */

import assert from "node:assert/strict";
import { getBlob, getManifest, pushImage } from "./harness/fixtures.ts";
import { startRegistry } from "./harness/registry.ts";
import { startReferrersRegistry } from "./harness/referrers_registry.ts";
import { cosign, crane, oras } from "./harness/oci_cli.ts";
import { orasAttach } from "./harness/supply_chain.ts";
import { startLeaderPeer, UPSTREAM_LEASE_NAME } from "./harness/leader_peer.ts";
import { startKube } from "./harness/kube.ts";

const SPDX = "application/spdx+json";
const SARIF = "application/sarif+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** Attaches `content` to `subject` with oras (tests/harness/supply_chain.ts); returns the referrer digest. */
async function attach(dir: string, subject: string, artifactType: string, content: unknown): Promise<string> {
  const digest = await orasAttach(dir, subject, { artifactType, content });
  assert.match(digest, /^sha256:[0-9a-f]{64}$/);
  return digest;
}

/** Every entry of the referrers list, following Link rel="next" pages; also the pages' headers. */
async function listReferrers(
  url: string,
  name: string,
  digest: string,
  artifactType?: string,
): Promise<{ entries: Descriptor[]; pages: Headers[] }> {
  let next: string | undefined = `/v2/${name}/referrers/${digest}` +
    (artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : "");
  const entries: Descriptor[] = [];
  const pages: Headers[] = [];
  while (next && pages.length < 10) {
    const res: Response = await fetch(new URL(next, url));
    assert.equal(res.status, 200, `GET ${next}`);
    assert.equal(res.headers.get("content-type"), OCI_INDEX);
    const index = await res.json() as { schemaVersion: number; manifests: Descriptor[] };
    assert.equal(index.schemaVersion, 2);
    entries.push(...index.manifests);
    pages.push(res.headers);
    next = res.headers.get("link")?.match(/^<([^>]+)>;\s*rel="next"$/)?.[1];
  }
  return { entries, pages };
}

Deno.test("referrers registry: oras attach → the OCI 1.1 referrers API lists, filters and pages them", async () => {
  const reg = await startReferrersRegistry({ pageSize: 1 });
  const dir = await Deno.makeTempDir({ prefix: "portager-tools-test-" });
  try {
    const img = await pushImage(reg, { repository: "team/app", tag: "v1" }, { seed: 7 });
    const subject = `${reg.host}/team/app@${img.digest}`;
    const sbom = await attach(dir, subject, SPDX, {
      spdxVersion: "SPDX-2.3",
      SPDXID: "SPDXRef-DOCUMENT",
      name: "app",
    });
    const sarif = await attach(dir, subject, SARIF, {
      version: "2.1.0",
      runs: [],
    });

    // both referrers, with the manifests' own artifactType, one per page
    const all = await listReferrers(reg.url, "team/app", img.digest);
    assert.equal(all.pages.length, 2, "pageSize 1: two pages joined by a Link header");
    const byDigest = new Map(all.entries.map((d) => [d.digest, d]));
    assert.deepEqual(new Set(byDigest.keys()), new Set([sbom, sarif]));
    assert.equal(byDigest.get(sbom)?.artifactType, SPDX);
    assert.equal(byDigest.get(sarif)?.artifactType, SARIF);
    assert.equal(byDigest.get(sbom)?.mediaType, "application/vnd.oci.image.manifest.v1+json");

    // the artifactType filter, announced as the spec says
    const spdxOnly = await listReferrers(reg.url, "team/app", img.digest, SPDX);
    assert.deepEqual(spdxOnly.entries.map((d) => d.digest), [sbom]);
    assert.equal(spdxOnly.pages[0].get("oci-filters-applied"), "artifactType");

    // the referrer is an image manifest whose subject is our image and whose layer is the file
    const ref = await getManifest(reg, "team/app", sbom);
    assert.equal(ref.status, 200);
    const manifest = JSON.parse(new TextDecoder().decode(ref.bytes));
    assert.equal(manifest.subject.digest, img.digest);
    assert.equal(manifest.artifactType, SPDX);
    const layer = await getBlob(reg, "team/app", manifest.layers[0].digest);
    assert.equal(JSON.parse(new TextDecoder().decode(layer)).spdxVersion, "SPDX-2.3");

    // oras used the API: it found OCI-Subject on its push and wrote no fallback tag
    const tags = await (await fetch(`${reg.url}/v2/team/app/tags/list`)).json();
    assert.deepEqual(tags.tags, ["v1"]);
    const log = await reg.flushLog();
    assert(log.includes(`GET /v2/team/app/referrers/${img.digest} 200`), log.join("\n"));

    // and the real client reads the same list through the API
    const discovered = await oras(
      ["discover", "--plain-http", "--format", "json", subject],
      { check: true },
    );
    const found = JSON.parse(discovered.stdout) as { referrers?: Descriptor[]; manifests?: Descriptor[] };
    const listed = (found.referrers ?? found.manifests ?? []).map((d) => d.digest);
    assert.deepEqual(new Set(listed), new Set([sbom, sarif]));
  } finally {
    await reg.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cosign signs an image in Debian's registry: the sha256-<hex>.sig tag holds the signed payload", async () => {
  const reg = await startRegistry("plain");
  const dir = await Deno.makeTempDir({ prefix: "portager-tools-test-" });
  const env = { COSIGN_PASSWORD: "test-password-1" };
  try {
    const img = await pushImage(reg, { repository: "signed/app", tag: "v1" }, { seed: 11 });
    await cosign(["generate-key-pair"], { cwd: dir, env, check: true });
    assert.match(await Deno.readTextFile(`${dir}/cosign.pub`), /^-----BEGIN PUBLIC KEY-----/);
    assert.match(
      await Deno.readTextFile(`${dir}/cosign.key`),
      /^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----/,
    );

    const ref = `${reg.host}/signed/app@${img.digest}`;
    await cosign(
      ["sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-insecure-registry", "--yes", ref],
      { cwd: dir, env, check: true },
    );

    const sigTag = `${img.digest.replace(":", "-")}.sig`;
    const tags = await (await fetch(`${reg.url}/v2/signed/app/tags/list`)).json();
    assert.deepEqual(new Set(tags.tags), new Set(["v1", sigTag]));
    const sig = await getManifest(reg, "signed/app", sigTag);
    assert.equal(sig.status, 200);
    const layer = JSON.parse(new TextDecoder().decode(sig.bytes)).layers[0];
    assert.equal(layer.mediaType, "application/vnd.dev.cosign.simplesigning.v1+json");
    assert.match(layer.annotations["dev.cosignproject.cosign/signature"], /^[A-Za-z0-9+/]+=*$/);
    const payload = JSON.parse(new TextDecoder().decode(await getBlob(reg, "signed/app", layer.digest)));
    assert.equal(payload.critical.image["docker-manifest-digest"], img.digest);

    // cosign itself accepts the signature with the public key, and refuses another key's
    const verify = (key: string) =>
      cosign(
        ["verify", "--key", key, "--insecure-ignore-tlog=true", "--allow-insecure-registry", ref],
        { cwd: dir, env },
      );
    const good = await verify("cosign.pub");
    assert.equal(good.code, 0, good.stderr);
    await Deno.mkdir(`${dir}/other`);
    await cosign(["generate-key-pair"], { cwd: `${dir}/other`, env, check: true });
    const bad = await verify("other/cosign.pub");
    assert.notEqual(bad.code, 0, "a signature by another key must not verify");
  } finally {
    await reg.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cosign --new-bundle-format stores a Sigstore bundle as a referrer; cosign verifies it offline", async () => {
  const reg = await startReferrersRegistry();
  const dir = await Deno.makeTempDir({ prefix: "portager-tools-test-" });
  const env = { COSIGN_PASSWORD: "test-password-2" };
  try {
    const img = await pushImage(reg, { repository: "bundled/app", tag: "v1" }, { seed: 12 });
    await cosign(["generate-key-pair"], { cwd: dir, env, check: true });
    const ref = `${reg.host}/bundled/app@${img.digest}`;
    await cosign(
      ["sign", "--key", "cosign.key", "--tlog-upload=false", "--new-bundle-format", "--yes", ref],
      { cwd: dir, env, check: true },
    );
    const { entries } = await listReferrers(reg.url, "bundled/app", img.digest);
    assert.equal(entries.length, 1);
    assert.equal(entries[0].artifactType, "application/vnd.dev.sigstore.bundle.v0.3+json");
    const tags = await (await fetch(`${reg.url}/v2/bundled/app/tags/list`)).json();
    assert.deepEqual(tags.tags, ["v1"], "no .sig tag and no fallback tag: the bundle is a referrer");

    // offline: an empty trusted root is enough for a key without a transparency log
    await Deno.writeTextFile(
      `${dir}/trusted_root.json`,
      JSON.stringify({ mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1" }),
    );
    const verify = await cosign([
      "verify",
      "--key",
      "cosign.pub",
      "--insecure-ignore-tlog=true",
      "--new-bundle-format",
      "--trusted-root",
      "trusted_root.json",
      ref,
    ], { cwd: dir, env });
    assert.equal(verify.code, 0, verify.stderr);
    const claims = JSON.parse(verify.stdout) as Array<{ critical: { image: Record<string, string> } }>;
    assert.equal(claims[0].critical.image["docker-manifest-digest"], img.digest);
  } finally {
    await reg.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("crane digest reads the fixture image's digest from every registry flavour", async () => {
  const debian = await startRegistry("plain");
  const referrers = await startReferrersRegistry();
  const referrersTls = await startReferrersRegistry({ tls: true });
  try {
    for (const reg of [debian, referrers, referrersTls]) {
      const img = await pushImage(reg, { repository: "crane/app", tag: "v1" }, { seed: 3 });
      // Go reads extra roots from SSL_CERT_FILE: the private CA of the TLS registry
      const env: Record<string, string> = reg.caCertFile ? { SSL_CERT_FILE: reg.caCertFile } : {};
      const { stdout } = await crane(["digest", `${reg.host}/crane/app:v1`], { env, check: true });
      assert.equal(stdout.trim(), img.digest);
    }
    assert.match(referrersTls.url, /^https:/);
    const untrusted = await crane(["digest", `${referrersTls.host}/crane/app:v1`]);
    assert.notEqual(untrusted.code, 0, "without its CA the TLS registry must not be trusted");
    const missing = await crane(["digest", `${debian.host}/crane/app:nope`]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /MANIFEST_UNKNOWN|not found/i);
  } finally {
    await referrersTls.stop();
    await referrers.stop();
    await debian.stop();
  }
});

Deno.test("client-go leader peer: takes the Lease on the harness apiserver, hands it over on SIGTERM", async () => {
  const kube = await startKube();
  const timing = { leaseDurationMs: 4000, renewDeadlineMs: 3000, retryPeriodMs: 500 };
  const a = await startLeaderPeer(kube.kubeconfigPath, { identity: "peer-a", ...timing });
  let b: Awaited<ReturnType<typeof startLeaderPeer>> | undefined;
  try {
    await a.waitFor("LEADING peer-a");
    const leasePath = `/apis/coordination.k8s.io/v1/namespaces/default/leases/${UPSTREAM_LEASE_NAME}`;
    const lease = async () => (await (await kube.adminFetch(leasePath)).json()).spec;
    const held = await lease();
    assert.equal(held.holderIdentity, "peer-a");
    assert.equal(held.leaseDurationSeconds, 4);

    b = await startLeaderPeer(kube.kubeconfigPath, { identity: "peer-b", ...timing });
    await b.waitFor("NEW_LEADER peer-a");
    assert.equal(b.isLeading(), false);
    assert.equal(a.isLeading(), true);

    const status = await a.stop();
    assert.equal(status.code, 0);
    assert.deepEqual(a.lines().slice(-2), ["STOPPED peer-a", "EXIT peer-a signal"]);
    await b.waitFor("LEADING peer-b", { timeoutMs: 10_000 });
    assert.equal((await lease()).holderIdentity, "peer-b");
  } finally {
    await a.stop();
    await b?.stop();
    await kube.stop();
  }
});
