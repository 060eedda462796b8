import assert from "node:assert/strict";
import {
  compileFlags,
  compileFlagsOf,
  type PortagerForm,
  shellWords,
  shippedFormProblem,
  sourceForm,
  withV8Flags,
} from "./tools.ts";

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

Deno.test("withV8Flags appends to the form's --v8-flags, or adds one", () => {
  const form: PortagerForm = {
    form: "bundle",
    cmd: "deno",
    args: ["run", "--v8-flags=--max-semi-space-size=1", "--allow-net", "p.js"],
    describe: "d",
    env: {},
  };
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

Deno.test("B4's guard: only the bundle with exactly the compile task's flags counts as shipped", () => {
  const flags = ["--no-code-cache", "--v8-flags=--max-semi-space-size=1", "--allow-net"];
  const shipped: PortagerForm = {
    form: "bundle",
    cmd: "deno",
    args: ["run", "--no-config", "--no-prompt", ...flags, "/tmp/x/portager.js"],
    describe: "d",
    env: {},
  };
  assert.equal(shippedFormProblem(shipped, flags), undefined);
  assert.match(
    shippedFormProblem(withV8Flags(shipped, ["--optimize-for-size"]), flags)!,
    /optimize-for-size form/,
  );
  assert.match(
    shippedFormProblem({ ...withV8Flags(shipped, ["--optimize-for-size"]), form: "bundle" }, flags)!,
    /not the compile task's/,
  );
  assert.match(
    shippedFormProblem({ ...shipped, args: shipped.args.filter((a) => a !== "--no-code-cache") }, flags)!,
    /not the compile task's/,
  );
  assert.match(shippedFormProblem(sourceForm({}))!, /source form/);
  assert.match(
    shippedFormProblem({ ...shipped, args: [...shipped.args.slice(0, -1), "main.ts"] }, flags)!,
    /bundle/,
  );
});
