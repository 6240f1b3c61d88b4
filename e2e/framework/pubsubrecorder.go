package framework

import (
	"context"
	"fmt"
	"net"
	"sync"

	vkit "cloud.google.com/go/pubsub/v2/apiv1"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"
)

// PubSubRecorder is a gRPC proxy in front of the stack's Pub/Sub emulator for the calls a message-mode receiver
// makes (Pull, ModifyAckDeadline, Acknowledge, GetSubscription, Publish). It learns each ack id's message from the
// Pull responses and, before forwarding an Acknowledge, asks BeforeAck about every message in it: a dispatcher
// started with PUBSUB_EMULATOR_HOST=Host acks through it, so a test can check that each ack follows its Job's
// completion.
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

	mu         sync.Mutex
	messages   map[string]string // ack id -> message id
	acked      map[string]bool   // message ids acknowledged
	violations []string
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
	r := &PubSubRecorder{Host: l.Addr().String(), sub: sub, pub: pub, messages: map[string]string{}, acked: map[string]bool{}}
	srv := grpc.NewServer()
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

// Pull forwards and learns the ack ids.
func (r *PubSubRecorder) Pull(ctx context.Context, req *pubsubpb.PullRequest) (*pubsubpb.PullResponse, error) {
	resp, err := r.sub.Pull(ctx, req)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	for _, m := range resp.GetReceivedMessages() {
		r.messages[m.GetAckId()] = m.GetMessage().GetMessageId()
	}
	r.mu.Unlock()
	return resp, nil
}

// Acknowledge checks each message with BeforeAck, then forwards.
func (r *PubSubRecorder) Acknowledge(ctx context.Context, req *pubsubpb.AcknowledgeRequest) (*emptypb.Empty, error) {
	for _, id := range req.GetAckIds() {
		r.mu.Lock()
		msg, ok := r.messages[id]
		r.mu.Unlock()
		var verr error
		switch {
		case !ok:
			verr = fmt.Errorf("ack id %.20s... was never pulled through the recorder", id)
		case r.BeforeAck != nil:
			if err := r.BeforeAck(req.GetSubscription(), msg); err != nil {
				verr = fmt.Errorf("message %s acknowledged: %w", msg, err)
			}
		}
		r.mu.Lock()
		if verr != nil {
			r.violations = append(r.violations, verr.Error())
		}
		if ok {
			r.acked[msg] = true
		}
		r.mu.Unlock()
	}
	if err := r.sub.Acknowledge(ctx, req); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// ModifyAckDeadline forwards.
func (r *PubSubRecorder) ModifyAckDeadline(ctx context.Context, req *pubsubpb.ModifyAckDeadlineRequest) (*emptypb.Empty, error) {
	if err := r.sub.ModifyAckDeadline(ctx, req); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// GetSubscription forwards.
func (r *PubSubRecorder) GetSubscription(ctx context.Context, req *pubsubpb.GetSubscriptionRequest) (*pubsubpb.Subscription, error) {
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
