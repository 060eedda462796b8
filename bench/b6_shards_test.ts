import assert from "node:assert/strict";
import { parseStatCpuMs, processCpuMs } from "./b6_shards.ts";

Deno.test("parseStatCpuMs: utime + stime after the command name, even one with spaces and parentheses", () => {
  const stat = "4242 (deno (worker) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 56 0 0 20 0 9 0 100 0 0";
  assert.equal(parseStatCpuMs(stat), (1234 + 56) * 10);
  assert.equal(parseStatCpuMs("garbage"), undefined);
});

Deno.test("processCpuMs reads this process, and nothing for a pid that is gone", () => {
  assert.ok((processCpuMs(Deno.pid) ?? -1) >= 0);
  assert.equal(processCpuMs(2 ** 22 + 17), undefined);
});
