package framework

import (
	"context"
	"fmt"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"

	vkit "cloud.google.com/go/pubsub/v2/apiv1"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// PubSubRecorder is a gRPC proxy in front of the stack's Pub/Sub emulator for the calls a message-mode receiver
// makes (Pull, ModifyAckDeadline, Acknowledge, GetSubscription, Publish). It records each delivery that Pull returns
// (message id, ack id, when) and, per ack id, the ModifyAckDeadline calls and the acknowledgement, so a test can
// count redeliveries and check that leases were renewed in time. Before forwarding an Acknowledge it asks BeforeAck
// about every message in it: a dispatcher started with PUBSUB_EMULATOR_HOST=Host acks through it, so a test can
// check that each ack follows its Job's completion. Refuse makes it answer a subscription's calls with
// PermissionDenied, as Pub/Sub answers refused credentials.
type PubSubRecorder struct {
	pubsubpb.UnimplementedSubscriberServer
	pubsubpb.UnimplementedPublisherServer

	// Host is the proxy's host:port, for PUBSUB_EMULATOR_HOST.
	Host string
	// BeforeAck is called with the subscription and message id of each acknowledged message before the
	// Acknowledge is forwarded; an error is recorded as a violation (the ack still goes through).
	BeforeAck func(subscription, messageID string) error

	sub *vkit.SubscriptionAdminClient
	pub *vkit.TopicAdminClient

	inFlight atomic.Int64

	mu         sync.Mutex
	deliveries []*PubSubDelivery          // in the order Pull returned them
	byAckID    map[string]*PubSubDelivery // ack id -> its delivery
	pulled     map[string]int             // message id -> deliveries by Pull
	acked      map[string]bool            // message ids acknowledged (the emulator accepted the Acknowledge)
	refused    map[string]int             // refused subscription -> calls answered with PermissionDenied
	violations []string
}

// PubSubDelivery is one delivery of a message by Pull and what the receiver then did with its ack id.
type PubSubDelivery struct {
	Subscription string
	MessageID    string
	AckID        string
	// PulledAt is when the Pull response reached the recorder: the ack deadline counts from about then.
	PulledAt time.Time
	// Modified are the ModifyAckDeadline calls naming the ack id, in order.
	Modified []PubSubDeadline
	// AckedAt is when an Acknowledge of the ack id was accepted by the emulator; zero if none was.
	AckedAt time.Time
}

// PubSubDeadline is one ModifyAckDeadline of an ack id: when it reached the recorder and the deadline it set
// (seconds from then; 0 hands the message back).
type PubSubDeadline struct {
	At      time.Time
	Seconds int32
}

// RecordPubSub starts a PubSubRecorder for the test.
func (f *F) RecordPubSub() *PubSubRecorder {
	f.T.Helper()
	if stack.PubSubHost == "" {
		f.T.Fatal("the Pub/Sub emulator is not running")
	}
	opts := []option.ClientOption{option.WithEndpoint(stack.PubSubHost), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials()))}
	sub, err := vkit.NewSubscriptionAdminClient(context.Background(), opts...)
	if err != nil {
		f.T.Fatalf("building the recorder's subscriber client: %v", err)
	}
	pub, err := vkit.NewTopicAdminClient(context.Background(), opts...)
	if err != nil {
		f.T.Fatalf("building the recorder's publisher client: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.T.Fatal(err)
	}
	r := &PubSubRecorder{Host: l.Addr().String(), sub: sub, pub: pub, byAckID: map[string]*PubSubDelivery{},
		pulled: map[string]int{}, acked: map[string]bool{}, refused: map[string]int{}}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(r.count))
	pubsubpb.RegisterSubscriberServer(srv, r)
	pubsubpb.RegisterPublisherServer(srv, r)
	go func() { _ = srv.Serve(l) }()
	f.T.Cleanup(func() {
		srv.Stop()
		sub.Close()
		pub.Close()
	})
	return r
}

// count keeps InFlight.
func (r *PubSubRecorder) count(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	return handler(ctx, req)
}

// Refuse makes the recorder answer every Subscriber call naming subscription (GetSubscription, Pull,
// ModifyAckDeadline, Acknowledge) with PermissionDenied, without forwarding it. Call it before the dispatcher starts.
func (r *PubSubRecorder) Refuse(subscription string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.refused[subscription]; !ok {
		r.refused[subscription] = 0
	}
}

// Refused returns how many calls naming subscription were answered with PermissionDenied.
func (r *PubSubRecorder) Refused(subscription string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused[subscription]
}

// refuse returns the PermissionDenied answer when subscription is refused, else nil.
func (r *PubSubRecorder) refuse(subscription string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.refused[subscription]; !ok {
		return nil
	}
	r.refused[subscription]++
	return status.Error(codes.PermissionDenied, "User not authorized to perform this action.")
}

// Pull forwards and records the deliveries.
func (r *PubSubRecorder) Pull(ctx context.Context, req *pubsubpb.PullRequest) (*pubsubpb.PullResponse, error) {
	if err := r.refuse(req.GetSubscription()); err != nil {
		return nil, err
	}
	resp, err := r.sub.Pull(ctx, req)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	r.mu.Lock()
	for _, m := range resp.GetReceivedMessages() {
		d := &PubSubDelivery{Subscription: req.GetSubscription(), MessageID: m.GetMessage().GetMessageId(), AckID: m.GetAckId(), PulledAt: now}
		r.deliveries = append(r.deliveries, d)
		r.byAckID[d.AckID] = d
		r.pulled[d.MessageID]++
	}
	r.mu.Unlock()
	return resp, nil
}

// Acknowledge checks each message with BeforeAck, then forwards.
func (r *PubSubRecorder) Acknowledge(ctx context.Context, req *pubsubpb.AcknowledgeRequest) (*emptypb.Empty, error) {
	if err := r.refuse(req.GetSubscription()); err != nil {
		return nil, err
	}
	for _, id := range req.GetAckIds() {
		r.mu.Lock()
		d, ok := r.byAckID[id]
		r.mu.Unlock()
		var verr error
		switch {
		case !ok:
			verr = fmt.Errorf("ack id %.20s... was never pulled through the recorder", id)
		case r.BeforeAck != nil:
			if err := r.BeforeAck(req.GetSubscription(), d.MessageID); err != nil {
				verr = fmt.Errorf("message %s acknowledged: %w", d.MessageID, err)
			}
		}
		if verr != nil {
			r.mu.Lock()
			r.violations = append(r.violations, verr.Error())
			r.mu.Unlock()
		}
	}
	if err := r.sub.Acknowledge(ctx, req); err != nil {
		return nil, err
	}
	now := time.Now()
	r.mu.Lock()
	for _, id := range req.GetAckIds() {
		if d, ok := r.byAckID[id]; ok {
			if d.AckedAt.IsZero() {
				d.AckedAt = now
			}
			r.acked[d.MessageID] = true
		}
	}
	r.mu.Unlock()
	return &emptypb.Empty{}, nil
}

// ModifyAckDeadline records the call per ack id, then forwards.
func (r *PubSubRecorder) ModifyAckDeadline(ctx context.Context, req *pubsubpb.ModifyAckDeadlineRequest) (*emptypb.Empty, error) {
	if err := r.refuse(req.GetSubscription()); err != nil {
		return nil, err
	}
	now := time.Now()
	r.mu.Lock()
	for _, id := range req.GetAckIds() {
		if d, ok := r.byAckID[id]; ok {
			d.Modified = append(d.Modified, PubSubDeadline{At: now, Seconds: req.GetAckDeadlineSeconds()})
		}
	}
	r.mu.Unlock()
	if err := r.sub.ModifyAckDeadline(ctx, req); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// GetSubscription forwards.
func (r *PubSubRecorder) GetSubscription(ctx context.Context, req *pubsubpb.GetSubscriptionRequest) (*pubsubpb.Subscription, error) {
	if err := r.refuse(req.GetSubscription()); err != nil {
		return nil, err
	}
	return r.sub.GetSubscription(ctx, req)
}

// Publish forwards (the dead-letter topic).
func (r *PubSubRecorder) Publish(ctx context.Context, req *pubsubpb.PublishRequest) (*pubsubpb.PublishResponse, error) {
	return r.pub.Publish(ctx, req)
}

// Acked returns how many distinct messages were acknowledged, and the violations BeforeAck reported.
func (r *PubSubRecorder) Acked() (int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.acked), append([]string(nil), r.violations...)
}

// Delivered returns, per message id, how many times Pull delivered the message.
func (r *PubSubRecorder) Delivered() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.pulled)
}

// Deliveries returns a copy of every delivery so far, in the order Pull returned them.
func (r *PubSubRecorder) Deliveries() []PubSubDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]PubSubDelivery, len(r.deliveries))
	for i, d := range r.deliveries {
		out[i] = *d
		out[i].Modified = append([]PubSubDeadline(nil), d.Modified...)
	}
	return out
}

// Unacked returns the ids of the messages delivered but not acknowledged so far.
func (r *PubSubRecorder) Unacked() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]bool{}
	for id := range r.pulled {
		if !r.acked[id] {
			out[id] = true
		}
	}
	return out
}

// InFlight returns how many calls the recorder is serving now. After a client is killed its calls end (their
// contexts are cancelled when the connection closes); a test waits for 0 before reading what the client left.
func (r *PubSubRecorder) InFlight() int {
	return int(r.inFlight.Load())
}
