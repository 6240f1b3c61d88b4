package sbfake_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"
	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubedispatch/kubedispatch/internal/sbfake"
)

// opTimeout bounds each client call; generous for a loaded 2-core machine.
const opTimeout = 10 * time.Second

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newClient returns an azservicebus client for the fake, closed when the test ends. Retries are few and short so
// that failures show quickly.
func newClient(t *testing.T, f *sbfake.Fake, keyName, key string) *azservicebus.Client {
	t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(f.ConnectionString(keyName, key), &azservicebus.ClientOptions{
		RetryOptions: azservicebus.RetryOptions{MaxRetries: 1, RetryDelay: 50 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatalf("creating client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func send(t *testing.T, c *azservicebus.Client, entity string, msgs ...*azservicebus.Message) {
	t.Helper()
	s, err := c.NewSender(entity, nil)
	if err != nil {
		t.Fatalf("creating sender for %s: %v", entity, err)
	}
	defer s.Close(context.Background())
	for _, m := range msgs {
		if err := s.SendMessage(ctxFor(t, opTimeout), m, nil); err != nil {
			t.Fatalf("sending to %s: %v", entity, err)
		}
	}
}

func text(id, body string) *azservicebus.Message {
	return &azservicebus.Message{MessageID: &id, Body: []byte(body)}
}

func queueReceiver(t *testing.T, c *azservicebus.Client, queue string, opts *azservicebus.ReceiverOptions) *azservicebus.Receiver {
	t.Helper()
	r, err := c.NewReceiverForQueue(queue, opts)
	if err != nil {
		t.Fatalf("creating receiver for %s: %v", queue, err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

// receiveOne waits up to d for one message.
func receiveOne(t *testing.T, r *azservicebus.Receiver, d time.Duration) *azservicebus.ReceivedMessage {
	t.Helper()
	msgs, err := r.ReceiveMessages(ctxFor(t, d), 1, nil)
	if err != nil {
		t.Fatalf("receiving: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("received %d messages, want 1", len(msgs))
	}
	return msgs[0]
}

// receiveNone checks that no message arrives within d.
func receiveNone(t *testing.T, r *azservicebus.Receiver, d time.Duration) {
	t.Helper()
	msgs, err := r.ReceiveMessages(ctxFor(t, d), 1, nil)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("receiving: %v", err)
	}
	if len(msgs) != 0 {
		t.Fatalf("received %q (delivery count %d), want nothing", msgs[0].Body, msgs[0].DeliveryCount)
	}
}

// waitStats polls the entity's counters until ok accepts them.
func waitStats(t *testing.T, f *sbfake.Fake, entity string, what string, ok func(sbfake.Stats) bool) sbfake.Stats {
	t.Helper()
	var s sbfake.Stats
	err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, opTimeout, true, func(context.Context) (bool, error) {
		var err error
		s, err = f.Control.Stats(entity)
		return err == nil && ok(s), err
	})
	if err != nil {
		t.Fatalf("waiting for %s on %s: %v (stats %+v)", what, entity, err, s)
	}
	return s
}

func stats(t *testing.T, f *sbfake.Fake, entity string) sbfake.Stats {
	t.Helper()
	s, err := f.Control.Stats(entity)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustCreateQueue(t *testing.T, f *sbfake.Fake, name string, lock time.Duration, maxDelivery int) {
	t.Helper()
	if err := f.Control.CreateQueue(name, lock, maxDelivery); err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, err error, code azservicebus.Code) {
	t.Helper()
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) || sbErr.Code != code {
		t.Fatalf("got error %T %v, want *azservicebus.Error with code %q", err, err, code)
	}
}

func TestSendReceiveComplete(t *testing.T) {
	t.Parallel()
	f := sbfake.Start(t)
	mustCreateQueue(t, f, "jobs", 0, 0)
	c := newClient(t, f, "any", "any")

	contentType, correlation, subject := "application/json", "corr-1", "build"
	send(t, c, "jobs", &azservicebus.Message{
		MessageID:     strPtr("m-1"),
		Body:          []byte(`{"n":1}`),
		ContentType:   &contentType,
		CorrelationID: &correlation,
		Subject:       &subject,
		ApplicationProperties: map[string]any{
			"tenant": "acme", "attempt": int64(3), "urgent": true, "at": time.UnixMilli(1700000000123).UTC(),
		},
	}, text("m-2", "second"))

	r := queueReceiver(t, c, "jobs", nil)
	before := time.Now()
	m := receiveOne(t, r, opTimeout)
	if string(m.Body) != `{"n":1}` || m.MessageID != "m-1" || m.DeliveryCount != 1 {
		t.Errorf("got body %q id %q delivery count %d, want {\"n\":1}, m-1, 1", m.Body, m.MessageID, m.DeliveryCount)
	}
	if m.SequenceNumber == nil || *m.SequenceNumber != 1 {
		t.Errorf("sequence number %v, want 1", m.SequenceNumber)
	}
	if m.ContentType == nil || *m.ContentType != contentType || m.CorrelationID == nil || *m.CorrelationID != correlation ||
		m.Subject == nil || *m.Subject != subject {
		t.Errorf("content type %v, correlation ID %v, subject %v: want %s, %s, %s", m.ContentType, m.CorrelationID, m.Subject, contentType, correlation, subject)
	}
	wantProps := map[string]any{"tenant": "acme", "attempt": int64(3), "urgent": true, "at": time.UnixMilli(1700000000123).UTC()}
	if diff := cmp.Diff(wantProps, m.ApplicationProperties); diff != "" {
		t.Errorf("application properties (-want +got):\n%s", diff)
	}
	if m.LockedUntil == nil || m.LockedUntil.Before(before.Add(25*time.Second)) || m.LockedUntil.After(time.Now().Add(31*time.Second)) {
		t.Errorf("locked until %v, want about 30 s from now", m.LockedUntil)
	}
	if m.EnqueuedTime == nil || time.Since(*m.EnqueuedTime) > time.Minute {
		t.Errorf("enqueued time %v, want just now", m.EnqueuedTime)
	}
	if m.LockToken == [16]byte{} {
		t.Error("lock token is empty")
	}
	if s := stats(t, f, "jobs"); s.Locked != 1 || s.Active != 1 {
		t.Errorf("stats %+v, want 1 locked and 1 active (one credit, one delivery)", s)
	}
	if err := r.CompleteMessage(ctxFor(t, opTimeout), m, nil); err != nil {
		t.Fatalf("completing: %v", err)
	}
	m2 := receiveOne(t, r, opTimeout)
	if string(m2.Body) != "second" || *m2.SequenceNumber != 2 {
		t.Errorf("second message %q seq %d, want \"second\" seq 2", m2.Body, *m2.SequenceNumber)
	}
	if err := r.CompleteMessage(ctxFor(t, opTimeout), m2, nil); err != nil {
		t.Fatalf("completing the second: %v", err)
	}
	if diff := cmp.Diff(sbfake.Stats{Completed: 2}, stats(t, f, "jobs")); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	done, err := f.Control.Completed("jobs")
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 2 || done[0].MessageID != "m-1" || done[0].Body != `{"n":1}` || done[0].DeliveryCount != 1 ||
		done[0].SequenceNumber != 1 || done[0].CompletedAt.IsZero() || done[1].MessageID != "m-2" {
		t.Errorf("completed %+v, want m-1 then m-2", done)
	}
}

func TestMessageWithoutIDGetsOne(t *testing.T) {
	t.Parallel()
	f := sbfake.Start(t)
	mustCreateQueue(t, f, "jobs", 0, 0)
	c := newClient(t, f, "any", "any")
	send(t, c, "jobs", &azservicebus.Message{Body: []byte("x")})
	m := receiveOne(t, queueReceiver(t, c, "jobs", nil), opTimeout)
	if m.MessageID == "" || m.DeliveryCount != 1 {
		t.Errorf("message ID %q, delivery count %d: want an ID assigned by the fake and 1", m.MessageID, m.DeliveryCount)
	}
}

func TestRenewKeepsMessageLocked(t *testing.T) {
	t.Parallel()
	f := sbfake.Start(t)
	mustCreateQueue(t, f, "jobs", time.Second, 0)
	c := newClient(t, f, "any", "any")
	send(t, c, "jobs", text("m-1", "work"))
	r := queueReceiver(t, c, "jobs", nil)
	m := receiveOne(t, r, opTimeout)
	first := *m.LockedUntil

	// Renew every 300 ms for 3 s (three lock durations) while another receiver waits for a redelivery.
	other := queueReceiver(t, newClient(t, f, "any", "any"), "jobs", nil)
	redelivered := make(chan []*azservicebus.ReceivedMessage, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		msgs, _ := other.ReceiveMessages(ctx, 1, nil)
		redelivered <- msgs
	}()
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); <-tick.C {
		if err := r.RenewMessageLock(ctxFor(t, opTimeout), m, nil); err != nil {
			t.Fatalf("renewing: %v", err)
		}
	}
	if msgs := <-redelivered; len(msgs) != 0 {
		t.Fatalf("message redelivered to another receiver (delivery count %d) while its lock was renewed", msgs[0].DeliveryCount)
	}
	if !m.LockedUntil.After(first.Add(2 * time.Second)) {
		t.Errorf("locked until %v after renewals, want later than %v + 2 s", m.LockedUntil, first)
	}
	if err := r.CompleteMessage(ctxFor(t, opTimeout), m, nil); err != nil {
		t.Fatalf("completing after renewals: %v", err)
	}
	s := stats(t, f, "jobs")
	if s.LockExpired != 0 || s.Completed != 1 || s.Renewals < 8 {
		t.Errorf("stats %+v, want no expired lock, 1 completed, about 10 renewals", s)
	}
}

func TestMissedRenewalRedeliversAndLosesLock(t *testing.T) {
	t.Parallel()
	f := sbfake.Start(t)
	c := newClient(t, f, "any", "any")
	// Each case needs a lock of its own: go-amqp settles a message once, and answers later settlements of the same
	// message with nil without asking the server.
	cases := map[string]func(context.Context, *azservicebus.Receiver, *azservicebus.ReceivedMessage) error{
		"complete": func(ctx context.Context, r *azservicebus.Receiver, m *azservicebus.ReceivedMessage) error {
			return r.CompleteMessage(ctx, m, nil)
		},
		"abandon": func(ctx context.Context, r *azservicebus.Receiver, m *azservicebus.ReceivedMessage) error {
			return r.AbandonMessage(ctx, m, nil)
		},
		"dead-letter": func(ctx context.Context, r *azservicebus.Receiver, m *azservicebus.ReceivedMessage) error {
			return r.DeadLetterMessage(ctx, m, nil)
		},
		"renew": func(ctx context.Context, r *azservicebus.Receiver, m *azservicebus.ReceivedMessage) error {
			return r.RenewMessageLock(ctx, m, nil)
		},
		"complete by lock token": func(ctx context.Context, r *azservicebus.Receiver, m *azservicebus.ReceivedMessage) error {
			return r.CompleteMessage(ctx, &azservicebus.ReceivedMessage{LockToken: m.LockToken}, nil)
		},
	}
	for name, settle := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			queue := strings.ReplaceAll(name, " ", "-")
			mustCreateQueue(t, f, queue, time.Second, 0)
			send(t, c, queue, text("m-1", "work"))
			r := queueReceiver(t, c, queue, nil)
			m := receiveOne(t, r, opTimeout)
			if err := r.RenewMessageLock(ctxFor(t, opTimeout), m, nil); err != nil {
				t.Fatalf("renewing: %v", err)
			}
			// No more renewals: the lock runs out about 1 s later and the message comes back.
			again := receiveOne(t, r, opTimeout)
			if again.MessageID != "m-1" || again.DeliveryCount != 2 || again.LockToken == m.LockToken {
				t.Fatalf("redelivery: id %q delivery count %d (same lock token: %v), want m-1, 2, a new token",
					again.MessageID, again.DeliveryCount, again.LockToken == m.LockToken)
			}
			err := settle(ctxFor(t, opTimeout), r, m)
			t.Logf("late %s: %T: %v", name, err, err)
			wantCode(t, err, azservicebus.CodeLockLost)
			if err := r.CompleteMessage(ctxFor(t, opTimeout), again, nil); err != nil {
				t.Fatalf("completing the redelivery: %v", err)
			}
			wantLate := 1
			if name == "renew" {
				wantLate = 0 // a renewal is not a settlement
			}
			if diff := cmp.Diff(sbfake.Stats{Completed: 1, LockExpired: 1, Renewals: 1, LateSettles: wantLate}, stats(t, f, queue)); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAbandonRaisesDeliveryCount(t *testing.T) {
	t.Parallel()
	f := sbfake.Start(t)
	mustCreateQueue(t, f, "jobs", 0, 0)
	c := newClient(t, f, "any", "any")
	send(t, c, "jobs", text("m-1", "work"))
	r := queueReceiver(t, c, "jobs", nil)
	m := receiveOne(t, r, opTimeout)
	if err := r.AbandonMessage(ctxFor(t, opTimeout), m, &azservicebus.AbandonMessageOptions{PropertiesToModify: map[string]any{"why": "busy", "tries": int64(1)}}); err != nil {
		t.Fatalf("abandoning: %v", err)
	}
	m = receiveOne(t, r, opTimeout)
	if m.DeliveryCount != 2 || m.ApplicationProperties["why"] != "busy" || m.ApplicationProperties["tries"] != int64(1) {
		t.Fatalf("after abandon: delivery count %d, properties %v; want 2 with why=busy, tries=1", m.DeliveryCount, m.ApplicationProperties)
	}
	// Abandon on the management link (a message built from the lock token) counts too.
	if err := r.AbandonMessage(ctxFor(t, opTimeout), &azservicebus.ReceivedMessage{LockToken: m.LockToken}, &azservicebus.AbandonMessageOptions{PropertiesToModify: map[string]any{"why": "still busy"}}); err != nil {
		t.Fatalf("abandoning by lock token: %v", err)
	}
	m = receiveOne(t, r, opTimeout)
	if m.DeliveryCount != 3 || m.ApplicationProperties["why"] != "still busy" {
		t.Fatalf("after abandon by lock token: delivery count %d, properties %v; want 3 with why=still busy", m.DeliveryCount, m.ApplicationProperties)
	}
	if s := stats(t, f, "jobs"); s.Abandoned != 2 || s.Locked != 1 {
		t.Errorf("stats %+v, want 2 abandoned, 1 locked", s)
	}
}

func TestMaxDeliveryCountDeadLetters(t *testing.T) {
	t.Parallel()
	f := sbfake.Start(t)
	mustCreateQueue(t, f, "jobs", time.Second, 3)
	c := newClient(t, f, "any", "any")
	send(t, c, "jobs", &azservicebus.Message{MessageID: strPtr("m-1"), Body: []byte("poison"), ApplicationProperties: map[string]any{"k": "v"}})
	r := queueReceiver(t, c, "jobs", nil)
	// Delivery 1 abandoned, delivery 2 abandoned, delivery 3 left to expire: that is three deliveries.
	for want := int64(1); want <= 3; want++ {
		m := receiveOne(t, r, opTimeout)
		if int64(m.DeliveryCount) != want {
			t.Fatalf("delivery count %d, want %d", m.DeliveryCount, want)
		}
		if want < 3 {
			if err := r.AbandonMessage(ctxFor(t, opTimeout), m, nil); err != nil {
				t.Fatalf("abandoning: %v", err)
			}
		}
	}
	waitStats(t, f, "jobs", "the message to be dead-lettered", func(s sbfake.Stats) bool { return s.DeadLettered == 1 })
	receiveNone(t, r, 300*time.Millisecond)

	dlq := queueReceiver(t, c, "jobs", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	m := receiveOne(t, dlq, opTimeout)
	if m.MessageID != "m-1" || string(m.Body) != "poison" || m.ApplicationProperties["k"] != "v" ||
		m.DeadLetterReason == nil || *m.DeadLetterReason != "MaxDeliveryCountExceeded" ||
		m.DeadLetterSource == nil || *m.DeadLetterSource != "jobs" {
		t.Errorf("dead letter: id %q body %q props %v reason %v source %v", m.MessageID, m.Body, m.ApplicationProperties, deref(m.DeadLetterReason), deref(m.DeadLetterSource))
	}
	dl, err := f.Control.DeadLetters("jobs")
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 1 || dl[0].DeadLetterReason != "MaxDeliveryCountExceeded" || dl[0].DeliveryCount != 3 || dl[0].MessageID != "m-1" {
		t.Errorf("dead letters from the control API: %+v, want m-1, MaxDeliveryCountExceeded, 3 deliveries", dl)
	}
}

func TestDeadLetterWithReason(t *testing.T) {
	t.Parallel()
	f := sbfake.Start(t)
	c := newClient(t, f, "any", "any")
	cases := map[string]struct {
		byLockToken bool
	}{
		"on the receive link":    {},
		"on the management link": {byLockToken: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			queue := strings.ReplaceAll(name, " ", "-")
			mustCreateQueue(t, f, queue, 0, 0)
			send(t, c, queue, &azservicebus.Message{MessageID: strPtr("m-1"), Body: []byte("bad input"), ApplicationProperties: map[string]any{"tenant": "acme"}})
			r := queueReceiver(t, c, queue, nil)
			m := receiveOne(t, r, opTimeout)
			if tc.byLockToken {
				m = &azservicebus.ReceivedMessage{LockToken: m.LockToken}
			}
			reason, desc := "JobFailed", "job x failed: exit code 1"
			if err := r.DeadLetterMessage(ctxFor(t, opTimeout), m, &azservicebus.DeadLetterOptions{
				Reason: &reason, ErrorDescription: &desc, PropertiesToModify: map[string]any{"job": "x"},
			}); err != nil {
				t.Fatalf("dead-lettering: %v", err)
			}
			dlq := queueReceiver(t, c, queue, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
			got := receiveOne(t, dlq, opTimeout)
			if got.MessageID != "m-1" || string(got.Body) != "bad input" || deref(got.DeadLetterReason) != reason ||
				deref(got.DeadLetterErrorDescription) != desc || got.ApplicationProperties["tenant"] != "acme" || got.ApplicationProperties["job"] != "x" {
				t.Errorf("from the dead-letter queue: id %q body %q reason %q description %q props %v", got.MessageID, got.Body,
					deref(got.DeadLetterReason), deref(got.DeadLetterErrorDescription), got.ApplicationProperties)
			}
			dl, err := f.Control.DeadLetters(queue)
			if err != nil {
				t.Fatal(err)
			}
			want := []sbfake.DeadLetter{{
				SequenceNumber: 1, MessageID: "m-1", Body: "bad input", DeliveryCount: 1, DeadLetterReason: reason, DeadLetterErrorDescription: desc,
				ApplicationProperties: map[string]any{"tenant": "acme", "job": "x", "DeadLetterReason": reason, "DeadLetterErrorDescription": desc},
			}}
			if diff := cmp.Diff(want, dl); diff != "" {
				t.Errorf("dead letters from the control API (-want +got):\n%s", diff)
			}
			if err := dlq.CompleteMessage(ctxFor(t, opTimeout), got, nil); err != nil {
				t.Fatalf("completing from the dead-letter queue: %v", err)
			}
			if s := stats(t, f, queue); s.DeadLettered != 0 || s.Active != 0 || s.Locked != 0 {
				t.Errorf("stats %+v, want all empty", s)
			}
		})
	}
}

// A receiver rebuilt after a restart settles messages received by an earlier one with only their lock tokens.
func TestSettleByLockTokenFromAnotherClient(t *testing.T) {
	t.Parallel()
	f := sbfake.Start(t)
	cases := map[string]struct {
		settle func(context.Context, *azservicebus.Receiver, *azservicebus.ReceivedMessage) error
		want   sbfake.Stats
	}{
		"complete": {
			settle: func(ctx context.Context, r *azservicebus.Receiver, m *azservicebus.ReceivedMessage) error {
				return r.CompleteMessage(ctx, m, nil)
			},
			want: sbfake.Stats{Completed: 1},
		},
		"abandon": {
			settle: func(ctx context.Context, r *azservicebus.Receiver, m *azservicebus.ReceivedMessage) error {
				return r.AbandonMessage(ctx, m, nil)
			},
			want: sbfake.Stats{Active: 1, Abandoned: 1},
		},
		"dead-letter": {
			settle: func(ctx context.Context, r *azservicebus.Receiver, m *azservicebus.ReceivedMessage) error {
				return r.DeadLetterMessage(ctx, m, &azservicebus.DeadLetterOptions{Reason: strPtr("r")})
			},
			want: sbfake.Stats{DeadLettered: 1},
		},
		"renew, then complete": {
			settle: func(ctx context.Context, r *azservicebus.Receiver, m *azservicebus.ReceivedMessage) error {
				if err := r.RenewMessageLock(ctx, m, nil); err != nil {
					return err
				}
				return r.CompleteMessage(ctx, m, nil)
			},
			want: sbfake.Stats{Completed: 1, Renewals: 1},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			queue := strings.ReplaceAll(name, " ", "")
			queue = strings.ReplaceAll(queue, ",", "")
			mustCreateQueue(t, f, queue, 0, 0)
			first := newClient(t, f, "any", "any")
			send(t, first, queue, text("m-1", "work"))
			m := receiveOne(t, queueReceiver(t, first, queue, nil), opTimeout)
			// The first client goes away; its lock stays.
			if err := first.Close(ctxFor(t, opTimeout)); err != nil {
				t.Fatalf("closing the first client: %v", err)
			}
			second := queueReceiver(t, newClient(t, f, "any", "any"), queue, nil)
			if err := tc.settle(ctxFor(t, opTimeout), second, &azservicebus.ReceivedMessage{LockToken: m.LockToken}); err != nil {
				t.Fatalf("settling by lock token from a second client: %v", err)
			}
			if diff := cmp.Diff(tc.want, stats(t, f, queue)); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCreditsAndClosedReceiversKeepLocks(t *testing.T) {
	t.Parallel()
	f := sbfake.Start(t)
	mustCreateQueue(t, f, "jobs", time.Second, 0)
	c := newClient(t, f, "any", "any")
	send(t, c, "jobs", text("m-1", "a"), text("m-2", "b"), text("m-3", "c"))
	r, err := c.NewReceiverForQueue("jobs", nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := r.ReceiveMessages(ctxFor(t, opTimeout), 2, nil)
	if err != nil || len(msgs) == 0 {
		t.Fatalf("receiving: %d messages, %v", len(msgs), err)
	}
	got := len(msgs)
	// With 2 credits at most 2 are delivered; one that arrives after ReceiveMessages returned is released.
	waitStats(t, f, "jobs", "only the received messages locked", func(s sbfake.Stats) bool { return s.Locked == got && s.Active == 3-got })
	if err := r.Close(ctxFor(t, opTimeout)); err != nil {
		t.Fatalf("closing receiver: %v", err)
	}
	if s := stats(t, f, "jobs"); s.Locked != got {
		t.Errorf("stats %+v right after the receiver closed, want its %d messages still locked", s, got)
	}
	s := waitStats(t, f, "jobs", "the locks to expire", func(s sbfake.Stats) bool { return s.Locked == 0 })
	if s.Active != 3 || s.LockExpired != got {
		t.Errorf("stats %+v after the locks expired, want 3 active, %d expired", s, got)
	}
}

// A message that reaches the client after ReceiveMessages returned is released by the client's releaser: it goes back
// at once, and its delivery count does not go up.
func TestReleasedMessageComesBackUncounted(t *testing.T) {
	t.Parallel()
	f := sbfake.Start(t)
	mustCreateQueue(t, f, "jobs", 0, 0)
	c := newClient(t, f, "any", "any")
	send(t, c, "jobs", text("m-1", "a"))
	r := queueReceiver(t, c, "jobs", nil)
	msgs, err := r.ReceiveMessages(ctxFor(t, opTimeout), 5, nil) // returns soon after the first message, 4 credits left
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receiving: %d messages, %v; want 1", len(msgs), err)
	}
	send(t, c, "jobs", text("m-2", "b"))
	waitStats(t, f, "jobs", "m-2 to be delivered and released", func(s sbfake.Stats) bool { return s.Active == 1 && s.Locked == 1 })
	other := queueReceiver(t, newClient(t, f, "any", "any"), "jobs", nil)
	m := receiveOne(t, other, opTimeout)
	if m.MessageID != "m-2" || m.DeliveryCount != 1 {
		t.Errorf("after release: id %q delivery count %d, want m-2 and 1", m.MessageID, m.DeliveryCount)
	}
	if s := stats(t, f, "jobs"); s.Abandoned != 0 || s.LockExpired != 0 {
		t.Errorf("stats %+v: a release is neither an abandon nor an expiry", s)
	}
}

func TestUnknownEntity(t *testing.T) {
	t.Parallel()
	f := sbfake.Start(t)
	if err := f.Control.CreateTopic("events"); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, f, "any", "any")
	cases := map[string]func(context.Context) error{
		"receive from a queue": func(ctx context.Context) error {
			r, err := c.NewReceiverForQueue("nope", nil)
			if err != nil {
				return err
			}
			defer r.Close(context.Background())
			_, err = r.ReceiveMessages(ctx, 1, nil)
			return err
		},
		"receive from a subscription": func(ctx context.Context) error {
			r, err := c.NewReceiverForSubscription("events", "nope", nil)
			if err != nil {
				return err
			}
			defer r.Close(context.Background())
			_, err = r.ReceiveMessages(ctx, 1, nil)
			return err
		},
		"send": func(ctx context.Context) error {
			s, err := c.NewSender("nope", nil)
			if err != nil {
				return err
			}
			defer s.Close(context.Background())
			return s.SendMessage(ctx, text("m", "x"), nil)
		},
	}
	for name, op := range cases {
		t.Run(name, func(t *testing.T) {
			err := op(ctxFor(t, opTimeout))
			t.Logf("azservicebus returned %T: %v", err, err)
			// azservicebus passes the attach error on as it is: no *azservicebus.Error, no CodeNotFound.
			var amqpErr *amqp.Error
			if !errors.As(err, &amqpErr) || amqpErr.Condition != amqp.ErrCondNotFound || !strings.Contains(amqpErr.Description, "could not be found") {
				t.Fatalf("got %T %v, want an *amqp.Error with condition amqp:not-found", err, err)
			}
			var sbErr *azservicebus.Error
			if errors.As(err, &sbErr) {
				t.Errorf("got an *azservicebus.Error with code %q; azservicebus v1.11.0 was seen to return the bare *amqp.Error", sbErr.Code)
			}
			var linkErr *amqp.LinkError
			if errors.As(err, &linkErr) {
				t.Errorf("got an *amqp.LinkError; azservicebus v1.11.0 was seen to return the bare *amqp.Error")
			}
		})
	}
}

func TestManagementOnDeletedEntity(t *testing.T) {
	t.Parallel()
	f := sbfake.Start(t)
	mustCreateQueue(t, f, "jobs", 0, 0)
	c := newClient(t, f, "any", "any")
	send(t, c, "jobs", text("m-1", "x"))
	r := queueReceiver(t, c, "jobs", nil)
	m := receiveOne(t, r, opTimeout)
	if err := f.Control.DeleteEntity("jobs"); err != nil {
		t.Fatal(err)
	}
	err := r.RenewMessageLock(ctxFor(t, opTimeout), &azservicebus.ReceivedMessage{LockToken: m.LockToken}, nil)
	t.Logf("renewing on a deleted queue: %T: %v", err, err)
	wantCode(t, err, azservicebus.CodeNotFound)
}

func TestSASKeys(t *testing.T) {
	t.Parallel()
	f := sbfake.Start(t)
	mustCreateQueue(t, f, "jobs", 0, 0)
	if err := f.Control.SetKey("dispatcher", "c2VjcmV0LWtleQ=="); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		keyName, key string
		wantErr      bool
	}{
		"registered key":   {keyName: "dispatcher", key: "c2VjcmV0LWtleQ=="},
		"wrong key":        {keyName: "dispatcher", key: "d3Jvbmc=", wantErr: true},
		"unknown key name": {keyName: "other", key: "c2VjcmV0LWtleQ==", wantErr: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := newClient(t, f, tc.keyName, tc.key)
			s, err := c.NewSender("jobs", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			err = s.SendMessage(ctxFor(t, opTimeout), text("m", "x"), nil)
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("sending with the registered key: %v", err)
				}
				r := queueReceiver(t, c, "jobs", nil)
				m := receiveOne(t, r, opTimeout)
				if err := r.CompleteMessage(ctxFor(t, opTimeout), m, nil); err != nil {
					t.Fatalf("completing with the registered key: %v", err)
				}
				return
			}
			t.Logf("azservicebus returned %T: %v", err, err)
			wantCode(t, err, azservicebus.CodeUnauthorizedAccess)
			r := queueReceiver(t, c, "jobs", nil)
			_, err = r.ReceiveMessages(ctxFor(t, opTimeout), 1, nil)
			wantCode(t, err, azservicebus.CodeUnauthorizedAccess)
		})
	}
}

func TestCompletionHook(t *testing.T) {
	t.Parallel()
	f := sbfake.Start(t)
	var (
		mu      sync.Mutex
		calls   []sbfake.Completion
		during  []sbfake.Stats
		release = make(chan struct{})
		called  = make(chan struct{}, 1)
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var call sbfake.Completion
		if err := json.NewDecoder(req.Body).Decode(&call); err != nil {
			t.Errorf("decoding hook call: %v", err)
		}
		s, err := f.Control.Stats(call.Entity)
		if err != nil {
			t.Errorf("reading stats in the hook: %v", err)
		}
		mu.Lock()
		calls = append(calls, call)
		during = append(during, s)
		mu.Unlock()
		called <- struct{}{}
		select {
		case <-release:
		case <-req.Context().Done():
		}
	}))
	t.Cleanup(hook.Close)
	if err := f.Control.SetHook(hook.URL); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, f, "any", "any")
	cases := map[string]struct {
		byLockToken bool
	}{
		"on the receive link":    {},
		"on the management link": {byLockToken: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			queue := strings.ReplaceAll(name, " ", "-")
			mustCreateQueue(t, f, queue, 0, 0)
			send(t, c, queue, text("m-1", "job"))
			r := queueReceiver(t, c, queue, nil)
			m := receiveOne(t, r, opTimeout)
			if tc.byLockToken {
				m = &azservicebus.ReceivedMessage{LockToken: m.LockToken}
			}
			done := make(chan error, 1)
			go func() { done <- r.CompleteMessage(ctxFor(t, opTimeout), m, nil) }()
			select {
			case <-called:
			case err := <-done:
				t.Fatalf("CompleteMessage returned (%v) without calling the hook", err)
			case <-time.After(opTimeout):
				t.Fatal("the hook was not called")
			}
			select {
			case err := <-done:
				t.Fatalf("CompleteMessage returned (%v) before the hook answered", err)
			default:
			}
			release <- struct{}{}
			if err := <-done; err != nil {
				t.Fatalf("completing: %v", err)
			}
			mu.Lock()
			call, s := calls[len(calls)-1], during[len(during)-1]
			mu.Unlock()
			if diff := cmp.Diff(sbfake.Completion{Entity: queue, SequenceNumber: 1, MessageID: "m-1", Body: "job", DeliveryCount: 1}, call); diff != "" {
				t.Errorf("hook call (-want +got):\n%s", diff)
			}
			if s.Locked != 1 || s.Completed != 0 {
				t.Errorf("stats during the hook %+v, want the message still locked and not completed", s)
			}
			if s := stats(t, f, queue); s.Completed != 1 || s.Locked != 0 {
				t.Errorf("stats after completion %+v, want 1 completed", s)
			}
		})
	}
}

func TestTopicFanOut(t *testing.T) {
	t.Parallel()
	f := sbfake.Start(t)
	if err := f.Control.CreateTopic("events"); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"audit", "billing"} {
		if err := f.Control.CreateSubscription("events", sub, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Control.CreateSubscription("missing", "x", 0, 0); err == nil {
		t.Error("creating a subscription of a missing topic succeeded")
	}
	c := newClient(t, f, "any", "any")
	send(t, c, "events", text("e-1", "hello"))
	for _, sub := range []string{"audit", "billing"} {
		r, err := c.NewReceiverForSubscription("events", sub, nil)
		if err != nil {
			t.Fatal(err)
		}
		m := receiveOne(t, r, opTimeout)
		if m.MessageID != "e-1" || string(m.Body) != "hello" || m.DeliveryCount != 1 {
			t.Errorf("%s got id %q body %q delivery count %d", sub, m.MessageID, m.Body, m.DeliveryCount)
		}
		if sub == "audit" {
			if err := r.CompleteMessage(ctxFor(t, opTimeout), m, nil); err != nil {
				t.Fatalf("completing on %s: %v", sub, err)
			}
		} else if err := r.DeadLetterMessage(ctxFor(t, opTimeout), &azservicebus.ReceivedMessage{LockToken: m.LockToken}, &azservicebus.DeadLetterOptions{Reason: strPtr("nope")}); err != nil {
			t.Fatalf("dead-lettering on %s by lock token: %v", sub, err)
		}
		_ = r.Close(context.Background())
	}
	if s := stats(t, f, "events/subscriptions/audit"); s.Completed != 1 {
		t.Errorf("audit stats %+v, want 1 completed", s)
	}
	dl, err := f.Control.DeadLetters("events/Subscriptions/billing")
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 1 || dl[0].MessageID != "e-1" || dl[0].DeadLetterReason != "nope" {
		t.Errorf("billing dead letters %+v, want e-1 with reason nope", dl)
	}
	dlq, err := c.NewReceiverForSubscription("events", "billing", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close(context.Background())
	if m := receiveOne(t, dlq, opTimeout); m.MessageID != "e-1" || deref(m.DeadLetterSource) != "events/Subscriptions/billing" {
		t.Errorf("from billing's dead-letter queue: id %q source %q", m.MessageID, deref(m.DeadLetterSource))
	}
	if s := stats(t, f, "events"); s.Completed != 1 || s.DeadLettered != 1 {
		t.Errorf("topic stats %+v, want the subscriptions' sums", s)
	}
}

func TestReadPorts(t *testing.T) {
	cases := map[string]struct {
		output  string
		want    sbfake.Ports
		wantErr error
	}{
		"only the line":     {output: `{"amqpPort":5672,"controlPort":8080}` + "\n", want: sbfake.Ports{AMQP: 5672, Control: 8080}},
		"after a log line":  {output: "# node fake.js\n2026 starting\n" + `{"amqpPort":1,"controlPort":2}` + "\nlater\n", want: sbfake.Ports{AMQP: 1, Control: 2}},
		"no newline at end": {output: `{"amqpPort":1,"controlPort":2}`, want: sbfake.Ports{AMQP: 1, Control: 2}},
		"not printed yet":   {output: "# node fake.js\n", wantErr: sbfake.ErrNoPorts},
		"other JSON":        {output: `{"level":"info"}` + "\n", wantErr: sbfake.ErrNoPorts},
		"incomplete ports":  {output: `{"amqpPort":1}` + "\n", wantErr: sbfake.ErrNoPorts},
		"empty":             {output: "", wantErr: sbfake.ErrNoPorts},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := sbfake.ReadPorts(strings.NewReader(tc.output))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("ports %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestConnectionString(t *testing.T) {
	got := sbfake.ConnectionString("127.0.0.1:5672", "k", "s")
	want := "Endpoint=sb://127.0.0.1:5672/;SharedAccessKeyName=k;SharedAccessKey=s;UseDevelopmentEmulator=true"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func strPtr(s string) *string { return &s }

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
