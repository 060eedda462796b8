import assert from "node:assert/strict";
import { formatLabelSelector, InvalidLabelSelectorError, parseLabelSelector } from "./label_selector.ts";

const canonical = (s: string) => formatLabelSelector(parseLabelSelector(s));

Deno.test("label selector: every form the apiserver reads, in one canonical spelling", () => {
  assert.deepEqual(parseLabelSelector("!sharding.portager.io/key"), [
    { key: "sharding.portager.io/key", op: "!", values: [] },
  ]);
  assert.deepEqual(parseLabelSelector(" sharding.portager.io/key in ( a , b ) "), [
    { key: "sharding.portager.io/key", op: "in", values: ["a", "b"] },
  ]);
  assert.equal(canonical("sharding.portager.io/key in (shard1)"), "sharding.portager.io/key in (shard1)");
  assert.equal(canonical("! tier"), "!tier");
  assert.equal(
    canonical("env == prod, tier!=web,team notin (a,b),x,n > 3, m<-1"),
    "env=prod,tier!=web,team notin (a,b),x,n>3,m<-1",
  );
  assert.equal(canonical("env="), "env=", "an empty value is a value");
  assert.deepEqual(parseLabelSelector(""), []);
  assert.deepEqual(parseLabelSelector("  "), []);
});

Deno.test("label selector: what the apiserver would refuse is refused before anything starts", () => {
  for (
    const [bad, why] of [
      ["key in ()", /"in" needs at least one value/],
      ["key in (a b)", /"a b" is not a label value/],
      ["a,,b", /an empty requirement/],
      ["-bad", /"-bad" is not a label key/],
      ["Example.com/x", /"Example.com\/x" is not a label key/],
      ["k=" + "v".repeat(64), /is not a label value/],
      ["k>x", /">" needs a whole number, got "x"/],
      ["k in a", /cannot read "k in a"/],
      ["key notin (a", /cannot read/],
    ] as const
  ) {
    assert.throws(() => parseLabelSelector(bad), (err: unknown) => {
      assert.ok(err instanceof InvalidLabelSelectorError, `${bad}: ${err}`);
      assert.equal(err.reason, "InvalidLabelSelector");
      assert.match(err.message, why);
      assert.match(
        err.message,
        /sharding\.portager\.io\/key in \(shard1\)/,
        "says what a good one looks like",
      );
      return true;
    });
  }
});
