package framework

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/cluster"
	"github.com/kubedispatch/kubedispatch/internal/ociimage"
)

// The image references of `make image` and BuildImages.
const (
	DispatcherImage = "ghcr.io/kubedispatch/dispatcher:dev"
	WorkerImage     = "ghcr.io/kubedispatch/worker:dev"
)

// MainWithRealNode is MainWithAPI with a real node in the stack (cluster.Options.RealNode): pods that select and
// tolerate it (OnRealNode) run for real under containerd. Use it as:
//
//	func TestMain(m *testing.M) { os.Exit(framework.MainWithRealNode(m)) }
func MainWithRealNode(m *testing.M) int {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: building the scheme:", err)
			return 1
		}
	}
	return Main(m, Options{Scheme: s, CRDs: "deploy/crd", RealNode: true})
}

// OnRealNode makes spec's pods run on the stack's real node: it selects the node's label, tolerates its taint and
// sets every container's imagePullPolicy to IfNotPresent (no registry is reachable; images come from ImportImage).
func OnRealNode(spec *corev1.PodSpec) {
	if spec.NodeSelector == nil {
		spec.NodeSelector = map[string]string{}
	}
	for k, v := range cluster.RealNodeSelector() {
		spec.NodeSelector[k] = v
	}
	spec.Tolerations = append(spec.Tolerations, cluster.RealNodeTolerations()...)
	for i := range spec.InitContainers {
		spec.InitContainers[i].ImagePullPolicy = corev1.PullIfNotPresent
	}
	for i := range spec.Containers {
		spec.Containers[i].ImagePullPolicy = corev1.PullIfNotPresent
	}
}

var (
	imagesMu    sync.Mutex
	imagesBuilt map[string]string // image ref -> tarball
)

// BuildImages builds the dispatcher and example worker images (as `make image` does: static binaries packed by
// internal/ociimage) and returns their tarballs, tagged DispatcherImage and WorkerImage. The binaries are built with
// go build (its cache makes a warm build take seconds); the tarballs are cached under
// $KUBEDISPATCH_CACHE/images, keyed by the SHA-256 of the binary, so unchanged code is not packed again. Import
// them with Cluster().ImportImage (or ImportImages).
func BuildImages(t testing.TB) (dispatcherTar, workerTar string) {
	t.Helper()
	d, err := BuildImage("./cmd/dispatcher", "dispatcher", DispatcherImage, []string{"8080/tcp", "8081/tcp"})
	if err != nil {
		t.Fatal(err)
	}
	w, err := BuildImage("./examples/worker", "worker", WorkerImage, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d, w
}

// ImportImages builds the two images (BuildImages) and imports them into the stack's real node.
func ImportImages(t testing.TB) {
	t.Helper()
	d, w := BuildImages(t)
	for _, tar := range []string{d, w} {
		if err := stack.ImportImage(t.Context(), tar); err != nil {
			t.Fatal(err)
		}
	}
}

// BuildImage builds the static binary of package pkg and packs it as image ref (binary /<name>, exposing ports),
// cached as BuildImages describes; it returns the tarball. The demo uses it outside tests.
func BuildImage(pkg, name, ref string, ports []string) (string, error) {
	imagesMu.Lock()
	defer imagesMu.Unlock()
	if tar, ok := imagesBuilt[ref]; ok {
		return tar, nil
	}
	root, err := cluster.RepoRoot()
	if err != nil {
		return "", err
	}
	cache := os.Getenv("KUBEDISPATCH_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("finding the image cache: %w", err)
		}
		cache = filepath.Join(home, ".cache", "kubedispatch")
	}
	dir := filepath.Join(cache, "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating the image cache: %w", err)
	}
	tmp, err := os.MkdirTemp("", "kubedispatch-image-")
	if err != nil {
		return "", fmt.Errorf("creating build dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, name)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s for its image: %w\n%s", pkg, err, out)
	}
	sum, err := fileSHA256(bin)
	if err != nil {
		return "", err
	}
	// The key covers the binary and what else goes into the image; bump imageLayout when ociimage's layout changes.
	const imageLayout = "v1"
	key := sha256.Sum256([]byte(imageLayout + "\x00" + ref + "\x00" + sum))
	tar := filepath.Join(dir, fmt.Sprintf("%s-%s.tar", name, hex.EncodeToString(key[:])[:16]))
	if _, err := os.Stat(tar); err != nil {
		spec := ociimage.Spec{Binary: bin, Name: name, Ref: ref, ExposedPorts: ports,
			Labels: map[string]string{"org.opencontainers.image.source": "https://github.com/kubedispatch/kubedispatch"}}
		if err := ociimage.Write(tar, spec); err != nil {
			return "", fmt.Errorf("packing image %s: %w", ref, err)
		}
	}
	if imagesBuilt == nil {
		imagesBuilt = map[string]string{}
	}
	imagesBuilt[ref] = tar
	return tar, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
