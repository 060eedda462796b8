import assert from "node:assert/strict";
import { ScheduleError } from "./schedule.ts";
import { SemverError } from "./semver.ts";
import { TagPatternError } from "./tag_pattern.ts";
import { ValueError, valueProblem } from "./value_error.ts";

Deno.test("valueProblem: a refused value gives its message, a good one undefined, any other error is thrown", () => {
  const refuse = (text: string) => {
    throw new SemverError(text, `invalid semver constraint "${text}"`);
  };
  assert.equal(valueProblem("x", refuse), 'invalid semver constraint "x"');
  assert.equal(valueProblem("x", () => 1), undefined);
  assert.throws(() => valueProblem("x", () => JSON.parse("{")), SyntaxError);
});

Deno.test("the value errors keep their names, reasons and the rejected text", () => {
  const schedule = new ScheduleError("every hour", "m1");
  const semver = new SemverError("^x", "m2");
  const pattern = new TagPatternError("(?<n>a)", "m3");
  for (const e of [schedule, semver, pattern]) assert.ok(e instanceof ValueError && e instanceof Error);
  assert.deepEqual(
    [schedule, semver, pattern].map((e) => [String(e), e.reason, e.value]),
    [
      ["ScheduleError: m1", "InvalidSchedule", "every hour"],
      ["SemverError: m2", "InvalidSemver", "^x"],
      ["TagPatternError: m3", "InvalidTagPattern", "(?<n>a)"],
    ],
  );
});
