//go:build unix

package pubsub

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/monitoring/apiv3/v2/monitoringpb"
	gpubsub "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
	"github.com/kubedispatch/kubedispatch/sources"
)

// defaultEmulatorPath is where Debian's google-cloud-cli-pubsub-emulator package installs the emulator.
const defaultEmulatorPath = "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"

// backlogBook is what the test did on the emulator, per subscription ID: the number of messages neither acked nor
// expired. The fake MetricService reports it as num_undelivered_messages, as Pub/Sub would (with its lag).
type backlogBook struct {
	mu    sync.Mutex
	count map[string]int64
}

func (b *backlogBook) add(sub string, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count[sub] += n
}

func (b *backlogBook) get(sub string) (int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, ok := b.count[sub]
	return n, ok
}

// TestBacklogOnEmulator publishes to and acks from a real Pub/Sub emulator, checks the emulator agrees with the
// test's count of undelivered messages, and reads that count through the source, its real monitoring client and a
// fake MetricService that serves it.
func TestBacklogOnEmulator(t *testing.T) {
	addr := startEmulator(t)
	t.Setenv("PUBSUB_EMULATOR_HOST", addr)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	const project = "test-project"
	client, err := gpubsub.NewClient(ctx, project)
	if err != nil {
		t.Fatalf("creating Pub/Sub client: %v", err)
	}
	t.Cleanup(func() { _ = client.Close() })

	topic := "projects/" + project + "/topics/jobs"
	sub := "projects/" + project + "/subscriptions/jobs-sub"
	if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatalf("creating topic: %v", err)
	}
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: sub, Topic: topic,
		AckDeadlineSeconds: 60}); err != nil {
		t.Fatalf("creating subscription: %v", err)
	}

	book := &backlogBook{count: map[string]int64{}}
	sampled := time.Now().Add(-time.Minute).Truncate(time.Second)
	_, monitoringAddr := startFakeMonitoring(t, func(req *monitoringpb.ListTimeSeriesRequest) ([]*monitoringpb.TimeSeries, error) {
		if req.GetName() != "projects/"+project {
			return nil, status.Errorf(codes.NotFound, "project %s not found", req.GetName())
		}
		for _, id := range []string{"jobs-sub", "idle-sub"} {
			if !strings.Contains(req.GetFilter(), `resource.labels.subscription_id = "`+id+`"`) {
				continue
			}
			n, ok := book.get(id)
			if !ok {
				return nil, nil
			}
			return series(point(sampled, intValue(n))), nil
		}
		return nil, nil
	})

	publish(ctx, t, client, topic, 9)
	book.add("jobs-sub", 9)
	ackSome(ctx, t, client, sub, 4)
	book.add("jobs-sub", -4)

	src, err := New(ctx, sources.Config{Type: Type, Metadata: map[string]string{
		"subscriptionName":   sub,
		"value":              "2",
		"activationValue":    "3",
		"monitoringEndpoint": monitoringAddr,
		"monitoringInsecure": "true",
	}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = src.Close() })

	steps := []struct {
		name   string
		act    func()
		want   int64
		active bool
	}{
		{name: "9 published, 4 acked", want: 5, active: true},
		{name: "2 more acked", act: func() { ackSome(ctx, t, client, sub, 2); book.add("jobs-sub", -2) }, want: 3, active: false},
		{name: "4 more published", act: func() { publish(ctx, t, client, topic, 4); book.add("jobs-sub", 4) }, want: 7, active: true},
		{name: "all acked", act: func() { ackSome(ctx, t, client, sub, 7); book.add("jobs-sub", -7) }, want: 0, active: false},
	}
	for _, step := range steps {
		if step.act != nil {
			step.act()
		}
		counted, _ := book.get("jobs-sub")
		if counted != step.want {
			t.Fatalf("%s: the test counted %d undelivered messages, want %d", step.name, counted, step.want)
		}
		if got := peekCount(ctx, t, client, sub); got != step.want {
			t.Fatalf("%s: the emulator holds %d undelivered messages, the test counted %d", step.name, got, step.want)
		}
		now := time.Now()
		got, err := src.Backlog(ctx, now)
		if err != nil {
			t.Fatalf("%s: Backlog: %v", step.name, err)
		}
		want := sources.Backlog{Value: float64(step.want), Target: 2, Active: step.active, SampledAt: sampled}
		if !got.SampledAt.Equal(want.SampledAt) || got.Value != want.Value || got.Target != want.Target || got.Active != want.Active {
			t.Errorf("%s: Backlog = %+v, want %+v", step.name, got, want)
		}
	}

	// A subscription the fake has no data for: an error without valueIfNull, the value with it.
	idle := "projects/" + project + "/subscriptions/idle-sub"
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: idle, Topic: topic}); err != nil {
		t.Fatalf("creating subscription: %v", err)
	}
	for _, valueIfNull := range []string{"", "0"} {
		md := map[string]string{"subscriptionName": idle, "monitoringEndpoint": monitoringAddr, "monitoringInsecure": "true"}
		if valueIfNull != "" {
			md["valueIfNull"] = valueIfNull
		}
		idleSrc, err := New(ctx, sources.Config{Type: Type, Metadata: md})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		t.Cleanup(func() { _ = idleSrc.Close() })
		now := time.Now()
		got, err := idleSrc.Backlog(ctx, now)
		switch {
		case valueIfNull == "" && (err == nil || !strings.Contains(err.Error(), "no time series")):
			t.Errorf("idle subscription without valueIfNull: Backlog = %+v, %v; want a no time series error", got, err)
		case valueIfNull != "" && err != nil:
			t.Errorf("idle subscription with valueIfNull: %v", err)
		case valueIfNull != "" && got != (sources.Backlog{Value: 0, Target: 10, Active: false, SampledAt: now}):
			t.Errorf("idle subscription with valueIfNull: Backlog = %+v", got)
		}
	}
}

// publish publishes n messages to topic and waits for the emulator to accept each.
func publish(ctx context.Context, t *testing.T, c *gpubsub.Client, topic string, n int) {
	t.Helper()
	pub := c.Publisher(topic)
	defer pub.Stop()
	results := make([]*gpubsub.PublishResult, n)
	for i := range n {
		results[i] = pub.Publish(ctx, &gpubsub.Message{Data: fmt.Appendf(nil, "job-%d", i)})
	}
	for i, r := range results {
		if _, err := r.Get(ctx); err != nil {
			t.Fatalf("publishing message %d: %v", i, err)
		}
	}
}

// ackSome pulls and acknowledges exactly n messages from sub.
func ackSome(ctx context.Context, t *testing.T, c *gpubsub.Client, sub string, n int) {
	t.Helper()
	for acked, attempt := 0, 0; acked < n; attempt++ {
		if attempt == 20 {
			t.Fatalf("acked %d of %d messages after %d pulls", acked, n, attempt)
		}
		resp, err := pull(ctx, c, sub, n-acked)
		if err != nil {
			t.Fatalf("pulling: %v", err)
		}
		var ids []string
		for _, m := range resp {
			ids = append(ids, m.GetAckId())
		}
		if len(ids) == 0 {
			continue
		}
		if err := c.SubscriptionAdminClient.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: sub, AckIds: ids}); err != nil {
			t.Fatalf("acknowledging: %v", err)
		}
		acked += len(ids)
	}
}

// peekCount counts the messages sub would deliver now, by pulling them all and handing them straight back (ack
// deadline 0). The emulator has no count API.
func peekCount(ctx context.Context, t *testing.T, c *gpubsub.Client, sub string) int64 {
	t.Helper()
	var ids []string
	for {
		resp, err := pull(ctx, c, sub, 1000)
		if err != nil {
			t.Fatalf("pulling: %v", err)
		}
		if len(resp) == 0 {
			break
		}
		for _, m := range resp {
			ids = append(ids, m.GetAckId())
		}
	}
	if len(ids) > 0 {
		if err := c.SubscriptionAdminClient.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{Subscription: sub,
			AckIds: ids, AckDeadlineSeconds: 0}); err != nil {
			t.Fatalf("returning pulled messages: %v", err)
		}
	}
	return int64(len(ids))
}

// pull makes one unary Pull with a short deadline: an empty Pull on the emulator blocks until about a second before
// its deadline, and then answers with no messages.
func pull(ctx context.Context, c *gpubsub.Client, sub string, maxMessages int) ([]*pubsubpb.ReceivedMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, 2500*time.Millisecond)
	defer cancel()
	resp, err := c.SubscriptionAdminClient.Pull(ctx, &pubsubpb.PullRequest{Subscription: sub, MaxMessages: int32(maxMessages)})
	if status.Code(err) == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return resp.GetReceivedMessages(), nil
}

// startEmulator starts the Pub/Sub emulator on a free loopback port and returns its host:port once it answers. The
// emulator's process group is killed, and waited for, when the test ends.
func startEmulator(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("cloud-pubsub-emulator")
	if err != nil {
		path = defaultEmulatorPath
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Pub/Sub emulator not found at %s (%v); install it with: apt-get install google-cloud-cli-pubsub-emulator openjdk-17-jre-headless", path, err)
	}
	if _, err := exec.LookPath("java"); err != nil {
		t.Fatalf("java not found on PATH (%v); the Pub/Sub emulator needs it: apt-get install openjdk-17-jre-headless", err)
	}
	// The launcher script starts java; StartProcess kills both with the process group.
	return sourcetest.StartProcess(t, sourcetest.Process{
		Name:      "Pub/Sub emulator",
		Path:      path,
		Args:      func(host, port string) []string { return []string{"--host=" + host, "--port=" + port} },
		ReadyPath: "/",
	})
}
