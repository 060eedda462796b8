// File mode (`portager serve -f DIR`): an ImageSync file removed while its copy is in flight
// stops the copy, on real registries with a throttled source (toxiproxy, 100 kB/s: a 3 MB layer
// takes ~30 s) — the store drops the key, the manager cancels its sync:
// - no manifest PUT at the destination, the layer never completes, no request after a settle;
// - serve's log says "sync cancelled" (info), never that the sync failed, finished or will be
//   retried; the state file forgets the ImageSync and no metric series of it remains.
// Fails with the cancel removed (Manager.#cancelRunning a no-op): the copy then runs on.
import assert from "node:assert/strict";
import { type PushedImage, pushImage } from "./harness/fixtures.ts";
import { spawnLineProcess } from "./harness/line_process.ts";
import { DENO, sleep, waitFor } from "./harness/operator.ts";
import { type RegistryServer, startRegistry } from "./harness/registry.ts";
import { tempDir } from "./harness/temp_dir.ts";
import { startToxiproxy } from "./harness/toxiproxy.ts";

const REPO = new URL("../", import.meta.url).pathname;
/** The source through toxiproxy at this rate (kB/s): the big layer is in flight for ~30 s. */
const RATE = 100;
const BIG_LAYER = 3_000_000;
const KEY = "default/doomed";

/** ImageSync `name` as a JSON file's text: `<src>/lib/<image>:v1` into `<dst>/<name>/<image>`. */
function imageSyncFile(name: string, opts: { src: string; dst: string; image: string }): string {
  return JSON.stringify({
    apiVersion: "portager.portager.io/v1alpha1",
    kind: "ImageSync",
    metadata: { name },
    spec: {
      schedule: "@every 1h",
      source: { registry: `${opts.src}/lib` },
      destination: { registry: opts.dst, repositoryPrefix: name, auth: { method: "anonymous" } },
      images: [{ name: opts.image, tags: ["v1"] }],
    },
  });
}

/** The destination's answered requests to `doomed/app`. */
async function requestsToApp(dst: RegistryServer): Promise<string[]> {
  return (await dst.flushLog()).filter((l) => l.includes(" /v2/doomed/app/"));
}

const manifestPuts = (lines: string[]) => lines.filter((l) => /^PUT \/v2\/.+\/manifests\/v1 20\d$/.test(l));

/** Serve's JSON log lines (stderr); a line that is not JSON is kept as its msg. */
function parsed(lines: readonly string[]): Array<Record<string, unknown>> {
  return lines.map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      return { msg: l };
    }
  });
}

/** `portager serve -f specs` from the source tree, JSON logs, metrics on a free port. */
function startServe(tmp: string, specs: string, statePath: string): ReturnType<typeof spawnLineProcess> {
  const env: Record<string, string> = { DOCKER_CONFIG: `${tmp}/docker`, NO_COLOR: "1" };
  for (const name of ["HOME", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const v = Deno.env.get(name);
    if (v !== undefined) env[name] = v;
  }
  return spawnLineProcess(DENO, [
    "run",
    "-A",
    "--quiet",
    "--config",
    `${REPO}deno.json`,
    `${REPO}main.ts`,
    "serve",
    "-f",
    specs,
    "--state-file",
    statePath,
    "--log-format",
    "json",
    "--metrics-addr",
    "127.0.0.1:0",
  ], { env });
}

Deno.test({
  name:
    "portager serve -f: a file removed mid-copy cancels its sync: no manifest, the layer never completes, logged as cancelled",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const src = await startRegistry("plain");
    const dst = await startRegistry("plain");
    const toxi = await startToxiproxy();
    await using tmp = await tempDir({ prefix: "portager-serve-removal-" });
    const specs = `${tmp.path}/specs`;
    const statePath = `${tmp.path}/state.json`;
    let serve: ReturnType<typeof spawnLineProcess> | undefined;
    try {
      await Deno.mkdir(specs);
      await Deno.mkdir(`${tmp.path}/docker`);
      const image: PushedImage = await pushImage(src, { repository: "lib/app", tag: "v1" }, {
        seed: 71,
        layers: [BIG_LAYER],
      });
      const proxy = await toxi.createProxy("src", src.host);
      await proxy.addToxic({ name: "bw", type: "bandwidth", attributes: { rate: RATE } });
      await Deno.writeTextFile(
        `${specs}/doomed.json`,
        imageSyncFile("doomed", { src: proxy.host, dst: dst.host, image: "app" }),
      );
      // another ImageSync in the folder, straight from the source: it goes on unaffected
      await pushImage(src, { repository: "lib/small", tag: "v1" }, { seed: 72 });
      await Deno.writeTextFile(
        `${specs}/keep.json`,
        imageSyncFile("keep", { src: src.host, dst: dst.host, image: "small" }),
      );

      serve = startServe(tmp.path, specs, statePath);
      const proc = serve;
      const log = () => proc.stderr.join("\n");
      const about = (key = KEY) => parsed(proc.stderr).filter((l) => l.imagesync === key);

      // the copy is in flight: an upload into doomed/app is open, the big layer streaming
      await waitFor("an upload into doomed/app to start", async () => {
        const lines = await requestsToApp(dst);
        return lines.some((l) => /^POST \/v2\/.+\/blobs\/uploads\/ 202$/.test(l)) || undefined;
      }, { timeoutMs: 60_000, describe: log });
      await sleep(1_000);
      assert.deepEqual(manifestPuts(await requestsToApp(dst)), [], "mid-copy: no manifest yet");
      await waitFor(
        "keep's sync",
        () => about("default/keep").some((l) => l.msg === "sync finished") || undefined,
        {
          timeoutMs: 30_000,
          describe: log,
        },
      );

      await Deno.remove(`${specs}/doomed.json`);
      await waitFor("the removal", () => about().some((l) => l.msg === "ImageSync removed") || undefined, {
        timeoutMs: 20_000,
        describe: log,
      });
      // unthrottled now: a copy that was not cancelled finishes quickly and PUTs its manifest
      await proxy.removeToxic("bw");
      const listening = parsed(proc.stderr).find((l) => l.msg === "serving /metrics /healthz /readyz");
      assert.ok(listening, log());
      const metricsUrl = `http://${listening.address}/metrics`;
      await waitFor("no reconcile in flight", async () => {
        const text = await (await fetch(metricsUrl)).text();
        return /^controller_runtime_active_workers\{controller="imagesync"\} 0$/m.test(text) || undefined;
      }, { timeoutMs: 60_000, describe: log });

      // the copy stopped: once settled, nothing more reaches the destination
      const seen = await requestsToApp(dst);
      await sleep(1_500);
      assert.deepEqual(await requestsToApp(dst), seen, "no request after the cancel settled");
      assert.deepEqual(manifestPuts(seen), [], "no manifest PUT: no tag points to a partial image");
      const layer = image.blobs.find((b) => b.size === BIG_LAYER)!;
      const head = await fetch(`http://${dst.host}/v2/doomed/app/blobs/${layer.digest}`, { method: "HEAD" });
      await head.body?.cancel();
      assert.equal(head.status, 404, "the big layer was not completed");

      const cancelled = about().filter((l) => String(l.msg).startsWith("sync cancelled"));
      assert.equal(cancelled.length, 1, log());
      assert.equal(cancelled[0].msg, "sync cancelled: the ImageSync was deleted");
      assert.equal(cancelled[0].level, "info");
      assert.equal(cancelled[0].why, "deleted");

      // nothing says it failed, finished or will be retried; nothing is kept about it
      for (const l of about()) {
        assert.doesNotMatch(
          String(l.msg),
          /sync failed|sync finished|retrying|interrupted|could not write/i,
          log(),
        );
        assert.notEqual(l.level, "error", log());
      }
      const metrics = await (await fetch(metricsUrl)).text();
      assert.doesNotMatch(metrics, /name="doomed"/, "its metric series are forgotten");
      assert.equal((await proc.stop({ signal: "SIGTERM", graceMs: 10_000 })).code, 0, log());
      const state = JSON.parse(await Deno.readTextFile(statePath));
      assert.deepEqual(
        Object.keys(state.imageSyncs),
        ["default/keep"],
        "the state file forgets the removed ImageSync",
      );
      assert.ok(!about("default/keep").some((l) => String(l.msg).startsWith("sync cancelled")), log());
    } finally {
      await serve?.stop({ signal: "SIGKILL" });
      await toxi.stop();
      await Promise.all([src.stop(), dst.stop()]);
    }
  },
});

Deno.test({
  name:
    "portager serve -f: an empty folder is watched, not an error — a file added later syncs, removing the last one logs no error",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const src = await startRegistry("plain");
    const dst = await startRegistry("plain");
    await using tmp = await tempDir({ prefix: "portager-serve-empty-" });
    const specs = `${tmp.path}/specs`;
    let serve: ReturnType<typeof spawnLineProcess> | undefined;
    try {
      await Deno.mkdir(specs);
      await Deno.mkdir(`${tmp.path}/docker`);
      const image = await pushImage(src, { repository: "lib/late", tag: "v1" }, { seed: 73 });
      serve = startServe(tmp.path, specs, `${tmp.path}/state.json`);
      const proc = serve;
      const log = () => proc.stderr.join("\n");
      const errors = () => parsed(proc.stderr).filter((l) => l.level === "error");
      await waitFor(
        "serve to listen",
        () => parsed(proc.stderr).some((l) => l.msg === "serving /metrics /healthz /readyz") || undefined,
        { timeoutMs: 60_000, describe: log },
      );
      assert.deepEqual(errors(), [], log());

      await Deno.writeTextFile(
        `${specs}/late.json`,
        imageSyncFile("late", { src: src.host, dst: dst.host, image: "late" }),
      );
      await waitFor("late's sync", async () => {
        const r = await fetch(`http://${dst.host}/v2/late/late/manifests/v1`, {
          method: "HEAD",
          headers: { accept: image.mediaType },
        });
        await r.body?.cancel();
        return r.headers.get("docker-content-digest") === image.digest || undefined;
      }, { timeoutMs: 60_000, describe: log });

      await Deno.remove(`${specs}/late.json`);
      await waitFor(
        "the removal",
        () => parsed(proc.stderr).some((l) => l.msg === "ImageSync removed") || undefined,
        { timeoutMs: 20_000, describe: log },
      );
      await sleep(500);
      assert.deepEqual(errors(), [], "emptying the watched folder is not an error");
      assert.equal((await proc.stop({ signal: "SIGTERM", graceMs: 10_000 })).code, 0, log());
    } finally {
      await serve?.stop({ signal: "SIGKILL" });
      await Promise.all([src.stop(), dst.stop()]);
    }
  },
});
