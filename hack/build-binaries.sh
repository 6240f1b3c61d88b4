#!/usr/bin/env bash
# Builds (once) and caches the local control-plane binaries, keyed by version:
#   $KUBEDISPATCH_CACHE/bin/<component>-<version>
# Prints the bin directory on the last line of stdout. Idempotent: a warm run only checks files.
# Env: KUBEDISPATCH_CACHE (default $HOME/.cache/kubedispatch).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${KUBEDISPATCH_CACHE:-$HOME/.cache/kubedispatch}
bin="$cache/bin"
work="$cache/build"
mkdir -p "$bin" "$work"
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=local

log() { echo "[build-binaries] $*" >&2; }

# One build at a time per cache: make test, make bench and e2e packages started together would otherwise build the
# same component in the same work directory at once. A second run waits here, then finds everything built.
exec 9>"$cache/build.lock"
if ! flock -n 9; then
  log "another build is running on $cache; waiting for it"
  flock 9
fi

need_kube=()
for c in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet; do
  [ -x "$bin/$c-$KUBE_VERSION" ] || need_kube+=("$c")
done

build_etcd() {
  local out="$bin/etcd-$ETCD_VERSION"
  [ -x "$out" ] && return 0
  log "building etcd $ETCD_VERSION (about 1 minute cold)"
  local d="$work/etcd-$ETCD_VERSION"
  rm -rf "$d" && mkdir -p "$d" && cd "$d"
  go mod init etcdbuild >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1
  go build -o "$out.tmp" go.etcd.io/etcd/server/v3
  mv "$out.tmp" "$out"
  log "etcd ready: $out"
}

build_kwok() {
  local out="$bin/kwok-$KWOK_VERSION"
  [ -x "$out" ] && return 0
  log "building kwok $KWOK_VERSION (about 2 minutes cold)"
  local d="$work/kwok-$KWOK_VERSION"
  rm -rf "$d" && mkdir -p "$d"
  GOBIN="$d" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  mv "$d/kwok" "$out"
  log "kwok ready: $out"
}

build_kube() {
  [ ${#need_kube[@]} -eq 0 ] && return 0
  log "building ${need_kube[*]} $KUBE_VERSION (about 8-10 minutes cold on 2 cores)"
  local d="$work/kube-$KUBE_VERSION"
  local staging=${KUBE_VERSION/v1./v0.}
  rm -rf "$d" && mkdir -p "$d" && cd "$d"
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  {
    echo "module kbuild"
    echo
    echo "go 1.25"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    grep -E '^\s*k8s\.io/[^ ]+ => \./staging/src/' "$gomod" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
  } > go.mod
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
  go mod tidy >/dev/null 2>&1 || go mod tidy
  for c in "${need_kube[@]}"; do
    log "  go build $c"
    go build -o "$bin/$c-$KUBE_VERSION.tmp" "k8s.io/kubernetes/cmd/$c"
    mv "$bin/$c-$KUBE_VERSION.tmp" "$bin/$c-$KUBE_VERSION"
  done
  log "control plane ready"
}

build_promtool() {
  # promtool checks and unit-tests deploy/monitoring's alert rules (prometheus module version v0.X = Prometheus 3.X).
  local out="$bin/promtool-$PROMTOOL_VERSION"
  [ -x "$out" ] && return 0
  log "building promtool $PROMTOOL_VERSION (about 5 minutes cold)"
  local d="$work/promtool-$PROMTOOL_VERSION"
  rm -rf "$d" && mkdir -p "$d"
  GOBIN="$d" go install "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"
  mv "$d/promtool" "$out"
  log "promtool ready: $out"
}

start=$(date +%s)
( build_etcd )
( build_kwok )
( build_kube )
( build_promtool )
end=$(date +%s)
[ $((end - start)) -gt 2 ] && log "done in $((end - start))s"
echo "$bin"
