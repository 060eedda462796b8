/**
 * Validation of ImageSync objects with messages a user can act on: every problem at once,
 * each with the path of the field (`spec.images[2]: needs tags or semver`,
 * `spec.images[0].tag: unknown field (did you mean "tags"?)`).
 * @module
 */
import * as z from "zod/mini";
import {
  ImageSyncSchema,
  ImageSyncSpecSchema,
  type ValidImageSync,
  type ValidImageSyncSpec,
} from "./schema.ts";

/** One thing wrong with an object: where (`spec.images[2].name`) and what. */
export interface Problem {
  /** Dotted path with [index] for list items; "" for the object itself. */
  path: string;
  /** What is wrong and, where possible, what would be right. */
  message: string;
}

/** The outcome of validation: the value with defaults applied, or every problem found. */
export type ValidationResult<T> = { ok: true; value: T } | { ok: false; problems: Problem[] };

/** Formats a path like `spec.images[2].name`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out;
}

/** Formats problems one per line as `path: message`. */
export function formatProblems(problems: Problem[]): string {
  return problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join("\n");
}

function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  switch (typeof value) {
    case "string":
      return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value)}`;
    case "number":
    case "boolean":
      return `${typeof value} ${String(value)}`;
    case "object":
      return "an object";
    default:
      return typeof value;
  }
}

const EXPECTED_WORDS: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  object: "an object",
  array: "a list",
};

/** The parts of a schema's definition {@linkcode knownKeys} walks. */
interface SchemaDef {
  type: string;
  innerType?: z.core.$ZodType;
  shape?: Record<string, z.core.$ZodType>;
  element?: z.core.$ZodType;
}

function defOf(schema: z.core.$ZodType): SchemaDef {
  return schema._zod.def as SchemaDef;
}

/** Walks the schema along `path` to find the fields an object there may have. */
function knownKeys(root: z.core.$ZodType, path: ReadonlyArray<PropertyKey>): string[] {
  let schema: z.core.$ZodType | undefined = root;
  const unwrap = (s: z.core.$ZodType): z.core.$ZodType => {
    let cur = s;
    for (let i = 0; i < 10; i++) {
      const def = defOf(cur);
      if (def.innerType && ["optional", "default", "nullable", "prefault", "readonly"].includes(def.type)) {
        cur = def.innerType;
      } else break;
    }
    return cur;
  };
  for (const part of path) {
    if (!schema) return [];
    const def = defOf(unwrap(schema));
    if (def.type === "object" && typeof part === "string") schema = def.shape?.[part];
    else if (def.type === "array" && typeof part === "number") schema = def.element;
    else return [];
  }
  if (!schema) return [];
  const def = defOf(unwrap(schema));
  return def.type === "object" && def.shape ? Object.keys(def.shape) : [];
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0];
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j];
      dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length];
}

function suggestion(key: string, known: string[]): string {
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestScore = Infinity;
  for (const k of known) {
    const score = k.toLowerCase() === lower ? 0 : editDistance(lower, k.toLowerCase());
    if (score < bestScore) {
      best = k;
      bestScore = score;
    }
  }
  if (best !== undefined && bestScore <= Math.max(2, Math.floor(key.length / 3))) {
    return ` (did you mean "${best}"?)`;
  }
  return known.length > 0 ? ` (known fields: ${known.join(", ")})` : "";
}

function isDefaultMessage(message: string): boolean {
  return /^(Invalid|Too (small|big)|Unrecognized|Expected)/.test(message);
}

function problemsFrom(
  issues: z.core.$ZodIssue[],
  root: z.core.$ZodType,
  input: unknown,
  prefix: PropertyKey[],
): Problem[] {
  const out: Problem[] = [];
  const seen = new Set<string>();
  const push = (path: ReadonlyArray<PropertyKey>, message: string) => {
    const p = { path: formatPath([...prefix, ...path]), message };
    const key = `${p.path}\u0000${p.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(p);
    }
  };
  const valueAt = (path: ReadonlyArray<PropertyKey>): unknown => {
    let cur: unknown = input;
    for (const part of path) {
      if (cur === null || typeof cur !== "object") return undefined;
      cur = (cur as Record<PropertyKey, unknown>)[part];
    }
    return cur;
  };
  for (const issue of issues) {
    switch (issue.code) {
      case "unrecognized_keys": {
        const known = knownKeys(root, issue.path as PropertyKey[]);
        for (const key of issue.keys) push([...issue.path, key], `unknown field${suggestion(key, known)}`);
        break;
      }
      case "invalid_type": {
        const value = valueAt(issue.path as PropertyKey[]);
        const expected = EXPECTED_WORDS[issue.expected] ?? issue.expected;
        if (value === undefined) push(issue.path, "is required");
        else push(issue.path, `must be ${expected}, not ${describeValue(value)}`);
        break;
      }
      case "invalid_value": {
        if (!isDefaultMessage(issue.message)) push(issue.path, issue.message);
        else if (issue.values.length === 1) push(issue.path, `must be ${JSON.stringify(issue.values[0])}`);
        else push(issue.path, `must be one of: ${issue.values.map((v) => String(v)).join(", ")}`);
        break;
      }
      case "too_small": {
        if (!isDefaultMessage(issue.message)) push(issue.path, issue.message);
        else if (issue.origin === "array") push(issue.path, `needs at least ${issue.minimum} item(s)`);
        else if (issue.origin === "string") {
          push(
            issue.path,
            issue.minimum === 1 ? "must not be empty" : `needs at least ${issue.minimum} characters`,
          );
        } else push(issue.path, `must be ${issue.inclusive ? "at least" : "more than"} ${issue.minimum}`);
        break;
      }
      case "too_big": {
        if (!isDefaultMessage(issue.message)) push(issue.path, issue.message);
        else if (issue.origin === "string") push(issue.path, `must be at most ${issue.maximum} characters`);
        else push(issue.path, `must be ${issue.inclusive ? "at most" : "less than"} ${issue.maximum}`);
        break;
      }
      default:
        push(issue.path, issue.message);
    }
  }
  return out;
}

/**
 * Validates a whole ImageSync object (apiVersion, kind, metadata, spec, optional status) and
 * returns it with defaults applied, or every problem with its path from the object's root.
 */
export function validateImageSync(obj: unknown): ValidationResult<ValidImageSync> {
  const r = ImageSyncSchema.safeParse(obj);
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, problems: problemsFrom(r.error.issues, ImageSyncSchema, obj, []) };
}

/** Validates just a spec; problem paths start with `spec.` as in a whole object. */
export function validateImageSyncSpec(spec: unknown): ValidationResult<ValidImageSyncSpec> {
  const r = ImageSyncSpecSchema.safeParse(spec);
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, problems: problemsFrom(r.error.issues, ImageSyncSpecSchema, spec, ["spec"]) };
}
