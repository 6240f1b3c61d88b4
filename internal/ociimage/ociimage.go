package ociimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// NonRootUID is the user the image runs as (the "nonroot" user of distroless images).
	NonRootUID = 65532
	// NonRootGID is the group the image runs as.
	NonRootGID = 65532
	// HostCACerts is the CA bundle copied into images by default (Debian's ca-certificates).
	HostCACerts = "/etc/ssl/certs/ca-certificates.crt"
	// caPath is where the bundle goes in the image: Go's crypto/x509 looks there first on Linux.
	caPath = "etc/ssl/certs/ca-certificates.crt"
)

// Spec describes an image of one static binary.
type Spec struct {
	// Binary is the path of the binary on this machine. It must be statically linked (CGO_ENABLED=0): the image has
	// no C library.
	Binary string
	// Name is the binary's file name in the image, at /<Name>; the base name of Binary when empty.
	Name string
	// Ref is the image reference the tarball is tagged with, e.g. ghcr.io/kubedispatch/dispatcher:dev.
	Ref string
	// Args are the default arguments (the config's Cmd) after the entrypoint /<Name>.
	Args []string
	// Env holds extra KEY=value entries besides PATH.
	Env []string
	// Labels are the config's labels (org.opencontainers.image.* and the like).
	Labels map[string]string
	// ExposedPorts lists ports such as "8080/tcp", for documentation only.
	ExposedPorts []string
	// CACerts is the CA bundle to copy to /etc/ssl/certs/ca-certificates.crt: HostCACerts when empty, none when "-".
	CACerts string
	// Created is the image's creation time; the Unix epoch when zero, so that builds are reproducible.
	Created time.Time
	// Platform is the OS and architecture the binary was built for; linux and the Go build's GOARCH when empty.
	Platform *v1.Platform
}

// Build returns the image Spec describes.
func Build(spec Spec) (v1.Image, error) {
	if spec.Binary == "" {
		return nil, fmt.Errorf("building image: no binary given")
	}
	if spec.Name == "" {
		spec.Name = filepath.Base(spec.Binary)
	}
	if strings.Contains(spec.Name, "/") {
		return nil, fmt.Errorf("building image: binary name %q must not contain a slash", spec.Name)
	}
	bin, err := os.ReadFile(spec.Binary)
	if err != nil {
		return nil, fmt.Errorf("reading binary: %w", err)
	}
	var ca []byte
	switch spec.CACerts {
	case "-":
	case "":
		spec.CACerts = HostCACerts
		fallthrough
	default:
		if ca, err = os.ReadFile(spec.CACerts); err != nil {
			return nil, fmt.Errorf("reading CA certificates: %w", err)
		}
	}
	if spec.Created.IsZero() {
		spec.Created = time.Unix(0, 0)
	}
	layerTar, err := layerTarball(spec.Name, bin, ca, spec.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("making image layer: %w", err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, fmt.Errorf("appending image layer: %w", err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading image config: %w", err)
	}
	cf = cf.DeepCopy()
	plat := spec.Platform
	if plat == nil {
		plat = &v1.Platform{OS: "linux", Architecture: goarch()}
	}
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	cf.Created = v1.Time{Time: spec.Created.UTC()}
	cf.Config.User = fmt.Sprintf("%d:%d", NonRootUID, NonRootGID)
	cf.Config.Entrypoint = []string{"/" + spec.Name}
	cf.Config.Cmd = spec.Args
	cf.Config.WorkingDir = "/"
	cf.Config.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "SSL_CERT_FILE=/" + caPath}, spec.Env...)
	if len(ca) == 0 {
		cf.Config.Env = append(cf.Config.Env[:1], spec.Env...)
	}
	cf.Config.Labels = spec.Labels
	if len(spec.ExposedPorts) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range spec.ExposedPorts {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	// One history entry per layer keeps tools that pair them (docker history, some scanners) happy.
	cf.History = []v1.History{{Created: cf.Created, CreatedBy: "kubedispatch ociimage: /" + spec.Name + ", CA certificates, nonroot user"}}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting image config: %w", err)
	}
	return img, nil
}

// Write builds the image of spec and writes it to out as a tarball tagged spec.Ref, in the `docker save` layout
// (manifest.json plus blobs) that `ctr images import` and `docker load` read. The file is replaced atomically.
func Write(out string, spec Spec) error {
	ref, err := name.NewTag(spec.Ref, name.WeakValidation)
	if err != nil {
		return fmt.Errorf("parsing image reference %q: %w", spec.Ref, err)
	}
	img, err := Build(spec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("creating image directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return fmt.Errorf("creating image file: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone already after the rename
	if err := tarball.Write(ref, img, tmp); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing image tarball: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing image tarball: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("writing image tarball: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("writing image tarball: %w", err)
	}
	return nil
}

// entry is one file or directory of the layer.
type entry struct {
	name     string // without a leading slash; directories end in "/"
	mode     int64
	uid, gid int
	data     []byte
}

// layerTarball returns the uncompressed tar of the image's only layer. Entries are sorted, carry fixed times and
// numeric owners only, so the same inputs give the same bytes.
func layerTarball(binName string, bin, ca []byte, created time.Time) ([]byte, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"+
		"nonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", NonRootUID, NonRootGID)
	group := fmt.Sprintf("root:x:0:\nnobody:x:65534:\nnonroot:x:%d:\n", NonRootGID)
	entries := []entry{
		{name: binName, mode: 0o755, data: bin},
		{name: "etc/", mode: 0o755},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "home/", mode: 0o755},
		{name: "home/nonroot/", mode: 0o700, uid: NonRootUID, gid: NonRootGID},
		{name: "root/", mode: 0o700},
		{name: "tmp/", mode: 0o1777},
	}
	if len(ca) > 0 {
		entries = append(entries,
			entry{name: "etc/ssl/", mode: 0o755},
			entry{name: "etc/ssl/certs/", mode: 0o755},
			entry{name: caPath, mode: 0o644, data: ca})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	if err := checkParents(entries); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := created.UTC()
	for _, e := range entries {
		h := &tar.Header{
			Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: mtime, Format: tar.FormatPAX,
			Typeflag: tar.TypeReg, Size: int64(len(e.data)),
		}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("writing layer entry %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("writing layer entry %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing layer: %w", err)
	}
	return buf.Bytes(), nil
}

// checkParents makes sure every entry's directory is an earlier entry: container runtimes create missing parents
// as root with mode 0755, which would hide a mistake in the layout.
func checkParents(entries []entry) error {
	dirs := map[string]bool{"": true}
	for _, e := range entries {
		parent := path.Dir(strings.TrimSuffix(e.name, "/"))
		if parent == "." {
			parent = ""
		} else {
			parent += "/"
		}
		if !dirs[parent] {
			return fmt.Errorf("building image layer: %s has no parent directory entry %s", e.name, parent)
		}
		if strings.HasSuffix(e.name, "/") {
			dirs[e.name] = true
		}
	}
	return nil
}
