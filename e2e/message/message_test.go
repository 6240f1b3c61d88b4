package message

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// 200 messages, at most 20 at once: exactly one Job per message, each message deleted only after its Job is
// Complete, never more than 20 unfinished Jobs, and an empty queue at the end.
func TestOneJobPerMessageAckedAfterComplete(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	queue := f.CreateQueue("msg", map[string]string{"VisibilityTimeout": "10"})
	rec := f.RecordSQS()
	requireCompleteBeforeDelete(f, rec, queue)
	messageSJ(f, "etl", queue, rec, 20).RunFor("3s").Create()
	f.StartDispatcher()
	sampler := sampleCap(f, "etl")
	f.SendMessages(queue, 200, "doc")

	waitDeleted(f, rec, 200, 6*time.Minute)
	if got := sampler.Stop(); got > 20 {
		t.Errorf("%d unfinished Jobs at once, maxReplicaCount is 20", got)
	}
	if v := rec.Violations(); len(v) > 0 {
		t.Errorf("deletes before Complete: %d, first: %s", len(v), v[0])
	}
	byMsg := jobsByMessage(f, "etl")
	if len(byMsg) != 200 {
		t.Errorf("Jobs for %d distinct messages, want 200", len(byMsg))
	}
	for id, jobs := range byMsg {
		if len(jobs) != 1 {
			t.Errorf("message %s has %d Jobs, want 1", id, len(jobs))
		}
	}
	requireEmpty(t, f, queue)
	// Status follows the deletes at the next status write, so wait for it rather than read it once.
	waitAcked(f, "etl", 200, time.Minute)
}

// A Job that runs three times the queue's visibility timeout keeps its message: no redelivery, no second Job.
func TestLeaseOutlivesVisibilityTimeout(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	queue := f.CreateQueue("lease", map[string]string{"VisibilityTimeout": "5"})
	rec := f.RecordSQS()
	requireCompleteBeforeDelete(f, rec, queue)
	messageSJ(f, "long", queue, rec, 5).RunFor("15s").Create()
	f.StartDispatcher()
	f.SendMessages(queue, 3, "long")

	waitDeleted(f, rec, 3, 3*time.Minute)
	for id, n := range rec.Received() {
		if n != 1 {
			t.Errorf("message %s delivered %d times, want 1 (the lease lapsed)", id, n)
		}
	}
	if jobs := f.JobsOf("long"); len(jobs) != 3 {
		t.Errorf("%d Jobs, want 3", len(jobs))
	}
	if v := rec.Violations(); len(v) > 0 {
		t.Errorf("deletes before Complete: %v", v)
	}
}

// Messages whose Jobs fail get exactly maxDeliveries Jobs and then land in the dead-letter queue with the
// failure as an attribute; the others are untouched.
func TestFailedMessagesRetriedThenDeadLettered(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	queue := f.CreateQueue("fail", map[string]string{"VisibilityTimeout": "10"})
	dlq := f.CreateQueue("fail-dlq", nil)
	rec := f.RecordSQS()
	requireCompleteBeforeDelete(f, rec, queue)
	b := messageSJ(f, "pdf", queue, rec, 10).RunFor("1s")
	b.ScaledJob.Spec.Dispatch.MaxDeliveries = ptr.To[int32](2)
	b.ScaledJob.Spec.Dispatch.DeadLetter = &v1alpha1.DeadLetter{QueueURL: dlq}
	b.ScaledJob.Spec.Dispatch.Parameters = []v1alpha1.Parameter{{
		From: v1alpha1.ParameterSource{Attribute: "outcome"}, To: v1alpha1.ParameterTarget{PodAnnotation: "kwok.test/outcome"}, Default: ptr.To("ok"),
	}}
	b.Create()
	f.StartDispatcher()
	failing := map[string]bool{}
	for i := range 6 {
		attrs := map[string]string{}
		if i%3 == 0 {
			attrs["outcome"] = "fail"
		}
		id := sendWithAttributes(f, queue, fmt.Sprintf("doc-%d", i), attrs)
		failing[id] = i%3 == 0
	}

	// Both failing messages in the DLQ, each with its reason.
	reasons := map[string]string{}
	f.Eventually("2 messages in the dead-letter queue", 4*time.Minute, func() (bool, error) {
		out, err := f.SQS.ReceiveMessage(f.Ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(dlq), MaxNumberOfMessages: 10,
			MessageAttributeNames: []string{"All"}, WaitTimeSeconds: 1})
		if err != nil {
			return false, err
		}
		for _, m := range out.Messages {
			reasons[aws.ToString(m.Body)] = aws.ToString(m.MessageAttributes["kubedispatch-reason"].StringValue)
			if _, err := f.SQS.DeleteMessage(f.Ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(dlq), ReceiptHandle: m.ReceiptHandle}); err != nil {
				return false, err
			}
		}
		return len(reasons) >= 2, fmt.Errorf("%d so far", len(reasons))
	})
	for body, reason := range reasons {
		if body != "doc-0" && body != "doc-3" {
			t.Errorf("message %q dead-lettered, want only doc-0 and doc-3", body)
		}
		if !strings.Contains(reason, "all 2 deliveries failed") {
			t.Errorf("dead-letter reason of %q = %q, want it to say all 2 deliveries failed", body, reason)
		}
	}
	f.Eventually("the 4 good messages acked", 2*time.Minute, func() (bool, error) {
		deleted := rec.Deleted()
		for id, fail := range failing {
			if _, ok := deleted[id]; !ok && !fail {
				return false, fmt.Errorf("%s not deleted yet", id)
			}
		}
		return true, nil
	})
	for _, v := range rec.Violations() {
		for id, fail := range failing {
			if !fail && strings.Contains(v, id) {
				t.Errorf("good message deleted before its Job completed: %s", v)
			}
		}
	}
	byMsg := jobsByMessage(f, "pdf")
	for id, fail := range failing {
		want := 1
		if fail {
			want = 2
		}
		if got := len(byMsg[id]); got != want {
			t.Errorf("message %s (fail=%v) has %d Jobs, want %d", id, fail, got, want)
		}
	}
	requireEmpty(t, f, queue)
	f.Eventually("status.messages: 4 acked, 2 dead-lettered, none held", time.Minute, func() (bool, error) {
		m := f.ScaledJob("pdf").Status.Messages
		if m == nil || m.Acked != 4 || m.DeadLettered != 2 || m.Held != 0 || !strings.Contains(m.LastDeadLetter, "deliveries failed") {
			return false, fmt.Errorf("status.messages = %+v", m)
		}
		return true, nil
	})
}

// kill -9 the dispatcher five times during 200 messages: no duplicate Job, no lost message, no delete before
// its Job completed.
func TestKill9DuringDispatch(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	queue := f.CreateQueue("kill", map[string]string{"VisibilityTimeout": "5"})
	rec := f.RecordSQS()
	requireCompleteBeforeDelete(f, rec, queue)
	messageSJ(f, "crashy", queue, rec, 20).RunFor("3s").Create()
	f.SendMessages(queue, 200, "doc")
	d := f.StartDispatcher()
	for i := range 5 {
		from := len(rec.Deleted())
		f.Eventually(fmt.Sprintf("progress before kill %d", i+1), 3*time.Minute, func() (bool, error) {
			return len(rec.Deleted()) >= from+10, nil
		})
		// A random moment: once 1-5 more Jobs have appeared (mid-create, mid-lease or mid-ack, by chance).
		jobs, more := len(f.JobsOf("crashy")), 1+rand.IntN(5)
		f.Eventually(fmt.Sprintf("%d more Jobs before kill %d", more, i+1), 3*time.Minute, func() (bool, error) {
			return len(f.JobsOf("crashy")) >= min(jobs+more, 200), nil
		})
		d.Stop(syscall.SIGKILL)
		d = f.StartDispatcher()
	}
	waitDeleted(f, rec, 200, 8*time.Minute)
	if v := rec.Violations(); len(v) > 0 {
		t.Errorf("deletes before Complete: %d, first: %s", len(v), v[0])
	}
	byMsg := jobsByMessage(f, "crashy")
	if len(byMsg) != 200 {
		t.Errorf("Jobs for %d distinct messages, want 200", len(byMsg))
	}
	for id, jobs := range byMsg {
		if len(jobs) != 1 {
			t.Errorf("message %s has %d Jobs, want 1 (none fail)", id, len(jobs))
		}
	}
	requireEmpty(t, f, queue)
}

// Two replicas: only the leader receives; killing it hands the run to the other, which adopts the held messages'
// Jobs and finishes with no duplicates.
func TestFailoverAdoptsHeldMessages(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	queue := f.CreateQueue("ha", map[string]string{"VisibilityTimeout": "5"})
	rec := f.RecordSQS()
	requireCompleteBeforeDelete(f, rec, queue)
	messageSJ(f, "ha", queue, rec, 10).RunFor("3s").Create()
	a, b := f.StartDispatcher(), f.StartDispatcher()
	f.SendMessages(queue, 60, "doc")
	waitDeleted(f, rec, 15, 3*time.Minute)

	received := func(d *framework.Dispatcher) float64 {
		t.Helper()
		v, err := d.MetricSum("kubedispatch_messages_total", map[string]string{"action": "received"})
		if err != nil {
			t.Fatalf("reading a replica's received count: %v", err)
		}
		return v
	}
	leader, standby := a, b
	if received(b) > 0 {
		leader, standby = b, a
	}
	if received(standby) != 0 {
		t.Fatalf("both replicas received messages (%v and %v): only the leader may", received(a), received(b))
	}
	leader.Stop(syscall.SIGKILL)
	waitDeleted(f, rec, 60, 5*time.Minute)
	if received(standby) == 0 {
		t.Errorf("the standby never received after the leader died")
	}
	if v := rec.Violations(); len(v) > 0 {
		t.Errorf("deletes before Complete: %v", v)
	}
	for id, jobs := range jobsByMessage(f, "ha") {
		if len(jobs) != 1 {
			t.Errorf("message %s has %d Jobs, want 1", id, len(jobs))
		}
	}
	requireEmpty(t, f, queue)
}

// The payload reaches the Job's Secret byte for byte; a message lacking a required parameter is dead-lettered
// with the parameter named.
func TestPayloadAndParameters(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	queue := f.CreateQueue("payload", map[string]string{"VisibilityTimeout": "10", "MaximumMessageSize": "1048576"})
	dlq := f.CreateQueue("payload-dlq", nil)
	b := messageSJ(f, "pay", queue, nil, 5).RunFor("60s")
	b.ScaledJob.Spec.Dispatch.DeadLetter = &v1alpha1.DeadLetter{QueueURL: dlq}
	b.ScaledJob.Spec.Dispatch.Parameters = []v1alpha1.Parameter{
		{From: v1alpha1.ParameterSource{JSON: "customer.id"}, To: v1alpha1.ParameterTarget{Env: "CUSTOMER"}},
	}
	b.Create()
	f.StartDispatcher()

	// A JSON body of 1 MiB - 1 byte with the required field.
	prefix, suffix := `{"customer":{"id":"acme"},"pad":"`, `"}`
	body := prefix + strings.Repeat("x", 1<<20-1-len(prefix)-len(suffix)) + suffix
	bigID := sendWithAttributes(f, queue, body, nil)
	missingID := sendWithAttributes(f, queue, `{"customer":{}}`, nil)

	var jobName string
	f.Eventually("the big message's Job", 2*time.Minute, func() (bool, error) {
		jobs := jobsByMessage(f, "pay")[bigID]
		if len(jobs) == 1 {
			jobName = jobs[0].Name
			env := jobs[0].Spec.Template.Spec.Containers[0].Env
			for _, e := range env {
				if e.Name == "CUSTOMER" && e.Value == "acme" {
					return true, nil
				}
			}
			return false, fmt.Errorf("env %+v has no CUSTOMER=acme", env)
		}
		return false, nil
	})
	var secret corev1.Secret
	f.Eventually("the payload Secret", time.Minute, func() (bool, error) {
		return f.Client.Get(f.Ctx, types.NamespacedName{Namespace: f.Namespace, Name: jobName}, &secret) == nil, nil
	})
	if got, want := sha256.Sum256(secret.Data[v1alpha1.PayloadFile]), sha256.Sum256([]byte(body)); got != want || len(secret.Data[v1alpha1.PayloadFile]) != len(body) {
		t.Errorf("payload Secret holds %d bytes (sha256 %x), want the %d-byte body (sha256 %x)", len(secret.Data[v1alpha1.PayloadFile]), got, len(body), want)
	}
	if len(secret.OwnerReferences) != 1 || secret.OwnerReferences[0].Name != jobName {
		t.Errorf("payload Secret owners %+v, want the Job %s", secret.OwnerReferences, jobName)
	}

	f.Eventually("the message missing customer.id dead-lettered", 2*time.Minute, func() (bool, error) {
		out, err := f.SQS.ReceiveMessage(f.Ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(dlq), MaxNumberOfMessages: 10,
			MessageAttributeNames: []string{"All"}, WaitTimeSeconds: 1})
		if err != nil || len(out.Messages) == 0 {
			return false, err
		}
		reason := aws.ToString(out.Messages[0].MessageAttributes["kubedispatch-reason"].StringValue)
		if !strings.Contains(reason, "spec.dispatch.parameters[0]") || !strings.Contains(reason, "customer.id") {
			return false, fmt.Errorf("reason %q does not name the parameter", reason)
		}
		return true, nil
	})
	if jobs := jobsByMessage(f, "pay")[missingID]; len(jobs) != 0 {
		t.Errorf("the message without its parameter got %d Jobs, want 0", len(jobs))
	}
}

// Bad specs: refused by the API server, or Ready=False with the field path; nothing is received meanwhile.
func TestBadMessageSpecs(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	queue := f.CreateQueue("bad", nil)
	refused := map[string]func(*framework.ScaledJobBuilder){
		"two triggers": func(b *framework.ScaledJobBuilder) { b.SQS(queue, 1) },
		"cron trigger": func(b *framework.ScaledJobBuilder) {
			b.ScaledJob.Spec.Triggers = []v1alpha1.ScaleTrigger{{Type: "cron", Metadata: map[string]string{"timezone": "UTC", "start": "0 * * * *", "end": "1 * * * *", "desiredReplicas": "1"}}}
		},
		"parameter without a source": func(b *framework.ScaledJobBuilder) {
			b.ScaledJob.Spec.Dispatch.Parameters = []v1alpha1.Parameter{{To: v1alpha1.ParameterTarget{Env: "X"}}}
		},
		"parameter with two destinations": func(b *framework.ScaledJobBuilder) {
			b.ScaledJob.Spec.Dispatch.Parameters = []v1alpha1.Parameter{{From: v1alpha1.ParameterSource{Attribute: "a"}, To: v1alpha1.ParameterTarget{Env: "X", PodLabel: "y"}}}
		},
	}
	for name, mutate := range refused {
		b := messageSJ(f, "refused", queue, nil, 5)
		mutate(b)
		if err := f.Client.Create(f.Ctx, b.ScaledJob); err == nil {
			t.Errorf("%s: the API server accepted it", name)
			_ = f.Client.Delete(f.Ctx, b.ScaledJob)
		}
	}

	f.SendMessages(queue, 3, "keep")
	b := messageSJ(f, "badenv", queue, nil, 5)
	b.ScaledJob.Spec.Dispatch.Parameters = []v1alpha1.Parameter{{From: v1alpha1.ParameterSource{Attribute: "a"}, To: v1alpha1.ParameterTarget{Env: "1-BAD"}, Default: ptr.To("x")}}
	b.Create()
	f.StartDispatcher()
	f.WaitReady("badenv", metav1.ConditionFalse, "spec.dispatch.parameters[0].to.env")
	// An invalid spec waits for an edit; an annotation change makes the dispatcher look at it once more.
	ticks := f.Ticks("badenv")
	f.UpdateScaledJob("badenv", func(sj *v1alpha1.ScaledJob) { sj.Annotations = map[string]string{"example.com/nudge": "1"} })
	f.WaitTicks("badenv", ticks, 1)
	if v, inflight := f.QueueCounts(queue); v != 3 || inflight != 0 {
		t.Errorf("queue has %d visible and %d in flight, want 3 and 0: an invalid spec must receive nothing", v, inflight)
	}
	if jobs := f.JobsOf("badenv"); len(jobs) != 0 {
		t.Errorf("%d Jobs for an invalid spec", len(jobs))
	}
}
