import assert from "node:assert/strict";
import { lazyRequire } from "./bundle_lazy_require.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const DENO = Deno.execPath();

/** Deno 2.9's definitions of the bundle's require, as `deno bundle` writes them. */
const MINIFIED =
  'var k=Object.getPrototypeOf;import{createRequire as __deno_internal_createRequire} from "node:module";var m=__deno_internal_createRequire(import.meta.url);var n=(a,b)=>()=>b;export{m as a,n as b};';
const PLAIN = `var __getProtoOf = Object.getPrototypeOf;
import { createRequire as __deno_internal_createRequire } from "node:module";
var __require = __deno_internal_createRequire(import.meta.url);
export { __require };
`;

Deno.test("lazyRequire: Deno's require definition, minified or not, no longer imports node:module; the rest is untouched", () => {
  const min = lazyRequire(MINIFIED);
  assert.equal(min.rewritten, 1);
  assert.ok(!min.text.includes('node:module";var') && !/import\s*\{/.test(min.text), min.text);
  assert.ok(
    min.text.startsWith("var k=Object.getPrototypeOf;var m=") && min.text.endsWith("export{m as a,n as b};"),
  );
  const plain = lazyRequire(PLAIN);
  assert.equal(plain.rewritten, 1);
  assert.match(plain.text, /^var __require=\(\(r\)=>/m);
  assert.deepEqual(lazyRequire("export const x = 1;\n"), { text: "export const x = 1;\n", rewritten: 0 });
});

Deno.test("lazyRequire: a form it does not know fails the build instead of leaving the import", () => {
  assert.throws(
    () => lazyRequire('import{createRequire as __deno_internal_createRequire}from"node:module";let q=1;'),
    /does not know/,
  );
});

Deno.test("lazyRequire: the rewritten require loads Node built-ins when called, as createRequire does", async () => {
  const dir = await Deno.makeTempDir({ prefix: "portager-lazy-require-" });
  try {
    await Deno.writeTextFile(`${dir}/chunk.js`, lazyRequire(MINIFIED).text);
    const { a: require } = await import(`file://${dir}/chunk.js`);
    assert.equal(require("node:path").join("a", "b"), "a/b");
    assert.equal(require("node:path"), require("node:path"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The chunks `file` imports statically (`import … from "x"` and `import "x"`), as written by deno bundle. */
function staticImports(text: string): string[] {
  return [
    ...text.matchAll(
      /(?:^|[;}\s])import\s*(?:[\w$]+\s*,?\s*)?(?:\{[^}]*\}|\*\s*as\s*[\w$]+)?\s*(?:from)?\s*"([^"]+)"/g,
    ),
  ]
    .map((m) => m[1]);
}

Deno.test("deno task bundle: `portager sync` loads no node: module before it runs (no Node compatibility layer at start)", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)).tasks;
  const out = await Deno.makeTempDir({ prefix: "portager-bundle-" });
  try {
    // the bundle task's deno steps, into a fresh folder
    for (
      const step of tasks.bundle.split("&&").map((s: string) => s.trim()).filter((s: string) =>
        s.startsWith("deno ")
      )
    ) {
      const args = step.split(/\s+/).slice(1).map((w: string) => w.replaceAll("dist/bundle", out));
      const r = await new Deno.Command(DENO, { args, cwd: ROOT, stdout: "piped", stderr: "piped" }).output();
      assert.ok(r.success, `deno ${args.join(" ")}\n${new TextDecoder().decode(r.stderr)}`);
    }
    const files = [...Deno.readDirSync(out)].map((e) => e.name);
    const sync = files.filter((f) => /^sync-[\w]+\.js$/.test(f));
    assert.equal(sync.length, 1, `the sync command's chunk: ${files.join(" ")}`);
    // what main.js and the sync command's chunk load before the command's first line runs
    const seen = new Set<string>();
    const queue = ["main.js", sync[0]];
    const node: string[] = [];
    while (queue.length > 0) {
      const file = queue.shift()!;
      if (seen.has(file)) continue;
      seen.add(file);
      for (const spec of staticImports(await Deno.readTextFile(`${out}/${file}`))) {
        if (spec.startsWith("node:")) node.push(`${file} imports ${spec}`);
        else if (spec.startsWith("./")) queue.push(spec.slice(2));
      }
    }
    assert.ok(seen.size > 3, [...seen].join(" "));
    assert.deepEqual(node, []);
    // and the operator's chunks still get their CommonJS built-ins (prom-client requires node:util, …)
    const all = files.map((f) => Deno.readTextFileSync(`${out}/${f}`)).join("\n");
    assert.ok(all.includes('getBuiltinModule("node:module").createRequire(import.meta.url)'));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
