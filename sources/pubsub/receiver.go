package pubsub

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	vkit "cloud.google.com/go/pubsub/v2/apiv1"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kubedispatch/kubedispatch/sources"
)

// ReasonAttribute is the message attribute DeadLetter sets on the dead-letter copy: why the message was
// dead-lettered (at most MaxReasonBytes bytes).
const ReasonAttribute = "kubedispatch-reason"

// MaxReasonBytes is the longest reason DeadLetter sends (Pub/Sub's limit of an attribute value); a longer one is cut
// at a UTF-8 character boundary.
const MaxReasonBytes = 1024

// DeadLetterField names spec.dispatch.deadLetter.topic in the *sources.ConfigError of a bad dead-letter topic.
const DeadLetterField = "dispatch.deadLetter.topic"

// Keys of sources.Message.System that Receive sets (each only when Pub/Sub gives a value).
const (
	// SystemPublishTime is when Pub/Sub accepted the message, RFC 3339 with nanoseconds, UTC.
	SystemPublishTime = "publish_time"
	// SystemOrderingKey is the message's ordering key.
	SystemOrderingKey = "ordering_key"
	// SystemDeliveryAttempt is Pub/Sub's delivery attempt count, set only on subscriptions with a dead-letter policy.
	SystemDeliveryAttempt = "delivery_attempt"
)

// Limits of the receiver, most of them Pub/Sub's own.
const (
	// minLease is the shortest lease granted, whatever the subscription's ack deadline (Pub/Sub's minimum and
	// default ack deadline); it is also Lease before the subscription has been read.
	minLease = 10 * time.Second
	// maxAckDeadlineSeconds is Pub/Sub's longest ack deadline, of a subscription and of ModifyAckDeadline.
	maxAckDeadlineSeconds = 600
	// maxLease is the longest lease granted.
	maxLease = maxAckDeadlineSeconds * time.Second
	// maxPull is the most messages one Pull returns.
	maxPull = 1000
	// minPullWait is the shortest deadline of a Pull: a unary Pull cannot return immediately (return_immediately is
	// deprecated), so a Receive without a wait still gives Pub/Sub a moment to answer.
	minPullWait = time.Second
	// maxAttributes is Pub/Sub's limit of attributes per message.
	maxAttributes = 100
	// maxAttributeValueBytes is Pub/Sub's limit of an attribute value.
	maxAttributeValueBytes = 1024
	// permanentInvalidAckID is the ErrorInfo reason an exactly-once subscription gives for an ack id that is no longer
	// valid; reasons starting with transientAckFailure may be retried.
	permanentInvalidAckID = "PERMANENT_FAILURE_INVALID_ACK_ID"
	transientAckFailure   = "TRANSIENT_"
	// envEmulatorHost is the variable Google's client libraries read: the host:port of a Pub/Sub emulator, which
	// gets no TLS and no credentials.
	envEmulatorHost = "PUBSUB_EMULATOR_HOST"
)

// ReceiverAPI is the set of Pub/Sub calls the Receiver makes: the Subscriber service's unary Pull, ModifyAckDeadline,
// Acknowledge and GetSubscription, and the Publisher service's Publish. NewReceiver implements it over the SDK's
// SubscriptionAdminClient and TopicAdminClient; tests pass a fake.
type ReceiverAPI interface {
	// Pull is the unary Subscriber.Pull: it returns when messages are available or ctx's deadline is near.
	Pull(ctx context.Context, req *pubsubpb.PullRequest) (*pubsubpb.PullResponse, error)
	// ModifyAckDeadline sets the ack deadline of req's ack ids, counted from now (0: redeliver at once).
	ModifyAckDeadline(ctx context.Context, req *pubsubpb.ModifyAckDeadlineRequest) error
	// Acknowledge acknowledges req's ack ids.
	Acknowledge(ctx context.Context, req *pubsubpb.AcknowledgeRequest) error
	// Publish publishes req's messages to its topic.
	Publish(ctx context.Context, req *pubsubpb.PublishRequest) (*pubsubpb.PublishResponse, error)
	// GetSubscription reads a subscription's configuration.
	GetSubscription(ctx context.Context, req *pubsubpb.GetSubscriptionRequest) (*pubsubpb.Subscription, error)
}

// Receiver is the gcp-pubsub message-mode sources.Receiver: it pulls messages of the trigger's subscription with unary
// Pull calls (so it receives only as many as the caller has free slots for), leases them with the subscription's ack
// deadline and settles them. It is safe for concurrent use.
//
// The lease is the subscription's ack deadline (at least 10 s, at most 600 s), read with GetSubscription on the first
// Receive and cached; Extend sets the ack deadline of a message to the lease from now, Release to the delay.
//
// Lost leases: Pub/Sub (and its emulator) usually accept Acknowledge and ModifyAckDeadline with an expired ack id
// and report success; only subscriptions with exactly-once delivery reject it (ErrorInfo reason
// PERMANENT_FAILURE_INVALID_ACK_ID), which the Receiver reports as sources.ErrLeaseLost, as it does InvalidArgument
// and FailedPrecondition answers to those calls. Otherwise a lost lease is noticed only as a redelivery of the
// message (same ID, new Handle).
//
// Ordering keys: the Receiver holds one message per ordering key from Receive until it is settled (Ack, Release,
// DeadLetter), its lease is lost or runs out, and never returns a second message of a held key. Pub/Sub, on a
// subscription with message ordering, does not deliver a key's next message while one is outstanding, but one Pull
// may return several messages of a key; Receive keeps the first of each key and hands the others back at once
// (ModifyAckDeadline 0), without returning them. It does so on any subscription: without message ordering Pub/Sub
// does not order a key's messages, and the Receiver then only keeps them from running at the same time.
//
// Dead letters: DeadLetter publishes a copy to the configured dead-letter topic or, without one, to the topic of the
// subscription's own dead-letter policy, and then acknowledges the message; the caller's credentials need publish
// permission on that topic. Pub/Sub does not deduplicate, so a DeadLetter retried after a failed acknowledgement
// publishes a second copy. On a subscription with a dead-letter policy every delivery counts (each Release and each
// lost lease included), and once max_delivery_attempts are used up Pub/Sub forwards the message itself, with its own
// CloudPubSubDeadLetter* attributes but without the Receiver's: keep max_delivery_attempts above the dispatcher's
// attempts. ReceiveCount is Pub/Sub's delivery_attempt, 0 on subscriptions without a dead-letter policy.
type Receiver struct {
	meta Metadata
	// subscription is the subscription's full name, projects/<p>/subscriptions/<s>.
	subscription string
	api          ReceiverAPI
	// deadLetter is the configured dead-letter topic's full name, or "".
	deadLetter string
	close      func() error

	mu sync.Mutex
	// sub is the subscription's configuration once read, nil before.
	sub *subscriptionInfo
	// order keeps ordering keys in order: one held message per key.
	order *sources.GroupOrder
}

// subscriptionInfo is what the Receiver uses of a subscription's configuration.
type subscriptionInfo struct {
	// lease is the ack deadline, within [minLease, maxLease].
	lease time.Duration
	// deadLetterTopic is the topic of the subscription's dead-letter policy, or "".
	deadLetterTopic string
}

var _ sources.Receiver = (*Receiver)(nil)

// NewReceiver is the gcp-pubsub sources.ReceiverFactory. It validates cfg as New does (the same trigger metadata and
// authentication; the trigger must name a subscription) and deadLetterTopic when it is set (projects/<p>/topics/<t>,
// or a topic ID in the subscription's project). The Pub/Sub clients are created on first use, so it makes no network
// call. With PUBSUB_EMULATOR_HOST set (as Google's libraries do) the clients dial that emulator without TLS and
// without credentials.
func NewReceiver(_ context.Context, cfg sources.Config, deadLetterTopic string) (sources.Receiver, error) {
	emulator := os.Getenv(envEmulatorHost)
	m, key, err := parseReceiver(cfg)
	if err != nil {
		return nil, err
	}
	if m.Auth == AuthNone && emulator == "" {
		return nil, sources.ConfigErrorf(sources.MetadataField(keyMonitoringInsecure),
			"sends no credentials, and message mode needs them for Pub/Sub (or %s on the controller, for an emulator)", envEmulatorHost)
	}
	deadLetter, err := deadLetterTopicName(m, deadLetterTopic)
	if err != nil {
		return nil, err
	}
	api := &grpcAPI{opts: receiverClientOptions(m, key, emulator)}
	r := newReceiver(m, api, deadLetter)
	r.close = api.Close
	return r, nil
}

// NewReceiverWithAPI validates cfg and deadLetter as NewReceiver does and returns a Receiver that calls api.
// Authentication parameters are validated but not used: api carries its own credentials. Close does not close api.
func NewReceiverWithAPI(cfg sources.Config, api ReceiverAPI, deadLetter string) (*Receiver, error) {
	m, _, err := parseReceiver(cfg)
	if err != nil {
		return nil, err
	}
	topic, err := deadLetterTopicName(m, deadLetter)
	if err != nil {
		return nil, err
	}
	return newReceiver(m, api, topic), nil
}

func newReceiver(m Metadata, api ReceiverAPI, deadLetter string) *Receiver {
	return &Receiver{
		meta:         m,
		subscription: m.ResourceName(),
		api:          api,
		deadLetter:   deadLetter,
		close:        func() error { return nil },
		order:        sources.NewGroupOrder(),
	}
}

// parseReceiver parses cfg as the count-mode source does and requires a subscription.
func parseReceiver(cfg sources.Config) (Metadata, []byte, error) {
	// A topic trigger is refused as such before the count-mode rules about topic metrics would confuse the message.
	hasTopic := cfg.Metadata[keyTopicName] != "" || cfg.Metadata[keyTopicName+"FromEnv"] != ""
	hasSub := cfg.Metadata[keySubscriptionName] != "" || cfg.Metadata[keySubscriptionName+"FromEnv"] != ""
	if hasTopic && !hasSub {
		return Metadata{}, nil, sources.ConfigErrorf(sources.MetadataField(keyTopicName),
			"cannot be received from: message mode needs %s (or its FromEnv variant)", keySubscriptionName)
	}
	m, key, err := parse(cfg, os.Getenv(envGoogleCloudProject))
	if err != nil {
		return Metadata{}, nil, err
	}
	if m.Resource != ResourceSubscription {
		return Metadata{}, nil, sources.ConfigErrorf(sources.MetadataField(keyTopicName),
			"cannot be received from: message mode needs %s (or its FromEnv variant)", keySubscriptionName)
	}
	return m, key, nil
}

// deadLetterTopicName validates the dead-letter topic (empty, projects/<p>/topics/<t>, or a topic ID in m's project)
// and returns its full name.
func deadLetterTopicName(m Metadata, raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	project, id := m.Project, raw
	if strings.HasPrefix(raw, "projects/") {
		parts := strings.Split(raw, "/")
		if len(parts) != 4 || parts[2] != "topics" {
			return "", sources.ConfigErrorf(DeadLetterField, "%q is not a topic ID nor projects/<project>/topics/<topic>", raw)
		}
		project, id = parts[1], parts[3]
		if !projectIDPattern.MatchString(project) {
			return "", sources.ConfigErrorf(DeadLetterField, "%q has an invalid project ID %q", raw, project)
		}
	}
	if !resourceIDPattern.MatchString(id) || strings.HasPrefix(strings.ToLower(id), "goog") {
		return "", sources.ConfigErrorf(DeadLetterField,
			"%q is not a valid topic ID (3-255 letters, digits or -_.~+%%, starting with a letter, not with goog)", id)
	}
	return "projects/" + project + "/topics/" + id, nil
}

// receiverClientOptions returns the Pub/Sub clients' options: for the emulator at emulator (when not empty) no TLS and
// no credentials, else the trigger's credentials as the count-mode source uses them. The monitoring endpoint keys are
// Cloud Monitoring's and do not apply.
func receiverClientOptions(m Metadata, key []byte, emulator string) []option.ClientOption {
	if emulator != "" {
		return []option.ClientOption{
			option.WithEndpoint(emulator),
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		}
	}
	m.MonitoringEndpoint, m.MonitoringInsecure = "", false
	return clientOptions(m, key)
}

// Metadata returns the parsed trigger metadata.
func (r *Receiver) Metadata() Metadata {
	return r.meta
}

// Subscription returns the full name of the subscription the Receiver pulls from.
func (r *Receiver) Subscription() string {
	return r.subscription
}

// Lease is the ack deadline each Receive and Extend grants: the subscription's, within [10 s, 600 s], once the first
// Receive has read it; 10 s (Pub/Sub's default) before.
func (r *Receiver) Lease() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sub == nil {
		return minLease
	}
	return r.sub.lease
}

// subscriptionInfo returns the subscription's configuration, reading it the first time.
func (r *Receiver) subscriptionInfo(ctx context.Context) (subscriptionInfo, error) {
	r.mu.Lock()
	info := r.sub
	r.mu.Unlock()
	if info != nil {
		return *info, nil
	}
	s, err := r.api.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: r.subscription})
	if err != nil {
		return subscriptionInfo{}, wrapError(err, "", "reading Pub/Sub subscription %s", r.subscription)
	}
	lease := min(max(time.Duration(s.GetAckDeadlineSeconds())*time.Second, minLease), maxLease)
	info = &subscriptionInfo{lease: lease, deadLetterTopic: s.GetDeadLetterPolicy().GetDeadLetterTopic()}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sub == nil {
		r.sub = info
	}
	return *r.sub, nil
}

// Receive makes one unary Pull call for at most min(maxMessages, 1000) messages with a deadline of wait (at least
// 1 s), and returns the messages leased for Lease from now. Pub/Sub answers as soon as it has messages; a Pull that
// reaches its deadline without any is no messages and no error. Of an ordering key it returns only the first message,
// and none while a message of the key is held; those it hands back at once, in one ModifyAckDeadline call whose
// failure is not reported (they are then redelivered when their ack deadline runs out). maxMessages <= 0 returns no
// messages without a call.
func (r *Receiver) Receive(ctx context.Context, maxMessages int, wait time.Duration, now time.Time) ([]sources.Message, error) {
	if maxMessages <= 0 {
		return nil, nil
	}
	info, err := r.subscriptionInfo(ctx)
	if err != nil {
		return nil, err
	}
	pullCtx, cancel := context.WithTimeout(ctx, max(wait, minPullWait))
	resp, err := r.api.Pull(pullCtx, &pubsubpb.PullRequest{
		Subscription: r.subscription,
		MaxMessages:  int32(min(maxMessages, maxPull)),
	})
	cancel()
	if err != nil {
		if ctx.Err() == nil && (status.Code(err) == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded)) {
			// The wait passed without messages.
			return nil, nil
		}
		return nil, wrapError(err, "", "pulling messages from %s", r.subscription)
	}
	received := resp.GetReceivedMessages()
	if len(received) == 0 {
		return nil, nil
	}
	until := now.Add(info.lease)
	msgs := make([]sources.Message, 0, len(received))
	for _, raw := range received {
		msgs = append(msgs, r.toMessage(raw, until))
	}
	kept, extraMsgs := r.order.Admit(msgs, now)
	extras := make([]string, 0, len(extraMsgs))
	for _, m := range extraMsgs {
		extras = append(extras, m.Handle)
	}
	if len(extras) > 0 {
		// Best effort (see the doc comment): the messages are not ours to report on.
		_ = r.api.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{
			Subscription:       r.subscription,
			AckIds:             extras,
			AckDeadlineSeconds: 0,
		})
	}
	return kept, nil
}

// settled frees m's ordering key when err says m is no longer held: nil (settled) or a lost lease.
func (r *Receiver) settled(m *sources.Message, err error) { r.order.Settled(m, err) }

// toMessage maps a received Pub/Sub message to a sources.Message leased until until.
func (r *Receiver) toMessage(raw *pubsubpb.ReceivedMessage, until time.Time) sources.Message {
	pm := raw.GetMessage()
	m := sources.Message{
		ID:           pm.GetMessageId(),
		Queue:        r.subscription,
		Body:         pm.GetData(),
		ReceiveCount: int(raw.GetDeliveryAttempt()),
		Group:        pm.GetOrderingKey(),
		LeaseUntil:   until,
		Handle:       raw.GetAckId(),
	}
	if attrs := pm.GetAttributes(); len(attrs) > 0 {
		m.Attributes = maps.Clone(attrs)
	}
	system := map[string]string{}
	if pt := pm.GetPublishTime(); pt != nil {
		m.EnqueuedAt = pt.AsTime()
		system[SystemPublishTime] = m.EnqueuedAt.Format(time.RFC3339Nano)
	}
	if m.Group != "" {
		system[SystemOrderingKey] = m.Group
	}
	if m.ReceiveCount > 0 {
		system[SystemDeliveryAttempt] = strconv.Itoa(m.ReceiveCount)
	}
	if len(system) > 0 {
		m.System = system
	}
	return m
}

// Extend renews m's lease: its ack deadline becomes Lease from now. It returns now + Lease.
func (r *Receiver) Extend(ctx context.Context, m *sources.Message, now time.Time) (time.Time, error) {
	lease := r.Lease()
	err := r.modifyAckDeadline(ctx, m, lease)
	if err != nil {
		err = wrapError(err, m.Handle, "extending the ack deadline of message %s on %s", m.ID, r.subscription)
		r.settled(m, err) // a lost lease frees the key
		return time.Time{}, err
	}
	until := now.Add(lease)
	r.order.Extended(m.ID, until)
	return until, nil
}

// Ack acknowledges m: Pub/Sub does not deliver it again.
func (r *Receiver) Ack(ctx context.Context, m *sources.Message) error {
	err := r.acknowledge(ctx, m, "acknowledging message %s on %s")
	r.settled(m, err)
	return err
}

// acknowledge acknowledges m, wrapping an error with the gerund format (which takes m's ID and the subscription).
func (r *Receiver) acknowledge(ctx context.Context, m *sources.Message, format string) error {
	err := r.api.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: r.subscription, AckIds: []string{m.Handle}})
	if err != nil {
		return wrapError(err, m.Handle, format, m.ID, r.subscription)
	}
	return nil
}

// Release hands m back: its ack deadline becomes delay from now, rounded up to whole seconds and capped at Pub/Sub's
// 600 s (0: redelivered at once).
func (r *Receiver) Release(ctx context.Context, m *sources.Message, delay time.Duration) error {
	err := r.modifyAckDeadline(ctx, m, delay)
	if err != nil {
		err = wrapError(err, m.Handle, "releasing message %s on %s", m.ID, r.subscription)
	}
	r.settled(m, err)
	return err
}

// modifyAckDeadline sets m's ack deadline to d from now (see ackDeadlineSeconds). Like Acknowledge, it usually
// succeeds with an expired ack id, without acting on the redelivered message: Pub/Sub and its emulator reject only
// ack ids they cannot parse (InvalidArgument "Invalid ack id"), and exactly-once subscriptions expired ones.
func (r *Receiver) modifyAckDeadline(ctx context.Context, m *sources.Message, d time.Duration) error {
	return r.api.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{
		Subscription:       r.subscription,
		AckIds:             []string{m.Handle},
		AckDeadlineSeconds: ackDeadlineSeconds(d),
	})
}

// DeadLetter publishes a copy of m to the dead-letter topic and then acknowledges m. The topic is the configured one
// or, without one, the topic of the subscription's dead-letter policy (read as for the lease). The copy has m's data
// and at most 100 attributes, in this order of precedence: ReasonAttribute (reason, cut to MaxReasonBytes), details
// sorted by key (values cut to 1024 bytes), then m's own attributes sorted by name; it has no ordering key (the
// topic may not accept one). A failed publish leaves m held. Without any dead-letter topic it releases m at once and
// returns an error wrapping sources.ErrNoDeadLetter (or the release's error).
func (r *Receiver) DeadLetter(ctx context.Context, m *sources.Message, reason string, details map[string]string) error {
	topic := r.deadLetter
	if topic == "" {
		info, err := r.subscriptionInfo(ctx)
		if err != nil {
			return err
		}
		topic = info.deadLetterTopic
	}
	if topic == "" {
		if err := r.Release(ctx, m, 0); err != nil {
			return err
		}
		return fmt.Errorf("dead-lettering message %s of %s: %w", m.ID, r.subscription, sources.ErrNoDeadLetter)
	}
	_, err := r.api.Publish(ctx, &pubsubpb.PublishRequest{
		Topic: topic,
		Messages: []*pubsubpb.PubsubMessage{{
			Data:       m.Body,
			Attributes: deadLetterAttributes(m.Attributes, reason, details),
		}},
	})
	if err != nil {
		return wrapError(err, "", "publishing message %s to dead-letter topic %s", m.ID, topic)
	}
	err = r.acknowledge(ctx, m, "acknowledging dead-lettered message %s on %s")
	r.settled(m, err)
	return err
}

// deadLetterAttributes builds the dead-letter copy's attributes: reason, details by key, then the original attributes
// by name, at most maxAttributes in all, each value at most maxAttributeValueBytes.
func deadLetterAttributes(original map[string]string, reason string, details map[string]string) map[string]string {
	out := make(map[string]string, min(len(original)+len(details)+1, maxAttributes))
	add := func(name, value string) {
		if len(out) >= maxAttributes {
			return
		}
		if _, ok := out[name]; ok {
			return
		}
		out[name] = sources.TruncateUTF8(value, maxAttributeValueBytes)
	}
	add(ReasonAttribute, reason) // MaxReasonBytes is the value limit
	for _, k := range slices.Sorted(maps.Keys(details)) {
		add(k, details[k])
	}
	for _, k := range slices.Sorted(maps.Keys(original)) {
		add(k, original[k])
	}
	return out
}

// Close closes the Pub/Sub clients, if any were created; it is safe to call more than once. Later calls fail.
func (r *Receiver) Close() error {
	return r.close()
}

// ackDeadlineSeconds converts d to an ack deadline: whole seconds rounded up, at most 600; 0 for d <= 0.
func ackDeadlineSeconds(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	return int32(min((d+time.Second-1)/time.Second, maxAckDeadlineSeconds))
}

// wrapError wraps a Pub/Sub error once with the gerund phrase format (and args), adding the sources error it maps
// to. ackID is the ack id of an ack operation (Acknowledge, ModifyAckDeadline), "" for other calls.
func wrapError(err error, ackID, format string, args ...any) error {
	action := fmt.Sprintf(format, args...)
	if kind := errorKind(err, ackID); kind != nil {
		return fmt.Errorf("%s: %w: %w", action, kind, err)
	}
	return fmt.Errorf("%s: %w", action, err)
}

// errorKind maps a Pub/Sub error to the sources error of the Receiver contract, or nil for a transient one:
// sources.ErrNotFound for NotFound (the subscription or topic); sources.ErrUnauthorized for PermissionDenied and
// Unauthenticated; sources.ErrThrottled for ResourceExhausted; and, for an ack operation on ackID, sources.ErrLeaseLost
// for InvalidArgument and FailedPrecondition (an invalid or expired ack id) and for the exactly-once ErrorInfo reason
// PERMANENT_FAILURE_INVALID_ACK_ID, while a TRANSIENT_ reason for ackID is transient whatever the code.
func errorKind(err error, ackID string) error {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	if ackID != "" {
		switch reason := ackIDFailure(st, ackID); {
		case strings.HasPrefix(reason, transientAckFailure):
			return nil
		case reason == permanentInvalidAckID:
			return sources.ErrLeaseLost
		}
	}
	switch st.Code() {
	case codes.NotFound:
		return sources.ErrNotFound
	case codes.PermissionDenied, codes.Unauthenticated:
		return sources.ErrUnauthorized
	case codes.ResourceExhausted:
		return sources.ErrThrottled
	case codes.InvalidArgument, codes.FailedPrecondition:
		if ackID != "" {
			return sources.ErrLeaseLost
		}
	}
	return nil
}

// ackIDFailure returns the failure reason an exactly-once subscription gives for ackID in the ErrorInfo details of
// st (metadata: ack id -> reason), or "".
func ackIDFailure(st *status.Status, ackID string) string {
	for _, d := range st.Details() {
		if info, ok := d.(interface{ GetMetadata() map[string]string }); ok {
			if reason, ok := info.GetMetadata()[ackID]; ok {
				return reason
			}
		}
	}
	return ""
}

// errReceiverClosed is returned by calls after Close.
var errReceiverClosed = errors.New("receiver is closed")

// grpcAPI is the ReceiverAPI over the SDK's gRPC clients. Each client is created on first use: the subscriber on the
// first subscriber call, the publisher only when a dead letter is published.
type grpcAPI struct {
	opts []option.ClientOption

	mu         sync.Mutex
	subscriber *vkit.SubscriptionAdminClient
	publisher  *vkit.TopicAdminClient
	closed     bool
}

var _ ReceiverAPI = (*grpcAPI)(nil)

// subscriberClient returns the subscriber client, creating it the first time.
func (c *grpcAPI) subscriberClient(ctx context.Context) (*vkit.SubscriptionAdminClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errReceiverClosed
	}
	if c.subscriber == nil {
		// The client outlives this call: do not let the caller's cancellation reach it.
		client, err := vkit.NewSubscriptionAdminClient(context.WithoutCancel(ctx), c.opts...)
		if err != nil {
			return nil, fmt.Errorf("creating Pub/Sub subscriber client: %w", err)
		}
		// One Pull call is one attempt within the caller's wait: the SDK's retries of Unavailable and Internal
		// would run until the deadline and turn an unreachable service into "no messages".
		client.CallOptions.Pull = nil
		c.subscriber = client
	}
	return c.subscriber, nil
}

// publisherClient returns the publisher client, creating it the first time.
func (c *grpcAPI) publisherClient(ctx context.Context) (*vkit.TopicAdminClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errReceiverClosed
	}
	if c.publisher == nil {
		client, err := vkit.NewTopicAdminClient(context.WithoutCancel(ctx), c.opts...)
		if err != nil {
			return nil, fmt.Errorf("creating Pub/Sub publisher client: %w", err)
		}
		c.publisher = client
	}
	return c.publisher, nil
}

// Pull implements ReceiverAPI.
func (c *grpcAPI) Pull(ctx context.Context, req *pubsubpb.PullRequest) (*pubsubpb.PullResponse, error) {
	client, err := c.subscriberClient(ctx)
	if err != nil {
		return nil, err
	}
	return client.Pull(ctx, req)
}

// ModifyAckDeadline implements ReceiverAPI.
func (c *grpcAPI) ModifyAckDeadline(ctx context.Context, req *pubsubpb.ModifyAckDeadlineRequest) error {
	client, err := c.subscriberClient(ctx)
	if err != nil {
		return err
	}
	return client.ModifyAckDeadline(ctx, req)
}

// Acknowledge implements ReceiverAPI.
func (c *grpcAPI) Acknowledge(ctx context.Context, req *pubsubpb.AcknowledgeRequest) error {
	client, err := c.subscriberClient(ctx)
	if err != nil {
		return err
	}
	return client.Acknowledge(ctx, req)
}

// GetSubscription implements ReceiverAPI.
func (c *grpcAPI) GetSubscription(ctx context.Context, req *pubsubpb.GetSubscriptionRequest) (*pubsubpb.Subscription, error) {
	client, err := c.subscriberClient(ctx)
	if err != nil {
		return nil, err
	}
	return client.GetSubscription(ctx, req)
}

// Publish implements ReceiverAPI.
func (c *grpcAPI) Publish(ctx context.Context, req *pubsubpb.PublishRequest) (*pubsubpb.PublishResponse, error) {
	client, err := c.publisherClient(ctx)
	if err != nil {
		return nil, err
	}
	return client.Publish(ctx, req)
}

// Close closes the clients that were created; later calls fail. It is safe to call more than once.
func (c *grpcAPI) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	if c.subscriber != nil {
		if err := c.subscriber.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing Pub/Sub subscriber client: %w", err))
		}
	}
	if c.publisher != nil {
		if err := c.publisher.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing Pub/Sub publisher client: %w", err))
		}
	}
	return errors.Join(errs...)
}
