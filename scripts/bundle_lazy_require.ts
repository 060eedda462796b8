/**
 * The last step of `deno task bundle`: makes the bundle's CommonJS `require` lazy.
 *
 * `deno bundle` (esbuild) gives CommonJS modules that require Node built-ins (prom-client, the
 * AWS SDK, cron-parser) a `require` defined in the chunk of esbuild's runtime helpers, and Deno
 * defines it as `createRequire(import.meta.url)` from a static `import … from "node:module"`.
 * Every chunk that uses any helper imports that chunk — `main.js` among them — so every
 * command, `sync -f` too, loaded `node:module` and with it Deno's Node compatibility layer:
 * ~20–30 ms of CPU and ~9 MB before the first line of Portager ran (B1 in
 * docs/PERFORMANCE.md). This step rewrites that definition into the same
 * `createRequire(import.meta.url)`, made on the first call through `process.getBuiltinModule`:
 * a command loads the layer only when CommonJS code it runs requires a built-in, then.
 *
 * `deno run --allow-read=dist/bundle --allow-write=dist/bundle scripts/bundle_lazy_require.ts dist/bundle`
 * @module
 */

/** Deno's definition of the bundle's `require` (minified or not); group 1 is its name. */
const SHIM =
  /import\s*\{\s*createRequire as __deno_internal_createRequire\s*\}\s*from\s*"node:module";?\s*var ([\w$]+)\s*=\s*__deno_internal_createRequire\(import\.meta\.url\);/g;

/**
 * `source` (one chunk of a bundle) with Deno's `require` definition made lazy: the same
 * `createRequire(import.meta.url)`, created on the first call. Throws when the chunk still
 * names `__deno_internal_createRequire` afterwards (a Deno release wrote the shim another way:
 * this step must learn it rather than leave the eager import in place unnoticed).
 */
export function lazyRequire(source: string): { text: string; rewritten: number } {
  let rewritten = 0;
  const text = source.replace(SHIM, (_, name: string) => {
    rewritten++;
    return `var ${name}=((r)=>(s)=>(r??=globalThis.process.getBuiltinModule("node:module").createRequire(import.meta.url))(s))();`;
  });
  if (text.includes("__deno_internal_createRequire")) {
    throw new Error(
      "the bundle defines require in a form scripts/bundle_lazy_require.ts does not know: " +
        text.slice(Math.max(0, text.indexOf("__deno_internal_createRequire") - 80)).slice(0, 240),
    );
  }
  return { text, rewritten };
}

/** Rewrites every `.js` chunk of the bundle folder `dir` in place; returns how many shims it made lazy. */
export function lazyRequireIn(dir: string): number {
  let total = 0;
  for (const entry of Deno.readDirSync(dir)) {
    if (!entry.isFile || !entry.name.endsWith(".js")) continue;
    const path = `${dir}/${entry.name}`;
    const { text, rewritten } = lazyRequire(Deno.readTextFileSync(path));
    if (rewritten > 0) Deno.writeTextFileSync(path, text);
    total += rewritten;
  }
  return total;
}

if (import.meta.main) {
  const dir = Deno.args[0];
  if (!dir) {
    console.error("usage: bundle_lazy_require.ts <bundle folder>");
    Deno.exit(2);
  }
  console.log(`bundle_lazy_require: made ${lazyRequireIn(dir)} require definition(s) lazy in ${dir}`);
}
