import assert from "node:assert/strict";
import { parseDuration, splitList } from "./common.ts";

Deno.test("parseDuration reads Go-style durations", () => {
  assert.equal(parseDuration("30s", "--x"), 30_000);
  assert.equal(parseDuration("1h30m", "--x"), 5_400_000);
  assert.equal(parseDuration("250ms", "--x"), 250);
  assert.throws(() => parseDuration("30", "--grace-period"), /--grace-period must be a duration.*"30"/);
  assert.throws(() => parseDuration("5x", "--x"), /duration/);
});

Deno.test("splitList flattens repeated and comma lists", () => {
  assert.deepEqual(splitList(["a,b", " c ", ""]), ["a", "b", "c"]);
  assert.deepEqual(splitList(undefined), []);
});
