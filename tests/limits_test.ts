/**
 * The limit and trust flags end to end (issue 14 items 3, 4, 9; issue 13's trusted root), through
 * the real command lines: `portager sync -f` against a hostile registry and a real one, and
 * `portager run` against the harness's apiserver.
 * - `--max-manifests` / `--max-manifest-bytes` make a crafted index fail ManifestTreeTooLarge;
 *   `--request-timeout` ends a manifest dripped a byte at a time; `--max-tags` bounds a listing.
 * - `--sigstore-trusted-root` reaches the cosign gate: a keyless signature from a private
 *   Sigstore passes only with it.
 * - `--sync-timeout` ends a slow-drip sync with reason Timeout and frees its worker, so another
 *   ImageSync syncs while two slow ones would otherwise hold both workers.
 * - A registry's 64 KiB error body is capped in status (condition and per-tag messages).
 */

import assert from "node:assert/strict";
import { startKube } from "./harness/kube.ts";
import { pushImage } from "./harness/fixtures.ts";
import { addCraftedIndex, drippingManifest, startHostileRegistry } from "./harness/hostile_registry.ts";
import {
  applyCrd,
  condition,
  createNamespace,
  DENO,
  eventsFor,
  getImageSync,
  imageSync,
  type OperatorProcess,
  spawnMainRun,
  waitFor,
  waitForEvent,
  waitForReady,
} from "./harness/operator.ts";
import { type RegistryServer, startRegistry } from "./harness/registry.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const ISSUER = "https://token.actions.githubusercontent.com";
const TRUNCATED = "… (truncated)";

/** Runs `portager ARGS` (main.ts) with an empty environment apart from what Deno needs. */
async function portager(
  args: string[],
  extraEnv: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(DENO, {
    args: ["run", "-A", "--quiet", "main.ts", ...args],
    cwd: ROOT,
    stdin: "null",
    clearEnv: true,
    env: {
      NO_COLOR: "1",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
      ...extraEnv,
    },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** An ImageSync spec syncing `image:tag` from `source` to `destination` (anonymous). */
function specFor(
  registries: { source: string; destination: string; prefix?: string },
  image: { name: string; tag: string },
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    schedule: "@every 1h",
    source: { registry: registries.source },
    destination: {
      registry: registries.destination,
      ...(registries.prefix ? { repositoryPrefix: registries.prefix } : {}),
      auth: { method: "anonymous" },
    },
    images: [{ name: image.name, tags: [image.tag] }],
    ...extra,
  };
}

/** Writes an ImageSync file (JSON is YAML) for `sync -f`; returns its path. */
async function writeImageSync(dir: string, name: string, spec: Record<string, unknown>): Promise<string> {
  const path = `${dir}/${name}.yaml`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      apiVersion: "portager.portager.io/v1alpha1",
      kind: "ImageSync",
      metadata: { name },
      spec,
    }),
  );
  return path;
}

interface JsonTag {
  tag: string;
  action: string;
  reason?: string;
  error?: string;
  verified?: boolean;
  failedGate?: string;
  validationError?: string;
}

/** `sync -f FILE --dry-run -o json` with `flags`; the one ImageSync's tags. */
async function dryRun(file: string, flags: string[] = [], env?: Record<string, string>): Promise<JsonTag[]> {
  const r = await portager(["sync", "-f", file, "--dry-run", "-o", "json", ...flags], env);
  let out;
  try {
    out = JSON.parse(r.stdout);
  } catch {
    throw new Error(`sync -f ${flags.join(" ")} printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  assert.equal(out.imageSyncs.length, 1, r.stdout);
  assert.equal(out.imageSyncs[0].error, undefined, r.stdout);
  return out.imageSyncs[0].report.images[0].tags;
}

/**
 * Pushes `keyless/app:signed` to `reg` with a keyless cosign signature (the `.sig` layout)
 * from a private test Sigstore; returns that Sigstore's `trusted_root.json`.
 */
async function pushKeylessSigned(reg: RegistryServer): Promise<Record<string, unknown>> {
  const { testSigstore, pushSigLayout, simpleSigningPayload } = await import("./harness/sigstore.ts");
  const sigstore = await testSigstore();
  const image = await pushImage(reg, { repository: "keyless/app", tag: "signed" }, { seed: 141 });
  const signature = await sigstore.sign(simpleSigningPayload(image.digest));
  await pushSigLayout(reg, { repository: "keyless/app", digest: image.digest, signature });
  return sigstore.trustedRoot;
}

Deno.test("sync -f: --max-manifests and --max-manifest-bytes fail a crafted index with ManifestTreeTooLarge; --request-timeout ends a dripped manifest; --max-tags bounds a listing; --sigstore-trusted-root lets a private Sigstore's keyless signature pass", async () => {
  const evil = startHostileRegistry();
  const reg = await startRegistry("plain");
  const stopped = new AbortController();
  const dir = await Deno.makeTempDir({ prefix: "portager-limits-" });
  try {
    // 48 small children: within the default limits, so the flags make the difference
    addCraftedIndex(evil, "crafted", { children: 48, childBytes: 2048 });
    const crafted = await writeImageSync(
      dir,
      "crafted",
      specFor({ source: evil.host, destination: reg.host, prefix: "mirror" }, {
        name: "evil/app",
        tag: "crafted",
      }),
    );
    const defaults = await dryRun(crafted);
    assert.equal(defaults[0].action, "would-copy", JSON.stringify(defaults));
    const manifests = await dryRun(crafted, ["--max-manifests=10"]);
    assert.equal(manifests[0].action, "failed");
    assert.equal(manifests[0].reason, "ManifestTreeTooLarge", JSON.stringify(manifests));
    assert.match(manifests[0].error!, /more than 10 manifests \(the maxManifests limit\)/);
    const bytes = await dryRun(crafted, ["--max-manifest-bytes=4Ki"]);
    assert.equal(bytes[0].reason, "ManifestTreeTooLarge", JSON.stringify(bytes));
    assert.match(bytes[0].error!, /maxManifestBytes/);
    // the environment variable works as the flag; a bad value is a usage error
    const env = await dryRun(crafted, [], { PORTAGER_MAX_MANIFESTS: "10" });
    assert.equal(env[0].reason, "ManifestTreeTooLarge", JSON.stringify(env));
    const bad = await portager(["sync", "-f", crafted, "--dry-run", "-o", "json", "--max-manifests=abc"]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--max-manifests must be a whole number/);

    // --request-timeout bounds a manifest dripped a byte per 200 ms (the default would wait 2 min)
    const dripEvil = drippingManifest(evil, { tag: "1", stopped: stopped.signal });
    evil.intercept = (req, url) => url.pathname.startsWith("/v2/drip/") ? dripEvil(req, url) : undefined;
    const dripping = await writeImageSync(
      dir,
      "dripping",
      specFor({ source: evil.host, destination: reg.host, prefix: "mirror" }, { name: "drip/app", tag: "1" }),
    );
    const started = performance.now();
    const timedOut = await dryRun(dripping, ["--request-timeout=1s"]);
    assert.equal(timedOut[0].reason, "Timeout", JSON.stringify(timedOut));
    assert.match(timedOut[0].error!, /1000 ms request deadline passed/);
    assert.ok(performance.now() - started < 20_000);

    // --max-tags bounds a tag listing
    for (const [i, tag] of ["1.0.0", "1.1.0", "1.2.0"].entries()) {
      await pushImage(reg, { repository: "many/app", tag }, { seed: 150 + i });
    }
    const many = await writeImageSync(dir, "many", {
      ...specFor({ source: reg.host, destination: reg.host, prefix: "mirror" }, {
        name: "many/app",
        tag: "",
      }),
      images: [{ name: "many/app", semver: ">=1.0.0" }],
    });
    const listed = await portager(["sync", "-f", many, "--dry-run", "-o", "json", "--max-tags=2"]);
    const selection = JSON.parse(listed.stdout).imageSyncs[0].report.images[0].selection;
    assert.equal(selection.error?.reason, "TagListTooLarge", listed.stdout);
    assert.equal((await dryRun(many)).length, 3, "within the default, all three tags");

    const trustedRoot = await pushKeylessSigned(reg);
    const rootFile = `${dir}/trusted_root.json`;
    await Deno.writeTextFile(rootFile, JSON.stringify(trustedRoot));
    const keyless = await writeImageSync(
      dir,
      "keyless",
      specFor({ source: reg.host, destination: reg.host, prefix: "mirror" }, {
        name: "keyless/app",
        tag: "signed",
      }, {
        validation: { cosign: { enabled: true, keylessIssuer: ISSUER } },
      }),
    );
    // the public-good root does not trust the private CA
    const without = await dryRun(keyless);
    assert.equal(without[0].action, "failed", JSON.stringify(without));
    assert.equal(without[0].failedGate, "cosign");
    const withRoot = await dryRun(keyless, [`--sigstore-trusted-root=${rootFile}`]);
    assert.equal(withRoot[0].action, "would-copy", JSON.stringify(withRoot));
    assert.equal(withRoot[0].verified, true);
  } finally {
    stopped.abort();
    await evil.stop();
    await reg.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("portager run: --sync-timeout ends two slow-drip syncs with reason Timeout and frees their workers; a 64 KiB registry error is capped in status; --sigstore-trusted-root reaches the gate", async () => {
  const kube = await startKube();
  const src = await startRegistry("plain");
  const dst = await startRegistry("plain");
  const slow = startHostileRegistry();
  const stopped = new AbortController();
  const dir = await Deno.makeTempDir({ prefix: "portager-limits-op-" });
  const NS = "limits";
  let op: OperatorProcess | undefined;
  try {
    // A manifest of ~2 KiB dripped a byte per 200 ms takes ~7 min; the request deadline (2 min)
    // would end it only after 2 min, so only the sync deadline can end it soon.
    const dripSlow = drippingManifest(slow, { tag: "1", stopped: stopped.signal, padBytes: 2048 });
    const errorBody = JSON.stringify({ errors: [{ code: "DENIED", message: "no! ".repeat(15 * 1024) }] });
    assert.ok(errorBody.length > 60 * 1024 && errorBody.length < 64 * 1024);
    slow.intercept = (req, url) => {
      if (req.method !== "GET" || !url.pathname.includes("/manifests/")) return undefined;
      if (url.pathname.startsWith("/v2/loud/")) {
        return new Response(errorBody, { status: 403, headers: { "content-type": "application/json" } });
      }
      return dripSlow(req, url);
    };
    await pushImage(src, { repository: "team/app", tag: "1.0" }, { seed: 140 });
    const trustedRoot = await pushKeylessSigned(src);
    const rootFile = `${dir}/trusted_root.json`;
    await Deno.writeTextFile(rootFile, JSON.stringify(trustedRoot));

    await applyCrd(kube);
    await createNamespace(kube, NS);
    op = spawnMainRun([
      `--kubeconfig=${kube.kubeconfigPath}`,
      `--namespace=${NS}`,
      "--leader-elect=false",
      "--health-probe-bind-address=0",
      "--max-concurrent-syncs=2",
      "--sync-timeout=3s",
      `--sigstore-trusted-root=${rootFile}`,
      "--log-format=text",
    ], `${dir}/operator.log`);
    const logs = () => Deno.readTextFileSync(`${dir}/operator.log`);
    const spec = (registry: string, name: string, tag: string, extra?: Record<string, unknown>) =>
      specFor({ source: registry, destination: dst.host }, { name, tag }, extra);

    // Two slow ImageSyncs take both workers.
    await kube.apply(imageSync(NS, "slow-a", spec(slow.host, "slow/a", "1")));
    await kube.apply(imageSync(NS, "slow-b", spec(slow.host, "slow/b", "1")));
    for (const name of ["slow-a", "slow-b"]) {
      await waitFor(`${name} Syncing`, async () => {
        const o = await getImageSync(kube, NS, name);
        return condition(o, "Syncing")?.status === "True" ? true : undefined;
      }, { timeoutMs: 60_000, describe: logs });
    }
    // Each ends at its deadline with reason Timeout, freeing its worker for the next ImageSync.
    const created = performance.now();
    await kube.apply(imageSync(NS, "good", spec(src.host, "team/app", "1.0")));
    const good = await waitForReady(kube, NS, "good", {
      ok: (c) => c.status === "True",
      timeoutMs: 30_000,
      logs,
    });
    const waited = (performance.now() - created) / 1000;
    console.log(
      `the good ImageSync synced ${waited.toFixed(1)} s after it was created, beside two slow ones`,
    );
    assert.equal(good.status?.syncedImages, 1);
    for (const name of ["slow-a", "slow-b"]) {
      const o = await waitForReady(kube, NS, name, {
        ok: (c) => c.reason === "Timeout",
        timeoutMs: 30_000,
        logs,
      });
      const ready = condition(o, "Ready")!;
      assert.equal(ready.status, "False");
      assert.match(
        ready.message,
        /^the sync did not finish within 3s \(the sync timeout, --sync-timeout\): 0 of 1 tag\(s\) synced/,
      );
      const event = await waitForEvent(kube, NS, name, "Timeout");
      assert.equal(event.type, "Warning");
    }

    // A registry error body of 60+ KiB: the status is still written, its messages capped.
    await kube.apply(imageSync(NS, "loud", spec(slow.host, "loud/app", "1")));
    const loud = await waitForReady(kube, NS, "loud", {
      ok: (c) => c.status === "False",
      timeoutMs: 30_000,
      logs,
    });
    const ready = condition(loud, "Ready")!;
    assert.equal(ready.reason, "SyncFailed");
    assert.ok(
      ready.message.length <= 32 * 1024 && ready.message.endsWith(TRUNCATED),
      ready.message.slice(0, 200),
    );
    assert.match(
      ready.message.slice(0, 300),
      /^1 of 1 image\(s\) failed to sync; first: loud\/app:1: registry \S+: access denied \(HTTP 403\) .*: DENIED: no! /,
    );
    const tag = loud.status!.images![0].tags![0];
    assert.equal(tag.reason, "Forbidden");
    assert.equal(tag.error!.length, 1024);
    assert.ok(tag.error!.endsWith(TRUNCATED));
    assert.match(
      tag.error!.slice(0, 300),
      /^copy failed: registry \S+: access denied \(HTTP 403\) .*: DENIED: no! /,
    );
    for (const e of await eventsFor(kube, NS, "loud")) assert.ok(e.message.length <= 1024, e.reason);

    // The flag's trusted root reaches the cosign gate of the operator's syncs.
    await kube.apply(
      imageSync(
        NS,
        "keyless",
        spec(src.host, "keyless/app", "signed", {
          validation: { cosign: { enabled: true, keylessIssuer: ISSUER } },
        }),
      ),
    );
    const keyless = await waitForReady(kube, NS, "keyless", { timeoutMs: 60_000, logs });
    assert.equal(condition(keyless, "Ready")!.status, "True", JSON.stringify(keyless.status));
    const verified = keyless.status!.images![0].tags![0] as { verified?: boolean };
    assert.equal(verified.verified, true);
  } finally {
    stopped.abort();
    await op?.kill("SIGTERM");
    await slow.stop();
    await src.stop();
    await dst.stop();
    await kube.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
