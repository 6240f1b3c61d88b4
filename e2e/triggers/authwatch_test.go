package triggers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// authWatchDeadline bounds how long an edit of a TriggerAuthentication, a ClusterTriggerAuthentication or a
// namespace's labels may take to reach a ScaledJob. The dispatchers of these tests run with
// --secret-refresh-interval=1h, so only the watch can meet it; it is generous for a small shared machine (the
// dispatcher itself takes about a second).
const authWatchDeadline = 60 * time.Second

// waitReadySince waits until authWatchDeadline after since for the Ready condition of the ScaledJob name to have
// status and a message containing every want string, and returns how long after since that was seen.
func waitReadySince(f *framework.F, name string, since time.Time, status metav1.ConditionStatus, want ...string) time.Duration {
	f.T.Helper()
	f.Eventually(fmt.Sprintf("Ready=%s on %s mentioning %q", status, name, want), time.Until(since.Add(authWatchDeadline)), func() (bool, error) {
		c := framework.Condition(f.ScaledJob(name), v1alpha1.ConditionReady)
		if c == nil || c.Status != status {
			return false, fmt.Errorf("ready condition %+v", c)
		}
		for _, w := range want {
			if !strings.Contains(c.Message, w) {
				return false, fmt.Errorf("ready message %q", c.Message)
			}
		}
		return true, nil
	})
	return time.Since(since)
}

// editClusterTriggerAuth sets the spec.allowedNamespaces.names of the ClusterTriggerAuthentication name (retrying on
// conflicts).
func editClusterTriggerAuth(f *framework.F, name string, names ...string) {
	f.T.Helper()
	f.Eventually("updating ClusterTriggerAuthentication "+name, time.Minute, func() (bool, error) {
		var cta v1alpha1.ClusterTriggerAuthentication
		if err := f.Client.Get(f.Ctx, types.NamespacedName{Name: name}, &cta); err != nil {
			return false, err
		}
		cta.Spec.AllowedNamespaces.Names = names
		err := f.Client.Update(f.Ctx, &cta)
		return err == nil, err
	})
}

// labelNamespace sets (value != "") or removes the label key on the test's namespace (retrying on conflicts).
func labelNamespace(f *framework.F, key, value string) {
	f.T.Helper()
	f.Eventually("labelling namespace "+f.Namespace, time.Minute, func() (bool, error) {
		ns, err := f.Clientset.CoreV1().Namespaces().Get(f.Ctx, f.Namespace, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		if value == "" {
			delete(ns.Labels, key)
		} else {
			ns.Labels[key] = value
		}
		_, err = f.Clientset.CoreV1().Namespaces().Update(f.Ctx, ns, metav1.UpdateOptions{})
		return err == nil, err
	})
}

// A namespace removed from a ClusterTriggerAuthentication's allowedNamespaces.names, or relabelled out of its
// namespaceSelector, loses the shared credentials at once, not at the next --secret-refresh-interval (1h here): its
// ScaledJobs go Ready=False naming the ClusterTriggerAuthentication and the namespace within seconds, in count and in
// message mode, and work sent after that creates no Job. Allowing the namespace again is just as quick: the waiting
// work gets its Jobs.
func TestAuthWatchClusterTriggerAuthRevokedAtOnce(t *testing.T) {
	f := framework.New(t)
	const labelKey = "kubedispatch.io/e2e-authwatch"
	labelValue := "tenant-" + randomHex(3)
	createSecret(f, "cluster-creds", map[string]string{"id": "AKIAE2ECLUSTERKEY000", "secret": "cluster-secret-value"})
	byName := createClusterTriggerAuthSpec(f, "e2e-aw-names", v1alpha1.ClusterTriggerAuthenticationSpec{
		TriggerAuthenticationSpec: accessKeys("cluster-creds"),
		AllowedNamespaces:         &v1alpha1.AllowedNamespaces{Names: []string{f.Namespace}},
	})
	byLabel := createClusterTriggerAuthSpec(f, "e2e-aw-label", v1alpha1.ClusterTriggerAuthenticationSpec{
		TriggerAuthenticationSpec: accessKeys("cluster-creds"),
		AllowedNamespaces: &v1alpha1.AllowedNamespaces{NamespaceSelector: &metav1.LabelSelector{
			MatchLabels: map[string]string{labelKey: labelValue}}},
	})
	labelNamespace(f, labelKey, labelValue)

	queues := map[string]string{}
	countSJ := func(name string, auth *v1alpha1.AuthenticationRef) {
		queues[name] = f.CreateQueue(name, nil)
		f.SendMessages(queues[name], 2, name)
		b := scaledJob(f, name).Max(10).SQS(queues[name], 1)
		b.ScaledJob.Spec.Triggers[0].AuthenticationRef = auth
		b.Create()
	}
	countSJ("by-name", byName)
	countSJ("by-label", byLabel)
	queues["messages"] = f.CreateQueue("messages", nil)
	f.SendMessages(queues["messages"], 1, "first")
	msg := scaledJob(f, "messages").Max(10).SQS(queues["messages"], 1)
	msg.ScaledJob.Spec.Dispatch = &v1alpha1.Dispatch{Mode: v1alpha1.ModeMessage}
	msg.ScaledJob.Spec.Triggers[0].AuthenticationRef = byName
	msg.Create()
	d := f.StartDispatcher("--secret-refresh-interval=1h")

	waitJobs(f, "by-name", 2)
	waitJobs(f, "by-label", 2)
	waitJobs(f, "messages", 1)

	// Revoke: by name for by-name and messages, by label for by-label.
	revoked := time.Now()
	editClusterTriggerAuth(f, byName.Name, "some-other-namespace")
	labelNamespace(f, labelKey, "")
	refusals := map[string]string{
		"by-name":  fmt.Sprintf("ClusterTriggerAuthentication %q does not allow namespace %s", byName.Name, f.Namespace),
		"messages": fmt.Sprintf("ClusterTriggerAuthentication %q does not allow namespace %s", byName.Name, f.Namespace),
		"by-label": fmt.Sprintf("ClusterTriggerAuthentication %q does not allow namespace %s", byLabel.Name, f.Namespace),
	}
	for _, name := range []string{"by-name", "by-label", "messages"} {
		took := waitReadySince(f, name, revoked, metav1.ConditionFalse, refusals[name])
		c := framework.Condition(f.ScaledJob(name), v1alpha1.ConditionReady)
		t.Logf("%s: Ready=False %s %.1fs after the revocation: %s", name, c.Reason, took.Seconds(), c.Message)
		if name != "messages" && c.Reason != "InvalidTrigger" {
			t.Errorf("%s: Ready reason %s, want InvalidTrigger", name, c.Reason)
		}
	}

	// Work sent now creates no Job: more ticks of the count-mode ScaledJobs pass (the message loop, refused, retries
	// its build on a back-off meanwhile and receives nothing). The queue's own counts cannot tell: moto may still
	// hand the message to the long poll the revocation cancelled, whose answer nobody reads.
	f.SendMessages(queues["by-name"], 2, "after")
	f.SendMessages(queues["by-label"], 2, "after")
	f.SendMessages(queues["messages"], 1, "after")
	after := time.Now().Add(time.Second)
	f.WaitDecisionAfter("by-name", after)
	f.WaitDecisionAfter("by-label", after)
	for name, want := range map[string]int{"by-name": 2, "by-label": 2, "messages": 1} {
		if n := jobCount(f, name); n != want {
			t.Errorf("%s: %d Jobs after the revocation, want still %d", name, n, want)
		}
	}

	// Allowed again: Ready=True and the waiting work dispatched, within the same deadline. (A message the cancelled
	// long poll took, see above, comes back after its visibility timeout, 30 s.)
	allowed := time.Now()
	editClusterTriggerAuth(f, byName.Name, f.Namespace)
	labelNamespace(f, labelKey, labelValue)
	for _, name := range []string{"by-name", "by-label", "messages"} {
		took := waitReadySince(f, name, allowed, metav1.ConditionTrue)
		t.Logf("%s: Ready=True %.1fs after being allowed again", name, took.Seconds())
	}
	for name, want := range map[string]int{"by-name": 4, "by-label": 4, "messages": 2} {
		f.Eventually(fmt.Sprintf("%d Jobs of %s", want, name), time.Until(allowed.Add(authWatchDeadline)), func() (bool, error) {
			n := jobCount(f, name)
			return n == want, fmt.Errorf("%d Jobs", n)
		})
	}
	f.RequireRunning(d)
}

// A TriggerAuthentication edited to point at other Secret keys is used at once, not at the next
// --secret-refresh-interval (1h here), although the old key still works (so no refusal by the queue triggers a
// re-resolution either): the SQS proxy in front of moto sees requests signed with the new access key within seconds
// and none with the old one after that, and new work is dispatched. Deleting the TriggerAuthentication is Ready=False
// at once.
func TestAuthWatchTriggerAuthEditUsedAtOnce(t *testing.T) {
	const (
		oldKey = "AKIAE2EOLDKEY0000000"
		newKey = "AKIAE2ENEWKEY0000000"
	)
	f := framework.New(t)
	proxy := startEndpointRecorder(t, framework.Cluster().SQSEndpoint)
	createSecret(f, "sqs-creds", map[string]string{"id-old": oldKey, "secret-old": "old-secret-value",
		"id-new": newKey, "secret-new": "new-secret-value"})
	ta := &v1alpha1.TriggerAuthentication{
		ObjectMeta: metav1.ObjectMeta{Name: "sqs-auth", Namespace: f.Namespace},
		Spec: v1alpha1.TriggerAuthenticationSpec{SecretTargetRef: []v1alpha1.SecretTargetRef{
			{Parameter: "awsAccessKeyID", Name: "sqs-creds", Key: "id-old"},
			{Parameter: "awsSecretAccessKey", Name: "sqs-creds", Key: "secret-old"},
		}},
	}
	if err := f.Client.Create(f.Ctx, ta); err != nil {
		t.Fatal(err)
	}
	queue := f.CreateQueue("edited", nil)
	f.SendMessages(queue, 2, "m")
	b := scaledJob(f, "edited").Max(10).SQS(queue, 1, "awsEndpoint", proxy.URL)
	b.ScaledJob.Spec.Triggers[0].AuthenticationRef = &v1alpha1.AuthenticationRef{Name: "sqs-auth"}
	b.Create()
	d := f.StartDispatcher("--secret-refresh-interval=1h")

	waitJobs(f, "edited", 2)
	signedWith := func(auth string) string { // the access key of a SigV4 Authorization header
		_, cred, _ := strings.Cut(auth, "Credential=")
		key, _, _ := strings.Cut(cred, "/")
		return key
	}
	before := proxy.received()
	for _, a := range before {
		if k := signedWith(a); k != oldKey {
			t.Fatalf("before the edit the proxy received a request signed with %q, want only %s", k, oldKey)
		}
	}

	f.Eventually("updating TriggerAuthentication sqs-auth", time.Minute, func() (bool, error) {
		var cur v1alpha1.TriggerAuthentication
		if err := f.Client.Get(f.Ctx, types.NamespacedName{Namespace: f.Namespace, Name: "sqs-auth"}, &cur); err != nil {
			return false, err
		}
		cur.Spec.SecretTargetRef[0].Key, cur.Spec.SecretTargetRef[1].Key = "id-new", "secret-new"
		err := f.Client.Update(f.Ctx, &cur)
		return err == nil, err
	})
	edited := time.Now()
	first := -1 // index of the first request signed with the new key
	f.Eventually("a request signed with the new key", authWatchDeadline, func() (bool, error) {
		got := proxy.received()
		for i := len(before); i < len(got); i++ {
			if signedWith(got[i]) == newKey {
				first = i
				return true, nil
			}
		}
		return false, fmt.Errorf("%d requests since the edit, none with the new key", len(got)-len(before))
	})
	t.Logf("the first request signed with the new key came %.1fs after the edit (%d requests with the old key in between)",
		time.Since(edited).Seconds(), first-len(before))

	// From then on only the new key, and it works: a new message gets its Job.
	f.SendMessages(queue, 1, "after")
	waitJobs(f, "edited", 3)
	f.WaitDecisionAfter("edited", time.Now().Add(time.Second))
	got := proxy.received()
	for _, a := range got[first:] {
		if k := signedWith(a); k != newKey {
			t.Errorf("after the first request with the new key, one was signed with %q", k)
		}
	}
	t.Logf("%d requests with the new key after the edit", len(got)-first)
	waitReadySince(f, "edited", time.Now(), metav1.ConditionTrue)

	// Deleted: Ready=False at once, naming it.
	deleted := time.Now()
	if err := f.Client.Delete(f.Ctx, ta); err != nil {
		t.Fatal(err)
	}
	took := waitReadySince(f, "edited", deleted, metav1.ConditionFalse, `TriggerAuthentication "sqs-auth" not found`)
	t.Logf("Ready=False %.1fs after the TriggerAuthentication was deleted", took.Seconds())
	f.RequireRunning(d)
}
