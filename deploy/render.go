package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The namespace of the install and the dispatcher's ServiceAccount, as deploy/ and the chart (release
// "kubedispatch") name them.
const (
	Namespace      = "kubedispatch-system"
	ServiceAccount = "kubedispatch-dispatcher"
)

// RBAC is the RBAC of a rendered kustomization, each kind in kustomize's output order.
type RBAC struct {
	ClusterRoles        []rbacv1.ClusterRole
	ClusterRoleBindings []rbacv1.ClusterRoleBinding
	Roles               []rbacv1.Role
	RoleBindings        []rbacv1.RoleBinding
}

// RenderRBAC builds the kustomization in dir (deploy/, or an overlay of it) with kustomize's default options, as
// `kubectl kustomize dir` does, and returns its RBAC objects; the other objects are ignored.
func RenderRBAC(dir string) (*RBAC, error) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("building the kustomization %s: %w", dir, err)
	}
	out := &RBAC{}
	for _, r := range m.Resources() {
		if r.GetApiVersion() != rbacv1.SchemeGroupVersion.String() {
			continue
		}
		obj, err := r.Map()
		if err != nil {
			return nil, fmt.Errorf("reading %s %s: %w", r.GetKind(), r.GetName(), err)
		}
		if err := out.add(r.GetKind(), r.GetName(), obj); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// add decodes one RBAC object of kind (Role, ClusterRole or a binding) into rbac.
func (rbac *RBAC) add(kind, name string, obj map[string]any) error {
	var into any
	switch kind {
	case "ClusterRole":
		rbac.ClusterRoles = append(rbac.ClusterRoles, rbacv1.ClusterRole{})
		into = &rbac.ClusterRoles[len(rbac.ClusterRoles)-1]
	case "ClusterRoleBinding":
		rbac.ClusterRoleBindings = append(rbac.ClusterRoleBindings, rbacv1.ClusterRoleBinding{})
		into = &rbac.ClusterRoleBindings[len(rbac.ClusterRoleBindings)-1]
	case "Role":
		rbac.Roles = append(rbac.Roles, rbacv1.Role{})
		into = &rbac.Roles[len(rbac.Roles)-1]
	case "RoleBinding":
		rbac.RoleBindings = append(rbac.RoleBindings, rbacv1.RoleBinding{})
		into = &rbac.RoleBindings[len(rbac.RoleBindings)-1]
	default:
		return fmt.Errorf("unexpected RBAC kind %s (%s)", kind, name)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj, into, true); err != nil {
		return fmt.Errorf("decoding %s %s: %w", kind, name, err)
	}
	return nil
}

// WriteNamespacedSecretsOverlay writes into dir the overlay that docs/security.md ("Secrets only in some namespaces")
// describes: the kustomization deployDir (deploy/), the component components/namespaced-secrets, one copy of its
// watched_namespace_secrets_role.yaml per namespace, and WATCH_NAMESPACE set to those namespaces. dir must not be
// inside deployDir: kustomize refuses an overlay inside its base.
func WriteNamespacedSecretsOverlay(dir, deployDir string, namespaces ...string) error {
	abs, err := filepath.Abs(deployDir)
	if err != nil {
		return fmt.Errorf("resolving %s: %w", deployDir, err)
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("resolving %s: %w", dir, err)
	}
	base, err := filepath.Rel(absDir, abs)
	if err != nil {
		return fmt.Errorf("locating %s from %s: %w", deployDir, dir, err)
	}
	base = filepath.ToSlash(base)
	role, err := os.ReadFile(filepath.Join(abs, "components", "namespaced-secrets", "watched_namespace_secrets_role.yaml"))
	if err != nil {
		return fmt.Errorf("reading the per-namespace Secrets Role: %w", err)
	}
	var k strings.Builder
	fmt.Fprintf(&k, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\n", base)
	files := map[string][]byte{}
	for _, ns := range namespaces {
		name := ns + "-secrets.yaml"
		files[name] = []byte(strings.ReplaceAll(string(role), "namespace: team-a", "namespace: "+ns))
		fmt.Fprintf(&k, "  - %s\n", name)
	}
	fmt.Fprintf(&k, `components:
  - %s/components/namespaced-secrets
patches:
  - target:
      kind: Deployment
      name: kubedispatch-dispatcher
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/env/-
        value: {name: WATCH_NAMESPACE, value: %q}
`, base, strings.Join(namespaces, ","))
	files["kustomization.yaml"] = []byte(k.String())
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("writing the overlay: %w", err)
		}
	}
	return nil
}

// Render builds the kustomization in dir as `kubectl kustomize dir` does and returns its objects in kustomize's
// output order.
func Render(dir string) ([]*unstructured.Unstructured, error) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("building the kustomization %s: %w", dir, err)
	}
	out := make([]*unstructured.Unstructured, 0, len(m.Resources()))
	for _, r := range m.Resources() {
		obj, err := r.Map()
		if err != nil {
			return nil, fmt.Errorf("reading %s %s: %w", r.GetKind(), r.GetName(), err)
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
	return out, nil
}

// LocalSettings are what overlays/local cannot know in advance: the port of the local stack's API server (on
// 127.0.0.1) and, since the dispatcher runs in the host's network, free host ports for its probes and /metrics.
type LocalSettings struct {
	APIServerPort int
	ProbePort     int // 0: 18081, as overlays/local has it
	MetricsPort   int // 0: 18443, as overlays/local has it
}

// WriteLocalOverlay writes into dir an overlay of deployDir/overlays/local with the settings s, for
// `kubectl apply -k dir`. dir must be outside deployDir (kustomize refuses an overlay inside its base).
func WriteLocalOverlay(dir, deployDir string, s LocalSettings) error {
	if s.APIServerPort <= 0 {
		return fmt.Errorf("writing the local overlay: API server port %d", s.APIServerPort)
	}
	if s.ProbePort == 0 {
		s.ProbePort = 18081
	}
	if s.MetricsPort == 0 {
		s.MetricsPort = 18443
	}
	base, err := relativeDir(dir, filepath.Join(deployDir, "overlays", "local"))
	if err != nil {
		return err
	}
	k := fmt.Sprintf(`# Written by deploy.WriteLocalOverlay: overlays/local with this host's ports.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
patches:
  - patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: kubedispatch-dispatcher
        namespace: kubedispatch-system
      spec:
        template:
          spec:
            containers:
              - name: dispatcher
                env:
                  - name: KUBERNETES_SERVICE_PORT
                    value: "%d"
                  - name: KUBEDISPATCH_HEALTH_PROBE_BIND_ADDRESS
                    value: ":%d"
                  - name: KUBEDISPATCH_METRICS_BIND_ADDRESS
                    value: ":%d"
                ports:
                  - $patch: replace
                  - name: metrics
                    containerPort: %d
                    protocol: TCP
                  - name: probes
                    containerPort: %d
                    protocol: TCP
`, base, s.APIServerPort, s.ProbePort, s.MetricsPort, s.MetricsPort, s.ProbePort)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		return fmt.Errorf("writing the local overlay: %w", err)
	}
	return nil
}

// relativeDir returns target as a slash-separated path relative to dir.
func relativeDir(dir, target string) (string, error) {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", dir, err)
	}
	absTarget, err := filepath.Abs(target)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", target, err)
	}
	rel, err := filepath.Rel(absDir, absTarget)
	if err != nil {
		return "", fmt.Errorf("locating %s from %s: %w", target, dir, err)
	}
	return filepath.ToSlash(rel), nil
}

// EnsureHelm returns the path of the helm binary that hack/build-helm.sh (under root, the repository) builds once and
// caches by version; a cold build takes a few minutes, its progress goes to stderr.
func EnsureHelm(root string) (string, error) {
	cmd := exec.Command("bash", filepath.Join(root, "hack", "build-helm.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("running hack/build-helm.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	path := strings.TrimSpace(lines[len(lines)-1])
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("finding helm after hack/build-helm.sh: %w", err)
	}
	return path, nil
}

// WriteValues writes values as a Helm values file at path.
func WriteValues(path string, values map[string]any) error {
	b, err := yaml.Marshal(values)
	if err != nil {
		return fmt.Errorf("encoding Helm values: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("writing Helm values: %w", err)
	}
	return nil
}

// HelmTemplate runs `helm template release chart --namespace namespace --include-crds` with values (nil: the
// chart's defaults) and returns the rendered objects in helm's order.
func HelmTemplate(helm, chart, release, namespace string, values map[string]any) ([]*unstructured.Unstructured, error) {
	dir, err := os.MkdirTemp("", "kubedispatch-helm-")
	if err != nil {
		return nil, fmt.Errorf("creating a values directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	valuesFile := filepath.Join(dir, "values.yaml")
	if err := WriteValues(valuesFile, values); err != nil {
		return nil, err
	}
	cmd := exec.Command(helm, "template", release, chart, "--namespace", namespace, "--include-crds", "--values", valuesFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("rendering the chart %s: %w: %s", chart, err, strings.TrimSpace(stderr.String()))
	}
	return DecodeObjects(out)
}

// DecodeObjects splits a multi-document YAML stream (kubectl or helm output) into objects, skipping empty documents.
func DecodeObjects(b []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decoding object %d: %w", len(out)+1, err)
		}
		if len(obj) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}
