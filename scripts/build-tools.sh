#!/usr/bin/env bash
# Builds the Go test tools from their Go modules, once per version, into
# ${PORTAGER_TEST_CACHE:-$HOME/.cache/portager-test}/<tool>-<version>/bin/ (a .done marker there
# says the build finished). A second run finds them and builds nothing.
# Usage: scripts/build-tools.sh [tool ...]
# Default: etcd, kube-apiserver, toxiproxy, helm, crane (go-containerregistry), cosign, oras,
#   referrers-registry and leader-peer. The last two are small mains in tests/harness/go/<name>/
#   built against pinned modules; their cache folder also names a hash of that main.go, so an
#   edit rebuilds them.
# Optional, built only when named (the benchmarks build it on demand): regclient (regctl, regsync).
set -euo pipefail

CACHE="${PORTAGER_TEST_CACHE:-$HOME/.cache/portager-test}"
KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
TOXIPROXY_VERSION="${TOXIPROXY_VERSION:-v2.5.0}"
HELM_VERSION="${HELM_VERSION:-v3.19.0}"
# go-containerregistry: crane, and pkg/registry in the referrers registry
CRANE_VERSION="${CRANE_VERSION:-v0.22.1}"
COSIGN_VERSION="${COSIGN_VERSION:-v2.6.5}"
ORAS_VERSION="${ORAS_VERSION:-v1.3.6}"
# Optional benchmark peer (bench/): built only when named, never by default.
REGCLIENT_VERSION="${REGCLIENT_VERSION:-v0.11.7}"
export GOFLAGS="-mod=mod" CGO_ENABLED=0 GOTOOLCHAIN=local
GO_SOURCES="$(cd "$(dirname "$0")/.." && pwd)/tests/harness/go"

log() { printf '[build-tools] %s\n' "$*" >&2; }

# wrapper DIR MODULE VERSION: a module that requires MODULE@VERSION, with its replaces of
# local ./staging paths turned into the published versions of those modules.
wrapper() {
  local dir="$1" mod="$2" ver="$3" pkgs="$4" stagever="${5:-}"
  rm -rf "$dir" && mkdir -p "$dir"
  cd "$dir"
  go mod init portager.local/tools >/dev/null 2>&1
  {
    echo "//go:build tools"
    echo "package tools"
    echo "import ("
    for p in $pkgs; do echo "  _ \"$p\""; done
    echo ")"
  } >tools.go
  go mod edit -require="$mod@$ver"
  if [ -n "$stagever" ]; then
    local gomod
    gomod="$(go mod download -json "$mod@$ver" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    # every `k8s.io/x => ./staging/src/k8s.io/x` becomes `k8s.io/x => k8s.io/x $stagever`
    grep -oE '^\s*k8s\.io/[A-Za-z0-9_.-]+ => \./staging/src/k8s\.io/[A-Za-z0-9_.-]+' "$gomod" |
      awk '{print $1}' | while read -r m; do
        go mod edit -replace="$m=$m@$stagever"
      done
  fi
  # quiet unless it fails: a cold build downloads a few hundred modules
  go mod tidy >"$dir/tidy.log" 2>&1 || { cat "$dir/tidy.log" >&2; return 1; }
}

# main_module DIR NAME MODULE@VERSION...: tests/harness/go/NAME/main.go as its own module in DIR,
# requiring the pinned modules (tidy adds only what they require themselves).
main_module() {
  local dir="$1" name="$2"
  shift 2
  rm -rf "$dir" && mkdir -p "$dir"
  cp "$GO_SOURCES/$name/main.go" "$dir/"
  cd "$dir"
  go mod init "portager.local/$name" >/dev/null 2>&1
  local m
  for m in "$@"; do go mod edit -require="$m"; done
  go mod tidy >"$dir/tidy.log" 2>&1 || { cat "$dir/tidy.log" >&2; return 1; }
}

# The first 12 hex digits of the sha256 of tests/harness/go/NAME/main.go.
source_hash() { sha256sum "$GO_SOURCES/$1/main.go" | cut -c1-12; }

build_one() {
  local name="$1" ver="$2"
  local out="$CACHE/$name-$ver"
  if [ -x "$out/bin/.done" ] || [ -f "$out/bin/.done" ]; then
    log "$name $ver cached in $out"
    return 0
  fi
  local t0=$SECONDS
  local work="$CACHE/src/$name-$ver"
  log "building $name $ver (once; cached afterwards)"
  mkdir -p "$out/bin"
  case "$name" in
  etcd)
    ( wrapper "$work" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "go.etcd.io/etcd/server/v3"
      go build -trimpath -ldflags=-s -o "$out/bin/etcd" go.etcd.io/etcd/server/v3 ) ;;
  kube-apiserver)
    local stage="v0.${KUBE_VERSION#v1.}"
    ( wrapper "$work" k8s.io/kubernetes "$KUBE_VERSION" "k8s.io/kubernetes/cmd/kube-apiserver" "$stage"
      go build -trimpath -ldflags=-s -o "$out/bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver ) ;;
  toxiproxy)
    ( wrapper "$work" github.com/Shopify/toxiproxy/v2 "$TOXIPROXY_VERSION" \
        "github.com/Shopify/toxiproxy/v2/cmd/server github.com/Shopify/toxiproxy/v2/cmd/cli"
      go build -trimpath -ldflags=-s -o "$out/bin/toxiproxy-server" github.com/Shopify/toxiproxy/v2/cmd/server ) ;;
  helm)
    ( wrapper "$work" helm.sh/helm/v3 "$HELM_VERSION" "helm.sh/helm/v3/cmd/helm"
      go build -trimpath -ldflags=-s -o "$out/bin/helm" helm.sh/helm/v3/cmd/helm ) ;;
  crane)
    ( wrapper "$work" github.com/google/go-containerregistry "$CRANE_VERSION" \
        "github.com/google/go-containerregistry/cmd/crane"
      go build -trimpath -ldflags=-s -o "$out/bin/crane" github.com/google/go-containerregistry/cmd/crane ) ;;
  cosign)
    ( wrapper "$work" github.com/sigstore/cosign/v2 "$COSIGN_VERSION" "github.com/sigstore/cosign/v2/cmd/cosign"
      go build -trimpath -ldflags=-s -o "$out/bin/cosign" github.com/sigstore/cosign/v2/cmd/cosign ) ;;
  oras)
    ( wrapper "$work" oras.land/oras "$ORAS_VERSION" "oras.land/oras/cmd/oras"
      go build -trimpath -ldflags=-s -o "$out/bin/oras" oras.land/oras/cmd/oras ) ;;
  referrers-registry)
    ( main_module "$work" referrers_registry "github.com/google/go-containerregistry@$CRANE_VERSION"
      go build -trimpath -ldflags=-s -o "$out/bin/referrers-registry" . ) ;;
  leader-peer)
    local stage="v0.${KUBE_VERSION#v1.}"
    ( main_module "$work" leader_peer "k8s.io/client-go@$stage" "k8s.io/apimachinery@$stage"
      go build -trimpath -ldflags=-s -o "$out/bin/leader-peer" . ) ;;
  regclient)
    ( wrapper "$work" github.com/regclient/regclient "$REGCLIENT_VERSION" \
        "github.com/regclient/regclient/cmd/regctl github.com/regclient/regclient/cmd/regsync"
      go build -trimpath -ldflags=-s -o "$out/bin/regctl" github.com/regclient/regclient/cmd/regctl
      go build -trimpath -ldflags=-s -o "$out/bin/regsync" github.com/regclient/regclient/cmd/regsync ) ;;
  *) log "unknown tool $name"; return 2 ;;
  esac
  touch "$out/bin/.done"
  log "$name $ver built in $((SECONDS - t0))s"
}

version_of() {
  case "$1" in
  etcd) echo "$ETCD_VERSION" ;; kube-apiserver) echo "$KUBE_VERSION" ;;
  toxiproxy) echo "$TOXIPROXY_VERSION" ;; helm) echo "$HELM_VERSION" ;;
  crane) echo "$CRANE_VERSION" ;; regclient) echo "$REGCLIENT_VERSION" ;;
  cosign) echo "$COSIGN_VERSION" ;; oras) echo "$ORAS_VERSION" ;;
  referrers-registry) echo "$CRANE_VERSION-$(source_hash referrers_registry)" ;;
  leader-peer) echo "$KUBE_VERSION-$(source_hash leader_peer)" ;;
  esac
}

tools=("$@")
[ ${#tools[@]} -eq 0 ] &&
  tools=(etcd kube-apiserver toxiproxy helm crane cosign oras referrers-registry leader-peer)
for t in "${tools[@]}"; do build_one "$t" "$(version_of "$t")"; done
