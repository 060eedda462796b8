/**
 * Kubernetes label selectors (`--watch-label-selector`), checked before anything starts: the
 * apiserver would refuse a bad one on every list with 400 and the informer would retry forever.
 * The grammar is apimachinery's `labels.Parse`: requirements separated by commas, each `key`,
 * `!key`, `key=value`, `key==value`, `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`,
 * `key>n` or `key<n`. A selector's canonical form (one spelling per requirement, no spaces but
 * the ones `in`/`notin` need) names its shard's Lease, so spacing does not change the Lease.
 * @module
 */

/** A `--watch-label-selector` the apiserver would refuse. */
export class InvalidLabelSelectorError extends Error {
  /** Stable reason. */
  readonly reason = "InvalidLabelSelector";
  /** Creates the error for `selector`; `detail` says what is wrong. */
  constructor(selector: string, detail: string) {
    super(
      `invalid label selector "${selector}": ${detail} (write e.g. "sharding.portager.io/key in (shard1)" ` +
        `or "!sharding.portager.io/key")`,
    );
    this.name = "InvalidLabelSelectorError";
  }
}

/** One requirement of a selector. */
export interface LabelRequirement {
  /** The label key. */
  key: string;
  /** `exists` (`key`), `!` (`!key`), `=`, `!=`, `in`, `notin`, `>` or `<`. */
  op: "exists" | "!" | "=" | "!=" | "in" | "notin" | ">" | "<";
  /** The values (one for `=`, `!=`, `>`, `<`; one or more for `in`, `notin`; none otherwise). */
  values: string[];
}

const NAME = "[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?";
const PREFIX = "[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*";
const KEY = `(?:${PREFIX}/)?${NAME}`;
const VALUE = `(?:${NAME})?`;
const KEY_RE = new RegExp(`^${KEY}$`);
const VALUE_RE = new RegExp(`^${VALUE}$`);
const SET_RE = new RegExp(`^(${KEY})\\s+(in|notin)\\s*\\(([^()]*)\\)$`);
const CMP_RE = new RegExp(`^(${KEY})\\s*(==|=|!=|>|<)\\s*([^\\s=!<>]*)$`);

/** Splits at the commas outside parentheses. */
function splitRequirements(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i];
    if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "," && depth === 0) {
      parts.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(selector.slice(start));
  return parts.map((p) => p.trim());
}

function checkKey(selector: string, key: string): void {
  const prefix = key.includes("/") ? key.slice(0, key.indexOf("/")) : "";
  if (!KEY_RE.test(key) || prefix.length > 253) {
    throw new InvalidLabelSelectorError(
      selector,
      `"${key}" is not a label key (an optional DNS prefix and "/", then up to 63 letters, digits, "-", "_" ` +
        `or ".", starting and ending with a letter or digit)`,
    );
  }
}

function checkValue(selector: string, value: string): void {
  if (!VALUE_RE.test(value)) {
    throw new InvalidLabelSelectorError(
      selector,
      `"${value}" is not a label value (up to 63 letters, digits, "-", "_" or ".", starting and ending with ` +
        `a letter or digit)`,
    );
  }
}

function requirement(selector: string, text: string): LabelRequirement {
  if (text === "") throw new InvalidLabelSelectorError(selector, "an empty requirement (a stray comma?)");
  if (text.startsWith("!")) {
    const key = text.slice(1).trim();
    checkKey(selector, key);
    return { key, op: "!", values: [] };
  }
  const set = SET_RE.exec(text);
  if (set) {
    const values = set[3].split(",").map((v) => v.trim());
    if (set[3].trim() === "") {
      throw new InvalidLabelSelectorError(selector, `"${set[2]}" needs at least one value`);
    }
    for (const v of values) checkValue(selector, v);
    return { key: set[1], op: set[2] as "in" | "notin", values };
  }
  const cmp = CMP_RE.exec(text);
  if (cmp) {
    const op = cmp[2] === "==" ? "=" : cmp[2] as LabelRequirement["op"];
    if ((op === ">" || op === "<") && !/^-?\d+$/.test(cmp[3])) {
      throw new InvalidLabelSelectorError(selector, `"${op}" needs a whole number, got "${cmp[3]}"`);
    }
    if (op !== ">" && op !== "<") checkValue(selector, cmp[3]);
    return { key: cmp[1], op, values: [cmp[3]] };
  }
  if (!/[\s=!<>()]/.test(text)) {
    checkKey(selector, text);
    return { key: text, op: "exists", values: [] };
  }
  throw new InvalidLabelSelectorError(selector, `cannot read "${text}"`);
}

/**
 * The requirements of `selector`; throws {@linkcode InvalidLabelSelectorError} where the
 * apiserver would refuse it. An empty (or blank) selector selects everything: no requirement.
 */
export function parseLabelSelector(selector: string): LabelRequirement[] {
  if (selector.trim() === "") return [];
  return splitRequirements(selector).map((text) => requirement(selector, text));
}

/** The canonical spelling of parsed requirements: `!k`, `k`, `k=v`, `k!=v`, `k in (a,b)`, `k>1`. */
export function formatLabelSelector(requirements: LabelRequirement[]): string {
  return requirements.map((r) => {
    switch (r.op) {
      case "exists":
        return r.key;
      case "!":
        return `!${r.key}`;
      case "in":
      case "notin":
        return `${r.key} ${r.op} (${r.values.join(",")})`;
      default:
        return `${r.key}${r.op}${r.values[0]}`;
    }
  }).join(",");
}

/** Whether `labels` satisfy every requirement (apimachinery's `labels.Selector.Matches`). */
export function selects(requirements: LabelRequirement[], labels: Record<string, string> = {}): boolean {
  return requirements.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    const value = labels[r.key];
    switch (r.op) {
      case "exists":
        return has;
      case "!":
        return !has;
      case "=":
        return has && value === r.values[0];
      case "!=":
        return !has || value !== r.values[0];
      case "in":
        return has && r.values.includes(value);
      case "notin":
        return !has || !r.values.includes(value);
      default: {
        if (!has || !/^-?\d+$/.test(value)) return false;
        const n = Number(value);
        const bound = Number(r.values[0]);
        return r.op === ">" ? n > bound : n < bound;
      }
    }
  });
}
