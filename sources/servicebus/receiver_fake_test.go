package servicebus

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/google/go-cmp/cmp"

	"github.com/kubedispatch/kubedispatch/internal/sbfake"
	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
	"github.com/kubedispatch/kubedispatch/sources"
)

// These tests run the Receiver with the real azservicebus client against the AMQP fake (internal/sbfake), which
// enforces lock expiry.

const (
	fakeKeyName = "dispatcher"
	fakeKey     = "ZmFrZS1rZXktZm9yLXRlc3Rz"
)

type fakeQueue struct {
	t    *testing.T
	fake *sbfake.Fake
	name string
}

func newFakeQueue(t *testing.T, fake *sbfake.Fake, name string, lock time.Duration, maxDelivery int) *fakeQueue {
	t.Helper()
	if err := fake.Control.CreateQueue(name, lock, maxDelivery); err != nil {
		t.Fatalf("creating queue %s: %v", name, err)
	}
	return &fakeQueue{t: t, fake: fake, name: name}
}

func (q *fakeQueue) send(bodies ...string) {
	q.t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(q.fake.ConnectionString(fakeKeyName, fakeKey), nil)
	if err != nil {
		q.t.Fatalf("client: %v", err)
	}
	defer c.Close(context.Background())
	s, err := c.NewSender(q.name, nil)
	if err != nil {
		q.t.Fatalf("sender: %v", err)
	}
	defer s.Close(context.Background())
	for _, b := range bodies {
		if err := s.SendMessage(q.t.Context(), &azservicebus.Message{Body: []byte(b), ApplicationProperties: map[string]any{"tenant": "acme"}}, nil); err != nil {
			q.t.Fatalf("sending %q: %v", b, err)
		}
	}
}

func (q *fakeQueue) receiver(key string) sources.Receiver {
	q.t.Helper()
	cfg := trigger(sourcetest.WithMetadata("queueName", q.name), sourcetest.WithEnv("SB_CONN", q.fake.ConnectionString(fakeKeyName, key)))
	r, err := NewReceiver(q.t.Context(), cfg, "")
	if err != nil {
		q.t.Fatalf("NewReceiver: %v", err)
	}
	q.t.Cleanup(func() { _ = r.Close() })
	return r
}

func (q *fakeQueue) stats() sbfake.Stats {
	q.t.Helper()
	s, err := q.fake.Control.Stats(q.name)
	if err != nil {
		q.t.Fatalf("stats: %v", err)
	}
	return s
}

// receiveN receives until n messages arrived (the fake may hand them out over several calls).
func receiveN(t *testing.T, r sources.Receiver, n int) []sources.Message {
	t.Helper()
	var got []sources.Message
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		msgs, err := r.Receive(t.Context(), n-len(got), 2*time.Second, time.Now())
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		got = append(got, msgs...)
	}
	if len(got) != n {
		t.Fatalf("received %d messages, want %d", len(got), n)
	}
	return got
}

func TestReceiverOnFake(t *testing.T) {
	fake := sbfake.Start(t)
	if err := fake.Control.SetKey(fakeKeyName, fakeKey); err != nil {
		t.Fatalf("SetKey: %v", err)
	}

	t.Run("receive, complete, abandon, dead-letter", func(t *testing.T) {
		q := newFakeQueue(t, fake, "settle", 10*time.Second, 10)
		q.send("a", "b", "c")
		r := q.receiver(fakeKey)
		msgs := receiveN(t, r, 3)
		var ids, bodies []string
		for _, m := range msgs {
			ids, bodies = append(ids, m.ID), append(bodies, string(m.Body))
			if m.Queue != "sb://"+fake.AMQPAddr+"/settle" || m.Attributes["tenant"] != "acme" || m.ReceiveCount != 1 || m.EnqueuedAt.IsZero() {
				t.Errorf("message %s: queue %q attributes %v receive count %d enqueued %v", m.ID, m.Queue, m.Attributes, m.ReceiveCount, m.EnqueuedAt)
			}
		}
		if diff := cmp.Diff([]string{"1", "2", "3"}, ids); diff != "" {
			t.Errorf("IDs (sequence numbers) (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"a", "b", "c"}, bodies); diff != "" {
			t.Errorf("bodies (-want +got):\n%s", diff)
		}
		if got := r.Lease(); got != 10*time.Second {
			t.Errorf("Lease() = %v, want the queue's lock duration 10s", got)
		}
		if err := r.Ack(t.Context(), &msgs[0]); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		if err := r.DeadLetter(t.Context(), &msgs[1], "all 3 deliveries failed", map[string]string{"kubedispatch-scaledjob": "ns/etl", "kubedispatch-deliveries": "3"}); err != nil {
			t.Fatalf("DeadLetter: %v", err)
		}
		if err := r.Release(t.Context(), &msgs[2], 0); err != nil {
			t.Fatalf("Release: %v", err)
		}
		again := receiveN(t, r, 1)
		if again[0].ID != "3" || again[0].ReceiveCount != 2 {
			t.Errorf("after Release: message %s with receive count %d, want message 3 with 2", again[0].ID, again[0].ReceiveCount)
		}
		dead, err := fake.Control.DeadLetters("settle")
		if err != nil {
			t.Fatalf("DeadLetters: %v", err)
		}
		if len(dead) != 1 || dead[0].Body != "b" || dead[0].DeadLetterReason != "all 3 deliveries failed" ||
			!strings.Contains(dead[0].DeadLetterErrorDescription, "ScaledJob ns/etl after 3 Job attempt(s)") ||
			dead[0].ApplicationProperties[ReasonProperty] != "all 3 deliveries failed" || dead[0].ApplicationProperties["tenant"] != "acme" {
			t.Errorf("dead letters = %+v, want b with the reason, description and properties", dead)
		}
		if s := q.stats(); s.Completed != 1 || s.DeadLettered != 1 || s.Locked != 1 {
			t.Errorf("stats %+v, want 1 completed, 1 dead-lettered, 1 locked", s)
		}
	})

	t.Run("renewal holds the lock past its duration; a missed one loses it", func(t *testing.T) {
		q := newFakeQueue(t, fake, "renew", time.Second, 10)
		q.send("held", "dropped")
		r := q.receiver(fakeKey)
		msgs := receiveN(t, r, 2)
		// Renew every 300 ms (the cadence under test) until three lock durations have passed.
		start := time.Now()
		renew := time.NewTicker(300 * time.Millisecond)
		defer renew.Stop()
		for range renew.C {
			if _, err := r.Extend(t.Context(), &msgs[0], time.Now()); err != nil {
				t.Fatalf("Extend after %v: %v", time.Since(start), err)
			}
			if time.Since(start) >= 3*time.Second {
				break
			}
		}
		if _, err := r.Extend(t.Context(), &msgs[1], time.Now()); !errors.Is(err, sources.ErrLeaseLost) {
			t.Errorf("Extend of the message not renewed for 3s: error = %v, want ErrLeaseLost", err)
		}
		if err := r.Ack(t.Context(), &msgs[0]); err != nil {
			t.Errorf("Ack of the renewed message: %v", err)
		}
		if s := q.stats(); s.Completed != 1 || s.LockExpired != 1 {
			t.Errorf("stats %+v, want 1 completed and 1 expired lock", s)
		}
	})

	t.Run("a delayed release holds the lock for the delay, then abandons", func(t *testing.T) {
		q := newFakeQueue(t, fake, "delayed", time.Second, 10)
		q.send("later")
		r := q.receiver(fakeKey)
		msgs := receiveN(t, r, 1)
		released := time.Now()
		if err := r.Release(t.Context(), &msgs[0], 2500*time.Millisecond); err != nil {
			t.Fatalf("Release: %v", err)
		}
		again := receiveN(t, r, 1)
		if waited := time.Since(released); waited < 2*time.Second {
			t.Errorf("redelivered %v after a release with a delay of 2.5s", waited)
		}
		if again[0].ReceiveCount != 2 {
			t.Errorf("receive count %d after the delayed release, want 2", again[0].ReceiveCount)
		}
		if s := q.stats(); s.LockExpired != 0 || s.Abandoned != 1 {
			t.Errorf("stats %+v, want 1 abandon and no expired lock (the lock was renewed during the delay)", s)
		}
	})

	t.Run("a rebuilt receiver settles what an earlier one received", func(t *testing.T) {
		q := newFakeQueue(t, fake, "rebuilt", 10*time.Second, 10)
		q.send("x")
		first := q.receiver(fakeKey)
		msgs := receiveN(t, first, 1)
		if err := first.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		second := q.receiver(fakeKey)
		if _, err := second.Extend(t.Context(), &msgs[0], time.Now()); err != nil {
			t.Fatalf("Extend through the second receiver: %v", err)
		}
		if err := second.Ack(t.Context(), &msgs[0]); err != nil {
			t.Fatalf("Ack through the second receiver: %v", err)
		}
		if s := q.stats(); s.Completed != 1 || s.Locked != 0 {
			t.Errorf("stats %+v, want 1 completed", s)
		}
	})

	t.Run("errors", func(t *testing.T) {
		q := newFakeQueue(t, fake, "errs", 10*time.Second, 10)
		q.send("untouched")
		tests := map[string]struct {
			recv func() sources.Receiver
			want error
		}{
			"the entity does not exist": {recv: func() sources.Receiver {
				return (&fakeQueue{t: t, fake: fake, name: "does-not-exist"}).receiver(fakeKey)
			}, want: sources.ErrNotFound},
			"the key is refused": {recv: func() sources.Receiver { return q.receiver("d3Jvbmcta2V5") }, want: sources.ErrUnauthorized},
		}
		for name, tc := range tests {
			t.Run(name, func(t *testing.T) {
				_, err := tc.recv().Receive(t.Context(), 1, 2*time.Second, time.Now())
				if !errors.Is(err, tc.want) {
					t.Errorf("Receive error = %v, want %v", err, tc.want)
				}
				if err != nil && strings.Contains(err.Error(), fakeKey) {
					t.Errorf("error quotes the key: %v", err)
				}
			})
		}
		if s := q.stats(); s.Active != 1 {
			t.Errorf("stats %+v, want the message untouched", s)
		}
	})
}
