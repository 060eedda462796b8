import assert from "node:assert/strict";
import { loadCronParser, needsCronParser, nextRun, parseSchedule, ScheduleError } from "./schedule.ts";

// This module never imports ./cron.ts statically: cron-parser is absent until loadCronParser().
Deno.test("cron-parser loads on demand: @every and descriptors parse without it, cron expressions after loadCronParser", async () => {
  assert.equal(parseSchedule("@every 5m").kind, "every");
  assert.deepEqual(parseSchedule("@daily"), {
    kind: "cron",
    expression: "0 0 * * *",
    timeZone: "UTC",
    text: "@daily",
  });
  assert.throws(() => parseSchedule("@often"), ScheduleError, "a bad descriptor is still the user's error");
  assert.throws(() => parseSchedule("0 * * *"), /5 fields/, "so is a wrong field count");
  // a cron expression before the parser is loaded: a programming error that names the fix, not InvalidSchedule
  assert.throws(
    () => parseSchedule("0 */6 * * *"),
    (e: unknown) => !(e instanceof ScheduleError) && /loadCronParser/.test((e as Error).message),
  );
  assert.throws(() => nextRun("@daily", new Date()), /loadCronParser/);

  assert.equal(needsCronParser(" @every 1h"), false);
  assert.equal(needsCronParser("@hourly"), false);
  assert.equal(needsCronParser("0 */6 * * *"), true);
  assert.equal(needsCronParser("CRON_TZ=Europe/Paris @daily"), true);

  await loadCronParser();
  await loadCronParser(); // idempotent
  assert.equal(parseSchedule("0 */6 * * *").kind, "cron");
  assert.throws(() => parseSchedule("61 * * * *"), ScheduleError);
  assert.equal(nextRun("@daily", new Date("2025-03-01T10:07:30Z")).toISOString(), "2025-03-02T00:00:00.000Z");
});
