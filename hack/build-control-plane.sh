#!/usr/bin/env bash
# Build etcd, kube-apiserver, kubectl and helm from the Go module proxy, once,
# into a cache outside the repository keyed by the pinned versions.
# With --node, build instead what a one-node cluster adds (hack/cluster.py):
# kubelet, kube-controller-manager, kube-scheduler and kube-proxy from the same
# pinned wrapper module as kube-apiserver, CoreDNS from its Go module, and the
# pause binary (hack/pause/main.go), into a directory keyed by those versions,
# plus kube-router (only its network policy firewall is run: the NetworkPolicy
# enforcer of the one-node cluster) into a directory keyed by its own version,
# linked from there.
#
# Usage: hack/build-control-plane.sh [--node]   (prints the bin directory on stdout)
# Env:   NOTIFQ_CACHE   cache root (default: ~/.cache/notifq)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.35.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"
# the only kube-router the module proxy serves here; its advisory GHSA-phqm-jgc3-qf8g
# is in the service proxy, which hack/cluster.py never runs (--run-service-proxy=false)
KUBE_ROUTER_VERSION="${KUBE_ROUTER_VERSION:-v2.1.0}"
MODE="${1:-}"

CACHE="${NOTIFQ_CACHE:-$HOME/.cache/notifq}"
BIN="$CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
if [[ "$MODE" == --node ]]; then
  BIN="$CACHE/bin/node-k8s-$K8S_VERSION-coredns-$COREDNS_VERSION"
elif [[ -n "$MODE" ]]; then
  echo "usage: $0 [--node]" >&2; exit 2
fi
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

log() { echo "[build-control-plane] $*" >&2; }

if ! command -v go >/dev/null; then
  log "go is required (Go 1.25+); install it first"; exit 1
fi
mkdir -p "$BIN"

k8s_minor="${K8S_VERSION#v1.}"; k8s_minor="${k8s_minor%%.*}"
staging_version="v0.${K8S_VERSION#v1.}"

build_k8s() { # wrapper-dir command...
  local dir="$1"; shift
  mkdir -p "$dir"
  local mod
  mod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
  (cd "$dir" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null 2>&1 || true)
  if [[ ! -f "$mod" ]]; then
    # `go mod download` outside a module still fills the cache
    (cd /tmp && GOFLAGS=-mod=mod go mod download "k8s.io/kubernetes@$K8S_VERSION")
  fi
  local staging
  staging="$(grep -E '=> \./staging/src/' "$mod" | awk '{print $1}')"
  {
    echo "module notifq.dev/controlplane"
    echo
    grep -E '^go [0-9]' "$mod"
    grep -E '^godebug' "$mod" || true
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    for m in $staging; do echo "	$m => $m $staging_version"; done
    echo ")"
  } >"$dir/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for cmd in "$@"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$cmd"; done
    printf ')\n'
  } >"$dir/tools.go"
  (cd "$dir" && go mod tidy >&2)
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$k8s_minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for cmd in "$@"; do
    if [[ ! -x "$BIN/$cmd" ]]; then
      log "building $cmd $K8S_VERSION (several minutes on a fresh machine)"
      (cd "$dir" && go build -trimpath -ldflags "$ld" -o "$BIN/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
      mv "$BIN/$cmd.tmp" "$BIN/$cmd"
    fi
  done
}

build_single() { # name module-path package version
  local name="$1" modpath="$2" pkg="$3" version="$4" ldflags="${5:-}"
  [[ -x "$BIN/$name" ]] && return 0
  local dir="$CACHE/src/$name-$version"
  mkdir -p "$dir"
  cat >"$dir/go.mod" <<MOD
module notifq.dev/build$name

go 1.25.0
MOD
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" >"$dir/tools.go"
  log "building $name $version"
  (cd "$dir" && go get "$modpath@$version" >&2 && go mod tidy >&2 && \
    go build -trimpath -ldflags "-s -w $ldflags" -o "$BIN/$name.tmp" "$pkg")
  mv "$BIN/$name.tmp" "$BIN/$name"
}

if [[ "$MODE" == --node ]]; then
  node_cmds=(kubelet kube-controller-manager kube-scheduler kube-proxy)
  for cmd in "${node_cmds[@]}"; do
    if [[ ! -x "$BIN/$cmd" ]]; then build_k8s "$CACHE/src/k8s-$K8S_VERSION-node" "${node_cmds[@]}"; break; fi
  done
  build_single coredns github.com/coredns/coredns github.com/coredns/coredns "$COREDNS_VERSION"
  kr_bin="$CACHE/bin/kube-router-$KUBE_ROUTER_VERSION"
  mkdir -p "$kr_bin"
  BIN="$kr_bin" build_single kube-router github.com/cloudnativelabs/kube-router/v2 \
    github.com/cloudnativelabs/kube-router/v2/cmd/kube-router "$KUBE_ROUTER_VERSION" \
    "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION"
  ln -sfn "$kr_bin/kube-router" "$BIN/kube-router"
  if [[ ! -x "$BIN/pause" ]]; then
    log "building pause"
    (cd "$(dirname "$0")/pause" && go build -trimpath -ldflags "-s -w" -o "$BIN/pause.tmp" .)
    mv "$BIN/pause.tmp" "$BIN/pause"
  fi
  echo "$BIN"
  exit 0
fi

if [[ ! -x "$BIN/kube-apiserver" || ! -x "$BIN/kubectl" ]]; then
  build_k8s "$CACHE/src/k8s-$K8S_VERSION" kube-apiserver kubectl
fi
build_single etcd go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
build_single helm helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm "$HELM_VERSION" \
  "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"

echo "$BIN"
