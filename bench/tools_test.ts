import assert from "node:assert/strict";
import {
  buildBundleForm,
  bundleCommandOf,
  compileEntryOf,
  compileFlags,
  compileFlagsOf,
  DENO,
  imageEnv,
  imageEnvOf,
  type PortagerForm,
  shellWords,
  shippedFormProblem,
  SIZE_V8_FLAGS,
  sizeFlagsCounterpart,
  sizeFlagsNote,
  sourceForm,
  unreachableChunks,
  withOnlyV8Flags,
  withoutV8Flags,
  withV8Flags,
} from "./tools.ts";
import { runMeasured } from "./measure.ts";

const TASKS: Record<string, string> =
  JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url))).tasks;

Deno.test("compileFlagsOf keeps every runtime flag of `deno compile`, drops the binary-only ones and the entry point", () => {
  const task = "deno task bundle && deno compile --no-code-cache --v8-flags=--max-semi-space-size=1 " +
    "--allow-net '--allow-env=AWS_*,HOME' --allow-sys=hostname,uid --output=dist/portager dist/portager.js";
  assert.deepEqual(compileFlagsOf(task), [
    "--no-code-cache",
    "--v8-flags=--max-semi-space-size=1",
    "--allow-net",
    "--allow-env=AWS_*,HOME",
    "--allow-sys=hostname,uid",
  ]);
  assert.deepEqual(
    compileFlagsOf("deno compile --target x86_64-unknown-linux-gnu -o out --allow-env main.ts"),
    ["--allow-env"],
  );
});

Deno.test("the bench runs the bundle with exactly the flags deno.json's compile task bakes in", () => {
  const task: string =
    JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url))).tasks.compile;
  const flags = compileFlags();
  for (const f of flags) assert.ok(shellWords(task).includes(f), `${f} is not in the compile task`);
  const compileWords = shellWords(task).filter((w) => w.startsWith("--") && !w.startsWith("--output"));
  assert.ok(flags.some((f) => f.startsWith("--allow-env=")), "the compile task's quoted --allow-env is kept");
  assert.deepEqual(flags, compileWords);
});

/** A bundle form running `args`, for the V8 flag helpers. */
function bundleForm(args: string[]): PortagerForm {
  return { form: "bundle", cmd: "deno", args, describe: "d", env: {} };
}

Deno.test("withV8Flags appends to the form's --v8-flags, or adds one", () => {
  const form = bundleForm(["run", "--v8-flags=--max-semi-space-size=1", "--allow-net", "p.js"]);
  assert.deepEqual(withV8Flags(form, ["--optimize-for-size"]).args, [
    "run",
    "--v8-flags=--max-semi-space-size=1,--optimize-for-size",
    "--allow-net",
    "p.js",
  ]);
  assert.deepEqual(withV8Flags({ ...form, args: ["run", "p.js"] }, ["--a", "--b"]).args, [
    "run",
    "--v8-flags=--a,--b",
    "p.js",
  ]);
  assert.deepEqual(form.args[1], "--v8-flags=--max-semi-space-size=1", "the shipped form is left alone");
});

Deno.test("withoutV8Flags removes only the named V8 flags, and --v8-flags when none is left", () => {
  const form = bundleForm([
    "run",
    "--v8-flags=--max-semi-space-size=1,--optimize-for-size",
    "--allow-net",
    "p.js",
  ]);
  const without = withoutV8Flags(form, ["--optimize-for-size"]);
  assert.deepEqual(without.args, ["run", "--v8-flags=--max-semi-space-size=1", "--allow-net", "p.js"]);
  assert.equal(without.form, "bundle, without --optimize-for-size");
  assert.deepEqual(
    withoutV8Flags(form, ["--optimize-for-size", "--max-semi-space-size=1"]).args,
    ["run", "--allow-net", "p.js"],
  );
  assert.equal(
    form.args[1],
    "--v8-flags=--max-semi-space-size=1,--optimize-for-size",
    "the form is left alone",
  );
});

Deno.test("withOnlyV8Flags sets exactly the given V8 flags in place, or none", () => {
  const form = bundleForm([
    "run",
    "--no-code-cache",
    "--v8-flags=--max-semi-space-size=1,--optimize-for-size",
    "p.js",
  ]);
  const only = withOnlyV8Flags(form, ["--max-semi-space-size=1", "--heap-growing-percent=30"]);
  assert.deepEqual(only.args, [
    "run",
    "--no-code-cache",
    "--v8-flags=--max-semi-space-size=1,--heap-growing-percent=30",
    "p.js",
  ]);
  assert.equal(only.form, "bundle, v8 --max-semi-space-size=1 --heap-growing-percent=30");
  assert.deepEqual(withOnlyV8Flags(form, []).args, ["run", "--no-code-cache", "p.js"]);
  assert.deepEqual(withOnlyV8Flags(bundleForm(["run", "p.js"]), ["--a"]).args, [
    "run",
    "--v8-flags=--a",
    "p.js",
  ]);
  assert.match(shippedFormProblem(only)!, /not the bundle|flags/, "a candidate is never the shipped form");
});

Deno.test("sizeFlagsCounterpart: the shipped form without the size flag when it ships it, with it when not", () => {
  const base = bundleForm(["run", "--v8-flags=--max-semi-space-size=1", "p.js"]);
  const withSize = withV8Flags(base, SIZE_V8_FLAGS);
  assert.deepEqual(sizeFlagsCounterpart(base).args, withSize.args);
  assert.deepEqual(sizeFlagsCounterpart({ ...withSize, form: "bundle" }).args, base.args);
  // the bench's own shipped form: its counterpart differs from it in exactly the size flag
  const shipped = compileFlags();
  const counterpart = sizeFlagsCounterpart(bundleForm(["run", ...shipped, "p.js"]));
  const v8 = (args: string[]) =>
    args.find((a) => a.startsWith("--v8-flags="))?.slice("--v8-flags=".length).split(",") ?? [];
  const diff = [...v8(shipped), ...v8(counterpart.args)].filter((f) =>
    v8(shipped).includes(f) !== v8(counterpart.args).includes(f)
  );
  assert.deepEqual(diff, SIZE_V8_FLAGS);
  // the report says which of the two the extra row is, under the table's own label
  assert.match(sizeFlagsNote(base), /"bundle, \+ --optimize-for-size" row is a candidate/);
  assert.match(
    sizeFlagsNote(withSize, { row: "portager (x)" }),
    /"portager \(x\)" row is the shipped form without/,
  );
});

Deno.test("B4's guard: only the bundle with exactly the compile task's flags counts as shipped", () => {
  const flags = ["--no-code-cache", "--v8-flags=--max-semi-space-size=1", "--allow-net"];
  const shipped: PortagerForm = {
    form: "bundle",
    cmd: "deno",
    args: ["run", "--no-config", "--no-prompt", ...flags, "/tmp/x/bundle/main.js"],
    describe: "d",
    env: { ...imageEnv(), DENO_DIR: "/tmp/deno" },
  };
  assert.equal(shippedFormProblem(shipped, { flags, entry: "main.js" }), undefined);
  assert.match(
    shippedFormProblem(withV8Flags(shipped, ["--optimize-for-size"]), { flags, entry: "main.js" })!,
    /optimize-for-size form/,
  );
  assert.match(
    shippedFormProblem(
      { ...withV8Flags(shipped, ["--optimize-for-size"]), form: "bundle" },
      { flags, entry: "main.js" },
    )!,
    /not the compile task's/,
  );
  assert.match(
    shippedFormProblem(
      { ...shipped, args: shipped.args.filter((a) => a !== "--no-code-cache") },
      { flags, entry: "main.js" },
    )!,
    /not the compile task's/,
  );
  assert.match(shippedFormProblem(sourceForm({}))!, /source form/);
  assert.match(
    shippedFormProblem({ ...shipped, args: [...shipped.args.slice(0, -1), "main.ts"] }, {
      flags,
      entry: "main.js",
    })!,
    /bundle/,
  );
  assert.match(
    shippedFormProblem(
      { ...shipped, args: [...shipped.args.slice(0, -1), "/tmp/x/portager.js"] },
      { flags, entry: "main.js" },
    )!,
    /entry point main\.js/,
    "a single-file bundle is not what the compile task embeds",
  );
});

Deno.test("imageEnvOf reads the final stage's ENV, in both of its forms", () => {
  const dockerfile = `FROM deno AS builder
ENV BUILD_ONLY=1
RUN deno task compile
# runtime
FROM distroless
ENV A=1 \\
  B="two words"
ENV C 3 4
ENTRYPOINT ["/portager","run"]
`;
  assert.deepEqual(imageEnvOf(dockerfile), { A: "1", B: "two words", C: "3 4" });
  assert.equal(imageEnv().MALLOC_ARENA_MAX, "2", "the image bounds glibc's malloc arenas (docs/DEPLOY.md)");
});

Deno.test("B4's guard: the shipped form runs with exactly the image's ENV", () => {
  const flags = ["--allow-net"];
  const env = { MALLOC_ARENA_MAX: "2", DENO_TLS_CA_STORE: "system" };
  const form: PortagerForm = {
    form: "bundle",
    cmd: "deno",
    args: ["run", "--no-config", "--no-prompt", ...flags, "/tmp/x/bundle/main.js"],
    describe: "d",
    env: { ...env, DENO_DIR: "/tmp/deno" },
  };
  assert.equal(shippedFormProblem(form, { flags, entry: "main.js", env }), undefined);
  assert.match(
    shippedFormProblem({ ...form, env: { DENO_TLS_CA_STORE: "system" } }, { flags, entry: "main.js", env })!,
    /MALLOC_ARENA_MAX=\(unset\), the image's ENV MALLOC_ARENA_MAX=2/,
  );
  assert.match(
    shippedFormProblem({ ...form, env: { ...form.env, MALLOC_ARENA_MAX: "1" } }, {
      flags,
      entry: "main.js",
      env,
    })!,
    /MALLOC_ARENA_MAX=1/,
  );
  assert.match(
    shippedFormProblem(
      { ...form, env: { ...form.env, MALLOC_TRIM_THRESHOLD_: "0" } },
      { flags, entry: "main.js", env },
    )!,
    /sets MALLOC_TRIM_THRESHOLD_, which the image's ENV does not/,
  );
});

Deno.test("the bundle task splits code into dist/bundle and every compile task embeds its entry point", () => {
  const { args, dir, after } = bundleCommandOf(TASKS.bundle, "/tmp/out");
  assert.equal(dir, "dist/bundle");
  assert.ok(args.includes("--code-splitting") && args.includes("--outdir=/tmp/out"), args.join(" "));
  // the steps after deno bundle run on the bench's folder too: the require shim made lazy
  assert.deepEqual(after, [[
    "run",
    "--allow-read=/tmp/out",
    "--allow-write=/tmp/out",
    "scripts/bundle_lazy_require.ts",
    "/tmp/out",
  ]]);
  assert.throws(
    () => bundleCommandOf("deno bundle --code-splitting --outdir=dist/b main.ts && cp -r dist/b x", "/o"),
    /a step the bench cannot run: cp -r dist\/b x/,
  );
  assert.ok(TASKS.bundle.startsWith("rm -rf dist/bundle && "), "no stale chunk from an earlier build");
  for (const name of ["compile", "compile:cli", "compile:exec-plugins"]) {
    assert.equal(compileEntryOf(TASKS[name], dir), "main.js", name);
  }
  assert.throws(
    () => bundleCommandOf("deno bundle --minify --output=dist/portager.js main.ts", "/tmp/out"),
    /does not split code/,
  );
  assert.throws(
    () => compileEntryOf("deno compile --output=dist/portager dist/portager.js", dir),
    /not in the bundle/,
  );
  assert.equal(compileEntryOf("deno compile -o dist/portager --allow-net dist/bundle/x.js", dir), "x.js");
});

Deno.test("the operator's binaries size V8's heap for memory, the workstation CLI's for speed; all cap the semi-space", () => {
  const v8 = (task: string) =>
    compileFlagsOf(task).find((f) => f.startsWith("--v8-flags="))?.slice("--v8-flags=".length).split(",") ??
      [];
  for (const name of ["compile", "compile:exec-plugins", "compile:cli"]) {
    assert.ok(v8(TASKS[name]).includes("--max-semi-space-size=1"), name);
    const operator = name !== "compile:cli";
    for (const f of SIZE_V8_FLAGS) assert.equal(v8(TASKS[name]).includes(f), operator, `${name}: ${f}`);
  }
});

Deno.test("the bench's bundle: every chunk reachable from the entry deno compile embeds, zod without its locales, the shipped form", async () => {
  const dir = await Deno.makeTempDir({ prefix: "portager-bundle-" });
  try {
    const denoDir = JSON.parse((await runMeasured(DENO, ["info", "--json"])).stdout).denoDir;
    const form = await buildBundleForm(dir, { DENO_DIR: denoDir });
    assert.equal(shippedFormProblem(form), undefined);
    const chunks = [...Deno.readDirSync(`${dir}/bundle`)].map((e) => e.name);
    assert.ok(chunks.length > 10 && chunks.includes("main.js"), `chunks: ${chunks.join(" ")}`);
    // deno info follows the graph deno compile embeds: static imports and literal dynamic ones
    assert.deepEqual(await unreachableChunks(`${dir}/bundle`, "main.js"), []);
    // a file nothing imports would be missing from the binary: the check sees it
    await Deno.writeTextFile(`${dir}/bundle/stray.js`, "export const x = 1;\n");
    assert.deepEqual(await unreachableChunks(`${dir}/bundle`, "main.js"), [`${dir}/bundle/stray.js`]);
    // src/api imports zod as a namespace so the bundler drops z.locales (264 KB): German is gone
    const text = chunks.map((c) => Deno.readTextFileSync(`${dir}/bundle/${c}`)).join("\n");
    assert.ok(!text.includes("E-Mail-Adresse"), "zod's locales are bundled");
    const version = await runMeasured(form.cmd, [...form.args, "version"], { env: form.env });
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, /^portager /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
