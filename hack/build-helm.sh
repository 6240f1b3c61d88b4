#!/usr/bin/env bash
# Builds (once) and caches helm, keyed by version: $KUBEDISPATCH_CACHE/bin/helm-$HELM_VERSION.
# `go install` from the Go module proxy; no helm release download. About 2-3 minutes cold on 2 cores, instant warm.
# Progress goes to stderr; the last line of stdout is the path of the binary.
# Env: KUBEDISPATCH_CACHE (default $HOME/.cache/kubedispatch).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${KUBEDISPATCH_CACHE:-$HOME/.cache/kubedispatch}
bin="$cache/bin"
out="$bin/helm-$HELM_VERSION"
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=local

log() { echo "[build-helm] $*" >&2; }

if [ ! -x "$out" ]; then
  # The module path carries the major version: helm.sh/helm/v4 for 4.x, helm.sh/helm/v3 for 3.x.
  major=${HELM_VERSION%%.*}
  d="$cache/build/helm-$HELM_VERSION"
  rm -rf "$d" && mkdir -p "$d" "$bin"
  log "building helm $HELM_VERSION with go install helm.sh/helm/$major/cmd/helm@$HELM_VERSION (about 2-3 minutes cold)"
  start=$(date +%s)
  GOBIN="$d" go install "helm.sh/helm/$major/cmd/helm@$HELM_VERSION"
  mv "$d/helm" "$out"
  rm -rf "$d"
  log "helm ready in $(($(date +%s) - start))s: $out"
fi
echo "$out"
