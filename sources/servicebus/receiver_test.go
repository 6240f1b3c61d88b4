package servicebus

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"
	"github.com/google/go-cmp/cmp"

	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
	"github.com/kubedispatch/kubedispatch/sources"
)

// fakeAPI is a hand-written ReceiverAPI: ReceiveMessages returns the queued batches (or blocks until ctx ends when
// none is left), the settlement calls record what they were given and return the configured error.
type fakeAPI struct {
	mu       sync.Mutex
	batches  [][]*azservicebus.ReceivedMessage
	recvErr  error
	asked    []int
	calls    []string // "<op> <lock token hex>"
	settleEr map[string]error
	dead     []azservicebus.DeadLetterOptions
	closed   int
	// notify, when set, receives every call as it is recorded.
	notify chan string
}

func (f *fakeAPI) ReceiveMessages(ctx context.Context, n int, _ *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	f.mu.Lock()
	f.asked = append(f.asked, n)
	if f.recvErr != nil {
		err := f.recvErr
		f.mu.Unlock()
		return nil, err
	}
	if len(f.batches) > 0 {
		b := f.batches[0]
		f.batches = f.batches[1:]
		f.mu.Unlock()
		return b, nil
	}
	f.mu.Unlock()
	<-ctx.Done()
	return nil, ctx.Err()
}

func (f *fakeAPI) op(op string, msg *azservicebus.ReceivedMessage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	call := op + " " + hex.EncodeToString(msg.LockToken[:])
	f.calls = append(f.calls, call)
	if f.notify != nil {
		f.notify <- call
	}
	return f.settleEr[op]
}

func (f *fakeAPI) RenewMessageLock(_ context.Context, msg *azservicebus.ReceivedMessage, _ *azservicebus.RenewMessageLockOptions) error {
	return f.op("renew", msg)
}

func (f *fakeAPI) CompleteMessage(_ context.Context, msg *azservicebus.ReceivedMessage, _ *azservicebus.CompleteMessageOptions) error {
	return f.op("complete", msg)
}

func (f *fakeAPI) AbandonMessage(_ context.Context, msg *azservicebus.ReceivedMessage, _ *azservicebus.AbandonMessageOptions) error {
	return f.op("abandon", msg)
}

func (f *fakeAPI) DeadLetterMessage(_ context.Context, msg *azservicebus.ReceivedMessage, o *azservicebus.DeadLetterOptions) error {
	f.mu.Lock()
	f.dead = append(f.dead, *o)
	f.mu.Unlock()
	return f.op("deadletter", msg)
}

func (f *fakeAPI) Close(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed++
	return nil
}

var (
	testNow      = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)
	testEnqueued = time.Date(2026, time.March, 1, 11, 59, 0, 123456789, time.UTC)
)

// received builds a peek-locked message with sequence number seq, locked for lock from testNow, changed by opts.
func received(seq int64, lock time.Duration, opts ...func(*azservicebus.ReceivedMessage)) *azservicebus.ReceivedMessage {
	until := testNow.Add(lock)
	m := &azservicebus.ReceivedMessage{
		Body:           []byte(fmt.Sprintf("body-%d", seq)),
		MessageID:      fmt.Sprintf("sender-id-%d", seq),
		SequenceNumber: &seq,
		DeliveryCount:  1,
		EnqueuedTime:   &testEnqueued,
		LockedUntil:    &until,
	}
	m.LockToken[0], m.LockToken[15] = byte(seq), 0xab
	for _, o := range opts {
		o(m)
	}
	return m
}

func tokenHex(seq int64) string {
	var t [16]byte
	t[0], t[15] = byte(seq), 0xab
	return hex.EncodeToString(t[:])
}

func newTestReceiver(t *testing.T, api *fakeAPI) *Receiver {
	t.Helper()
	r, err := NewReceiverWithAPI(trigger(), api, "")
	if err != nil {
		t.Fatalf("NewReceiverWithAPI: %v", err)
	}
	return r
}

func TestReceive(t *testing.T) {
	ct, subject := "application/json", "invoice"
	api := &fakeAPI{batches: [][]*azservicebus.ReceivedMessage{{
		received(7, time.Minute-300*time.Millisecond, func(m *azservicebus.ReceivedMessage) {
			m.DeliveryCount = 2
			m.ContentType, m.Subject = &ct, &subject
			m.ApplicationProperties = map[string]any{
				"tenant": "acme", "priority": int64(3), "ratio": 0.5, "urgent": true,
				"due": time.Date(2026, time.March, 2, 0, 0, 0, 0, time.UTC), "blob": []byte{1, 2},
			}
		}),
		{Body: []byte("no sequence number: skipped")},
	}}}
	r := newTestReceiver(t, api)
	got, err := r.Receive(t.Context(), 5, time.Second, testNow)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	want := []sources.Message{{
		ID:    "7",
		Queue: "sb://jobs-ns.servicebus.windows.net/jobs",
		Body:  []byte("body-7"),
		Attributes: map[string]string{"tenant": "acme", "priority": "3", "ratio": "0.5", "urgent": "true",
			"due": "2026-03-02T00:00:00Z"},
		System: map[string]string{SystemSequenceNumber: "7", SystemDeliveryCount: "2", SystemMessageID: "sender-id-7",
			SystemEnqueuedTime: "2026-03-01T11:59:00.123456789Z", SystemContentType: ct, SystemSubject: subject},
		EnqueuedAt:   testEnqueued,
		ReceiveCount: 2,
		LeaseUntil:   testNow.Add(time.Minute - 300*time.Millisecond),
		Handle:       tokenHex(7),
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Receive() mismatch (-want +got):\n%s", diff)
	}
	if got := r.Lease(); got != time.Minute {
		t.Errorf("Lease() after Receive = %v, want the lock duration 1m0s (rounded)", got)
	}
	if diff := cmp.Diff([]int{5}, api.asked); diff != "" {
		t.Errorf("ReceiveMessages asked for (-want +got):\n%s", diff)
	}
}

func TestReceiveLimits(t *testing.T) {
	tests := map[string]struct {
		max       int
		batch     []*azservicebus.ReceivedMessage
		wantAsked []int
		wantLease time.Duration
	}{
		"no free slot: no call":                          {max: 0, wantLease: defaultLease},
		"asks for at most 1000; a 2s lock is a 2s lease": {max: 5000, batch: []*azservicebus.ReceivedMessage{received(1, 2*time.Second)}, wantAsked: []int{1000}, wantLease: 2 * time.Second},
		"a lock above 5 minutes is capped":               {max: 1, batch: []*azservicebus.ReceivedMessage{received(1, time.Hour)}, wantAsked: []int{1}, wantLease: maxLease},
		"no lock time: default lease":                    {max: 1, batch: []*azservicebus.ReceivedMessage{received(1, 0, func(m *azservicebus.ReceivedMessage) { m.LockedUntil = nil })}, wantAsked: []int{1}, wantLease: defaultLease},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			api := &fakeAPI{}
			if tc.batch != nil {
				api.batches = [][]*azservicebus.ReceivedMessage{tc.batch}
			}
			r := newTestReceiver(t, api)
			if _, err := r.Receive(t.Context(), tc.max, time.Second, testNow); err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if diff := cmp.Diff(tc.wantAsked, api.asked); diff != "" {
				t.Errorf("asked (-want +got):\n%s", diff)
			}
			if got := r.Lease(); got != tc.wantLease {
				t.Errorf("Lease() = %v, want %v", got, tc.wantLease)
			}
		})
	}
}

func TestReceiveWaitPassesWithoutMessages(t *testing.T) {
	r := newTestReceiver(t, &fakeAPI{})
	got, err := r.Receive(t.Context(), 3, 10*time.Millisecond, testNow)
	if err != nil || len(got) != 0 {
		t.Errorf("Receive() = %v, %v; want no messages and no error", got, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.Receive(ctx, 3, time.Second, testNow); err == nil {
		t.Error("Receive with a cancelled context: want an error")
	}
}

func TestErrorKinds(t *testing.T) {
	tests := map[string]struct {
		err  error
		want error
	}{
		"lock lost":                {err: &azservicebus.Error{Code: azservicebus.CodeLockLost}, want: sources.ErrLeaseLost},
		"unauthorized":             {err: &azservicebus.Error{Code: azservicebus.CodeUnauthorizedAccess}, want: sources.ErrUnauthorized},
		"not found (management)":   {err: &azservicebus.Error{Code: azservicebus.CodeNotFound}, want: sources.ErrNotFound},
		"not found (link refused)": {err: fmt.Errorf("attach: %w", &amqp.Error{Condition: amqp.ErrCondNotFound}), want: sources.ErrNotFound},
		"unauthorized (link)":      {err: &amqp.Error{Condition: amqp.ErrCondUnauthorizedAccess}, want: sources.ErrUnauthorized},
		"server busy":              {err: &amqp.Error{Condition: "com.microsoft:server-busy"}, want: sources.ErrThrottled},
		"connection lost":          {err: &azservicebus.Error{Code: azservicebus.CodeConnectionLost}},
		"anything else":            {err: errors.New("boom")},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			api := &fakeAPI{recvErr: tc.err}
			_, err := newTestReceiver(t, api).Receive(t.Context(), 1, time.Second, testNow)
			if err == nil {
				t.Fatal("Receive: want an error")
			}
			for _, kind := range []error{sources.ErrLeaseLost, sources.ErrUnauthorized, sources.ErrNotFound, sources.ErrThrottled} {
				if got := errors.Is(err, kind); got != (kind == tc.want) {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, kind, got, kind == tc.want)
				}
			}
			if !strings.Contains(err.Error(), "receiving messages from Service Bus entity sb://jobs-ns.servicebus.windows.net/jobs") {
				t.Errorf("error %q does not name the entity", err)
			}
		})
	}
}

func TestSettle(t *testing.T) {
	lockLost := &azservicebus.Error{Code: azservicebus.CodeLockLost}
	tests := map[string]struct {
		do        func(context.Context, *Receiver, *sources.Message) error
		settleErr map[string]error
		wantCalls []string
		wantKind  error
		// wantTracked: the message is still settled through the message Receive returned (on its link).
		wantTracked bool
	}{
		"ack completes": {
			do:        func(ctx context.Context, r *Receiver, m *sources.Message) error { return r.Ack(ctx, m) },
			wantCalls: []string{"complete " + tokenHex(7)},
		},
		"release without a delay abandons": {
			do:        func(ctx context.Context, r *Receiver, m *sources.Message) error { return r.Release(ctx, m, 0) },
			wantCalls: []string{"abandon " + tokenHex(7)},
		},
		"a delayed release whose lock is lost reports it": {
			do: func(ctx context.Context, r *Receiver, m *sources.Message) error {
				return r.Release(ctx, m, time.Minute)
			},
			settleErr: map[string]error{"renew": lockLost},
			wantCalls: []string{"renew " + tokenHex(7)},
			wantKind:  sources.ErrLeaseLost,
		},
		"extend renews the lock": {
			do: func(ctx context.Context, r *Receiver, m *sources.Message) error {
				until, err := r.Extend(ctx, m, testNow.Add(time.Second))
				if want := testNow.Add(time.Second + time.Minute); !until.Equal(want) {
					return fmt.Errorf("Extend until = %v, want %v", until, want)
				}
				return err
			},
			wantCalls:   []string{"renew " + tokenHex(7)},
			wantTracked: true,
		},
		"lock lost on renewal": {
			do: func(ctx context.Context, r *Receiver, m *sources.Message) error {
				_, err := r.Extend(ctx, m, testNow)
				return err
			},
			settleErr: map[string]error{"renew": lockLost},
			wantCalls: []string{"renew " + tokenHex(7)},
			wantKind:  sources.ErrLeaseLost,
		},
		"lock lost on complete": {
			do:        func(ctx context.Context, r *Receiver, m *sources.Message) error { return r.Ack(ctx, m) },
			settleErr: map[string]error{"complete": lockLost},
			wantCalls: []string{"complete " + tokenHex(7)},
			wantKind:  sources.ErrLeaseLost,
		},
		"a transient failure keeps the message": {
			do:          func(ctx context.Context, r *Receiver, m *sources.Message) error { return r.Ack(ctx, m) },
			settleErr:   map[string]error{"complete": errors.New("connection reset")},
			wantCalls:   []string{"complete " + tokenHex(7)},
			wantTracked: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			api := &fakeAPI{batches: [][]*azservicebus.ReceivedMessage{{received(7, time.Minute)}}, settleEr: tc.settleErr}
			r := newTestReceiver(t, api)
			msgs, err := r.Receive(t.Context(), 1, time.Second, testNow)
			if err != nil || len(msgs) != 1 {
				t.Fatalf("Receive() = %v, %v", msgs, err)
			}
			err = tc.do(t.Context(), r, &msgs[0])
			if tc.wantKind == nil && tc.settleErr == nil && err != nil {
				t.Fatalf("settle: %v", err)
			}
			if tc.wantKind != nil && !errors.Is(err, tc.wantKind) {
				t.Errorf("settle error = %v, want %v", err, tc.wantKind)
			}
			if diff := cmp.Diff(tc.wantCalls, api.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			r.mu.Lock()
			_, tracked := r.tracked[msgs[0].Handle]
			r.mu.Unlock()
			if tracked != tc.wantTracked {
				t.Errorf("tracked after settle = %v, want %v", tracked, tc.wantTracked)
			}
		})
	}
}

// A delayed release keeps the lock for the delay, then abandons; Close abandons the waiting ones at once.
func TestDelayedRelease(t *testing.T) {
	api := &fakeAPI{batches: [][]*azservicebus.ReceivedMessage{{received(1, time.Minute), received(2, time.Minute)}},
		notify: make(chan string, 100)}
	r := newTestReceiver(t, api)
	msgs, err := r.Receive(t.Context(), 2, time.Second, testNow)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("Receive() = %v, %v", msgs, err)
	}
	if err := r.Release(t.Context(), &msgs[0], 100*time.Millisecond); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := r.Release(t.Context(), &msgs[1], time.Hour); err != nil {
		t.Fatalf("Release: %v", err)
	}
	waitForCall(t, api, "abandon "+tokenHex(1))
	if api.has("abandon " + tokenHex(2)) {
		t.Fatal("message 2 abandoned before its delay of an hour")
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !api.has("abandon " + tokenHex(2)) {
		t.Error("Close did not abandon the message still waiting for its delay")
	}
}

// waitForCall waits up to 10 s for the fake to be called with call.
func waitForCall(t *testing.T, api *fakeAPI, call string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-api.notify:
			if got == call {
				return
			}
		case <-timeout:
			t.Fatalf("timed out waiting for the call %q", call)
		}
	}
}

// A message received by an earlier Receiver (the dispatcher rebuilt it) is settled by its lock token alone.
func TestSettleMessageOfAnotherReceiver(t *testing.T) {
	api := &fakeAPI{}
	r := newTestReceiver(t, api)
	m := &sources.Message{ID: "9", Handle: tokenHex(9)}
	if err := r.Ack(t.Context(), m); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if diff := cmp.Diff([]string{"complete " + tokenHex(9)}, api.calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	err := r.Ack(t.Context(), &sources.Message{ID: "10", Handle: "not-a-token"})
	if !errors.Is(err, sources.ErrLeaseLost) {
		t.Errorf("Ack with a bad handle: error = %v, want ErrLeaseLost", err)
	}
}

func TestDeadLetter(t *testing.T) {
	api := &fakeAPI{}
	r := newTestReceiver(t, api)
	long := strings.Repeat("é", MaxReasonBytes) // 2 bytes each: cut at a character boundary
	err := r.DeadLetter(t.Context(), &sources.Message{ID: "3", Handle: tokenHex(3)}, long, map[string]string{
		"kubedispatch-scaledjob": "etl/orders", "kubedispatch-deliveries": "3", "kubedispatch-job": "orders-abc-3", "empty": "",
	})
	if err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	if len(api.dead) != 1 {
		t.Fatalf("DeadLetterMessage calls = %d, want 1", len(api.dead))
	}
	got := api.dead[0]
	wantReason := strings.Repeat("é", MaxReasonBytes/2)
	want := azservicebus.DeadLetterOptions{
		Reason:           &wantReason,
		ErrorDescription: ptr("dead-lettered by kubedispatch for ScaledJob etl/orders after 3 Job attempt(s); last Job orders-abc-3"),
		PropertiesToModify: map[string]any{"kubedispatch-scaledjob": "etl/orders", "kubedispatch-deliveries": "3",
			"kubedispatch-job": "orders-abc-3", ReasonProperty: wantReason},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DeadLetterOptions mismatch (-want +got):\n%s", diff)
	}
}

func ptr[T any](v T) *T { return &v }

func TestNewReceiverErrors(t *testing.T) {
	tests := map[string]struct {
		cfg        sources.Config
		deadLetter string
		wantField  string
	}{
		"useRegex": {
			cfg:       trigger(sourcetest.WithMetadata("useRegex", "true"), sourcetest.WithMetadata("queueName", "jobs-.*")),
			wantField: "metadata.useRegex",
		},
		"a dead-letter destination": {cfg: trigger(), deadLetter: "https://sqs/1/dlq", wantField: "dispatch.deadLetter"},
		"no entity":                 {cfg: trigger(sourcetest.WithoutMetadata("queueName")), wantField: "metadata.queueName"},
		"no connection": {
			cfg: trigger(sourcetest.WithoutMetadata("connectionFromEnv")), wantField: "metadata.connection",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := NewReceiver(t.Context(), tc.cfg, tc.deadLetter)
			var ce *sources.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("NewReceiver error = %v, want a ConfigError", err)
			}
			if ce.Field != tc.wantField {
				t.Errorf("ConfigError field = %q, want %q (%v)", ce.Field, tc.wantField, err)
			}
			if strings.Contains(err.Error(), secretKey) {
				t.Errorf("error quotes the key: %v", err)
			}
		})
	}
}

func TestRegisterReceiver(t *testing.T) {
	r := sources.NewRegistry()
	if err := Register(r); err != nil {
		t.Fatalf("Register: %v", err)
	}
	// A connection string to nowhere: building the receiver makes no network call.
	got, err := r.NewReceiver(t.Context(), trigger(sourcetest.WithEnv("SB_CONN", connString("127.0.0.1:1"))), "")
	if err != nil {
		t.Fatalf("NewReceiver: %v", err)
	}
	recv, ok := got.(*Receiver)
	if !ok {
		t.Fatalf("NewReceiver() = %T, want *Receiver", got)
	}
	if diff := cmp.Diff("sb://127.0.0.1:1/jobs", recv.Queue()); diff != "" {
		t.Errorf("Queue() (-want +got):\n%s", diff)
	}
	if err := got.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := got.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// The tracked messages stay bounded: the oldest fall back to settling by lock token.
func TestTrackedIsBounded(t *testing.T) {
	r := newTestReceiver(t, &fakeAPI{})
	for i := range maxTracked + 10 {
		r.track(fmt.Sprintf("%032x", i), &azservicebus.ReceivedMessage{})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.tracked) != maxTracked {
		t.Errorf("tracked = %d, want %d", len(r.tracked), maxTracked)
	}
	if _, ok := r.tracked[fmt.Sprintf("%032x", 0)]; ok {
		t.Error("the oldest message is still tracked")
	}
}

func (f *fakeAPI) has(call string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c == call {
			return true
		}
	}
	return false
}
