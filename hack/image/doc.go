// Command image packs a static binary into a container image tarball without Docker (internal/ociimage):
//
//	go run ./hack/image -binary bin/dispatcher -ref ghcr.io/kubedispatch/dispatcher:dev -out bin/images/dispatcher.tar
//
// The tarball loads with `ctr -n k8s.io images import` (the local stack's real node) or `docker load`. `make image`
// runs it for the dispatcher and the example worker. It only packs: building the binary (CGO_ENABLED=0) is the
// caller's job, and it never pushes anywhere.
package main
