import assert from "node:assert/strict";
import { BASELINE_COMMIT, buildBaselineForm, bundlePlan, vsBaseline } from "./baseline.ts";
import { runMeasured } from "./measure.ts";
import { compileFlags, DENO, denoDir, ROOT } from "./tools.ts";

const OLD_TASKS = {
  bundle: "deno bundle --minify --platform=deno --output=dist/portager.js main.ts",
  compile:
    "deno task bundle && deno compile --no-code-cache --v8-flags=--max-semi-space-size=1 --allow-net --allow-read --output=dist/portager dist/portager.js",
};

Deno.test("bundlePlan: a single-file bundle goes to the scratch folder, run with the compile task's flags", () => {
  assert.deepEqual(bundlePlan(OLD_TASKS, "/s/dist"), {
    args: ["bundle", "--frozen", "--minify", "--platform=deno", "--output=/s/dist/portager.js", "main.ts"],
    entry: "/s/dist/portager.js",
    flags: ["--no-code-cache", "--v8-flags=--max-semi-space-size=1", "--allow-net", "--allow-read"],
  });
});

Deno.test("bundlePlan: today's split bundle runs from the entry point deno compile embeds", () => {
  const tasks = JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`)).tasks;
  const plan = bundlePlan(tasks, "/s/dist");
  assert.equal(plan.args[1], "--frozen");
  assert.ok(plan.args.includes("--outdir=/s/dist"), plan.args.join(" "));
  assert.equal(plan.entry, "/s/dist/main.js");
  assert.deepEqual(plan.flags, compileFlags());
});

Deno.test("bundlePlan: refuses a compile task that does not embed the bundle", () => {
  assert.throws(
    () => bundlePlan({ ...OLD_TASKS, compile: "deno compile --allow-net --output=x main.ts" }, "/s"),
    /does not embed the bundle's output/,
  );
  assert.throws(() => bundlePlan({ compile: OLD_TASKS.compile }, "/s"), /no deno bundle task/);
});

Deno.test("vsBaseline: ratios of today's forms to the baseline's run, none for unequal work", () => {
  const base = {
    form: "baseline fc7475b",
    ready: 10,
    readyMs: 40_000,
    requests: { total: 50 },
    cpuMs: 140,
    stackCpuPer: { total: 60 },
  };
  const today = { requests: { total: 30 }, cpuMs: 70, stackCpuPer: { total: 45 } };
  const runs = [
    { ...today, form: "bundle", ready: 10, readyMs: 20_000 },
    base,
    { form: "source", ready: 10, readyMs: 30_000, requests: { total: 30 } },
    { form: "candidate", ready: 9, readyMs: 10_000, requests: { total: 30 } },
  ];
  assert.deepEqual(vsBaseline(runs, base.form, 10, 2), [
    "bundle vs baseline fc7475b: time to all Ready 0.50× (20.0 s vs 40.0 s), apiserver requests 0.60×, operator CPU 0.50×, the stack's CPU per ImageSync 0.75× (45 vs 60 ms), CPU bound 0.2 s = 0.01× (10 × 45 ms ÷ 2 cores: no sooner even with every core busy throughout)",
    "source vs baseline fc7475b: time to all Ready 0.75× (30.0 s vs 40.0 s), apiserver requests 0.60×",
  ]);
  assert.deepEqual(vsBaseline([{ ...base, ready: 3 }, runs[0]], base.form, 10, 2), [
    "baseline fc7475b: not all Ready (3/10), no ratio",
  ]);
  assert.deepEqual(vsBaseline(runs, "baseline other", 10, 2), []);
  // 1000 ImageSyncs at 38.2 ms of the stack's CPU each on 2 cores: 19.1 s however they are run
  const big = vsBaseline(
    [
      { ...today, form: "bundle", ready: 1000, readyMs: 23_360, stackCpuPer: { total: 38.2 } },
      { ...base, ready: 1000, readyMs: 34_080 },
    ],
    base.form,
    1000,
    2,
  );
  assert.match(big[0], /CPU bound 19\.1 s = 0\.56× \(1000 × 38\.2 ms ÷ 2 cores/);
});

Deno.test({
  name: "buildBaselineForm: the baseline commit builds from Deno's cache and runs as its binary would",
  ignore:
    (await runMeasured("git", ["cat-file", "-e", `${BASELINE_COMMIT}^{commit}`], { cwd: ROOT })).code !== 0,
  async fn() {
    const scratch = await Deno.makeTempDir({ prefix: "baseline-test-" });
    try {
      const form = await buildBaselineForm(BASELINE_COMMIT, { scratch, env: { DENO_DIR: await denoDir() } });
      assert.equal(form.form, `baseline ${BASELINE_COMMIT.slice(0, 7)}`);
      assert.equal(form.env.DENO_TLS_CA_STORE, "system"); // its Dockerfile's ENV
      assert.ok(form.args.includes("--v8-flags=--max-semi-space-size=1"), form.args.join(" "));
      assert.ok(form.args.at(-1)!.endsWith("/dist/portager.js"), form.args.at(-1));
      const r = await runMeasured(DENO, [...form.args, "version"], { env: form.env });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^portager 0\.1\.0 /);
    } finally {
      await Deno.remove(scratch, { recursive: true });
    }
  },
});
