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

/** Runs `syncImageSync` of `app:v1` from `src` to `dst` under `prefix`, anonymous, with copyReferrers. */
async function syncApp(
  src: Reg,
  dst: Reg,
  opts: { prefix: string; platforms?: string[]; artifactTypes?: string[]; dryRun?: boolean },
) {
  const { syncImageSync } = await import("../src/sync/mod.ts");
  const anon = { resolve: () => Promise.resolve(undefined) };
  const events: string[] = [];
  const report = await syncImageSync({
    schedule: "@daily",
    source: { registry: src.host },
    destination: {
      registry: dst.host,
      repositoryPrefix: opts.prefix,
      auth: { method: "anonymous" as const },
    },
    images: [{ name: "app", tags: ["v1"], ...(opts.platforms ? { platforms: opts.platforms } : {}) }],
    copyReferrers: { enabled: true, ...(opts.artifactTypes ? { artifactTypes: opts.artifactTypes } : {}) },
  }, {
    sourceCredentials: anon,
    destinationCredentials: anon,
    dryRun: opts.dryRun,
    onEvent: (e) => events.push(e.type),
  });
  return { tag: report.images[0].tags[0], events };
}

/** `cosign verify` with the key, offline (no transparency log); `bundle`: the Sigstore bundle form. */
function cosignVerify(dir: string, ref: string, bundle = false) {
  return cosign([
    "verify",
    "--key",
    "cosign.pub",
    "--insecure-ignore-tlog=true",
    "--allow-insecure-registry",
    ...(bundle ? ["--new-bundle-format", "--trusted-root", "trusted_root.json"] : []),
    ref,
  ], { cwd: dir, env: ENV });
}

/** `cosign sign --recursive` of `ref` (an index: the index and every platform manifest), offline; `bundle`: Sigstore bundles. */
async function cosignSignRecursive(dir: string, ref: string, bundle = false): Promise<void> {
  await cosign([
    "sign",
    "--key",
    "cosign.key",
    "--tlog-upload=false",
    ...(bundle ? ["--new-bundle-format", "--use-signing-config=false"] : ["--allow-insecure-registry"]),
    "--recursive",
    "--yes",
    ref,
  ], { cwd: dir, env: ENV, check: true });
}

/** Requests in `reg`'s log since `from`, without the ping. */
async function requestsSince(reg: Reg & { flushLog(): Promise<string[]> }, from: number): Promise<string[]> {
  return (await reg.flushLog()).slice(from).filter((l) => !/ \/v2\/? /.test(l));
}

for (const [srcKind, startSrc] of KINDS) {
  const dstKind = srcKind === "api" ? "debian" : "api";
  const startDst = KINDS.find(([k]) => k === dstKind)![1];
  Deno.test(`copyReferrers of a multi-arch image ${srcKind} → ${dstKind}: cosign sign --recursive's .sig tags of every platform manifest arrive, cosign verify passes there; a platform filter carries only the kept platforms'; an unchanged sync's requests`, async () => {
    const src = await startSrc() as Reg & { flushLog(): Promise<string[]> };
    const dst = await startDst();
    const dir = await Deno.makeTempDir();
    try {
      await cosign(["generate-key-pair"], { cwd: dir, env: ENV, check: true });
      const seed = srcKind === "api" ? 71 : 72;
      const img = await pushImage(src, { repository: "app", tag: "v1" }, {
        seed,
        platforms: ["linux/amd64", "linux/arm64"],
      });
      const [amd64, arm64] = img.children!;
      await cosignSignRecursive(dir, `${src.host}/app@${img.digest}`);
      const sigTags = [img.digest, amd64.digest, arm64.digest].map((d) => cosignTag(d, "sig"));

      const first = await syncApp(src, dst, { prefix: "mirror" });
      assert.equal(first.tag.action, "copied", JSON.stringify(first.tag));
      assert.deepEqual([first.tag.referrers?.copied, first.tag.referrers?.upToDate], [3, 0]);
      assert.ok(first.events.includes("ReferrersCopied"));
      for (const tag of sigTags) {
        assert.equal((await getManifest(dst, "mirror/app", tag)).status, 200, tag);
      }
      // A user verifying one platform's image at the destination finds its signature.
      for (const d of [img.digest, arm64.digest]) {
        const verified = await cosignVerify(dir, `${dst.host}/mirror/app@${d}`);
        assert.equal(verified.code, 0, verified.stderr);
      }

      // Unchanged: nothing moves; the source is asked per subject for its referrers and
      // cosign's three tags, and not for the index again (this process read it already).
      const from = (await src.flushLog()).length;
      const dstFrom = (await (dst as typeof src).flushLog()).length;
      const again = await syncApp(src, dst, { prefix: "mirror" });
      assert.equal(again.tag.action, "up-to-date");
      assert.deepEqual([again.tag.referrers?.copied, again.tag.referrers?.upToDate], [0, 3]);
      const asked = await requestsSince(src, from);
      // The tag's HEAD, then per subject (the index and its two platform manifests): one
      // referrers read (on Debian's registry, a new sync's first tag meets the API's 404 before
      // reading the fallback tag; later tags read it directly), three HEADs for .sig/.att/.sbom,
      // and the HEAD comparing the .sig found. The index itself is read at the destination, and
      // only by the first sync.
      const extra = srcKind === "debian" ? 1 : 0;
      assert.equal(asked.length, 1 + 3 * (5 + extra), asked.join("\n"));
      const dstAsked = await requestsSince(dst as typeof src, dstFrom);
      assert.ok(!dstAsked.some((l) => l.startsWith("GET /v2/mirror/app/manifests/")), dstAsked.join("\n"));
      for (const d of [img.digest, amd64.digest, arm64.digest]) {
        assert.equal(
          asked.filter((l) => l.includes(d.slice(7))).length,
          5 + extra,
          `${d}: ${asked.join("\n")}`,
        );
      }

      // A platform filter: the rewritten index has another digest, so the index's own
      // signature does not apply there; the kept platform's does, the dropped one's is not copied.
      const filtered = await syncApp(src, dst, { prefix: "arm", platforms: ["linux/arm64"] });
      assert.equal(filtered.tag.action, "copied", JSON.stringify(filtered.tag));
      assert.equal(filtered.tag.referrers?.copied, 1);
      assert.equal((await getManifest(dst, "arm/app", cosignTag(arm64.digest, "sig"))).status, 200);
      assert.equal((await getManifest(dst, "arm/app", cosignTag(amd64.digest, "sig"))).status, 404);
      assert.equal((await getManifest(dst, "arm/app", cosignTag(img.digest, "sig"))).status, 404);
      const armVerified = await cosignVerify(dir, `${dst.host}/arm/app@${arm64.digest}`);
      assert.equal(armVerified.code, 0, armVerified.stderr);
    } finally {
      await src.stop();
      await dst.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("copyReferrers of a multi-arch image through the OCI referrers API: oras attach to one platform manifest and cosign's bundle on every one arrive; cosign verify --new-bundle-format passes at the destination; dry run writes nothing; artifactTypes filters children too", async () => {
  const src = await startReferrersRegistry();
  const dst = await startReferrersRegistry();
  const dir = await Deno.makeTempDir();
  try {
    await cosign(["generate-key-pair"], { cwd: dir, env: ENV, check: true });
    await Deno.writeTextFile(
      `${dir}/trusted_root.json`,
      JSON.stringify({ mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1" }),
    );
    const img = await pushImage(src, { repository: "app", tag: "v1" }, {
      seed: 73,
      platforms: ["linux/amd64", "linux/arm64"],
    });
    const [amd64, arm64] = img.children!;
    const sbom = await attach(dir, `${src.host}/app@${arm64.digest}`, SPDX, { spdxVersion: "SPDX-2.3" });
    await cosignSignRecursive(dir, `${src.host}/app@${img.digest}`, true);

    const plan = await syncApp(src, dst, { prefix: "mirror", dryRun: true });
    assert.equal(plan.tag.referrers?.copied, 4, JSON.stringify(plan.tag));
    assert.equal(
      (await getManifest(dst, "mirror/app", arm64.digest)).status,
      404,
      "a dry run writes nothing",
    );

    const first = await syncApp(src, dst, { prefix: "mirror" });
    assert.equal(first.tag.action, "copied", JSON.stringify(first.tag));
    assert.equal(first.tag.referrers?.copied, 4, JSON.stringify(first.tag.referrers));
    using client = new RegistryClient();
    const at = (d: string) => parseReference(`${dst.host}/mirror/app@${d}`);
    const armThere = await listReferrers(client, at(arm64.digest));
    assert.equal(armThere.source, "api");
    assert.ok(armThere.referrers.some((r) => r.digest === sbom), JSON.stringify(armThere));
    assert.deepEqual(
      (await getManifest(dst, "mirror/app", sbom)).bytes,
      (await getManifest(src, "app", sbom)).bytes,
      "the exact bytes: digest preserved",
    );
    for (const d of [img.digest, amd64.digest, arm64.digest]) {
      const verified = await cosignVerify(dir, `${dst.host}/mirror/app@${d}`, true);
      assert.equal(verified.code, 0, `${d}: ${verified.stderr}`);
    }

    // The sync command (what the operator runs too) carries them the same way.
    await Deno.writeTextFile(
      `${dir}/sync.yaml`,
      `apiVersion: portager.portager.io/v1alpha1
kind: ImageSync
metadata:
  name: multi
spec:
  schedule: "@every 1h"
  source: { registry: "${src.host}" }
  destination: { registry: "${dst.host}", repositoryPrefix: cli, auth: { method: anonymous } }
  images: [{ name: app, tags: [v1], platforms: [linux/arm64] }]
  copyReferrers: { enabled: true }
`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", "main.ts", "sync", "-f", `${dir}/sync.yaml`, "-o", "json"],
      cwd: new URL("..", import.meta.url).pathname,
      env: { NO_COLOR: "1", DOCKER_CONFIG: dir },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const cliTag = JSON.parse(new TextDecoder().decode(out.stdout)).imageSyncs[0].report.images[0].tags[0];
    assert.equal(cliTag.referrers.copied, 2, "arm64's SBOM and bundle; not the index's or amd64's");
    const cliVerified = await cosignVerify(dir, `${dst.host}/cli/app@${arm64.digest}`, true);
    assert.equal(cliVerified.code, 0, cliVerified.stderr);

    // artifactTypes applies to the platform manifests' referrers too: only the SBOM travels.
    const sbomOnly = await syncApp(src, dst, { prefix: "sbom", artifactTypes: [SPDX] });
    assert.equal(sbomOnly.tag.referrers?.copied, 1, JSON.stringify(sbomOnly.tag.referrers));
    assert.deepEqual(
      (await listReferrers(client, parseReference(`${dst.host}/sbom/app@${arm64.digest}`))).referrers
        .map((r) => r.digest),
      [sbom],
    );
    assert.equal(
      (await listReferrers(client, parseReference(`${dst.host}/sbom/app@${amd64.digest}`))).referrers.length,
      0,
    );
  } finally {
    await src.stop();
    await dst.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("operator end to end: an ImageSync with copyReferrers carries cosign sign --recursive's signatures of the kept platform manifests; cosign verify passes at the destination", async () => {
  const { startKube } = await import("./harness/kube.ts");
  const op = await import("./harness/operator.ts");
  const kube = await startKube();
  const src = await startRegistry("plain");
  const dst = await startReferrersRegistry();
  const dir = await Deno.makeTempDir();
  let operator: Awaited<ReturnType<typeof op.startOperator>> | undefined;
  try {
    await cosign(["generate-key-pair"], { cwd: dir, env: ENV, check: true });
    const img = await pushImage(src, { repository: "app", tag: "v1" }, {
      seed: 74,
      platforms: ["linux/amd64", "linux/arm64", "linux/arm/v7"],
    });
    const [amd64, arm64, armv7] = img.children!;
    await cosignSignRecursive(dir, `${src.host}/app@${img.digest}`);
    await op.applyCrd(kube);
    await op.createNamespace(kube, "multi");
    operator = await op.startOperator(kube);
    await kube.apply(op.imageSync("multi", "arches", {
      schedule: "@every 1h",
      source: { registry: src.host },
      destination: { registry: dst.host, auth: { method: "anonymous" }, repositoryPrefix: "mirror" },
      images: [{ name: "app", tags: ["v1"], platforms: ["linux/amd64", "linux/arm64"] }],
      copyReferrers: { enabled: true },
    }));
    await op.waitForReady(kube, "multi", "arches", { logs: () => operator!.log() });
    const carried = await op.waitForEvent(kube, "multi", "arches", "ReferrersCopied");
    assert.match(carried.message, /^Copied 2 referrer\(s\) of /, carried.message);
    for (const child of [amd64, arm64]) {
      const verified = await cosignVerify(dir, `${dst.host}/mirror/app@${child.digest}`);
      assert.equal(verified.code, 0, `${child.platform}: ${verified.stderr}`);
    }
    assert.equal((await getManifest(dst, "mirror/app", cosignTag(armv7.digest, "sig"))).status, 404);
    assert.equal((await getManifest(dst, "mirror/app", cosignTag(img.digest, "sig"))).status, 404);
  } finally {
    await operator?.stop();
    await src.stop();
    await dst.stop();
    await kube.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
