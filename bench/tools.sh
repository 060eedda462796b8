#!/usr/bin/env bash
# Installs or builds the benchmark peers, reusing what is there:
#   - skopeo from Debian (apt-get)
#   - crane, regctl and regsync from their Go modules, cached by version under
#     ${PORTAGER_TEST_CACHE:-$HOME/.cache/portager-test}/<tool>-<version>/bin by
#     scripts/build-tools.sh (optional targets there: setup.sh does not build them)
# Usage: bench/tools.sh      (bench/run.ts calls it on demand when a peer is missing)
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[bench-tools] %s\n' "$*" >&2; }

if ! command -v skopeo >/dev/null; then
  log "apt-get install skopeo"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends skopeo >/dev/null
fi
# Go builds share the 2 cores with everything else: be nice.
nice -n 10 scripts/build-tools.sh crane regclient
