import assert from "node:assert/strict";
import {
  compareVersions,
  matchingTags,
  parseVersion,
  SemverConstraint,
  semverConstraintProblem,
  SemverError,
} from "./semver.ts";

Deno.test("parseVersion accepts tags the way Masterminds NewVersion does", () => {
  const cases: Array<[string, string | undefined]> = [
    ["1.2.3", "1.2.3"],
    ["v1.2.3", "1.2.3"],
    ["1.2", "1.2.0"],
    ["1", "1.0.0"],
    ["v2", "2.0.0"],
    ["01.02.03", "1.2.3"], // leading zeros in the numeric segments are coerced
    ["1.2.3-rc.1", "1.2.3-rc.1"],
    ["1.22-alpine", "1.22.0-alpine"],
    ["1.2.3+build.5", "1.2.3"],
    ["1.2.3-beta+exp.sha.5114f85", "1.2.3-beta"],
    ["latest", undefined],
    ["alpine", undefined],
    ["1.2.3.4", undefined],
    ["V1.2.3", undefined],
    ["1.2.3-01", undefined], // numeric pre-release identifier with a leading zero
    ["1.2.3-", undefined],
    ["1..2", undefined],
    ["", undefined],
    ["sha256-abc.sig", undefined],
    ["18446744073709551616.0.0", undefined], // > uint64
  ];
  for (const [tag, want] of cases) {
    const v = parseVersion(tag);
    if (want === undefined) {
      assert.equal(v, undefined, `${tag} should not parse`);
      continue;
    }
    assert.ok(v, `${tag} should parse`);
    const pre = v.prerelease.length ? "-" + v.prerelease.join(".") : "";
    assert.equal(`${v.major}.${v.minor}.${v.patch}${pre}`, want, tag);
    assert.equal(v.original, tag);
  }
});

Deno.test("parseVersion keeps long numeric tags exact", () => {
  const v = parseVersion("20240101123456789.1.2")!;
  assert.equal(v.major, 20240101123456789n);
});

Deno.test("compareVersions follows SemVer precedence", () => {
  const ordered = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "1.10.0",
    "2.0.0",
  ];
  for (let i = 0; i < ordered.length; i++) {
    for (let j = 0; j < ordered.length; j++) {
      const got = compareVersions(parseVersion(ordered[i])!, parseVersion(ordered[j])!);
      assert.equal(got, Math.sign(i - j), `${ordered[i]} vs ${ordered[j]}`);
    }
  }
  assert.equal(compareVersions(parseVersion("1.2.3+a")!, parseVersion("v1.2.3+b")!), 0);
});

/** [constraint, versions that match, versions that do not]. */
const TABLE: Array<[string, string[], string[]]> = [
  ["1.2.3", ["1.2.3", "v1.2.3", "1.2.3+build"], ["1.2.4", "1.2.2", "1.2.3-rc.1"]],
  ["=1.2.3", ["1.2.3"], ["1.2.4"]],
  ["!=1.2.3", ["1.2.4", "1.2.2"], ["1.2.3"]],
  ["!=1.2.x", ["1.3.0", "2.2.0"], ["1.2.0", "1.2.9"]],
  ["!=1.x", ["2.0.0", "0.9.0"], ["1.0.0", "1.9.9"]],
  ["1.x", ["1.0.0", "1.5.3", "1.99.0", "1"], ["2.0.0", "0.9.9", "1.5.0-rc.1"]],
  ["1.X", ["1.5.3"], ["2.0.0"]],
  ["1.*", ["1.5.3"], ["2.0.0"]],
  ["1.2.x", ["1.2.0", "1.2.7"], ["1.3.0", "1.1.9"]],
  ["1.2", ["1.2.0", "1.2.7"], ["1.3.0"]],
  ["1", ["1.0.0", "1.9.0"], ["2.0.0"]],
  ["*", ["0.0.1", "1.0.0", "99.1.1"], ["1.0.0-rc.1"]],
  ["x", ["1.2.3"], []],
  ["~1.3.0", ["1.3.0", "1.3.9"], ["1.4.0", "1.2.9"]],
  ["~1.2.3", ["1.2.3", "1.2.9"], ["1.3.0", "1.2.2"]],
  ["~1.2", ["1.2.0", "1.2.9"], ["1.3.0"]],
  ["~1", ["1.0.0", "1.9.9"], ["2.0.0"]],
  ["~>1.2.3", ["1.2.5"], ["1.3.0"]],
  ["~0", ["0.0.1", "0.9.0"], ["1.0.0"]],
  ["^1.3.0", ["1.3.0", "1.9.9"], ["2.0.0", "1.2.9"]],
  ["^1.2", ["1.2.0", "1.9.0"], ["2.0.0", "1.1.0"]],
  ["^1", ["1.0.0", "1.9.0"], ["2.0.0"]],
  ["^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2", "1.0.0"]],
  ["^0.2", ["0.2.0", "0.2.9"], ["0.3.0"]],
  ["^0.0.3", ["0.0.3"], ["0.0.4", "0.1.0"]],
  ["^0.0", ["0.0.0", "0.0.9"], ["0.1.0"]],
  ["^0", ["0.0.0", "0.9.9"], ["1.0.0"]],
  ["^*", ["0.0.1", "5.0.0"], []],
  [">= 1.22.0, < 1.23.0", ["1.22.0", "1.22.5"], ["1.23.0", "1.21.9"]],
  [">=1.22.0 <1.23.0", ["1.22.5"], ["1.23.0"]],
  [">=1.22.0,<1.23.0", ["1.22.5"], ["1.23.0"]],
  ["=> 1.2, =< 1.4", ["1.2.0", "1.3.5", "1.4.0", "1.4.9"], ["1.5.0", "1.1.0"]],
  [">1.2.3", ["1.2.4", "2.0.0"], ["1.2.3", "1.2.2"]],
  [">1.2", ["1.3.0"], ["1.2.9", "1.2.0"]],
  [">1", ["2.0.0"], ["1.9.9"]],
  ["<1.2.3", ["1.2.2", "0.1.0"], ["1.2.3"]],
  ["<1.2", ["1.1.9"], ["1.2.0"]],
  ["<=1.2.3", ["1.2.3"], ["1.2.4"]],
  ["<=1.2", ["1.2.0", "1.2.9"], ["1.3.0"]],
  ["<=1", ["1.9.9"], ["2.0.0"]],
  ["1.2 - 1.4.5", ["1.2.0", "1.3.0", "1.4.5"], ["1.4.6", "1.1.9"]],
  ["1.2.3 - 2", ["1.2.3", "2.9.9"], ["3.0.0"]],
  ["^1.2.0 || ^3.0.0", ["1.5.0", "3.1.0"], ["2.0.0", "4.0.0"]],
  ["< 1.0.0 || >= 2.0.0", ["0.9.0", "2.0.0"], ["1.5.0"]],
  ["v1.2.x", ["1.2.3"], ["1.3.0"]],
  ["^v1.2.0", ["v1.4.0"], ["v2.0.0"]],
];

Deno.test("constraints match like Masterminds/semver", () => {
  for (const [constraint, yes, no] of TABLE) {
    const c = SemverConstraint.parse(constraint);
    for (const v of yes) assert.ok(c.matches(v), `${constraint} should match ${v}`);
    for (const v of no) assert.ok(!c.matches(v), `${constraint} should not match ${v}`);
  }
});

Deno.test("pre-releases match only when the constraint names one on the same major.minor.patch", () => {
  const c = SemverConstraint.parse(">= 1.3.0-rc.0, < 1.4.0");
  assert.ok(c.matches("1.3.0-rc.1"));
  assert.ok(c.matches("1.3.0"));
  assert.ok(c.matches("1.3.5"));
  assert.ok(!c.matches("1.3.1-rc.1"), "a pre-release of another patch stays out");
  assert.ok(!c.matches("1.3.0-alpha"), "below rc.0 by precedence");
  assert.ok(!SemverConstraint.parse("^1.2.0").matches("1.3.0-rc.1"));
  assert.ok(!SemverConstraint.parse(">=1.0.0").matches("2.0.0-beta"));
  assert.ok(SemverConstraint.parse("~1.2.3-beta").matches("1.2.3-beta.2"));
  assert.ok(SemverConstraint.parse("~1.2.3-beta").matches("1.2.4"));
  assert.ok(!SemverConstraint.parse("~1.2.3-beta").matches("1.2.4-beta"));
  assert.ok(SemverConstraint.parse("1.2.3-rc.1").matches("1.2.3-rc.1"));
  assert.ok(!SemverConstraint.parse("1.2.3-rc.1").matches("1.2.3-rc.2"));
  // Only the alternative that names it lets a pre-release in.
  const alt = SemverConstraint.parse("^2.0.0 || >=1.5.0-beta.1 <1.6.0");
  assert.ok(alt.matches("1.5.0-beta.3"));
  assert.ok(!alt.matches("2.1.0-beta.1"));
});

Deno.test("invalid constraints are rejected with a message that quotes them", () => {
  const bad = ["", "   ", "abc", ">=", "1.2.3.4", ">= 1.x.y", "1.2 ||", "~>", "1.2.3-01", "^latest"];
  for (const text of bad) {
    assert.throws(() => SemverConstraint.parse(text), SemverError, text);
    const problem = semverConstraintProblem(text);
    assert.ok(problem, text);
    if (text.trim()) assert.ok(problem.includes(`"${text}"`), problem);
  }
  assert.equal(semverConstraintProblem(">= 1.22.0, < 1.23.0"), undefined);
  try {
    SemverConstraint.parse(">= 1.x.y");
  } catch (e) {
    assert.ok(e instanceof SemverError);
    assert.equal(e.reason, "InvalidSemver");
  }
});

Deno.test("toString normalizes the constraint", () => {
  assert.equal(SemverConstraint.parse(">= 1.22.0, < 1.23.0").toString(), ">=1.22.0 <1.23.0");
  assert.equal(SemverConstraint.parse("~>1.2 || 2.x").toString(), "~1.2 || 2.x");
  assert.equal(SemverConstraint.parse("1.2 - 1.4").toString(), ">=1.2 <=1.4");
});

Deno.test("matchingTags sorts newest first, ignores non-versions and honours the limit", () => {
  const tags = [
    "latest",
    "1.25.3",
    "v1.25.10",
    "1.25.3-alpine",
    "1.24.0",
    "1.25",
    "1.25.10",
    "1.26.0-rc.1",
    "alpine",
    "2.0.0",
    "sha256-deadbeef.sig",
  ];
  assert.deepEqual(matchingTags(tags, "1.x"), [
    "1.25.10",
    "v1.25.10",
    "1.25.3",
    "1.25",
    "1.24.0",
  ]);
  assert.deepEqual(matchingTags(tags, "1.x", { limit: 2 }), ["1.25.10", "v1.25.10"]);
  assert.deepEqual(matchingTags(tags, "1.x", { limit: 0 }).length, 5);
  assert.deepEqual(matchingTags(tags, "~1.25.0"), ["1.25.10", "v1.25.10", "1.25.3", "1.25"]);
  assert.deepEqual(matchingTags(tags, ">=1.26.0-rc.0"), ["2.0.0", "1.26.0-rc.1"]);
  assert.deepEqual(matchingTags(tags, "^3"), []);
  assert.deepEqual(matchingTags([], "*"), []);
});
