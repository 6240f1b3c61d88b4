//go:build unix

package pubsub

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	gpubsub "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/google/go-cmp/cmp"

	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
	"github.com/kubedispatch/kubedispatch/sources"
)

// emulatorProject is the project of every topic and subscription on the emulator.
const emulatorProject = "test-project"

// TestReceiverOnEmulator runs the message-mode Receiver, built by NewReceiver with PUBSUB_EMULATOR_HOST set, against a
// real Pub/Sub emulator. Each subtest has topics and subscriptions of its own. Waits are on conditions (Pull calls
// with short deadlines, repeated until a deadline), never fixed sleeps.
func TestReceiverOnEmulator(t *testing.T) {
	addr := startEmulator(t)
	t.Setenv("PUBSUB_EMULATOR_HOST", addr)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	c := emulatorClient(ctx, t)

	t.Run("Receive returns a message published while it waits", func(t *testing.T) {
		topic, sub := createPair(ctx, t, c, "long-poll", nil)
		pulling := make(chan struct{}, 1)
		r := emulatorReceiver(ctx, t, sub, "", func(api ReceiverAPI) ReceiverAPI {
			return &observedAPI{ReceiverAPI: api, beforePull: func() {
				select {
				case pulling <- struct{}{}:
				default:
				}
			}}
		})
		// An empty subscription: the Pull lasts about its deadline, and is no messages and no error.
		start := time.Now()
		if got, err := r.Receive(ctx, 10, 2*time.Second, start); err != nil || len(got) != 0 {
			t.Fatalf("Receive on an empty subscription = %v, %v, want nothing", bodies(got), err)
		}
		t.Logf("an empty Receive with a 2 s wait returned after %v", time.Since(start))
		<-pulling // the empty Receive's signal

		const wait = 5 * time.Second
		type result struct {
			msgs []sources.Message
			err  error
			at   time.Time
		}
		done := make(chan result, 1)
		start = time.Now()
		go func() {
			msgs, err := r.Receive(ctx, 10, wait, start)
			done <- result{msgs, err, time.Now()}
		}()
		select {
		case <-pulling:
		case <-ctx.Done():
			t.Fatal("Pull was never called")
		}
		publishMessage(ctx, t, c, topic, &pubsubpb.PubsubMessage{Data: []byte("hello"), Attributes: map[string]string{"tenant": "acme"}})
		published := time.Now()
		res := <-done
		if res.err != nil {
			t.Fatalf("Receive: %v", res.err)
		}
		if diff := cmp.Diff([]string{"hello"}, bodies(res.msgs)); diff != "" {
			t.Fatalf("Receive mismatch (-want +got):\n%s", diff)
		}
		t.Logf("Receive returned %v after it started, %v after the publish", res.at.Sub(start), res.at.Sub(published))
		if took := res.at.Sub(start); took >= wait/2 {
			t.Errorf("Receive took %v, want well under its %v wait", took, wait)
		}
		m := res.msgs[0]
		if m.ID == "" || m.Handle == "" || m.Queue != sub || m.Group != "" || m.EnqueuedAt.IsZero() {
			t.Errorf("message = %+v, want an ID, a handle, Queue %s, no group and a publish time", m, sub)
		}
		if diff := cmp.Diff(map[string]string{"tenant": "acme"}, m.Attributes); diff != "" {
			t.Errorf("attributes mismatch (-want +got):\n%s", diff)
		}
		if got := r.Lease(); got != 10*time.Second {
			t.Errorf("Lease = %v, want the subscription's 10 s", got)
		}
		if !m.LeaseUntil.Equal(start.Add(10 * time.Second)) {
			t.Errorf("LeaseUntil = %v, want the Receive's now + 10 s", m.LeaseUntil)
		}
		// Without a dead-letter policy the emulator, like Pub/Sub, sets no delivery_attempt.
		t.Logf("delivery_attempt without a dead-letter policy: %d; System: %v", m.ReceiveCount, m.System)
		if err := r.Ack(ctx, &m); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	})

	t.Run("Extend keeps a message from being redelivered past its ack deadline", func(t *testing.T) {
		topic, sub := createPair(ctx, t, c, "extend", nil)
		publishMessage(ctx, t, c, topic, &pubsubpb.PubsubMessage{Data: []byte("work")})
		r := emulatorReceiver(ctx, t, sub, "", nil)
		m := receiveOne(ctx, t, r)
		received := time.Now()
		// A second client pulls all along: each empty Pull takes about 1.5 s (see pull), which paces the loop. The
		// Receiver extends every 3 s, as the dispatcher does at a third of the 10 s lease, until 15 s: without the
		// extends the message would be redelivered at 10 s.
		other := emulatorClient(ctx, t)
		extends, lastExtend := 0, received
		for time.Since(received) < 15*time.Second {
			if time.Since(lastExtend) >= 3*time.Second {
				until, err := r.Extend(ctx, &m, time.Now())
				if err != nil {
					t.Fatalf("Extend %d: %v", extends+1, err)
				}
				lastExtend = time.Now()
				if until.Sub(lastExtend) > 10*time.Second {
					t.Errorf("Extend = %v, more than the 10 s lease from now", until)
				}
				extends++
			}
			got, err := pull(ctx, other, sub, 10)
			if err != nil {
				t.Fatalf("pulling with a second client: %v", err)
			}
			if len(got) != 0 {
				t.Fatalf("a second client got the message %v after %d extends, at %v", got[0].GetMessage().GetMessageId(),
					extends, time.Since(received))
			}
		}
		if extends < 4 {
			t.Fatalf("extended %d times in 15 s, want at least 4", extends)
		}
		if err := r.Ack(ctx, &m); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		if n := peekCount(ctx, t, c, sub); n != 0 {
			t.Errorf("%d messages deliverable after the Ack, want 0", n)
		}
	})

	t.Run("Release makes the message deliverable at once", func(t *testing.T) {
		topic, sub := createPair(ctx, t, c, "release", nil)
		publishMessage(ctx, t, c, topic, &pubsubpb.PubsubMessage{Data: []byte("work")})
		r := emulatorReceiver(ctx, t, sub, "", nil)
		m := receiveOne(ctx, t, r)
		if err := r.Release(ctx, &m, 0); err != nil {
			t.Fatalf("Release: %v", err)
		}
		released := time.Now()
		again := receiveOne(ctx, t, r)
		took := time.Since(released)
		t.Logf("redelivered %v after the Release", took)
		if again.ID != m.ID {
			t.Errorf("redelivered message %s, want %s", again.ID, m.ID)
		}
		if took >= 5*time.Second {
			t.Errorf("redelivered %v after the Release, want at once (the ack deadline is 10 s)", took)
		}
		if err := r.Ack(ctx, &again); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	})

	t.Run("Ack removes the message", func(t *testing.T) {
		topic, sub := createPair(ctx, t, c, "ack", nil)
		publishMessage(ctx, t, c, topic, &pubsubpb.PubsubMessage{Data: []byte("work")})
		r := emulatorReceiver(ctx, t, sub, "", nil)
		m := receiveOne(ctx, t, r)
		received := time.Now()
		if err := r.Ack(ctx, &m); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		// Past the 10 s ack deadline an unacknowledged message would be redelivered.
		for time.Since(received) < 12*time.Second {
			got, err := r.Receive(ctx, 10, 2*time.Second, time.Now())
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if len(got) != 0 {
				t.Fatalf("Receive after the Ack = %v at %v, want nothing", bodies(got), time.Since(received))
			}
		}
	})

	t.Run("an expired ack id", func(t *testing.T) {
		topic, sub := createPair(ctx, t, c, "expired", nil)
		publishMessage(ctx, t, c, topic, &pubsubpb.PubsubMessage{Data: []byte("work")})
		r := emulatorReceiver(ctx, t, sub, "", nil)
		first := receiveOne(ctx, t, r)
		received := time.Now()
		var again sources.Message
		for again.ID == "" {
			if time.Since(received) > 30*time.Second {
				t.Fatal("message not redelivered within 30 s")
			}
			got, err := r.Receive(ctx, 10, 2*time.Second, time.Now())
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if len(got) > 0 {
				again = got[0]
			}
		}
		t.Logf("redelivered after %v (ack deadline 10 s); delivery_attempt %d", time.Since(received), again.ReceiveCount)
		if again.ID != first.ID || again.Handle == first.Handle {
			t.Errorf("redelivery = id %s handle %q, want id %s and a new handle", again.ID, again.Handle, first.ID)
		}
		// Either outcome is within the Receiver contract: success (the lost lease shows only as the redelivery) or
		// ErrLeaseLost. See the report in the log.
		_, extendErr := r.Extend(ctx, &first, time.Now())
		ackErr := r.Ack(ctx, &first)
		for op, err := range map[string]error{"Extend": extendErr, "Ack": ackErr} {
			t.Logf("%s with the expired ack id: %v", op, err)
			if err != nil && !errors.Is(err, sources.ErrLeaseLost) {
				t.Errorf("%s with the expired ack id: %v, want success or ErrLeaseLost", op, err)
			}
		}
		// Did the expired ack id acknowledge the message? Hand the current delivery back and look.
		if err := r.Release(ctx, &again, 0); err != nil {
			t.Fatalf("Release: %v", err)
		}
		left := peekCount(ctx, t, c, sub)
		t.Logf("after Ack with the expired ack id and a Release of the current delivery: %d messages deliverable", left)
		if left != 1 {
			t.Errorf("%d messages deliverable, want 1: an expired ack id must not acknowledge the redelivered message", left)
		}
		ackSome(ctx, t, c, sub, 1)
	})

	t.Run("an unknown ack id", func(t *testing.T) {
		_, sub := createPair(ctx, t, c, "unknown-ack", nil)
		r := emulatorReceiver(ctx, t, sub, "", nil)
		m := &sources.Message{ID: "m-1", Queue: sub, Handle: "not-an-ack-id"}
		_, extendErr := r.Extend(ctx, m, time.Now())
		ackErr := r.Ack(ctx, m)
		for op, err := range map[string]error{"Extend": extendErr, "Ack": ackErr} {
			t.Logf("%s with an unknown ack id: %v", op, err)
			if err != nil && !errors.Is(err, sources.ErrLeaseLost) {
				t.Errorf("%s with an unknown ack id: %v, want success or ErrLeaseLost", op, err)
			}
		}
	})

	t.Run("DeadLetter to the configured topic", func(t *testing.T) {
		topic, sub := createPair(ctx, t, c, "dl-source", nil)
		dlTopic, dlSub := createPair(ctx, t, c, "dl-target", nil)
		publishMessage(ctx, t, c, topic, &pubsubpb.PubsubMessage{Data: []byte(`{"job":1}`),
			Attributes: map[string]string{"tenant": "acme"}})
		// A bare topic ID: in the subscription's project.
		r := emulatorReceiver(ctx, t, sub, "dl-target-topic", nil)
		m := receiveOne(ctx, t, r)
		if err := r.DeadLetter(ctx, &m, "job failed: exit code 2", map[string]string{"kubedispatch-job": "work-1"}); err != nil {
			t.Fatalf("DeadLetter: %v", err)
		}
		copied := pullOne(ctx, t, c, dlSub)
		if got := string(copied.GetData()); got != `{"job":1}` {
			t.Errorf("dead-letter data = %q, want the original", got)
		}
		want := map[string]string{"kubedispatch-reason": "job failed: exit code 2", "kubedispatch-job": "work-1", "tenant": "acme"}
		if diff := cmp.Diff(want, copied.GetAttributes()); diff != "" {
			t.Errorf("dead-letter attributes mismatch (-want +got):\n%s", diff)
		}
		if n := peekCount(ctx, t, c, sub); n != 0 {
			t.Errorf("%d messages left on the source subscription, want 0", n)
		}
		t.Logf("dead-letter copy on %s: id %s", dlTopic, copied.GetMessageId())
	})

	t.Run("DeadLetter to the topic of the subscription's dead-letter policy", func(t *testing.T) {
		policyTopic, policySub := createPair(ctx, t, c, "policy-target", nil)
		topic, sub := createPair(ctx, t, c, "policy-source", func(s *pubsubpb.Subscription) {
			s.DeadLetterPolicy = &pubsubpb.DeadLetterPolicy{DeadLetterTopic: policyTopic, MaxDeliveryAttempts: 5}
		})
		publishMessage(ctx, t, c, topic, &pubsubpb.PubsubMessage{Data: []byte("work")})
		r := emulatorReceiver(ctx, t, sub, "", nil)
		m := receiveOne(ctx, t, r)
		if err := r.Release(ctx, &m, 0); err != nil {
			t.Fatalf("Release: %v", err)
		}
		again := receiveOne(ctx, t, r)
		t.Logf("delivery_attempt with a dead-letter policy: %d, then %d after a Release", m.ReceiveCount, again.ReceiveCount)
		if m.ReceiveCount != 1 || again.ReceiveCount != 2 {
			t.Errorf("ReceiveCount = %d, then %d, want 1, then 2", m.ReceiveCount, again.ReceiveCount)
		}
		if err := r.DeadLetter(ctx, &again, "failed", nil); err != nil {
			t.Fatalf("DeadLetter: %v", err)
		}
		copied := pullOne(ctx, t, c, policySub)
		if diff := cmp.Diff(map[string]string{"kubedispatch-reason": "failed"}, copied.GetAttributes()); diff != "" {
			t.Errorf("dead-letter attributes mismatch (-want +got):\n%s", diff)
		}
		if n := peekCount(ctx, t, c, sub); n != 0 {
			t.Errorf("%d messages left on the source subscription, want 0", n)
		}
	})

	// Documents (does not require) whether the emulator forwards a message itself once the dead-letter policy's
	// max_delivery_attempts are used up: the Receiver does not rely on it (DeadLetter publishes on its own).
	t.Run("the emulator's own dead-letter forwarding", func(t *testing.T) {
		policyTopic, policySub := createPair(ctx, t, c, "forward-target", nil)
		topic, sub := createPair(ctx, t, c, "forward-source", func(s *pubsubpb.Subscription) {
			s.DeadLetterPolicy = &pubsubpb.DeadLetterPolicy{DeadLetterTopic: policyTopic, MaxDeliveryAttempts: 5}
		})
		publishMessage(ctx, t, c, topic, &pubsubpb.PubsubMessage{Data: []byte("work")})
		r := emulatorReceiver(ctx, t, sub, "", nil)
		var attempts []int
		for range 6 {
			got, err := r.Receive(ctx, 10, 2*time.Second, time.Now())
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if len(got) == 0 {
				break
			}
			attempts = append(attempts, got[0].ReceiveCount)
			if err := r.Release(ctx, &got[0], 0); err != nil {
				t.Fatalf("Release: %v", err)
			}
		}
		forwarded, err := pull(ctx, c, policySub, 10)
		if err != nil {
			t.Fatalf("pulling from %s: %v", policySub, err)
		}
		var attrs []map[string]string
		for _, m := range forwarded {
			attrs = append(attrs, m.GetMessage().GetAttributes())
		}
		t.Logf("delivery attempts seen before the source stopped delivering (max_delivery_attempts 5): %v; "+
			"messages on the policy's topic: %d, attributes %v; left on the source: %d",
			attempts, len(forwarded), attrs, peekCount(ctx, t, c, sub))
	})

	t.Run("DeadLetter without any dead-letter topic releases the message", func(t *testing.T) {
		topic, sub := createPair(ctx, t, c, "no-dl", nil)
		publishMessage(ctx, t, c, topic, &pubsubpb.PubsubMessage{Data: []byte("work")})
		r := emulatorReceiver(ctx, t, sub, "", nil)
		m := receiveOne(ctx, t, r)
		if err := r.DeadLetter(ctx, &m, "failed", nil); !errors.Is(err, sources.ErrNoDeadLetter) {
			t.Fatalf("DeadLetter error = %v, want ErrNoDeadLetter", err)
		}
		again := receiveOne(ctx, t, r)
		if again.ID != m.ID {
			t.Errorf("redelivered %s, want %s", again.ID, m.ID)
		}
		if err := r.Ack(ctx, &again); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	})

	t.Run("ordering key: the second message only after the first is acked", func(t *testing.T) {
		topic, sub := createPair(ctx, t, c, "ordered", func(s *pubsubpb.Subscription) { s.EnableMessageOrdering = true })
		publishMessage(ctx, t, c, topic, &pubsubpb.PubsubMessage{Data: []byte("k-first"), OrderingKey: "k"})
		publishMessage(ctx, t, c, topic, &pubsubpb.PubsubMessage{Data: []byte("k-second"), OrderingKey: "k"})
		var mu sync.Mutex
		var fromEmulator []int
		r := emulatorReceiver(ctx, t, sub, "", func(api ReceiverAPI) ReceiverAPI {
			return &observedAPI{ReceiverAPI: api, afterPull: func(n int) {
				mu.Lock()
				defer mu.Unlock()
				fromEmulator = append(fromEmulator, n)
			}}
		})
		first := receiveOne(ctx, t, r)
		if string(first.Body) != "k-first" || first.Group != "k" || first.System[SystemOrderingKey] != "k" {
			t.Fatalf("first message = %q of group %q, want k-first of k", first.Body, first.Group)
		}
		for range 2 {
			got, err := r.Receive(ctx, 10, 2*time.Second, time.Now())
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if len(got) != 0 {
				t.Fatalf("Receive while k-first is held = %v, want nothing", bodies(got))
			}
		}
		if err := r.Ack(ctx, &first); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		var next []sources.Message
		for deadline := time.Now().Add(20 * time.Second); len(next) == 0 && time.Now().Before(deadline); {
			var err error
			if next, err = r.Receive(ctx, 10, 2*time.Second, time.Now()); err != nil {
				t.Fatalf("Receive: %v", err)
			}
		}
		if diff := cmp.Diff([]string{"k-second"}, bodies(next)); diff != "" {
			t.Fatalf("Receive after the Ack mismatch (-want +got):\n%s", diff)
		}
		if err := r.Ack(ctx, &next[0]); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		mu.Lock()
		t.Logf("messages per Pull from the emulator: %v", fromEmulator)
		mu.Unlock()
	})

	t.Run("a missing subscription is not found", func(t *testing.T) {
		r := emulatorReceiver(ctx, t, "projects/"+emulatorProject+"/subscriptions/nope", "", nil)
		_, err := r.Receive(ctx, 1, time.Second, time.Now())
		t.Logf("Receive: %v", err)
		if !errors.Is(err, sources.ErrNotFound) {
			t.Errorf("Receive error = %v, want ErrNotFound", err)
		}
	})

	t.Run("a missing dead-letter topic is not found", func(t *testing.T) {
		topic, sub := createPair(ctx, t, c, "dl-missing", nil)
		publishMessage(ctx, t, c, topic, &pubsubpb.PubsubMessage{Data: []byte("work")})
		r := emulatorReceiver(ctx, t, sub, "projects/"+emulatorProject+"/topics/nope", nil)
		m := receiveOne(ctx, t, r)
		err := r.DeadLetter(ctx, &m, "failed", nil)
		t.Logf("DeadLetter: %v", err)
		if !errors.Is(err, sources.ErrNotFound) {
			t.Errorf("DeadLetter error = %v, want ErrNotFound", err)
		}
		// The failed publish did not acknowledge the message.
		if err := r.Release(ctx, &m, 0); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if n := peekCount(ctx, t, c, sub); n != 1 {
			t.Errorf("%d messages deliverable after the failed DeadLetter, want 1", n)
		}
	})

	t.Run("Close is idempotent and later calls fail", func(t *testing.T) {
		_, sub := createPair(ctx, t, c, "close", nil)
		r := emulatorReceiver(ctx, t, sub, "", nil)
		if _, err := r.Receive(ctx, 1, time.Second, time.Now()); err != nil {
			t.Fatalf("Receive: %v", err)
		}
		for range 2 {
			if err := r.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
		if _, err := r.Receive(ctx, 1, time.Second, time.Now()); !errors.Is(err, errReceiverClosed) {
			t.Errorf("Receive after Close: error = %v, want %v", err, errReceiverClosed)
		}
	})
}

// observedAPI reports every Pull, before it is made and with the number of messages it returned, and passes every
// call on.
type observedAPI struct {
	ReceiverAPI
	beforePull func()
	afterPull  func(messages int)
}

func (o *observedAPI) Pull(ctx context.Context, req *pubsubpb.PullRequest) (*pubsubpb.PullResponse, error) {
	if o.beforePull != nil {
		o.beforePull()
	}
	resp, err := o.ReceiverAPI.Pull(ctx, req)
	if o.afterPull != nil && err == nil {
		o.afterPull(len(resp.GetReceivedMessages()))
	}
	return resp, err
}

// emulatorClient returns a Pub/Sub client of the emulator that PUBSUB_EMULATOR_HOST names, closed when the test ends.
func emulatorClient(ctx context.Context, t *testing.T) *gpubsub.Client {
	t.Helper()
	c, err := gpubsub.NewClient(ctx, emulatorProject)
	if err != nil {
		t.Fatalf("creating Pub/Sub client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// emulatorReceiver builds a Receiver of sub through NewReceiver (the trigger's service account key is not used with
// the emulator), closed when the test ends. wrap, when not nil, wraps its API before the first call.
func emulatorReceiver(ctx context.Context, t *testing.T, sub, deadLetter string, wrap func(ReceiverAPI) ReceiverAPI) *Receiver {
	t.Helper()
	recv, err := NewReceiver(ctx, trigger(sourcetest.WithMetadata("subscriptionName", sub)), deadLetter)
	if err != nil {
		t.Fatalf("NewReceiver: %v", err)
	}
	t.Cleanup(func() { _ = recv.Close() })
	r, ok := recv.(*Receiver)
	if !ok {
		t.Fatalf("NewReceiver() = %T, want *Receiver", recv)
	}
	if wrap != nil {
		r.api = wrap(r.api)
	}
	return r
}

// createPair creates the topic <name>-topic and its subscription <name>-sub with a 10 s ack deadline, changed by
// change, and returns their full names.
func createPair(ctx context.Context, t *testing.T, c *gpubsub.Client, name string, change func(*pubsubpb.Subscription)) (topic, sub string) {
	t.Helper()
	topic = "projects/" + emulatorProject + "/topics/" + name + "-topic"
	sub = "projects/" + emulatorProject + "/subscriptions/" + name + "-sub"
	if _, err := c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
	s := &pubsubpb.Subscription{Name: sub, Topic: topic, AckDeadlineSeconds: 10}
	if change != nil {
		change(s)
	}
	if _, err := c.SubscriptionAdminClient.CreateSubscription(ctx, s); err != nil {
		t.Fatalf("creating subscription %s: %v", sub, err)
	}
	return topic, sub
}

// publishMessage publishes m to topic.
func publishMessage(ctx context.Context, t *testing.T, c *gpubsub.Client, topic string, m *pubsubpb.PubsubMessage) {
	t.Helper()
	if _, err := c.TopicAdminClient.Publish(ctx, &pubsubpb.PublishRequest{Topic: topic, Messages: []*pubsubpb.PubsubMessage{m}}); err != nil {
		t.Fatalf("publishing %q to %s: %v", m.GetData(), topic, err)
	}
}

// receiveOne receives exactly one message through r, waiting up to 5 s.
func receiveOne(ctx context.Context, t *testing.T, r sources.Receiver) sources.Message {
	t.Helper()
	msgs, err := r.Receive(ctx, 10, 5*time.Second, time.Now())
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("Receive = %v, want one message", bodies(msgs))
	}
	return msgs[0]
}

// pullOne pulls exactly one message straight from sub, within 10 s, and acknowledges it.
func pullOne(ctx context.Context, t *testing.T, c *gpubsub.Client, sub string) *pubsubpb.PubsubMessage {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		got, err := pull(ctx, c, sub, 10)
		if err != nil {
			t.Fatalf("pulling from %s: %v", sub, err)
		}
		if len(got) == 0 {
			continue
		}
		if len(got) != 1 {
			t.Fatalf("pulled %d messages from %s, want 1", len(got), sub)
		}
		if err := c.SubscriptionAdminClient.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: sub,
			AckIds: []string{got[0].GetAckId()}}); err != nil {
			t.Fatalf("acknowledging on %s: %v", sub, err)
		}
		return got[0].GetMessage()
	}
	t.Fatalf("no message on %s within 10 s", sub)
	return nil
}
