package cluster

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Binaries are the paths of the control-plane programs.
type Binaries struct {
	Etcd, APIServer, ControllerManager, Scheduler, Kwok, Kubectl string
	// Kubelet runs the real node (Options.RealNode).
	Kubelet string
	// Promtool checks and tests the alert rules of deploy/monitoring (not part of the stack).
	Promtool string
}

func (b Binaries) check() error {
	for name, path := range map[string]string{
		"etcd": b.Etcd, "kube-apiserver": b.APIServer, "kube-controller-manager": b.ControllerManager,
		"kube-scheduler": b.Scheduler, "kwok": b.Kwok,
	} {
		if path == "" {
			return fmt.Errorf("%s: no binary given (run hack/build-binaries.sh)", name)
		}
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s: binary %s missing (run hack/build-binaries.sh): %w", name, path, err)
		}
	}
	return nil
}

// RepoRoot walks up from the working directory to the directory holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("finding the repository root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// EnsureBinaries runs hack/build-binaries.sh (which builds once and caches by version under
// $KUBEDISPATCH_CACHE, default ~/.cache/kubedispatch) and returns the binaries' paths. Build progress goes to stderr.
func EnsureBinaries(root string) (Binaries, error) {
	script := filepath.Join(root, "hack", "build-binaries.sh")
	cmd := exec.Command("bash", script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return Binaries{}, fmt.Errorf("building control-plane binaries with %s: %w", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	bin := lines[len(lines)-1]
	versions, err := readVersions(filepath.Join(root, "hack", "versions.env"))
	if err != nil {
		return Binaries{}, err
	}
	p := func(name, v string) string { return filepath.Join(bin, name+"-"+versions[v]) }
	return Binaries{
		Etcd:              p("etcd", "ETCD_VERSION"),
		APIServer:         p("kube-apiserver", "KUBE_VERSION"),
		ControllerManager: p("kube-controller-manager", "KUBE_VERSION"),
		Scheduler:         p("kube-scheduler", "KUBE_VERSION"),
		Kwok:              p("kwok", "KWOK_VERSION"),
		Kubectl:           p("kubectl", "KUBE_VERSION"),
		Kubelet:           p("kubelet", "KUBE_VERSION"),
		Promtool:          p("promtool", "PROMTOOL_VERSION"),
	}, nil
}

func readVersions(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading pinned versions: %w", err)
	}
	v := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, val, ok := strings.Cut(line, "="); ok {
			v[k] = val
		}
	}
	return v, nil
}

func findMoto() (string, error) {
	p, err := exec.LookPath("moto_server")
	if err != nil {
		return "", errors.New("moto_server (SQS emulator) not found on PATH: install it with `pip install 'moto[server]==5.2.1'`")
	}
	return p, nil
}

func findPubSubEmulator() (string, error) {
	if p, err := exec.LookPath("cloud-pubsub-emulator"); err == nil {
		return p, nil
	}
	const debian = "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	return "", errors.New("Pub/Sub emulator not found: install it with `apt-get install google-cloud-cli-pubsub-emulator` (needs a JDK, e.g. openjdk-17-jre-headless)")
}

func clientcmdConfig(server, token string) *clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubedispatch-local"] = &clientcmdapi.Cluster{Server: server, InsecureSkipTLSVerify: true}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["kubedispatch-local"] = &clientcmdapi.Context{Cluster: "kubedispatch-local", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "kubedispatch-local"
	return cfg
}
