import assert from "node:assert/strict";
import { type FlagSpec, parseArgs, UsageError } from "./args.ts";

const specs: FlagSpec[] = [
  { name: "file", short: "f", type: "string", multiple: true, help: "files" },
  { name: "dry-run", type: "boolean", default: false, help: "plan only" },
  { name: "log-level", type: "string", env: "PORTAGER_LOG_LEVEL", default: "info", help: "level" },
  { name: "namespace", type: "string", multiple: true, env: "WATCH_NAMESPACE", help: "ns" },
];

Deno.test("parseArgs reads long, short, inline and repeated flags", () => {
  const r = parseArgs(["-f", "a.yaml", "--file=b.yaml", "--dry-run", "x", "--log-level", "debug"], specs, {
    env: () => undefined,
  });
  assert.deepEqual(r.flags.file, ["a.yaml", "b.yaml"]);
  assert.equal(r.flags["dry-run"], true);
  assert.equal(r.flags["log-level"], "debug");
  assert.deepEqual(r.positional, ["x"]);
});

Deno.test("parseArgs falls back to environment then default", () => {
  const env = (n: string) =>
    ({ PORTAGER_LOG_LEVEL: "warn", WATCH_NAMESPACE: "a, b" } as Record<string, string>)[n];
  const r = parseArgs([], specs, { env });
  assert.equal(r.flags["log-level"], "warn");
  assert.deepEqual(r.flags.namespace, ["a", "b"]);
  assert.equal(r.flags["dry-run"], false);
  assert.equal(parseArgs(["--no-dry-run"], specs, { env: () => undefined }).flags["dry-run"], false);
});

Deno.test("parseArgs rejects unknown flags and missing values with a clear message", () => {
  assert.throws(
    () => parseArgs(["--nope"], specs),
    (e) => e instanceof UsageError && /unknown flag --nope/.test(e.message),
  );
  assert.throws(() => parseArgs(["--log-level"], specs), /--log-level needs a value/);
});

Deno.test("parseArgs takes Go's flag syntax: one-dash long flags, --flag=false, ParseBool spellings", () => {
  const go: FlagSpec[] = [
    { name: "leader-elect", type: "boolean", env: "LEADER_ELECT", default: false, help: "le" },
    { name: "metrics-bind-address", type: "string", default: "0", help: "m" },
    { name: "namespace", short: "n", type: "string", help: "ns" },
  ];
  const env = () => undefined;
  const r = parseArgs(["-leader-elect", "-metrics-bind-address=:8443", "-n", "team"], go, { env });
  assert.equal(r.flags["leader-elect"], true);
  assert.equal(r.flags["metrics-bind-address"], ":8443");
  assert.equal(r.flags.namespace, "team");
  assert.equal(parseArgs(["-metrics-bind-address", ":9"], go, { env }).flags["metrics-bind-address"], ":9");
  for (const v of ["false", "0", "f", "F", "FALSE", "False"]) {
    assert.equal(parseArgs([`--leader-elect=${v}`], go, { env }).flags["leader-elect"], false, v);
  }
  for (const v of ["true", "1", "t", "T", "TRUE"]) {
    assert.equal(parseArgs([`-leader-elect=${v}`], go, { env }).flags["leader-elect"], true, v);
  }
  assert.throws(() => parseArgs(["--leader-elect=maybe"], go, { env }), /--leader-elect is a boolean/);
  assert.throws(() => parseArgs([], go, { env: () => "sometimes" }), /\$LEADER_ELECT is a boolean/);
  // a short flag with its value attached still works
  assert.equal(parseArgs(["-nteam"], go, { env }).flags.namespace, "team");
});
