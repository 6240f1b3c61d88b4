#!/usr/bin/env bash
# Regenerates the code and manifests derived from api/v1alpha1:
#   api/v1alpha1/zz_generated.deepcopy.go   DeepCopy methods
#   deploy/crd/*.yaml                       CustomResourceDefinitions (descriptions come from the Go comments)
#   deploy/rbac/role.yaml                   ClusterRole kubedispatch-manager, from api/v1alpha1/rbac.go markers
# Run from anywhere; uses the controller-gen pinned by the go.mod tool directive.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

go tool controller-gen object:headerFile=hack/boilerplate.go.txt paths=./api/...

# Stale CRDs of renamed kinds must not survive a regeneration.
rm -f deploy/crd/*.yaml
go tool controller-gen \
  crd:generateEmbeddedObjectMeta=true rbac:roleName=kubedispatch-manager \
  paths=./api/... paths=./jobtemplate/... \
  output:crd:artifacts:config=deploy/crd \
  output:rbac:artifacts:config=deploy/rbac

# spec.jobTargetRef embeds the full batch/v1 JobSpec schema. With the upstream descriptions of every Job and Pod
# field the ScaledJob CRD is about 700 KB, more than the 256 KB annotation that `kubectl apply` (client side)
# stores. Keep the description of jobTargetRef itself and drop those below it (`kubectl explain job.spec` has
# them); every kubedispatch field keeps its description. Descriptions are block or multi-line plain scalars, so a
# description ends at the first non-blank line indented no deeper than its key.
crd=deploy/crd/kubedispatch.io_scaledjobs.yaml
awk '
  function indent(s) { match(s, /^ */); return RLENGTH }
  BEGIN { jt = -1; skip = -1 }
  /^ *$/ { if (skip >= 0) next; print; next }
  {
    ind = indent($0)
    if (skip >= 0) { if (ind > skip) next; skip = -1 }
    if (jt >= 0 && ind <= jt) jt = -1
    if (jt < 0 && $0 ~ /^ *jobTargetRef:$/) { jt = ind; print; next }
    if (jt >= 0 && ind > jt + 2 && $0 ~ /^ *description:/) { skip = ind; next }
    print
  }
' "$crd" >"$crd.tmp"
mv "$crd.tmp" "$crd"
size=$(wc -c <"$crd")
if [ "$size" -gt 262144 ]; then
  echo "generate.sh: $crd is $size bytes, above the 256 KiB kubectl apply limit" >&2
  exit 1
fi

# The Helm chart carries copies of the CRDs and of the generated ClusterRole (a chart cannot read files outside its
# directory); deploy/helm_test.go fails when they differ.
rm -f deploy/helm/kubedispatch/crds/*.yaml
cp deploy/crd/kubedispatch.io_*.yaml deploy/helm/kubedispatch/crds/
cp deploy/rbac/role.yaml deploy/helm/kubedispatch/files/manager-role.yaml
