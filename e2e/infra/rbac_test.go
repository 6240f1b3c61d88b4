package infra

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/deploy"
	"github.com/kubedispatch/kubedispatch/e2e/cluster"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// The namespace and ServiceAccount that deploy/ binds its roles to; the test moves them to its own namespaces.
const (
	deployNamespace = deploy.Namespace
	dispatcherSA    = deploy.ServiceAccount
)

// TestRBAC runs the dispatcher with exactly the RBAC that deploy/ renders (and, in the second case, deploy/ with the
// component namespaced-secrets), authenticated as its ServiceAccount with a token from the TokenRequest API, not as
// cluster admin. The stack's API server enforces RBAC and OwnerReferencesPermissionEnforcement. The dispatcher must
// dispatch in count mode with a TriggerAuthentication and with a ClusterTriggerAuthentication (Secrets in the
// watched namespace and in its own), dispatch one message in message mode (payload Secret, message settled, outcome
// on the Job), hold its Lease, record events, serve /metrics over HTTPS only to a caller allowed GET /metrics, and
// log no forbidden request.
func TestRBAC(t *testing.T) {
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	deployDir := filepath.Join(root, "deploy")
	cases := map[string]func(t *testing.T, watched string) string{
		"deploy": func(*testing.T, string) string { return deployDir },
		"namespaced-secrets": func(t *testing.T, watched string) string {
			dir := t.TempDir()
			if err := deploy.WriteNamespacedSecretsOverlay(dir, deployDir, watched); err != nil {
				t.Fatal(err)
			}
			return dir
		},
	}
	for name, kustomization := range cases {
		t.Run(name, func(t *testing.T) {
			f := framework.New(t)
			f.Client = apiClient(t, f)
			if err := framework.InstallCRDs(f.Ctx, f.Client, filepath.Join(deployDir, "crd")); err != nil {
				t.Fatal(err)
			}
			own := extraNamespace(t, f, "kd-system")
			r, err := deploy.RenderRBAC(kustomization(t, f.Namespace))
			if err != nil {
				t.Fatal(err)
			}
			rename, rules := applyRBAC(t, f, r, own)
			checkRBAC(t, f, own, rename, rules)
		})
	}
}

// checkRBAC is one case of TestRBAC: the dispatcher's namespace is own, it watches f.Namespace, rename maps
// deploy/'s ClusterRole names to those applied, and rules are what the dispatcher's ServiceAccount was granted.
func checkRBAC(t *testing.T, f *framework.F, own string, rename map[string]string, rules []grantedRule) {
	// The dispatcher's identity, and two callers of /metrics: one allowed GET /metrics, one not.
	dispatcherToken := serviceAccountToken(t, f, own, dispatcherSA)
	reader := serviceAccountToken(t, f, own, "metrics-reader")
	bindClusterRole(t, f, rename["kubedispatch-metrics-reader"], own, "metrics-reader")
	stranger := serviceAccountToken(t, f, own, "stranger")
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := framework.Cluster().WriteKubeconfig(kubeconfig, dispatcherToken); err != nil {
		t.Fatal(err)
	}
	asDispatcher := clientsetFor(t, kubeconfig)
	if _, err := asDispatcher.CoreV1().Secrets(f.Namespace).List(f.Ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing Secrets as the dispatcher's ServiceAccount: %v, want Forbidden (the test must not run it as admin)", err)
	}
	// RBAC takes effect through the API server's informers: wait until every rule is, so that the dispatcher's first
	// requests are not refused for that reason alone.
	waitAllowed(t, f, asDispatcher, rules)

	// Credentials: a TriggerAuthentication in the watched namespace, and a ClusterTriggerAuthentication whose Secret
	// is in the dispatcher's namespace and which allows the watched namespace by label.
	nsAuth := f.AWSKeysAuth()
	cta := clusterAuth(t, f, own)

	count := f.CreateQueue("rbac-count", nil)
	shared := f.CreateQueue("rbac-shared", nil)
	messages := f.CreateQueue("rbac-message", map[string]string{"VisibilityTimeout": "30"})
	sj := framework.NewScaledJob(f, "count").SQS(count, 1).Max(3).RunFor("10m")
	sj.ScaledJob.Spec.Triggers[0].AuthenticationRef = nsAuth
	sj.Create()
	sj = framework.NewScaledJob(f, "shared").SQS(shared, 1).Max(2).RunFor("10m")
	sj.ScaledJob.Spec.Triggers[0].AuthenticationRef = cta
	sj.Create()
	sj = framework.NewScaledJob(f, "message").SQS(messages, 1).Max(2)
	sj.ScaledJob.Spec.Triggers[0].AuthenticationRef = nsAuth
	sj.ScaledJob.Spec.Dispatch = &v1alpha1.Dispatch{Mode: v1alpha1.ModeMessage}
	sj.Create()

	d := f.StartDispatcherWith(framework.DispatcherOptions{Kubeconfig: kubeconfig, SecureMetrics: true, MetricsToken: reader},
		"--namespace="+own, "--leader-election-namespace="+own,
		// The ClusterTriggerAuthentication's keys go to moto, a custom endpoint.
		"--allow-ambient-credentials-on-custom-endpoints=true")
	f.WaitDispatcherUp(d)
	f.SendMessages(count, 3, "count")
	f.SendMessages(shared, 2, "shared")
	f.SendMessages(messages, 1, "message")

	// Count mode: every Job is owned by its ScaledJob with blockOwnerDeletion (allowed by scaledjobs/finalizers).
	for name, want := range map[string]int{"count": 3, "shared": 2} {
		f.Eventually(fmt.Sprintf("%d Jobs of %s", want, name), 2*time.Minute, func() (bool, error) {
			f.RequireRunning(d)
			return len(f.JobsOf(name)) == want, nil
		})
		for _, j := range f.JobsOf(name) {
			if len(j.OwnerReferences) != 1 || !ptr.Deref(j.OwnerReferences[0].BlockOwnerDeletion, false) {
				t.Errorf("Job %s owners %+v, want its ScaledJob with blockOwnerDeletion", j.Name, j.OwnerReferences)
			}
		}
	}

	// Message mode: the Job, its payload Secret owned by the Job (jobs/finalizers), the message deleted once the Job
	// completed, and the outcome annotated on the Job (jobs patch).
	f.Eventually("the message's Job acked", 3*time.Minute, func() (bool, error) {
		f.RequireRunning(d)
		jobs := f.JobsOf("message")
		if len(jobs) != 1 {
			return false, fmt.Errorf("%d Jobs", len(jobs))
		}
		outcome := jobs[0].Annotations[v1alpha1.AnnotationMessageOutcome]
		return outcome == v1alpha1.OutcomeAcked, fmt.Errorf("outcome %q", outcome)
	})
	job := f.JobsOf("message")[0]
	var secret corev1.Secret
	if err := f.Client.Get(f.Ctx, client.ObjectKey{Namespace: f.Namespace, Name: job.Name}, &secret); err != nil {
		t.Fatalf("reading the payload Secret: %v", err)
	}
	if len(secret.OwnerReferences) != 1 || secret.OwnerReferences[0].Name != job.Name || !ptr.Deref(secret.OwnerReferences[0].BlockOwnerDeletion, false) {
		t.Errorf("payload Secret owners %+v, want the Job %s with blockOwnerDeletion", secret.OwnerReferences, job.Name)
	}
	if visible, inFlight := f.QueueCounts(messages); visible+inFlight != 0 {
		t.Errorf("message queue holds %d visible and %d in-flight messages after the ack, want none", visible, inFlight)
	}

	// Leader election in the dispatcher's namespace, and events about ScaledJobs (events.k8s.io).
	lease, err := f.Clientset.CoordinationV1().Leases(own).Get(f.Ctx, "dispatcher.kubedispatch.io", metav1.GetOptions{})
	if err != nil || ptr.Deref(lease.Spec.HolderIdentity, "") == "" {
		t.Errorf("leader Lease in %s: %v, %+v; want one held", own, err, lease)
	}
	f.Eventually("a JobsCreated event on ScaledJob count", time.Minute, func() (bool, error) {
		evs, err := f.Clientset.EventsV1().Events(f.Namespace).List(f.Ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Regarding.Kind == "ScaledJob" && e.Regarding.Name == "count" && e.Reason == "JobsCreated" {
				return true, nil
			}
		}
		return false, fmt.Errorf("%d events, none JobsCreated on count", len(evs.Items))
	})

	// /metrics: HTTPS; 200 for the reader, 403 for an authenticated stranger, 401 without a token; no plain HTTP.
	url := "https://" + d.MetricsAddr + "/metrics"
	for _, c := range []struct {
		who, token string
		want       int
	}{{"the metrics reader", reader, 200}, {"a ServiceAccount without kubedispatch-metrics-reader", stranger, 403}, {"no token", "", 401}} {
		status, body, err := framework.GetMetrics(url, c.token)
		if err != nil || status != c.want {
			t.Errorf("GET %s as %s: status %d, %v; want %d", url, c.who, status, err, c.want)
		}
		if c.want == 200 && !strings.Contains(body, "kubedispatch_ticks_total") {
			t.Errorf("GET %s as %s: no kubedispatch_ticks_total in %d bytes", url, c.who, len(body))
		}
	}
	if status, _, err := framework.GetMetrics("http://"+d.MetricsAddr+"/metrics", ""); err == nil && status == 200 {
		t.Errorf("GET http://%s/metrics: 200, want no plain-HTTP metrics", d.MetricsAddr)
	}

	// Nothing the dispatcher asked for was refused.
	f.RequireRunning(d)
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if lines := forbiddenLines(string(b)); len(lines) > 0 {
		t.Errorf("the dispatcher was refused %d requests; first: %s", len(lines), lines[0])
	}
}

// forbidden matches the API server's refusals ("... is forbidden: User ... cannot list resource ...") as client-go,
// controller-runtime and the dispatcher log them.
var forbidden = regexp.MustCompile(`(?i)forbidden`)

func forbiddenLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if forbidden.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

// apiClient is f's client with kubedispatch's types (this package's TestMain uses the framework's plain scheme).
func apiClient(t *testing.T, f *framework.F) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(f.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// extraNamespace creates a namespace named prefix plus f's suffix, deleted when the test ends.
func extraNamespace(t *testing.T, f *framework.F, prefix string) string {
	t.Helper()
	name := prefix + "-" + f.Namespace[strings.LastIndex(f.Namespace, "-")+1:]
	if _, err := f.Clientset.CoreV1().Namespaces().Create(f.Ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() { _ = f.Clientset.CoreV1().Namespaces().Delete(f.Ctx, name, metav1.DeleteOptions{}) })
	return name
}

// grantedRule is a rule of a role bound to the dispatcher's ServiceAccount, and the namespace where it applies (the
// watched namespace for a ClusterRole).
type grantedRule struct {
	namespace string
	rule      rbacv1.PolicyRule
}

// applyRBAC creates the ServiceAccount and the rendered RBAC as they would be installed, moved to the test's
// namespaces: what deploy/ puts in kubedispatch-system goes to own, the ServiceAccount subject becomes own's, and the
// cluster-scoped names get f's namespace as suffix (so that cases do not share them). It returns the new names of
// deploy/'s ClusterRoles and the rules bound to the dispatcher's ServiceAccount, and deletes the cluster-scoped
// objects when the test ends.
func applyRBAC(t *testing.T, f *framework.F, r *deploy.RBAC, own string) (map[string]string, []grantedRule) {
	t.Helper()
	rbac := f.Clientset.RbacV1()
	if _, err := f.Clientset.CoreV1().ServiceAccounts(own).Create(f.Ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: dispatcherSA}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ns := func(n string) string {
		if n == deployNamespace {
			return own
		}
		return n
	}
	rename := map[string]string{}
	for _, cr := range r.ClusterRoles {
		rename[cr.Name] = cr.Name + "-" + f.Namespace
	}
	ref := func(rr rbacv1.RoleRef) rbacv1.RoleRef {
		if rr.Kind == "ClusterRole" {
			rr.Name = rename[rr.Name]
		}
		return rr
	}
	subjects := func(in []rbacv1.Subject) []rbacv1.Subject {
		out := make([]rbacv1.Subject, len(in))
		for i, s := range in {
			s.Namespace = ns(s.Namespace)
			out[i] = s
		}
		return out
	}
	for _, cr := range r.ClusterRoles {
		cr.Name = rename[cr.Name]
		if _, err := rbac.ClusterRoles().Create(f.Ctx, &cr, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rbac.ClusterRoles().Delete(f.Ctx, cr.Name, metav1.DeleteOptions{}) })
	}
	for _, b := range r.ClusterRoleBindings {
		b.Name, b.RoleRef, b.Subjects = b.Name+"-"+f.Namespace, ref(b.RoleRef), subjects(b.Subjects)
		if _, err := rbac.ClusterRoleBindings().Create(f.Ctx, &b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rbac.ClusterRoleBindings().Delete(f.Ctx, b.Name, metav1.DeleteOptions{}) })
	}
	for _, ro := range r.Roles {
		ro.Namespace = ns(ro.Namespace)
		if _, err := rbac.Roles(ro.Namespace).Create(f.Ctx, &ro, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range r.RoleBindings {
		b.Namespace, b.RoleRef, b.Subjects = ns(b.Namespace), ref(b.RoleRef), subjects(b.Subjects)
		if _, err := rbac.RoleBindings(b.Namespace).Create(f.Ctx, &b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// The rules bound to the dispatcher (all bindings of deploy/ are to its ServiceAccount).
	var granted []grantedRule
	for _, b := range r.ClusterRoleBindings {
		for _, cr := range r.ClusterRoles {
			if b.RoleRef.Kind == "ClusterRole" && b.RoleRef.Name == cr.Name {
				for _, rule := range cr.Rules {
					granted = append(granted, grantedRule{f.Namespace, rule})
				}
			}
		}
	}
	for _, b := range r.RoleBindings {
		for _, ro := range r.Roles {
			if b.RoleRef.Kind == "Role" && b.RoleRef.Name == ro.Name && b.Namespace == ro.Namespace {
				for _, rule := range ro.Rules {
					granted = append(granted, grantedRule{ns(ro.Namespace), rule})
				}
			}
		}
	}
	return rename, granted
}

// waitAllowed waits until a SelfSubjectAccessReview of cs allows every verb of every rule.
func waitAllowed(t *testing.T, f *framework.F, cs kubernetes.Interface, rules []grantedRule) {
	t.Helper()
	f.Eventually("the dispatcher's RBAC to take effect", time.Minute, func() (bool, error) {
		for _, g := range rules {
			for _, verb := range g.rule.Verbs {
				var attrs []authorizationv1.ResourceAttributes
				for _, group := range g.rule.APIGroups {
					for _, res := range g.rule.Resources {
						res, sub, _ := strings.Cut(res, "/")
						attrs = append(attrs, authorizationv1.ResourceAttributes{Namespace: g.namespace, Verb: verb, Group: group, Resource: res, Subresource: sub})
					}
				}
				for i := range attrs {
					review, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(f.Ctx, &authorizationv1.SelfSubjectAccessReview{
						Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs[i]}}, metav1.CreateOptions{})
					if err != nil {
						return false, err
					}
					if !review.Status.Allowed {
						return false, fmt.Errorf("not allowed yet: %+v", attrs[i])
					}
				}
			}
		}
		return true, nil
	})
}

// bindClusterRole binds the ClusterRole role to the ServiceAccount namespace/name, until the test ends.
func bindClusterRole(t *testing.T, f *framework.F, role, namespace, name string) {
	t.Helper()
	b := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role + "-" + name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}},
	}
	if _, err := f.Clientset.RbacV1().ClusterRoleBindings().Create(f.Ctx, b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Clientset.RbacV1().ClusterRoleBindings().Delete(f.Ctx, b.Name, metav1.DeleteOptions{}) })
}

// serviceAccountToken creates the ServiceAccount namespace/name if needed and returns a one-hour token of it from
// the TokenRequest API.
func serviceAccountToken(t *testing.T, f *framework.F, namespace, name string) string {
	t.Helper()
	sas := f.Clientset.CoreV1().ServiceAccounts(namespace)
	if _, err := sas.Create(f.Ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	tr, err := sas.CreateToken(f.Ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("requesting a token of ServiceAccount %s/%s: %v", namespace, name, err)
	}
	return tr.Status.Token
}

func clientsetFor(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// clusterAuth creates a Secret with moto's keys in the dispatcher's namespace own and a ClusterTriggerAuthentication
// using it that allows f's namespace by label (so the dispatcher reads Namespaces), and returns a reference to it.
func clusterAuth(t *testing.T, f *framework.F, own string) *v1alpha1.AuthenticationRef {
	t.Helper()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "shared-aws-keys", Namespace: own},
		StringData: map[string]string{"id": "test", "secret": "test"}}
	if err := f.Client.Create(f.Ctx, secret); err != nil {
		t.Fatal(err)
	}
	cta := &v1alpha1.ClusterTriggerAuthentication{
		ObjectMeta: metav1.ObjectMeta{Name: "shared-aws-keys-" + f.Namespace},
		Spec: v1alpha1.ClusterTriggerAuthenticationSpec{
			TriggerAuthenticationSpec: v1alpha1.TriggerAuthenticationSpec{SecretTargetRef: []v1alpha1.SecretTargetRef{
				{Parameter: "awsAccessKeyID", Name: secret.Name, Key: "id"},
				{Parameter: "awsSecretAccessKey", Name: secret.Name, Key: "secret"},
			}},
			AllowedNamespaces: &v1alpha1.AllowedNamespaces{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: f.Namespace}}},
		},
	}
	if err := f.Client.Create(f.Ctx, cta); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Client.Delete(f.Ctx, cta) })
	return &v1alpha1.AuthenticationRef{Name: cta.Name, Kind: "ClusterTriggerAuthentication"}
}
