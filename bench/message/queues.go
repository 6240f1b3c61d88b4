package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
	"github.com/kubedispatch/kubedispatch/internal/sbfake"
)

// The queue services (-queues). SQS carries the message-mode / count-mode comparison and the first-Job trials; Pub/Sub
// and Service Bus get a message-mode stream each.
const (
	queueSQS        = "sqs"
	queuePubSub     = "pubsub"
	queueServiceBus = "servicebus"
)

var allQueues = []string{queueSQS, queuePubSub, queueServiceBus}

// parseQueues reads -queues: a comma-separated subset of allQueues, returned in allQueues' order.
func parseQueues(s string) ([]string, error) {
	want := map[string]bool{}
	for q := range strings.SplitSeq(s, ",") {
		q = strings.TrimSpace(q)
		if q == "" {
			continue
		}
		if !slices.Contains(allQueues, q) {
			return nil, fmt.Errorf("-queues: unknown queue %q (want a comma-separated subset of %s)", q, strings.Join(allQueues, ","))
		}
		want[q] = true
	}
	var out []string
	for _, q := range allQueues {
		if want[q] {
			out = append(out, q)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-queues: no queue named (want a comma-separated subset of %s)", strings.Join(allQueues, ","))
	}
	return out, nil
}

// queueTitle names a queue service in the report.
func queueTitle(kind string) string {
	switch kind {
	case queuePubSub:
		return "Pub/Sub"
	case queueServiceBus:
		return "Service Bus"
	}
	return "SQS"
}

// sendCallName names the call that sends messages: one batch of batchSize, or (Service Bus) one message.
func sendCallName(kind string) string {
	switch kind {
	case queuePubSub:
		return "Publish"
	case queueServiceBus:
		return "SendMessage"
	}
	return "SendMessageBatch"
}

// Pub/Sub and Service Bus message ids cannot be known from the send (Service Bus's is the sequence number the queue
// assigns, which the sender does not see), so each message carries the benchmark's own id in an attribute
// (application property), which a dispatch parameter copies into the Job's pod template annotations.
const (
	benchIDAttribute  = "bench-id"
	benchIDAnnotation = "bench.kubedispatch.io/id"
)

// benchQueue is one queue under the benchmark (an SQS queue, a Pub/Sub topic and subscription, a Service Bus
// queue): the measurement loop (runStream) sees the queue services only through it.
type benchQueue interface {
	// apply adds the queue's trigger to sj (and what else its Jobs need to name their message).
	apply(sj *v1alpha1.ScaledJob)
	// send sends messages first to first+count-1 (count <= batchSize), in one call where the service can take a
	// batch; message i's body is {"<prefix>":i}. Each sentMessage's ID is what its Job will carry (jobRecord.key).
	send(ctx context.Context, prefix string, first, count int) ([]sentMessage, error)
	// left returns how many messages the queue still has, deliverable or held.
	left(ctx context.Context) (int, error)
	// close releases the queue's clients.
	close()
}

// newQueue creates the queue name of kind, and in ns what its trigger's authentication needs.
func newQueue(ctx context.Context, e env, kind, ns, name string) (benchQueue, error) {
	switch kind {
	case queuePubSub:
		return newPubSubQueue(ctx, e, ns, name)
	case queueServiceBus:
		return newSBQueue(ctx, e, ns, name)
	}
	return newSQSQueue(ctx, e, name)
}

// addBenchIDParameter makes a message-mode ScaledJob copy the benchIDAttribute of each message to its pod template's
// benchIDAnnotation.
func addBenchIDParameter(sj *v1alpha1.ScaledJob) {
	if sj.Spec.Dispatch == nil {
		return
	}
	sj.Spec.Dispatch.Parameters = append(sj.Spec.Dispatch.Parameters, v1alpha1.Parameter{
		From: v1alpha1.ParameterSource{Attribute: benchIDAttribute}, To: v1alpha1.ParameterTarget{PodAnnotation: benchIDAnnotation}})
}

// benchID is the benchmark's id of message i of prefix.
func benchID(prefix string, i int) string { return prefix + "-" + strconv.Itoa(i) }

// sqsQueue is an SQS queue on moto with VisibilityTimeout visibilitySeconds; its Jobs name their message by the SQS
// message id.
type sqsQueue struct {
	c        *sqs.Client
	endpoint string
	url      string
}

func newSQSQueue(ctx context.Context, e env, name string) (*sqsQueue, error) {
	out, err := e.q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name),
		Attributes: map[string]string{string(sqstypes.QueueAttributeNameVisibilityTimeout): strconv.Itoa(visibilitySeconds)}})
	if err != nil {
		return nil, fmt.Errorf("creating SQS queue %s: %w", name, err)
	}
	return &sqsQueue{c: e.q, endpoint: e.sqsEndpoint, url: aws.ToString(out.QueueUrl)}, nil
}

// apply adds one aws-sqs-queue trigger (queueLength 1).
func (q *sqsQueue) apply(sj *v1alpha1.ScaledJob) {
	sj.Spec.Triggers = append(sj.Spec.Triggers, v1alpha1.ScaleTrigger{Type: "aws-sqs-queue", Name: "sqs", Metadata: map[string]string{
		"queueURL": q.url, "queueLength": "1", "awsRegion": "us-east-1", "awsEndpoint": q.endpoint,
	}})
}

func (q *sqsQueue) send(ctx context.Context, prefix string, first, count int) ([]sentMessage, error) {
	entries := make([]sqstypes.SendMessageBatchRequestEntry, 0, count)
	for i := first; i < first+count; i++ {
		entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
			Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(fmt.Sprintf(`{%q:%d}`, prefix, i))})
	}
	before := time.Now()
	resp, err := q.c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
	after := time.Now()
	if err != nil {
		return nil, fmt.Errorf("sending messages %d-%d: %w", first, first+count-1, err)
	}
	if len(resp.Failed) > 0 {
		return nil, fmt.Errorf("sending messages %d-%d: %d refused, first: %s", first, first+count-1, len(resp.Failed), aws.ToString(resp.Failed[0].Message))
	}
	ids := map[string]string{}
	for _, s := range resp.Successful {
		ids[aws.ToString(s.Id)] = aws.ToString(s.MessageId)
	}
	out := make([]sentMessage, 0, count)
	for i := first; i < first+count; i++ {
		id, ok := ids[strconv.Itoa(i)]
		if !ok {
			return nil, fmt.Errorf("sending messages %d-%d: no message id for entry %d", first, first+count-1, i)
		}
		out = append(out, sentMessage{Index: i, ID: id, Before: before, After: after})
	}
	return out, nil
}

// left returns the queue's visible plus in-flight messages.
func (q *sqsQueue) left(ctx context.Context) (int, error) {
	names := []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
		sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}
	out, err := q.c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q.url), AttributeNames: names})
	if err != nil {
		return 0, fmt.Errorf("reading the attributes of queue %s: %w", q.url, err)
	}
	left := 0
	for _, k := range names {
		v, err := strconv.Atoi(out.Attributes[string(k)])
		if err != nil {
			return 0, fmt.Errorf("reading the attributes of queue %s: %s is %q", q.url, k, out.Attributes[string(k)])
		}
		left += v
	}
	return left, nil
}

func (q *sqsQueue) close() {}

// pubsubQueue is a topic and its subscription (ackDeadlineSeconds visibilitySeconds) on the Pub/Sub emulator, read
// with the dispatcher's own identity (TriggerAuthentication with podIdentity gcp: on the emulator, no credentials).
type pubsubQueue struct {
	c                   *pubsub.Client
	topic, subscription string
}

func newPubSubQueue(ctx context.Context, e env, ns, name string) (*pubsubQueue, error) {
	q := &pubsubQueue{c: e.ps, topic: "projects/" + framework.PubSubProject + "/topics/" + name,
		subscription: "projects/" + framework.PubSubProject + "/subscriptions/" + name}
	if _, err := q.c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: q.topic}); err != nil {
		return nil, fmt.Errorf("creating Pub/Sub topic %s: %w", q.topic, err)
	}
	if _, err := q.c.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: q.subscription, Topic: q.topic,
		AckDeadlineSeconds: visibilitySeconds}); err != nil {
		return nil, fmt.Errorf("creating Pub/Sub subscription %s: %w", q.subscription, err)
	}
	ta := &v1alpha1.TriggerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "gcp", Namespace: ns},
		Spec: v1alpha1.TriggerAuthenticationSpec{PodIdentity: &v1alpha1.PodIdentity{Provider: v1alpha1.ProviderGCP}}}
	if err := e.cl.Create(ctx, ta); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating TriggerAuthentication %s/gcp: %w", ns, err)
	}
	return q, nil
}

// apply adds one gcp-pubsub trigger on the subscription, and the bench-id parameter.
func (q *pubsubQueue) apply(sj *v1alpha1.ScaledJob) {
	sj.Spec.Triggers = append(sj.Spec.Triggers, v1alpha1.ScaleTrigger{Type: "gcp-pubsub", Name: "pubsub",
		Metadata: map[string]string{"subscriptionName": q.subscription}, AuthenticationRef: &v1alpha1.AuthenticationRef{Name: "gcp"}})
	addBenchIDParameter(sj)
}

// send publishes the messages in one Publish call (the raw RPC, not the batching Publisher).
func (q *pubsubQueue) send(ctx context.Context, prefix string, first, count int) ([]sentMessage, error) {
	msgs := make([]*pubsubpb.PubsubMessage, 0, count)
	for i := first; i < first+count; i++ {
		msgs = append(msgs, &pubsubpb.PubsubMessage{Data: fmt.Appendf(nil, `{%q:%d}`, prefix, i),
			Attributes: map[string]string{benchIDAttribute: benchID(prefix, i)}})
	}
	before := time.Now()
	resp, err := q.c.TopicAdminClient.Publish(ctx, &pubsubpb.PublishRequest{Topic: q.topic, Messages: msgs})
	after := time.Now()
	if err != nil {
		return nil, fmt.Errorf("publishing messages %d-%d: %w", first, first+count-1, err)
	}
	if len(resp.GetMessageIds()) != count {
		return nil, fmt.Errorf("publishing messages %d-%d: %d message ids back", first, first+count-1, len(resp.GetMessageIds()))
	}
	out := make([]sentMessage, 0, count)
	for i := first; i < first+count; i++ {
		out = append(out, sentMessage{Index: i, ID: benchID(prefix, i), Before: before, After: after})
	}
	return out, nil
}

// left pulls what the subscription would deliver now and hands it straight back (ack deadline 0). The emulator has
// no backlog count, and messages the dispatcher holds are not delivered, so this counts only the deliverable ones:
// runStream calls it once every Job is marked acked.
func (q *pubsubQueue) left(ctx context.Context) (int, error) {
	resp, err := q.c.SubscriptionAdminClient.Pull(ctx, &pubsubpb.PullRequest{Subscription: q.subscription, MaxMessages: 1000,
		ReturnImmediately: true}) //nolint:staticcheck // deprecated, but the way to ask the emulator "anything now?"
	if err != nil {
		return 0, fmt.Errorf("pulling %s: %w", q.subscription, err)
	}
	if n := len(resp.GetReceivedMessages()); n > 0 {
		ids := make([]string, 0, n)
		for _, m := range resp.GetReceivedMessages() {
			ids = append(ids, m.GetAckId())
		}
		if err := q.c.SubscriptionAdminClient.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{Subscription: q.subscription,
			AckIds: ids, AckDeadlineSeconds: 0}); err != nil {
			return 0, fmt.Errorf("handing back the %d messages pulled from %s: %w", n, q.subscription, err)
		}
	}
	return len(resp.GetReceivedMessages()), nil
}

func (q *pubsubQueue) close() {}

// sbQueue is a queue (lock duration visibilitySeconds) on the Service Bus fake with a SAS key of its own, read through
// a Secret with its connection string and a TriggerAuthentication (secretTargetRef, parameter connection).
type sbQueue struct {
	ctl    *sbfake.Control
	name   string
	client *azservicebus.Client
	sender *azservicebus.Sender
}

// sbMaxDelivery is the benchmark queues' MaxDeliveryCount (above the dispatcher's default maxDeliveries).
const sbMaxDelivery = 10

func newSBQueue(ctx context.Context, e env, ns, name string) (*sbQueue, error) {
	if err := e.sb.CreateQueue(name, visibilitySeconds*time.Second, sbMaxDelivery); err != nil {
		return nil, fmt.Errorf("creating Service Bus queue %s: %w", name, err)
	}
	raw := make([]byte, 24)
	_, _ = rand.Read(raw)
	keyName, key := "bench-"+name, base64.StdEncoding.EncodeToString(raw)
	if err := e.sb.SetKey(keyName, key); err != nil {
		return nil, fmt.Errorf("registering the Service Bus key of %s: %w", name, err)
	}
	conn := sbfake.ConnectionString(e.sbAddr, keyName, key)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sb-" + name, Namespace: ns}, StringData: map[string]string{"connection": conn}}
	if err := e.cl.Create(ctx, secret); err != nil {
		return nil, fmt.Errorf("creating Secret %s/%s: %w", ns, secret.Name, err)
	}
	ta := &v1alpha1.TriggerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "sb-" + name, Namespace: ns},
		Spec: v1alpha1.TriggerAuthenticationSpec{SecretTargetRef: []v1alpha1.SecretTargetRef{{Parameter: "connection", Name: secret.Name, Key: "connection"}}}}
	if err := e.cl.Create(ctx, ta); err != nil {
		return nil, fmt.Errorf("creating TriggerAuthentication %s/%s: %w", ns, ta.Name, err)
	}
	c, err := azservicebus.NewClientFromConnectionString(conn, nil)
	if err != nil {
		return nil, fmt.Errorf("building the Service Bus client: %w", err)
	}
	s, err := c.NewSender(name, nil)
	if err != nil {
		return nil, fmt.Errorf("building the Service Bus sender for %s: %w", name, err)
	}
	return &sbQueue{ctl: e.sb, name: name, client: c, sender: s}, nil
}

// apply adds one azure-servicebus trigger on the queue, and the bench-id parameter.
func (q *sbQueue) apply(sj *v1alpha1.ScaledJob) {
	sj.Spec.Triggers = append(sj.Spec.Triggers, v1alpha1.ScaleTrigger{Type: "azure-servicebus", Name: "servicebus",
		Metadata: map[string]string{"queueName": q.name}, AuthenticationRef: &v1alpha1.AuthenticationRef{Name: "sb-" + q.name}})
	addBenchIDParameter(sj)
}

// send sends the messages one SendMessage call each, in a row: the fake cannot take a SendMessageBatch (it drops
// the connection on the batch message format: "amqp error: Cannot read properties of undefined (reading 'length')"
// in its log). Each message's Before and After are its own call's.
func (q *sbQueue) send(ctx context.Context, prefix string, first, count int) ([]sentMessage, error) {
	out := make([]sentMessage, 0, count)
	for i := first; i < first+count; i++ {
		m := &azservicebus.Message{Body: fmt.Appendf(nil, `{%q:%d}`, prefix, i), ApplicationProperties: map[string]any{benchIDAttribute: benchID(prefix, i)}}
		before := time.Now()
		err := q.sender.SendMessage(ctx, m, nil)
		after := time.Now()
		if err != nil {
			return nil, fmt.Errorf("sending message %d to %s: %w", i, q.name, err)
		}
		out = append(out, sentMessage{Index: i, ID: benchID(prefix, i), Before: before, After: after})
	}
	return out, nil
}

// left returns the fake's active plus locked messages.
func (q *sbQueue) left(context.Context) (int, error) {
	s, err := q.ctl.Stats(q.name)
	if err != nil {
		return 0, fmt.Errorf("reading Service Bus queue %s: %w", q.name, err)
	}
	return s.Active + s.Locked, nil
}

func (q *sbQueue) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = q.sender.Close(ctx)
	_ = q.client.Close(ctx)
}
