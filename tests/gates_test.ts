/**
 * The supply-chain gates against real tools and real registries: signatures made by the real
 * `cosign` CLI (tag layout and the Sigstore bundle referrer), SARIF and SBOM referrers attached
 * by the real `oras` CLI, on Debian's docker-registry (no referrers API: fallback tags) and on
 * go-containerregistry's registry with the OCI 1.1 referrers API.
 */

import assert from "node:assert/strict";
import { getBlob, getManifest, pushBlob, pushImage, pushRawManifest } from "./harness/fixtures.ts";
import { startRegistry } from "./harness/registry.ts";
import { startReferrersRegistry } from "./harness/referrers_registry.ts";
import { cosign } from "./harness/oci_cli.ts";
import { orasAttach as attach, promtoolCheckMetrics } from "./harness/supply_chain.ts";
import { parseReference, RegistryClient } from "../src/oci/mod.ts";
import { formatGateFailure, type GatesConfig, runGates, type ValidationOutcome } from "../src/gates/mod.ts";

const ENV = { COSIGN_PASSWORD: "gates-test-password" };
const SPDX = "application/spdx+json";
const CYCLONEDX = "application/vnd.cyclonedx+json";
const SARIF = "application/sarif+json";

interface Reg {
  host: string;
  url: string;
  stop(): Promise<void>;
}

const REGISTRIES: [string, () => Promise<Reg>][] = [
  ["Debian registry (fallback tags)", () => startRegistry("plain")],
  ["referrers-API registry", () => startReferrersRegistry()],
];

/** A temp dir with two cosign key pairs: `cosign.key/.pub` and `other/cosign.key/.pub`. */
async function keyDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "portager-gates-test-" });
  await cosign(["generate-key-pair"], { cwd: dir, env: ENV, check: true });
  await Deno.mkdir(`${dir}/other`);
  await cosign(["generate-key-pair"], { cwd: `${dir}/other`, env: ENV, check: true });
  return dir;
}

async function cosignSign(dir: string, ref: string, opts: { key?: string; bundle?: boolean } = {}) {
  await cosign([
    "sign",
    "--key",
    opts.key ?? "cosign.key",
    "--tlog-upload=false",
    ...(opts.bundle ? ["--new-bundle-format", "--use-signing-config=false"] : []),
    "--allow-insecure-registry",
    "--yes",
    ref,
  ], { cwd: dir, env: ENV, check: true });
}

async function orasAttach(dir: string, subject: string, artifactType: string, content: unknown) {
  await attach(dir, subject, { artifactType, content });
}

async function gates(
  host: string,
  repo: string,
  digest: string,
  config: GatesConfig,
): Promise<ValidationOutcome> {
  using client = new RegistryClient({ maxAttempts: 2 });
  return await runGates(client, parseReference(`${host}/${repo}@${digest}`), { config });
}

function assertFailed(outcome: ValidationOutcome, gate: string, reason: string, pattern: RegExp) {
  assert.equal(outcome.verified, false, `expected ${gate} to fail: ${JSON.stringify(outcome)}`);
  assert.equal(outcome.failed?.gate, gate);
  assert.equal(outcome.failed?.reason, reason, outcome.failed?.detail);
  assert.match(formatGateFailure(outcome.failed!), pattern);
}

/** A trivy-shaped SARIF report with one finding per [id, CVSS score]. */
function sarif(findings: [string, string][]) {
  return {
    version: "2.1.0",
    runs: [{
      tool: {
        driver: {
          name: "Trivy",
          rules: findings.map(([id, score]) => ({
            id,
            defaultConfiguration: { level: "error" },
            properties: { "security-severity": score, tags: ["vulnerability", "security"] },
          })),
        },
      },
      results: findings.map(([id], i) => ({
        ruleId: id,
        ruleIndex: i,
        level: "error",
        message: { text: id },
      })),
    }],
  };
}

for (const [label, start] of REGISTRIES) {
  Deno.test(`cosign key gate on the ${label}: real cosign signatures (tag and bundle) pass; other key, other digest, tampered payload fail`, async () => {
    const reg = await start();
    const dir = await keyDir();
    try {
      const pub = await Deno.readTextFile(`${dir}/cosign.pub`);
      const otherPub = await Deno.readTextFile(`${dir}/other/cosign.pub`);
      const a = await pushImage(reg, { repository: "signed/app", tag: "a" }, { seed: 21 });
      const b = await pushImage(reg, { repository: "signed/app", tag: "b" }, { seed: 22 });
      const c = await pushImage(reg, { repository: "signed/app", tag: "c" }, { seed: 23 });
      const cfg = (publicKey: string): GatesConfig => ({ cosign: { enabled: true, publicKey } });

      // Nothing signed yet.
      assertFailed(
        await gates(reg.host, "signed/app", a.digest, cfg(pub)),
        "cosign",
        "SignatureMissing",
        /^cosign verification failed: no signatures found/,
      );

      // The tag layout, as `cosign sign --key` writes it.
      await cosignSign(dir, `${reg.host}/signed/app@${a.digest}`);
      const ok = await gates(reg.host, "signed/app", a.digest, cfg(pub));
      assert.equal(ok.verified, true, JSON.stringify(ok));
      assert.match(
        ok.results[0].detail,
        /signature verified with the ECDSA P-256 public key \(tag sha256-[0-9a-f]{64}\.sig layer 0\)/,
      );
      assertFailed(
        await gates(reg.host, "signed/app", a.digest, cfg(otherPub)),
        "cosign",
        "SignatureInvalid",
        /does not verify with the given public key/,
      );

      // B's signature placed under A's .sig tag: a valid signature, but for another digest.
      await cosignSign(dir, `${reg.host}/signed/app@${b.digest}`);
      const bSig = await getManifest(reg, "signed/app", `${b.digest.replace(":", "-")}.sig`);
      const cTag = `${c.digest.replace(":", "-")}.sig`;
      await pushRawManifest(
        reg,
        "signed/app",
        cTag,
        bSig.bytes,
        "application/vnd.oci.image.manifest.v1+json",
      );
      assertFailed(
        await gates(reg.host, "signed/app", c.digest, cfg(pub)),
        "cosign",
        "SignatureInvalid",
        new RegExp(`signature is for ${b.digest}, not ${c.digest}`),
      );

      // A's payload edited to name C, the signature annotation kept: the signature no longer covers it.
      const aSig = JSON.parse(
        new TextDecoder().decode(
          (await getManifest(reg, "signed/app", `${a.digest.replace(":", "-")}.sig`)).bytes,
        ),
      );
      const payload = new TextDecoder().decode(await getBlob(reg, "signed/app", aSig.layers[0].digest));
      const forged = await pushBlob(
        reg,
        "signed/app",
        new TextEncoder().encode(payload.replace(a.digest, c.digest)),
      );
      aSig.layers[0] = { ...aSig.layers[0], digest: forged.digest, size: forged.size };
      await pushRawManifest(
        reg,
        "signed/app",
        cTag,
        new TextEncoder().encode(JSON.stringify(aSig)),
        "application/vnd.oci.image.manifest.v1+json",
      );
      assertFailed(
        await gates(reg.host, "signed/app", c.digest, cfg(pub)),
        "cosign",
        "SignatureInvalid",
        /does not verify with the given public key/,
      );

      // The Sigstore bundle stored as a referrer (`--new-bundle-format`): on the API registry a
      // referrer, on Debian's an entry of the sha256-<hex> fallback index.
      const d = await pushImage(reg, { repository: "signed/app", tag: "d" }, { seed: 24 });
      await cosignSign(dir, `${reg.host}/signed/app@${d.digest}`, { bundle: true });
      const viaBundle = await gates(reg.host, "signed/app", d.digest, cfg(pub));
      assert.equal(viaBundle.verified, true, JSON.stringify(viaBundle));
      assert.match(viaBundle.results[0].detail, /\(referrer sha256:[0-9a-f]{64}\)/);
      assertFailed(
        await gates(reg.host, "signed/app", d.digest, cfg(otherPub)),
        "cosign",
        "SignatureInvalid",
        /bundle's signature does not verify/,
      );
      // A bundle signed by the right key for another image does not sign this one.
      const e = await pushImage(reg, { repository: "signed/app", tag: "e" }, { seed: 25 });
      await cosignSign(dir, `${reg.host}/signed/app@${e.digest}`, { key: "other/cosign.key", bundle: true });
      assertFailed(
        await gates(reg.host, "signed/app", e.digest, cfg(pub)),
        "cosign",
        "SignatureInvalid",
        /does not verify/,
      );
    } finally {
      await reg.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`vulnerability and SBOM gates on the ${label}: oras-attached SARIF and SBOM referrers`, async () => {
    const reg = await start();
    const dir = await Deno.makeTempDir({ prefix: "portager-gates-test-" });
    try {
      const img = await pushImage(reg, { repository: "scanned/app", tag: "v1" }, { seed: 31 });
      const subject = `${reg.host}/scanned/app@${img.digest}`;
      const vuln = (
        maxSeverity: "critical" | "high" | "medium" | "low",
        requireCveReport?: boolean,
      ): GatesConfig => ({
        vulnerabilityGate: {
          enabled: true,
          maxSeverity,
          ...(requireCveReport === undefined ? {} : { requireCveReport }),
        },
      });
      const sbom: GatesConfig = { sbomGate: { enabled: true } };

      assertFailed(
        await gates(reg.host, "scanned/app", img.digest, vuln("critical")),
        "vulnerability",
        "CveReportMissing",
        /^vulnerability gate failed: no CVE report found for .*; set requireCveReport: false/,
      );
      assert.equal(
        (await gates(reg.host, "scanned/app", img.digest, vuln("critical", false))).verified,
        true,
      );
      assertFailed(
        await gates(reg.host, "scanned/app", img.digest, sbom),
        "sbom",
        "SbomMissing",
        /^SBOM gate failed: no SBOM found/,
      );

      // Another type of referrer does not count as either.
      await orasAttach(dir, subject, "application/vnd.example.readme", { hello: "world" });
      assertFailed(
        await gates(reg.host, "scanned/app", img.digest, sbom),
        "sbom",
        "SbomMissing",
        /no SBOM found/,
      );

      await orasAttach(dir, subject, SARIF, sarif([["CVE-2024-1111", "8.1"], ["CVE-2024-2222", "5.0"]]));
      assert.equal((await gates(reg.host, "scanned/app", img.digest, vuln("critical"))).verified, true);
      const high = await gates(reg.host, "scanned/app", img.digest, vuln("high"));
      assertFailed(
        high,
        "vulnerability",
        "VulnerabilitiesFound",
        /1 finding\(s\) at or above high severity: CVE-2024-1111 \(high\)$/,
      );
      assert.deepEqual(high.failed?.cves, [{ id: "CVE-2024-1111", severity: "high" }]);
      const medium = await gates(reg.host, "scanned/app", img.digest, vuln("medium"));
      assert.deepEqual(medium.failed?.cves?.map((f) => f.id), ["CVE-2024-1111", "CVE-2024-2222"]);

      await orasAttach(dir, subject, CYCLONEDX, {
        bomFormat: "CycloneDX",
        specVersion: "1.5",
        components: [],
      });
      const passed = await gates(reg.host, "scanned/app", img.digest, { ...vuln("critical"), ...sbom });
      assert.deepEqual(passed.results.map((r) => [r.gate, r.passed]), [["vulnerability", true], [
        "sbom",
        true,
      ]]);

      // A malformed report blocks, it is never skipped.
      const other = await pushImage(reg, { repository: "scanned/app", tag: "v2" }, { seed: 32 });
      await orasAttach(dir, `${reg.host}/scanned/app@${other.digest}`, SARIF, "{ not json");
      assertFailed(
        await gates(reg.host, "scanned/app", other.digest, vuln("critical")),
        "vulnerability",
        "ReportInvalid",
        /SARIF report .* is not valid JSON/,
      );
      await orasAttach(dir, `${reg.host}/scanned/app@${other.digest}`, SPDX, {
        spdxVersion: "SPDX-2.3",
        packages: [],
      });
      // Order: the failing vulnerability gate stops before the SBOM gate.
      const stopped = await gates(reg.host, "scanned/app", other.digest, { ...vuln("critical"), ...sbom });
      assert.deepEqual(stopped.results.map((r) => r.gate), ["vulnerability"]);
      assert.equal((await gates(reg.host, "scanned/app", other.digest, sbom)).verified, true);
    } finally {
      await reg.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("syncImageSync with gates and copyReferrers: Debian → referrers-API registry and back; status fields, Events, dry-run plan", async () => {
  const { syncImageSync } = await import("../src/sync/mod.ts");
  const { eventMessage } = await import("../src/sync/format.ts");
  const { statusFromReport } = await import("../src/sync/status.ts");
  const debian = await startRegistry("plain");
  const api = await startReferrersRegistry();
  const dir = await keyDir();
  try {
    const pub = await Deno.readTextFile(`${dir}/cosign.pub`);
    const signed = await pushImage(debian, { repository: "app", tag: "signed" }, { seed: 61 });
    await pushImage(debian, { repository: "app", tag: "unsigned" }, { seed: 62 });
    const signedRef = `${debian.host}/app@${signed.digest}`;
    await cosignSign(dir, signedRef);
    await orasAttach(dir, signedRef, SPDX, { spdxVersion: "SPDX-2.3", packages: [] });
    await orasAttach(dir, signedRef, SARIF, sarif([["CVE-2024-3333", "9.8"]]));
    const anon = { resolve: () => Promise.resolve(undefined) };
    const spec = (src: Reg, dst: Reg, copyReferrers: boolean) => ({
      schedule: "@daily",
      source: { registry: src.host },
      destination: { registry: dst.host, repositoryPrefix: "mirror", auth: { method: "anonymous" as const } },
      images: [{ name: "app", tags: ["signed", "unsigned"] }],
      validation: {
        cosign: { enabled: true, publicKey: pub },
        vulnerabilityGate: { enabled: true, maxSeverity: "critical" as const, requireCveReport: false },
        sbomGate: { enabled: false },
      },
      ...(copyReferrers ? { copyReferrers: { enabled: true } } : {}),
    });
    const run = async (s: ReturnType<typeof spec>, dryRun = false) => {
      const events: { type: string; text: string }[] = [];
      const report = await syncImageSync(s, {
        sourceCredentials: anon,
        destinationCredentials: anon,
        dryRun,
        onEvent: (e) => events.push({ type: e.type, text: eventMessage(e) }),
      });
      return { report, events };
    };

    // Dry run: the plan, gates included, nothing written.
    const plan = await run(spec(debian, api, true), true);
    const [planSigned, planUnsigned] = plan.report.images[0].tags;
    assert.equal(planSigned.action, "failed", "the critical CVE blocks it");
    assert.equal(planSigned.failedGate, "vulnerability");
    assert.equal(planUnsigned.failedGate, "cosign");
    assert.equal((await getManifest(api, "mirror/app", "signed")).status, 404);

    // Without the vulnerability gate the signed image passes (cosign, key).
    const relaxed = spec(debian, api, true);
    relaxed.validation.vulnerabilityGate.enabled = false;
    const first = await run(relaxed);
    const [ok, blocked] = first.report.images[0].tags;
    assert.deepEqual([ok.action, ok.verified, ok.referrers?.copied], ["copied", true, 3], JSON.stringify(ok));
    assert.deepEqual([blocked.action, blocked.reason, blocked.failedGate], [
      "failed",
      "ValidationFailed",
      "cosign",
    ]);
    assert.match(blocked.error!, /^validation failed: cosign verification failed: no signatures found for /);
    const status = statusFromReport(first.report);
    assert.deepEqual(
      status.images[0].tags!.map((t) => [t.tag, t.synced, t.verified, t.validationError?.slice(0, 27)]),
      [["signed", true, true, undefined], ["unsigned", false, false, "cosign verification failed:"]],
    );
    const types = first.events.map((e) => e.type);
    assert.ok(
      types.includes("ImageVerified") && types.includes("ValidationFailed") &&
        types.includes("ReferrersCopied"),
    );
    assert.match(first.events.find((e) => e.type === "ImageVerified")!.text, /^Validation passed for /);
    assert.match(
      first.events.find((e) => e.type === "ValidationFailed")!.text,
      new RegExp(
        `^Validation failed for ${debian.host}/app:unsigned: cosign verification failed: no signatures found`,
      ),
    );
    assert.equal(
      (await getManifest(api, "mirror/app", "unsigned")).status,
      404,
      "a failing tag is not copied",
    );

    // The copy at the API registry passes the same gates there (signature and SBOM arrived).
    using client = new RegistryClient();
    const there = await runGates(client, parseReference(`${api.host}/mirror/app@${signed.digest}`), {
      config: { cosign: { enabled: true, publicKey: pub }, sbomGate: { enabled: true } },
    });
    assert.equal(there.verified, true, JSON.stringify(there));

    // Next sync: up to date, nothing carried again; a new referrer at the source arrives.
    await orasAttach(dir, signedRef, CYCLONEDX, { bomFormat: "CycloneDX" });
    const second = await run(relaxed);
    const again = second.report.images[0].tags[0];
    assert.deepEqual([again.action, again.referrers?.copied, again.referrers?.upToDate], [
      "up-to-date",
      1,
      3,
    ]);

    // And back: from the API registry to Debian's (fallback tags written there).
    const back = spec(api, debian, true);
    back.images = [{ name: "mirror/app", tags: ["signed"] }];
    back.destination.repositoryPrefix = "back";
    back.validation.vulnerabilityGate.enabled = false;
    const returned = await run(back);
    const r = returned.report.images[0].tags[0];
    assert.equal(r.action, "copied", JSON.stringify(r));
    assert.ok(
      (r.referrers?.fallbackTags ?? []).includes(signed.digest.replace(":", "-")),
      JSON.stringify(r.referrers),
    );
    const backGates = await runGates(
      client,
      parseReference(`${debian.host}/back/mirror/app@${signed.digest}`),
      {
        config: { cosign: { enabled: true, publicKey: pub }, sbomGate: { enabled: true } },
      },
    );
    assert.equal(backGates.verified, true, JSON.stringify(backGates));
  } finally {
    await debian.stop();
    await api.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("operator end to end: gates and copyReferrers on the harness apiserver — status fields, Events, metrics (promtool)", async () => {
  const { startKube } = await import("./harness/kube.ts");
  const op = await import("./harness/operator.ts");
  const kube = await startKube();
  const src = await startRegistry("plain");
  const dst = await startReferrersRegistry();
  const dir = await keyDir();
  let operator: Awaited<ReturnType<typeof op.startOperator>> | undefined;
  try {
    await op.applyCrd(kube);
    await op.createNamespace(kube, "supply");
    const pub = await Deno.readTextFile(`${dir}/cosign.pub`);
    const signed = await pushImage(src, { repository: "app", tag: "signed" }, { seed: 71 });
    await pushImage(src, { repository: "app", tag: "unsigned" }, { seed: 72 });
    await cosignSign(dir, `${src.host}/app@${signed.digest}`);
    await orasAttach(dir, `${src.host}/app@${signed.digest}`, SPDX, { spdxVersion: "SPDX-2.3" });
    operator = await op.startOperator(kube);
    await kube.apply(op.imageSync("supply", "gated", {
      schedule: "@every 1h",
      source: { registry: src.host },
      destination: { registry: dst.host, auth: { method: "anonymous" }, repositoryPrefix: "mirror" },
      images: [{ name: "app", tags: ["signed", "unsigned"] }],
      validation: { cosign: { enabled: true, publicKey: pub }, sbomGate: { enabled: true } },
      copyReferrers: { enabled: true },
    }));
    const o = await op.waitForReady(kube, "supply", "gated", {
      ok: (c) => c.status === "False",
      logs: () => operator!.log(),
    });
    const tags = o.status!.images![0].tags! as Record<string, unknown>[];
    assert.deepEqual(tags.map((t) => [t.tag, t.synced, t.verified]), [["signed", true, true], [
      "unsigned",
      false,
      false,
    ]]);
    assert.match(String(tags[1].validationError), /^cosign verification failed: no signatures found for /);
    assert.equal(tags[1].error, `validation failed: ${tags[1].validationError}`);
    assert.equal(tags[0].validationError, undefined);

    const verified = await op.waitForEvent(kube, "supply", "gated", "ImageVerified");
    assert.equal(verified.type, "Normal");
    assert.equal(
      verified.message.startsWith(`Validation passed for ${src.host}/app:signed`),
      true,
      verified.message,
    );
    const failed = await op.waitForEvent(kube, "supply", "gated", "ValidationFailed");
    assert.equal(failed.type, "Warning");
    assert.match(
      failed.message,
      new RegExp(`^Validation failed for ${src.host}/app:unsigned: cosign verification failed:`),
    );
    const carried = await op.waitForEvent(kube, "supply", "gated", "ReferrersCopied");
    assert.match(
      carried.message,
      /^Copied 2 referrer\(s\) of .*application\/spdx\+json.*cosign tags sha256-/,
    );
    assert.equal(
      (await getManifest(dst, "mirror/app", "unsigned")).status,
      404,
      "the failing tag was not copied",
    );

    const text = await (await fetch(`${operator.url}/metrics`)).text();
    assert.match(text, /portage_images_verified_total\{name="gated",namespace="supply"\} 1/);
    assert.match(
      text,
      /portage_images_validation_failed_total\{name="gated",namespace="supply",gate="validation"\} 1/,
    );
    assert.match(
      text,
      /portage_image_info\{name="gated",namespace="supply",synced="1",failed="1",total="2"\} 1/,
    );
    const checked = await promtoolCheckMetrics(text);
    assert.equal(checked.code, 0, checked.output);
  } finally {
    await operator?.stop();
    await src.stop();
    await dst.stop();
    await kube.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("portager sync -f --dry-run: gates and copyReferrers in the plan (text and JSON), nothing written", async () => {
  const src = await startRegistry("plain");
  const dst = await startReferrersRegistry();
  const dir = await keyDir();
  try {
    const img = await pushImage(src, { repository: "app", tag: "signed" }, { seed: 81 });
    await pushImage(src, { repository: "app", tag: "unsigned" }, { seed: 82 });
    await cosignSign(dir, `${src.host}/app@${img.digest}`);
    await orasAttach(dir, `${src.host}/app@${img.digest}`, SPDX, { spdxVersion: "SPDX-2.3" });
    const pub = (await Deno.readTextFile(`${dir}/cosign.pub`)).trim().split("\n").map((l) => `        ${l}`)
      .join("\n");
    await Deno.writeTextFile(
      `${dir}/gated.yaml`,
      `apiVersion: portager.portager.io/v1alpha1
kind: ImageSync
metadata:
  name: gated
spec:
  schedule: "@every 1h"
  source: { registry: "${src.host}" }
  destination: { registry: "${dst.host}", auth: { method: anonymous } }
  images: [{ name: app, tags: [signed, unsigned] }]
  copyReferrers: { enabled: true }
  validation:
    cosign:
      enabled: true
      publicKey: |
${pub}
`,
    );
    const mark = (await dst.flushLog()).length;
    const cli = async (extra: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--quiet", "main.ts", "sync", "-f", `${dir}/gated.yaml`, "--dry-run", ...extra],
        cwd: new URL("..", import.meta.url).pathname,
        env: { NO_COLOR: "1", DOCKER_CONFIG: dir },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
    };
    const text = await cli([]);
    assert.notEqual(text.code, 0, "a tag would fail");
    assert.match(
      text.stdout,
      /FAILED .*app:unsigned +ValidationFailed: validation failed: cosign verification failed:/,
    );
    assert.match(text.stdout, /would copy .*app:signed/);
    const json = await cli(["-o", "json"]);
    const tags = JSON.parse(json.stdout).imageSyncs[0].report.images[0].tags;
    assert.deepEqual(tags.map((t: Record<string, unknown>) => [t.tag, t.action, t.verified, t.failedGate]), [
      ["signed", "would-copy", true, undefined],
      ["unsigned", "failed", false, "cosign"],
    ]);
    // the SBOM referrer and the .sig tag would travel with the signed image
    assert.equal(tags[0].referrers.copied, 2);
    const writes = (await dst.flushLog()).slice(mark).filter((l) => /^(PUT|POST|PATCH|DELETE) /.test(l));
    assert.deepEqual(writes, [], "a dry run writes nothing");
  } finally {
    await src.stop();
    await dst.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("keyless cosign gate through both registries: .sig layout and bundle referrer from a test Sigstore", async () => {
  const { testSigstore, ISSUER, pushSigLayout, simpleSigningPayload } = await import("./harness/sigstore.ts");
  const { COSIGN_SIGN_PREDICATE } = await import("../src/gates/cosign.ts");
  const { pushReferrer } = await import("../src/oci/referrers.ts");
  const sigstore = await testSigstore();
  const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  for (const [label, start] of REGISTRIES) {
    const reg = await start();
    try {
      using client = new RegistryClient();
      const keyless = (issuer = ISSUER, trustedRoot: unknown = sigstore.trustedRoot) => ({
        config: { cosign: { enabled: true, keylessIssuer: issuer } },
        trustedRoot,
      });
      // The .sig layout, as cosign writes it for a keyless signature.
      const a = await pushImage(reg, { repository: "keyless/app", tag: "a" }, { seed: 91 });
      const sig = await sigstore.sign(simpleSigningPayload(a.digest));
      await pushSigLayout(reg, { repository: "keyless/app", digest: a.digest, signature: sig });
      const subjectA = parseReference(`${reg.host}/keyless/app@${a.digest}`);
      const ok = await runGates(client, subjectA, keyless());
      assert.equal(ok.verified, true, `${label}: ${JSON.stringify(ok)}`);
      assert.match(ok.results[0].detail, /keyless signature by dev@example.com from issuer/);
      const wrongIssuer = await runGates(client, subjectA, keyless("https://accounts.google.com"));
      assert.equal(wrongIssuer.failed?.reason, "SignatureInvalid", label);
      // The shipped public-good root does not trust the test CA.
      const publicGood = await runGates(client, subjectA, { config: keyless().config });
      assert.equal(publicGood.verified, false, label);
      assert.match(publicGood.failed!.detail, /certificate|chain/i);

      // The Sigstore bundle referrer (DSSE statement naming B).
      const b = await pushImage(reg, { repository: "keyless/app", tag: "b" }, { seed: 92 });
      const bundle = await sigstore.signDsse({
        _type: "https://in-toto.io/Statement/v1",
        subject: [{ name: "app", digest: { sha256: b.digest.slice(7) } }],
        predicateType: COSIGN_SIGN_PREDICATE,
        predicate: {},
      });
      const bundleBlob = await pushBlob(reg, "keyless/app", enc((bundle as { bundle: unknown }).bundle));
      const empty = await pushBlob(reg, "keyless/app", new TextEncoder().encode("{}"));
      const BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json";
      await pushReferrer(client, parseReference(`${reg.host}/keyless/app`, { defaultTag: false }), {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        bytes: enc({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          artifactType: BUNDLE,
          config: { mediaType: "application/vnd.oci.empty.v1+json", ...empty },
          layers: [{ mediaType: BUNDLE, ...bundleBlob }],
          subject: { mediaType: b.mediaType, digest: b.digest, size: b.manifestBytes.byteLength },
        }),
      });
      const viaBundle = await runGates(
        client,
        parseReference(`${reg.host}/keyless/app@${b.digest}`),
        keyless(),
      );
      assert.equal(viaBundle.verified, true, `${label}: ${JSON.stringify(viaBundle)}`);
      assert.match(viaBundle.results[0].detail, /\(referrer sha256:/);
    } finally {
      await reg.stop();
    }
  }
});

Deno.test("cosign key gate with keys imported into the real cosign: P-384, P-521, RSA and Ed25519 (cosign signs Ed25519ph), tag and bundle forms", async () => {
  const { generateKeyPairSync } = await import("node:crypto");
  const reg = await startRegistry("plain");
  let seed = 100;
  try {
    for (const kind of ["P-384", "P-521", "RSA", "Ed25519"] as const) {
      const dir = await Deno.makeTempDir({ prefix: "portager-gates-test-" });
      try {
        const pair = kind === "RSA"
          ? generateKeyPairSync("rsa", { modulusLength: 2048 })
          : kind === "Ed25519"
          ? generateKeyPairSync("ed25519")
          : generateKeyPairSync("ec", { namedCurve: kind === "P-384" ? "secp384r1" : "secp521r1" });
        await Deno.writeTextFile(
          `${dir}/priv.pem`,
          pair.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
        );
        await cosign(["import-key-pair", "--key", "priv.pem", "--output-key-prefix", "imported"], {
          cwd: dir,
          env: ENV,
          check: true,
        });
        const pub = await Deno.readTextFile(`${dir}/imported.pub`);
        for (const bundle of [false, true]) {
          const img = await pushImage(reg, { repository: "keys/app", tag: `${kind}-${bundle}` }, {
            seed: seed++,
          });
          await cosignSign(dir, `${reg.host}/keys/app@${img.digest}`, { key: "imported.key", bundle });
          const out = await gates(reg.host, "keys/app", img.digest, {
            cosign: { enabled: true, publicKey: pub },
          });
          assert.equal(out.verified, true, `${kind} bundle=${bundle}: ${JSON.stringify(out)}`);
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }
  } finally {
    await reg.stop();
  }
});

Deno.test("vulnerability gate: a report over the size cap fails (ReportInvalid) before a byte of it is read", async () => {
  const { MAX_REPORT_BYTES } = await import("../src/gates/mod.ts");
  const reg = await startRegistry("plain");
  const dir = await Deno.makeTempDir({ prefix: "portager-gates-test-" });
  try {
    const img = await pushImage(reg, { repository: "big/app", tag: "v1" }, { seed: 95 });
    const padding = "x".repeat(MAX_REPORT_BYTES);
    await orasAttach(dir, `${reg.host}/big/app@${img.digest}`, SARIF, {
      version: "2.1.0",
      runs: [],
      padding,
    });
    const mark = (await reg.flushLog()).length;
    const out = await gates(reg.host, "big/app", img.digest, { vulnerabilityGate: { enabled: true } });
    assertFailed(
      out,
      "vulnerability",
      "ReportInvalid",
      new RegExp(`more than the ${MAX_REPORT_BYTES} bytes read`),
    );
    const log = (await reg.flushLog()).slice(mark);
    assert.ok(log.some((l) => /^GET \/v2\/big\/app\/manifests\/sha256:/.test(l)), "its manifest was read");
    const blobReads = log.filter((l) => /^GET \/v2\/big\/app\/blobs\//.test(l));
    assert.deepEqual(blobReads, [], "the oversized report was not downloaded");
  } finally {
    await reg.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
