package triggers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// scaledJob starts building a ScaledJob whose Jobs' pods run for 10 minutes on kwok, so they stay unfinished.
func scaledJob(f *framework.F, name string) *framework.ScaledJobBuilder {
	return framework.NewScaledJob(f, name).RunFor("10m")
}

// jobCount counts the Jobs labelled for a ScaledJob.
func jobCount(f *framework.F, name string) int {
	f.T.Helper()
	return len(f.JobsOf(name))
}

// waitJobs waits until a ScaledJob has exactly want Jobs, failing at once if it ever has more.
func waitJobs(f *framework.F, name string, want int) {
	f.T.Helper()
	f.Eventually(fmt.Sprintf("%d Jobs of %s", want, name), 3*time.Minute, func() (bool, error) {
		n := jobCount(f, name)
		if n > want {
			f.T.Fatalf("%s has %d Jobs, want %d", name, n, want)
		}
		return n == want, fmt.Errorf("%d Jobs", n)
	})
}

// settledJobs waits for a tick that starts after want Jobs are seen and checks the count did not move.
func settledJobs(f *framework.F, name string, want int) *v1alpha1.ScaledJob {
	f.T.Helper()
	waitJobs(f, name, want)
	sj := f.WaitDecisionAfter(name, time.Now().Add(time.Second))
	if n := jobCount(f, name); n != want {
		f.T.Errorf("%s: %d Jobs after a further tick, want %d (last decision: %+v)", name, n, want, sj.Status.LastDecision)
	}
	return sj
}

// createSecret creates an Opaque Secret in the test namespace.
func createSecret(f *framework.F, name string, data map[string]string) {
	f.T.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.Namespace}, StringData: data}
	if err := f.Client.Create(f.Ctx, s); err != nil {
		f.T.Fatalf("creating Secret %s: %v", name, err)
	}
}

// createTriggerAuth creates a TriggerAuthentication mapping one Secret key to one parameter.
func createTriggerAuth(f *framework.F, name, parameter, secret, key string) *v1alpha1.AuthenticationRef {
	f.T.Helper()
	ta := &v1alpha1.TriggerAuthentication{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.Namespace},
		Spec: v1alpha1.TriggerAuthenticationSpec{SecretTargetRef: []v1alpha1.SecretTargetRef{
			{Parameter: parameter, Name: secret, Key: key},
		}},
	}
	if err := f.Client.Create(f.Ctx, ta); err != nil {
		f.T.Fatalf("creating TriggerAuthentication %s: %v", name, err)
	}
	return &v1alpha1.AuthenticationRef{Name: name}
}

// createClusterTriggerAuth creates a ClusterTriggerAuthentication with a name unique to this run (it is
// cluster-scoped), deleted when the test ends, that the test's namespace may use (spec.allowedNamespaces). Its
// Secret is read from the dispatcher's namespace.
func createClusterTriggerAuth(f *framework.F, prefix, parameter, secret, key string) *v1alpha1.AuthenticationRef {
	f.T.Helper()
	cta := &v1alpha1.ClusterTriggerAuthentication{
		ObjectMeta: metav1.ObjectMeta{Name: prefix + "-" + randomHex(4)},
		Spec: v1alpha1.ClusterTriggerAuthenticationSpec{
			TriggerAuthenticationSpec: v1alpha1.TriggerAuthenticationSpec{SecretTargetRef: []v1alpha1.SecretTargetRef{
				{Parameter: parameter, Name: secret, Key: key},
			}},
			AllowedNamespaces: &v1alpha1.AllowedNamespaces{Names: []string{f.Namespace}},
		},
	}
	if err := f.Client.Create(f.Ctx, cta); err != nil {
		f.T.Fatalf("creating ClusterTriggerAuthentication %s: %v", cta.Name, err)
	}
	f.T.Cleanup(func() {
		if err := f.Client.Delete(context.Background(), cta); err != nil {
			f.T.Errorf("deleting ClusterTriggerAuthentication %s: %v", cta.Name, err)
		}
	})
	return &v1alpha1.AuthenticationRef{Name: cta.Name, Kind: "ClusterTriggerAuthentication"}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// checkNoLeak stops the dispatcher (so its log is complete) and checks that no secret appears in its log, in any
// event of the namespace, or in any ScaledJob's status.
func checkNoLeak(f *framework.F, d *framework.Dispatcher, secrets map[string]string) {
	f.T.Helper()
	d.Stop(syscall.SIGTERM)
	logText, err := os.ReadFile(d.LogPath)
	if err != nil {
		f.T.Fatalf("reading the dispatcher log: %v", err)
	}
	var events corev1.EventList
	if err := f.Client.List(f.Ctx, &events, client.InNamespace(f.Namespace)); err != nil {
		f.T.Fatalf("listing events: %v", err)
	}
	var sjs v1alpha1.ScaledJobList
	if err := f.Client.List(f.Ctx, &sjs, client.InNamespace(f.Namespace)); err != nil {
		f.T.Fatalf("listing ScaledJobs: %v", err)
	}
	places := map[string][]byte{"the dispatcher log": logText}
	for i := range events.Items {
		places["event "+events.Items[i].Name] = rawJSON(f, &events.Items[i])
	}
	for i := range sjs.Items {
		places["status of ScaledJob "+sjs.Items[i].Name] = rawJSON(f, &sjs.Items[i].Status)
	}
	f.T.Logf("checked %d secret values in the dispatcher log (%d bytes), %d events and %d ScaledJob statuses",
		len(secrets), len(logText), len(events.Items), len(sjs.Items))
	for what, secret := range secrets {
		for place, text := range places {
			if bytes.Contains(text, []byte(secret)) {
				f.T.Errorf("%s shows %s", place, what)
			}
		}
	}
}

// rawJSON marshals v without HTML escaping, so secrets with & < > would still match.
func rawJSON(f *framework.F, v any) []byte {
	f.T.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		f.T.Fatalf("marshalling %T: %v", v, err)
	}
	return b.Bytes()
}

// checkBacklog checks the first trigger's last reading in status.
func checkBacklog(t *testing.T, sj *v1alpha1.ScaledJob, backlog, target string) {
	t.Helper()
	if len(sj.Status.Triggers) == 0 {
		t.Fatalf("%s: status.triggers is empty", sj.Name)
	}
	tr := sj.Status.Triggers[0]
	if tr.Backlog != backlog || tr.Target != target || !tr.Active || tr.LastError != "" || tr.SampledAt == nil {
		t.Errorf("%s: status.triggers[0] = %+v, want backlog %s, target %s, active, sampled, no error", sj.Name, tr, backlog, target)
	}
}
