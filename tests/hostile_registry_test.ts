/**
 * Attacks of issue 14 on the OCI engine, each against a hostile registry written for it
 * (tests/harness/hostile_registry.ts), with a real registry from the harness where a copy
 * needs a destination: a crafted index that would exhaust memory, bodies dripped a byte at a
 * time, a layer digest that is a path, a storage host asking for the registry's credentials.
 */

import assert from "node:assert/strict";
import { Copier, OciError, parseReference, RegistryClient, staticCredentials } from "../src/oci/mod.ts";
import { addCraftedIndex, drip, startHostileRegistry } from "./harness/hostile_registry.ts";
import { startRegistry } from "./harness/registry.ts";

/** Resolves with the promise's outcome, or with "hung" after `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | Error | "hung"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<"hung">((resolve) => timer = setTimeout(() => resolve("hung"), ms));
  try {
    return await Promise.race([p.catch((e: Error) => e), hung]);
  } finally {
    clearTimeout(timer);
  }
}

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

/** The error copying `a/b:1` from one registry to the other ends in (the copy must fail). */
async function copyFails(client: RegistryClient, from: string, to: string): Promise<OciError> {
  const err = await new Copier(client).copy(parseReference(`${from}/a/b:1`), parseReference(`${to}/a/b:1`))
    .then(() => new Error("the copy succeeded"), (e) => e);
  assert(err instanceof OciError, String(err));
  return err;
}

Deno.test("a crafted index of 48 distinct 4 MiB children: the dry run fails cleanly, memory stays small", async () => {
  const reg = startHostileRegistry();
  try {
    addCraftedIndex(reg, "crafted");
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("./harness/dry_run_child.ts", import.meta.url).pathname,
        `${reg.host}/evil/app:crafted`,
        `${reg.host}/mirror/app:copy`,
      ],
      stdout: "piped",
      stderr: "piped",
    });
    const out = await child.output();
    const text = new TextDecoder().decode(out.stdout).trim();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const got = JSON.parse(text.split("\n").at(-1)!);
    console.log(`dry run of the crafted index: ${JSON.stringify(got)}`);
    assert.equal(got.ok, false);
    assert.equal(got.reason, "ManifestTreeTooLarge");
    assert.match(got.message, /maxManifestBytes/);
    const childGets = reg.seen.filter((s) => s.method === "GET" && s.path.includes("/manifests/sha256:"));
    assert(childGets.length <= 1, `children read before the cap: ${childGets.length}`);
  } finally {
    await reg.stop();
  }
});

Deno.test("a manifest dripped a byte per 200 ms fails at the request deadline instead of hanging", async () => {
  const reg = startHostileRegistry();
  const stopped = new AbortController();
  const dst = await startRegistry("plain");
  try {
    const config = reg.addBlob(new TextEncoder().encode("{}"), "application/vnd.oci.image.config.v1+json");
    const m = reg.addManifest(
      { schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [] },
      OCI_MANIFEST,
      "1",
    );
    const bytes = reg.manifests.get(m.digest)!.bytes as Uint8Array;
    reg.intercept = (req, url) =>
      req.method === "GET" && url.pathname.includes("/manifests/")
        ? new Response(drip(bytes, 200, stopped.signal), { headers: { "content-type": OCI_MANIFEST } })
        : undefined;
    // The idle timeout (re-armed per byte) alone never fires; the request deadline does.
    const client = new RegistryClient({ maxAttempts: 1, timeoutMs: 5_000, requestDeadlineMs: 1_500 });
    const started = performance.now();
    const outcome = await within(
      new Copier(client).copy(
        parseReference(`${reg.host}/slow/app:1`),
        parseReference(`${dst.host}/slow/app:1`),
      ),
      15_000,
    );
    assert(outcome instanceof OciError, `expected a Timeout, got ${outcome}`);
    assert.equal(outcome.reason, "Timeout");
    assert.match(outcome.message, /1500 ms request deadline passed/);
    assert(performance.now() - started < 10_000);
  } finally {
    stopped.abort();
    await reg.stop();
    await dst.stop();
  }
});

Deno.test("a blob dripped a byte per 200 ms fails at the minimum rate, and at a per-sync deadline signal", async () => {
  const reg = startHostileRegistry();
  const stopped = new AbortController();
  const dst = await startRegistry("plain");
  try {
    const config = reg.addBlob(new TextEncoder().encode("{}"), "application/vnd.oci.image.config.v1+json");
    const layer = reg.addBlob(new Uint8Array(4096).fill(7));
    reg.addManifest(
      { schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [layer] },
      OCI_MANIFEST,
      "1",
    );
    reg.intercept = (req, url) =>
      req.method === "GET" && url.pathname.endsWith(layer.digest)
        ? new Response(drip(reg.blobs.get(layer.digest)!, 200, stopped.signal), {
          headers: { "content-length": "4096" },
        })
        : undefined;
    const src = parseReference(`${reg.host}/slow/blob:1`);
    const rate = new RegistryClient({ maxAttempts: 1, minBytesPerSecond: 1024, rateWindowMs: 1_000 });
    const slow = await within(new Copier(rate).copy(src, parseReference(`${dst.host}/slow/blob:1`)), 15_000);
    assert(slow instanceof OciError && slow.reason === "Timeout", `expected a Timeout, got ${slow}`);
    assert.match(slow.message, /below the minimum of 1024 bytes\/s/);

    const patient = new RegistryClient({ maxAttempts: 1 });
    const deadline = await within(
      new Copier(patient).copy(src, parseReference(`${dst.host}/slow/blob:2`), {
        signal: AbortSignal.timeout(1_500),
      }),
      15_000,
    );
    assert(
      deadline instanceof OciError && deadline.reason === "Timeout",
      `expected a Timeout, got ${deadline}`,
    );
    assert.match(deadline.message, /deadline passed/);
  } finally {
    stopped.abort();
    await reg.stop();
    await dst.stop();
  }
});

Deno.test("a layer digest that is a path is refused when the manifest is parsed; no request goes to that path", async () => {
  const reg = startHostileRegistry();
  const dst = startHostileRegistry();
  try {
    const config = reg.addBlob(new TextEncoder().encode("{}"), "application/vnd.oci.image.config.v1+json");
    const evil = {
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      digest: "../../../../v2/victim/manifests/prod",
      size: 1,
    };
    reg.addManifest({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [evil] }, OCI_MANIFEST, "1");
    const client = new RegistryClient({
      maxAttempts: 1,
      credentials: staticCredentials({ [dst.host]: { username: "dest", password: "secret" } }),
    });
    const err = await copyFails(client, reg.host, dst.host);
    assert.equal(err.reason, "ManifestInvalid");
    assert.match(err.message, /layers\[0\] has an invalid digest/);
    for (const s of [...reg.seen, ...dst.seen]) assert(!s.path.includes("victim"), `${s.method} ${s.path}`);
  } finally {
    await reg.stop();
    await dst.stop();
  }
});

Deno.test("a blob storage host answering 401 with its own realm gets no credentials: ForeignChallenge", async () => {
  const src = startHostileRegistry();
  const storage = startHostileRegistry("localhost");
  const dst = await startRegistry("plain");
  try {
    const config = src.addBlob(new TextEncoder().encode("{}"), "application/vnd.oci.image.config.v1+json");
    const layer = src.addBlob(new Uint8Array(100).fill(1));
    src.addManifest(
      { schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [layer] },
      OCI_MANIFEST,
      "1",
    );
    const basic = `Basic ${btoa("alice:pw")}`;
    src.intercept = (req, url) => {
      if (req.headers.get("authorization") !== basic) {
        return new Response(null, { status: 401, headers: { "www-authenticate": 'Basic realm="src"' } });
      }
      return req.method === "GET" && url.pathname.includes("/blobs/")
        ? new Response(null, { status: 307, headers: { location: `${storage.origin}/store${url.pathname}` } })
        : undefined;
    };
    storage.intercept = (_req, url) =>
      url.pathname === "/token" ? Response.json({ token: "stolen" }) : new Response(null, {
        status: 401,
        headers: { "www-authenticate": `Bearer realm="${storage.origin}/token",service="store"` },
      });
    const client = new RegistryClient({
      maxAttempts: 1,
      credentials: staticCredentials({ [src.host]: { username: "alice", password: "pw" } }),
    });
    const err = await copyFails(client, src.host, dst.host);
    assert.equal(err.reason, "ForeignChallenge");
    assert.match(err.message, new RegExp(`${storage.host} asked for credentials`));
    assert(storage.seen.length > 0, "the storage host was reached");
    assert(storage.seen.every((s) => s.authorization === null), JSON.stringify(storage.seen));
    assert(
      !storage.seen.some((s) => s.path.startsWith("/token")),
      "no token request to the storage host's realm",
    );
  } finally {
    await src.stop();
    await storage.stop();
    await dst.stop();
  }
});
