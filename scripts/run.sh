#!/usr/bin/env bash
# Runs Portager from source: installs Deno from npm (pinned in tools/deno/) when missing, then
# `deno task start` for `run`, or the matching task for the other commands.
#   scripts/run.sh run --kubeconfig ~/.kube/config
#   scripts/run.sh sync -f imagesync.yaml --dry-run
#   scripts/run.sh demo        (installs the test harness's servers first, like scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deno.sh
DENO=node_modules/.bin/deno
cmd="${1:-run}"
[ $# -gt 0 ] && shift
case "$cmd" in
run) exec "$DENO" task --quiet start "$@" ;;
demo)
  scripts/setup.sh
  exec "$DENO" task --quiet demo "$@" ;;
sync | serve) exec "$DENO" run --v8-flags=--max-semi-space-size=1 --allow-net --allow-env --allow-read --allow-write \
  --allow-sys=hostname,homedir,osRelease,uid,gid main.ts "$cmd" "$@" ;;
*) exec "$DENO" run --allow-read --allow-env main.ts "$cmd" "$@" ;;
esac
