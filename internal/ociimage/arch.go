package ociimage

import "runtime"

// goarch is the architecture this program was built for: images built here hold binaries built by the same Go
// toolchain for the same machine unless Spec.Platform says otherwise.
func goarch() string { return runtime.GOARCH }
