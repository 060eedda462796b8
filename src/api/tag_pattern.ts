/**
 * Tag patterns (`images[].tagPatterns`, `excludeTagPatterns`): regular expressions in a subset
 * of RE2's syntax — the one Go's `regexp` (and so regsync, skopeo's and zot's filters) reads
 * — that means the same in RE2 and here, always matched against the whole tag.
 *
 * The subset: literals, `.`, classes `[a-z0-9._-]` and `[^…]`, `\d \w \s \D \W \S`, escaped
 * punctuation (`\.`), groups `(…)` and `(?:…)`, `|`, `* + ?` and `{n}`, `{n,}`, `{n,m}` (each
 * optionally lazy with `?`, which does not change what a whole tag matches), `^` and `$`.
 * Refused with a message: lookaround, backreferences, named groups, flags, `\b`, `\p{…}`,
 * POSIX classes — RE2 lacks some, JavaScript others.
 *
 * Matching never backtracks: the pattern compiles to a Thompson NFA simulated over the tag,
 * so the cost is at most (tag length × program size) per tag, with both bounded: patterns are
 * at most {@linkcode MAX_PATTERN_LENGTH} characters and {@linkcode MAX_PROGRAM_SIZE} states,
 * and tags longer than 128 characters (the OCI limit) never match.
 * @module
 */

import { ValueError, valueProblem } from "./value_error.ts";

/** Longest pattern accepted. */
export const MAX_PATTERN_LENGTH = 256;
/** Largest count in `{n,m}`. */
export const MAX_REPEAT = 100;
/** Most NFA states one pattern compiles to (repetitions expand). */
export const MAX_PROGRAM_SIZE = 2000;
/** Longest tag the OCI distribution spec allows; longer tags never match. */
const MAX_TAG_LENGTH = 128;

/** A pattern that is not in the supported subset; `reason` is the stable reason. */
export class TagPatternError extends ValueError {
  /** Always "InvalidTagPattern". */
  override readonly reason = "InvalidTagPattern";
  /** Always "TagPatternError". */
  override readonly name = "TagPatternError";
}

type CharTest = (c: string) => boolean;

type Node =
  | { kind: "char"; test: CharTest }
  | { kind: "empty" }
  | { kind: "begin" }
  | { kind: "end" }
  | { kind: "concat"; items: Node[] }
  | { kind: "alt"; items: Node[] }
  | { kind: "repeat"; item: Node; min: number; max: number | undefined };

const DIGIT: CharTest = (c) => c >= "0" && c <= "9";
const WORD: CharTest = (c) => DIGIT(c) || (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c === "_";
// RE2's \s: [\t\n\f\r ] (no vertical tab)
const SPACE: CharTest = (c) => c === " " || c === "\t" || c === "\n" || c === "\f" || c === "\r";
const not = (t: CharTest): CharTest => (c) => !t(c);
const PERL_CLASSES: Record<string, CharTest> = {
  d: DIGIT,
  D: not(DIGIT),
  w: WORD,
  W: not(WORD),
  s: SPACE,
  S: not(SPACE),
};
const isPunct = (c: string) => /^[!-\/:-@\[-`{-~]$/.test(c);

/** Recursive-descent parser of the subset. */
class Parser {
  readonly #text: string;
  #pos = 0;

  constructor(text: string) {
    this.#text = text;
  }

  #fail(what: string, at = this.#pos): never {
    throw new TagPatternError(
      this.#text,
      `invalid tag pattern ${JSON.stringify(this.#text)}: ${what} at ${at + 1}`,
    );
  }

  #peek(): string | undefined {
    return this.#text[this.#pos];
  }

  parse(): Node {
    const node = this.#alt();
    if (this.#pos < this.#text.length) this.#fail("unmatched )");
    return node;
  }

  #alt(): Node {
    const items = [this.#concat()];
    while (this.#peek() === "|") {
      this.#pos++;
      items.push(this.#concat());
    }
    return items.length === 1 ? items[0] : { kind: "alt", items };
  }

  #concat(): Node {
    const items: Node[] = [];
    for (let c = this.#peek(); c !== undefined && c !== "|" && c !== ")"; c = this.#peek()) {
      if (c === "*" || c === "+" || c === "?") this.#fail(`missing argument to repetition operator ${c}`);
      const atom = this.#atom();
      items.push(this.#quantified(atom));
    }
    if (items.length === 0) return { kind: "empty" };
    return items.length === 1 ? items[0] : { kind: "concat", items };
  }

  #quantified(atom: Node): Node {
    const start = this.#pos;
    let bounds: { min: number; max: number | undefined } | undefined;
    const c = this.#peek();
    if (c === "*") bounds = { min: 0, max: undefined };
    else if (c === "+") bounds = { min: 1, max: undefined };
    else if (c === "?") bounds = { min: 0, max: 1 };
    if (bounds) this.#pos++;
    else if (c === "{") bounds = this.#braces();
    if (!bounds) return atom;
    if (this.#peek() === "?") this.#pos++; // lazy: the same whole-tag matches
    const next = this.#peek();
    if (next === "*" || next === "+" || next === "?" || (next === "{" && this.#looksLikeBraces())) {
      this.#fail(`bad repetition operator ${this.#text.slice(start, this.#pos + 1)}`);
    }
    if (atom.kind === "begin" || atom.kind === "end") {
      this.#fail("missing argument to repetition operator", start);
    }
    return { kind: "repeat", item: atom, ...bounds };
  }

  #looksLikeBraces(): boolean {
    return /^\{\d+(,\d*)?\}/.test(this.#text.slice(this.#pos));
  }

  /** `{n}`, `{n,}`, `{n,m}`; anything else starting with `{` is a literal `{`, as in RE2. */
  #braces(): { min: number; max: number | undefined } | undefined {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(this.#text.slice(this.#pos));
    if (!m) return undefined;
    const min = Number(m[1]);
    const max = m[2] === undefined ? min : m[3] === "" ? undefined : Number(m[3]);
    if (min > MAX_REPEAT || (max !== undefined && max > MAX_REPEAT)) {
      this.#fail(`repeat count over ${MAX_REPEAT} in ${m[0]}`);
    }
    if (max !== undefined && max < min) this.#fail(`bad repetition ${m[0]} (max below min)`);
    this.#pos += m[0].length;
    return { min, max };
  }

  #atom(): Node {
    const at = this.#pos;
    const c = this.#text[this.#pos++];
    switch (c) {
      case "(": {
        if (this.#peek() === "?") {
          if (this.#text.startsWith("?:", this.#pos)) this.#pos += 2;
          else {
            this.#fail(
              "lookaround, named groups and flags are not supported (RE2 has no lookaround); use (?:…)",
            );
          }
        }
        const inner = this.#alt();
        if (this.#peek() !== ")") this.#fail("missing )", at);
        this.#pos++;
        return inner;
      }
      case "[":
        return this.#class(at);
      case ".":
        return { kind: "char", test: (x) => x !== "\n" };
      case "^":
        return { kind: "begin" };
      case "$":
        return { kind: "end" };
      case "\\":
        return { kind: "char", test: this.#escape(at) };
      default:
        return { kind: "char", test: (x) => x === c };
    }
  }

  #escape(at: number): CharTest {
    const e = this.#text[this.#pos++];
    if (e === undefined) this.#fail("trailing backslash", at);
    if (PERL_CLASSES[e]) return PERL_CLASSES[e];
    if (isPunct(e)) return (x) => x === e;
    if (e === "t") return (x) => x === "\t";
    if (e === "n") return (x) => x === "\n";
    if (/[0-9]/.test(e)) this.#fail(`backreference \\${e} is not supported (RE2 has none)`, at);
    return this.#fail(`escape \\${e} is not supported (write the character, or \\d \\w \\s)`, at);
  }

  #class(at: number): Node {
    let negate = false;
    if (this.#peek() === "^") {
      negate = true;
      this.#pos++;
    }
    if (this.#peek() === "]") this.#fail("a class cannot start with ]: escape it as \\]");
    const tests: CharTest[] = [];
    while (this.#peek() !== "]") {
      const c = this.#peek();
      if (c === undefined) this.#fail("missing ]", at);
      if (c === "[") this.#fail("[ inside a class must be escaped as \\[ (POSIX classes are not supported)");
      const from = this.#classChar();
      if (typeof from !== "string") {
        tests.push(from);
        continue;
      }
      if (
        this.#peek() === "-" && this.#text[this.#pos + 1] !== "]" && this.#text[this.#pos + 1] !== undefined
      ) {
        const dash = this.#pos++;
        const to = this.#classChar();
        if (typeof to !== "string") this.#fail("a range cannot end in a class like \\d", dash);
        if (to < from) this.#fail(`bad range ${from}-${to}`, dash);
        tests.push((x) => x >= from && x <= to);
      } else {
        tests.push((x) => x === from);
      }
    }
    this.#pos++;
    const inClass: CharTest = (x) => tests.some((t) => t(x));
    return { kind: "char", test: negate ? (x) => !inClass(x) : inClass };
  }

  /** One class member: a character, or a Perl class such as \d. */
  #classChar(): string | CharTest {
    const at = this.#pos;
    const c = this.#text[this.#pos++];
    if (c !== "\\") return c;
    const e = this.#text[this.#pos++];
    if (e === undefined) this.#fail("trailing backslash", at);
    if (PERL_CLASSES[e]) return PERL_CLASSES[e];
    if (isPunct(e)) return e;
    if (e === "t") return "\t";
    if (e === "n") return "\n";
    return this.#fail(`escape \\${e} is not supported in a class`, at);
  }
}

/** An NFA instruction. */
type Inst =
  | { op: "char"; test: CharTest; next: number }
  | { op: "split"; next: number; alt: number }
  | { op: "begin"; next: number }
  | { op: "end"; next: number }
  | { op: "match" };

/** Compiles the tree into a program; returns the entry state. */
class Compiler {
  readonly prog: Inst[] = [];
  readonly #pattern: string;

  constructor(pattern: string) {
    this.#pattern = pattern;
  }

  #emit(inst: Inst): number {
    if (this.prog.length >= MAX_PROGRAM_SIZE) {
      throw new TagPatternError(
        this.#pattern,
        `invalid tag pattern ${
          JSON.stringify(this.#pattern)
        }: too complex (over ${MAX_PROGRAM_SIZE} states; ` +
          `use fewer or smaller {n,m} repeats)`,
      );
    }
    this.prog.push(inst);
    return this.prog.length - 1;
  }

  /** Emits `node` so that it continues at `next`; returns its entry. */
  compile(node: Node, next: number): number {
    switch (node.kind) {
      case "empty":
        return next;
      case "char":
        return this.#emit({ op: "char", test: node.test, next });
      case "begin":
      case "end":
        return this.#emit({ op: node.kind, next });
      case "concat": {
        let entry = next;
        for (let i = node.items.length - 1; i >= 0; i--) entry = this.compile(node.items[i], entry);
        return entry;
      }
      case "alt": {
        let entry = this.compile(node.items[node.items.length - 1], next);
        for (let i = node.items.length - 2; i >= 0; i--) {
          entry = this.#emit({ op: "split", next: this.compile(node.items[i], next), alt: entry });
        }
        return entry;
      }
      case "repeat": {
        let entry = next;
        if (node.max === undefined) {
          // x* : a loop through a split
          const split = this.#emit({ op: "split", next: -1, alt: next });
          const body = this.compile(node.item, split);
          (this.prog[split] as { next: number }).next = body;
          entry = split;
        } else {
          // x{n,m}: m-n optional copies, each either taken (then maybe the next) or skipped
          for (let i = node.max; i > node.min; i--) {
            entry = this.#emit({ op: "split", next: this.compile(node.item, entry), alt: next });
          }
        }
        for (let i = 0; i < node.min; i++) entry = this.compile(node.item, entry);
        return entry;
      }
    }
  }
}

/** A parsed tag pattern; {@linkcode TagPattern.matches} tests a whole tag. */
export class TagPattern {
  /** The pattern as written. */
  readonly source: string;
  readonly #prog: Inst[];
  readonly #start: number;

  private constructor(source: string, prog: Inst[], start: number) {
    this.source = source;
    this.#prog = prog;
    this.#start = start;
  }

  /** Parses `text`; throws {@linkcode TagPatternError} for anything outside the subset. */
  static parse(text: string): TagPattern {
    if (text.length > MAX_PATTERN_LENGTH) {
      throw new TagPatternError(
        text,
        `invalid tag pattern: ${text.length} characters, at most ${MAX_PATTERN_LENGTH} are allowed`,
      );
    }
    const tree = new Parser(text).parse();
    const c = new Compiler(text);
    const match = c.prog.push({ op: "match" }) - 1;
    const start = c.compile(tree, match);
    return new TagPattern(text, c.prog, start);
  }

  /** Whether the whole of `tag` matches (the pattern is anchored at both ends). */
  matches(tag: string): boolean {
    if (tag.length > MAX_TAG_LENGTH) return false;
    let current = this.#closure([this.#start], 0, tag.length);
    for (let i = 0; i < tag.length && current.length > 0; i++) {
      const next: number[] = [];
      for (const s of current) {
        const inst = this.#prog[s];
        if (inst.op === "char" && inst.test(tag[i])) next.push(inst.next);
      }
      current = this.#closure(next, i + 1, tag.length);
    }
    return current.some((s) => this.#prog[s].op === "match");
  }

  /** The states reachable from `from` without reading a character, at position `pos`. */
  #closure(from: number[], pos: number, length: number): number[] {
    const seen = new Set<number>();
    const out: number[] = [];
    const stack = [...from];
    while (stack.length > 0) {
      const s = stack.pop()!;
      if (seen.has(s)) continue;
      seen.add(s);
      const inst = this.#prog[s];
      switch (inst.op) {
        case "split":
          stack.push(inst.next, inst.alt);
          break;
        case "begin":
          if (pos === 0) stack.push(inst.next);
          break;
        case "end":
          if (pos === length) stack.push(inst.next);
          break;
        default:
          out.push(s);
      }
    }
    return out;
  }
}

/** Why `text` is not a valid tag pattern, or undefined when it is. */
export function tagPatternProblem(text: string): string | undefined {
  return valueProblem(text, TagPattern.parse);
}
