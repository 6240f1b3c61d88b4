//go:build unix

package sqs

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
	"github.com/kubedispatch/kubedispatch/sources"
)

// TestReceiverOnMoto runs the message-mode Receiver against a real SQS API (moto_server). Each subtest has queues of
// its own. Waits are on conditions (long polls with short waits, polled until a deadline), never fixed sleeps.
func TestReceiverOnMoto(t *testing.T) {
	hermeticAWSEnv(t)
	endpoint := startMoto(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := motoClient(ctx, t, endpoint)

	t.Run("long poll returns a message sent while it waits", func(t *testing.T) {
		q := createQueue(ctx, t, c, "long-poll", nil)
		// wrote is signalled once a ReceiveMessage request has been written to moto, so the message below is sent
		// while the long poll is under way.
		wrote := make(chan struct{}, 1)
		polling := motoClient(ctx, t, endpoint, func(o *awssqs.Options) {
			o.HTTPClient = &http.Client{Transport: &receiveTracer{base: http.DefaultTransport, wrote: wrote}}
		})
		r, err := NewReceiverWithAPI(motoTrigger(endpoint, q), polling, "")
		if err != nil {
			t.Fatalf("NewReceiverWithAPI: %v", err)
		}
		// An empty queue: the long poll lasts its wait.
		start := time.Now()
		if got, err := r.Receive(ctx, 10, time.Second, start); err != nil || len(got) != 0 {
			t.Fatalf("Receive on an empty queue = %v, %v, want nothing", bodies(got), err)
		}
		if took := time.Since(start); took < 900*time.Millisecond {
			t.Errorf("Receive on an empty queue with a 1 s wait returned after %v", took)
		}
		select {
		case <-wrote: // the empty poll's signal
		case <-ctx.Done():
			t.Fatal("the ReceiveMessage request of the empty poll was not traced")
		}

		const wait = 20 * time.Second
		type result struct {
			msgs []sources.Message
			err  error
			at   time.Time
		}
		done := make(chan result, 1)
		start = time.Now()
		go func() {
			msgs, err := r.Receive(ctx, 10, wait, start)
			done <- result{msgs, err, time.Now()}
		}()
		select {
		case <-wrote:
		case <-ctx.Done():
			t.Fatal("ReceiveMessage was never sent")
		}
		select {
		case res := <-done:
			t.Fatalf("Receive returned before the message was sent: %v, %v", bodies(res.msgs), res.err)
		default:
		}
		sendMessage(ctx, t, c, q, "hello", nil)
		sent := time.Now()
		res := <-done
		if res.err != nil {
			t.Fatalf("Receive: %v", res.err)
		}
		if diff := cmp.Diff([]string{"hello"}, bodies(res.msgs)); diff != "" {
			t.Fatalf("Receive mismatch (-want +got):\n%s", diff)
		}
		t.Logf("Receive returned %v after it started, %v after the send", res.at.Sub(start), res.at.Sub(sent))
		if took := res.at.Sub(start); took >= wait/2 {
			t.Errorf("Receive took %v, want well under its %v wait", took, wait)
		}
	})

	t.Run("Extend keeps a message invisible past its lease", func(t *testing.T) {
		q := createQueue(ctx, t, c, "extend", map[string]string{"VisibilityTimeout": "2"})
		sendMessage(ctx, t, c, q, "work", nil)
		r := motoReceiver(ctx, t, endpoint, q, "")
		m := receiveOne(ctx, t, r)
		received := time.Now()
		if got := r.Lease(); got != minLease {
			t.Fatalf("Lease = %v, want the %v minimum (the queue says 2 s)", got, minLease)
		}
		// Extend at 2.5 s and 5 s: without them the message would be visible again at 5 s (the lease), and at 2 s
		// by the queue's own visibility timeout. Watch it, with short long-polls, until 8 s.
		extends := 0
		for time.Since(received) < 8*time.Second {
			if extends < 2 && time.Since(received) >= time.Duration(extends+1)*2500*time.Millisecond {
				if _, err := r.Extend(ctx, &m, time.Now()); err != nil {
					t.Fatalf("Extend %d: %v", extends+1, err)
				}
				extends++
			}
			if visible, _ := queueCounts(ctx, t, c, q); visible != 0 {
				t.Fatalf("ApproximateNumberOfMessages = %d at %v, want 0", visible, time.Since(received))
			}
			got, err := r.Receive(ctx, 10, time.Second, time.Now())
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if len(got) != 0 {
				t.Fatalf("message redelivered at %v after %d extends: %v", time.Since(received), extends, bodies(got))
			}
		}
		if extends != 2 {
			t.Fatalf("extended %d times, want 2", extends)
		}
		if err := r.Ack(ctx, &m); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		assertEmpty(ctx, t, c, q)
	})

	t.Run("a message left alone is redelivered; its stale receipt handle still works on moto", func(t *testing.T) {
		q := createQueue(ctx, t, c, "stale", map[string]string{"VisibilityTimeout": "2"})
		sendMessage(ctx, t, c, q, "work", nil)
		r := motoReceiver(ctx, t, endpoint, q, "")
		first := receiveOne(ctx, t, r)
		received := time.Now()
		var again sources.Message
		for again.ID == "" {
			if time.Since(received) > 20*time.Second {
				t.Fatal("message not redelivered within 20 s")
			}
			got, err := r.Receive(ctx, 10, time.Second, time.Now())
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if len(got) > 0 {
				again = got[0]
			}
		}
		redelivered := time.Since(received)
		t.Logf("redelivered after %v (lease %v, queue visibility timeout 2 s)", redelivered, r.Lease())
		// The lease passed on ReceiveMessage (5 s), not the queue's 2 s, decides when the message comes back.
		if redelivered < r.Lease()-time.Second {
			t.Errorf("redelivered after %v, want about the %v lease", redelivered, r.Lease())
		}
		if again.ID != first.ID || again.Handle == first.Handle || again.ReceiveCount != 2 {
			t.Errorf("redelivery = id %s handle %q count %d, want id %s, a new handle, count 2",
				again.ID, again.Handle, again.ReceiveCount, first.ID)
		}
		// moto 5.2.1 accepts any receipt handle a message ever had (Message.had_receipt_handle): ChangeMessageVisibility
		// and DeleteMessage with the stale handle of the first delivery succeed and act on the message, and a later
		// DeleteMessage with the current handle of the deleted message succeeds too (moto remembers deleted handles).
		// Real SQS refuses a stale handle on ChangeMessageVisibility (InvalidParameterValue "... for parameter
		// ReceiptHandle is invalid", mapped to ErrLeaseLost). Either outcome is within the Receiver contract; the test
		// requires one of them, the same for both calls.
		_, extendErr := r.Extend(ctx, &first, time.Now())
		ackErr := r.Ack(ctx, &first)
		for op, err := range map[string]error{"Extend": extendErr, "Ack": ackErr} {
			if err != nil && !errors.Is(err, sources.ErrLeaseLost) {
				t.Errorf("%s with the stale handle: %v, want success or ErrLeaseLost", op, err)
			}
		}
		if (extendErr == nil) != (ackErr == nil) {
			t.Errorf("stale handle: Extend error %v, Ack error %v: want the same outcome", extendErr, ackErr)
		}
		t.Logf("stale receipt handle: Extend error %v, Ack error %v", extendErr, ackErr)
		if err := r.Ack(ctx, &again); err != nil {
			t.Fatalf("Ack with the current handle: %v", err)
		}
		assertEmpty(ctx, t, c, q)
	})

	t.Run("Release makes the message visible at once", func(t *testing.T) {
		q := createQueue(ctx, t, c, "release", nil)
		sendMessage(ctx, t, c, q, "work", nil)
		r := motoReceiver(ctx, t, endpoint, q, "")
		m := receiveOne(ctx, t, r)
		if err := r.Release(ctx, &m, 0); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if visible, inFlight := queueCounts(ctx, t, c, q); visible != 1 || inFlight != 0 {
			t.Errorf("after Release: %d visible, %d in flight, want 1 and 0", visible, inFlight)
		}
		got, err := r.Receive(ctx, 10, 0, time.Now())
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if len(got) != 1 || got[0].ID != m.ID || got[0].ReceiveCount != 2 {
			t.Fatalf("Receive without waiting after Release = %+v, want %s delivered a second time", got, m.ID)
		}
		if err := r.Ack(ctx, &got[0]); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	})

	t.Run("Ack deletes the message", func(t *testing.T) {
		q := createQueue(ctx, t, c, "ack", nil)
		sendMessage(ctx, t, c, q, "work", nil)
		r := motoReceiver(ctx, t, endpoint, q, "")
		m := receiveOne(ctx, t, r)
		if err := r.Ack(ctx, &m); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		assertEmpty(ctx, t, c, q)
		got, err := r.Receive(ctx, 10, time.Second, time.Now())
		if err != nil || len(got) != 0 {
			t.Errorf("Receive after Ack = %v, %v, want nothing", bodies(got), err)
		}
	})

	t.Run("DeadLetter moves the message to the dead-letter queue", func(t *testing.T) {
		q := createQueue(ctx, t, c, "dl-source", nil)
		dlq := createQueue(ctx, t, c, "dl-target", nil)
		sendMessage(ctx, t, c, q, `{"job":1}`, map[string]types.MessageAttributeValue{
			"tenant": {DataType: aws.String("String"), StringValue: aws.String("acme")},
			"n":      {DataType: aws.String("Number"), StringValue: aws.String("7")},
		})
		r := motoReceiver(ctx, t, endpoint, q, dlq)
		m := receiveOne(ctx, t, r)
		if err := r.DeadLetter(ctx, &m, "job failed: exit code 2", map[string]string{"kubedispatch-job": "work-1"}); err != nil {
			t.Fatalf("DeadLetter: %v", err)
		}
		assertEmpty(ctx, t, c, q)
		copied := receiveRaw(ctx, t, c, dlq)
		if got := aws.ToString(copied.Body); got != `{"job":1}` {
			t.Errorf("dead-letter body = %q, want the original", got)
		}
		want := map[string]string{
			"kubedispatch-reason": "String:job failed: exit code 2",
			"kubedispatch-job":    "String:work-1",
			"tenant":              "String:acme",
			"n":                   "Number:7",
		}
		if diff := cmp.Diff(want, attributeText(copied.MessageAttributes)); diff != "" {
			t.Errorf("dead-letter attributes mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("DeadLetter to a FIFO dead-letter queue keeps the group and deduplicates", func(t *testing.T) {
		q := createQueue(ctx, t, c, "dl-source.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
		// Without content-based deduplication SQS requires MessageDeduplicationId: the send proves we set it.
		dlq := createQueue(ctx, t, c, "dl-target.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "false"})
		sendFIFO(ctx, t, c, q, "work", "tenant-a")
		r := motoReceiver(ctx, t, endpoint, q, dlq)
		m := receiveOne(ctx, t, r)
		if err := r.DeadLetter(ctx, &m, "failed", nil); err != nil {
			t.Fatalf("DeadLetter: %v", err)
		}
		assertEmpty(ctx, t, c, q)
		copied := receiveRaw(ctx, t, c, dlq)
		got := map[string]string{
			"MessageGroupId":         copied.Attributes["MessageGroupId"],
			"MessageDeduplicationId": copied.Attributes["MessageDeduplicationId"],
		}
		want := map[string]string{"MessageGroupId": "tenant-a", "MessageDeduplicationId": m.ID}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("dead-letter FIFO attributes mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("FIFO: the next message of a group only after the previous one is acked", func(t *testing.T) {
		q := createQueue(ctx, t, c, "order.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
		sendFIFO(ctx, t, c, q, "g-first", "g")
		sendFIFO(ctx, t, c, q, "g-second", "g")
		sendFIFO(ctx, t, c, q, "h-first", "h")
		var mu sync.Mutex
		var fromMoto []int
		api := &observedAPI{ReceiverAPI: c, afterReceive: func(n int) {
			mu.Lock()
			defer mu.Unlock()
			fromMoto = append(fromMoto, n)
		}}
		r, err := NewReceiverWithAPI(motoTrigger(endpoint, q), api, "")
		if err != nil {
			t.Fatalf("NewReceiverWithAPI: %v", err)
		}
		first, err := r.Receive(ctx, 10, time.Second, time.Now())
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if diff := cmp.Diff([]string{"g-first", "h-first"}, bodies(first)); diff != "" {
			t.Fatalf("first Receive mismatch (-want +got):\n%s", diff)
		}
		none, err := r.Receive(ctx, 10, time.Second, time.Now())
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if len(none) != 0 {
			t.Fatalf("Receive while g-first is held = %v, want nothing", bodies(none))
		}
		for i := range first {
			if err := r.Ack(ctx, &first[i]); err != nil {
				t.Fatalf("Ack %s: %v", first[i].Body, err)
			}
		}
		var next []sources.Message
		for deadline := time.Now().Add(10 * time.Second); len(next) == 0 && time.Now().Before(deadline); {
			if next, err = r.Receive(ctx, 10, time.Second, time.Now()); err != nil {
				t.Fatalf("Receive: %v", err)
			}
		}
		if diff := cmp.Diff([]string{"g-second"}, bodies(next)); diff != "" {
			t.Fatalf("Receive after the Ack mismatch (-want +got):\n%s", diff)
		}
		if err := r.Ack(ctx, &next[0]); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		mu.Lock()
		// moto 5.2.1 blocks a group only across ReceiveMessage calls: one call returns every visible message of a
		// group (the first call here returns 3), so the Receiver's own filter is what keeps the order.
		t.Logf("messages per ReceiveMessage call from moto: %v", fromMoto)
		mu.Unlock()
		assertEmpty(ctx, t, c, q)
	})

	t.Run("Release beyond the 12-hour visibility cap is a lost lease", func(t *testing.T) {
		q := createQueue(ctx, t, c, "cap", nil)
		sendMessage(ctx, t, c, q, "work", nil)
		r := motoReceiver(ctx, t, endpoint, q, "")
		m := receiveOne(ctx, t, r)
		err := r.Release(ctx, &m, 13*time.Hour)
		t.Logf("Release(13h): %v", err)
		if !errors.Is(err, sources.ErrLeaseLost) {
			t.Errorf("Release(13h) error = %v, want ErrLeaseLost", err)
		}
	})

	t.Run("an unknown receipt handle is a lost lease", func(t *testing.T) {
		q := createQueue(ctx, t, c, "unknown-handle", nil)
		r := motoReceiver(ctx, t, endpoint, q, "")
		m := &sources.Message{ID: "m-1", Queue: q, Handle: "not-a-receipt-handle"}
		_, extendErr := r.Extend(ctx, m, time.Now())
		ackErr := r.Ack(ctx, m)
		for op, err := range map[string]error{"Extend": extendErr, "Ack": ackErr} {
			t.Logf("%s: %v", op, err)
			if !errors.Is(err, sources.ErrLeaseLost) {
				t.Errorf("%s with an unknown handle: error = %v, want ErrLeaseLost", op, err)
			}
		}
	})

	t.Run("a missing queue is not found", func(t *testing.T) {
		r := motoReceiver(ctx, t, endpoint, endpoint+"/123456789012/nope", "")
		_, err := r.Receive(ctx, 1, 0, time.Now())
		t.Logf("Receive: %v", err)
		if !errors.Is(err, sources.ErrNotFound) {
			t.Errorf("Receive error = %v, want ErrNotFound", err)
		}
	})

	// Documents (does not require) the largest body moto takes. SQS's limit is 1 MiB (1,048,576 bytes); moto 5.2.1
	// refuses len(body) > MaximumMessageSize (default 1,048,576): it accepts 1,048,575 and 1,048,576 bytes and returns
	// them whole, and refuses 1,048,577 with InvalidParameterValue ("Message must be shorter than 1048576 bytes").
	t.Run("body size limit", func(t *testing.T) {
		q := createQueue(ctx, t, c, "big", nil)
		r := motoReceiver(ctx, t, endpoint, q, "")
		for _, size := range []int{1<<20 - 1, 1 << 20, 1<<20 + 1} {
			body := strings.Repeat("a", size)
			_, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: aws.String(body)})
			if err != nil {
				t.Logf("moto refused a body of %d bytes: %v", size, err)
				continue
			}
			got, err := r.Receive(ctx, 1, 5*time.Second, time.Now())
			if err != nil || len(got) != 1 {
				t.Logf("moto accepted a body of %d bytes, but receiving it gave %d messages, %v", size, len(got), err)
				continue
			}
			t.Logf("moto accepted a body of %d bytes and returned %d bytes", size, len(got[0].Body))
			if err := r.Ack(ctx, &got[0]); err != nil {
				t.Logf("Ack: %v", err)
			}
		}
	})
}

// observedAPI reports the number of messages of every ReceiveMessage answer and passes every call on.
type observedAPI struct {
	ReceiverAPI
	afterReceive func(messages int)
}

func (o *observedAPI) ReceiveMessage(ctx context.Context, in *awssqs.ReceiveMessageInput, optFns ...func(*awssqs.Options)) (*awssqs.ReceiveMessageOutput, error) {
	out, err := o.ReceiverAPI.ReceiveMessage(ctx, in, optFns...)
	if out != nil {
		o.afterReceive(len(out.Messages))
	}
	return out, err
}

// receiveTracer is an HTTP transport that signals wrote (without blocking) when a ReceiveMessage request has been
// written to the server.
type receiveTracer struct {
	base  http.RoundTripper
	wrote chan struct{}
}

func (rt *receiveTracer) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".ReceiveMessage") {
		trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) {
			select {
			case rt.wrote <- struct{}{}:
			default:
			}
		}}
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	}
	return rt.base.RoundTrip(req)
}

// motoClient returns an SQS client of moto at endpoint, with static test credentials, changed by opts.
func motoClient(ctx context.Context, t *testing.T, endpoint string, opts ...func(*awssqs.Options)) *awssqs.Client {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	if err != nil {
		t.Fatalf("loading AWS config: %v", err)
	}
	return awssqs.NewFromConfig(cfg, append([]func(*awssqs.Options){func(o *awssqs.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	}}, opts...)...)
}

// motoTrigger is an aws-sqs-queue trigger for queueURL on moto at endpoint, with static test credentials.
func motoTrigger(endpoint, queueURL string) sources.Config {
	return trigger(sourcetest.WithMetadata("queueURL", queueURL), sourcetest.WithMetadata("awsRegion", "us-east-1"),
		sourcetest.WithMetadata("awsEndpoint", endpoint), sourcetest.WithAuth("awsAccessKeyID", "test"),
		sourcetest.WithAuth("awsSecretAccessKey", "test"))
}

// motoReceiver builds a Receiver for queueURL on moto through NewReceiver.
func motoReceiver(ctx context.Context, t *testing.T, endpoint, queueURL, deadLetter string) sources.Receiver {
	t.Helper()
	r, err := NewReceiver(ctx, motoTrigger(endpoint, queueURL), deadLetter)
	if err != nil {
		t.Fatalf("NewReceiver: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// createQueue creates a queue with attrs and returns its URL.
func createQueue(ctx context.Context, t *testing.T, c *awssqs.Client, name string, attrs map[string]string) string {
	t.Helper()
	out, err := c.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatalf("creating queue %s: %v", name, err)
	}
	return aws.ToString(out.QueueUrl)
}

// sendMessage sends body with attrs to the queue.
func sendMessage(ctx context.Context, t *testing.T, c *awssqs.Client, queueURL, body string, attrs map[string]types.MessageAttributeValue) {
	t.Helper()
	if _, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(body),
		MessageAttributes: attrs}); err != nil {
		t.Fatalf("sending %q: %v", body, err)
	}
}

// sendFIFO sends body to a FIFO queue (with content-based deduplication) in group.
func sendFIFO(ctx context.Context, t *testing.T, c *awssqs.Client, queueURL, body, group string) {
	t.Helper()
	if _, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(body),
		MessageGroupId: aws.String(group)}); err != nil {
		t.Fatalf("sending %q: %v", body, err)
	}
}

// receiveOne receives exactly one message through r, long polling up to 5 s.
func receiveOne(ctx context.Context, t *testing.T, r sources.Receiver) sources.Message {
	t.Helper()
	msgs, err := r.Receive(ctx, 10, 5*time.Second, time.Now())
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("Receive = %v, want one message", bodies(msgs))
	}
	return msgs[0]
}

// receiveRaw receives one message straight from the queue, with all its attributes, leaving it in flight.
func receiveRaw(ctx context.Context, t *testing.T, c *awssqs.Client, queueURL string) types.Message {
	t.Helper()
	out, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10,
		WaitTimeSeconds: 5, VisibilityTimeout: 60, MessageAttributeNames: []string{"All"},
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}})
	if err != nil {
		t.Fatalf("receiving from %s: %v", queueURL, err)
	}
	if len(out.Messages) != 1 {
		t.Fatalf("received %d messages from %s, want 1", len(out.Messages), queueURL)
	}
	return out.Messages[0]
}

// queueCounts returns the queue's visible and in-flight message counts.
func queueCounts(ctx context.Context, t *testing.T, c *awssqs.Client, queueURL string) (visible, inFlight int) {
	t.Helper()
	out, err := c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(queueURL),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatalf("reading attributes of %s: %v", queueURL, err)
	}
	count := func(name types.QueueAttributeName) int {
		n, err := strconv.Atoi(out.Attributes[string(name)])
		if err != nil {
			t.Fatalf("%s of %s = %q: %v", name, queueURL, out.Attributes[string(name)], err)
		}
		return n
	}
	return count(types.QueueAttributeNameApproximateNumberOfMessages),
		count(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)
}

// assertEmpty fails t unless the queue has no visible and no in-flight messages.
func assertEmpty(ctx context.Context, t *testing.T, c *awssqs.Client, queueURL string) {
	t.Helper()
	if visible, inFlight := queueCounts(ctx, t, c, queueURL); visible != 0 || inFlight != 0 {
		t.Errorf("queue %s has %d visible and %d in-flight messages, want none", queueURL, visible, inFlight)
	}
}

// bodies returns the bodies of msgs as strings.
func bodies(msgs []sources.Message) []string {
	out := []string{}
	for _, m := range msgs {
		out = append(out, string(m.Body))
	}
	return out
}

// attributeText returns message attributes as name -> "DataType:value".
func attributeText(attrs map[string]types.MessageAttributeValue) map[string]string {
	out := map[string]string{}
	for k, v := range attrs {
		out[k] = aws.ToString(v.DataType) + ":" + aws.ToString(v.StringValue)
	}
	return out
}
