/**
 * The programs compared: Portager (the `deno task bundle` output, run as the compiled binary
 * would, and optionally the source form) and the peers skopeo (Debian), crane, regctl and
 * regsync (built from their Go modules by scripts/build-tools.sh and cached by version).
 * A missing peer is built or installed on demand by bench/tools.sh; one that still cannot be
 * had is reported as unavailable, never silently dropped.
 * @module
 */

import { runMeasured } from "./measure.ts";

/** Repository root (bench/ lives directly under it). */
export const ROOT: string = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** The Deno binary pinned in package.json. */
export const DENO: string = `${ROOT}/node_modules/.bin/deno`;

/** A peer tool: where it is, its version, or why it is missing. */
export interface Peer {
  /** "skopeo", "crane", "regctl" or "regsync". */
  name: string;
  /** Absolute path of the binary, when available. */
  path?: string;
  /** Version string as the tool reports it (or the version it was built from). */
  version?: string;
  /** Why it is unavailable. */
  missing?: string;
}

/** How Portager is run: the command line up to (not including) the subcommand. */
export interface PortagerForm {
  /** "bundle" (dist/bundle/ as `deno task bundle` makes it) or "source" (main.ts). */
  form: string;
  /** Executable. */
  cmd: string;
  /** Arguments before the subcommand (`run`, `sync`, …). */
  args: string[];
  /** Human-readable description for the report. */
  describe: string;
  /** Environment the form needs (Deno's cache folder, so a scratch HOME does not empty it). */
  env: Record<string, string>;
}

/** The peer tools of the benchmark, in table order. */
export const PEER_NAMES = ["skopeo", "crane", "regctl", "regsync"] as const;

/** The cache root of scripts/build-tools.sh. */
export function toolCache(): string {
  return Deno.env.get("PORTAGER_TEST_CACHE") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/portager-test`;
}

/** The version scripts/build-tools.sh builds for `variable` (env override, else its default). */
export function buildVersion(variable: string): string {
  const fromEnv = Deno.env.get(variable);
  if (fromEnv) return fromEnv;
  const script = Deno.readTextFileSync(`${ROOT}/scripts/build-tools.sh`);
  const m = script.match(new RegExp(`${variable}="\\$\\{${variable}:-([^}"]+)\\}"`));
  if (!m) throw new Error(`scripts/build-tools.sh names no default ${variable}`);
  return m[1];
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function builtPath(dir: string, variable: string, binary: string): string | undefined {
  const bin = `${toolCache()}/${dir}-${buildVersion(variable)}/bin`;
  return exists(`${bin}/.done`) && exists(`${bin}/${binary}`) ? `${bin}/${binary}` : undefined;
}

async function firstLine(cmd: string, args: string[]): Promise<string | undefined> {
  try {
    const r = await runMeasured(cmd, args, { timeoutMs: 20_000 });
    const text = (r.stdout.trim() || r.stderr.trim()).split("\n")[0];
    return r.code === 0 ? text : undefined;
  } catch {
    return undefined;
  }
}

async function locate(name: (typeof PEER_NAMES)[number]): Promise<Peer> {
  switch (name) {
    case "skopeo": {
      const path = "/usr/bin/skopeo";
      if (!exists(path)) return { name, missing: "skopeo is not installed (apt-get install skopeo)" };
      return { name, path, version: (await firstLine(path, ["--version"]))?.replace(/^skopeo version /, "") };
    }
    case "crane": {
      const path = builtPath("crane", "CRANE_VERSION", "crane");
      if (!path) return { name, missing: "crane is not built (scripts/build-tools.sh crane)" };
      return { name, path, version: buildVersion("CRANE_VERSION") };
    }
    case "regctl":
    case "regsync": {
      const path = builtPath("regclient", "REGCLIENT_VERSION", name);
      if (!path) return { name, missing: `${name} is not built (scripts/build-tools.sh regclient)` };
      return { name, path, version: buildVersion("REGCLIENT_VERSION") };
    }
  }
}

/**
 * Finds every peer; if some are missing and `build` is set, runs bench/tools.sh once to
 * install/build them and looks again.
 */
export async function findPeers(opts: { build?: boolean; log?: (s: string) => void } = {}): Promise<Peer[]> {
  let peers = await Promise.all(PEER_NAMES.map(locate));
  if (opts.build !== false && peers.some((p) => p.missing)) {
    opts.log?.(`building/installing missing peers: ${peers.filter((p) => p.missing).map((p) => p.name)}`);
    const r = await runMeasured("bash", [`${ROOT}/bench/tools.sh`], { timeoutMs: 1_200_000 });
    if (r.code !== 0) opts.log?.(`bench/tools.sh failed (${r.code}):\n${r.stderr.slice(-2000)}`);
    peers = await Promise.all(PEER_NAMES.map(locate));
  }
  return peers;
}

/** `deno compile` options that only shape the binary and mean nothing to `deno run`. */
const COMPILE_ONLY = ["--output", "-o", "--target", "--include", "--exclude", "--icon", "--no-terminal"];

/**
 * Splits a task's command line into words as the shell does for the quoting tasks use: blanks
 * separate words, and single or double quotes group (and are removed), e.g.
 * `'--allow-env=AWS_*,HOME'` is one word without its quotes.
 */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  for (const m of line.matchAll(/(?:[^\s'"]+|'[^']*'|"[^"]*")+/g)) {
    words.push(m[0].replace(/'([^']*)'|"([^"]*)"/g, (_, a, b) => a ?? b));
  }
  return words;
}

/**
 * The runtime flags `deno compile …` in `task` bakes into the binary — permissions, V8 flags,
 * `--no-code-cache` — in the task's order, without the binary-only options and the entry point.
 */
export function compileFlagsOf(task: string): string[] {
  const compile = task.split("&&").map((s) => s.trim()).find((s) => s.startsWith("deno compile")) ?? "";
  const words = shellWords(compile).slice(2);
  const flags: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (!w.startsWith("-")) continue; // the entry point
    const name = w.split("=")[0];
    if (COMPILE_ONLY.includes(name)) {
      if (!w.includes("=")) i++; // `--output dist/portager`
      continue;
    }
    flags.push(w);
  }
  return flags;
}

/** The runtime flags of `deno task compile`, read from deno.json (see {@linkcode compileFlagsOf}). */
export function compileFlags(): string[] {
  const json = JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`));
  return compileFlagsOf(json.tasks?.compile ?? "");
}

/** The permissions `deno task compile` bakes into the binary, read from deno.json. */
export function compilePermissions(): string[] {
  return compileFlags().filter((a) => a.startsWith("--allow-"));
}

/**
 * `form` with extra V8 flags appended to its `--v8-flags=` (or a new one): a candidate
 * setting measured beside what ships.
 */
export function withV8Flags(form: PortagerForm, extra: string[]): PortagerForm {
  const i = form.args.findIndex((a) => a.startsWith("--v8-flags="));
  const args = [...form.args];
  if (i >= 0) args[i] = `${args[i]},${extra.join(",")}`;
  else args.splice(1, 0, `--v8-flags=${extra.join(",")}`);
  return {
    ...form,
    form: `${form.form}, + ${extra.join(" ")}`,
    args,
    describe: `${form.describe}, plus V8 flag(s) ${extra.join(" ")}`,
  };
}

/** `form` without the V8 flags `flags` (its `--v8-flags=` dropped when none is left). */
export function withoutV8Flags(form: PortagerForm, flags: string[]): PortagerForm {
  const args = form.args.flatMap((a) => {
    if (!a.startsWith("--v8-flags=")) return [a];
    const kept = a.slice("--v8-flags=".length).split(",").filter((f) => !flags.includes(f));
    return kept.length ? [`--v8-flags=${kept.join(",")}`] : [];
  });
  return {
    ...form,
    form: `${form.form}, without ${flags.join(" ")}`,
    args,
    describe: `${form.describe}, without V8 flag(s) ${flags.join(" ")}`,
  };
}

/**
 * `form` with its `--v8-flags=` replaced by exactly `flags` (none: no `--v8-flags` at all): a
 * candidate V8 flag set measured beside what ships (bench/v8_flags.ts). The label names the set.
 */
export function withOnlyV8Flags(form: PortagerForm, flags: string[]): PortagerForm {
  const at = form.args.findIndex((a) => a.startsWith("--v8-flags="));
  const args = form.args.filter((_, i) => i !== at);
  if (flags.length) args.splice(at >= 0 ? at : 1, 0, `--v8-flags=${flags.join(",")}`);
  const label = flags.length ? flags.join(" ") : "(no V8 flags)";
  return {
    ...form,
    form: `${form.form}, v8 ${label}`,
    args,
    describe: `${form.describe}, V8 flags ${label} only`,
  };
}

/**
 * The V8 flag that sizes the heap for memory rather than speed: V8 collects old-generation
 * and ArrayBuffer garbage sooner and grows its heap less. It only takes effect from the command
 * line (`node:v8` `setFlagsFromString` once the isolate exists changes nothing measurable), so
 * it is the compile task's choice, for every command of the binary.
 */
export const SIZE_V8_FLAGS = ["--optimize-for-size"];

/**
 * The form measured beside `form` to show what {@linkcode SIZE_V8_FLAGS} does: `form` without
 * them when it has them (what the shipped flag costs and buys), with them when it has not (a
 * candidate).
 */
export function sizeFlagsCounterpart(form: PortagerForm): PortagerForm {
  const v8 = form.args.find((a) => a.startsWith("--v8-flags="))?.slice("--v8-flags=".length).split(",") ?? [];
  return SIZE_V8_FLAGS.every((f) => v8.includes(f))
    ? withoutV8Flags(form, SIZE_V8_FLAGS)
    : withV8Flags(form, SIZE_V8_FLAGS);
}

/**
 * The report's note on the row of {@linkcode sizeFlagsCounterpart}`(form)`: what it is and why it
 * is there. `opts.row` is the row's label when the table names it otherwise than the form.
 */
export function sizeFlagsNote(form: PortagerForm, opts: { row?: string } = {}): string {
  const other = sizeFlagsCounterpart(form);
  const row = opts.row ?? other.form;
  const flags = SIZE_V8_FLAGS.join(" ");
  return other.form.includes("without")
    ? `The "${row}" row is the shipped form without ${flags}, which the compile task adds so that V8 sizes its heap for memory rather than speed: what the flag buys and costs.`
    : `The "${row}" row is a candidate, not what ships: V8 sizes its heap for memory rather than speed.`;
}

/** deno.json's tasks. */
function tasks(): Record<string, string> {
  return JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`)).tasks ?? {};
}

/**
 * The `deno bundle …` command of the bundle task `task`, writing into `outdir` instead of the
 * task's `--outdir` (the task's other steps before it, such as removing a stale `dist/bundle`,
 * do not apply to a fresh folder). `dir` is the task's own output folder, e.g. `dist/bundle`;
 * `after` are the task's `deno …` steps after it (e.g. scripts/bundle_lazy_require.ts), each
 * with `dir` replaced by `outdir`: the bundle is not the shipped one until they ran.
 */
export function bundleCommandOf(
  task: string,
  outdir: string,
): { args: string[]; dir: string; after: string[][] } {
  const steps = task.split("&&").map((s) => s.trim());
  const at = steps.findIndex((s) => s.startsWith("deno bundle"));
  const words = shellWords(steps[at] ?? "").slice(1);
  const dir = words.find((w) => w.startsWith("--outdir="))?.slice("--outdir=".length);
  if (at < 0 || !dir || !words.includes("--code-splitting")) {
    throw new Error(`the bundle task does not split code into an --outdir: ${task}`);
  }
  const after = steps.slice(at + 1).map((s) => {
    if (!s.startsWith("deno ")) throw new Error(`the bundle task has a step the bench cannot run: ${s}`);
    return shellWords(s).slice(1).map((w) => w.replaceAll(dir, outdir));
  });
  return { args: words.map((w) => w.startsWith("--outdir=") ? `--outdir=${outdir}` : w), dir, after };
}

/**
 * The entry point `deno compile …` in `task` embeds, relative to the bundle folder `dir`
 * (e.g. `main.js` for `dist/bundle/main.js`); deno compile follows its imports, the chunks'
 * static and string-literal dynamic imports, and embeds every chunk it reaches.
 */
export function compileEntryOf(task: string, dir: string): string {
  const compile = task.split("&&").map((s) => s.trim()).find((s) => s.startsWith("deno compile")) ?? "";
  const words = shellWords(compile).slice(2);
  const entry = words.filter((w, i) => !w.startsWith("-") && !/^(--output|-o)$/.test(words[i - 1] ?? "")).at(
    -1,
  );
  if (!entry?.startsWith(`${dir}/`)) {
    throw new Error(`deno compile's entry point (${entry}) is not in the bundle's folder ${dir}`);
  }
  return entry.slice(dir.length + 1);
}

/**
 * The chunks of the bundle folder `dir` that `entry` does not reach, as `deno info` follows
 * its imports (the module graph `deno compile` embeds); empty when every chunk is embedded.
 */
export async function unreachableChunks(dir: string, entry: string): Promise<string[]> {
  const r = await runMeasured(DENO, ["info", "--json", "--no-config", `${dir}/${entry}`], {
    timeoutMs: 60_000,
  });
  if (r.code !== 0) throw new Error(`deno info ${dir}/${entry} failed:\n${r.stderr.slice(-1500)}`);
  const graph: { modules: Array<{ specifier: string }> } = JSON.parse(r.stdout);
  const reached = new Set(
    graph.modules.map((m) => m.specifier).filter((s) => s.startsWith("file:")).map((s) =>
      decodeURIComponent(new URL(s).pathname)
    ),
  );
  const files = [...Deno.readDirSync(dir)].filter((e) => e.isFile).map((e) => `${dir}/${e.name}`);
  return files.filter((f) => !reached.has(f)).sort();
}

/**
 * The environment the image's final stage sets (its `ENV` instructions after the last `FROM`;
 * both `ENV K=V …` and `ENV K V`): the binary in the image always runs with it, so the shipped
 * form does too. glibc reads its `MALLOC_*` settings at process start only.
 */
export function imageEnvOf(dockerfile: string): Record<string, string> {
  const lines = dockerfile.replace(/\\\n/g, " ").split("\n").map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const from = lines.findLastIndex((l) => /^FROM\s/i.test(l));
  const env: Record<string, string> = {};
  for (const line of lines.slice(from + 1)) {
    if (!/^ENV\s/i.test(line)) continue;
    const words = shellWords(line.slice(4));
    if (words.length > 0 && !words[0].includes("=")) {
      env[words[0]] = words.slice(1).join(" ");
      continue;
    }
    for (const w of words) env[w.slice(0, w.indexOf("="))] = w.slice(w.indexOf("=") + 1);
  }
  return env;
}

/** The image's runtime environment, read from the Dockerfile (see {@linkcode imageEnvOf}). */
export function imageEnv(): Record<string, string> {
  return imageEnvOf(Deno.readTextFileSync(`${ROOT}/Dockerfile`));
}

/** Variables the bench itself sets for every form (Deno's cache folder): not the program's. */
const BENCH_ENV = ["DENO_DIR"];

/**
 * Builds the bundle exactly as `deno task bundle` does (code split into chunks), into
 * `dir/bundle`, and returns how to run it the way the compiled binary runs: no config, and
 * every runtime flag of the compile task (permissions, `--v8-flags`, `--no-code-cache`), from
 * the entry point the compile task embeds. Throws with the bundler's output when the bundle
 * cannot be built, and when a chunk is not reachable from that entry (the binary would lack it).
 */
export async function buildBundleForm(dir: string, env: Record<string, string>): Promise<PortagerForm> {
  const { bundle, compile } = tasks();
  const outdir = `${dir}/bundle`;
  const { args, dir: taskDir, after } = bundleCommandOf(bundle ?? "", outdir);
  const entry = `${outdir}/${compileEntryOf(compile ?? "", taskDir)}`;
  for (const step of [args, ...after]) {
    const r = await runMeasured(DENO, step, { cwd: ROOT, timeoutMs: 300_000 });
    if (r.code !== 0) throw new Error(`deno ${step.join(" ")} failed:\n${r.stderr.slice(-1500)}`);
  }
  const missing = await unreachableChunks(outdir, entry.slice(outdir.length + 1));
  if (missing.length) throw new Error(`deno compile would not embed ${missing.join(", ")}`);
  const flags = compileFlags();
  const runArgs = ["run", "--no-config", "--no-prompt", ...flags, entry];
  env = { ...env, ...imageEnv() };
  // `deno run` analyses a script it has not seen before and caches the result in DENO_DIR
  // (~+35 MiB RSS in that run only, with or without the V8 code cache); run it once so every
  // measured run is alike. docs/PERFORMANCE.md discusses the cold case.
  const warm = await runMeasured(DENO, [...runArgs, "version"], { env, timeoutMs: 60_000 });
  if (warm.code !== 0) throw new Error(`the bundle does not run:\n${warm.stderr.slice(-1500)}`);
  return {
    form: "bundle",
    cmd: DENO,
    args: runArgs,
    describe: `${Object.entries(imageEnv()).map(([k, v]) => `${k}=${v} `).join("")}deno run ${
      flags.join(" ")
    } ${taskDir}/${
      entry.slice(outdir.length + 1)
    } (the bundle deno task compile embeds, with its flags and the image's ENV)`,
    env,
  };
}

/** What {@linkcode shippedFormProblem} compares a form with; each defaults to what the repository ships. */
export interface ShippedForm {
  /** The compile task's runtime flags (default: read from deno.json). */
  flags?: string[];
  /** The entry point the compile task embeds, relative to the bundle folder (default: from deno.json). */
  entry?: string;
  /** The image's runtime environment (default: the Dockerfile's final-stage ENV). */
  env?: Record<string, string>;
}

/**
 * Why `form` is not what `deno task compile` ships — the bundle, run with no config and exactly
 * the compile task's runtime flags, in order, from the compile task's entry point, with exactly
 * the image's ENV (no more, no less, besides the bench's own DENO_DIR) — or undefined when it
 * is. B4 reports memory only for the shipped form: a figure of another form (the source, a
 * candidate's V8 flags or malloc settings, a fallback when the bundle did not build) is not
 * what users run.
 */
export function shippedFormProblem(form: PortagerForm, shipped: ShippedForm = {}): string | undefined {
  const flags = shipped.flags ?? compileFlags();
  const entry = shipped.entry ??
    compileEntryOf(tasks().compile ?? "", bundleCommandOf(tasks().bundle ?? "", "").dir);
  const env = shipped.env ?? imageEnv();
  if (form.form !== "bundle") return `it is the ${form.form} form, not the bundle deno task compile embeds`;
  for (const [k, v] of Object.entries(env)) {
    if (form.env[k] !== v) {
      return `its environment has ${k}=${form.env[k] ?? "(unset)"}, the image's ENV ${k}=${v}`;
    }
  }
  for (const k of Object.keys(form.env)) {
    if (!(k in env) && !BENCH_ENV.includes(k)) {
      return `its environment sets ${k}, which the image's ENV does not`;
    }
  }
  const want = ["run", "--no-config", "--no-prompt", ...flags];
  const got = form.args.slice(0, -1);
  if (got.join(" ") !== want.join(" ")) {
    return `its flags (${got.join(" ")}) are not the compile task's (${want.join(" ")})`;
  }
  if (!form.args.at(-1)?.endsWith(`/bundle/${entry}`)) {
    return `it does not run the bundle's entry point ${entry} (${form.args.at(-1)})`;
  }
  return undefined;
}

/** `deno run main.ts` with the compile task's runtime flags: the unbundled source form. */
export function sourceForm(env: Record<string, string>): PortagerForm {
  const flags = compileFlags();
  return {
    form: "source",
    cmd: DENO,
    args: ["run", "--no-prompt", `--config=${ROOT}/deno.json`, ...flags, `${ROOT}/main.ts`],
    describe: `deno run ${flags.join(" ")} main.ts (source, with the image's ENV)`,
    env: { ...env, ...imageEnv() },
  };
}

/** Deno's cache folder (DENO_DIR), as `deno info` reports it. */
export async function denoDir(): Promise<string> {
  const r = await runMeasured(DENO, ["info", "--json"], { timeoutMs: 30_000 });
  try {
    return JSON.parse(r.stdout).denoDir;
  } catch {
    return Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;
  }
}

/** Deno's own version line, e.g. "2.9.6". */
export async function denoVersion(): Promise<string> {
  return (await firstLine(DENO, ["--version"]))?.replace(/^deno /, "").split(" ")[0] ?? "unknown";
}
