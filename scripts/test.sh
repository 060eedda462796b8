#!/usr/bin/env bash
# The test command: installs what the tests need (scripts/setup.sh, cached), then runs
# `deno task test` (fmt check, lint, type check, unit + integration tests against real servers).
# Prints the time each part took and, last, "tests: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
export NO_COLOR=1
t0=$SECONDS
if ! scripts/setup.sh; then
  echo "setup failed after $((SECONDS - t0))s"
  echo "tests: 0 passed, 1 failed"
  exit 1
fi
t1=$SECONDS
echo "setup took $((t1 - t0))s"
out="$(mktemp)"
node_modules/.bin/deno task test "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
t2=$SECONDS
echo "tests took $((t2 - t1))s"
# Deno's closing line: "ok | 12 passed (3 steps) | 0 failed (4s)" or "FAILED | 11 passed | 1 failed"
line="$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$out" | tail -1)"
passed="$(sed -nE 's/.*\| ([0-9]+) passed.*/\1/p' <<<"$line")"
failed="$(sed -nE 's/.*\| ([0-9]+) failed.*/\1/p' <<<"$line")"
passed="${passed:-0}"
failed="${failed:-0}"
# A failed static check (fmt, lint, check) or a runner crash counts as a failure too.
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
rm -f "$out"
echo "tests: $passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
