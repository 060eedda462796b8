import assert from "node:assert/strict";
import { median, parseProcStatus, runMeasured } from "./measure.ts";

Deno.test("parseProcStatus reads VmHWM, VmRSS and RssAnon in KiB, and nothing from a zombie", () => {
  const live = "Name:\tdeno\nVmPeak:\t  900000 kB\nVmHWM:\t  131072 kB\nVmRSS:\t   65536 kB\nThreads:\t9\n";
  assert.deepEqual(parseProcStatus(live), { hwm: 131072, rss: 65536 });
  const split = live.replace("Threads", "RssAnon:\t   20480 kB\nRssFile:\t   45056 kB\nThreads");
  assert.deepEqual(parseProcStatus(split), { hwm: 131072, rss: 65536, anon: 20480 });
  assert.deepEqual(parseProcStatus("Name:\tdeno\nState:\tZ (zombie)\nThreads:\t1\n"), undefined);
});

Deno.test("median of odd and even counts, unsorted input left untouched", () => {
  const values = [5, 1, 3];
  assert.deepEqual(median(values), 3);
  assert.deepEqual(values, [5, 1, 3]);
  assert.deepEqual(median([4, 1, 3, 2]), 2.5);
  assert.deepEqual(Number.isNaN(median([])), true);
});

Deno.test("runMeasured reports exit code, output and a peak RSS of the child", async () => {
  const r = await runMeasured("sh", [
    "-c",
    "echo out; echo err >&2; head -c 8000000 /dev/zero | tail -c 1 >/dev/null; exit 3",
  ]);
  assert.deepEqual(r.code, 3);
  assert.deepEqual(r.stdout, "out\n");
  assert.deepEqual(r.stderr, "err\n");
  assert.deepEqual(typeof r.peakRssKiB, "number");
  assert.deepEqual(r.peakRssKiB! > 0, true);
});
