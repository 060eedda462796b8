#!/usr/bin/env bash
# Installs the pinned Deno (tools/deno/package.json, from npm) and links it as
# node_modules/.bin/deno. The pin lives in tools/deno/ rather than at the top level because
# `deno task` would otherwise run package.json's npm "deno" in place of itself.
set -euo pipefail
cd "$(dirname "$0")/.."
want="$(sed -nE 's/.*"deno": "([^"]+)".*/\1/p' tools/deno/package.json)"
if ! node_modules/.bin/deno --version 2>/dev/null | grep -q "^deno $want "; then
  echo "[install-deno] installing Deno $want from npm" >&2
  (cd tools/deno && npm ci --no-audit --no-fund --loglevel=error >&2)
  mkdir -p node_modules/.bin
  ln -sfn ../../tools/deno/node_modules/.bin/deno node_modules/.bin/deno
fi
