// Package ociimage builds container images for the project's static Go binaries without Docker: one layer holding
// the binary at /<name>, the host's CA certificates and an /etc/passwd and /etc/group with the nonroot user 65532,
// written as a tarball that `ctr images import` (and `docker load`) accept. `make image` (hack/image), the local
// stack's pause image (e2e/cluster) and the e2e framework's image builds use it.
//
// It must not talk to a registry, run a container engine or read anything from the host but the files it is given
// (the binary and the CA bundle): the same inputs give the same image, byte for byte.
package ociimage
