package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/kubedispatch/kubedispatch/internal/ociimage"
)

// labelFlag collects -label key=value flags.
type labelFlag map[string]string

func (l labelFlag) String() string { return fmt.Sprint(map[string]string(l)) }

func (l labelFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("label %q: want key=value", s)
	}
	l[k] = v
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	binary := fs.String("binary", "", "static binary to pack (required)")
	name := fs.String("name", "", "file name of the binary in the image, at /<name> (default: the binary's base name)")
	ref := fs.String("ref", "", "image reference to tag the tarball with, e.g. ghcr.io/kubedispatch/dispatcher:dev (required)")
	out := fs.String("out", "", "tarball to write (required)")
	ca := fs.String("ca-certs", ociimage.HostCACerts, "CA bundle to copy to /etc/ssl/certs/ca-certificates.crt; - for none")
	ports := fs.String("expose", "", "comma-separated ports the image documents, e.g. 8080/tcp,8081/tcp")
	labels := labelFlag{}
	fs.Var(labels, "label", "image label key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *binary == "" || *ref == "" || *out == "" {
		fs.Usage()
		return fmt.Errorf("-binary, -ref and -out are required")
	}
	if _, ok := labels["org.opencontainers.image.source"]; !ok {
		labels["org.opencontainers.image.source"] = "https://github.com/kubedispatch/kubedispatch"
	}
	spec := ociimage.Spec{Binary: *binary, Name: *name, Ref: *ref, CACerts: *ca, Labels: labels}
	if *ports != "" {
		spec.ExposedPorts = strings.Split(*ports, ",")
	}
	if err := ociimage.Write(*out, spec); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "[image] wrote %s (%s) from %s\n", *out, *ref, *binary)
	return nil
}
