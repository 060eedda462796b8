import assert from "node:assert/strict";
import "./cron.ts";
import { nextRun, parseGoDuration, parseSchedule, ScheduleError, scheduleProblem } from "./schedule.ts";

Deno.test("parseGoDuration reads Go durations", () => {
  const cases: Array<[string, number]> = [
    ["30s", 30_000],
    ["5m", 300_000],
    ["6h", 21_600_000],
    ["1h30m", 5_400_000],
    ["1.5h", 5_400_000],
    ["2h45m0.5s", 9_900_500],
    ["300ms", 300],
    ["1500us", 1.5],
    ["1500\u00b5s", 1.5],
    ["0", 0],
    ["-1m", -60_000],
    ["+2s", 2000],
    [".5s", 500],
  ];
  for (const [text, ms] of cases) assert.equal(parseGoDuration(text), ms, text);
  for (const bad of ["", "1", "1d", "h", "1hh", "1.h.5", "abc", "1 h", "-"]) {
    assert.throws(() => parseGoDuration(bad), Error, bad);
  }
  assert.throws(() => parseGoDuration("1d"), /write 24h for a day/);
});

Deno.test("parseSchedule accepts cron, descriptors and @every", () => {
  assert.deepEqual(parseSchedule("@every 1h30m"), {
    kind: "every",
    intervalMs: 5_400_000,
    text: "@every 1h30m",
  });
  assert.deepEqual(parseSchedule("*/5 * * * *"), {
    kind: "cron",
    expression: "*/5 * * * *",
    timeZone: "UTC",
    text: "*/5 * * * *",
  });
  const daily = parseSchedule("@daily");
  assert.equal(daily.kind === "cron" && daily.expression, "0 0 * * *");
  const tz = parseSchedule("CRON_TZ=Europe/Paris 0 6 * * MON-FRI");
  assert.equal(tz.kind === "cron" && tz.timeZone, "Europe/Paris");
  for (const ok of ["@hourly", "@weekly", "@monthly", "@yearly", "@annually", "@midnight", "0 */6 * * *"]) {
    assert.equal(scheduleProblem(ok), undefined, ok);
  }
});

Deno.test("@every rounds as upstream's robfig/cron: under 1s runs every 1s, fractions of a second are dropped", () => {
  const interval = (text: string) => {
    const s = parseSchedule(text);
    return s.kind === "every" ? s.intervalMs : undefined;
  };
  assert.equal(interval("@every 0s"), 1000);
  assert.equal(interval("@every 500ms"), 1000);
  assert.equal(interval("@every -5m"), 1000);
  assert.equal(interval("@every 1500ms"), 1000);
  assert.equal(interval("@every 2.5s"), 2000);
  assert.equal(interval("@every 90s"), 90_000);
  assert.equal(scheduleProblem("@every 100ms"), undefined);
});

Deno.test("parseSchedule rejects bad schedules with messages that say what works", () => {
  const cases: Array<[string, RegExp]> = [
    ["", /schedule is empty/],
    ["@every", /needs one duration/],
    ["@every 1d", /write 24h for a day/],
    ["@every 5", /missing unit/],
    ["@often", /unknown schedule descriptor "@often"/],
    ["* * * *", /5 fields .* found 4/],
    ["0 * * * * *", /5 fields .* found 6/],
    ["61 * * * *", /invalid schedule "61 \* \* \* \*"/],
    ["not a cron", /5 fields/],
    ["CRON_TZ=Mars/Olympus 0 * * * *", /unknown time zone "Mars\/Olympus"/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseSchedule(text), (e: unknown) => {
      assert.ok(e instanceof ScheduleError, text);
      assert.equal(e.reason, "InvalidSchedule");
      assert.match(e.message, re, text);
      return true;
    });
  }
});

Deno.test("nextRun: @every counts from the last sync", () => {
  const last = new Date("2025-03-01T10:00:07.250Z");
  assert.equal(nextRun("@every 2s", last).toISOString(), "2025-03-01T10:00:09.250Z");
  assert.equal(nextRun("@every 1h30m", last).toISOString(), "2025-03-01T11:30:07.250Z");
});

Deno.test("nextRun: cron gives the next matching minute strictly after from", () => {
  const at = (iso: string, s: string) => nextRun(s, new Date(iso)).toISOString();
  assert.equal(at("2025-03-01T10:07:30Z", "*/5 * * * *"), "2025-03-01T10:10:00.000Z");
  assert.equal(at("2025-03-01T10:10:00Z", "*/5 * * * *"), "2025-03-01T10:15:00.000Z");
  assert.equal(at("2025-03-01T10:07:30Z", "0 */6 * * *"), "2025-03-01T12:00:00.000Z");
  assert.equal(at("2025-03-01T10:07:30Z", "@daily"), "2025-03-02T00:00:00.000Z");
  assert.equal(at("2025-03-01T10:07:30Z", "@hourly"), "2025-03-01T11:00:00.000Z");
  assert.equal(at("2025-03-01T10:07:30Z", "@monthly"), "2025-04-01T00:00:00.000Z");
  // 2025-03-01 is a Saturday; weekdays at 06:00 Paris (UTC+1 in March) is Monday 05:00Z.
  assert.equal(
    at("2025-03-01T10:07:30Z", "CRON_TZ=Europe/Paris 0 6 * * MON-FRI"),
    "2025-03-03T05:00:00.000Z",
  );
});
