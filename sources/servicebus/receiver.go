package servicebus

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"

	"github.com/kubedispatch/kubedispatch/sources"
)

// ReasonProperty is the application property DeadLetter sets, besides Service Bus's own DeadLetterReason: why the
// message was dead-lettered, as for SQS and Pub/Sub.
const ReasonProperty = "kubedispatch-reason"

// MaxReasonBytes is the longest dead-letter reason and description DeadLetter sends (Service Bus limits both to 4096
// characters); a longer one is cut at a UTF-8 character boundary.
const MaxReasonBytes = 4096

// Keys of sources.Message.System that Receive sets (each only when Service Bus gives a value).
const (
	SystemMessageID      = "MessageId"
	SystemSequenceNumber = "SequenceNumber"
	SystemDeliveryCount  = "DeliveryCount"
	SystemEnqueuedTime   = "EnqueuedTime"
	SystemContentType    = "ContentType"
	SystemCorrelationID  = "CorrelationId"
	SystemSubject        = "Subject"
	SystemSessionID      = "SessionId"
)

// Limits of the receiver, most of them Service Bus's own.
const (
	// defaultLease is Lease before the first Receive has shown the entity's lock duration.
	defaultLease = 30 * time.Second
	// minLease and maxLease bound the lease: Service Bus lock durations are 5 s to 5 min (emulators allow less).
	minLease = time.Second
	maxLease = 5 * time.Minute
	// maxReceive is the most messages one Receive asks for.
	maxReceive = 1000
	// minReceiveWait is the shortest wait of a Receive: the client needs a moment to issue credit and get messages.
	minReceiveWait = 500 * time.Millisecond
	// afterFirstMessage is how long a Receive waits for more messages once one arrived (the client's default is
	// 20 ms, all of it latency for the first).
	afterFirstMessage = 2 * time.Millisecond
	// closeTimeout bounds Close's detach of the links.
	closeTimeout = 5 * time.Second
	// maxTracked bounds the received messages kept for settling on their own link; beyond it the oldest are
	// settled through the management link, which needs only the lock token.
	maxTracked = 10000
)

// ReceiverAPI is the set of Service Bus calls the Receiver makes. *azservicebus.Receiver implements it; tests pass a
// fake or the real client against an AMQP fake.
type ReceiverAPI interface {
	ReceiveMessages(ctx context.Context, maxMessages int, options *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
	RenewMessageLock(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.RenewMessageLockOptions) error
	CompleteMessage(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.CompleteMessageOptions) error
	AbandonMessage(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.AbandonMessageOptions) error
	DeadLetterMessage(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.DeadLetterOptions) error
	Close(ctx context.Context) error
}

var _ ReceiverAPI = (*azservicebus.Receiver)(nil)

// Receiver is the azure-servicebus message-mode sources.Receiver: it receives messages of the trigger's queue or
// topic subscription in peek-lock mode, holds their locks and settles them. It is safe for concurrent use.
//
// The lease is the entity's lock duration (5 s to 5 min), learnt from the lock of the first message received; 30 s
// before that. Extend renews the lock (RenewMessageLock), Ack completes the message, Release abandons it and
// DeadLetter moves it to the entity's own dead-letter sub-queue ($DeadLetterQueue) with the reason as
// DeadLetterReason, the ScaledJob and Job as DeadLetterErrorDescription, and the details as application properties.
// There is always a dead-letter destination: DeadLetter never reports sources.ErrNoDeadLetter.
//
// Service Bus semantics the caller must know: every abandon (each Release, each retried attempt) and every lock that
// runs out adds one to the message's delivery count, and once the entity's MaxDeliveryCount is reached Service Bus
// dead-letters the message itself (reason MaxDeliveryCountExceeded): of maxDeliveries and MaxDeliveryCount the
// lower wins. Abandon cannot delay a redelivery, so a Release with a delay keeps the lock for the delay and abandons
// then (see Release). Sessions are not supported: a session-enabled entity refuses the receiver.
//
// Identity: a message's ID is its sequence number (stable across redeliveries, unlike the sender-set MessageId,
// which is in System as MessageId). Handle is the lock token (hex); settling a message received by another Receiver
// of the same entity works too (through the management link).
type Receiver struct {
	meta Metadata
	// queue identifies the entity: sb://<namespace>/<entity>.
	queue string
	api   ReceiverAPI
	close func(context.Context) error

	// receiveMu serialises Receive: the client refuses concurrent ReceiveMessages calls.
	receiveMu sync.Mutex

	mu sync.Mutex
	// lease is the learnt lock duration, 0 before the first Receive with messages.
	lease time.Duration
	// tracked are received messages by Handle, to settle on the link they came from.
	tracked map[string]*azservicebus.ReceivedMessage
	// order is tracked's Handles, oldest first, to bound it.
	order []string
	// deferred are the messages a delayed Release still holds, by Handle; closed stops them.
	deferred map[string]context.CancelFunc
	closed   bool
	// background runs the delayed releases; Close waits for them.
	background sync.WaitGroup
}

var _ sources.Receiver = (*Receiver)(nil)

// NewReceiver is the azure-servicebus sources.ReceiverFactory. It validates cfg as New does (the same trigger
// metadata and authentication; one entity, so useRegex is refused) and builds the client from the connection string
// or the workload identity; the client connects on first use, so it makes no network call. Service Bus always
// dead-letters into the entity's own sub-queue: deadLetter must be empty.
func NewReceiver(_ context.Context, cfg sources.Config, deadLetter string) (sources.Receiver, error) {
	m, conn, err := parseReceiver(cfg, deadLetter)
	if err != nil {
		return nil, err
	}
	opts := &azservicebus.ClientOptions{RetryOptions: azservicebus.RetryOptions{
		MaxRetries: 2, RetryDelay: 500 * time.Millisecond, MaxRetryDelay: 5 * time.Second,
	}}
	var client *azservicebus.Client
	switch m.Auth {
	case AuthConnectionString:
		client, err = azservicebus.NewClientFromConnectionString(conn, opts)
		if err != nil {
			// The SDK's message may quote parts of the connection string: leave it out.
			return nil, sources.ConfigErrorf(connectionField(cfg), "is not a valid Service Bus connection string")
		}
	case AuthWorkloadIdentity:
		cred, cerr := workloadCredential(m.Cloud)
		if cerr != nil {
			return nil, fmt.Errorf("creating the Azure workload identity credential for Service Bus namespace %s: %w", m.Namespace, cerr)
		}
		if client, err = azservicebus.NewClient(m.Namespace, cred, opts); err != nil {
			return nil, fmt.Errorf("creating the Service Bus client for %s: %w", m.Namespace, err)
		}
	}
	var recv *azservicebus.Receiver
	if m.Entity == EntityQueue {
		recv, err = client.NewReceiverForQueue(m.QueueName, nil)
	} else {
		recv, err = client.NewReceiverForSubscription(m.TopicName, m.SubscriptionName, nil)
	}
	if err != nil {
		_ = client.Close(context.Background())
		return nil, fmt.Errorf("creating the Service Bus receiver for %s: %w", m.EntityName(), err)
	}
	r := newReceiver(m, recv)
	r.close = func(ctx context.Context) error {
		return errors.Join(recv.Close(ctx), client.Close(ctx))
	}
	return r, nil
}

// NewReceiverWithAPI validates cfg and deadLetter as NewReceiver does and returns a Receiver that calls api.
// Authentication parameters are validated but not used: api carries its own credentials. Close closes api.
func NewReceiverWithAPI(cfg sources.Config, api ReceiverAPI, deadLetter string) (*Receiver, error) {
	m, _, err := parseReceiver(cfg, deadLetter)
	if err != nil {
		return nil, err
	}
	return newReceiver(m, api), nil
}

func newReceiver(m Metadata, api ReceiverAPI) *Receiver {
	return &Receiver{
		meta:     m,
		queue:    "sb://" + m.Namespace + "/" + m.EntityName(),
		api:      api,
		close:    api.Close,
		tracked:  make(map[string]*azservicebus.ReceivedMessage),
		deferred: make(map[string]context.CancelFunc),
	}
}

// parseReceiver parses cfg as the count-mode source does and requires one entity and no dead-letter destination.
func parseReceiver(cfg sources.Config, deadLetter string) (Metadata, string, error) {
	m, conn, err := parse(cfg)
	if err != nil {
		return Metadata{}, "", err
	}
	if m.UseRegex {
		return Metadata{}, "", sources.ConfigErrorf(sources.MetadataField(keyUseRegex),
			"cannot be true in message mode: the dispatcher receives from exactly one queue or subscription")
	}
	if deadLetter != "" {
		return Metadata{}, "", sources.ConfigErrorf("dispatch.deadLetter",
			"does not apply to azure-servicebus: messages are dead-lettered into the entity's own $DeadLetterQueue")
	}
	return m, conn, nil
}

// Metadata returns the parsed trigger metadata.
func (r *Receiver) Metadata() Metadata {
	return r.meta
}

// Queue returns the entity's identity as messages carry it: sb://<namespace>/<entity>.
func (r *Receiver) Queue() string {
	return r.queue
}

// Lease is the lock each Receive and Extend grants: the entity's lock duration once a Receive has shown it, 30 s
// before.
func (r *Receiver) Lease() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lease == 0 {
		return defaultLease
	}
	return r.lease
}

// Receive asks for at most min(maxMessages, 1000) messages and waits up to wait (at least 0.5 s) for the first one;
// it returns them locked, with LeaseUntil the lock's end as Service Bus gives it (in the caller's clock: now plus the
// lock's remaining time). A wait that passes without messages is no messages and no error. maxMessages <= 0 returns
// no messages without a call.
func (r *Receiver) Receive(ctx context.Context, maxMessages int, wait time.Duration, now time.Time) ([]sources.Message, error) {
	if maxMessages <= 0 {
		return nil, nil
	}
	r.receiveMu.Lock()
	defer r.receiveMu.Unlock()
	recvCtx, cancel := context.WithTimeout(ctx, max(wait, minReceiveWait))
	raw, err := r.api.ReceiveMessages(recvCtx, min(maxMessages, maxReceive), &azservicebus.ReceiveMessagesOptions{TimeAfterFirstMessage: afterFirstMessage})
	cancel()
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, nil // the wait passed without messages
		}
		return nil, wrapError(err, "receiving messages from Service Bus entity %s", r.queue)
	}
	msgs := make([]sources.Message, 0, len(raw))
	for _, rm := range raw {
		if rm == nil || rm.SequenceNumber == nil {
			continue // not from a peek-lock entity; nothing to settle it with
		}
		msgs = append(msgs, r.toMessage(rm, now))
	}
	return msgs, nil
}

// toMessage converts a received message, learns the lease from its lock and tracks it for settlement.
func (r *Receiver) toMessage(rm *azservicebus.ReceivedMessage, now time.Time) sources.Message {
	lease := r.learnLease(rm, now)
	m := sources.Message{
		ID:           strconv.FormatInt(*rm.SequenceNumber, 10),
		Queue:        r.queue,
		Body:         rm.Body,
		Attributes:   properties(rm.ApplicationProperties),
		System:       system(rm),
		ReceiveCount: int(rm.DeliveryCount),
		LeaseUntil:   now.Add(lease),
		Handle:       hex.EncodeToString(rm.LockToken[:]),
	}
	if rm.EnqueuedTime != nil {
		m.EnqueuedAt = *rm.EnqueuedTime
	}
	r.track(m.Handle, rm)
	return m
}

// learnLease returns how long rm's lock still runs (at most maxLease; the default lease when the client does not
// say) and, from the first message, learns Lease: that time rounded to the second (lock durations are whole seconds,
// and the remainder is the network's time), within [minLease, maxLease].
func (r *Receiver) learnLease(rm *azservicebus.ReceivedMessage, now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rm.LockedUntil == nil {
		if r.lease == 0 {
			return defaultLease
		}
		return r.lease
	}
	remaining := min(max(rm.LockedUntil.Sub(now), 0), maxLease)
	if r.lease == 0 {
		r.lease = min(max(remaining.Round(time.Second), minLease), maxLease)
	}
	return remaining
}

// Extend renews m's lock and returns now plus the lease.
func (r *Receiver) Extend(ctx context.Context, m *sources.Message, now time.Time) (time.Time, error) {
	rm, err := r.lookup(m)
	if err != nil {
		return time.Time{}, err
	}
	if err := r.api.RenewMessageLock(ctx, rm, nil); err != nil {
		err = wrapError(err, "renewing the lock of message %s of Service Bus entity %s", m.ID, r.queue)
		if errors.Is(err, sources.ErrLeaseLost) {
			r.untrack(m.Handle)
		}
		return time.Time{}, err
	}
	return now.Add(r.Lease()), nil
}

// Ack completes m: Service Bus deletes it.
func (r *Receiver) Ack(ctx context.Context, m *sources.Message) error {
	return r.settle(ctx, m, "completing", func(rm *azservicebus.ReceivedMessage) error {
		return r.api.CompleteMessage(ctx, rm, nil)
	})
}

// Release abandons m: Service Bus redelivers it with its delivery count one higher. Abandon itself cannot delay the
// redelivery, so with a delay the Receiver keeps the lock for that long (renewing it at a third of the lease) and
// abandons m then, in the background; Close abandons such messages at once. A delayed Release first renews the lock,
// so a lost lock is reported as for Extend.
func (r *Receiver) Release(ctx context.Context, m *sources.Message, delay time.Duration) error {
	if delay <= 0 {
		return r.abandon(ctx, m)
	}
	if _, err := r.Extend(ctx, m, time.Time{}); err != nil {
		return err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return r.abandon(ctx, m)
	}
	if _, ok := r.deferred[m.Handle]; ok {
		r.mu.Unlock()
		return nil // released already, waiting for its delay
	}
	dctx, stop := context.WithCancel(context.Background())
	r.deferred[m.Handle] = stop
	r.background.Add(1)
	r.mu.Unlock()
	msg := *m
	go r.holdThenAbandon(dctx, &msg, delay)
	return nil
}

// holdThenAbandon renews m's lock until delay has passed (or ctx ends: Close) and then abandons it. A lost lock ends
// it early: Service Bus redelivers the message anyway.
func (r *Receiver) holdThenAbandon(ctx context.Context, m *sources.Message, delay time.Duration) {
	defer r.background.Done()
	done := time.NewTimer(delay)
	defer done.Stop()
	renew := time.NewTicker(max(r.Lease()/3, 100*time.Millisecond))
	defer renew.Stop()
	for waiting := true; waiting; {
		select {
		case <-ctx.Done():
			waiting = false
		case <-done.C:
			waiting = false
		case <-renew.C:
			rctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			_, err := r.Extend(rctx, m, time.Time{})
			cancel()
			if errors.Is(err, sources.ErrLeaseLost) {
				r.forgetDeferred(m.Handle)
				return
			}
		}
	}
	actx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = r.abandon(actx, m) // a failure leaves the lock to run out: Service Bus redelivers the message then
	r.forgetDeferred(m.Handle)
}

func (r *Receiver) forgetDeferred(handle string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if stop, ok := r.deferred[handle]; ok {
		stop()
		delete(r.deferred, handle)
	}
}

func (r *Receiver) abandon(ctx context.Context, m *sources.Message) error {
	return r.settle(ctx, m, "abandoning", func(rm *azservicebus.ReceivedMessage) error {
		return r.api.AbandonMessage(ctx, rm, nil)
	})
}

// DeadLetter moves m to the entity's dead-letter sub-queue with reason as DeadLetterReason (and as the application
// property kubedispatch-reason) and details as application properties.
func (r *Receiver) DeadLetter(ctx context.Context, m *sources.Message, reason string, details map[string]string) error {
	reason = sources.TruncateUTF8(reason, MaxReasonBytes)
	props := make(map[string]any, len(details)+1)
	for _, k := range slices.Sorted(maps.Keys(details)) {
		if details[k] != "" {
			props[k] = details[k]
		}
	}
	props[ReasonProperty] = reason
	description := sources.TruncateUTF8(deadLetterDescription(details), MaxReasonBytes)
	return r.settle(ctx, m, "dead-lettering", func(rm *azservicebus.ReceivedMessage) error {
		return r.api.DeadLetterMessage(ctx, rm, &azservicebus.DeadLetterOptions{
			Reason: &reason, ErrorDescription: &description, PropertiesToModify: props,
		})
	})
}

// deadLetterDescription is DeadLetterErrorDescription: who dead-lettered the message and after which Job.
func deadLetterDescription(details map[string]string) string {
	d := "dead-lettered by kubedispatch"
	if sj := details["kubedispatch-scaledjob"]; sj != "" {
		d += " for ScaledJob " + sj
	}
	if n := details["kubedispatch-deliveries"]; n != "" {
		d += " after " + n + " Job attempt(s)"
	}
	if job := details["kubedispatch-job"]; job != "" {
		d += "; last Job " + job
	}
	return d
}

// settle runs one settlement of m and forgets m unless the settlement failed transiently.
func (r *Receiver) settle(ctx context.Context, m *sources.Message, verb string, fn func(*azservicebus.ReceivedMessage) error) error {
	rm, err := r.lookup(m)
	if err != nil {
		return err
	}
	if err := fn(rm); err != nil {
		err = wrapError(err, "%s message %s of Service Bus entity %s", verb, m.ID, r.queue)
		if errors.Is(err, sources.ErrLeaseLost) {
			r.untrack(m.Handle)
		}
		return err
	}
	r.untrack(m.Handle)
	return nil
}

// lookup returns the received message behind m's Handle: the one Receive got, or, for a message received by another
// Receiver, one carrying only the lock token, which the client settles through the management link.
func (r *Receiver) lookup(m *sources.Message) (*azservicebus.ReceivedMessage, error) {
	r.mu.Lock()
	rm := r.tracked[m.Handle]
	r.mu.Unlock()
	if rm != nil {
		return rm, nil
	}
	token, err := hex.DecodeString(m.Handle)
	if err != nil || len(token) != 16 {
		return nil, fmt.Errorf("settling message %s of Service Bus entity %s: handle %q is not a lock token: %w", m.ID, r.queue, m.Handle, sources.ErrLeaseLost)
	}
	rm = &azservicebus.ReceivedMessage{}
	copy(rm.LockToken[:], token)
	return rm, nil
}

func (r *Receiver) track(handle string, rm *azservicebus.ReceivedMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.tracked[handle]; !ok {
		r.order = append(r.order, handle)
	}
	r.tracked[handle] = rm
	for len(r.tracked) > maxTracked && len(r.order) > 0 {
		delete(r.tracked, r.order[0])
		r.order = r.order[1:]
	}
	if len(r.order) > 2*maxTracked {
		r.order = slices.DeleteFunc(r.order, func(h string) bool { return r.tracked[h] == nil })
	}
}

func (r *Receiver) untrack(handle string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.tracked, handle)
	if len(r.order) > 2*len(r.tracked)+64 {
		r.order = slices.DeleteFunc(r.order, func(h string) bool { return r.tracked[h] == nil })
	}
}

// Close abandons the messages of delayed releases at once, detaches the receiver and closes its connection. It is
// safe to call more than once.
func (r *Receiver) Close() error {
	r.mu.Lock()
	r.closed = true
	for _, stop := range r.deferred {
		stop()
	}
	r.mu.Unlock()
	r.background.Wait()
	r.mu.Lock()
	closeFn := r.close
	r.close = nil
	r.mu.Unlock()
	if closeFn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := closeFn(ctx); err != nil {
		return fmt.Errorf("closing the Service Bus receiver of %s: %w", r.queue, err)
	}
	return nil
}

// properties converts application properties to text: strings, numbers, booleans and times (RFC 3339); binary and
// other values are left out.
func properties(in map[string]any) map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		switch v := v.(type) {
		case string:
			out[k] = v
		case bool:
			out[k] = strconv.FormatBool(v)
		case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
			out[k] = fmt.Sprint(v)
		case float32:
			out[k] = strconv.FormatFloat(float64(v), 'g', -1, 32)
		case float64:
			out[k] = strconv.FormatFloat(v, 'g', -1, 64)
		case time.Time:
			out[k] = v.UTC().Format(time.RFC3339Nano)
		}
	}
	return out
}

// system returns the broker properties of rm that Receive reports in Message.System.
func system(rm *azservicebus.ReceivedMessage) map[string]string {
	out := map[string]string{
		SystemSequenceNumber: strconv.FormatInt(*rm.SequenceNumber, 10),
		SystemDeliveryCount:  strconv.FormatUint(uint64(rm.DeliveryCount), 10),
	}
	set := func(k string, v *string) {
		if v != nil && *v != "" {
			out[k] = *v
		}
	}
	if rm.MessageID != "" {
		out[SystemMessageID] = rm.MessageID
	}
	if rm.EnqueuedTime != nil {
		out[SystemEnqueuedTime] = rm.EnqueuedTime.UTC().Format(time.RFC3339Nano)
	}
	set(SystemContentType, rm.ContentType)
	set(SystemCorrelationID, rm.CorrelationID)
	set(SystemSubject, rm.Subject)
	set(SystemSessionID, rm.SessionID)
	return out
}

// wrapError wraps err with the action and, when it is one, the sources error of the Receiver contract.
func wrapError(err error, format string, args ...any) error {
	action := fmt.Sprintf(format, args...)
	if kind := errorKind(err); kind != nil {
		return fmt.Errorf("%s: %w: %w", action, kind, err)
	}
	return fmt.Errorf("%s: %w", action, err)
}

// errorKind maps a Service Bus error to the sources error of the Receiver contract, or nil for a transient one:
// lock lost -> sources.ErrLeaseLost; unauthorized -> sources.ErrUnauthorized; a missing entity (the client's
// CodeNotFound, or a link refused with amqp:not-found) -> sources.ErrNotFound; server busy or a resource limit ->
// sources.ErrThrottled.
func errorKind(err error) error {
	var sbErr *azservicebus.Error
	if errors.As(err, &sbErr) {
		switch sbErr.Code {
		case azservicebus.CodeLockLost:
			return sources.ErrLeaseLost
		case azservicebus.CodeUnauthorizedAccess:
			return sources.ErrUnauthorized
		case azservicebus.CodeNotFound:
			return sources.ErrNotFound
		}
	}
	var amqpErr *amqp.Error
	if errors.As(err, &amqpErr) {
		switch amqpErr.Condition {
		case amqp.ErrCondNotFound:
			return sources.ErrNotFound
		case amqp.ErrCondUnauthorizedAccess:
			return sources.ErrUnauthorized
		case "com.microsoft:message-lock-lost":
			return sources.ErrLeaseLost
		case "com.microsoft:server-busy", amqp.ErrCondResourceLimitExceeded:
			return sources.ErrThrottled
		}
	}
	return nil
}
