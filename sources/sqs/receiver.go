package sqs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/kubedispatch/kubedispatch/sources"
)

// ReasonAttribute is the message attribute DeadLetter sets on the dead-letter copy: why the message was
// dead-lettered (at most MaxReasonBytes bytes).
const ReasonAttribute = "kubedispatch-reason"

// MaxReasonBytes is the longest reason DeadLetter sends; a longer one is cut at a UTF-8 character boundary.
const MaxReasonBytes = 1024

// DeadLetterField names spec.dispatch.deadLetter.queueURL in the *sources.ConfigError of a bad dead-letter queue.
const DeadLetterField = "dispatch.deadLetter.queueURL"

// Limits of the receiver, most of them SQS's own.
const (
	// defaultLease is Lease before the queue's visibility timeout has been read.
	defaultLease = 30 * time.Second
	// minLease is the shortest lease granted, whatever the queue's visibility timeout.
	minLease = 5 * time.Second
	// maxReceive is SQS's MaxNumberOfMessages limit.
	maxReceive = 10
	// maxWaitSeconds is SQS's WaitTimeSeconds limit.
	maxWaitSeconds = 20
	// maxVisibilitySeconds is SQS's VisibilityTimeout limit (12 hours).
	maxVisibilitySeconds = 43200
	// maxMessageAttributes is SQS's limit of message attributes per message.
	maxMessageAttributes = 10
)

// ReceiverAPI is the set of SQS calls the Receiver makes. *sqs.Client implements it; tests pass a fake.
type ReceiverAPI interface {
	ReceiveMessage(ctx context.Context, in *awssqs.ReceiveMessageInput, optFns ...func(*awssqs.Options)) (*awssqs.ReceiveMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *awssqs.ChangeMessageVisibilityInput, optFns ...func(*awssqs.Options)) (*awssqs.ChangeMessageVisibilityOutput, error)
	DeleteMessage(ctx context.Context, in *awssqs.DeleteMessageInput, optFns ...func(*awssqs.Options)) (*awssqs.DeleteMessageOutput, error)
	SendMessage(ctx context.Context, in *awssqs.SendMessageInput, optFns ...func(*awssqs.Options)) (*awssqs.SendMessageOutput, error)
	GetQueueAttributes(ctx context.Context, in *awssqs.GetQueueAttributesInput, optFns ...func(*awssqs.Options)) (*awssqs.GetQueueAttributesOutput, error)
}

var _ ReceiverAPI = (*awssqs.Client)(nil)

// Receiver is the aws-sqs-queue message-mode sources.Receiver: it receives messages of the trigger's queue, leases
// them with the queue's visibility timeout and settles them. It is safe for concurrent use.
//
// The lease is the queue's VisibilityTimeout attribute (at least 5 s), read on the first Receive. Receive and Extend
// pass it explicitly, so a later change of the attribute does not shorten a lease the caller relies on.
//
// FIFO queues: the Receiver holds a message of a group from Receive until it is settled (Ack, Release, DeadLetter)
// or its lease runs out, and never returns a second message of a held group. SQS itself does not deliver a group's
// later messages while an earlier one is in flight, but one ReceiveMessage call may return several messages of one
// group (and emulators may not block groups at all); Receive keeps the first of each group and makes the others
// visible again at once, without returning them.
//
// SQS caps a message's total visibility at 12 hours from its receipt; an Extend or Release beyond the cap fails with
// InvalidParameterValue, which the Receiver reports as sources.ErrLeaseLost: the message becomes visible again when
// its current lease runs out.
type Receiver struct {
	meta           Metadata
	api            ReceiverAPI
	deadLetter     string
	deadLetterFIFO bool

	mu sync.Mutex
	// lease is the queue's visibility timeout once read (at least minLease), 0 before.
	lease time.Duration
	// dataTypes are, by message ID, the SQS data types of each held message's text attributes (sources.Message
	// keeps only their values), for the dead-letter copy.
	dataTypes map[string]map[string]string
	// order keeps FIFO groups in order: one held message per group.
	order *sources.GroupOrder
}

var _ sources.Receiver = (*Receiver)(nil)

// NewReceiver is the aws-sqs-queue sources.ReceiverFactory. It validates cfg as New does (the same trigger metadata
// and authentication) and deadLetterQueueURL when it is set (an http(s) SQS queue URL other than the trigger's own
// queue), and builds the SQS client as New does. It makes no network call.
func NewReceiver(ctx context.Context, cfg sources.Config, deadLetterQueueURL string) (sources.Receiver, error) {
	return newClients().newReceiver(ctx, cfg, deadLetterQueueURL)
}

func (c *clients) newReceiver(ctx context.Context, cfg sources.Config, deadLetterQueueURL string) (sources.Receiver, error) {
	m, creds, err := parse(cfg)
	if err != nil {
		return nil, err
	}
	if err := validateDeadLetter(m, deadLetterQueueURL); err != nil {
		return nil, err
	}
	client, err := c.newClient(ctx, cfg, m, creds)
	if err != nil {
		return nil, err
	}
	return newReceiver(m, client, deadLetterQueueURL), nil
}

// NewReceiverWithAPI validates cfg and deadLetter as NewReceiver does and returns a Receiver that calls api.
// Authentication parameters are validated but not used: api carries its own credentials.
func NewReceiverWithAPI(cfg sources.Config, api ReceiverAPI, deadLetter string) (*Receiver, error) {
	m, _, err := parse(cfg)
	if err != nil {
		return nil, err
	}
	if err := validateDeadLetter(m, deadLetter); err != nil {
		return nil, err
	}
	return newReceiver(m, api, deadLetter), nil
}

func newReceiver(m Metadata, api ReceiverAPI, deadLetter string) *Receiver {
	return &Receiver{
		meta:           m,
		api:            api,
		deadLetter:     deadLetter,
		deadLetterFIFO: strings.HasSuffix(deadLetter, ".fifo"),
		dataTypes:      map[string]map[string]string{},
		order:          sources.NewGroupOrder(),
	}
}

// validateDeadLetter checks the dead-letter queue URL: empty, or an http(s) URL with the path /<account>/<queue>
// that is not the trigger's own queue.
func validateDeadLetter(m Metadata, raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return sources.ConfigErrorf(DeadLetterField, "%q is not an http(s) SQS queue URL (want https://<host>/<account>/<queue>)", raw)
	}
	if _, err := queueName(raw, DeadLetterField); err != nil {
		return sources.ConfigErrorf(DeadLetterField, "%q has no queue in its path (want https://<host>/<account>/<queue>)", raw)
	}
	if raw == m.QueueURL {
		return sources.ConfigErrorf(DeadLetterField, "%q is the trigger's own queue", raw)
	}
	return nil
}

// Metadata returns the parsed trigger metadata.
func (r *Receiver) Metadata() Metadata {
	return r.meta
}

// Lease is the visibility timeout each Receive and Extend grants: the queue's VisibilityTimeout attribute, at least
// 5 s, once the first Receive has read it; 30 s before.
func (r *Receiver) Lease() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lease == 0 {
		return defaultLease
	}
	return r.lease
}

// queueLease returns the lease, reading the queue's VisibilityTimeout attribute the first time.
func (r *Receiver) queueLease(ctx context.Context) (time.Duration, error) {
	r.mu.Lock()
	lease := r.lease
	r.mu.Unlock()
	if lease > 0 {
		return lease, nil
	}
	out, err := r.api.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(r.meta.QueueURL),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameVisibilityTimeout},
	})
	if err != nil {
		return 0, wrapError(err, "reading the visibility timeout of SQS queue %s", r.meta.QueueURL)
	}
	var raw string
	var ok bool
	if out != nil {
		raw, ok = out.Attributes[string(types.QueueAttributeNameVisibilityTimeout)]
	}
	if !ok {
		return 0, fmt.Errorf("reading the visibility timeout of SQS queue %s: response has no VisibilityTimeout", r.meta.QueueURL)
	}
	seconds, err := strconv.Atoi(raw)
	if err != nil {
		return 0, fmt.Errorf("reading the visibility timeout of SQS queue %s: VisibilityTimeout is %q, not an integer", r.meta.QueueURL, raw)
	}
	lease = max(time.Duration(seconds)*time.Second, minLease)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lease == 0 {
		r.lease = lease
	}
	return r.lease, nil
}

// Receive makes one ReceiveMessage call for at most min(maxMessages, 10) messages, long polling for wait (whole
// seconds, at most 20), and returns the messages leased for Lease from now. Of a FIFO group it returns only the first
// message, and none while an earlier message of the group is held; those it makes visible again at once. A failure
// to make one visible again is not reported: the message then becomes visible when its lease runs out.
// maxMessages <= 0 returns no messages without a call.
func (r *Receiver) Receive(ctx context.Context, maxMessages int, wait time.Duration, now time.Time) ([]sources.Message, error) {
	if maxMessages <= 0 {
		return nil, nil
	}
	lease, err := r.queueLease(ctx)
	if err != nil {
		return nil, err
	}
	out, err := r.api.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(r.meta.QueueURL),
		MaxNumberOfMessages:         int32(min(maxMessages, maxReceive)),
		WaitTimeSeconds:             int32(min(max(wait, 0)/time.Second, maxWaitSeconds)),
		VisibilityTimeout:           seconds(lease),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		return nil, wrapError(err, "receiving messages from SQS queue %s", r.meta.QueueURL)
	}
	if out == nil || len(out.Messages) == 0 {
		return nil, nil
	}
	until := now.Add(lease)
	msgs := make([]sources.Message, 0, len(out.Messages))
	types := make(map[string]map[string]string, len(out.Messages))
	for _, raw := range out.Messages {
		m, dataTypes := r.toMessage(raw, until)
		msgs = append(msgs, m)
		types[m.ID] = dataTypes
	}
	kept, extras := r.order.Admit(msgs, now)
	r.mu.Lock()
	for _, m := range kept {
		r.dataTypes[m.ID] = types[m.ID]
	}
	r.mu.Unlock()
	for _, m := range extras {
		// Best effort (see the doc comment): the message is not ours to report on.
		_, _ = r.api.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{
			QueueUrl:          aws.String(r.meta.QueueURL),
			ReceiptHandle:     aws.String(m.Handle),
			VisibilityTimeout: 0,
		})
	}
	return kept, nil
}

// settled forgets m when err says it is no longer held: nil (settled) or a lost lease. On another error the caller
// may retry, and m stays held.
func (r *Receiver) settled(m *sources.Message, err error) {
	r.order.Settled(m, err)
	if err == nil || errors.Is(err, sources.ErrLeaseLost) {
		r.mu.Lock()
		delete(r.dataTypes, m.ID)
		r.mu.Unlock()
	}
}

// toMessage maps an SQS message to a sources.Message leased until until, and returns the data types of its text
// attributes.
func (r *Receiver) toMessage(raw types.Message, until time.Time) (sources.Message, map[string]string) {
	m := sources.Message{
		ID:         aws.ToString(raw.MessageId),
		Queue:      r.meta.QueueURL,
		Body:       []byte(aws.ToString(raw.Body)),
		LeaseUntil: until,
		Handle:     aws.ToString(raw.ReceiptHandle),
	}
	var dataTypes map[string]string
	for name, v := range raw.MessageAttributes {
		dataType := aws.ToString(v.DataType)
		if !textDataType(dataType) || v.StringValue == nil {
			continue
		}
		if m.Attributes == nil {
			m.Attributes, dataTypes = map[string]string{}, map[string]string{}
		}
		m.Attributes[name] = *v.StringValue
		dataTypes[name] = dataType
	}
	if len(raw.Attributes) > 0 {
		m.System = maps.Clone(raw.Attributes)
	}
	if ms, err := strconv.ParseInt(m.System[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		m.EnqueuedAt = time.UnixMilli(ms).UTC()
	}
	if n, err := strconv.Atoi(m.System[string(types.MessageSystemAttributeNameApproximateReceiveCount)]); err == nil {
		m.ReceiveCount = n
	}
	m.Group = m.System[string(types.MessageSystemAttributeNameMessageGroupId)]
	return m, dataTypes
}

// textDataType reports whether an SQS attribute data type (String, Number, or a custom String.x or Number.x) has a
// text value.
func textDataType(dataType string) bool {
	base, _, _ := strings.Cut(dataType, ".")
	return base == "String" || base == "Number"
}

// Extend renews m's lease: its visibility timeout becomes Lease from now. It returns now + Lease.
func (r *Receiver) Extend(ctx context.Context, m *sources.Message, now time.Time) (time.Time, error) {
	lease := r.Lease()
	_, err := r.api.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(r.meta.QueueURL),
		ReceiptHandle:     aws.String(m.Handle),
		VisibilityTimeout: seconds(lease),
	})
	if err != nil {
		err = wrapError(err, "extending the lease of message %s in SQS queue %s", m.ID, r.meta.QueueURL)
		r.settled(m, err) // a lost lease frees the group
		return time.Time{}, err
	}
	until := now.Add(lease)
	r.order.Extended(m.ID, until)
	return until, nil
}

// Ack deletes m from the queue.
func (r *Receiver) Ack(ctx context.Context, m *sources.Message) error {
	err := r.delete(ctx, m, "deleting message %s from SQS queue %s")
	r.settled(m, err)
	return err
}

// delete deletes m, wrapping an error with the gerund format (which takes m's ID and the queue URL).
func (r *Receiver) delete(ctx context.Context, m *sources.Message, format string) error {
	_, err := r.api.DeleteMessage(ctx, &awssqs.DeleteMessageInput{
		QueueUrl:      aws.String(r.meta.QueueURL),
		ReceiptHandle: aws.String(m.Handle),
	})
	if err != nil {
		return wrapError(err, format, m.ID, r.meta.QueueURL)
	}
	return nil
}

// Release makes m visible again after delay, rounded up to whole seconds and capped at SQS's 12 hours (0: at once).
func (r *Receiver) Release(ctx context.Context, m *sources.Message, delay time.Duration) error {
	visibility := int32(0)
	if delay > 0 {
		visibility = int32(min((delay+time.Second-1)/time.Second, maxVisibilitySeconds))
	}
	_, err := r.api.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(r.meta.QueueURL),
		ReceiptHandle:     aws.String(m.Handle),
		VisibilityTimeout: visibility,
	})
	if err != nil {
		err = wrapError(err, "releasing message %s to SQS queue %s", m.ID, r.meta.QueueURL)
	}
	r.settled(m, err)
	return err
}

// DeadLetter sends a copy of m to the dead-letter queue and then deletes m. The copy has m's body and at most 10
// message attributes, in this order of precedence: ReasonAttribute (reason, cut to MaxReasonBytes), details sorted
// by key, then m's own text attributes sorted by name (those beyond the limit are left out). On a FIFO dead-letter
// queue the copy's group is m's group (or, without one, m's ID) and its deduplication ID is m's ID, so a retry after
// a failed delete does not send a second copy within SQS's 5-minute deduplication window. A failed send leaves m in
// the queue. Without a dead-letter queue it releases m at once, for the queue's redrive policy, and returns an error
// wrapping sources.ErrNoDeadLetter (or the release's error).
func (r *Receiver) DeadLetter(ctx context.Context, m *sources.Message, reason string, details map[string]string) error {
	if r.deadLetter == "" {
		if err := r.Release(ctx, m, 0); err != nil {
			return err
		}
		return fmt.Errorf("dead-lettering message %s of SQS queue %s: %w", m.ID, r.meta.QueueURL, sources.ErrNoDeadLetter)
	}
	r.mu.Lock()
	dataTypes := r.dataTypes[m.ID]
	r.mu.Unlock()
	in := &awssqs.SendMessageInput{
		QueueUrl:          aws.String(r.deadLetter),
		MessageBody:       aws.String(string(m.Body)),
		MessageAttributes: deadLetterAttributes(m.Attributes, dataTypes, reason, details),
	}
	if r.deadLetterFIFO {
		group := m.Group
		if group == "" {
			group = m.ID
		}
		in.MessageGroupId = aws.String(group)
		in.MessageDeduplicationId = aws.String(m.ID)
	}
	if _, err := r.api.SendMessage(ctx, in); err != nil {
		return wrapError(err, "sending message %s to dead-letter queue %s", m.ID, r.deadLetter)
	}
	err := r.delete(ctx, m, "deleting dead-lettered message %s from SQS queue %s")
	r.settled(m, err)
	return err
}

// deadLetterAttributes builds the dead-letter copy's message attributes: reason, details by key, then the original
// attributes by name, at most maxMessageAttributes in all. Empty values are left out (SQS rejects them); an original
// attribute keeps its data type when known (else String).
func deadLetterAttributes(original, dataTypes map[string]string, reason string, details map[string]string) map[string]types.MessageAttributeValue {
	out := make(map[string]types.MessageAttributeValue, maxMessageAttributes)
	add := func(name, dataType, value string) {
		if len(out) >= maxMessageAttributes || value == "" {
			return
		}
		if _, ok := out[name]; ok {
			return
		}
		out[name] = types.MessageAttributeValue{DataType: aws.String(dataType), StringValue: aws.String(value)}
	}
	add(ReasonAttribute, "String", sources.TruncateUTF8(reason, MaxReasonBytes))
	for _, k := range slices.Sorted(maps.Keys(details)) {
		add(k, "String", details[k])
	}
	for _, k := range slices.Sorted(maps.Keys(original)) {
		dataType := dataTypes[k]
		if dataType == "" {
			dataType = "String"
		}
		add(k, dataType, original[k])
	}
	return out
}

// Close releases nothing (the SDK client holds no resources that need closing); it is safe to call more than once.
func (r *Receiver) Close() error {
	return nil
}

// seconds converts a lease to whole seconds for SQS, capped at its 12-hour limit.
func seconds(d time.Duration) int32 {
	return int32(min(d/time.Second, maxVisibilitySeconds))
}

// wrapError wraps an SQS error once with the gerund phrase format (and args), adding the sources error it maps to.
func wrapError(err error, format string, args ...any) error {
	action := fmt.Sprintf(format, args...)
	if kind := errorKind(err); kind != nil {
		return fmt.Errorf("%s: %w: %w", action, kind, err)
	}
	return fmt.Errorf("%s: %w", action, err)
}

// errorKind maps an SQS error to the sources error of the Receiver contract, or nil for a transient one:
// sources.ErrLeaseLost for an invalid or expired receipt handle, a message no longer in flight, and a visibility
// beyond SQS's 12-hour cap; sources.ErrNotFound for a missing queue; sources.ErrUnauthorized for refused
// credentials; sources.ErrThrottled for a throttled request.
func errorKind(err error) error {
	var (
		invalidHandle *types.ReceiptHandleIsInvalid
		notInflight   *types.MessageNotInflight
		throttled     *types.RequestThrottled
		overLimit     *types.OverLimit
	)
	switch {
	case errors.As(err, &invalidHandle), errors.As(err, &notInflight):
		return sources.ErrLeaseLost
	case queueDoesNotExist(err):
		return sources.ErrNotFound
	case credentialsRefused(err):
		return sources.ErrUnauthorized
	case errors.As(err, &throttled), errors.As(err, &overLimit):
		return sources.ErrThrottled
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return nil
	}
	switch apiErr.ErrorCode() {
	case "ReceiptHandleIsInvalid", "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight":
		return sources.ErrLeaseLost
	case "InvalidParameterValue":
		if leaseParameter(apiErr.ErrorMessage()) {
			return sources.ErrLeaseLost
		}
	case "ThrottlingException", "RequestThrottled", "OverLimit":
		return sources.ErrThrottled
	}
	return nil
}

// leaseParameter reports whether an InvalidParameterValue message is about the lease: the receipt handle ("... for
// parameter ReceiptHandle is invalid", "... is not a valid receipt handle", "The receipt handle has expired") or the
// 12-hour visibility cap ("Total VisibilityTimeout for the message is beyond the limit [43200 seconds]").
func leaseParameter(message string) bool {
	m := strings.ToLower(message)
	return strings.Contains(m, "receipt handle") || strings.Contains(m, "receipthandle") ||
		strings.Contains(m, "total visibilitytimeout")
}
