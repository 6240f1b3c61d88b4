package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
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
		var into any
		switch r.GetKind() {
		case "ClusterRole":
			out.ClusterRoles = append(out.ClusterRoles, rbacv1.ClusterRole{})
			into = &out.ClusterRoles[len(out.ClusterRoles)-1]
		case "ClusterRoleBinding":
			out.ClusterRoleBindings = append(out.ClusterRoleBindings, rbacv1.ClusterRoleBinding{})
			into = &out.ClusterRoleBindings[len(out.ClusterRoleBindings)-1]
		case "Role":
			out.Roles = append(out.Roles, rbacv1.Role{})
			into = &out.Roles[len(out.Roles)-1]
		case "RoleBinding":
			out.RoleBindings = append(out.RoleBindings, rbacv1.RoleBinding{})
			into = &out.RoleBindings[len(out.RoleBindings)-1]
		default:
			return nil, fmt.Errorf("unexpected RBAC kind %s (%s)", r.GetKind(), r.GetName())
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj, into, true); err != nil {
			return nil, fmt.Errorf("decoding %s %s: %w", r.GetKind(), r.GetName(), err)
		}
	}
	return out, nil
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
