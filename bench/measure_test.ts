import assert from "node:assert/strict";
import { median, parseProcStatus, parseRusage, runMeasured } from "./measure.ts";

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

Deno.test("runMeasured with cpu: CPU time and peak RSS from wait4, the rusage line removed from stderr", async () => {
  // a child that holds ~64 MiB and burns CPU: GNU time sees both, the sampler need not
  const r = await runMeasured("sh", [
    "-c",
    "echo err >&2; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; head -c 67108864 /dev/zero | tail -c 67108864 >/dev/null; exit 3",
  ], { cpu: true });
  assert.deepEqual(r.code, 3);
  assert.deepEqual(r.stderr, "err\n");
  assert.ok(r.cpuMs !== undefined && r.cpuMs > 0, `cpuMs ${r.cpuMs}`);
  // the child's own peak, not GNU time's (tail buffers the last 64 MiB)
  assert.ok(r.peakRssKiB !== undefined && r.peakRssKiB > 60 * 1024, `peak ${r.peakRssKiB} KiB`);
});

Deno.test("parseRusage reads GNU time's line and leaves other stderr alone", () => {
  assert.deepEqual(parseRusage("warn\nportager-bench-rusage 1.25 0.50 123456\n"), {
    cpuMs: 1750,
    maxRssKiB: 123456,
    stderr: "warn\n",
  });
  assert.deepEqual(parseRusage("no line\n"), { stderr: "no line\n" });
});
