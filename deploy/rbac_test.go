package deploy

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
)

// grant is one resource (or non-resource URL) of one RBAC rule, with its verbs sorted: rules are compared in this
// form, so that how controller-gen groups resources into rules does not matter.
type grant struct {
	Role     string // "ClusterRole kubedispatch-manager", "Role kubedispatch-system/kubedispatch-leader-election"
	APIGroup string // "core" for the core group; empty for a non-resource URL
	Resource string // "jobs", "scaledjobs/status", or a non-resource URL such as "/metrics"
	Verbs    string // "create,get"
}

// binding is one subject of a RoleBinding or ClusterRoleBinding.
type binding struct {
	Binding string // "ClusterRoleBinding kubedispatch-manager", "RoleBinding kubedispatch-system/kubedispatch-leader-election"
	RoleRef string // "ClusterRole kubedispatch-manager", "Role kubedispatch-leader-election"
	Subject string // "ServiceAccount kubedispatch-system/kubedispatch-dispatcher"
}

const (
	manager        = "ClusterRole kubedispatch-manager"
	secrets        = "ClusterRole kubedispatch-secrets"
	metricsReader  = "ClusterRole kubedispatch-metrics-reader"
	leaderElection = "Role kubedispatch-system/kubedispatch-leader-election"
	clusterAuth    = "Role kubedispatch-system/kubedispatch-cluster-auth-secrets"
	watched        = "Role team-a/kubedispatch-secrets"
	dispatcherSA   = "ServiceAccount kubedispatch-system/kubedispatch-dispatcher"
)

// wantDefault is every permission deploy/ grants. docs/security.md ("RBAC") gives the reason of each row, and
// TestDocumentedRules checks that its table says the same.
var wantDefault = []grant{
	{manager, "kubedispatch.io", "scaledjobs", "list,watch"},
	{manager, "kubedispatch.io", "scaledjobs/status", "update"},
	{manager, "kubedispatch.io", "scaledjobs/finalizers", "update"},
	{manager, "kubedispatch.io", "triggerauthentications", "list,watch"},
	{manager, "kubedispatch.io", "clustertriggerauthentications", "list,watch"},
	{manager, "batch", "jobs", "create,delete,get,list,patch,watch"},
	{manager, "batch", "jobs/finalizers", "update"},
	{manager, "core", "pods", "list,watch"},
	{manager, "core", "namespaces", "list,watch"},
	{manager, "events.k8s.io", "events", "create,patch"},
	{manager, "authentication.k8s.io", "tokenreviews", "create"},
	{manager, "authorization.k8s.io", "subjectaccessreviews", "create"},
	{secrets, "core", "secrets", "create,get"},
	{leaderElection, "coordination.k8s.io", "leases", "create,get,update"},
	{leaderElection, "core", "events", "create,patch"},
	{metricsReader, "", "/metrics", "get"},
}

var wantDefaultBindings = []binding{
	{"ClusterRoleBinding kubedispatch-manager", manager, dispatcherSA},
	{"ClusterRoleBinding kubedispatch-secrets", secrets, dispatcherSA},
	{"RoleBinding kubedispatch-system/kubedispatch-leader-election", "Role kubedispatch-leader-election", dispatcherSA},
}

// wantNamespacedSecrets replaces the rows of ClusterRole kubedispatch-secrets with the component
// components/namespaced-secrets and one watched namespace, team-a.
var wantNamespacedSecrets = []grant{
	{clusterAuth, "core", "secrets", "get"},
	{watched, "core", "secrets", "create,get"},
}

func TestRenderedRBAC(t *testing.T) {
	cases := map[string]struct {
		dir          func(t *testing.T) string
		want         []grant
		wantBindings []binding
	}{
		"deploy": {
			dir:          func(*testing.T) string { return "." },
			want:         wantDefault,
			wantBindings: wantDefaultBindings,
		},
		"an overlay with components/namespaced-secrets": {
			dir: namespacedSecretsOverlay,
			want: append(slices.DeleteFunc(slices.Clone(wantDefault), func(g grant) bool { return g.Role == secrets }),
				wantNamespacedSecrets...),
			wantBindings: append(slices.DeleteFunc(slices.Clone(wantDefaultBindings), func(b binding) bool { return b.RoleRef == secrets }),
				binding{"RoleBinding kubedispatch-system/kubedispatch-cluster-auth-secrets", "Role kubedispatch-cluster-auth-secrets", dispatcherSA},
				binding{"RoleBinding team-a/kubedispatch-secrets", "Role kubedispatch-secrets", dispatcherSA}),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r, err := RenderRBAC(tc.dir(t))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(sortGrants(tc.want), grants(t, r)); diff != "" {
				t.Errorf("rendered rules (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(sortBindings(tc.wantBindings), bindings(r)); diff != "" {
				t.Errorf("rendered bindings (-want +got):\n%s", diff)
			}
		})
	}
}

// The tables of docs/security.md ("RBAC") list the same rules as wantDefault and wantNamespacedSecrets.
func TestDocumentedRules(t *testing.T) {
	doc := filepath.Join("..", "docs", "security.md")
	for marker, want := range map[string][]grant{"rbac-rules": wantDefault, "rbac-rules-namespaced-secrets": wantNamespacedSecrets} {
		got, err := documentedGrants(doc, marker)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(sortGrants(want), sortGrants(got)); diff != "" {
			t.Errorf("%s, table %s (-rendered +documented):\n%s", doc, marker, diff)
		}
	}
}

// namespacedSecretsOverlay writes the overlay of docs/security.md for the namespace team-a into a temporary
// directory and returns it.
func namespacedSecretsOverlay(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := WriteNamespacedSecretsOverlay(dir, ".", "team-a"); err != nil {
		t.Fatal(err)
	}
	return dir
}

func grants(t *testing.T, r *RBAC) []grant {
	t.Helper()
	var out []grant
	add := func(role string, rules []rbacv1.PolicyRule) {
		for _, rule := range rules {
			if len(rule.ResourceNames) > 0 {
				t.Errorf("%s: a rule with resourceNames %v; grant does not represent them", role, rule.ResourceNames)
			}
			verbs := strings.Join(sorted(rule.Verbs), ",")
			for _, u := range rule.NonResourceURLs {
				out = append(out, grant{role, "", u, verbs})
			}
			for _, g := range rule.APIGroups {
				if g == "" {
					g = "core"
				}
				for _, res := range rule.Resources {
					out = append(out, grant{role, g, res, verbs})
				}
			}
		}
	}
	for _, cr := range r.ClusterRoles {
		add("ClusterRole "+cr.Name, cr.Rules)
	}
	for _, ro := range r.Roles {
		add("Role "+ro.Namespace+"/"+ro.Name, ro.Rules)
	}
	return sortGrants(out)
}

func bindings(r *RBAC) []binding {
	var out []binding
	add := func(b string, ref rbacv1.RoleRef, subjects []rbacv1.Subject) {
		for _, s := range subjects {
			out = append(out, binding{b, ref.Kind + " " + ref.Name, s.Kind + " " + s.Namespace + "/" + s.Name})
		}
	}
	for _, b := range r.ClusterRoleBindings {
		add("ClusterRoleBinding "+b.Name, b.RoleRef, b.Subjects)
	}
	for _, b := range r.RoleBindings {
		add("RoleBinding "+b.Namespace+"/"+b.Name, b.RoleRef, b.Subjects)
	}
	return sortBindings(out)
}

// documentedGrants reads the Markdown table between "<!-- marker -->" and "<!-- /marker -->" in path: columns
// Role, API group, Resource, Verbs, Why; backquotes are dropped, "—" is no API group, verbs are comma-separated.
func documentedGrants(path, marker string) ([]grant, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []grant
	in, found := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "<!-- "+marker+" -->":
			in, found = true, true
			continue
		case line == "<!-- /"+marker+" -->":
			in = false
		}
		if !in || !strings.HasPrefix(line, "|") || strings.HasPrefix(line, "| Role | API group") || strings.HasPrefix(line, "| ---") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 4 {
			return nil, fmt.Errorf("%s: table %s: row %q has fewer than 4 cells", path, marker, line)
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(strings.ReplaceAll(cells[i], "`", ""))
		}
		group := cells[1]
		if group == "—" {
			group = ""
		}
		var verbs []string
		for _, v := range strings.Split(cells[3], ",") {
			verbs = append(verbs, strings.TrimSpace(v))
		}
		out = append(out, grant{cells[0], group, cells[2], strings.Join(sorted(verbs), ",")})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%s: no <!-- %s --> table", path, marker)
	}
	return out, nil
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func sortGrants(g []grant) []grant {
	g = slices.Clone(g)
	slices.SortFunc(g, func(a, b grant) int {
		return strings.Compare(a.Role+"\x00"+a.APIGroup+"\x00"+a.Resource, b.Role+"\x00"+b.APIGroup+"\x00"+b.Resource)
	})
	return g
}

func sortBindings(b []binding) []binding {
	b = slices.Clone(b)
	slices.SortFunc(b, func(x, y binding) int {
		return strings.Compare(x.Binding+"\x00"+x.Subject, y.Binding+"\x00"+y.Subject)
	})
	return b
}
