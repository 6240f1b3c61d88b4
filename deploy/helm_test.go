package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

const (
	chartDir = "helm/kubedispatch"
	// The release and namespace with which the chart renders deploy/'s names.
	release   = "kubedispatch"
	namespace = "kubedispatch-system"
)

// The chart's generated copies are those of deploy/crd and deploy/rbac, byte for byte (hack/generate.sh writes them).
func TestChartCopies(t *testing.T) {
	crds, err := filepath.Glob("crd/kubedispatch.io_*.yaml")
	if err != nil || len(crds) == 0 {
		t.Fatalf("finding deploy/crd/*.yaml: %v (%d files)", err, len(crds))
	}
	want := map[string]string{"rbac/role.yaml": filepath.Join(chartDir, "files", "manager-role.yaml")}
	for _, c := range crds {
		want[c] = filepath.Join(chartDir, "crds", filepath.Base(c))
	}
	copies, err := filepath.Glob(filepath.Join(chartDir, "crds", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range copies {
		if !slices.Contains(crds, filepath.Join("crd", filepath.Base(c))) {
			t.Errorf("%s has no source in deploy/crd: run hack/generate.sh", c)
		}
	}
	for src, dst := range want {
		a, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(dst)
		if err != nil {
			t.Errorf("%v: run hack/generate.sh", err)
			continue
		}
		if string(a) != string(b) {
			t.Errorf("%s differs from %s: run hack/generate.sh", dst, src)
		}
	}
}

// helm returns the cached helm binary, building it with hack/build-helm.sh if needed (a few minutes, once); with
// -short and no cached binary the test is skipped.
func helm(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		cached, err := cachedHelm()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(cached); err != nil {
			t.Skipf("-short: no cached helm at %s (hack/build-helm.sh builds it)", cached)
		}
		return cached
	}
	path, err := EnsureHelm("..")
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// cachedHelm is where hack/build-helm.sh puts helm: $KUBEDISPATCH_CACHE/bin/helm-$HELM_VERSION.
func cachedHelm() (string, error) {
	f, err := os.Open(filepath.Join("..", "hack", "versions.env"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	version := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "HELM_VERSION="); ok {
			version = v
		}
	}
	cache := os.Getenv("KUBEDISPATCH_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache", "kubedispatch")
	}
	return filepath.Join(cache, "bin", "helm-"+version), sc.Err()
}

// valueSets are the values files that TestHelmLint lints and TestHelmTemplate renders.
var valueSets = map[string]map[string]any{
	"defaults": nil,
	"watch namespaces, cluster-wide RBAC": {
		"watchNamespaces": []any{"team-a", "team-b"},
	},
	"namespaced RBAC": {
		"watchNamespaces": []any{"team-a", "team-b"},
		"rbac":            map[string]any{"mode": "namespaced"},
	},
	"tuned: QPS, replicas, plain metrics, endpoints, extra args": {
		"replicas":         3,
		"kubeAPIQPS":       50.5,
		"kubeAPIBurst":     80,
		"logLevel":         "debug",
		"allowedEndpoints": []any{"*.internal.example.com", "127.0.0.1:*"},
		"metrics":          map[string]any{"secure": false, "port": 8080, "serviceMonitor": map[string]any{"enabled": true}},
		"extraArgs":        []any{"--concurrency=16"},
		"image":            map[string]any{"tag": "v0.2.0", "pullPolicy": "Always"},
	},
	"metrics off, no leader election": {
		"metrics":        map[string]any{"enabled": false},
		"leaderElection": map[string]any{"enabled": false},
	},
	"local stack": {
		"image":            map[string]any{"tag": "dev", "pullPolicy": "Never"},
		"hostNetwork":      true,
		"createNamespace":  true,
		"nodeSelector":     map[string]any{"kubedispatch.io/node": "real"},
		"tolerations":      []any{map[string]any{"key": "kubedispatch.io/node", "operator": "Equal", "value": "real", "effect": "NoSchedule"}},
		"allowedEndpoints": []any{"127.0.0.1:*", "localhost:*"},
		"metrics":          map[string]any{"port": 18443},
		"probes":           map[string]any{"port": 18081},
		"extraEnv": []any{
			map[string]any{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
			map[string]any{"name": "KUBERNETES_SERVICE_PORT", "value": "6443"},
		},
	},
}

func TestHelmLint(t *testing.T) {
	bin := helm(t)
	for name, values := range valueSets {
		t.Run(name, func(t *testing.T) {
			// helm splits --values at commas, which t.TempDir() takes from the test name.
			dir, err := os.MkdirTemp("", "kubedispatch-lint-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			file := filepath.Join(dir, "values.yaml")
			if err := WriteValues(file, values); err != nil {
				t.Fatal(err)
			}
			out, err := runCommand(bin, "lint", "--strict", chartDir, "--namespace", namespace, "--values", file)
			if err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
		})
	}
}

// The chart refuses values it cannot honour, with a message that says why.
func TestHelmRefuses(t *testing.T) {
	bin := helm(t)
	cases := map[string]struct {
		values map[string]any
		want   string
	}{
		"namespaced RBAC without namespaces": {
			values: map[string]any{"rbac": map[string]any{"mode": "namespaced"}},
			want:   "rbac.mode namespaced needs watchNamespaces",
		},
		"an unknown RBAC mode": {
			values: map[string]any{"rbac": map[string]any{"mode": "perNamespace"}},
			want:   "/rbac/mode",
		},
		"two replicas without leader election": {
			values: map[string]any{"replicas": 2, "leaderElection": map[string]any{"enabled": false}},
			want:   "replicas > 1 needs leaderElection.enabled",
		},
		"QPS 0": {
			values: map[string]any{"kubeAPIQPS": 0},
			want:   "/kubeAPIQPS",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := HelmTemplate(bin, chartDir, release, namespace, tc.values)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("helm template: %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

// defaultArgs are the dispatcher's arguments in deploy/manager/deployment.yaml, and in the chart with its defaults.
var defaultArgs = []string{
	"--leader-elect=true", "--metrics-bind-address=:8443", "--metrics-secure=true", "--health-probe-bind-address=:8081",
	"--zap-log-level=info", "--kube-api-qps=100", "--kube-api-burst=200",
}

// wantNamespacedRBAC is wantDefault with rbac.mode namespaced and the given watched namespaces: the rules of
// ClusterRole kubedispatch-manager on resources that exist only cluster-wide stay in it, the others go to a Role in
// each watched namespace, and Secrets are granted as components/namespaced-secrets grants them.
func wantNamespacedRBAC(namespaces ...string) []grant {
	clusterScoped := map[string]bool{
		"core/namespaces": true, "authentication.k8s.io/tokenreviews": true,
		"authorization.k8s.io/subjectaccessreviews": true, "kubedispatch.io/clustertriggerauthentications": true,
	}
	var out []grant
	for _, g := range wantDefault {
		switch {
		case g.Role == secrets:
		case g.Role == manager && !clusterScoped[g.APIGroup+"/"+g.Resource]:
			for _, ns := range namespaces {
				out = append(out, grant{"Role " + ns + "/kubedispatch-manager", g.APIGroup, g.Resource, g.Verbs})
			}
		default:
			out = append(out, g)
		}
	}
	out = append(out, grant{clusterAuth, "core", "secrets", "get"})
	for _, ns := range namespaces {
		out = append(out, grant{"Role " + ns + "/kubedispatch-secrets", "core", "secrets", "create,get"})
	}
	return out
}

func wantNamespacedBindings(namespaces ...string) []binding {
	out := []binding{
		{"ClusterRoleBinding kubedispatch-manager", manager, dispatcherSA},
		{"RoleBinding kubedispatch-system/kubedispatch-leader-election", "Role kubedispatch-leader-election", dispatcherSA},
		{"RoleBinding kubedispatch-system/kubedispatch-cluster-auth-secrets", "Role kubedispatch-cluster-auth-secrets", dispatcherSA},
	}
	for _, ns := range namespaces {
		out = append(out,
			binding{"RoleBinding " + ns + "/kubedispatch-manager", "Role kubedispatch-manager", dispatcherSA},
			binding{"RoleBinding " + ns + "/kubedispatch-secrets", "Role kubedispatch-secrets", dispatcherSA})
	}
	return out
}

// restricted is the security context of deploy/manager/deployment.yaml and of the chart's defaults.
var (
	restrictedPod = &corev1.PodSecurityContext{
		RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532), RunAsGroup: ptr.To[int64](65532),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	restrictedContainer = &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true), RunAsNonRoot: ptr.To(true),
		Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
)

// deployment is what TestHelmTemplate checks of the rendered Deployment.
type deployment struct {
	Replicas          int32
	Image             string
	PullPolicy        corev1.PullPolicy
	Args              []string
	ExtraEnv          []corev1.EnvVar // beyond POD_NAMESPACE and GOMEMLIMIT
	Ports             []corev1.ContainerPort
	HostNetwork       bool
	DNSPolicy         corev1.DNSPolicy
	NodeSelector      map[string]string
	Tolerations       []corev1.Toleration
	PodSecurity       *corev1.PodSecurityContext
	ContainerSecurity *corev1.SecurityContext
}

func ports(metrics, probes int32) []corev1.ContainerPort {
	var out []corev1.ContainerPort
	if metrics > 0 {
		out = append(out, corev1.ContainerPort{Name: "metrics", ContainerPort: metrics, Protocol: corev1.ProtocolTCP})
	}
	return append(out, corev1.ContainerPort{Name: "probes", ContainerPort: probes, Protocol: corev1.ProtocolTCP})
}

func TestHelmTemplate(t *testing.T) {
	bin := helm(t)
	base := deployment{
		Replicas: 1, Image: "ghcr.io/kubedispatch/dispatcher:v0.1.0", PullPolicy: corev1.PullIfNotPresent,
		Args: defaultArgs, Ports: ports(8443, 8081), PodSecurity: restrictedPod, ContainerSecurity: restrictedContainer,
	}
	with := func(edit func(d *deployment)) deployment {
		d := base
		d.Args = slices.Clone(base.Args)
		edit(&d)
		return d
	}
	cases := map[string]struct {
		want         deployment
		wantRBAC     []grant
		wantBindings []binding
		wantKinds    []string // beyond those of the defaults
		notKinds     []string // of the defaults, absent
	}{
		"defaults": {
			want:         base,
			wantRBAC:     wantDefault,
			wantBindings: wantDefaultBindings,
		},
		"watch namespaces, cluster-wide RBAC": {
			want:         with(func(d *deployment) { d.Args = append(d.Args, "--watch-namespace=team-a,team-b") }),
			wantRBAC:     wantDefault,
			wantBindings: wantDefaultBindings,
		},
		"namespaced RBAC": {
			want:         with(func(d *deployment) { d.Args = append(d.Args, "--watch-namespace=team-a,team-b") }),
			wantRBAC:     wantNamespacedRBAC("team-a", "team-b"),
			wantBindings: wantNamespacedBindings("team-a", "team-b"),
		},
		"tuned: QPS, replicas, plain metrics, endpoints, extra args": {
			want: with(func(d *deployment) {
				d.Replicas, d.Image, d.PullPolicy = 3, "ghcr.io/kubedispatch/dispatcher:v0.2.0", corev1.PullAlways
				d.Args = []string{"--leader-elect=true", "--metrics-bind-address=:8080", "--metrics-secure=false",
					"--health-probe-bind-address=:8081", "--zap-log-level=debug", "--kube-api-qps=50.5", "--kube-api-burst=80",
					"--allowed-endpoints=*.internal.example.com,127.0.0.1:*", "--concurrency=16"}
				d.Ports = ports(8080, 8081)
			}),
			// Plain HTTP metrics consult no RBAC: no ClusterRole kubedispatch-metrics-reader.
			wantRBAC:     slices.DeleteFunc(slices.Clone(wantDefault), func(g grant) bool { return g.Role == metricsReader }),
			wantBindings: wantDefaultBindings,
			wantKinds:    []string{"ServiceMonitor kubedispatch-system/kubedispatch-dispatcher"},
		},
		"metrics off, no leader election": {
			want: with(func(d *deployment) {
				d.Args[0], d.Args[1] = "--leader-elect=false", "--metrics-bind-address=0"
				d.Ports = ports(0, 8081)
			}),
			wantRBAC: slices.DeleteFunc(slices.Clone(wantDefault), func(g grant) bool {
				return g.Role == metricsReader || g.Role == leaderElection
			}),
			wantBindings: slices.DeleteFunc(slices.Clone(wantDefaultBindings), func(b binding) bool {
				return strings.Contains(b.Binding, "leader-election")
			}),
			notKinds: []string{"Service kubedispatch-system/kubedispatch-dispatcher-metrics"},
		},
		"local stack": {
			want: with(func(d *deployment) {
				d.Image, d.PullPolicy = "ghcr.io/kubedispatch/dispatcher:dev", corev1.PullNever
				d.Args = []string{"--leader-elect=true", "--metrics-bind-address=:18443", "--metrics-secure=true",
					"--health-probe-bind-address=:18081", "--zap-log-level=info", "--kube-api-qps=100", "--kube-api-burst=200",
					"--allowed-endpoints=127.0.0.1:*,localhost:*"}
				d.ExtraEnv = []corev1.EnvVar{{Name: "KUBERNETES_SERVICE_HOST", Value: "127.0.0.1"}, {Name: "KUBERNETES_SERVICE_PORT", Value: "6443"}}
				d.Ports = ports(18443, 18081)
				d.HostNetwork, d.DNSPolicy = true, corev1.DNSClusterFirstWithHostNet
				d.NodeSelector = map[string]string{"kubedispatch.io/node": "real"}
				d.Tolerations = []corev1.Toleration{{Key: "kubedispatch.io/node", Operator: corev1.TolerationOpEqual, Value: "real", Effect: corev1.TaintEffectNoSchedule}}
			}),
			wantRBAC:     wantDefault,
			wantBindings: wantDefaultBindings,
			wantKinds:    []string{"Namespace kubedispatch-system"},
		},
	}
	defaults, err := HelmTemplate(bin, chartDir, release, namespace, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			objs, err := HelmTemplate(bin, chartDir, release, namespace, valueSets[name])
			if err != nil {
				t.Fatal(err)
			}
			d := renderedDeployment(t, objs, "kubedispatch-dispatcher")
			if diff := cmp.Diff(tc.want, summarize(t, d)); diff != "" {
				t.Errorf("Deployment (-want +got):\n%s", diff)
			}
			r := rbacOf(t, objs)
			if diff := cmp.Diff(sortGrants(tc.wantRBAC), grants(t, r)); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(sortBindings(tc.wantBindings), bindings(r)); diff != "" {
				t.Errorf("bindings (-want +got):\n%s", diff)
			}
			// Other objects: those of the defaults, give or take the ones the values add or remove. Roles and
			// bindings are checked above.
			want := slices.DeleteFunc(append(nonRBACKinds(defaults), tc.wantKinds...), func(k string) bool { return slices.Contains(tc.notKinds, k) })
			if diff := cmp.Diff(sorted(want), sorted(nonRBACKinds(objs))); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
		})
	}
}

// In clusterWide mode the chart's ClusterRole kubedispatch-manager has exactly the rules of deploy/rbac/role.yaml.
func TestHelmManagerRulesAreGenerated(t *testing.T) {
	bin := helm(t)
	b, err := os.ReadFile("rbac/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var generated rbacv1.ClusterRole
	if err := yaml.Unmarshal(b, &generated); err != nil {
		t.Fatal(err)
	}
	for name, values := range map[string]map[string]any{"defaults": nil, "watch namespaces": valueSets["watch namespaces, cluster-wide RBAC"]} {
		t.Run(name, func(t *testing.T) {
			objs, err := HelmTemplate(bin, chartDir, release, namespace, values)
			if err != nil {
				t.Fatal(err)
			}
			var got []rbacv1.PolicyRule
			for _, cr := range rbacOf(t, objs).ClusterRoles {
				if cr.Name == "kubedispatch-manager" {
					got = cr.Rules
				}
			}
			if diff := cmp.Diff(generated.Rules, got); diff != "" {
				t.Errorf("ClusterRole kubedispatch-manager (-deploy/rbac/role.yaml +chart):\n%s", diff)
			}
		})
	}
}

// The chart with its defaults (release kubedispatch in kubedispatch-system) installs what `kubectl apply -k deploy/`
// does: the same objects by kind and name (but the Namespace, which `helm install --create-namespace` makes, or
// createNamespace), the same RBAC, and the same pod spec; only the labels differ (Helm's own).
func TestHelmMatchesKustomize(t *testing.T) {
	bin := helm(t)
	chart, err := HelmTemplate(bin, chartDir, release, namespace, nil)
	if err != nil {
		t.Fatal(err)
	}
	kustomized, err := Render(".")
	if err != nil {
		t.Fatal(err)
	}
	want := slices.DeleteFunc(kindsAndNames(kustomized), func(k string) bool { return k == "Namespace kubedispatch-system" })
	if diff := cmp.Diff(sorted(want), sorted(kindsAndNames(chart))); diff != "" {
		t.Errorf("objects (-kustomize +helm):\n%s", diff)
	}
	if diff := cmp.Diff(grants(t, rbacOf(t, kustomized)), grants(t, rbacOf(t, chart))); diff != "" {
		t.Errorf("rules (-kustomize +helm):\n%s", diff)
	}
	if diff := cmp.Diff(bindings(rbacOf(t, kustomized)), bindings(rbacOf(t, chart))); diff != "" {
		t.Errorf("bindings (-kustomize +helm):\n%s", diff)
	}
	k, h := renderedDeployment(t, kustomized, "kubedispatch-dispatcher"), renderedDeployment(t, chart, "kubedispatch-dispatcher")
	if diff := cmp.Diff(k.Spec.Template.Spec, h.Spec.Template.Spec); diff != "" {
		t.Errorf("pod spec (-kustomize +helm):\n%s", diff)
	}
	if diff := cmp.Diff(k.Spec.Replicas, h.Spec.Replicas); diff != "" {
		t.Errorf("replicas (-kustomize +helm):\n%s", diff)
	}
	if got := summarize(t, k).Args; !slices.Equal(got, defaultArgs) {
		t.Errorf("deploy/manager/deployment.yaml args %q, want %q", got, defaultArgs)
	}
}

// overlays/local renders deploy/'s objects with the local stack's Deployment and namespace; WriteLocalOverlay moves
// the API server port and the host ports.
func TestLocalOverlay(t *testing.T) {
	written := func(t *testing.T) string {
		dir := t.TempDir()
		if err := WriteLocalOverlay(dir, ".", LocalSettings{APIServerPort: 34567, ProbePort: 23081, MetricsPort: 23443}); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	local := func(apiPort, probePort, metricsPort int32) deployment {
		return deployment{
			Replicas: 1, Image: "ghcr.io/kubedispatch/dispatcher:dev", PullPolicy: corev1.PullNever,
			Args: []string{"--leader-elect=true", "--metrics-secure=true", "--zap-log-level=info", "--allowed-endpoints=127.0.0.1:*,localhost:*"},
			ExtraEnv: []corev1.EnvVar{ // sorted by name
				{Name: "KUBEDISPATCH_HEALTH_PROBE_BIND_ADDRESS", Value: ":" + itoa(probePort)},
				{Name: "KUBEDISPATCH_METRICS_BIND_ADDRESS", Value: ":" + itoa(metricsPort)},
				{Name: "KUBERNETES_SERVICE_HOST", Value: "127.0.0.1"},
				{Name: "KUBERNETES_SERVICE_PORT", Value: itoa(apiPort)},
			},
			Ports:       ports(metricsPort, probePort),
			HostNetwork: true, DNSPolicy: corev1.DNSClusterFirstWithHostNet,
			NodeSelector:      map[string]string{"kubedispatch.io/node": "real"},
			Tolerations:       []corev1.Toleration{{Key: "kubedispatch.io/node", Operator: corev1.TolerationOpEqual, Value: "real", Effect: corev1.TaintEffectNoSchedule}},
			PodSecurity:       restrictedPod,
			ContainerSecurity: restrictedContainer,
		}
	}
	cases := map[string]struct {
		dir  func(t *testing.T) string
		want deployment
	}{
		"overlays/local":          {dir: func(*testing.T) string { return filepath.Join("overlays", "local") }, want: local(6443, 18081, 18443)},
		"WriteLocalOverlay ports": {dir: written, want: local(34567, 23081, 23443)},
	}
	base, err := Render(".")
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			objs, err := Render(tc.dir(t))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(kindsAndNames(base), kindsAndNames(objs)); diff != "" {
				t.Errorf("objects (-deploy +local):\n%s", diff)
			}
			if diff := cmp.Diff(grants(t, rbacOf(t, base)), grants(t, rbacOf(t, objs))); diff != "" {
				t.Errorf("rules (-deploy +local):\n%s", diff)
			}
			d := renderedDeployment(t, objs, "kubedispatch-dispatcher")
			if diff := cmp.Diff(tc.want, summarize(t, d)); diff != "" {
				t.Errorf("Deployment (-want +got):\n%s", diff)
			}
			for _, o := range objs {
				if o.GetKind() == "Namespace" && o.GetLabels()["pod-security.kubernetes.io/enforce"] != "privileged" {
					t.Errorf("Namespace %s labels %v: hostNetwork needs enforce=privileged", o.GetName(), o.GetLabels())
				}
			}
		})
	}
}

func itoa(i int32) string { return strconv.Itoa(int(i)) }

// runCommand runs bin with args and returns its combined output.
func runCommand(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

// summarize reads what TestHelmTemplate compares of d, after checking what every render has: one container,
// POD_NAMESPACE and GOMEMLIMIT first in its env, probes on the port named probes.
func summarize(t *testing.T, d *appsv1.Deployment) deployment {
	t.Helper()
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("Deployment %s has %d containers, want 1", d.Name, len(pod.Containers))
	}
	c := pod.Containers[0]
	var extra []corev1.EnvVar
	seen := map[string]bool{}
	for _, e := range c.Env {
		switch {
		case e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace",
			e.Name == "GOMEMLIMIT" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory":
			seen[e.Name] = true
		default:
			extra = append(extra, e)
		}
	}
	// Env order carries no meaning here (no $(VAR) references), and kustomize's merge does not keep it.
	slices.SortFunc(extra, func(a, b corev1.EnvVar) int { return strings.Compare(a.Name, b.Name) })
	if !seen["POD_NAMESPACE"] || !seen["GOMEMLIMIT"] {
		t.Errorf("env %+v: want POD_NAMESPACE from metadata.namespace and GOMEMLIMIT from limits.memory", c.Env)
	}
	for probe, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.String() != "probes" {
			t.Errorf("%s probe %+v: want an HTTP GET on the port named probes", probe, p)
		}
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("resources %+v: want a memory limit and a CPU request", c.Resources)
	}
	return deployment{
		Replicas: ptr.Deref(d.Spec.Replicas, 1), Image: c.Image, PullPolicy: c.ImagePullPolicy, Args: c.Args, ExtraEnv: extra,
		Ports: c.Ports, HostNetwork: pod.HostNetwork, DNSPolicy: pod.DNSPolicy, NodeSelector: pod.NodeSelector,
		Tolerations: pod.Tolerations, PodSecurity: pod.SecurityContext, ContainerSecurity: c.SecurityContext,
	}
}

func renderedDeployment(t *testing.T, objs []*unstructured.Unstructured, name string) *appsv1.Deployment {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "Deployment" && o.GetName() == name {
			var d appsv1.Deployment
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &d, true); err != nil {
				t.Fatalf("decoding Deployment %s: %v", name, err)
			}
			return &d
		}
	}
	t.Fatalf("no Deployment %s among %v", name, kindsAndNames(objs))
	return nil
}

// rbacOf decodes the RBAC objects among objs.
func rbacOf(t *testing.T, objs []*unstructured.Unstructured) *RBAC {
	t.Helper()
	out := &RBAC{}
	for _, o := range objs {
		if o.GetAPIVersion() != rbacv1.SchemeGroupVersion.String() {
			continue
		}
		if err := out.add(o.GetKind(), o.GetName(), o.Object); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// kindsAndNames lists objs as "Kind namespace/name" (or "Kind name" when cluster-scoped).
func kindsAndNames(objs []*unstructured.Unstructured) []string {
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		name := o.GetName()
		if ns := o.GetNamespace(); ns != "" {
			name = ns + "/" + name
		}
		out = append(out, o.GetKind()+" "+name)
	}
	return sorted(out)
}

func nonRBACKinds(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		if o.GetAPIVersion() != rbacv1.SchemeGroupVersion.String() {
			out = append(out, kindsAndNames([]*unstructured.Unstructured{o})...)
		}
	}
	return out
}
