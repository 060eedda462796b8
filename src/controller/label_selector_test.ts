import assert from "node:assert/strict";
import {
  formatLabelSelector,
  InvalidLabelSelectorError,
  parseLabelSelector,
  selects,
} from "./label_selector.ts";

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

Deno.test("selects: a relabeled ImageSync's labels judged as the apiserver judges the shard's selector (deleted vs left the shard)", () => {
  const sel = (s: string) => parseLabelSelector(s);
  const key = "sharding.portager.io/key";
  assert.equal(selects(sel(`${key} in (team-a)`), { [key]: "team-a" }), true);
  assert.equal(selects(sel(`${key} in (team-a)`), { [key]: "team-b" }), false, "relabeled to another shard");
  assert.equal(selects(sel(`${key} in (team-a)`), {}), false);
  assert.equal(selects(sel(`!${key}`), {}), true, "the main shard: no key");
  assert.equal(selects(sel(`!${key}`), { [key]: "team-a" }), false);
  assert.equal(selects(sel(`${key}`), { [key]: "" }), true, "exists");
  assert.equal(selects(sel(`${key}=a,tier!=x`), { [key]: "a" }), true, "!= holds without the key");
  assert.equal(selects(sel(`${key}=a,tier!=x`), { [key]: "a", tier: "x" }), false);
  assert.equal(selects(sel(`${key} notin (a,b)`), { [key]: "c" }), true);
  assert.equal(selects(sel(`${key} notin (a,b)`), { [key]: "b" }), false);
  assert.equal(selects(sel("n>2"), { n: "3" }), true);
  assert.equal(selects(sel("n>2"), { n: "2" }), false);
  assert.equal(selects(sel("n<2"), { n: "x" }), false, "not a number");
  assert.equal(selects(sel(""), undefined), true, "the empty selector selects everything");
});
