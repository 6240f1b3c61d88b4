package sources

import (
	"context"
	"errors"
	"time"
)

// Errors of a Receiver's lease operations. Implementations wrap them (errors.Is) with the queue's own error.
var (
	// ErrLeaseLost: the message's lease expired or was taken over (the receipt handle or lock token is no longer
	// valid). The message is, or soon will be, visible to others again; its Job stays bound to it by name, so the
	// next delivery adopts the Job.
	ErrLeaseLost = errors.New("message lease lost")
	// ErrThrottled: the queue refused the call because of its request rate; retry later.
	ErrThrottled = errors.New("throttled by the queue")
)

// Message is one received message, held (leased) by the dispatcher until Ack, Release or DeadLetter.
type Message struct {
	// ID is the queue's id of the message; with Queue it identifies the message across redeliveries.
	ID string
	// Queue identifies the queue (SQS: the queue URL).
	Queue string
	// Body is the payload as sent.
	Body []byte
	// Attributes are the sender's message attributes (string and number values as text; binary ones are left out).
	Attributes map[string]string
	// System are the queue's own attributes of the message (SQS: SentTimestamp, ApproximateReceiveCount,
	// MessageGroupId, ...).
	System map[string]string
	// EnqueuedAt is when the queue accepted the message (zero when the queue does not say).
	EnqueuedAt time.Time
	// ReceiveCount is how often the queue has delivered the message, this delivery included (0 when unknown).
	// It also counts deliveries that never became a Job (a dispatcher restart), so it is not the attempt.
	ReceiveCount int
	// Group is the ordering group (SQS FIFO MessageGroupId); empty when the queue is unordered.
	Group string
	// LeaseUntil is when the lease runs out unless extended (the receiver's clock).
	LeaseUntil time.Time
	// Handle is the receiver's own reference for lease operations (SQS: the receipt handle). Receivers update it
	// on every Receive; callers pass the Message back as they got it.
	Handle string
}

// Receiver receives messages into free slots and settles each one. Implementations must be safe for
// concurrent use. Every method takes the caller's now where a lease time is computed; none calls time.Now to
// decide anything.
//
// Error contract, for every method: an error wrapping ErrLeaseLost when the lease is gone, ErrNotFound when the
// queue (or the dead-letter queue) does not exist, ErrUnauthorized when the credentials are refused, ErrThrottled
// when the queue limits the caller's rate, a *ConfigError for a permanent configuration problem; anything else is
// transient.
type Receiver interface {
	// Receive waits up to wait (long polling) for at most max messages and returns them leased. It returns early
	// with what it has, and with no messages and no error when wait passes with none.
	Receive(ctx context.Context, max int, wait time.Duration, now time.Time) ([]Message, error)
	// Extend renews the lease of m from now on and returns the new LeaseUntil.
	Extend(ctx context.Context, m *Message, now time.Time) (time.Time, error)
	// Ack deletes m from the queue: its work is done.
	Ack(ctx context.Context, m *Message) error
	// Release hands m back to the queue, visible again after delay (0: at once).
	Release(ctx context.Context, m *Message, delay time.Duration) error
	// DeadLetter moves m to the dead-letter destination with reason (and details as attributes), then removes it
	// from the queue. Without a dead-letter destination of its own it releases m for the queue's redrive policy
	// and reports ErrNoDeadLetter.
	DeadLetter(ctx context.Context, m *Message, reason string, details map[string]string) error
	// Lease is the lease one Receive or Extend grants; the caller renews at about a third of it.
	Lease() time.Duration
	// Close releases the receiver's clients. It is safe to call more than once.
	Close() error
}

// ErrNoDeadLetter is returned (wrapped) by DeadLetter when no dead-letter destination is configured: the message
// was released instead, for the queue's own redrive policy.
var ErrNoDeadLetter = errors.New("no dead-letter destination configured")

// ReceiverFactory builds a Receiver from its Config; like Factory it validates only and connects lazily.
// deadLetter is spec.dispatch.deadLetter's destination for the trigger type (SQS: a queue URL), or "".
type ReceiverFactory func(ctx context.Context, cfg Config, deadLetter string) (Receiver, error)
