/**
 * The referrers layer against real registries and real tools: Debian's docker-registry (no
 * referrers API: the `sha256-<hex>` fallback tag) and go-containerregistry's registry with the
 * OCI 1.1 referrers API, each as source and as destination. Referrers are attached by the real
 * `oras` and `cosign` CLIs; they are carried with digests preserved, recursively, and the
 * gates pass at the destination on what arrived.
 */

import assert from "node:assert/strict";
import { getManifest, pushImage } from "./harness/fixtures.ts";
import { startRegistry } from "./harness/registry.ts";
import { startReferrersRegistry } from "./harness/referrers_registry.ts";
import { cosign } from "./harness/oci_cli.ts";
import { orasAttach } from "./harness/supply_chain.ts";
import { Copier, parseReference, RegistryClient } from "../src/oci/mod.ts";
import {
  copyCosignTags,
  copyReferrers,
  cosignTag,
  listReferrers,
  pushReferrer,
  referrersTag,
} from "../src/oci/referrers.ts";
import { runGates } from "../src/gates/mod.ts";

const ENV = { COSIGN_PASSWORD: "referrers-test-password" };
const SPDX = "application/spdx+json";
const SARIF = "application/sarif+json";
const SIG = "application/vnd.example.signature";

interface Reg {
  host: string;
  url: string;
  stop(): Promise<void>;
}

const KINDS: [string, () => Promise<Reg>][] = [
  ["debian", () => startRegistry("plain")],
  ["api", () => startReferrersRegistry()],
];

function attach(dir: string, subject: string, artifactType: string, content: unknown): Promise<string> {
  return orasAttach(dir, subject, { artifactType, content });
}

Deno.test("listReferrers reads oras's referrers through the API and through the fallback tag", async () => {
  for (const [kind, start] of KINDS) {
    const reg = await start();
    const dir = await Deno.makeTempDir();
    try {
      const img = await pushImage(reg, { repository: "app", tag: "v1" }, { seed: 41 });
      const subject = `${reg.host}/app@${img.digest}`;
      const sbom = await attach(dir, subject, SPDX, { spdxVersion: "SPDX-2.3" });
      const sarif = await attach(dir, subject, SARIF, { version: "2.1.0", runs: [] });
      using client = new RegistryClient();
      const all = await listReferrers(client, parseReference(subject));
      assert.equal(all.source, kind === "api" ? "api" : "tag", kind);
      assert.deepEqual(new Set(all.referrers.map((r) => r.digest)), new Set([sbom, sarif]), kind);
      const only = await listReferrers(client, parseReference(subject), { artifactType: SARIF });
      assert.deepEqual(only.referrers.map((r) => r.digest), [sarif], kind);
      // A pushed referrer: on Debian's registry the fallback index keeps oras's entries.
      const mine = new TextEncoder().encode(JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        artifactType: SIG,
        config: {
          mediaType: "application/vnd.oci.empty.v1+json",
          digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
          size: 2,
        },
        layers: [{
          mediaType: "application/vnd.oci.empty.v1+json",
          digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
          size: 2,
        }],
        subject: { mediaType: img.mediaType, digest: img.digest, size: img.manifestBytes.byteLength },
      }));
      await fetch(
        `${reg.url}/v2/app/blobs/uploads/?digest=sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a`,
        {
          method: "POST",
          body: "{}",
          headers: { "content-type": "application/octet-stream" },
        },
      ).then((r) => r.body?.cancel());
      const pushed = await pushReferrer(client, parseReference(`${reg.host}/app`, { defaultTag: false }), {
        bytes: mine,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
      });
      assert.equal(pushed.fallbackTag, kind === "api" ? undefined : referrersTag(img.digest), kind);
      const after = await listReferrers(client, parseReference(subject));
      assert.deepEqual(
        new Set(after.referrers.map((r) => r.digest)),
        new Set([sbom, sarif, pushed.digest]),
        kind,
      );
    } finally {
      await reg.stop();
      await Deno.remove(dir, { recursive: true });
    }
  }
});

for (const [srcKind, startSrc] of KINDS) {
  for (const [dstKind, startDst] of KINDS) {
    Deno.test(`copyReferrers ${srcKind} → ${dstKind}: recursive, digests preserved, incremental, filtered, dry run writes nothing`, async () => {
      const src = await startSrc();
      const dst = await startDst();
      const dir = await Deno.makeTempDir();
      try {
        await cosign(["generate-key-pair"], { cwd: dir, env: ENV, check: true });
        const img = await pushImage(src, { repository: "app", tag: "v1" }, { seed: 51 });
        const subject = `${src.host}/app@${img.digest}`;
        const sbom = await attach(dir, subject, SPDX, { spdxVersion: "SPDX-2.3", packages: [] });
        const sarif = await attach(dir, subject, SARIF, { version: "2.1.0", runs: [{ results: [] }] });
        // A signature on the SBOM: a referrer of a referrer.
        const sbomSig = await attach(dir, `${src.host}/app@${sbom}`, SIG, { signed: sbom });
        // cosign: the Sigstore bundle referrer, and the .sig tag layout.
        const signArgs = [
          "sign",
          "--key",
          "cosign.key",
          "--tlog-upload=false",
          "--allow-insecure-registry",
          "--yes",
        ];
        await cosign([...signArgs, "--new-bundle-format", "--use-signing-config=false", subject], {
          cwd: dir,
          env: ENV,
          check: true,
        });
        await cosign([...signArgs, subject], { cwd: dir, env: ENV, check: true });

        using source = new RegistryClient();
        using destination = new RegistryClient();
        const copier = new Copier({ source, destination });
        const srcRef = parseReference(subject);
        const dstRef = parseReference(`${dst.host}/mirror/app:v1`);
        await copier.copy(srcRef, dstRef);
        const dstSubject = dstRef.withDigest(img.digest);
        const clients = { source, destination, copier };

        // Dry run: the plan, and not one write.
        const plan = await copyReferrers(clients, srcRef, dstSubject, { dryRun: true });
        assert.ok(plan.referrers.every((r) => r.action === "would-copy"));
        assert.equal((await listReferrers(destination, dstSubject)).referrers.length, 0);

        const first = await copyReferrers(clients, srcRef, dstSubject);
        const byDigest = new Map(first.referrers.map((r) => [r.digest, r]));
        assert.equal(first.referrers.length, 4, JSON.stringify(first.referrers));
        assert.equal(byDigest.get(sbom)?.depth, 1);
        assert.equal(byDigest.get(sbomSig)?.depth, 2);
        assert.equal(byDigest.get(sbomSig)?.subject, sbom);
        assert.ok(first.referrers.every((r) => r.action === "copied"));
        assert.equal(first.destinationApi, dstKind === "api");
        assert.deepEqual(first.fallbackTags.length > 0, dstKind === "debian");
        const listed = await listReferrers(destination, dstSubject);
        const expected = new Set([
          sbom,
          sarif,
          ...first.referrers.filter((r) => r.depth === 1).map((r) => r.digest),
        ]);
        assert.deepEqual(new Set(listed.referrers.map((r) => r.digest)), expected);
        // The exact bytes arrived: same digest at both ends, with the real artifact types.
        const src1 = await getManifest(src, "app", sbom);
        const dst1 = await getManifest(dst, "mirror/app", sbom);
        assert.deepEqual(dst1.bytes, src1.bytes);
        assert.ok(
          listed.referrers.some((r) => r.artifactType === "application/vnd.dev.sigstore.bundle.v0.3+json"),
        );
        assert.deepEqual(
          (await listReferrers(destination, dstRef.withDigest(sbom))).referrers.map((r) => r.digest),
          [sbomSig],
        );
        const tags = await copyCosignTags(clients, srcRef, dstSubject);
        assert.deepEqual(tags.tags.map((t) => [t.tag, t.action]), [[cosignTag(img.digest, "sig"), "copied"]]);

        // The gates pass at the destination on what arrived (bundle and .sig, SBOM, SARIF).
        const pub = await Deno.readTextFile(`${dir}/cosign.pub`);
        const verified = await runGates(destination, dstSubject, {
          config: {
            cosign: { enabled: true, publicKey: pub },
            vulnerabilityGate: { enabled: true, maxSeverity: "critical" },
            sbomGate: { enabled: true },
          },
        });
        assert.equal(verified.verified, true, JSON.stringify(verified));

        // Nothing new: everything is up to date and no referrer manifest is pushed again.
        const again = await copyReferrers(clients, srcRef, dstSubject);
        assert.ok(again.referrers.every((r) => r.action === "up-to-date"), JSON.stringify(again.referrers));
        assert.equal(again.bytesMoved, 0);
        // A referrer added later at the source arrives on the next copy, alone.
        const late = await attach(dir, subject, SARIF, { version: "2.1.0", runs: [] });
        const third = await copyReferrers(clients, srcRef, dstSubject);
        assert.deepEqual(third.referrers.filter((r) => r.action === "copied").map((r) => r.digest), [late]);

        // Filtered: only SBOMs travel to another repository.
        const other = parseReference(`${dst.host}/only-sbom/app:v1`);
        await copier.copy(srcRef, other);
        const filtered = await copyReferrers(clients, srcRef, other.withDigest(img.digest), {
          artifactTypes: [SPDX],
        });
        assert.deepEqual(filtered.referrers.map((r) => r.digest), [sbom]);
      } finally {
        await src.stop();
        await dst.stop();
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
}

Deno.test("referrers behind Bearer auth: listed and pushed with the pull/push token scopes; without credentials the gate fails, never passes", async () => {
  const { pushBlob } = await import("./harness/fixtures.ts");
  const { staticCredentials } = await import("../src/oci/mod.ts");
  const reg = await startRegistry("bearer");
  try {
    const img = await pushImage(reg, { repository: "sec/app", tag: "v1" }, { seed: 61 });
    using client = new RegistryClient({
      credentials: staticCredentials({ [reg.host]: { username: reg.username!, password: reg.password! } }),
    });
    const subject = parseReference(`${reg.host}/sec/app@${img.digest}`);
    assert.deepEqual(await listReferrers(client, subject), { referrers: [], source: "tag" });
    const empty = await pushBlob(reg, "sec/app", new TextEncoder().encode("{}"));
    const bytes = new TextEncoder().encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      artifactType: SPDX,
      config: { mediaType: "application/vnd.oci.empty.v1+json", ...empty },
      layers: [{ mediaType: "application/vnd.oci.empty.v1+json", ...empty }],
      subject: { mediaType: img.mediaType, digest: img.digest, size: img.manifestBytes.byteLength },
    }));
    const pushed = await pushReferrer(client, parseReference(`${reg.host}/sec/app`, { defaultTag: false }), {
      bytes,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
    });
    assert.equal(pushed.fallbackTag, referrersTag(img.digest));
    const sbom = await runGates(client, subject, { config: { sbomGate: { enabled: true } } });
    assert.equal(sbom.verified, true, JSON.stringify(sbom));
    using anonymous = new RegistryClient();
    const denied = await runGates(anonymous, subject, { config: { sbomGate: { enabled: true } } });
    assert.equal(denied.failed?.reason, "ReferrersUnavailable");
    assert.match(denied.failed!.detail, /unauthorized \(HTTP 401\)/);
    assert.ok(!denied.failed!.detail.includes(reg.password!), "no credential in the message");
  } finally {
    await reg.stop();
  }
});
