/**
 * Reading ImageSyncs from files for the no-cluster modes: a file, a folder of `*.yaml`,
 * `*.yml` and `*.json` files, or standard input (`-`); each file may hold several YAML
 * documents. Every document is validated with the same schema as the operator, and every
 * problem is collected at once with its file, document and field path:
 *
 * ```
 * sync.yaml: doc 2 (mirror-nginx): spec.images[2]: needs tags or semver
 * ```
 * @module
 */
import yaml from "js-yaml";
import { loadCronParser, needsCronParser, validateImageSync, type ValidImageSync } from "../api/mod.ts";

/** One valid ImageSync read from a file, with defaults applied. */
export interface LoadedImageSync {
  /** `namespace/name`; the namespace defaults to `default`, as in a cluster. */
  key: string;
  /** The file it came from as the user named it, or `<stdin>`. */
  file: string;
  /** 1-based position of its document in the file. */
  doc: number;
  /** Whether the file holds several documents (messages then name the document). */
  multiDocument: boolean;
  /** Where it came from, for messages: `sync.yaml: doc 2 (mirror-nginx)`. */
  where: string;
  /** The validated object. */
  object: ValidImageSync;
}

/** One thing wrong with the input: where and what. */
export interface LoadProblem {
  /** The file as the user named it, or `<stdin>`. */
  file: string;
  /** 1-based document number, when the file has several documents. */
  doc?: number;
  /** `metadata.name` of the document, when it has one. */
  name?: string;
  /** 1-based line and column for a YAML syntax error. */
  line?: number;
  /** Column of a YAML syntax error. */
  column?: number;
  /** Field path inside the document (`spec.images[2]`); "" for the document itself. */
  path: string;
  /** What is wrong. */
  message: string;
}

/** What was read: the valid ImageSyncs, every problem, and the files that were looked at. */
export interface LoadResult {
  imageSyncs: LoadedImageSync[];
  problems: LoadProblem[];
  files: string[];
}

/** Options for {@linkcode loadImageSyncs}. */
export interface LoadOptions {
  /** Reads standard input for the path `-`; default reads `Deno.stdin` to the end. */
  readStdin?: () => Promise<string>;
  /**
   * Whether a folder without manifest files is fine (`serve` watches it: emptying it is how a
   * user removes its last ImageSync); default false — `sync -f` reports it as a problem.
   */
  allowEmptyFolders?: boolean;
}

/** File names a folder contributes: YAML and JSON, not hidden, not editor backups. */
export function isManifestFile(name: string): boolean {
  const base = name.slice(name.lastIndexOf("/") + 1);
  if (base.startsWith(".") || base.endsWith("~")) return false;
  return /\.(ya?ml|json)$/i.test(base);
}

/** Formats a problem as one line: `file: doc N (name): path: message`. */
export function formatLoadProblem(p: LoadProblem): string {
  let where = p.file;
  if (p.line !== undefined) where += `:${p.line}${p.column !== undefined ? `:${p.column}` : ""}`;
  if (p.doc !== undefined) where += `: doc ${p.doc}`;
  if (p.name) where += ` (${p.name})`;
  return [where, p.path, p.message].filter((s) => s !== "").join(": ");
}

function describeWhere(file: string, doc: number, multi: boolean, name: string | undefined): string {
  return formatLoadProblem({ file, doc: multi ? doc : undefined, name, path: "", message: "" });
}

function nameOf(doc: unknown): string | undefined {
  if (doc === null || typeof doc !== "object") return undefined;
  const meta = (doc as Record<string, unknown>).metadata;
  if (meta === null || typeof meta !== "object") return undefined;
  const name = (meta as Record<string, unknown>).name;
  return typeof name === "string" && name !== "" ? name : undefined;
}

/** A hint for the YAML pitfall of unquoted version tags (`1.20` reads as the number 1.2). */
function withHint(path: string, message: string): string {
  if (/\.tags\[\d+\]$/.test(path) && /^must be a string, not number/.test(message)) {
    return `${message} (quote version tags in YAML: "1.20", not 1.20)`;
  }
  return message;
}

/**
 * Loads cron-parser when a document has a cron schedule, for its validation: a sync of
 * `@every` or descriptor schedules never loads it (~8 ms of start-up CPU).
 */
async function prepareSchedules(docs: unknown[]): Promise<void> {
  for (const d of docs) {
    const schedule = (d as { spec?: { schedule?: unknown } } | null | undefined)?.spec?.schedule;
    if (typeof schedule === "string" && needsCronParser(schedule)) return await loadCronParser();
  }
}

/**
 * Parses and validates the ImageSyncs in `text` (one or more YAML or JSON documents) read
 * from `file`. Empty documents are ignored; anything that is not a valid ImageSync is a problem.
 */
export async function parseImageSyncs(text: string, file: string): Promise<Omit<LoadResult, "files">> {
  const imageSyncs: LoadedImageSync[] = [];
  const problems: LoadProblem[] = [];
  let docs: unknown[];
  try {
    docs = yaml.loadAll(text, undefined, { filename: file });
  } catch (err) {
    if (err instanceof yaml.YAMLException) {
      const mark = (err as { mark?: { line: number; column: number } }).mark;
      problems.push({
        file,
        line: mark ? mark.line + 1 : undefined,
        column: mark ? mark.column + 1 : undefined,
        path: "",
        message: `invalid YAML: ${err.reason}`,
      });
      return { imageSyncs, problems };
    }
    throw err;
  }
  const present = docs.map((d, i) => ({ d, n: i + 1 })).filter(({ d }) => d !== null && d !== undefined);
  const multi = docs.length > 1;
  await prepareSchedules(docs);
  if (present.length === 0) {
    problems.push({ file, path: "", message: "no ImageSync in this file" });
  }
  for (const { d, n } of present) {
    const name = nameOf(d);
    const doc = multi ? n : undefined;
    if (typeof d !== "object" || Array.isArray(d)) {
      const what = Array.isArray(d) ? "a list" : `${typeof d} ${JSON.stringify(d)}`;
      problems.push({ file, doc, name, path: "", message: `expected an ImageSync object, found ${what}` });
      continue;
    }
    const r = validateImageSync(d);
    if (!r.ok) {
      for (const p of r.problems) {
        problems.push({ file, doc, name, path: p.path, message: withHint(p.path, p.message) });
      }
      continue;
    }
    const ns = r.value.metadata.namespace || "default";
    imageSyncs.push({
      key: `${ns}/${r.value.metadata.name}`,
      file,
      doc: n,
      multiDocument: multi,
      where: describeWhere(file, n, multi, name),
      object: r.value,
    });
  }
  return { imageSyncs, problems };
}

/** Lists the manifest files of a folder (not recursive), sorted by name. */
export async function listManifestFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if ((entry.isFile || entry.isSymlink) && isManifestFile(entry.name)) {
      out.push(dir.endsWith("/") ? dir + entry.name : `${dir}/${entry.name}`);
    }
  }
  return out.sort();
}

async function readAllStdin(): Promise<string> {
  return await new Response(Deno.stdin.readable).text();
}

function fsMessage(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "no such file or folder";
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof Deno.errors.IsADirectory) return "is a folder";
  return err instanceof Error ? err.message : String(err);
}

/** Reads and validates one file; an unreadable file is a problem, not an exception. */
export async function loadFile(file: string): Promise<Omit<LoadResult, "files">> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (err) {
    return { imageSyncs: [], problems: [{ file, path: "", message: `cannot read: ${fsMessage(err)}` }] };
  }
  return await parseImageSyncs(text, file);
}

/** Adds a problem for every ImageSync whose `namespace/name` was already seen. */
export function checkDuplicates(result: Omit<LoadResult, "files">): void {
  const seen = new Map<string, LoadedImageSync>();
  const unique: LoadedImageSync[] = [];
  for (const s of result.imageSyncs) {
    const first = seen.get(s.key);
    if (first) {
      result.problems.push({
        file: s.file,
        doc: s.multiDocument ? s.doc : undefined,
        name: s.object.metadata.name,
        path: "metadata.name",
        message: `duplicate ImageSync ${s.key} (first defined in ${first.where})`,
      });
      continue;
    }
    seen.set(s.key, s);
    unique.push(s);
  }
  result.imageSyncs = unique;
}

/**
 * Reads every ImageSync from `paths` (files, folders, or `-` for standard input), validating
 * all of them and collecting every problem; duplicate `namespace/name`s are problems too.
 */
export async function loadImageSyncs(paths: string[], options: LoadOptions = {}): Promise<LoadResult> {
  const result: LoadResult = { imageSyncs: [], problems: [], files: [] };
  const add = (r: Omit<LoadResult, "files">) => {
    result.imageSyncs.push(...r.imageSyncs);
    result.problems.push(...r.problems);
  };
  for (const path of paths) {
    if (path === "-") {
      result.files.push("<stdin>");
      add(await parseImageSyncs(await (options.readStdin ?? readAllStdin)(), "<stdin>"));
      continue;
    }
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch (err) {
      result.problems.push({ file: path, path: "", message: `cannot read: ${fsMessage(err)}` });
      continue;
    }
    if (info.isDirectory) {
      const files = await listManifestFiles(path);
      if (files.length === 0 && !options.allowEmptyFolders) {
        result.problems.push({
          file: path,
          path: "",
          message: "folder has no *.yaml, *.yml or *.json files",
        });
      }
      for (const f of files) {
        result.files.push(f);
        add(await loadFile(f));
      }
    } else {
      result.files.push(path);
      add(await loadFile(path));
    }
  }
  checkDuplicates(result);
  return result;
}
