#!/usr/bin/env bash
# Installs everything Portager's tests and demo need, reusing what is already there:
#   - Deno, pinned in tools/deno/package.json, from npm; linked as node_modules/.bin/deno
#   - the npm imports of deno.json, into Deno's cache (deno install)
#   - Debian packages: docker-registry (CNCF distribution), prometheus (promtool), apache2-utils
#     (htpasswd), openssl
#   - Go tools built from their modules and cached by version (scripts/build-tools.sh): etcd,
#     kube-apiserver, toxiproxy, helm, crane, cosign, oras, and two small mains of our own from
#     tests/harness/go/: the referrers registry (go-containerregistry) and a client-go leader peer
#   - Python: moto[server] for ECR/STS tests, in a venv cached by version
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${PORTAGER_TEST_CACHE:-$HOME/.cache/portager-test}"
log() { printf '[setup] %s\n' "$*" >&2; }

scripts/install-deno.sh
node_modules/.bin/deno --version | head -1 >&2

need_apt=()
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v htpasswd >/dev/null || need_apt+=(apache2-utils)
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Debian starts the packaged services; the tests run their own instances.
  $SUDO systemctl disable --now docker-registry prometheus prometheus-node-exporter >/dev/null 2>&1 || true
  pkill -f '^/usr/bin/docker-registry serve /etc/docker/registry' >/dev/null 2>&1 || true
fi

log "caching npm imports"
node_modules/.bin/deno install --quiet >/dev/null 2>&1 || node_modules/.bin/deno cache --quiet main.ts

scripts/build-tools.sh

MOTO_VERSION="${MOTO_VERSION:-5.2.5}"
MOTO_DIR="$CACHE/moto-$MOTO_VERSION"
if [ ! -x "$MOTO_DIR/bin/moto_server" ]; then
  log "installing moto[server] $MOTO_VERSION into $MOTO_DIR"
  python3 -m venv "$MOTO_DIR"
  "$MOTO_DIR/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
log "setup done"
