import assert from "node:assert/strict";
import { MAX_PROGRAM_SIZE, TagPattern, TagPatternError, tagPatternProblem } from "./tag_pattern.ts";

const TAGS = [
  "",
  "latest",
  "1.2.3",
  "v1.2.3",
  "1.2.3-alpine",
  "1.2.3-alpine3.20",
  "1.27",
  "nightly-20260101",
  "sha256-abc.sig",
  "main_2026.01",
  "ABC",
  "a",
  "aa",
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
];

const PATTERNS = [
  "latest",
  "v?\\d+\\.\\d+\\.\\d+",
  "\\d+\\.\\d+\\.\\d+-alpine(\\d+\\.\\d+)?",
  "nightly-\\d{8}",
  "[a-z]+",
  "[^0-9]+",
  "(?:main|release)_\\d{4}\\.\\d{2}",
  ".*\\.sig",
  "1\\.2\\.[0-3]|latest",
  "a{2}",
  "a{1,3}",
  "a{2,}",
  "(a|aa)*b",
  "^1.*$",
  "\\w+-\\w+",
  "x*",
  "[.-]?\\d+[a-z._-]*",
  "a+?",
];

Deno.test("tag patterns match whole tags exactly as an anchored regular expression does", () => {
  for (const p of PATTERNS) {
    const ours = TagPattern.parse(p);
    const js = new RegExp(`^(?:${p})$`);
    for (const t of TAGS) assert.equal(ours.matches(t), js.test(t), `${p} on ${JSON.stringify(t)}`);
  }
});

Deno.test("a pattern is anchored: it matches the whole tag, not a part", () => {
  assert.equal(TagPattern.parse("1\\.2").matches("1.2.3"), false);
  assert.equal(TagPattern.parse("alpine").matches("1.2-alpine"), false);
  assert.equal(TagPattern.parse(".*alpine").matches("1.2-alpine"), true);
});

Deno.test("what RE2 or JavaScript would read differently is refused with a message that says so", () => {
  const cases: Array<[string, RegExp]> = [
    ["(?=v)v1", /lookaround.*not supported/],
    ["(?<name>v)1", /lookaround, named groups and flags are not supported/],
    ["(?i)latest", /not supported/],
    ["(a)\\1", /backreference \\1 is not supported/],
    ["\\bv1", /escape \\b is not supported/],
    ["\\p{L}+", /escape \\p is not supported/],
    ["[[:alpha:]]+", /POSIX classes are not supported/],
    ["[]a]", /cannot start with \]/],
    ["*latest", /missing argument to repetition operator \*/],
    ["a**", /bad repetition operator \*\*/],
    ["(v1", /missing \)/],
    ["v1)", /unmatched \)/],
    ["[a-", /missing \]/],
    ["[z-a]", /bad range z-a/],
    ["a{1000}", /repeat count over 100/],
    ["a{3,2}", /max below min/],
    ["x".repeat(300), /at most 256/],
  ];
  for (const [p, re] of cases) {
    assert.throws(() => TagPattern.parse(p), (e: unknown) => {
      assert.ok(e instanceof TagPatternError, p);
      assert.equal(e.reason, "InvalidTagPattern");
      assert.match(e.message, re, p);
      return true;
    });
  }
  assert.match(tagPatternProblem("(?=x)")!, /^invalid tag pattern "\(\?=x\)": /);
  assert.equal(tagPatternProblem("v\\d+"), undefined);
  // a literal { that is not a repeat is a literal, as in RE2
  assert.equal(TagPattern.parse("a{x").matches("a{x"), true);
});

Deno.test("the cost is bounded: a program over the state limit is refused; a backtracking bomb runs in linear time", () => {
  assert.throws(
    () => TagPattern.parse("((a{100}){100}){100}"),
    new RegExp(`over ${MAX_PROGRAM_SIZE} states`),
  );
  const bomb = TagPattern.parse("(a*)*(a|aa)*b");
  const started = performance.now();
  for (let i = 0; i < 1000; i++) assert.equal(bomb.matches("a".repeat(100)), false);
  assert.ok(performance.now() - started < 2_000, "1000 evaluations that would backtrack exponentially");
  // longer than the OCI tag limit: never matches, and is not even read
  assert.equal(TagPattern.parse(".*").matches("a".repeat(129)), false);
});
