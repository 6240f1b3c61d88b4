package ociimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type file struct {
	mode     int64
	uid, gid int
	size     int64
	dir      bool
}

// readLayer returns the entries of the image's only layer, and its raw contents by name.
func readLayer(t *testing.T, img v1.Image) (map[string]file, map[string][]byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("image has %d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files, data := map[string]file{}, map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = file{mode: h.Mode, uid: h.Uid, gid: h.Gid, size: h.Size, dir: h.Typeflag == tar.TypeDir}
		data[h.Name] = b
	}
	return files, data
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWriteReadsBackFromTheTarball(t *testing.T) {
	dir := t.TempDir()
	bin := writeFile(t, dir, "dispatcher-linux", "\x7fELF pretend binary")
	ca := writeFile(t, dir, "ca.crt", "-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")
	out := filepath.Join(dir, "images", "dispatcher.tar")
	spec := Spec{
		Binary: bin, Name: "dispatcher", Ref: "ghcr.io/kubedispatch/dispatcher:dev", CACerts: ca,
		Args: []string{"--leader-elect"}, Labels: map[string]string{"org.opencontainers.image.title": "dispatcher"},
		ExposedPorts: []string{"8080/tcp"},
	}
	if err := Write(out, spec); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(spec.Ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("reading the tarball back as %s: %v", spec.Ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user = %q, want 65532:65532", cf.Config.User)
	}
	if diff := cmp.Diff([]string{"/dispatcher"}, cf.Config.Entrypoint); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"--leader-elect"}, cf.Config.Cmd); diff != "" {
		t.Errorf("cmd (-want +got):\n%s", diff)
	}
	if cf.Config.Labels["org.opencontainers.image.title"] != "dispatcher" {
		t.Errorf("labels = %v", cf.Config.Labels)
	}
	if _, ok := cf.Config.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("exposed ports = %v", cf.Config.ExposedPorts)
	}
	if cf.OS != "linux" || cf.Architecture == "" {
		t.Errorf("platform = %s/%s", cf.OS, cf.Architecture)
	}
	if !cf.Created.Equal(cf.Created.UTC()) || cf.Created.Unix() != 0 {
		t.Errorf("created = %v, want the Unix epoch (reproducible builds)", cf.Created)
	}

	files, data := readLayer(t, img)
	want := map[string]file{
		"dispatcher":                        {mode: 0o755, size: int64(len("\x7fELF pretend binary"))},
		"etc/":                              {mode: 0o755, dir: true},
		"etc/group":                         {mode: 0o644, size: int64(len(data["etc/group"]))},
		"etc/passwd":                        {mode: 0o644, size: int64(len(data["etc/passwd"]))},
		"etc/ssl/":                          {mode: 0o755, dir: true},
		"etc/ssl/certs/":                    {mode: 0o755, dir: true},
		"etc/ssl/certs/ca-certificates.crt": {mode: 0o644, size: int64(len(data["etc/ssl/certs/ca-certificates.crt"]))},
		"home/":                             {mode: 0o755, dir: true},
		"home/nonroot/":                     {mode: 0o700, uid: 65532, gid: 65532, dir: true},
		"root/":                             {mode: 0o700, dir: true},
		"tmp/":                              {mode: 0o1777, dir: true},
	}
	if diff := cmp.Diff(want, files, cmp.AllowUnexported(file{})); diff != "" {
		t.Errorf("layer entries (-want +got):\n%s", diff)
	}
	if string(data["dispatcher"]) != "\x7fELF pretend binary" {
		t.Errorf("binary contents = %q", data["dispatcher"])
	}
	if !strings.Contains(string(data["etc/ssl/certs/ca-certificates.crt"]), "fake") {
		t.Errorf("CA bundle not copied: %q", data["etc/ssl/certs/ca-certificates.crt"])
	}
	if !strings.Contains(string(data["etc/passwd"]), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd lacks the nonroot user:\n%s", data["etc/passwd"])
	}
	if !strings.Contains(string(data["etc/group"]), "nonroot:x:65532:") {
		t.Errorf("/etc/group lacks the nonroot group:\n%s", data["etc/group"])
	}
}

func TestWriteIsReproducible(t *testing.T) {
	dir := t.TempDir()
	bin := writeFile(t, dir, "worker", "binary bytes")
	spec := Spec{Binary: bin, Ref: "ghcr.io/kubedispatch/worker:dev", CACerts: "-"}
	var tars [2][]byte
	for i := range tars {
		out := filepath.Join(dir, "out", "worker.tar")
		if err := Write(out, spec); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		tars[i] = b
	}
	if !bytes.Equal(tars[0], tars[1]) {
		t.Error("two builds of the same inputs differ")
	}
	img, err := tarball.ImageFromPath(filepath.Join(dir, "out", "worker.tar"), nil)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := readLayer(t, img)
	if _, ok := files["worker"]; !ok {
		t.Errorf("binary not at /worker (name defaults to the base name): %v", files)
	}
	if _, ok := files["etc/ssl/certs/ca-certificates.crt"]; ok {
		t.Error(`CACerts "-" still copied a CA bundle`)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range cf.Config.Env {
		if strings.HasPrefix(e, "SSL_CERT_FILE=") {
			t.Errorf("SSL_CERT_FILE set without a CA bundle: %v", cf.Config.Env)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	bin := writeFile(t, dir, "b", "x")
	cases := map[string]struct {
		spec Spec
		want string
	}{
		"no binary":        {Spec{Ref: "x:dev"}, "no binary given"},
		"missing binary":   {Spec{Binary: filepath.Join(dir, "nope"), Ref: "x:dev"}, "reading binary"},
		"slash in name":    {Spec{Binary: bin, Name: "a/b", Ref: "x:dev"}, "must not contain a slash"},
		"missing CA file":  {Spec{Binary: bin, Ref: "x:dev", CACerts: filepath.Join(dir, "nope")}, "reading CA certificates"},
		"bad ref in Write": {Spec{Binary: bin, Ref: "UPPER CASE:tag", CACerts: "-"}, "parsing image reference"},
	}
	for n, tc := range cases {
		t.Run(n, func(t *testing.T) {
			err := Write(filepath.Join(dir, "o.tar"), tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestCheckParents(t *testing.T) {
	err := checkParents([]entry{{name: "etc/"}, {name: "etc/ssl/certs/x"}})
	if err == nil || !strings.Contains(err.Error(), "etc/ssl/certs/") {
		t.Errorf("error = %v, want one naming the missing etc/ssl/certs/", err)
	}
	if err := checkParents([]entry{{name: "a"}, {name: "d/"}, {name: "d/e"}}); err != nil {
		t.Errorf("valid layout: %v", err)
	}
}
