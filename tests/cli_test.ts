/**
 * The no-cluster modes end to end: `portager sync -f` and `portager serve -f` run as
 * subprocesses (`deno run -A main.ts ...`) against real registries (CNCF distribution) from
 * the harness, with credentials from a Docker config (--authfile) or a Secret file (--secret).
 */

import assert from "node:assert/strict";
import { getManifest, pushImage } from "./harness/fixtures.ts";
import { type RegistryServer, startRegistry } from "./harness/registry.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const DENO = Deno.execPath();
const decoder = new TextDecoder();

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `portager ARGS` with no Docker config of the user's in the way. */
async function portager(args: string[], opts: { stdin?: string; dockerConfig: string }): Promise<Run> {
  const child = new Deno.Command(DENO, {
    args: ["run", "-A", "--quiet", "main.ts", ...args],
    cwd: ROOT,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { DOCKER_CONFIG: opts.dockerConfig, NO_COLOR: "1" },
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

function imageSync(name: string, spec: { src: string; dst: string; auth: string; images: string }): string {
  return `apiVersion: portager.portager.io/v1alpha1
kind: ImageSync
metadata:
  name: ${name}
spec:
  schedule: "@every 1h"
  source:
    registry: ${spec.src}
  destination:
    registry: ${spec.dst}
    repositoryPrefix: mirror
    auth: ${spec.auth}
  images:
${spec.images}
`;
}

const WRITES = /^(PUT|POST|PATCH|DELETE) /;

/** Requests that changed something in the registry since `from` (an index into its log). */
async function writesSince(reg: RegistryServer, from: number): Promise<string[]> {
  return (await reg.flushLog()).slice(from).filter((l) => WRITES.test(l));
}

interface JsonTag {
  tag: string;
  action: string;
  sourceDigest?: string;
  reason?: string;
  bytesMoved: number;
  blobsCopied: number;
  blobsMounted: number;
  blobsSkipped: number;
}
interface JsonOut {
  ok: boolean;
  dryRun: boolean;
  imageSyncs: Array<
    { name: string; error?: string; report?: { images: Array<{ name: string; tags: JsonTag[] }> } }
  >;
  totals: { tags: number; copied: number; upToDate: number; failed: number; bytes: number };
  problems?: Array<{ file: string; path: string; message: string; text: string }>;
}

function tagsOf(out: JsonOut): Record<string, JsonTag> {
  const all: Record<string, JsonTag> = {};
  for (const s of out.imageSyncs) {
    for (const img of s.report?.images ?? []) {
      for (const t of img.tags) all[`${s.name}/${img.name}:${t.tag}`] = t;
    }
  }
  return all;
}

function sum(tags: JsonTag[], field: "bytesMoved" | "blobsCopied" | "blobsMounted" | "blobsSkipped"): number {
  return tags.reduce((n, t) => n + t[field], 0);
}

// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x09\x0b-\x1f\x7f]/;

Deno.test("portager sync -f: validation, dry-run plan, copy, exit codes, credentials", async (t) => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("basic", { users: { pusher: "push-pass" } });
  const dir = await Deno.makeTempDir({ prefix: "portager-cli-" });
  const noDocker = `${dir}/no-docker`;
  await Deno.mkdir(noDocker);
  try {
    await pushImage(src, { repository: "lib/app", tag: "v1" }, {
      seed: 1,
      layers: [200_000, 3000],
      sharedLayers: [50_000],
    });
    await pushImage(src, { repository: "lib/app", tag: "v2" }, {
      seed: 2,
      layers: [4000],
      sharedLayers: [50_000],
    });
    await pushImage(src, { repository: "lib/tool", tag: "1.0.0" }, {
      seed: 3,
      platforms: ["linux/amd64", "linux/arm64"],
      sharedLayers: [50_000],
    });
    await pushImage(src, { repository: "lib/tool", tag: "1.1.0" }, { seed: 4, sharedLayers: [50_000] });
    await pushImage(src, { repository: "lib/tool", tag: "2.0.0" }, { seed: 5 });
    // the destination already has app:v1
    const v1 = await pushImage(dst, { repository: "mirror/app", tag: "v1" }, {
      seed: 1,
      layers: [200_000, 3000],
      sharedLayers: [50_000],
    });

    await Deno.writeTextFile(
      `${dir}/auth.json`,
      JSON.stringify({ auths: { [dst.host]: { auth: btoa("pusher:push-pass") } } }),
    );
    await Deno.writeTextFile(
      `${dir}/dst-secret.yaml`,
      `apiVersion: v1\nkind: Secret\nmetadata:\n  name: dst-creds\ntype: kubernetes.io/dockerconfigjson\n` +
        `stringData:\n  .dockerconfigjson: '${
          JSON.stringify({ auths: { [dst.host]: { username: "pusher", password: "push-pass" } } })
        }'\n`,
    );
    const good = imageSync("mirror", {
      src: `${src.host}/lib`,
      dst: dst.host,
      auth: "{method: secret, secretRef: {name: dst-creds}}",
      images: `    - name: app\n      tags: [v1, v2]\n    - name: tool\n      semver: "1.x"\n`,
    });
    const withMissing = imageSync("broken", {
      src: `${src.host}/lib`,
      dst: dst.host,
      auth: "{method: secret, secretRef: {name: dst-creds}}",
      images: `    - name: app\n      tags: [gone]\n`,
    });
    await Deno.writeTextFile(`${dir}/good.yaml`, good);
    await Deno.writeTextFile(`${dir}/missing.yaml`, withMissing);
    const docker = { dockerConfig: noDocker };

    await t.step("bad input: every problem with its file and path, exit 2, nothing contacted", async () => {
      const bad = good
        .replace("      tags: [v1, v2]", "      tag: [v1]")
        .replace("method: secret, secretRef: {name: dst-creds}", "method: password")
        .replace('semver: "1.x"', 'semver: ">= 1.x.y"\n      maxTags: -1');
      await Deno.writeTextFile(
        `${dir}/bad.yaml`,
        `${good}---\n${bad.replace("name: mirror", "name: second")}`,
      );
      await Deno.writeTextFile(
        `${dir}/broken.yaml`,
        "apiVersion: portager.portager.io/v1alpha1\nkind: ImageSync\nmetadata:\n  name: a\n   bad: indent\n",
      );
      const before = (await src.flushLog()).length;
      const r = await portager([
        "sync",
        "-f",
        `${dir}/bad.yaml`,
        "-f",
        `${dir}/broken.yaml`,
        "-f",
        `${dir}/nope.yaml`,
      ], docker);
      assert.equal(r.code, 2, r.stderr);
      const lines = r.stderr.split("\n");
      const has = (re: RegExp) =>
        assert.ok(lines.some((l) => re.test(l)), `no line matches ${re}:\n${r.stderr}`);
      has(/^portager: 6 problems in the input; nothing was synced:$/);
      has(/bad\.yaml: doc 2 \(second\): spec\.images\[0\]\.tag: unknown field \(did you mean "tags"\?\)$/);
      has(/bad\.yaml: doc 2 \(second\): spec\.images\[0\]: needs tags or semver$/);
      has(
        /bad\.yaml: doc 2 \(second\): spec\.destination\.auth\.method: must be one of: secret, ecr, gar, anonymous$/,
      );
      // a semver that does not parse is not an input problem: it fails that image's tag resolution
      has(/bad\.yaml: doc 2 \(second\): spec\.images\[1\]\.maxTags: must be 0 \(unlimited\) or more$/);
      has(/broken\.yaml:5:\d+: invalid YAML: bad indentation of a mapping entry$/);
      has(/nope\.yaml: cannot read: no such file or folder$/);
      assert.equal(r.stdout, "");
      assert.equal((await src.flushLog()).length, before, "no registry was contacted");

      const j = await portager(["sync", "-f", `${dir}/bad.yaml`, "--output", "json"], docker);
      assert.equal(j.code, 2);
      const out = JSON.parse(j.stdout) as JsonOut;
      assert.equal(out.ok, false);
      assert.ok(
        out.problems!.some((p) => p.path === "spec.images[0].tag" && /unknown field/.test(p.message)),
      );

      const flags = await portager(["sync", "-f", `${dir}/good.yaml`, "--output", "yaml"], docker);
      assert.equal(flags.code, 2);
      assert.match(flags.stderr, /--output must be text or json/);
      const noFile = await portager(["sync"], docker);
      assert.equal(noFile.code, 2);
      assert.match(noFile.stderr, /sync needs -f PATH/);
    });

    let plan: JsonOut;
    await t.step("--dry-run plans per tag and writes nothing", async () => {
      const mark = (await dst.flushLog()).length;
      const r = await portager(
        [
          "sync",
          "-f",
          `${dir}/good.yaml`,
          "--dry-run",
          "--secret",
          `dst-creds=${dir}/dst-secret.yaml`,
          "-o",
          "json",
        ],
        docker,
      );
      assert.equal(r.code, 0, r.stderr + r.stdout);
      plan = JSON.parse(r.stdout);
      assert.equal(plan.dryRun, true);
      const tags = tagsOf(plan);
      assert.deepEqual(Object.keys(tags).sort(), [
        "mirror/app:v1",
        "mirror/app:v2",
        "mirror/tool:1.0.0",
        "mirror/tool:1.1.0",
      ]);
      assert.equal(tags["mirror/app:v1"].action, "up-to-date");
      assert.equal(tags["mirror/app:v1"].sourceDigest, v1.digest);
      for (const k of ["mirror/app:v2", "mirror/tool:1.0.0", "mirror/tool:1.1.0"]) {
        assert.equal(tags[k].action, "would-copy", k);
      }
      // app:v2's shared base layer is already in mirror/app: only its own blobs move
      assert.equal(tags["mirror/app:v2"].blobsSkipped, 1);
      assert.ok(plan.totals.bytes > 0);
      assert.deepEqual(await writesSince(dst, mark), [], "a dry run writes nothing");

      // the text plan says the same in plain lines
      const text = await portager(
        ["sync", "-f", `${dir}/good.yaml`, "--dry-run", "--secret", `dst-creds=${dir}/dst-secret.yaml`],
        docker,
      );
      assert.equal(text.code, 0, text.stderr);
      assert.ok(!CONTROL.test(text.stdout), "no control characters without a terminal");
      const lines = text.stdout.split("\n");
      assert.ok(
        lines.some((l) => /^up to date {2}mirror {2}\S+\/mirror\/app:v1 {2}sha256:[0-9a-f]{8}$/.test(l)),
        text.stdout,
      );
      assert.ok(
        lines.some((l) => /^would copy {2}mirror {2}\S+\/mirror\/tool:1\.1\.0 {2}sha256:\S+ {2}\d/.test(l)),
        text.stdout,
      );
      assert.ok(lines.some((l) => /^total +4 +3 +1 +0 /.test(l)), text.stdout);
      assert.deepEqual(await writesSince(dst, mark), []);

      // a dry run that would fail exits 1, still writing nothing; stdin works as input
      const failing = await portager(
        ["sync", "-f", "-", "--dry-run", "--authfile", `${dir}/auth.json`],
        { ...docker, stdin: withMissing },
      );
      assert.equal(failing.code, 1, failing.stderr + failing.stdout);
      assert.match(failing.stdout, /^FAILED {6}broken {2}\S+\/mirror\/app:gone {2}NotFound: /m);
      assert.deepEqual(await writesSince(dst, mark), []);
    });

    await t.step("the real run does what the plan said; a second run copies nothing", async () => {
      const mark = (await dst.flushLog()).length;
      const r = await portager([
        "sync",
        "-f",
        `${dir}/good.yaml`,
        "--authfile",
        `${dir}/auth.json`,
        "-o",
        "json",
      ], docker);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const done = JSON.parse(r.stdout) as JsonOut;
      assert.equal(done.ok, true);
      const planned = tagsOf(plan);
      const actual = tagsOf(done);
      assert.deepEqual(Object.keys(actual).sort(), Object.keys(planned).sort());
      for (const [k, p] of Object.entries(planned)) {
        assert.equal(actual[k].action, p.action === "would-copy" ? "copied" : p.action, k);
        assert.equal(actual[k].sourceDigest, p.sourceDigest, k);
      }
      for (const field of ["bytesMoved", "blobsCopied", "blobsMounted", "blobsSkipped"] as const) {
        assert.equal(sum(Object.values(actual), field), sum(Object.values(planned), field), field);
      }
      assert.ok((await writesSince(dst, mark)).length > 0);
      for (const [repo, tag] of [["mirror/app", "v2"], ["mirror/tool", "1.0.0"], ["mirror/tool", "1.1.0"]]) {
        const m = await getManifest(dst, repo, tag);
        assert.equal(m.status, 200, `${repo}:${tag}`);
        assert.equal(m.digest, actual[`mirror/${repo.split("/")[1]}:${tag}`].sourceDigest);
      }
      assert.equal((await getManifest(dst, "mirror/tool", "2.0.0")).status, 404, "2.0.0 is outside 1.x");

      const mark2 = (await dst.flushLog()).length;
      const again = await portager(
        ["sync", "-f", `${dir}/good.yaml`, "--secret", `dst-creds=${dir}/dst-secret.yaml`],
        docker,
      );
      assert.equal(again.code, 0, again.stderr);
      assert.ok(!CONTROL.test(again.stdout));
      assert.match(again.stdout, /^total +4 +0 +4 +0 +0 B /m);
      assert.deepEqual(await writesSince(dst, mark2), [], "nothing written when all is in sync");
    });

    await t.step(
      "failures: a missing tag exits 1; no credentials for a Basic registry is Unauthorized",
      async () => {
        const r = await portager(
          ["sync", "-f", `${dir}/missing.yaml`, "--authfile", `${dir}/auth.json`],
          docker,
        );
        assert.equal(r.code, 1, r.stderr + r.stdout);
        assert.match(r.stdout, /^FAILED {6}broken {2}\S+\/mirror\/app:gone {2}NotFound: /m);
        const anon = await portager(["sync", "-f", `${dir}/good.yaml`, "-o", "json"], docker);
        assert.equal(anon.code, 1, anon.stderr);
        const out = JSON.parse(anon.stdout) as JsonOut;
        assert.equal(out.ok, false);
        const reasons = new Set(Object.values(tagsOf(out)).map((t) => t.reason ?? out.imageSyncs[0].error));
        assert.ok(
          [...reasons].some((r) => /Unauthorized/.test(String(r))),
          JSON.stringify(out.imageSyncs[0]).slice(0, 2000),
        );
        // a --secret without an entry for the destination: the whole ImageSync fails, naming both
        await Deno.writeTextFile(
          `${dir}/other.json`,
          JSON.stringify({ auths: { "elsewhere.example.com": { auth: btoa("a:b") } } }),
        );
        const wrong = await portager(
          ["sync", "-f", `${dir}/good.yaml`, "--secret", `dst-creds=${dir}/other.json`],
          docker,
        );
        assert.equal(wrong.code, 1, wrong.stderr);
        assert.ok(
          wrong.stdout.includes(`other.json has no auth for registry ${dst.host}`),
          wrong.stdout,
        );
        assert.match(wrong.stdout, /^FAILED +mirror +AuthFailed: /m);
        assert.match(wrong.stdout, /^mirror: AuthFailed: /m);
        const badSecret = await portager([
          "sync",
          "-f",
          `${dir}/good.yaml`,
          "--secret",
          `dst-creds=${dir}/none.yaml`,
        ], docker);
        assert.equal(badSecret.code, 2);
        assert.match(badSecret.stderr, /--secret dst-creds: cannot read .*none\.yaml/);
      },
    );

    await t.step(
      "ours, in a file: tagPatterns, excludeTagPatterns, platforms and overwrite never",
      async () => {
        const multi = await pushImage(src, { repository: "lib/extra", tag: "1.0.0" }, {
          seed: 11,
          platforms: ["linux/amd64", "linux/arm64"],
        });
        await pushImage(src, { repository: "lib/extra", tag: "1.1.0" }, { seed: 12 });
        await pushImage(src, { repository: "lib/extra", tag: "1.2.0-rc" }, { seed: 13 });
        await pushImage(src, { repository: "lib/extra", tag: "stable" }, { seed: 14 });
        const kept = await pushImage(dst, { repository: "mirror/extra", tag: "stable" }, { seed: 15 });
        await Deno.writeTextFile(
          `${dir}/extras.yaml`,
          imageSync("extras", {
            src: `${src.host}/lib`,
            dst: dst.host,
            auth: "{method: secret, secretRef: {name: dst-creds}}\n    overwrite: never",
            images: `    - name: extra\n      tags: [stable]\n      tagPatterns: ['1\\.\\d+\\.\\d+']\n` +
              `      excludeTagPatterns: ['1\\.1\\..*']\n      platforms: [linux/arm64]\n`,
          }),
        );
        const args = ["sync", "-f", `${dir}/extras.yaml`, "--secret", `dst-creds=${dir}/dst-secret.yaml`];
        const mark = (await dst.flushLog()).length;
        const plan = await portager([...args, "--dry-run"], docker);
        assert.equal(plan.code, 1, "a plan with a conflict would fail: " + plan.stderr + plan.stdout);
        assert.match(plan.stdout, /^would copy {2}extras {2}\S+\/mirror\/extra:1\.0\.0 {2}sha256:/m);
        assert.match(
          plan.stdout,
          /^FAILED {6}extras {2}\S+\/mirror\/extra:stable {2}TagConflict: Would leave \S+\/mirror\/extra:stable at sha256:[0-9a-f]{8}: /m,
        );
        assert.doesNotMatch(
          plan.stdout,
          /extra:1\.1\.0|extra:1\.2\.0-rc/,
          "excluded and unmatched tags are not planned",
        );
        assert.deepEqual(await writesSince(dst, mark), [], "a dry run writes nothing");

        const run = await portager([...args, "-o", "json"], docker);
        assert.equal(run.code, 1, run.stderr);
        const tags = tagsOf(JSON.parse(run.stdout) as JsonOut);
        assert.deepEqual(Object.keys(tags).sort(), ["extras/extra:1.0.0", "extras/extra:stable"]);
        assert.equal(tags["extras/extra:stable"].reason, "TagConflict");
        assert.equal((await getManifest(dst, "mirror/extra", "stable")).digest, kept.digest, "left as it is");
        const filtered = await getManifest(dst, "mirror/extra", "1.0.0");
        const index = JSON.parse(new TextDecoder().decode(filtered.bytes));
        assert.deepEqual(index.manifests.map((m: { digest: string }) => m.digest), [
          multi.children![1].digest,
        ]);
        assert.equal(tags["extras/extra:1.0.0"].sourceDigest, multi.digest);
      },
    );
  } finally {
    await src.stop();
    await dst.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

/** A running `portager serve` with its stderr log lines (JSON) collected. */
class Serve {
  readonly child: Deno.ChildProcess;
  readonly lines: Array<Record<string, unknown>> = [];
  readonly #done: Promise<void>;

  constructor(args: string[], dockerConfig: string) {
    const child = new Deno.Command(DENO, {
      args: [
        "run",
        "-A",
        "--quiet",
        "main.ts",
        "serve",
        "--log-format",
        "json",
        "--metrics-addr",
        "127.0.0.1:0",
        ...args,
      ],
      cwd: ROOT,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      env: { DOCKER_CONFIG: dockerConfig },
    }).spawn();
    this.child = child;
    this.#done = (async () => {
      let buf = "";
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          try {
            this.lines.push(JSON.parse(line));
          } catch {
            this.lines.push({ msg: line });
          }
        }
      }
    })();
  }

  /** Waits until a log line matches (at most `ms`, then fails showing the log). */
  async waitFor(
    pred: (l: Record<string, unknown>) => boolean,
    what: string,
    ms = 20_000,
  ): Promise<Record<string, unknown>> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const hit = this.lines.find(pred);
      if (hit) return hit;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(
      `timed out waiting for ${what}; log:\n${this.lines.map((l) => JSON.stringify(l)).join("\n")}`,
    );
  }

  count(pred: (l: Record<string, unknown>) => boolean): number {
    return this.lines.filter(pred).length;
  }

  async stop(signal: Deno.Signal): Promise<number> {
    this.child.kill(signal);
    const status = await this.child.status;
    await this.#done;
    return status.code;
  }
}

const finished = (trigger: string) => (l: Record<string, unknown>) =>
  l.msg === "sync finished" && l.trigger === trigger;

Deno.test("portager serve -f: syncs, picks up an edited file, and a killed+restarted serve copies nothing", async () => {
  const src = await startRegistry("plain");
  const dst = await startRegistry("basic", { users: { pusher: "push-pass" } });
  const dir = await Deno.makeTempDir({ prefix: "portager-serve-" });
  const specs = `${dir}/specs`;
  await Deno.mkdir(specs);
  await Deno.mkdir(`${dir}/docker`);
  // credentials through $DOCKER_CONFIG this time
  await Deno.writeTextFile(
    `${dir}/docker/config.json`,
    JSON.stringify({ auths: { [dst.host]: { auth: btoa("pusher:push-pass") } } }),
  );
  const servers: Serve[] = [];
  try {
    await pushImage(src, { repository: "lib/app", tag: "v1" }, { seed: 11 });
    const v2 = await pushImage(src, { repository: "lib/app", tag: "v2" }, { seed: 12 });
    const spec = (tags: string) =>
      imageSync("mirror", {
        src: `${src.host}/lib`,
        dst: dst.host,
        auth: "{method: secret, secretRef: {name: dst-creds}}",
        images: `    - name: app\n      tags: [${tags}]\n`,
      });
    await Deno.writeTextFile(`${specs}/mirror.yaml`, spec("v1"));
    const args = ["-f", specs, "--state-file", `${dir}/state.json`];

    const first = new Serve(args, `${dir}/docker`);
    servers.push(first);
    await first.waitFor(finished("first-sync"), "the first sync");
    assert.equal((await getManifest(dst, "mirror/app", "v1")).status, 200);
    assert.equal((await getManifest(dst, "mirror/app", "v2")).status, 404);

    const listening = await first.waitFor(
      (l) => l.msg === "serving /metrics /healthz /readyz",
      "the metrics server",
    );
    const base = `http://${listening.address}`;
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    await ready.body?.cancel();
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /^portage_sync_total\{name="mirror",namespace="default",status="success"\} 1$/m);

    // edit the file: the new tag arrives without waiting for the schedule
    await Deno.writeTextFile(`${specs}/mirror.yaml`, spec("v1, v2"));
    await first.waitFor(finished("spec-changed"), "the sync after the edit");
    const got = await getManifest(dst, "mirror/app", "v2");
    assert.equal(got.status, 200);
    assert.equal(got.digest, v2.digest);

    // the sync-now annotation written into the file syncs now, though the spec is the same
    await Deno.writeTextFile(
      `${specs}/mirror.yaml`,
      spec("v1, v2").replace(
        "  name: mirror\n",
        `  name: mirror\n  annotations:\n    portager.portager.io/sync-now: "true"\n`,
      ),
    );
    await first.waitFor(finished("sync-now"), "the sync-now sync");

    // a second file: loaded and synced; removed: dropped
    await Deno.writeTextFile(`${specs}/extra.yaml`, spec("v1").replace("name: mirror", "name: extra"));
    await first.waitFor(
      (l) => l.msg === "sync finished" && l.imagesync === "default/extra",
      "the extra sync",
    );
    await Deno.remove(`${specs}/extra.yaml`);
    await first.waitFor(
      (l) => l.msg === "ImageSync removed" && l.imagesync === "default/extra",
      "the removal",
    );

    // a tag missing at the source fails; the retry (with backoff) picks it up once it exists
    await Deno.writeTextFile(
      `${specs}/retry.yaml`,
      imageSync("retry", {
        src: `${src.host}/lib`,
        dst: dst.host,
        auth: "{method: secret, secretRef: {name: dst-creds}}",
        images: `    - name: late\n      tags: [v1]\n`,
      }),
    );
    const failedSync = await first.waitFor(
      (l) => l.msg === "sync failed; retrying with backoff" && l.imagesync === "default/retry",
      "the failed sync",
    );
    assert.equal(typeof failedSync.retryInMs, "number");
    const late = await pushImage(src, { repository: "lib/late", tag: "v1" }, { seed: 13 });
    await first.waitFor(
      (l) => l.msg === "sync finished" && l.imagesync === "default/retry" && l.trigger === "retry",
      "the retry",
      30_000,
    );
    assert.equal((await getManifest(dst, "mirror/late", "v1")).digest, late.digest);
    await Deno.remove(`${specs}/retry.yaml`);
    await first.waitFor(
      (l) => l.msg === "ImageSync removed" && l.imagesync === "default/retry",
      "its removal",
    );

    // a broken edit is reported and the last good version stays
    await Deno.writeTextFile(`${specs}/mirror.yaml`, spec("v1, v2").replace("tags:", "tag:"));
    await first.waitFor(
      (l) =>
        typeof l.msg === "string" &&
        /mirror\.yaml \(mirror\): spec\.images\[0\]\.tag: unknown field/.test(l.msg),
      "the problem report",
    );
    await first.waitFor((l) => l.msg === "keeping the last valid version until the file is fixed", "keeping");
    await Deno.writeTextFile(`${specs}/mirror.yaml`, spec("v1, v2"));

    // killed without warning: the state file has what the next process needs
    assert.equal(await first.stop("SIGKILL"), 137);
    const mark = (await dst.flushLog()).length;
    const state = JSON.parse(await Deno.readTextFile(`${dir}/state.json`));
    assert.deepEqual(
      Object.keys(state.imageSyncs),
      ["default/mirror"],
      "a removed ImageSync leaves the state",
    );
    const saved = state.imageSyncs["default/mirror"];
    assert.deepEqual(
      saved.status.images[0].tags.map((t: { tag: string; synced: boolean }) => [t.tag, t.synced]),
      [
        ["v1", true],
        ["v2", true],
      ],
    );

    const second = new Serve(args, `${dir}/docker`);
    servers.push(second);
    await second.waitFor((l) => l.msg === "ImageSync loaded", "loading");
    const next = await second.waitFor((l) => l.msg === "next sync scheduled", "the schedule decision");
    assert.equal(next.nextSyncTime !== undefined, true);
    assert.equal(second.count((l) => l.msg === "syncing"), 0, "nothing due: no sync at all");
    assert.deepEqual(await writesSince(dst, mark), [], "no blob or manifest written after the restart");
    assert.equal(await second.stop("SIGTERM"), 0, "SIGTERM stops gracefully");
    assert.ok(second.lines.some((l) => l.msg === "stopped"));
  } finally {
    for (const s of servers) {
      try {
        s.child.kill("SIGKILL");
      } catch { /* already gone */ }
      await s.stop("SIGKILL").catch(() => undefined);
    }
    await src.stop();
    await dst.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
