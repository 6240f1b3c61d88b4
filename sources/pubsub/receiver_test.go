package pubsub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
	"github.com/kubedispatch/kubedispatch/sources"
)

const (
	// testReceiverSub is the subscription of trigger().
	testReceiverSub = "projects/key-project/subscriptions/jobs-sub"
	testDeadTopic   = "projects/key-project/topics/jobs-dead"
	testPolicyTopic = "projects/key-project/topics/jobs-policy"
)

// fakeReceiverAPI is a hand-written ReceiverAPI. GetSubscription answers subscription; each Pull answers the next of
// batches (none left: no messages), after pull (when set) returns nil. errs fails an operation by its name. It
// records every call.
type fakeReceiverAPI struct {
	mu           sync.Mutex
	subscription *pubsubpb.Subscription
	batches      [][]*pubsubpb.ReceivedMessage
	errs         map[string]error
	// pull, when set, is called with each Pull's context; its error fails the Pull.
	pull func(ctx context.Context) error

	getCalls  []*pubsubpb.GetSubscriptionRequest
	pullCalls []*pubsubpb.PullRequest
	// pullDeadlines is the time each Pull's context had left when it was called (0: no deadline).
	pullDeadlines []time.Duration
	modCalls      []*pubsubpb.ModifyAckDeadlineRequest
	ackCalls      []*pubsubpb.AcknowledgeRequest
	pubCalls      []*pubsubpb.PublishRequest
}

// Operation names for fakeReceiverAPI.errs.
const (
	opGet     = "GetSubscription"
	opPull    = "Pull"
	opModify  = "ModifyAckDeadline"
	opAck     = "Acknowledge"
	opPublish = "Publish"
)

func newFakeReceiverAPI(batches ...[]*pubsubpb.ReceivedMessage) *fakeReceiverAPI {
	return &fakeReceiverAPI{
		subscription: &pubsubpb.Subscription{Name: testReceiverSub, AckDeadlineSeconds: 30},
		batches:      batches,
		errs:         map[string]error{},
	}
}

// fail makes op fail with err from now on (nil: succeed again).
func (f *fakeReceiverAPI) fail(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[op] = err
}

func (f *fakeReceiverAPI) GetSubscription(_ context.Context, req *pubsubpb.GetSubscriptionRequest) (*pubsubpb.Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.getCalls = append(f.getCalls, req)
	if err := f.errs[opGet]; err != nil {
		return nil, err
	}
	return f.subscription, nil
}

func (f *fakeReceiverAPI) Pull(ctx context.Context, req *pubsubpb.PullRequest) (*pubsubpb.PullResponse, error) {
	f.mu.Lock()
	f.pullCalls = append(f.pullCalls, req)
	var left time.Duration
	if deadline, ok := ctx.Deadline(); ok {
		left = time.Until(deadline)
	}
	f.pullDeadlines = append(f.pullDeadlines, left)
	pull := f.pull
	f.mu.Unlock()
	if pull != nil {
		if err := pull(ctx); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs[opPull]; err != nil {
		return nil, err
	}
	if len(f.batches) == 0 {
		return &pubsubpb.PullResponse{}, nil
	}
	batch := f.batches[0]
	f.batches = f.batches[1:]
	return &pubsubpb.PullResponse{ReceivedMessages: batch}, nil
}

func (f *fakeReceiverAPI) ModifyAckDeadline(_ context.Context, req *pubsubpb.ModifyAckDeadlineRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.modCalls = append(f.modCalls, req)
	return f.errs[opModify]
}

func (f *fakeReceiverAPI) Acknowledge(_ context.Context, req *pubsubpb.AcknowledgeRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ackCalls = append(f.ackCalls, req)
	return f.errs[opAck]
}

func (f *fakeReceiverAPI) Publish(_ context.Context, req *pubsubpb.PublishRequest) (*pubsubpb.PublishResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pubCalls = append(f.pubCalls, req)
	if err := f.errs[opPublish]; err != nil {
		return nil, err
	}
	return &pubsubpb.PublishResponse{MessageIds: []string{"dead-1"}}, nil
}

// modifications returns the ModifyAckDeadline calls as "ackID,ackID=seconds", checking their subscription.
func (f *fakeReceiverAPI) modifications(t *testing.T) []string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.modCalls {
		if c.GetSubscription() != testReceiverSub {
			t.Errorf("ModifyAckDeadline on %q, want %q", c.GetSubscription(), testReceiverSub)
		}
		out = append(out, fmt.Sprintf("%s=%d", strings.Join(c.GetAckIds(), ","), c.GetAckDeadlineSeconds()))
	}
	return out
}

// acks returns the ack ids of the Acknowledge calls, one string per call, checking their subscription.
func (f *fakeReceiverAPI) acks(t *testing.T) []string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.ackCalls {
		if c.GetSubscription() != testReceiverSub {
			t.Errorf("Acknowledge on %q, want %q", c.GetSubscription(), testReceiverSub)
		}
		out = append(out, strings.Join(c.GetAckIds(), ","))
	}
	return out
}

// received builds a received Pub/Sub message with id, ack id "h-<id>", data "body-<id>" and ordering key key.
func received(id, key string) *pubsubpb.ReceivedMessage {
	return &pubsubpb.ReceivedMessage{
		AckId:   "h-" + id,
		Message: &pubsubpb.PubsubMessage{MessageId: id, Data: []byte("body-" + id), OrderingKey: key},
	}
}

// withAckID returns a copy of m with another ack id (a redelivery).
func withAckID(m *pubsubpb.ReceivedMessage, ackID string) *pubsubpb.ReceivedMessage {
	return &pubsubpb.ReceivedMessage{AckId: ackID, Message: m.GetMessage(), DeliveryAttempt: m.GetDeliveryAttempt()}
}

// ids returns the IDs of msgs.
func ids(msgs []sources.Message) []string {
	out := []string{}
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return out
}

// bodies returns the bodies of msgs as strings.
func bodies(msgs []sources.Message) []string {
	out := []string{}
	for _, m := range msgs {
		out = append(out, string(m.Body))
	}
	return out
}

// newTestReceiver returns a Receiver of trigger() over api with the dead-letter topic deadLetter.
func newTestReceiver(t *testing.T, api ReceiverAPI, deadLetter string) *Receiver {
	t.Helper()
	r, err := NewReceiverWithAPI(trigger(), api, deadLetter)
	if err != nil {
		t.Fatalf("NewReceiverWithAPI: %v", err)
	}
	return r
}

// receive calls r.Receive for 10 messages without waiting, at now, and fails the test on an error.
func receive(t *testing.T, r *Receiver, now time.Time) []sources.Message {
	t.Helper()
	msgs, err := r.Receive(context.Background(), 10, 0, now)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return msgs
}

func TestNewReceiver(t *testing.T) {
	// insecureTrigger sends no credentials (monitoringInsecure), with the project in the subscription's name.
	insecureTrigger := func() sources.Config {
		return trigger(noCredentials, sourcetest.WithMetadata("subscriptionName", "projects/test-project/subscriptions/jobs-sub"),
			sourcetest.WithMetadata("monitoringEndpoint", "127.0.0.1:9"), sourcetest.WithMetadata("monitoringInsecure", "true"))
	}
	cases := map[string]struct {
		cfg        sources.Config
		deadLetter string
		emulator   string
		wantSub    string
		wantTopic  string
		wantErr    *sources.ConfigError
		// newOnly: NewReceiver refuses cfg, NewReceiverWithAPI (whose API has its own credentials) accepts it.
		newOnly bool
	}{
		"no dead-letter topic": {cfg: trigger(), wantSub: testReceiverSub},
		"full topic name": {
			cfg: trigger(), deadLetter: "projects/other-project/topics/dead",
			wantSub: testReceiverSub, wantTopic: "projects/other-project/topics/dead",
		},
		"topic ID in the subscription's project": {
			cfg: trigger(), deadLetter: "jobs-dead",
			wantSub: testReceiverSub, wantTopic: testDeadTopic,
		},
		"project from a full subscription name": {
			cfg:        trigger(sourcetest.WithMetadata("subscriptionName", "projects/sub-project/subscriptions/work")),
			deadLetter: "dead",
			wantSub:    "projects/sub-project/subscriptions/work", wantTopic: "projects/sub-project/topics/dead",
		},
		"subscription from the environment": {
			cfg: trigger(sourcetest.WithoutMetadata("subscriptionName"), sourcetest.WithMetadata("subscriptionNameFromEnv", "SUB"),
				sourcetest.WithEnv("SUB", "env-sub")),
			wantSub: "projects/key-project/subscriptions/env-sub",
		},
		"a subscription is not a topic": {
			cfg: trigger(), deadLetter: "projects/key-project/subscriptions/dead",
			wantErr: &sources.ConfigError{Field: "dispatch.deadLetter.topic",
				Detail: `"projects/key-project/subscriptions/dead" is not a topic ID nor projects/<project>/topics/<topic>`},
		},
		"too many name parts": {
			cfg: trigger(), deadLetter: "projects/key-project/topics/dead/x",
			wantErr: &sources.ConfigError{Field: "dispatch.deadLetter.topic",
				Detail: `"projects/key-project/topics/dead/x" is not a topic ID nor projects/<project>/topics/<topic>`},
		},
		"invalid project": {
			cfg: trigger(), deadLetter: "projects/Bad_Project/topics/dead",
			wantErr: &sources.ConfigError{Field: "dispatch.deadLetter.topic",
				Detail: `"projects/Bad_Project/topics/dead" has an invalid project ID "Bad_Project"`},
		},
		"too short a topic ID": {
			cfg: trigger(), deadLetter: "dl",
			wantErr: &sources.ConfigError{Field: "dispatch.deadLetter.topic",
				Detail: `"dl" is not a valid topic ID (3-255 letters, digits or -_.~+%, starting with a letter, not with goog)`},
		},
		"a topic ID starting with goog": {
			cfg: trigger(), deadLetter: "projects/key-project/topics/google-dead",
			wantErr: &sources.ConfigError{Field: "dispatch.deadLetter.topic",
				Detail: `"google-dead" is not a valid topic ID (3-255 letters, digits or -_.~+%, starting with a letter, not with goog)`},
		},
		"a topic trigger cannot be received from": {
			cfg: trigger(sourcetest.WithoutMetadata("subscriptionName"), sourcetest.WithMetadata("topicName", "jobs"),
				sourcetest.WithMetadata("mode", "SendMessageOperationCount")),
			wantErr: &sources.ConfigError{Field: "metadata.topicName",
				Detail: "cannot be received from: message mode needs subscriptionName (or its FromEnv variant)"},
		},
		"bad trigger metadata": {
			cfg: trigger(sourcetest.WithoutMetadata("subscriptionName")), deadLetter: "jobs-dead",
			wantErr: &sources.ConfigError{Field: "metadata.subscriptionName",
				Detail: "or topicName is required (set exactly one, or its FromEnv variant)"},
		},
		"no credentials without an emulator": {
			cfg: insecureTrigger(), newOnly: true,
			wantErr: &sources.ConfigError{Field: "metadata.monitoringInsecure",
				Detail: "sends no credentials, and message mode needs them for Pub/Sub (or PUBSUB_EMULATOR_HOST on the controller, for an emulator)"},
		},
		"no credentials with an emulator": {
			cfg: insecureTrigger(), emulator: "127.0.0.1:8085", wantSub: "projects/test-project/subscriptions/jobs-sub",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Setenv("PUBSUB_EMULATOR_HOST", tc.emulator)
			withAPI, err := NewReceiverWithAPI(tc.cfg, newFakeReceiverAPI(), tc.deadLetter)
			if tc.newOnly {
				sourcetest.AssertConfigError(t, err, nil)
			} else {
				sourcetest.AssertConfigError(t, err, tc.wantErr)
			}
			recv, nerr := NewReceiver(context.Background(), tc.cfg, tc.deadLetter)
			sourcetest.AssertConfigError(t, nerr, tc.wantErr)
			if err != nil || nerr != nil {
				return
			}
			r, ok := recv.(*Receiver)
			if !ok {
				t.Fatalf("NewReceiver() = %T, want *Receiver", recv)
			}
			for _, got := range []*Receiver{withAPI, r} {
				if diff := cmp.Diff([]string{tc.wantSub, tc.wantTopic}, []string{got.Subscription(), got.deadLetter}); diff != "" {
					t.Errorf("subscription and dead-letter topic mismatch (-want +got):\n%s", diff)
				}
				if got := got.Lease(); got != 10*time.Second {
					t.Errorf("Lease before the first Receive = %v, want 10s", got)
				}
			}
			api, ok := r.api.(*grpcAPI)
			if !ok {
				t.Fatalf("API = %T, want *grpcAPI", r.api)
			}
			if api.subscriber != nil || api.publisher != nil {
				t.Errorf("NewReceiver created a client")
			}
			for range 2 {
				if err := r.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
		})
	}
}

func TestReceiverClientOptions(t *testing.T) {
	sa := func(opts ...sourcetest.Option) sources.Config {
		return trigger(append([]sourcetest.Option{sourcetest.WithMetadata("monitoringEndpoint", "monitoring.example:443")}, opts...)...)
	}
	cases := map[string]struct {
		cfg      sources.Config
		emulator string
		want     []string
	}{
		"service account key, not the monitoring endpoint": {cfg: sa(), want: []string{"option.withAuthCredentialsJSON"}},
		"pod identity": {cfg: sa(noCredentials, sourcetest.WithPodIdentity("gcp"), sourcetest.WithMetadata("projectID", "pod-project")), want: []string{}},
		"emulator: no TLS, no credentials": {cfg: sa(), emulator: "127.0.0.1:8085",
			want: []string{"option.withEndpoint", "option.withoutAuthentication", "option.withGRPCDialOption"}},
		"monitoringInsecure sends no credentials": {
			cfg:  sa(sourcetest.WithMetadata("monitoringEndpoint", "127.0.0.1:9"), sourcetest.WithMetadata("monitoringInsecure", "true")),
			want: []string{"option.withoutAuthentication"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			m, key, err := parseReceiver(tc.cfg)
			if err != nil {
				t.Fatalf("parseReceiver: %v", err)
			}
			got := []string{}
			for _, o := range receiverClientOptions(m, key, tc.emulator) {
				got = append(got, fmt.Sprintf("%T", o))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("client options mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRegisterReceiver(t *testing.T) {
	t.Setenv("PUBSUB_EMULATOR_HOST", "")
	r := sources.NewRegistry()
	if err := Register(r); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if _, err := r.NewReceiver(t.Context(), trigger(sourcetest.WithoutMetadata("subscriptionName")), ""); !sources.IsConfigError(err) {
		t.Errorf("NewReceiver with a bad config: error = %v, want a ConfigError", err)
	}
	if _, err := r.NewReceiver(t.Context(), trigger(), "projects/key-project/subscriptions/x"); !sources.IsConfigError(err) {
		t.Errorf("NewReceiver with a bad dead-letter topic: error = %v, want a ConfigError", err)
	}
	got, err := r.NewReceiver(t.Context(), trigger(), testDeadTopic)
	if err != nil {
		t.Fatalf("NewReceiver: %v", err)
	}
	if _, ok := got.(*Receiver); !ok {
		t.Errorf("NewReceiver() = %T, want *Receiver", got)
	}
	if err := got.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestReceive(t *testing.T) {
	published := time.Date(2026, time.March, 1, 11, 59, 0, 123456789, time.UTC)
	full := &pubsubpb.ReceivedMessage{
		AckId:           "ack-1",
		DeliveryAttempt: 3,
		Message: &pubsubpb.PubsubMessage{
			MessageId:   "m-1",
			Data:        []byte(`{"n":1}`),
			Attributes:  map[string]string{"tenant": "acme", "n": "7"},
			PublishTime: timestamppb.New(published),
			OrderingKey: "tenant-a",
		},
	}
	cases := map[string]struct {
		max     int
		batch   []*pubsubpb.ReceivedMessage
		want    []sources.Message
		wantReq *pubsubpb.PullRequest
	}{
		"maps a message": {
			max:   5,
			batch: []*pubsubpb.ReceivedMessage{full},
			want: []sources.Message{{
				ID:         "m-1",
				Queue:      testReceiverSub,
				Body:       []byte(`{"n":1}`),
				Attributes: map[string]string{"tenant": "acme", "n": "7"},
				System: map[string]string{
					"publish_time":     "2026-03-01T11:59:00.123456789Z",
					"ordering_key":     "tenant-a",
					"delivery_attempt": "3",
				},
				EnqueuedAt:   published,
				ReceiveCount: 3,
				Group:        "tenant-a",
				LeaseUntil:   fixedNow().Add(30 * time.Second),
				Handle:       "ack-1",
			}},
			wantReq: &pubsubpb.PullRequest{Subscription: testReceiverSub, MaxMessages: 5},
		},
		"a bare message: no data, attributes, publish time, key or delivery attempt": {
			max:   1,
			batch: []*pubsubpb.ReceivedMessage{{AckId: "ack-2", Message: &pubsubpb.PubsubMessage{MessageId: "m-2"}}},
			want: []sources.Message{{
				ID:         "m-2",
				Queue:      testReceiverSub,
				LeaseUntil: fixedNow().Add(30 * time.Second),
				Handle:     "ack-2",
			}},
			wantReq: &pubsubpb.PullRequest{Subscription: testReceiverSub, MaxMessages: 1},
		},
		"max is capped at 1000": {
			max:     2500,
			wantReq: &pubsubpb.PullRequest{Subscription: testReceiverSub, MaxMessages: 1000},
		},
		"max zero makes no call": {
			max:   0,
			batch: []*pubsubpb.ReceivedMessage{full},
		},
		"negative max makes no call": {
			max:   -1,
			batch: []*pubsubpb.ReceivedMessage{full},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			api := newFakeReceiverAPI(tc.batch)
			r := newTestReceiver(t, api, "")
			got, err := r.Receive(context.Background(), tc.max, 0, fixedNow())
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Receive mismatch (-want +got):\n%s", diff)
			}
			if tc.wantReq == nil {
				if len(api.pullCalls)+len(api.getCalls) != 0 {
					t.Errorf("made %d Pull and %d GetSubscription calls, want none", len(api.pullCalls), len(api.getCalls))
				}
				return
			}
			if diff := cmp.Diff([]*pubsubpb.PullRequest{tc.wantReq}, api.pullCalls, protocmp.Transform()); diff != "" {
				t.Errorf("Pull requests mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReceiveWait(t *testing.T) {
	deadlineExceeded := func(context.Context) error { return status.Error(codes.DeadlineExceeded, "deadline exceeded") }
	cases := map[string]struct {
		wait time.Duration
		// ctx changes the caller's context.
		ctx  func(context.Context) (context.Context, context.CancelFunc)
		pull func(context.Context) error
		// wantLeft is the longest time the Pull may have; it must have more than wantLeft - 1 s.
		wantLeft time.Duration
		wantMsg  string
	}{
		"the Pull's deadline is the wait":             {wait: 3 * time.Second, wantLeft: 3 * time.Second},
		"without a wait the Pull still has a second":  {wait: 0, wantLeft: time.Second},
		"a negative wait is no wait":                  {wait: -5 * time.Second, wantLeft: time.Second},
		"the wait passing is no messages":             {wait: 2 * time.Second, pull: deadlineExceeded, wantLeft: 2 * time.Second},
		"a context deadline error is no messages too": {wait: 2 * time.Second, wantLeft: 2 * time.Second, pull: func(context.Context) error { return context.DeadlineExceeded }},
		"the caller's cancellation is an error": {
			wait: 2 * time.Second, wantLeft: 2 * time.Second,
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(ctx)
				cancel()
				return ctx, cancel
			},
			pull:    func(ctx context.Context) error { return status.FromContextError(ctx.Err()).Err() },
			wantMsg: "pulling messages from " + testReceiverSub + ": rpc error: code = Canceled desc = context canceled",
		},
		"the caller's deadline is an error": {
			wait: 5 * time.Second, wantLeft: 200 * time.Millisecond,
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 200*time.Millisecond)
			},
			pull: func(ctx context.Context) error {
				<-ctx.Done()
				return status.FromContextError(ctx.Err()).Err()
			},
			wantMsg: "pulling messages from " + testReceiverSub + ": rpc error: code = DeadlineExceeded desc = context deadline exceeded",
		},
		"unavailable is an error": {
			wait: time.Second, wantLeft: time.Second,
			pull:    func(context.Context) error { return status.Error(codes.Unavailable, "connection refused") },
			wantMsg: "pulling messages from " + testReceiverSub + ": rpc error: code = Unavailable desc = connection refused",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			api := newFakeReceiverAPI([]*pubsubpb.ReceivedMessage{received("m-1", "")})
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tc.ctx != nil {
				ctx, cancel = tc.ctx(ctx)
			}
			defer cancel()
			api.pull = tc.pull
			r := newTestReceiver(t, api, "")
			got, err := r.Receive(ctx, 10, tc.wait, fixedNow())
			switch {
			case tc.wantMsg != "":
				if err == nil {
					t.Fatalf("Receive = %v, want an error", ids(got))
				}
				if diff := cmp.Diff(tc.wantMsg, err.Error()); diff != "" {
					t.Errorf("error mismatch (-want +got):\n%s", diff)
				}
				if sources.IsConfigError(err) || errors.Is(err, sources.ErrLeaseLost) {
					t.Errorf("error %v is not transient", err)
				}
			case tc.pull != nil:
				if err != nil || len(got) != 0 {
					t.Errorf("Receive = %v, %v, want no messages and no error", ids(got), err)
				}
			default:
				if err != nil || len(got) != 1 {
					t.Errorf("Receive = %v, %v, want m-1", ids(got), err)
				}
			}
			if len(api.pullDeadlines) != 1 {
				t.Fatalf("Pull called %d times, want 1", len(api.pullDeadlines))
			}
			if left := api.pullDeadlines[0]; left > tc.wantLeft || left <= tc.wantLeft-time.Second {
				t.Errorf("Pull had %v left, want at most %v and more than %v", left, tc.wantLeft, tc.wantLeft-time.Second)
			}
		})
	}
}

func TestLease(t *testing.T) {
	cases := map[string]struct {
		ackDeadline int32
		getErr      error
		want        time.Duration
		wantMsg     string
	}{
		"the subscription's ack deadline": {ackDeadline: 60, want: time.Minute},
		"at the minimum":                  {ackDeadline: 10, want: 10 * time.Second},
		"below the minimum":               {ackDeadline: 5, want: 10 * time.Second},
		"unset":                           {ackDeadline: 0, want: 10 * time.Second},
		"at the maximum":                  {ackDeadline: 600, want: 10 * time.Minute},
		"above the maximum":               {ackDeadline: 900, want: 10 * time.Minute},
		"reading the subscription fails": {
			ackDeadline: 60,
			getErr:      status.Error(codes.Unavailable, "connection refused"),
			wantMsg:     "reading Pub/Sub subscription " + testReceiverSub + ": rpc error: code = Unavailable desc = connection refused",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			api := newFakeReceiverAPI([]*pubsubpb.ReceivedMessage{received("m-1", "")}, []*pubsubpb.ReceivedMessage{received("m-2", "")})
			api.subscription.AckDeadlineSeconds = tc.ackDeadline
			api.fail(opGet, tc.getErr)
			r := newTestReceiver(t, api, "")
			if got := r.Lease(); got != 10*time.Second {
				t.Errorf("Lease before the first Receive = %v, want 10s", got)
			}
			msgs, err := r.Receive(context.Background(), 10, 0, fixedNow())
			if tc.wantMsg != "" {
				if err == nil {
					t.Fatalf("Receive = %v, want an error", ids(msgs))
				}
				if diff := cmp.Diff(tc.wantMsg, err.Error()); diff != "" {
					t.Errorf("error mismatch (-want +got):\n%s", diff)
				}
				if len(api.pullCalls) != 0 {
					t.Errorf("Pull called %d times, want 0", len(api.pullCalls))
				}
				if got := r.Lease(); got != 10*time.Second {
					t.Errorf("Lease after a failed read = %v, want 10s", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if diff := cmp.Diff([]time.Time{fixedNow().Add(tc.want)}, []time.Time{msgs[0].LeaseUntil}); diff != "" {
				t.Errorf("LeaseUntil mismatch (-want +got):\n%s", diff)
			}
			later := fixedNow().Add(time.Second)
			receive(t, r, later)
			until, err := r.Extend(context.Background(), &msgs[0], later)
			if err != nil {
				t.Fatalf("Extend: %v", err)
			}
			if !until.Equal(later.Add(tc.want)) {
				t.Errorf("Extend = %v, want %v", until, later.Add(tc.want))
			}
			if got := r.Lease(); got != tc.want {
				t.Errorf("Lease = %v, want %v", got, tc.want)
			}
			// DeadLetter without a configured topic reads the subscription's policy from the same cache.
			if err := r.DeadLetter(context.Background(), &msgs[0], "failed", nil); !errors.Is(err, sources.ErrNoDeadLetter) {
				t.Errorf("DeadLetter error = %v, want ErrNoDeadLetter", err)
			}
			if diff := cmp.Diff([]*pubsubpb.GetSubscriptionRequest{{Subscription: testReceiverSub}}, api.getCalls, protocmp.Transform()); diff != "" {
				t.Errorf("GetSubscription calls mismatch (-want +got, once: cached):\n%s", diff)
			}
			want := []string{fmt.Sprintf("h-m-1=%d", tc.want/time.Second), "h-m-1=0"}
			if diff := cmp.Diff(want, api.modifications(t)); diff != "" {
				t.Errorf("ModifyAckDeadline mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReceiveKeepsKeyOrder(t *testing.T) {
	lost := status.Error(codes.InvalidArgument, "Invalid ack id")
	boom := status.Error(codes.Unavailable, "connection reset")
	cases := map[string]struct {
		first     []*pubsubpb.ReceivedMessage
		wantFirst []string
		// settle is applied to the first Receive's messages by ID: ack, release, dead-letter, extend.
		settle    map[string]string
		settleErr error
		// modifyErr fails every ModifyAckDeadline call.
		modifyErr         error
		secondAfter       time.Duration
		second            []*pubsubpb.ReceivedMessage
		wantSecond        []string
		wantModifications []string
	}{
		"one batch: the first of each key and every unkeyed message": {
			first: []*pubsubpb.ReceivedMessage{received("a1", "a"), received("a2", "a"), received("b1", "b"), received("n1", ""),
				received("a3", "a"), received("n2", "")},
			wantFirst:         []string{"a1", "b1", "n1", "n2"},
			wantSecond:        []string{},
			wantModifications: []string{"h-a2,h-a3=0"},
		},
		"a held key blocks the next receive": {
			first:             []*pubsubpb.ReceivedMessage{received("a1", "a")},
			wantFirst:         []string{"a1"},
			second:            []*pubsubpb.ReceivedMessage{received("a2", "a"), received("b1", "b")},
			wantSecond:        []string{"b1"},
			wantModifications: []string{"h-a2=0"},
		},
		"ack frees the key": {
			first:      []*pubsubpb.ReceivedMessage{received("a1", "a")},
			wantFirst:  []string{"a1"},
			settle:     map[string]string{"a1": "ack"},
			second:     []*pubsubpb.ReceivedMessage{received("a2", "a")},
			wantSecond: []string{"a2"},
		},
		"release frees the key": {
			first:             []*pubsubpb.ReceivedMessage{received("a1", "a")},
			wantFirst:         []string{"a1"},
			settle:            map[string]string{"a1": "release"},
			second:            []*pubsubpb.ReceivedMessage{received("a2", "a")},
			wantSecond:        []string{"a2"},
			wantModifications: []string{"h-a1=0"},
		},
		"dead letter frees the key": {
			first:      []*pubsubpb.ReceivedMessage{received("a1", "a")},
			wantFirst:  []string{"a1"},
			settle:     map[string]string{"a1": "dead-letter"},
			second:     []*pubsubpb.ReceivedMessage{received("a2", "a")},
			wantSecond: []string{"a2"},
		},
		"a lost lease frees the key": {
			first:             []*pubsubpb.ReceivedMessage{received("a1", "a")},
			wantFirst:         []string{"a1"},
			settle:            map[string]string{"a1": "extend"},
			settleErr:         lost,
			second:            []*pubsubpb.ReceivedMessage{received("a2", "a")},
			wantSecond:        []string{"a2"},
			wantModifications: []string{"h-a1=30"},
		},
		"a failed ack keeps the key held": {
			first:             []*pubsubpb.ReceivedMessage{received("a1", "a")},
			wantFirst:         []string{"a1"},
			settle:            map[string]string{"a1": "ack"},
			settleErr:         boom,
			second:            []*pubsubpb.ReceivedMessage{received("a2", "a")},
			wantSecond:        []string{},
			wantModifications: []string{"h-a2=0"},
		},
		"an expired lease frees the key": {
			first:       []*pubsubpb.ReceivedMessage{received("a1", "a")},
			wantFirst:   []string{"a1"},
			secondAfter: 30 * time.Second,
			second:      []*pubsubpb.ReceivedMessage{received("a2", "a")},
			wantSecond:  []string{"a2"},
		},
		"an extended lease keeps the key held": {
			first:             []*pubsubpb.ReceivedMessage{received("a1", "a")},
			wantFirst:         []string{"a1"},
			settle:            map[string]string{"a1": "extend"},
			secondAfter:       31 * time.Second,
			second:            []*pubsubpb.ReceivedMessage{received("a2", "a")},
			wantSecond:        []string{},
			wantModifications: []string{"h-a1=30", "h-a2=0"},
		},
		"a redelivery of the held message is returned": {
			first:      []*pubsubpb.ReceivedMessage{received("a1", "a")},
			wantFirst:  []string{"a1"},
			second:     []*pubsubpb.ReceivedMessage{withAckID(received("a1", "a"), "h-a1-again")},
			wantSecond: []string{"a1"},
		},
		"a failed release of extras is not an error": {
			first:             []*pubsubpb.ReceivedMessage{received("a1", "a"), received("a2", "a")},
			modifyErr:         boom,
			wantFirst:         []string{"a1"},
			wantSecond:        []string{},
			wantModifications: []string{"h-a2=0"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			api := newFakeReceiverAPI(tc.first, tc.second)
			api.fail(opModify, tc.modifyErr)
			r := newTestReceiver(t, api, testDeadTopic)
			ctx := context.Background()
			first := receive(t, r, fixedNow())
			if diff := cmp.Diff(tc.wantFirst, ids(first)); diff != "" {
				t.Fatalf("first Receive mismatch (-want +got):\n%s", diff)
			}
			for i := range first {
				m := &first[i]
				op := tc.settle[m.ID]
				var err error
				switch op {
				case "":
					continue
				case "ack":
					api.fail(opAck, tc.settleErr)
					err = r.Ack(ctx, m)
				case "release":
					api.fail(opModify, tc.settleErr)
					err = r.Release(ctx, m, 0)
				case "dead-letter":
					api.fail(opPublish, tc.settleErr)
					err = r.DeadLetter(ctx, m, "failed", nil)
				case "extend":
					api.fail(opModify, tc.settleErr)
					_, err = r.Extend(ctx, m, fixedNow().Add(10*time.Second))
				default:
					t.Fatalf("unknown settle operation %q", op)
				}
				if !errors.Is(err, tc.settleErr) || (err == nil) != (tc.settleErr == nil) {
					t.Fatalf("%s %s: error = %v, want %v", op, m.ID, err, tc.settleErr)
				}
			}
			second := receive(t, r, fixedNow().Add(tc.secondAfter))
			if diff := cmp.Diff(tc.wantSecond, ids(second)); diff != "" {
				t.Errorf("second Receive mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantModifications, api.modifications(t)); diff != "" {
				t.Errorf("ModifyAckDeadline mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// exactlyOnceError is the error an exactly-once subscription gives for an ack operation: code, and an ErrorInfo
// whose metadata maps ackID to reason.
func exactlyOnceError(t *testing.T, code codes.Code, ackID, reason string) error {
	t.Helper()
	st, err := status.New(code, "Some acknowledgement ids in the request were invalid.").WithDetails(&errdetails.ErrorInfo{
		Reason: "EXACTLY_ONCE_ACKID_FAILURE", Domain: "pubsub.googleapis.com", Metadata: map[string]string{ackID: reason}})
	if err != nil {
		t.Fatalf("building the status: %v", err)
	}
	return st.Err()
}

func TestReceiverErrors(t *testing.T) {
	// Each error maps to wantAck on an ack operation (Acknowledge, ModifyAckDeadline) and to wantOther on other calls;
	// nil: transient.
	errs := map[string]struct {
		err                error
		wantAck, wantOther error
	}{
		"NotFound": {err: status.Error(codes.NotFound, "Subscription does not exist"),
			wantAck: sources.ErrNotFound, wantOther: sources.ErrNotFound},
		"PermissionDenied": {err: status.Error(codes.PermissionDenied, "denied"),
			wantAck: sources.ErrUnauthorized, wantOther: sources.ErrUnauthorized},
		"Unauthenticated": {err: status.Error(codes.Unauthenticated, "bad token"),
			wantAck: sources.ErrUnauthorized, wantOther: sources.ErrUnauthorized},
		"ResourceExhausted": {err: status.Error(codes.ResourceExhausted, "quota"),
			wantAck: sources.ErrThrottled, wantOther: sources.ErrThrottled},
		"InvalidArgument":    {err: status.Error(codes.InvalidArgument, "Invalid ack id"), wantAck: sources.ErrLeaseLost},
		"FailedPrecondition": {err: status.Error(codes.FailedPrecondition, "expired"), wantAck: sources.ErrLeaseLost},
		"exactly once: permanently invalid ack id": {
			err: exactlyOnceError(t, codes.InvalidArgument, "h-m-1", "PERMANENT_FAILURE_INVALID_ACK_ID"), wantAck: sources.ErrLeaseLost},
		"exactly once: a transient failure is transient": {
			err: exactlyOnceError(t, codes.FailedPrecondition, "h-m-1", "TRANSIENT_FAILURE_UNORDERED_ACK_ID")},
		"exactly once: another ack id's failure does not decide": {
			err: exactlyOnceError(t, codes.Unavailable, "h-other", "PERMANENT_FAILURE_INVALID_ACK_ID")},
		"Internal is transient":      {err: status.Error(codes.Internal, "oops")},
		"Unavailable is transient":   {err: status.Error(codes.Unavailable, "connection reset")},
		"a plain error is transient": {err: errors.New("dial tcp: connection refused")},
	}
	// Each operation fails one API call and names its action as the error's prefix.
	ops := map[string]struct {
		apiOp      string
		deadLetter string
		// fresh: call on a message that was not received (the subscription not yet read).
		fresh  bool
		ackOp  bool
		prefix string
		call   func(ctx context.Context, r *Receiver, m *sources.Message) error
	}{
		"Receive reading the subscription": {
			apiOp: opGet, fresh: true,
			prefix: "reading Pub/Sub subscription " + testReceiverSub,
			call: func(ctx context.Context, r *Receiver, _ *sources.Message) error {
				_, err := r.Receive(ctx, 1, 0, fixedNow())
				return err
			},
		},
		"Receive pulling": {
			apiOp: opPull, fresh: true,
			prefix: "pulling messages from " + testReceiverSub,
			call: func(ctx context.Context, r *Receiver, _ *sources.Message) error {
				_, err := r.Receive(ctx, 1, 0, fixedNow())
				return err
			},
		},
		"Extend": {
			apiOp: opModify, ackOp: true,
			prefix: "extending the ack deadline of message m-1 on " + testReceiverSub,
			call: func(ctx context.Context, r *Receiver, m *sources.Message) error {
				_, err := r.Extend(ctx, m, fixedNow())
				return err
			},
		},
		"Ack": {
			apiOp: opAck, ackOp: true,
			prefix: "acknowledging message m-1 on " + testReceiverSub,
			call:   func(ctx context.Context, r *Receiver, m *sources.Message) error { return r.Ack(ctx, m) },
		},
		"Release": {
			apiOp: opModify, ackOp: true,
			prefix: "releasing message m-1 on " + testReceiverSub,
			call: func(ctx context.Context, r *Receiver, m *sources.Message) error {
				return r.Release(ctx, m, time.Minute)
			},
		},
		"DeadLetter publishing": {
			apiOp: opPublish, deadLetter: testDeadTopic,
			prefix: "publishing message m-1 to dead-letter topic " + testDeadTopic,
			call: func(ctx context.Context, r *Receiver, m *sources.Message) error {
				return r.DeadLetter(ctx, m, "failed", nil)
			},
		},
		"DeadLetter acknowledging": {
			apiOp: opAck, deadLetter: testDeadTopic, ackOp: true,
			prefix: "acknowledging dead-lettered message m-1 on " + testReceiverSub,
			call: func(ctx context.Context, r *Receiver, m *sources.Message) error {
				return r.DeadLetter(ctx, m, "failed", nil)
			},
		},
		"DeadLetter reading the subscription's policy": {
			apiOp: opGet, fresh: true,
			prefix: "reading Pub/Sub subscription " + testReceiverSub,
			call: func(ctx context.Context, r *Receiver, m *sources.Message) error {
				return r.DeadLetter(ctx, m, "failed", nil)
			},
		},
		"DeadLetter releasing without a dead-letter topic": {
			apiOp: opModify, ackOp: true,
			prefix: "releasing message m-1 on " + testReceiverSub,
			call: func(ctx context.Context, r *Receiver, m *sources.Message) error {
				return r.DeadLetter(ctx, m, "failed", nil)
			},
		},
	}
	for opName, op := range ops {
		for errName, tc := range errs {
			t.Run(opName+"/"+errName, func(t *testing.T) {
				ctx := context.Background()
				api := newFakeReceiverAPI([]*pubsubpb.ReceivedMessage{received("m-1", "")})
				r := newTestReceiver(t, api, op.deadLetter)
				m := &sources.Message{ID: "m-1", Queue: testReceiverSub, Handle: "h-m-1"}
				if !op.fresh {
					m = &receive(t, r, fixedNow())[0]
				}
				api.fail(op.apiOp, tc.err)
				err := op.call(ctx, r, m)
				if err == nil {
					t.Fatal("error = nil, want an error")
				}
				want := tc.wantOther
				if op.ackOp {
					want = tc.wantAck
				}
				wantMsg := op.prefix + ": " + tc.err.Error()
				if want != nil {
					wantMsg = op.prefix + ": " + want.Error() + ": " + tc.err.Error()
				}
				if diff := cmp.Diff(wantMsg, err.Error()); diff != "" {
					t.Errorf("error message mismatch (-want +got):\n%s", diff)
				}
				if !errors.Is(err, tc.err) {
					t.Errorf("error %v does not wrap the API error", err)
				}
				if got, want := status.Code(err), status.Code(tc.err); got != want {
					t.Errorf("status code of %v = %v, want %v (the gRPC error must stay wrapped)", err, got, want)
				}
				for _, kind := range []error{sources.ErrLeaseLost, sources.ErrNotFound, sources.ErrUnauthorized, sources.ErrThrottled, sources.ErrNoDeadLetter} {
					if got, want := errors.Is(err, kind), kind == want; got != want {
						t.Errorf("errors.Is(err, %q) = %v, want %v", kind, got, want)
					}
				}
				if sources.IsConfigError(err) {
					t.Errorf("error %v is a ConfigError", err)
				}
			})
		}
	}
}

// publishInput is the part of a PublishRequest the tests compare.
type publishInput struct {
	Topic, Data, OrderingKey string
	Attributes               map[string]string
}

func TestDeadLetter(t *testing.T) {
	numbered := func(prefix string, n int) map[string]string {
		out := map[string]string{}
		for i := range n {
			out[fmt.Sprintf("%s%03d", prefix, i)] = fmt.Sprintf("v%d", i)
		}
		return out
	}
	withAttributes := func(m *pubsubpb.ReceivedMessage, attrs map[string]string) *pubsubpb.ReceivedMessage {
		m.Message.Attributes = attrs
		return m
	}
	details := map[string]string{"kubedispatch-job": "work-abc", "kubedispatch-scaledjob": "ns/work", "kubedispatch-deliveries": "3"}
	cases := map[string]struct {
		deadLetter  string
		policyTopic string
		message     *pubsubpb.ReceivedMessage
		reason      string
		details     map[string]string
		want        publishInput
	}{
		"the configured topic wins over the subscription's policy": {
			deadLetter: testDeadTopic, policyTopic: testPolicyTopic,
			message: received("m-1", ""), reason: "failed",
			want: publishInput{Topic: testDeadTopic, Data: "body-m-1", Attributes: map[string]string{"kubedispatch-reason": "failed"}},
		},
		"without a configured topic, the subscription's policy topic": {
			policyTopic: testPolicyTopic,
			message:     received("m-1", ""), reason: "failed",
			want: publishInput{Topic: testPolicyTopic, Data: "body-m-1", Attributes: map[string]string{"kubedispatch-reason": "failed"}},
		},
		"reason and details, then the original's attributes; ours win": {
			deadLetter: testDeadTopic,
			message:    withAttributes(received("m-1", ""), map[string]string{"tenant": "acme", "kubedispatch-job": "old", "kubedispatch-reason": "old"}),
			reason:     "job failed: exit code 2",
			details:    details,
			want: publishInput{Topic: testDeadTopic, Data: "body-m-1", Attributes: map[string]string{
				"kubedispatch-reason":     "job failed: exit code 2",
				"kubedispatch-job":        "work-abc",
				"kubedispatch-scaledjob":  "ns/work",
				"kubedispatch-deliveries": "3",
				"tenant":                  "acme",
			}},
		},
		"the ordering key is not kept": {
			deadLetter: testDeadTopic,
			message:    received("m-1", "tenant-a"), reason: "failed",
			want: publishInput{Topic: testDeadTopic, Data: "body-m-1", Attributes: map[string]string{"kubedispatch-reason": "failed"}},
		},
		"a long reason is cut to 1024 bytes at a character boundary": {
			deadLetter: testDeadTopic,
			message:    received("m-1", ""), reason: strings.Repeat("x", 1022) + "€€",
			want: publishInput{Topic: testDeadTopic, Data: "body-m-1", Attributes: map[string]string{
				"kubedispatch-reason": strings.Repeat("x", 1022)}},
		},
		"a long detail is cut to 1024 bytes": {
			deadLetter: testDeadTopic,
			message:    received("m-1", ""), reason: "failed",
			details: map[string]string{"kubedispatch-job": strings.Repeat("j", 2000)},
			want: publishInput{Topic: testDeadTopic, Data: "body-m-1", Attributes: map[string]string{
				"kubedispatch-reason": "failed", "kubedispatch-job": strings.Repeat("j", 1024)}},
		},
		"at most 100 attributes: ours first, then the originals by name": {
			deadLetter: testDeadTopic,
			message:    withAttributes(received("m-1", ""), numbered("orig-", 120)),
			reason:     "failed",
			details:    map[string]string{"kubedispatch-b": "2", "kubedispatch-a": "1"},
			want: publishInput{Topic: testDeadTopic, Data: "body-m-1", Attributes: func() map[string]string {
				out := numbered("orig-", 97)
				out["kubedispatch-reason"], out["kubedispatch-a"], out["kubedispatch-b"] = "failed", "1", "2"
				return out
			}()},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			api := newFakeReceiverAPI([]*pubsubpb.ReceivedMessage{tc.message})
			if tc.policyTopic != "" {
				api.subscription.DeadLetterPolicy = &pubsubpb.DeadLetterPolicy{DeadLetterTopic: tc.policyTopic, MaxDeliveryAttempts: 5}
			}
			r := newTestReceiver(t, api, tc.deadLetter)
			m := receive(t, r, fixedNow())[0]
			if err := r.DeadLetter(context.Background(), &m, tc.reason, tc.details); err != nil {
				t.Fatalf("DeadLetter: %v", err)
			}
			if len(api.pubCalls) != 1 || len(api.pubCalls[0].GetMessages()) != 1 {
				t.Fatalf("Publish calls = %v, want one of one message", api.pubCalls)
			}
			in := api.pubCalls[0]
			pm := in.GetMessages()[0]
			got := publishInput{Topic: in.GetTopic(), Data: string(pm.GetData()), OrderingKey: pm.GetOrderingKey(), Attributes: pm.GetAttributes()}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Publish input mismatch (-want +got):\n%s", diff)
			}
			if n := len(pm.GetAttributes()); n > 100 {
				t.Errorf("published %d attributes, Pub/Sub allows 100", n)
			}
			if diff := cmp.Diff([]string{"h-m-1"}, api.acks(t)); diff != "" {
				t.Errorf("Acknowledge mismatch (-want +got):\n%s", diff)
			}
			if mods := api.modifications(t); len(mods) != 0 {
				t.Errorf("ModifyAckDeadline calls %v, want none", mods)
			}
		})
	}
}

func TestDeadLetterFailures(t *testing.T) {
	boom := status.Error(codes.Unavailable, "connection reset")
	lost := status.Error(codes.InvalidArgument, "Invalid ack id")
	cases := map[string]struct {
		deadLetter        string
		failOp            string
		failErr           error
		wantIs            []error
		wantPublishes     int
		wantAcks          []string
		wantModifications []string
		// wantHeld: the key stays held (a second message of it is not returned).
		wantHeld bool
	}{
		"a failed publish keeps the message": {
			deadLetter: testDeadTopic, failOp: opPublish, failErr: boom,
			wantIs: []error{boom}, wantPublishes: 1, wantHeld: true,
		},
		"a failed ack after the publish": {
			deadLetter: testDeadTopic, failOp: opAck, failErr: boom,
			wantIs: []error{boom}, wantPublishes: 1, wantAcks: []string{"h-a1"}, wantHeld: true,
		},
		"no dead-letter topic at all releases the message at once": {
			wantIs: []error{sources.ErrNoDeadLetter}, wantModifications: []string{"h-a1=0"},
		},
		"no dead-letter topic and a lost lease": {
			failOp: opModify, failErr: lost,
			wantIs: []error{sources.ErrLeaseLost}, wantModifications: []string{"h-a1=0"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			api := newFakeReceiverAPI([]*pubsubpb.ReceivedMessage{received("a1", "a")}, []*pubsubpb.ReceivedMessage{received("a2", "a")})
			r := newTestReceiver(t, api, tc.deadLetter)
			m := receive(t, r, fixedNow())[0]
			if tc.failOp != "" {
				api.fail(tc.failOp, tc.failErr)
			}
			err := r.DeadLetter(context.Background(), &m, "failed", map[string]string{"kubedispatch-job": "j"})
			for _, want := range tc.wantIs {
				if !errors.Is(err, want) {
					t.Errorf("DeadLetter error = %v, want one wrapping %v", err, want)
				}
			}
			if len(api.pubCalls) != tc.wantPublishes {
				t.Errorf("Publish called %d times, want %d", len(api.pubCalls), tc.wantPublishes)
			}
			if diff := cmp.Diff(tc.wantAcks, api.acks(t)); diff != "" {
				t.Errorf("Acknowledge mismatch (-want +got):\n%s", diff)
			}
			api.fail(opModify, nil)
			second := receive(t, r, fixedNow().Add(time.Second))
			if got := len(second) == 0; got != tc.wantHeld {
				t.Errorf("key held after DeadLetter = %v, want %v (second Receive: %v)", got, tc.wantHeld, ids(second))
			}
			wantModifications := tc.wantModifications
			if tc.wantHeld {
				wantModifications = append(wantModifications, "h-a2=0")
			}
			if diff := cmp.Diff(wantModifications, api.modifications(t)); diff != "" {
				t.Errorf("ModifyAckDeadline mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRelease(t *testing.T) {
	cases := map[string]struct {
		delay time.Duration
		want  int32
	}{
		"at once":                   {delay: 0, want: 0},
		"negative is at once":       {delay: -time.Second, want: 0},
		"whole seconds":             {delay: 10 * time.Second, want: 10},
		"a fraction rounds up":      {delay: 1500 * time.Millisecond, want: 2},
		"a millisecond rounds up":   {delay: time.Millisecond, want: 1},
		"exactly 600 s":             {delay: 10 * time.Minute, want: 600},
		"capped at Pub/Sub's 600 s": {delay: time.Hour, want: 600},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			api := newFakeReceiverAPI([]*pubsubpb.ReceivedMessage{received("m-1", "")})
			r := newTestReceiver(t, api, "")
			m := receive(t, r, fixedNow())[0]
			if err := r.Release(context.Background(), &m, tc.delay); err != nil {
				t.Fatalf("Release: %v", err)
			}
			if diff := cmp.Diff([]string{fmt.Sprintf("h-m-1=%d", tc.want)}, api.modifications(t)); diff != "" {
				t.Errorf("ModifyAckDeadline mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAckAndExtend(t *testing.T) {
	api := newFakeReceiverAPI([]*pubsubpb.ReceivedMessage{received("m-1", "")})
	api.subscription.AckDeadlineSeconds = 60
	r := newTestReceiver(t, api, "")
	ctx := context.Background()
	m := receive(t, r, fixedNow())[0]
	later := fixedNow().Add(20 * time.Second)
	until, err := r.Extend(ctx, &m, later)
	if err != nil {
		t.Fatalf("Extend: %v", err)
	}
	if want := later.Add(time.Minute); !until.Equal(want) {
		t.Errorf("Extend = %v, want %v", until, want)
	}
	if err := r.Ack(ctx, &m); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if diff := cmp.Diff([]string{"h-m-1=60"}, api.modifications(t)); diff != "" {
		t.Errorf("ModifyAckDeadline mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"h-m-1"}, api.acks(t)); diff != "" {
		t.Errorf("Acknowledge mismatch (-want +got):\n%s", diff)
	}
	if n := r.order.Len(); n != 0 {
		t.Errorf("%d messages held after Ack, want none", n)
	}
	for range 2 {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
}

// TestReceiveConcurrently runs Receive, Extend and Ack from several goroutines (for the race detector) and checks
// that no ordering key is handed out twice at once.
func TestReceiveConcurrently(t *testing.T) {
	var batches [][]*pubsubpb.ReceivedMessage
	for i := range 50 {
		batches = append(batches, []*pubsubpb.ReceivedMessage{received(fmt.Sprintf("a%d", i), "a"), received(fmt.Sprintf("b%d", i), "b")})
	}
	api := newFakeReceiverAPI(batches...)
	r := newTestReceiver(t, api, "")
	ctx := context.Background()
	var mu sync.Mutex
	holding := map[string]string{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				msgs, err := r.Receive(ctx, 10, 0, fixedNow())
				if err != nil {
					t.Errorf("Receive: %v", err)
					return
				}
				for i := range msgs {
					m := &msgs[i]
					mu.Lock()
					if other, ok := holding[m.Group]; ok {
						t.Errorf("key %s handed out twice: %s and %s", m.Group, other, m.ID)
					}
					holding[m.Group] = m.ID
					mu.Unlock()
					if _, err := r.Extend(ctx, m, fixedNow()); err != nil {
						t.Errorf("Extend: %v", err)
					}
					mu.Lock()
					delete(holding, m.Group)
					mu.Unlock()
					if err := r.Ack(ctx, m); err != nil {
						t.Errorf("Ack: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
}
