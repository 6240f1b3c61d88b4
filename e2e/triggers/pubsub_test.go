package triggers

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// emulatorSub is a topic and subscription on the Pub/Sub emulator whose helpers keep a backlogBook in step.
type emulatorSub struct {
	f      *framework.F
	client *pubsub.Client
	book   *backlogBook
	topic  string // projects/<p>/topics/<id>
	name   string // projects/<p>/subscriptions/<id>
	id     string // subscription ID
}

// newEmulatorSub creates a topic and a subscription (IDs unique to this run) on the emulator.
func newEmulatorSub(f *framework.F, book *backlogBook, prefix string) *emulatorSub {
	f.T.Helper()
	c := f.PubSub()
	id := prefix + "-" + randomHex(4)
	s := &emulatorSub{f: f, client: c, book: book,
		topic: "projects/" + framework.PubSubProject + "/topics/" + id + "-topic",
		name:  "projects/" + framework.PubSubProject + "/subscriptions/" + id, id: id}
	if _, err := c.TopicAdminClient.CreateTopic(f.Ctx, &pubsubpb.Topic{Name: s.topic}); err != nil {
		f.T.Fatalf("creating topic %s: %v", s.topic, err)
	}
	if _, err := c.SubscriptionAdminClient.CreateSubscription(f.Ctx, &pubsubpb.Subscription{Name: s.name, Topic: s.topic,
		AckDeadlineSeconds: 60}); err != nil {
		f.T.Fatalf("creating subscription %s: %v", s.name, err)
	}
	return s
}

// publish publishes n messages, waits until the emulator accepted each, and counts them in the book.
func (s *emulatorSub) publish(n int) (int64, time.Time) {
	s.f.T.Helper()
	pub := s.client.Publisher(s.topic)
	defer pub.Stop()
	results := make([]*pubsub.PublishResult, n)
	for i := range n {
		results[i] = pub.Publish(s.f.Ctx, &pubsub.Message{Data: fmt.Appendf(nil, "job-%d", i)})
	}
	for i, r := range results {
		if _, err := r.Get(s.f.Ctx); err != nil {
			s.f.T.Fatalf("publishing message %d: %v", i, err)
		}
	}
	return s.book.add(s.id, int64(n))
}

// ack pulls and acknowledges exactly n messages and takes them off the book.
func (s *emulatorSub) ack(n int) (int64, time.Time) {
	s.f.T.Helper()
	acked := 0
	for attempt := 0; acked < n; attempt++ {
		if attempt == 20 {
			s.f.T.Fatalf("acked %d of %d messages after %d pulls", acked, n, attempt)
		}
		msgs := s.pull(n - acked)
		ids := make([]string, 0, len(msgs))
		for _, m := range msgs {
			ids = append(ids, m.GetAckId())
		}
		if len(ids) == 0 {
			continue
		}
		if err := s.client.SubscriptionAdminClient.Acknowledge(s.f.Ctx, &pubsubpb.AcknowledgeRequest{Subscription: s.name, AckIds: ids}); err != nil {
			s.f.T.Fatalf("acknowledging: %v", err)
		}
		acked += len(ids)
	}
	return s.book.add(s.id, -int64(n))
}

// undelivered counts what the emulator would deliver now, by pulling everything and handing it straight back (ack
// deadline 0): the emulator has no count API.
func (s *emulatorSub) undelivered() int64 {
	s.f.T.Helper()
	var ids []string
	for {
		msgs := s.pull(1000)
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			ids = append(ids, m.GetAckId())
		}
	}
	if len(ids) > 0 {
		if err := s.client.SubscriptionAdminClient.ModifyAckDeadline(s.f.Ctx, &pubsubpb.ModifyAckDeadlineRequest{
			Subscription: s.name, AckIds: ids, AckDeadlineSeconds: 0}); err != nil {
			s.f.T.Fatalf("returning pulled messages: %v", err)
		}
	}
	return int64(len(ids))
}

// pull makes one unary Pull with a short deadline: an empty Pull on the emulator blocks until about a second before
// its deadline and then returns nothing.
func (s *emulatorSub) pull(max int) []*pubsubpb.ReceivedMessage {
	s.f.T.Helper()
	ctx, cancel := context.WithTimeout(s.f.Ctx, 2500*time.Millisecond)
	defer cancel()
	resp, err := s.client.SubscriptionAdminClient.Pull(ctx, &pubsubpb.PullRequest{Subscription: s.name, MaxMessages: int32(max)})
	if status.Code(err) == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	if err != nil {
		s.f.T.Fatalf("pulling from %s: %v", s.name, err)
	}
	return resp.GetReceivedMessages()
}

// checkBook checks that the emulator holds as many undelivered messages as the book says.
func (s *emulatorSub) checkBook(want int64) {
	s.f.T.Helper()
	n, _, _ := s.book.get(s.id)
	if n != want {
		s.f.T.Fatalf("the test counted %d undelivered messages, want %d", n, want)
	}
	if got := s.undelivered(); got != want {
		s.f.T.Fatalf("the emulator holds %d undelivered messages, the test counted %d", got, want)
	}
}

// A gcp-pubsub ScaledJob reads num_undelivered_messages of a real emulator subscription from a fake Cloud Monitoring
// that reports what the test did there: 7 published, 2 acked -> 5 Jobs; 3 more published -> 8 Jobs in all.
func TestPubSubEndToEnd(t *testing.T) {
	f := framework.New(t)
	book := newBacklogBook()
	monitoring, addr := startFakeMonitoring(t, framework.PubSubProject, book)
	sub := newEmulatorSub(f, book, "jobs")

	sub.publish(7)
	n, sampled := sub.ack(2)
	sub.checkBook(5)
	t.Logf("emulator: 7 published, 2 acked, %d undelivered; sample at %s", n, sampled.Format(time.RFC3339Nano))

	scaledJob(f, "pubsub").Max(10).Trigger("gcp-pubsub", map[string]string{
		"subscriptionName":   sub.name,
		"value":              "1",
		"monitoringEndpoint": addr,
		"monitoringInsecure": "true",
	}, nil).Create()
	start := time.Now()
	f.StartDispatcher()

	waitJobs(f, "pubsub", 5)
	t.Logf("5 Jobs %.1fs after the dispatcher started", time.Since(start).Seconds())
	sj := settledJobs(f, "pubsub", 5)
	checkPubSubStatus(t, sj, "5", sampled)

	n, sampled = sub.publish(3)
	sub.checkBook(8)
	t.Logf("emulator: 3 more published, %d undelivered; sample at %s", n, sampled.Format(time.RFC3339Nano))
	sj = settledJobs(f, "pubsub", 8)
	checkPubSubStatus(t, sj, "8", sampled)

	want := subscriptionFilter(framework.PubSubProject, sub.id)
	seen := monitoring.filtersSeen()
	if seen[want] == 0 || len(seen) != 1 {
		t.Errorf("the fake MetricService saw filters %v, want only %q", seen, want)
	}
	t.Logf("the fake MetricService answered %d ListTimeSeries requests", seen[want])
}

// checkPubSubStatus checks the trigger's reading in status: the backlog, target 1, and the sample's own time (so the
// reading's age is visible), not the tick's.
func checkPubSubStatus(t *testing.T, sj *v1alpha1.ScaledJob, backlog string, sampled time.Time) {
	t.Helper()
	if len(sj.Status.Triggers) != 1 {
		t.Fatalf("status.triggers = %+v, want one entry", sj.Status.Triggers)
	}
	tr := sj.Status.Triggers[0]
	if tr.Backlog != backlog || tr.Target != "1" || !tr.Active || tr.LastError != "" {
		t.Errorf("status.triggers[0] = %+v, want backlog %s, target 1, active, no error", tr, backlog)
	}
	if tr.SampledAt == nil {
		t.Fatalf("status.triggers[0].sampledAt is not set")
	}
	if got, want := tr.SampledAt.Unix(), sampled.Unix(); got != want {
		t.Errorf("status.triggers[0].sampledAt = %s, want the sample's own time %s", tr.SampledAt.UTC().Format(time.RFC3339),
			sampled.UTC().Format(time.RFC3339))
	}
	d := sj.Status.LastDecision
	if d == nil {
		t.Fatalf("status.lastDecision is not set")
	}
	age := d.Time.Sub(tr.SampledAt.Time)
	t.Logf("backlog %s sampled at %s, read by the tick at %s: the sample was %s old; decision %q",
		tr.Backlog, tr.SampledAt.UTC().Format(time.RFC3339), d.Time.UTC().Format(time.RFC3339), age, d.Reason)
	if age < time.Second {
		t.Errorf("the decision at %s is not later than the sample at %s: sampledAt shows the tick's time, not the sample's", d.Time, tr.SampledAt)
	}
}
