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
