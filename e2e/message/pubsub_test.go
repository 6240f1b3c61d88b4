package message

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// psSub is a topic and a subscription on the Pub/Sub emulator.
type psSub struct {
	f     *framework.F
	c     *pubsub.Client
	topic string
	name  string
}

func newPSSub(f *framework.F, prefix string, ackDeadline int32) *psSub {
	f.T.Helper()
	c := f.PubSub()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := prefix + "-" + hex.EncodeToString(b)
	s := &psSub{f: f, c: c, topic: "projects/" + framework.PubSubProject + "/topics/" + id,
		name: "projects/" + framework.PubSubProject + "/subscriptions/" + id}
	if _, err := c.TopicAdminClient.CreateTopic(f.Ctx, &pubsubpb.Topic{Name: s.topic}); err != nil {
		f.T.Fatalf("creating topic %s: %v", s.topic, err)
	}
	if _, err := c.SubscriptionAdminClient.CreateSubscription(f.Ctx, &pubsubpb.Subscription{Name: s.name, Topic: s.topic, AckDeadlineSeconds: ackDeadline}); err != nil {
		f.T.Fatalf("creating subscription %s: %v", s.name, err)
	}
	return s
}

// publish publishes one message per attrs entry (body "doc-<i>") and returns the message ids in order.
func (s *psSub) publish(attrs []map[string]string) []string {
	s.f.T.Helper()
	pub := s.c.Publisher(s.topic)
	defer pub.Stop()
	results := make([]*pubsub.PublishResult, len(attrs))
	for i, a := range attrs {
		results[i] = pub.Publish(s.f.Ctx, &pubsub.Message{Data: fmt.Appendf(nil, "doc-%d", i), Attributes: a})
	}
	ids := make([]string, len(attrs))
	for i, r := range results {
		id, err := r.Get(s.f.Ctx)
		if err != nil {
			s.f.T.Fatalf("publishing message %d: %v", i, err)
		}
		ids[i] = id
	}
	return ids
}

// pullAll pulls what is deliverable now (without acking).
func (s *psSub) pullAll() []*pubsubpb.ReceivedMessage {
	s.f.T.Helper()
	out, err := s.c.SubscriptionAdminClient.Pull(s.f.Ctx, &pubsubpb.PullRequest{Subscription: s.name, MaxMessages: 100, ReturnImmediately: true})
	if err != nil {
		s.f.T.Fatalf("pulling %s: %v", s.name, err)
	}
	return out.ReceivedMessages
}

// gcpIdentity creates (once per namespace) a TriggerAuthentication using the dispatcher's GKE identity; on the
// emulator (PUBSUB_EMULATOR_HOST) the receiver sends no credentials, as Google's libraries do.
func gcpIdentity(f *framework.F) *v1alpha1.AuthenticationRef {
	f.T.Helper()
	ta := &v1alpha1.TriggerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "gcp", Namespace: f.Namespace},
		Spec: v1alpha1.TriggerAuthenticationSpec{PodIdentity: &v1alpha1.PodIdentity{Provider: v1alpha1.ProviderGCP}}}
	if err := f.Client.Create(f.Ctx, ta); err != nil && !apierrors.IsAlreadyExists(err) {
		f.T.Fatalf("creating TriggerAuthentication: %v", err)
	}
	return &v1alpha1.AuthenticationRef{Name: "gcp"}
}

func pubsubSJ(f *framework.F, name, subscription string, max int32) *framework.ScaledJobBuilder {
	b := framework.NewScaledJob(f, name).Trigger("gcp-pubsub", map[string]string{"subscriptionName": subscription}, gcpIdentity(f)).
		Max(max).History(1000, 1000)
	b.ScaledJob.Spec.Dispatch = &v1alpha1.Dispatch{Mode: v1alpha1.ModeMessage}
	return b
}

func n(count int) []map[string]string { return make([]map[string]string, count) }

// waitAcked waits until the ScaledJob's status counts n acked messages and none held.
func waitAcked(f *framework.F, name string, acked int64, timeout time.Duration) {
	f.T.Helper()
	f.Eventually(fmt.Sprintf("%d messages acked by %s", acked, name), timeout, func() (bool, error) {
		m := f.ScaledJob(name).Status.Messages
		return m != nil && m.Acked >= acked && m.Held == 0, fmt.Errorf("status.messages %+v", m)
	})
}

// requireOneCompleteJobEach checks every message id has exactly one Job, Complete and marked acked.
func requireOneCompleteJobEach(t *testing.T, f *framework.F, name string, ids []string) {
	t.Helper()
	byMsg := jobsByMessage(f, name)
	for _, id := range ids {
		jobs := byMsg[id]
		if len(jobs) != 1 {
			t.Errorf("message %s has %d Jobs, want 1", id, len(jobs))
			continue
		}
		if !complete(jobs[0]) || jobs[0].Annotations[v1alpha1.AnnotationMessageOutcome] != v1alpha1.OutcomeAcked {
			t.Errorf("message %s: Job %s complete=%v outcome=%q, want a Complete Job whose message was acked", id, jobs[0].Name, complete(jobs[0]),
				jobs[0].Annotations[v1alpha1.AnnotationMessageOutcome])
		}
	}
	if len(byMsg) != len(ids) {
		t.Errorf("Jobs for %d messages, want %d", len(byMsg), len(ids))
	}
}

// 100 messages, at most 10 at once: one Job each, acked after it completed, nothing left on the subscription.
func TestPubSubOneJobPerMessage(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	sub := newPSSub(f, "msg", 10)
	pubsubSJ(f, "ps", sub.name, 10).RunFor("2s").Create()
	rec, _ := recordPubSubAcks(f)
	sampler := sampleCap(f, "ps")
	ids := sub.publish(n(100))
	waitAcked(f, "ps", 100, 5*time.Minute)
	if got := sampler.Stop(); got > 10 {
		t.Errorf("%d unfinished Jobs at once, maxReplicaCount is 10", got)
	}
	requireOneCompleteJobEach(t, f, "ps", ids)
	requireAckedAfterComplete(t, rec, 100)
	if left := sub.pullAll(); len(left) != 0 {
		t.Errorf("%d messages still deliverable on the subscription", len(left))
	}
}

// Jobs that run three times the ack deadline keep their lease, and kill -9 three times mid-run loses nothing and
// duplicates nothing.
func TestPubSubLeasesAndKill9(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	sub := newPSSub(f, "kill", 10)
	pubsubSJ(f, "crashy", sub.name, 10).RunFor("30s").Create()
	rec, d := recordPubSubAcks(f)
	ids := sub.publish(n(30))
	for i := range 3 {
		want := int64((i + 1) * 5)
		f.Eventually(fmt.Sprintf("%d acked before kill %d", want, i+1), 4*time.Minute, func() (bool, error) {
			m := f.ScaledJob("crashy").Status.Messages
			return m != nil && m.Acked >= want, nil
		})
		d.Stop(syscall.SIGKILL)
		d = f.StartDispatcherWithEnv(map[string]string{"PUBSUB_EMULATOR_HOST": rec.Host})
	}
	// status.messages counts what each process acked since it last wrote status, and a kill between an ack and
	// its annotation leaves the Job unmarked: wait on every message's Job being Complete with nothing held.
	f.Eventually("every message's Job Complete, nothing held", 6*time.Minute, func() (bool, error) {
		byMsg := jobsByMessage(f, "crashy")
		for _, id := range ids {
			if jobs := byMsg[id]; len(jobs) == 0 || !complete(jobs[len(jobs)-1]) {
				return false, fmt.Errorf("message %s: no Complete Job yet (%d Jobs)", id, len(jobs))
			}
		}
		m := f.ScaledJob("crashy").Status.Messages
		return m != nil && m.Held == 0, fmt.Errorf("status.messages %+v", m)
	})
	byMsg := jobsByMessage(f, "crashy")
	for _, id := range ids {
		if n := len(byMsg[id]); n != 1 {
			t.Errorf("message %s has %d Jobs, want 1", id, n)
		}
	}
	// A kill between a Job's completion and its ack leaves the message invisible until its ack deadline passes;
	// the next dispatcher then receives it and acks it without a new Job.
	f.Eventually("all 30 messages acknowledged", 2*time.Minute, func() (bool, error) {
		acked, _ := rec.Acked()
		return acked >= 30, fmt.Errorf("%d acknowledged", acked)
	})
	requireAckedAfterComplete(t, rec, 30)
	if left := sub.pullAll(); len(left) != 0 {
		t.Errorf("%d messages deliverable on the subscription after every ack", len(left))
	}
	if left := sub.pullAll(); len(left) != 0 {
		t.Errorf("%d messages still deliverable on the subscription", len(left))
	}
}

// Failing messages get maxDeliveries Jobs, then go to the dead-letter topic with the reason.
func TestPubSubFailuresDeadLettered(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	sub := newPSSub(f, "fail", 10)
	dlq := newPSSub(f, "fail-dlq", 10)
	b := pubsubSJ(f, "psfail", sub.name, 10).RunFor("1s")
	b.ScaledJob.Spec.Dispatch.MaxDeliveries = ptr.To[int32](2)
	b.ScaledJob.Spec.Dispatch.DeadLetter = &v1alpha1.DeadLetter{Topic: dlq.topic}
	b.ScaledJob.Spec.Dispatch.Parameters = []v1alpha1.Parameter{{From: v1alpha1.ParameterSource{Attribute: "outcome"},
		To: v1alpha1.ParameterTarget{PodAnnotation: "kwok.test/outcome"}, Default: ptr.To("ok")}}
	b.Create()
	f.StartDispatcher()
	ids := sub.publish([]map[string]string{{"outcome": "fail"}, nil, nil, {"outcome": "fail"}, nil})

	var dead []*pubsubpb.ReceivedMessage
	f.Eventually("2 messages on the dead-letter topic", 4*time.Minute, func() (bool, error) {
		dead = append(dead, dlq.pullAll()...)
		return len(dead) >= 2, fmt.Errorf("%d so far", len(dead))
	})
	for _, m := range dead {
		if body := string(m.GetMessage().GetData()); body != "doc-0" && body != "doc-3" {
			t.Errorf("message %q dead-lettered, want only doc-0 and doc-3", body)
		}
		if r := m.GetMessage().GetAttributes()["kubedispatch-reason"]; !strings.Contains(r, "all 2 deliveries failed") {
			t.Errorf("dead-letter reason %q, want it to say all 2 deliveries failed", r)
		}
	}
	waitAcked(f, "psfail", 3, 3*time.Minute)
	byMsg := jobsByMessage(f, "psfail")
	for i, id := range ids {
		want := 1
		if i == 0 || i == 3 {
			want = 2
		}
		if got := len(byMsg[id]); got != want {
			t.Errorf("message %d (%s) has %d Jobs, want %d", i, id, got, want)
		}
	}
}

// Bad input: a topic instead of a subscription, or a subscription that does not exist: Ready=False naming the
// cause, nothing received.
func TestPubSubBadInput(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	sub := newPSSub(f, "bad", 10)
	sub.publish(n(2))
	b := framework.NewScaledJob(f, "topiconly").Trigger("gcp-pubsub", map[string]string{"topicName": sub.topic}, gcpIdentity(f)).Max(5)
	b.ScaledJob.Spec.Dispatch = &v1alpha1.Dispatch{Mode: v1alpha1.ModeMessage}
	b.Create()
	pubsubSJ(f, "nosub", "projects/"+framework.PubSubProject+"/subscriptions/does-not-exist", 5).Create()
	f.StartDispatcher()
	f.WaitReady("topiconly", metav1.ConditionFalse, "metadata.topicName", "subscriptionName")
	f.WaitReady("nosub", metav1.ConditionFalse, "does-not-exist")
	if jobs := f.JobsOf("topiconly"); len(jobs) != 0 {
		t.Errorf("%d Jobs for a topic-only trigger", len(jobs))
	}
	if left := sub.pullAll(); len(left) != 2 {
		t.Errorf("%d messages deliverable on the subscription, want the 2 published (nothing received)", len(left))
	}
}

func complete(j batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobComplete && c.Status == "True" {
			return true
		}
	}
	return false
}
