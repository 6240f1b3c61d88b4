package triggers

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// endpointRecorder is a plain HTTP listener on 127.0.0.1 (inside the e2e allow-list) that records the
// Authorization header of every request it gets. With a target it forwards each request there (a proxy in front of
// moto); without one it answers 500.
type endpointRecorder struct {
	URL string

	mu   sync.Mutex
	auth []string
}

func startEndpointRecorder(t *testing.T, target string) *endpointRecorder {
	t.Helper()
	r := &endpointRecorder{}
	var next http.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "a test listener that must receive no credentials", http.StatusInternalServerError)
	})
	if target != "" {
		u, err := url.Parse(target)
		if err != nil {
			t.Fatal(err)
		}
		next = httputil.NewSingleHostReverseProxy(u)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.auth = append(r.auth, req.Header.Get("Authorization"))
		r.mu.Unlock()
		next.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// received returns the Authorization headers received so far, one per request.
func (r *endpointRecorder) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auth...)
}

// createClusterTriggerAuthSpec creates a ClusterTriggerAuthentication named prefix-<random> with spec, deleted when
// the test ends.
func createClusterTriggerAuthSpec(f *framework.F, prefix string, spec v1alpha1.ClusterTriggerAuthenticationSpec) *v1alpha1.AuthenticationRef {
	f.T.Helper()
	cta := &v1alpha1.ClusterTriggerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: prefix + "-" + randomHex(4)}, Spec: spec}
	if err := f.Client.Create(f.Ctx, cta); err != nil {
		f.T.Fatalf("creating ClusterTriggerAuthentication %s: %v", cta.Name, err)
	}
	f.T.Cleanup(func() {
		if err := f.Client.Delete(context.Background(), cta); err != nil {
			f.T.Errorf("deleting ClusterTriggerAuthentication %s: %v", cta.Name, err)
		}
	})
	return &v1alpha1.AuthenticationRef{Name: cta.Name, Kind: v1alpha1.KindClusterTriggerAuthentication}
}

// accessKeys maps a Secret's id and secret keys to the SQS access key parameters.
func accessKeys(secret string) v1alpha1.TriggerAuthenticationSpec {
	return v1alpha1.TriggerAuthenticationSpec{SecretTargetRef: []v1alpha1.SecretTargetRef{
		{Parameter: "awsAccessKeyID", Name: secret, Key: "id"},
		{Parameter: "awsSecretAccessKey", Name: secret, Key: "secret"},
	}}
}

// An awsEndpoint a tenant chose never receives the dispatcher's own credentials or a ClusterTriggerAuthentication's,
// even on a host the operator allows (127.0.0.1 here): the listeners see no request at all and the ScaledJobs are
// Ready=False naming the field and the flag. A host outside --allowed-endpoints is refused naming that flag. With a
// namespace TriggerAuthentication the same kind of endpoint works: Jobs are created and the proxy sees only the
// tenant's key.
func TestSecurityCustomEndpointGetsNoAmbientCredentials(t *testing.T) {
	f := framework.New(t)
	const (
		clusterKey = "AKIAE2ECLUSTERKEY000"
		tenantKey  = "AKIAE2ETENANTKEY0000"
	)
	defaultChain, clusterCreds, podIdentity := startEndpointRecorder(t, ""), startEndpointRecorder(t, ""), startEndpointRecorder(t, "")
	tenantProxy := startEndpointRecorder(t, framework.Cluster().SQSEndpoint)

	// The dispatcher's namespace is the test's (--namespace), so the ClusterTriggerAuthentication's Secret is here.
	createSecret(f, "cluster-creds", map[string]string{"id": clusterKey, "secret": "cluster-secret-value"})
	cta := createClusterTriggerAuthSpec(f, "e2e-sec-cluster", v1alpha1.ClusterTriggerAuthenticationSpec{
		TriggerAuthenticationSpec: accessKeys("cluster-creds"),
		AllowedNamespaces:         &v1alpha1.AllowedNamespaces{Names: []string{f.Namespace}},
	})
	createSecret(f, "tenant-creds", map[string]string{"id": tenantKey, "secret": "tenant-secret-value"})
	tenant := &v1alpha1.TriggerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "tenant", Namespace: f.Namespace}, Spec: accessKeys("tenant-creds")}
	identity := &v1alpha1.TriggerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "aws-identity", Namespace: f.Namespace},
		Spec: v1alpha1.TriggerAuthenticationSpec{PodIdentity: &v1alpha1.PodIdentity{Provider: v1alpha1.ProviderAWS}}}
	for _, ta := range []*v1alpha1.TriggerAuthentication{tenant, identity} {
		if err := f.Client.Create(f.Ctx, ta); err != nil {
			t.Fatalf("creating TriggerAuthentication %s: %v", ta.Name, err)
		}
	}

	queue := f.CreateQueue("sec", nil)
	f.SendMessages(queue, 2, "m")
	sqsSJ := func(name, endpoint string, auth *v1alpha1.AuthenticationRef) {
		b := scaledJob(f, name).Max(10).SQS(queue, 1, "awsEndpoint", endpoint)
		b.ScaledJob.Spec.Triggers[0].AuthenticationRef = auth
		b.Create()
	}
	sqsSJ("default-chain", defaultChain.URL, nil)
	sqsSJ("cluster-creds", clusterCreds.URL, cta)
	sqsSJ("pod-identity", podIdentity.URL, &v1alpha1.AuthenticationRef{Name: "aws-identity"})
	sqsSJ("not-allowed", "https://sqs.attacker.example", &v1alpha1.AuthenticationRef{Name: "tenant"})
	sqsSJ("tenant", tenantProxy.URL, &v1alpha1.AuthenticationRef{Name: "tenant"})
	d := f.StartDispatcher()

	// The namespace's own key on an allowed endpoint works.
	settledJobs(f, "tenant", 2)

	refused := map[string]*endpointRecorder{"default-chain": defaultChain, "cluster-creds": clusterCreds, "pod-identity": podIdentity}
	for name := range refused {
		t.Run(name+" is refused", func(t *testing.T) {
			sj := f.WaitReady(name, metav1.ConditionFalse, "spec.triggers[0].metadata.awsEndpoint", "--allow-ambient-credentials-on-custom-endpoints")
			c := framework.Condition(sj, v1alpha1.ConditionReady)
			if c.Reason != "InvalidTrigger" {
				t.Errorf("Ready reason = %s, want InvalidTrigger (message %q)", c.Reason, c.Message)
			}
			t.Logf("Ready=False %s: %s", c.Reason, c.Message)
		})
	}
	t.Run("a host outside --allowed-endpoints is refused", func(t *testing.T) {
		sj := f.WaitReady("not-allowed", metav1.ConditionFalse, "spec.triggers[0].metadata.awsEndpoint", `"sqs.attacker.example"`, "--allowed-endpoints")
		t.Logf("Ready=False: %s", framework.Condition(sj, v1alpha1.ConditionReady).Message)
	})
	// Several more ticks of every refused ScaledJob: still no Job, and their listeners never heard from the dispatcher.
	after := time.Now().Add(time.Second)
	for name, rec := range refused {
		f.WaitDecisionAfter(name, after)
		if n := jobCount(f, name); n != 0 {
			t.Errorf("%s: %d Jobs, want none", name, n)
		}
		if got := rec.received(); len(got) != 0 {
			t.Errorf("%s: the listener at its awsEndpoint received %d requests (Authorization %q), want none", name, len(got), got)
		}
	}
	got := tenantProxy.received()
	if len(got) == 0 {
		t.Fatalf("the tenant's endpoint received no request, yet the ScaledJob has its Jobs")
	}
	for _, a := range got {
		if !strings.Contains(a, "Credential="+tenantKey+"/") {
			t.Errorf("the tenant's endpoint received Authorization %q, want only the tenant's key %s", a, tenantKey)
		}
	}
	t.Logf("the tenant's endpoint received %d requests, all signed with the TriggerAuthentication's key", len(got))
	f.RequireRunning(d)
}

// A namespace that a ClusterTriggerAuthentication does not allow cannot use it (Ready=False naming it and the
// namespace, no Job, even with messages waiting); one whose labels match its namespaceSelector can.
func TestSecurityClusterTriggerAuthAllowedNamespaces(t *testing.T) {
	f := framework.New(t)
	tenantLabel := "e2e-tenant-" + randomHex(3)
	createSecret(f, "cluster-creds", map[string]string{"id": "AKIAE2ECLUSTERKEY000", "secret": "cluster-secret-value"})
	others := createClusterTriggerAuthSpec(f, "e2e-sec-others", v1alpha1.ClusterTriggerAuthenticationSpec{
		TriggerAuthenticationSpec: accessKeys("cluster-creds"),
		AllowedNamespaces:         &v1alpha1.AllowedNamespaces{Names: []string{"some-other-namespace"}},
	})
	unset := createClusterTriggerAuthSpec(f, "e2e-sec-unset", v1alpha1.ClusterTriggerAuthenticationSpec{
		TriggerAuthenticationSpec: accessKeys("cluster-creds"),
	})
	byLabel := createClusterTriggerAuthSpec(f, "e2e-sec-label", v1alpha1.ClusterTriggerAuthenticationSpec{
		TriggerAuthenticationSpec: accessKeys("cluster-creds"),
		AllowedNamespaces: &v1alpha1.AllowedNamespaces{NamespaceSelector: &metav1.LabelSelector{
			MatchLabels: map[string]string{"kubedispatch.io/e2e-tenant": tenantLabel}}},
	})
	ns, err := f.Clientset.CoreV1().Namespaces().Get(f.Ctx, f.Namespace, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels["kubedispatch.io/e2e-tenant"] = tenantLabel
	if _, err := f.Clientset.CoreV1().Namespaces().Update(f.Ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("labelling namespace %s: %v", f.Namespace, err)
	}

	sqsSJ := func(name string, messages int, auth *v1alpha1.AuthenticationRef) {
		queue := f.CreateQueue(name, nil)
		f.SendMessages(queue, messages, name)
		b := scaledJob(f, name).Max(10).SQS(queue, 1)
		b.ScaledJob.Spec.Triggers[0].AuthenticationRef = auth
		b.Create()
	}
	sqsSJ("others", 3, others)
	sqsSJ("unset", 3, unset)
	sqsSJ("by-label", 2, byLabel)
	d := f.StartDispatcher()

	settledJobs(f, "by-label", 2)
	for name, want := range map[string][]string{
		"others": {"spec.triggers[0].authenticationRef", fmt.Sprintf("ClusterTriggerAuthentication %q does not allow namespace %s", others.Name, f.Namespace)},
		"unset":  {"spec.triggers[0].authenticationRef", fmt.Sprintf("ClusterTriggerAuthentication %q allows no namespace", unset.Name), f.Namespace},
	} {
		t.Run(name, func(t *testing.T) {
			sj := f.WaitReady(name, metav1.ConditionFalse, want...)
			t.Logf("Ready=False %s: %s", framework.Condition(sj, v1alpha1.ConditionReady).Reason, framework.Condition(sj, v1alpha1.ConditionReady).Message)
			f.WaitDecisionAfter(name, time.Now().Add(time.Second))
			if n := jobCount(f, name); n != 0 {
				t.Errorf("%d Jobs through a ClusterTriggerAuthentication that does not allow the namespace, want none", n)
			}
		})
	}
	f.RequireRunning(d)
}

// credentialsFromEnvFile names a file of the workload's container: /dev/zero (which used to exhaust the dispatcher's
// memory on every start) and /etc/passwd (a file of the dispatcher's own file system) are refused with the field
// path while the dispatcher keeps working; a key file from a Secret volume the container mounts is read from that
// Secret. A Secret value behind a numeric <key>FromEnv that does not parse shows in no status, event or log line.
func TestSecurityCredentialsFromEnvFileAndSecretValues(t *testing.T) {
	f := framework.New(t)
	book := newBacklogBook()
	_, monitoringAddr := startFakeMonitoring(t, framework.PubSubProject, book)
	sub := newEmulatorSub(f, book, "envfile")
	sub.publish(3)

	const privateKey = "E2EPRIVATEKEYMATERIAL0123456789"
	key := `{"type":"service_account","project_id":"` + framework.PubSubProject + `","private_key_id":"k1",` +
		`"private_key":"-----BEGIN PRIVATE KEY-----\n` + privateKey + `\n-----END PRIVATE KEY-----\n",` +
		`"client_email":"scaler@` + framework.PubSubProject + `.iam.gserviceaccount.com","client_id":"1"}`
	createSecret(f, "gcp-key", map[string]string{"key.json": key})
	const notANumber = "s3cr3t-QueueLength-Value-9f8e7d"
	createSecret(f, "qlen", map[string]string{"n": notANumber})

	keyFile := func(name, path string) {
		b := scaledJob(f, name).Max(10).Trigger("gcp-pubsub", map[string]string{
			"subscriptionName": sub.name, "value": "1", "monitoringEndpoint": monitoringAddr, "monitoringInsecure": "true",
			"credentialsFromEnvFile": "GOOGLE_APPLICATION_CREDENTIALS",
		}, nil)
		spec := &b.ScaledJob.Spec.JobTargetRef.Template.Spec
		spec.Volumes = []corev1.Volume{{Name: "gcp", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "gcp-key"}}}}
		spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "gcp", MountPath: "/var/secrets/google", ReadOnly: true}}
		spec.Containers[0].Env = []corev1.EnvVar{{Name: "GOOGLE_APPLICATION_CREDENTIALS", Value: path}}
		b.Create()
	}
	keyFile("devzero", "/dev/zero")
	keyFile("passwd", "/etc/passwd")
	keyFile("mounted", "/var/secrets/google/key.json")
	bad := scaledJob(f, "badnumber").Max(10).SQS(f.CreateQueue("badnumber", nil), 1, "queueLengthFromEnv", "QUEUE_LENGTH")
	delete(bad.ScaledJob.Spec.Triggers[0].Metadata, "queueLength")
	bad.ScaledJob.Spec.JobTargetRef.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "QUEUE_LENGTH", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "qlen"}, Key: "n"}}}}
	bad.Create()
	d := f.StartDispatcher()

	// The key file from the Secret volume is read (it is checked, and not sent: monitoringInsecure).
	settledJobs(f, "mounted", 3)
	for name, path := range map[string]string{"devzero": "/dev/zero", "passwd": "/etc/passwd"} {
		t.Run(path+" is refused", func(t *testing.T) {
			sj := f.WaitReady(name, metav1.ConditionFalse, "spec.triggers[0].metadata.credentialsFromEnvFile", `"`+path+`"`,
				"is not under any volume mounted in container worker", "credentialsFromEnv with a secretKeyRef")
			c := framework.Condition(sj, v1alpha1.ConditionReady)
			if c.Reason != "InvalidTrigger" {
				t.Errorf("Ready reason = %s, want InvalidTrigger", c.Reason)
			}
			t.Logf("Ready=False %s: %s", c.Reason, c.Message)
			if n := jobCount(f, name); n != 0 {
				t.Errorf("%d Jobs, want none", n)
			}
			f.RequireRunning(d)
		})
	}
	t.Run("a Secret value that is no number", func(t *testing.T) {
		sj := f.WaitReady("badnumber", metav1.ConditionFalse, "spec.triggers[0].metadata.queueLengthFromEnv", "is not an integer")
		t.Logf("Ready=False: %s", framework.Condition(sj, v1alpha1.ConditionReady).Message)
	})
	// Ticks after the refusals: the dispatcher is still up and reading.
	f.WaitDecisionAfter("mounted", time.Now().Add(time.Second))
	f.RequireRunning(d)
	checkNoLeak(f, d, map[string]string{"the Secret value behind queueLengthFromEnv": notANumber,
		"the private key of the mounted key file": privateKey})
}

// connCounter is a TCP listener on 127.0.0.1 that counts the connections it accepts and closes each at once: an
// endpoint that must never be dialled.
type connCounter struct {
	Addr string
	mu   sync.Mutex
	n    int
}

func startConnCounter(t *testing.T) *connCounter {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &connCounter{Addr: l.Addr().String()}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.n++
			c.mu.Unlock()
			conn.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return c
}

func (c *connCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// The two other endpoint keys. monitoringEndpoint (gcp-pubsub): with the dispatcher's own identity (podIdentity gcp)
// or a ClusterTriggerAuthentication's key, a listener on an allowed host is never dialled and the ScaledJob is
// Ready=False naming the field and the flag; with a namespace TriggerAuthentication's key the same kind of endpoint
// works (the fake Cloud Monitoring serves plain gRPC, so with monitoringInsecure: the key is read and checked, not
// sent; sources/pubsub/endpoints_test.go checks the rule for a namespace key that is sent). endpointSuffix
// (azure-servicebus, cloud Private): it only exists with the dispatcher's workload identity, so it is refused
// naming --allowed-endpoints for a host outside the list and --allow-ambient-credentials-on-custom-endpoints for
// one inside.
func TestSecurityMonitoringEndpointAndEndpointSuffix(t *testing.T) {
	f := framework.New(t)
	book := newBacklogBook()
	_, monitoringAddr := startFakeMonitoring(t, framework.PubSubProject, book)
	sub := newEmulatorSub(f, book, "secmon")
	sub.publish(2)
	key := `{"type":"service_account","project_id":"` + framework.PubSubProject + `","private_key_id":"k1",` +
		`"private_key":"-----BEGIN PRIVATE KEY-----\nE2EKEY\n-----END PRIVATE KEY-----\n",` +
		`"client_email":"scaler@` + framework.PubSubProject + `.iam.gserviceaccount.com","client_id":"1"}`
	createSecret(f, "gcp-key", map[string]string{"key.json": key})
	tenant := createTriggerAuth(f, "gcp-tenant", "GoogleApplicationCredentials", "gcp-key", "key.json")
	cta := createClusterTriggerAuthSpec(f, "e2e-sec-gcp", v1alpha1.ClusterTriggerAuthenticationSpec{
		TriggerAuthenticationSpec: v1alpha1.TriggerAuthenticationSpec{SecretTargetRef: []v1alpha1.SecretTargetRef{
			{Parameter: "GoogleApplicationCredentials", Name: "gcp-key", Key: "key.json"}}},
		AllowedNamespaces: &v1alpha1.AllowedNamespaces{Names: []string{f.Namespace}},
	})
	identity := &v1alpha1.TriggerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "gcp-identity", Namespace: f.Namespace},
		Spec: v1alpha1.TriggerAuthenticationSpec{PodIdentity: &v1alpha1.PodIdentity{Provider: v1alpha1.ProviderGCP}}}
	if err := f.Client.Create(f.Ctx, identity); err != nil {
		t.Fatal(err)
	}
	podIdentityListener, clusterListener := startConnCounter(t), startConnCounter(t)
	pubsubSJ := func(name, endpoint string, insecure bool, auth *v1alpha1.AuthenticationRef) {
		md := map[string]string{"subscriptionName": sub.name, "value": "1", "monitoringEndpoint": endpoint}
		if insecure {
			md["monitoringInsecure"] = "true"
		}
		scaledJob(f, name).Max(10).Trigger("gcp-pubsub", md, auth).Create()
	}
	pubsubSJ("gcp-pod-identity", podIdentityListener.Addr, false, &v1alpha1.AuthenticationRef{Name: "gcp-identity"})
	pubsubSJ("gcp-cluster-key", clusterListener.Addr, false, cta)
	pubsubSJ("gcp-tenant-key", monitoringAddr, true, tenant)

	sbSJ := func(name, suffix string) {
		scaledJob(f, name).Max(10).Trigger("azure-servicebus", map[string]string{
			"queueName": "orders", "namespace": "tenantns", "cloud": "Private", "endpointSuffix": suffix,
		}, &v1alpha1.AuthenticationRef{Name: "azure-identity"}).Create()
	}
	azure := &v1alpha1.TriggerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "azure-identity", Namespace: f.Namespace},
		Spec: v1alpha1.TriggerAuthenticationSpec{PodIdentity: &v1alpha1.PodIdentity{Provider: v1alpha1.ProviderAzureWorkload}}}
	if err := f.Client.Create(f.Ctx, azure); err != nil {
		t.Fatal(err)
	}
	sbSJ("sb-not-allowed", "servicebus.attacker.example")
	sbSJ("sb-allowed-host", "sb.allowed.test")
	d := f.StartDispatcher("--allowed-endpoints=127.0.0.1:*,localhost:*,*.sb.allowed.test")

	settledJobs(f, "gcp-tenant-key", 2)
	for name, want := range map[string][]string{
		"gcp-pod-identity": {"spec.triggers[0].metadata.monitoringEndpoint", "--allow-ambient-credentials-on-custom-endpoints"},
		"gcp-cluster-key":  {"spec.triggers[0].metadata.monitoringEndpoint", "--allow-ambient-credentials-on-custom-endpoints"},
		"sb-not-allowed":   {"spec.triggers[0].metadata.endpointSuffix", "--allowed-endpoints"},
		"sb-allowed-host":  {"spec.triggers[0].metadata.endpointSuffix", "--allow-ambient-credentials-on-custom-endpoints"},
	} {
		t.Run(name+" is refused", func(t *testing.T) {
			sj := f.WaitReady(name, metav1.ConditionFalse, want...)
			t.Logf("Ready=False: %s", framework.Condition(sj, v1alpha1.ConditionReady).Message)
		})
	}
	after := time.Now().Add(time.Second)
	for name, l := range map[string]*connCounter{"gcp-pod-identity": podIdentityListener, "gcp-cluster-key": clusterListener} {
		f.WaitDecisionAfter(name, after)
		if n := l.count(); n != 0 {
			t.Errorf("%s: its monitoringEndpoint was dialled %d times, want never", name, n)
		}
		if n := jobCount(f, name); n != 0 {
			t.Errorf("%s: %d Jobs, want none", name, n)
		}
	}
	f.RequireRunning(d)
}
