/**
 * The flag references in the docs say what the binary says: every flag of `portager run`,
 * `serve` and `sync` (as their `--help` lists it, from the flag specs in src/cli) has one row in
 * its docs table, with the same environment variable and default, and no row names a flag the
 * binary does not take. The help text is taken from the commands themselves, in process, so the
 * docs are checked against exactly what a user sees. No servers.
 * @module
 */

import assert from "node:assert/strict";
import { main } from "../src/cli/mod.ts";

const ROOT = new URL("../", import.meta.url);

/** One flag as `--help` lists it. */
interface HelpFlag {
  name: string;
  short?: string;
  env?: string;
  default?: string;
}

/** One row of a docs flag table. */
interface DocRow {
  name: string;
  short?: string;
  env?: string;
  default: string;
  line: string;
}

/** Runs `portager <command> --help` in process and returns what it printed. */
async function helpOf(command: string): Promise<string> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    assert.equal(await main([command, "--help"]), 0, `portager ${command} --help exits 0`);
  } finally {
    console.log = log;
  }
  return lines.join("\n");
}

/**
 * The flags of a `--help` text: its `Flags:` block, one flag a line as src/cli/args.ts's
 * formatFlags writes it (`  -n, --name VALUE   help (env X; default Y)`); `--help` itself left out.
 */
function parseHelpFlags(help: string): HelpFlag[] {
  const block = help.split("\nFlags:\n")[1]?.split("\n\n")[0] ?? "";
  const flags: HelpFlag[] = [];
  for (const line of block.split("\n")) {
    const m = /^\s+(?:-([A-Za-z]), )?--([a-z0-9-]+)(?: VALUE)?\s{2,}(.*)$/.exec(line);
    assert.ok(m, `a flag line of --help: ${JSON.stringify(line)}`);
    const [, short, name, text] = m;
    if (name === "help") continue;
    const extras = / \((?:env ([A-Z][A-Z0-9_]*))?(?:; )?(?:default ([^()]*))?\)$/.exec(text);
    flags.push({ name, short, env: extras?.[1], default: extras?.[2] });
  }
  return flags;
}

/** The cells of a Markdown table row, trimmed. */
function cells(line: string): string[] {
  return line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((c) => c.trim());
}

/**
 * The flag rows of the section under `heading` (up to the next heading of any level): table
 * rows whose first cell names a flag in backticks; columns flag, env, default, meaning.
 */
function parseDocTable(markdown: string, heading: string): DocRow[] {
  const lines = markdown.split("\n");
  const start = lines.indexOf(heading);
  assert.ok(start >= 0, `the docs have a section "${heading}"`);
  const rows: DocRow[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith("#")) break;
    if (!line.startsWith("|")) continue;
    const [flag, env, def] = cells(line);
    const name = /`--([a-z0-9-]+)`/.exec(flag)?.[1];
    if (name === undefined) continue; // header or separator
    rows.push({
      name,
      short: /`-([A-Za-z])`/.exec(flag)?.[1],
      env: /`([A-Z][A-Z0-9_]*)`/.exec(env ?? "")?.[1],
      default: def ?? "",
      line,
    });
  }
  return rows;
}

/** Asserts that `rows` document exactly `flags`, each with its variable and default. */
function assertDocumented(flags: HelpFlag[], rows: DocRow[], where: string): void {
  assert.ok(flags.length >= 10, `--help lists the flags (${flags.length} parsed)`);
  const seen = new Set<string>();
  for (const row of rows) {
    assert.ok(!seen.has(row.name), `${where}: --${row.name} is documented once`);
    seen.add(row.name);
  }
  const helpNames = new Set(flags.map((f) => f.name));
  const missing = flags.filter((f) => !seen.has(f.name)).map((f) => `--${f.name}`);
  const absent = rows.filter((r) => !helpNames.has(r.name)).map((r) => `--${r.name}`);
  assert.deepEqual(missing, [], `${where}: flags of the binary missing from the docs`);
  assert.deepEqual(absent, [], `${where}: documented flags the binary does not take`);
  for (const flag of flags) {
    const row = rows.find((r) => r.name === flag.name)!;
    assert.equal(row.short, flag.short, `${where}: the short form of --${flag.name}`);
    assert.equal(row.env, flag.env, `${where}: the environment variable of --${flag.name}`);
    if (flag.default !== undefined) {
      assert.ok(
        row.default.includes(`\`${flag.default}\``),
        `${where}: the default of --${flag.name} is \`${flag.default}\` in --help; the docs say "${row.default}"`,
      );
    }
  }
}

Deno.test("docs: the help parser reads formatFlags' layout, and the table parser the docs' layout", () => {
  const help = "Usage: x\n\nFlags:\n" +
    "  -n, --namespace VALUE   watch these; default all (env WATCH_NAMESPACE)\n" +
    "      --shard-index VALUE  this shard, 0 … n-1 (with --shards) (env PORTAGER_SHARD_INDEX)\n" +
    "      --sync-timeout VALUE   0 for none (default none) (env PORTAGER_SYNC_TIMEOUT)\n" +
    "      --grace-period VALUE   how long (env GRACE_PERIOD; default 30s)\n" +
    "      --zap-devel            development mode\n" +
    "  -o, --output VALUE         text or json (default text)\n" +
    "  -h, --help                 show this help\n\nExamples:\n  x\n";
  assert.deepEqual(parseHelpFlags(help), [
    { name: "namespace", short: "n", env: "WATCH_NAMESPACE", default: undefined },
    { name: "shard-index", short: undefined, env: "PORTAGER_SHARD_INDEX", default: undefined },
    { name: "sync-timeout", short: undefined, env: "PORTAGER_SYNC_TIMEOUT", default: undefined },
    { name: "grace-period", short: undefined, env: "GRACE_PERIOD", default: "30s" },
    { name: "zap-devel", short: undefined, env: undefined, default: undefined },
    { name: "output", short: "o", env: undefined, default: "text" },
  ]);
  const doc = "# T\n\n## Flags\n\ntext\n\n| flag | env | default | |\n| --- | --- | --- | --- |\n" +
    "| `--namespace`, `-n` | `WATCH_NAMESPACE` | all | these |\n" +
    "| `--zap-devel` | | `false` | dev |\n\n**More**\n\n| flag | env | default | |\n| - | - | - | - |\n" +
    "| `--grace-period` | `GRACE_PERIOD` | `30s` | how long |\n\n### Next\n\n| `--other` | | | |\n";
  const rows = parseDocTable(doc, "## Flags");
  assert.deepEqual(
    rows.map(({ name, short, env, default: d }) => ({ name, short, env, d })),
    [
      { name: "namespace", short: "n", env: "WATCH_NAMESPACE", d: "all" },
      { name: "zap-devel", short: undefined, env: undefined, d: "`false`" },
      { name: "grace-period", short: undefined, env: "GRACE_PERIOD", d: "`30s`" },
    ],
  );
  // and the check fails on each kind of drift
  const flags = parseHelpFlags(help).filter((f) =>
    ["namespace", "zap-devel", "grace-period"].includes(f.name)
  );
  const padded = [...flags, ...Array.from({ length: 10 }, (_, i) => ({ name: `x${i}` }))];
  const paddedRows = [...rows, ...padded.slice(3).map((f) => ({ name: f.name, default: "", line: "" }))];
  assertDocumented(padded, paddedRows, "sample");
  assert.throws(() => assertDocumented(padded, paddedRows.slice(1), "sample"), /missing from the docs/);
  assert.throws(
    () => assertDocumented(padded, [...paddedRows, { name: "gone", default: "", line: "" }], "sample"),
    /does not take/,
  );
  assert.throws(
    () => assertDocumented(padded, paddedRows.map((r) => ({ ...r, env: undefined })), "sample"),
    /environment variable of --namespace/,
  );
  assert.throws(
    () => assertDocumented(padded, paddedRows.map((r) => ({ ...r, default: "`1m`" })), "sample"),
    /default of --grace-period/,
  );
});

Deno.test("docs: docs/CONFIGURATION.md's operator flags are exactly `portager run --help`'s", async () => {
  const doc = await Deno.readTextFile(new URL("docs/CONFIGURATION.md", ROOT));
  const flags = parseHelpFlags(await helpOf("run"));
  for (
    const upstream of ["leader-elect", "health-probe-bind-address", "metrics-bind-address", "metrics-secure"]
  ) {
    assert.ok(flags.some((f) => f.name === upstream), `run takes controller-runtime's --${upstream}`);
  }
  assertDocumented(flags, parseDocTable(doc, "## Operator flags"), "docs/CONFIGURATION.md, Operator flags");
});

Deno.test("docs: docs/CLI.md's flag tables are exactly `portager sync --help`'s and `serve --help`'s", async () => {
  const doc = await Deno.readTextFile(new URL("docs/CLI.md", ROOT));
  for (const command of ["sync", "serve"]) {
    assertDocumented(
      parseHelpFlags(await helpOf(command)),
      parseDocTable(doc, `### \`portager ${command}\` flags`),
      `docs/CLI.md, portager ${command} flags`,
    );
  }
});

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as dashes (`-1`, `-2` for repeats). */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  const text = markdown.replace(/^```[\s\S]*?^```/gm, "");
  for (const [, heading] of text.matchAll(/^#{1,6} (.+)$/gm)) {
    const slug = heading.trim().toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, "").replaceAll(" ", "-");
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

Deno.test("docs: every link to a section (FILE.md#anchor, #anchor) names a heading that exists", async () => {
  const files = ["README.md", "SECURITY.md"];
  for await (const entry of Deno.readDir(new URL("docs/", ROOT))) {
    if (entry.name.endsWith(".md")) files.push(`docs/${entry.name}`);
  }
  const read = new Map<string, Set<string>>();
  const headingsOf = async (path: string) => {
    if (!read.has(path)) read.set(path, anchors(await Deno.readTextFile(new URL(path, ROOT))));
    return read.get(path)!;
  };
  assert.ok((await headingsOf("docs/CONFIGURATION.md")).has("operator-flags"));
  assert.ok((await headingsOf("docs/DEPLOY.md")).has("permissions-of-the-images-binary"));
  const broken: string[] = [];
  let links = 0;
  for (const file of files) {
    const text = (await Deno.readTextFile(new URL(file, ROOT))).replace(/^```[\s\S]*?^```/gm, "");
    for (const [link, target, anchor] of text.matchAll(/\]\(([\w./-]*\.md)?#([^)\s]+)\)/g)) {
      const dir = file.includes("/") ? file.slice(0, file.lastIndexOf("/") + 1) : "";
      const path = target
        ? new URL(target, new URL(dir, ROOT)).pathname.slice(new URL(ROOT).pathname.length)
        : file;
      links++;
      if (!(await headingsOf(path).catch(() => new Set<string>())).has(anchor)) {
        broken.push(`${file}: ${link}`);
      }
    }
  }
  assert.ok(links >= 10, `links to sections found (${links})`);
  assert.deepEqual(broken, [], "links to headings that do not exist");
});
