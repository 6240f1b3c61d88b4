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
	dispatchmessage "github.com/kubedispatch/kubedispatch/dispatch/message"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
	"github.com/kubedispatch/kubedispatch/sources"
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
	const ackDeadline = 10 * time.Second
	sub := newPSSub(f, "kill", int32(ackDeadline/time.Second))
	pubsubSJ(f, "crashy", sub.name, 10).RunFor("30s").Create()
	rec, d := recordPubSubAcks(f)
	ids := sub.publish(n(30))
	var kills []psKill
	for i := range 3 {
		want := int64((i + 1) * 5)
		f.Eventually(fmt.Sprintf("%d acked before kill %d", want, i+1), 4*time.Minute, func() (bool, error) {
			m := f.ScaledJob("crashy").Status.Messages
			return m != nil && m.Acked >= want, nil
		})
		var since time.Time
		if i > 0 {
			since = kills[i-1].after
		}
		kills = append(kills, killPubSubDispatcher(f, rec, d, since))
		if i == 0 {
			// One dispatcher so far, whose Jobs ran three times the ack deadline: no redelivery, no lapsed lease.
			for id, times := range rec.Delivered() {
				if times != 1 {
					t.Errorf("message %s delivered %d times before the first kill, want 1", id, times)
				}
			}
			deliveries := rec.Deliveries()
			requireLeasesKept(t, deliveries, kills, ackDeadline, kills[0].at)
			long := 0
			for _, dv := range deliveries {
				if !dv.AckedAt.IsZero() && dv.AckedAt.Sub(dv.PulledAt) >= 3*ackDeadline {
					long++
				}
			}
			if long < 5 {
				t.Errorf("%d messages held for 3 ack deadlines (%s) and acked before the first kill, want at least 5", long, 3*ackDeadline)
			}
		}
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
	requireRedeliveredOnlyAfterKills(t, rec, kills)
	requireLeasesKept(t, rec.Deliveries(), kills, ackDeadline, time.Now())
	if left := sub.pullAll(); len(left) != 0 {
		t.Errorf("%d messages deliverable on the subscription after every ack", len(left))
	}
}

// psKill is one kill -9 of a dispatcher that reached Pub/Sub through a recorder.
type psKill struct {
	// at is when the signal was sent; after, when the recorder had no call in flight any more: what it recorded
	// before after came from the killed dispatcher.
	at, after time.Time
	// held are the messages the killed dispatcher had been delivered and had not acknowledged.
	held map[string]bool
}

// killPubSubDispatcher kills d, which started after since, with SIGKILL and waits until its calls through rec have
// ended.
func killPubSubDispatcher(f *framework.F, rec *framework.PubSubRecorder, d *framework.Dispatcher, since time.Time) psKill {
	f.T.Helper()
	k := psKill{at: time.Now(), held: map[string]bool{}}
	d.Stop(syscall.SIGKILL)
	f.Eventually("the killed dispatcher's calls through the recorder ended", time.Minute, func() (bool, error) {
		n := rec.InFlight()
		return n == 0, fmt.Errorf("%d calls in flight", n)
	})
	k.after = time.Now()
	unacked := rec.Unacked()
	for _, dv := range rec.Deliveries() {
		if !dv.PulledAt.Before(since) && unacked[dv.MessageID] {
			k.held[dv.MessageID] = true
		}
	}
	return k
}

// requireLeasesKept checks that each delivery kept its lease from its Pull (leased for ackDeadline) until its ack or,
// unacknowledged, until the kill of the dispatcher that pulled it (or until end): each ModifyAckDeadline came
// before the lease it renewed ran out, so consecutive renewals were less than the ack deadline apart, and none
// handed the message back.
func requireLeasesKept(t *testing.T, deliveries []framework.PubSubDelivery, kills []psKill, ackDeadline time.Duration, end time.Time) {
	t.Helper()
	var longest time.Duration
	renewals := 0
	for _, d := range deliveries {
		until := end
		if !d.AckedAt.IsZero() && d.AckedAt.Before(until) {
			until = d.AckedAt
		} else if k := killOf(d, kills); k != nil && k.at.Before(until) {
			until = k.at
		}
		last, expiry := d.PulledAt, d.PulledAt.Add(ackDeadline)
		for _, m := range d.Modified {
			if m.At.After(until) {
				break
			}
			if m.At.After(expiry) {
				t.Errorf("message %s: ack deadline renewed %s after its previous lease (from %s) ran out",
					d.MessageID, m.At.Sub(expiry).Round(time.Millisecond), last.Format(time.StampMilli))
			}
			if m.Seconds <= 0 {
				t.Errorf("message %s handed back (ModifyAckDeadline %d s) at %s while its Job ran", d.MessageID, m.Seconds, m.At.Format(time.StampMilli))
			}
			longest = max(longest, m.At.Sub(last))
			renewals++
			last, expiry = m.At, m.At.Add(time.Duration(m.Seconds)*time.Second)
		}
		if until.After(expiry) {
			t.Errorf("message %s: lease ran out at %s (pulled %s, %d renewals), %s before %s",
				d.MessageID, expiry.Format(time.StampMilli), d.PulledAt.Format(time.StampMilli), len(d.Modified),
				until.Sub(expiry).Round(time.Millisecond), until.Format(time.StampMilli))
		}
	}
	t.Logf("%d deliveries, %d lease renewals, the longest %s after the pull or renewal before it (ack deadline %s)",
		len(deliveries), renewals, longest.Round(time.Millisecond), ackDeadline)
}

// killOf returns the kill of the dispatcher that pulled d, or nil if that one was not killed.
func killOf(d framework.PubSubDelivery, kills []psKill) *psKill {
	for i := range kills {
		if d.PulledAt.Before(kills[i].after) {
			return &kills[i]
		}
	}
	return nil
}

// requireRedeliveredOnlyAfterKills checks that a message was delivered again only after a kill of a dispatcher that
// held it: at most once more than the kills it was held at.
func requireRedeliveredOnlyAfterKills(t *testing.T, rec *framework.PubSubRecorder, kills []psKill) {
	t.Helper()
	redelivered := 0
	for id, times := range rec.Delivered() {
		held := 0
		for _, k := range kills {
			if k.held[id] {
				held++
			}
		}
		if times > 1+held {
			t.Errorf("message %s delivered %d times, held at %d of the %d kills: redelivered while a dispatcher held it", id, times, held, len(kills))
		}
		redelivered += times - 1
	}
	t.Logf("%d redeliveries after %d kills", redelivered, len(kills))
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

// Bad input: a topic instead of a subscription, a subscription that does not exist, or credentials the
// subscription refuses: Ready=False naming the cause, nothing received.
func TestPubSubBadInput(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	sub := newPSSub(f, "bad", 10)
	sub.publish(n(2))
	b := framework.NewScaledJob(f, "topiconly").Trigger("gcp-pubsub", map[string]string{"topicName": sub.topic}, gcpIdentity(f)).Max(5)
	b.ScaledJob.Spec.Dispatch = &v1alpha1.Dispatch{Mode: v1alpha1.ModeMessage}
	b.Create()
	pubsubSJ(f, "nosub", "projects/"+framework.PubSubProject+"/subscriptions/does-not-exist", 5).Create()
	// The recorder answers every call naming this subscription with PermissionDenied, as Pub/Sub answers an
	// identity without the subscriber role.
	refused := newPSSub(f, "refused", 10)
	refused.publish(n(2))
	pubsubSJ(f, "refused", refused.name, 5).Create()
	rec := f.RecordPubSub()
	rec.Refuse(refused.name)
	started := time.Now()
	f.StartDispatcherWithEnv(map[string]string{"PUBSUB_EMULATOR_HOST": rec.Host})
	f.WaitReady("topiconly", metav1.ConditionFalse, "metadata.topicName", "subscriptionName")
	f.WaitReady("nosub", metav1.ConditionFalse, "does-not-exist")
	sj := f.WaitReady("refused", metav1.ConditionFalse, sources.ErrUnauthorized.Error(), refused.name, "PermissionDenied")
	if c := framework.Condition(sj, v1alpha1.ConditionReady); c.Reason != dispatchmessage.ReasonReceiveFailed {
		t.Errorf("Ready reason %q, want %q", c.Reason, dispatchmessage.ReasonReceiveFailed)
	}
	if m := sj.Status.Messages; m != nil && (m.Held != 0 || m.Acked != 0) {
		t.Errorf("status.messages %+v on a refused subscription, want nothing held or acked", m)
	}
	for _, name := range []string{"topiconly", "refused"} {
		if jobs := f.JobsOf(name); len(jobs) != 0 {
			t.Errorf("%d Jobs for %s", len(jobs), name)
		}
	}
	for _, d := range rec.Deliveries() {
		if d.Subscription == refused.name {
			t.Errorf("message %s of the refused subscription delivered to the dispatcher", d.MessageID)
		}
	}
	// Refused credentials are read again and retried with the receiver's back-off (1 s doubling to 30 s), not in a
	// tight loop: at most about one call a second (the limit is generous).
	calls, elapsed := rec.Refused(refused.name), time.Since(started)
	t.Logf("%d calls refused in %s", calls, elapsed.Round(time.Millisecond))
	if limit := 5 + int(elapsed/time.Second); calls > limit {
		t.Errorf("%d calls on the refused subscription in %s, want at most %d: no back-off between attempts", calls,
			elapsed.Round(time.Millisecond), limit)
	}
	for _, s := range []*psSub{sub, refused} {
		if left := s.pullAll(); len(left) != 2 {
			t.Errorf("%d messages deliverable on %s, want the 2 published (nothing received)", len(left), s.name)
		}
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
