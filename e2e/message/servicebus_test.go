package message

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
	"github.com/kubedispatch/kubedispatch/internal/sbfake"
)

// The Service Bus tests run the real azservicebus client in the dispatcher against the stack's AMQP fake, which
// enforces lock expiry and reports every completion to the framework before doing it.

func sbSJ(f *framework.F, name string, q *framework.SBQueue, max int32) *framework.ScaledJobBuilder {
	b := framework.NewScaledJob(f, name).Trigger("azure-servicebus", map[string]string{"queueName": q.Name}, q.Auth).
		Max(max).History(1000, 1000)
	b.ScaledJob.Spec.Dispatch = &v1alpha1.Dispatch{Mode: v1alpha1.ModeMessage}
	return b
}

func sbProps(count int) []map[string]any { return make([]map[string]any, count) }

// requireNoEarlyCompletion checks that the fake completed n messages of q, each after its Job was Complete.
func requireNoEarlyCompletion(t *testing.T, q *framework.SBQueue, n int) {
	t.Helper()
	violations, checked := q.Violations()
	for _, v := range violations {
		t.Error(v)
	}
	if checked < n {
		t.Errorf("%d completions checked, want at least %d", checked, n)
	}
}

// requireSequenceJobs checks that messages 1..n (sequence numbers) each have exactly one Job, Complete.
func requireSequenceJobs(t *testing.T, f *framework.F, name string, n int) {
	t.Helper()
	byMsg := jobsByMessage(f, name)
	for seq := 1; seq <= n; seq++ {
		jobs := byMsg[strconv.Itoa(seq)]
		if len(jobs) != 1 || !complete(jobs[0]) {
			t.Errorf("message %d has %d Jobs (first complete: %v), want exactly 1, Complete", seq, len(jobs), len(jobs) > 0 && complete(jobs[0]))
		}
	}
	if len(byMsg) != n {
		t.Errorf("Jobs for %d messages, want %d", len(byMsg), n)
	}
}

// 100 messages, at most 10 at once: one Job each, completed on Service Bus only after the Job completed.
func TestServiceBusOneJobPerMessage(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	q := f.ServiceBusQueue("msg", 10*time.Second, 10)
	sbSJ(f, "sb", q, 10).RunFor("2s").Create()
	f.StartDispatcher()
	sampler := sampleCap(f, "sb")
	q.Send(sbProps(100))
	waitAcked(f, "sb", 100, 5*time.Minute)
	if got := sampler.Stop(); got > 10 {
		t.Errorf("%d unfinished Jobs at once, maxReplicaCount is 10", got)
	}
	requireSequenceJobs(t, f, "sb", 100)
	requireNoEarlyCompletion(t, q, 100)
	if s := q.Stats(); s.Active != 0 || s.Locked != 0 || s.Completed != 100 || s.DeadLettered != 0 {
		t.Errorf("queue stats %+v, want 100 completed and nothing else", s)
	}
}

// Jobs that run three times the lock duration keep their lock (the fake expires locks that are not renewed), and
// kill -9 three times mid-run loses nothing and duplicates nothing.
func TestServiceBusLocksAndKill9(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	q := f.ServiceBusQueue("kill", 5*time.Second, 10)
	sbSJ(f, "crashy", q, 10).RunFor("16s").Create()
	d := f.StartDispatcher()
	q.Send(sbProps(30))
	for i := range 3 {
		want := int64((i + 1) * 5)
		f.Eventually(fmt.Sprintf("%d acked before kill %d", want, i+1), 4*time.Minute, func() (bool, error) {
			m := f.ScaledJob("crashy").Status.Messages
			return m != nil && m.Acked >= want, nil
		})
		if i == 0 {
			// 5 Jobs of 16 s completed on a 5 s lock: their locks were renewed, none ran out.
			if s := q.Stats(); s.LockExpired != 0 {
				t.Errorf("%d locks ran out before any kill, want 0 (renewal at a third of the lock)", s.LockExpired)
			}
		}
		d.Stop(syscall.SIGKILL)
		d = f.StartDispatcher()
	}
	f.Eventually("30 messages completed on Service Bus, nothing locked", 6*time.Minute, func() (bool, error) {
		s := q.Stats()
		return s.Completed >= 30 && s.Locked == 0 && s.Active == 0, fmt.Errorf("stats %+v", s)
	})
	requireSequenceJobs(t, f, "crashy", 30)
	requireNoEarlyCompletion(t, q, 30)
	s := q.Stats()
	if s.DeadLettered != 0 {
		t.Errorf("%d messages dead-lettered, want none", s.DeadLettered)
	}
	if s.LockExpired > 30 {
		t.Errorf("%d locks ran out, want at most the 30 the three killed dispatchers could hold", s.LockExpired)
	}
	t.Logf("queue stats after 3 kills: %+v", s)
}

// Failing messages get maxDeliveries Jobs, then go to the queue's dead-letter sub-queue with the reason; with an
// entity MaxDeliveryCount below maxDeliveries, Service Bus dead-letters first (the lower wins).
func TestServiceBusFailuresDeadLettered(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		maxDeliveryCount int
		maxDeliveries    int32
		wantJobs         int
		wantReason       string
	}{
		"maxDeliveries first":    {maxDeliveryCount: 10, maxDeliveries: 2, wantJobs: 2, wantReason: "all 2 deliveries failed"},
		"MaxDeliveryCount first": {maxDeliveryCount: 2, maxDeliveries: 3, wantJobs: 2, wantReason: "MaxDeliveryCountExceeded"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := framework.New(t)
			q := f.ServiceBusQueue("fail", 10*time.Second, tc.maxDeliveryCount)
			b := sbSJ(f, "sbfail", q, 10).RunFor("1s")
			b.ScaledJob.Spec.Dispatch.MaxDeliveries = ptr.To(tc.maxDeliveries)
			b.ScaledJob.Spec.Dispatch.Parameters = []v1alpha1.Parameter{{From: v1alpha1.ParameterSource{Attribute: "outcome"},
				To: v1alpha1.ParameterTarget{PodAnnotation: "kwok.test/outcome"}, Default: ptr.To("ok")}}
			b.Create()
			f.StartDispatcher()
			q.Send([]map[string]any{{"outcome": "fail"}, nil, nil, {"outcome": "fail"}, nil})

			f.Eventually("2 dead-lettered messages", 4*time.Minute, func() (bool, error) {
				n := len(q.DeadLetters())
				return n >= 2, fmt.Errorf("%d so far", n)
			})
			for _, m := range q.DeadLetters() {
				if m.Body != "doc-0" && m.Body != "doc-3" {
					t.Errorf("message %q dead-lettered, want only doc-0 and doc-3", m.Body)
				}
				if !strings.Contains(m.DeadLetterReason, tc.wantReason) {
					t.Errorf("DeadLetterReason %q, want it to contain %q", m.DeadLetterReason, tc.wantReason)
				}
			}
			waitAcked(f, "sbfail", 3, 3*time.Minute)
			byMsg := jobsByMessage(f, "sbfail")
			for seq := 1; seq <= 5; seq++ {
				want := 1
				if seq == 1 || seq == 4 {
					want = tc.wantJobs
				}
				if got := len(byMsg[strconv.Itoa(seq)]); got != want {
					t.Errorf("message %d has %d Jobs, want %d", seq, got, want)
				}
			}
			requireNoEarlyCompletion(t, q, 3)
		})
	}
}

// Bad input: an entity that does not exist, a refused key: Ready=False naming the cause, nothing received.
func TestServiceBusBadInput(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	q := f.ServiceBusQueue("bad", 10*time.Second, 10)
	q.Send(sbProps(2))
	missing := framework.NewScaledJob(f, "nosuchqueue").Trigger("azure-servicebus", map[string]string{"queueName": "does-not-exist"}, q.Auth).Max(5)
	missing.ScaledJob.Spec.Dispatch = &v1alpha1.Dispatch{Mode: v1alpha1.ModeMessage}
	missing.Create()

	wrong := f.ServiceBusQueue("wrongkey", 10*time.Second, 10)
	wrong.Send(sbProps(1))
	// The dispatcher gets a connection string with a key the fake does not know.
	var secret corev1.Secret
	if err := f.Client.Get(f.Ctx, client.ObjectKey{Namespace: f.Namespace, Name: "sb-" + wrong.Name}, &secret); err != nil {
		t.Fatalf("reading the Secret: %v", err)
	}
	secret.Data = map[string][]byte{"connection": []byte(sbfake.ConnectionString(framework.Cluster().ServiceBusAddr, wrong.KeyName, "d3Jvbmcta2V5LXdyb25nLWtleQ=="))}
	if err := f.Client.Update(f.Ctx, &secret); err != nil {
		t.Fatalf("updating the Secret: %v", err)
	}
	sbSJ(f, "refused", wrong, 5).Create()

	regex := framework.NewScaledJob(f, "regex").Trigger("azure-servicebus", map[string]string{"queueName": "bad-.*", "useRegex": "true"}, q.Auth).Max(5)
	regex.ScaledJob.Spec.Dispatch = &v1alpha1.Dispatch{Mode: v1alpha1.ModeMessage}
	regex.Create()

	f.StartDispatcher()
	f.WaitReady("nosuchqueue", metav1.ConditionFalse, "does-not-exist", "not found")
	f.WaitReady("refused", metav1.ConditionFalse, "credentials refused")
	f.WaitReady("regex", metav1.ConditionFalse, "metadata.useRegex")
	for _, name := range []string{"nosuchqueue", "refused", "regex"} {
		if jobs := f.JobsOf(name); len(jobs) != 0 {
			t.Errorf("%s: %d Jobs, want none", name, len(jobs))
		}
	}
	if s := q.Stats(); s.Active != 2 || s.Completed != 0 {
		t.Errorf("queue %s stats %+v, want the 2 sent messages untouched", q.Name, s)
	}
	if s := wrong.Stats(); s.Active != 1 || s.Completed != 0 {
		t.Errorf("queue %s stats %+v, want the 1 sent message untouched", wrong.Name, s)
	}
}
