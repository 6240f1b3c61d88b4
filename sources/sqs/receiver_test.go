package sqs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
	"github.com/kubedispatch/kubedispatch/sources"
)

const (
	testDLQ     = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs-dlq"
	testFIFODLQ = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs-dlq.fifo"
)

// fakeReceiverAPI is a hand-written ReceiverAPI. GetQueueAttributes answers visibility as the VisibilityTimeout
// attribute ("" leaves it out); each ReceiveMessage call answers the next of batches (none left: no messages). errs
// fails an operation by its name. It records every call.
type fakeReceiverAPI struct {
	mu         sync.Mutex
	visibility string
	batches    [][]types.Message
	errs       map[string]error

	attrCalls    []*awssqs.GetQueueAttributesInput
	receiveCalls []*awssqs.ReceiveMessageInput
	changeCalls  []*awssqs.ChangeMessageVisibilityInput
	deleteCalls  []*awssqs.DeleteMessageInput
	sendCalls    []*awssqs.SendMessageInput
}

// Operation names for fakeReceiverAPI.errs.
const (
	opAttributes = "GetQueueAttributes"
	opReceive    = "ReceiveMessage"
	opChange     = "ChangeMessageVisibility"
	opDelete     = "DeleteMessage"
	opSend       = "SendMessage"
)

func newFakeReceiverAPI(batches ...[]types.Message) *fakeReceiverAPI {
	return &fakeReceiverAPI{visibility: "30", batches: batches, errs: map[string]error{}}
}

// fail makes op fail with err from now on (nil: succeed again).
func (f *fakeReceiverAPI) fail(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[op] = err
}

func (f *fakeReceiverAPI) GetQueueAttributes(_ context.Context, in *awssqs.GetQueueAttributesInput, _ ...func(*awssqs.Options)) (*awssqs.GetQueueAttributesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attrCalls = append(f.attrCalls, in)
	if err := f.errs[opAttributes]; err != nil {
		return nil, err
	}
	out := map[string]string{}
	if f.visibility != "" {
		out["VisibilityTimeout"] = f.visibility
	}
	return &awssqs.GetQueueAttributesOutput{Attributes: out}, nil
}

func (f *fakeReceiverAPI) ReceiveMessage(_ context.Context, in *awssqs.ReceiveMessageInput, _ ...func(*awssqs.Options)) (*awssqs.ReceiveMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.receiveCalls = append(f.receiveCalls, in)
	if err := f.errs[opReceive]; err != nil {
		return nil, err
	}
	if len(f.batches) == 0 {
		return &awssqs.ReceiveMessageOutput{}, nil
	}
	batch := f.batches[0]
	f.batches = f.batches[1:]
	return &awssqs.ReceiveMessageOutput{Messages: batch}, nil
}

func (f *fakeReceiverAPI) ChangeMessageVisibility(_ context.Context, in *awssqs.ChangeMessageVisibilityInput, _ ...func(*awssqs.Options)) (*awssqs.ChangeMessageVisibilityOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changeCalls = append(f.changeCalls, in)
	if err := f.errs[opChange]; err != nil {
		return nil, err
	}
	return &awssqs.ChangeMessageVisibilityOutput{}, nil
}

func (f *fakeReceiverAPI) DeleteMessage(_ context.Context, in *awssqs.DeleteMessageInput, _ ...func(*awssqs.Options)) (*awssqs.DeleteMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleteCalls = append(f.deleteCalls, in)
	if err := f.errs[opDelete]; err != nil {
		return nil, err
	}
	return &awssqs.DeleteMessageOutput{}, nil
}

func (f *fakeReceiverAPI) SendMessage(_ context.Context, in *awssqs.SendMessageInput, _ ...func(*awssqs.Options)) (*awssqs.SendMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sendCalls = append(f.sendCalls, in)
	if err := f.errs[opSend]; err != nil {
		return nil, err
	}
	return &awssqs.SendMessageOutput{MessageId: aws.String("dlq-" + aws.ToString(in.MessageDeduplicationId))}, nil
}

// changes returns the ChangeMessageVisibility calls as "handle=seconds".
func (f *fakeReceiverAPI) changes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.changeCalls {
		out = append(out, fmt.Sprintf("%s=%d", aws.ToString(c.ReceiptHandle), c.VisibilityTimeout))
	}
	return out
}

// deletes returns the receipt handles of the DeleteMessage calls.
func (f *fakeReceiverAPI) deletes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.deleteCalls {
		out = append(out, aws.ToString(c.ReceiptHandle))
	}
	return out
}

// sqsMessage builds a received SQS message with id, receipt handle "h-<id>", body "body-<id>" and, when group is
// set, that MessageGroupId.
func sqsMessage(id, group string) types.Message {
	attrs := map[string]string{"ApproximateReceiveCount": "1"}
	if group != "" {
		attrs["MessageGroupId"] = group
	}
	return types.Message{
		MessageId:     aws.String(id),
		ReceiptHandle: aws.String("h-" + id),
		Body:          aws.String("body-" + id),
		Attributes:    attrs,
	}
}

// withHandle returns m with another receipt handle (a redelivery).
func withHandle(m types.Message, handle string) types.Message {
	m.ReceiptHandle = aws.String(handle)
	return m
}

// withAttributes returns m with message attributes given as name -> "DataType:value".
func withAttributes(m types.Message, attrs map[string]string) types.Message {
	m.MessageAttributes = map[string]types.MessageAttributeValue{}
	for name, tv := range attrs {
		dataType, value, _ := strings.Cut(tv, ":")
		v := types.MessageAttributeValue{DataType: aws.String(dataType)}
		if strings.HasPrefix(dataType, "Binary") {
			v.BinaryValue = []byte(value)
		} else {
			v.StringValue = aws.String(value)
		}
		m.MessageAttributes[name] = v
	}
	return m
}

// ids returns the IDs of msgs.
func ids(msgs []sources.Message) []string {
	out := []string{}
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return out
}

// newTestReceiver returns a Receiver of trigger() over api with the dead-letter queue dlq.
func newTestReceiver(t *testing.T, api ReceiverAPI, dlq string) *Receiver {
	t.Helper()
	r, err := NewReceiverWithAPI(trigger(), api, dlq)
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
	// Keep the default configuration hermetic: no shared files, no instance metadata.
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	cases := map[string]struct {
		cfg      sources.Config
		dlq      string
		wantFIFO bool
		wantErr  *sources.ConfigError
	}{
		"no dead-letter queue": {cfg: trigger()},
		"https dead-letter queue": {
			cfg: trigger(),
			dlq: testDLQ,
		},
		"http dead-letter queue on an emulator": {
			cfg: trigger(),
			dlq: "http://localhost:4566/000000000000/dlq",
		},
		"FIFO dead-letter queue": {
			cfg:      trigger(),
			dlq:      testFIFODLQ,
			wantFIFO: true,
		},
		"dead-letter queue name only": {
			cfg: trigger(),
			dlq: "jobs-dlq",
			wantErr: &sources.ConfigError{Field: "dispatch.deadLetter.queueURL",
				Detail: `"jobs-dlq" is not an http(s) SQS queue URL (want https://<host>/<account>/<queue>)`},
		},
		"dead-letter queue with another scheme": {
			cfg: trigger(),
			dlq: "sqs://sqs.eu-west-1.amazonaws.com/123456789012/dlq",
			wantErr: &sources.ConfigError{Field: "dispatch.deadLetter.queueURL",
				Detail: `"sqs://sqs.eu-west-1.amazonaws.com/123456789012/dlq" is not an http(s) SQS queue URL (want https://<host>/<account>/<queue>)`},
		},
		"dead-letter queue without host": {
			cfg: trigger(),
			dlq: "https:///123456789012/dlq",
			wantErr: &sources.ConfigError{Field: "dispatch.deadLetter.queueURL",
				Detail: `"https:///123456789012/dlq" is not an http(s) SQS queue URL (want https://<host>/<account>/<queue>)`},
		},
		"dead-letter queue without queue": {
			cfg: trigger(),
			dlq: "https://sqs.eu-west-1.amazonaws.com/123456789012/",
			wantErr: &sources.ConfigError{Field: "dispatch.deadLetter.queueURL",
				Detail: `"https://sqs.eu-west-1.amazonaws.com/123456789012/" has no queue in its path (want https://<host>/<account>/<queue>)`},
		},
		"dead-letter queue is the trigger's queue": {
			cfg: trigger(),
			dlq: testQueueURL,
			wantErr: &sources.ConfigError{Field: "dispatch.deadLetter.queueURL",
				Detail: `"` + testQueueURL + `" is the trigger's own queue`},
		},
		"bad trigger metadata": {
			cfg: trigger(sourcetest.WithoutMetadata("queueURL")),
			dlq: testDLQ,
			wantErr: &sources.ConfigError{Field: "metadata.queueURL",
				Detail: "is required (set queueURL, queueURLFromEnv or the authenticationRef parameter queueURL)"},
		},
		"bad authentication": {
			cfg: trigger(sourcetest.WithAuth("awsAccessKeyID", "AKID")),
			wantErr: &sources.ConfigError{Field: "authenticationRef",
				Detail: "parameter awsSecretAccessKey is missing (awsAccessKeyID is set)"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			withAPI, err := NewReceiverWithAPI(tc.cfg, newFakeReceiverAPI(), tc.dlq)
			sourcetest.AssertConfigError(t, err, tc.wantErr)
			recv, nerr := NewReceiver(context.Background(), tc.cfg, tc.dlq)
			sourcetest.AssertConfigError(t, nerr, tc.wantErr)
			if err != nil {
				return
			}
			if withAPI.deadLetterFIFO != tc.wantFIFO {
				t.Errorf("deadLetterFIFO = %v, want %v", withAPI.deadLetterFIFO, tc.wantFIFO)
			}
			r, ok := recv.(*Receiver)
			if !ok {
				t.Fatalf("NewReceiver() = %T, want *Receiver", recv)
			}
			client, ok := r.api.(*awssqs.Client)
			if !ok {
				t.Fatalf("API = %T, want *sqs.Client", r.api)
			}
			if got := client.Options().Region; got != "eu-west-1" {
				t.Errorf("client region = %q, want eu-west-1", got)
			}
			if got := r.Lease(); got != 30*time.Second {
				t.Errorf("Lease before the first Receive = %v, want 30s", got)
			}
		})
	}
}

func TestRegisterReceiver(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	r := sources.NewRegistry()
	if err := Register(r); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if _, err := r.NewReceiver(t.Context(), trigger(sourcetest.WithoutMetadata("queueURL")), ""); !sources.IsConfigError(err) {
		t.Errorf("NewReceiver with a bad config: error = %v, want a ConfigError", err)
	}
	if _, err := r.NewReceiver(t.Context(), trigger(), "dlq"); !sources.IsConfigError(err) {
		t.Errorf("NewReceiver with a bad dead-letter queue: error = %v, want a ConfigError", err)
	}
	got, err := r.NewReceiver(t.Context(), trigger(), testDLQ)
	if err != nil {
		t.Fatalf("NewReceiver: %v", err)
	}
	if _, ok := got.(*Receiver); !ok {
		t.Errorf("NewReceiver() = %T, want *Receiver", got)
	}
}

// receiveInput is the part of a ReceiveMessageInput the tests compare.
type receiveInput struct {
	QueueURL          string
	Max, Wait, Lease  int32
	SystemAttributes  []types.MessageSystemAttributeName
	MessageAttributes []string
}

func TestReceive(t *testing.T) {
	sent := fixedNow().Add(-time.Minute)
	full := withAttributes(types.Message{
		MessageId:     aws.String("m-1"),
		ReceiptHandle: aws.String("handle-1"),
		Body:          aws.String(`{"n":1}`),
		Attributes: map[string]string{
			"SentTimestamp":           strconv.FormatInt(sent.UnixMilli(), 10),
			"ApproximateReceiveCount": "3",
			"SenderId":                "AIDA",
		},
	}, map[string]string{
		"tenant": "String:acme",
		"n":      "Number:7",
		"custom": "String.json:{}",
		"blob":   "Binary:xyz",
	})
	all := []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}
	cases := map[string]struct {
		max       int
		wait      time.Duration
		batch     []types.Message
		want      []sources.Message
		wantInput *receiveInput
	}{
		"maps a message": {
			max:   5,
			wait:  3 * time.Second,
			batch: []types.Message{full},
			want: []sources.Message{{
				ID:    "m-1",
				Queue: testQueueURL,
				Body:  []byte(`{"n":1}`),
				Attributes: map[string]string{
					"tenant": "acme",
					"n":      "7",
					"custom": "{}",
				},
				System: map[string]string{
					"SentTimestamp":           strconv.FormatInt(sent.UnixMilli(), 10),
					"ApproximateReceiveCount": "3",
					"SenderId":                "AIDA",
				},
				EnqueuedAt:   sent,
				ReceiveCount: 3,
				LeaseUntil:   fixedNow().Add(30 * time.Second),
				Handle:       "handle-1",
			}},
			wantInput: &receiveInput{QueueURL: testQueueURL, Max: 5, Wait: 3, Lease: 30, SystemAttributes: all,
				MessageAttributes: []string{"All"}},
		},
		"FIFO group, no attributes, unknown timestamp": {
			max: 1,
			batch: []types.Message{{MessageId: aws.String("m-2"), ReceiptHandle: aws.String("handle-2"), Body: aws.String(""),
				Attributes: map[string]string{"MessageGroupId": "g", "SentTimestamp": "soon", "ApproximateReceiveCount": "x"}}},
			want: []sources.Message{{
				ID:         "m-2",
				Queue:      testQueueURL,
				Body:       []byte{},
				System:     map[string]string{"MessageGroupId": "g", "SentTimestamp": "soon", "ApproximateReceiveCount": "x"},
				Group:      "g",
				LeaseUntil: fixedNow().Add(30 * time.Second),
				Handle:     "handle-2",
			}},
			wantInput: &receiveInput{QueueURL: testQueueURL, Max: 1, Lease: 30, SystemAttributes: all,
				MessageAttributes: []string{"All"}},
		},
		"max above ten and a long wait are capped": {
			max:       25,
			wait:      time.Minute,
			wantInput: &receiveInput{QueueURL: testQueueURL, Max: 10, Wait: 20, Lease: 30, SystemAttributes: all, MessageAttributes: []string{"All"}},
		},
		"a fractional wait rounds down": {
			max:       10,
			wait:      1900 * time.Millisecond,
			wantInput: &receiveInput{QueueURL: testQueueURL, Max: 10, Wait: 1, Lease: 30, SystemAttributes: all, MessageAttributes: []string{"All"}},
		},
		"a negative wait does not wait": {
			max:       2,
			wait:      -time.Second,
			wantInput: &receiveInput{QueueURL: testQueueURL, Max: 2, Wait: 0, Lease: 30, SystemAttributes: all, MessageAttributes: []string{"All"}},
		},
		"max zero makes no call": {
			max:   0,
			batch: []types.Message{full},
		},
		"negative max makes no call": {
			max:   -1,
			batch: []types.Message{full},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			api := newFakeReceiverAPI(tc.batch)
			r := newTestReceiver(t, api, "")
			got, err := r.Receive(context.Background(), tc.max, tc.wait, fixedNow())
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Receive mismatch (-want +got):\n%s", diff)
			}
			if tc.wantInput == nil {
				if len(api.receiveCalls)+len(api.attrCalls) != 0 {
					t.Errorf("made %d ReceiveMessage and %d GetQueueAttributes calls, want none",
						len(api.receiveCalls), len(api.attrCalls))
				}
				return
			}
			if len(api.receiveCalls) != 1 {
				t.Fatalf("ReceiveMessage called %d times, want 1", len(api.receiveCalls))
			}
			in := api.receiveCalls[0]
			gotInput := &receiveInput{QueueURL: aws.ToString(in.QueueUrl), Max: in.MaxNumberOfMessages,
				Wait: in.WaitTimeSeconds, Lease: in.VisibilityTimeout, SystemAttributes: in.MessageSystemAttributeNames,
				MessageAttributes: in.MessageAttributeNames}
			if diff := cmp.Diff(tc.wantInput, gotInput); diff != "" {
				t.Errorf("ReceiveMessage input mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLease(t *testing.T) {
	cases := map[string]struct {
		visibility string
		attrErr    error
		want       time.Duration
		wantMsg    string
	}{
		"queue's visibility timeout": {visibility: "120", want: 2 * time.Minute},
		"at the minimum":             {visibility: "5", want: 5 * time.Second},
		"below the minimum":          {visibility: "2", want: 5 * time.Second},
		"zero":                       {visibility: "0", want: 5 * time.Second},
		"twelve hours":               {visibility: "43200", want: 12 * time.Hour},
		"missing attribute": {
			wantMsg: "reading the visibility timeout of SQS queue " + testQueueURL + ": response has no VisibilityTimeout",
		},
		"non-integer attribute": {
			visibility: "soon",
			wantMsg:    "reading the visibility timeout of SQS queue " + testQueueURL + `: VisibilityTimeout is "soon", not an integer`,
		},
		"call fails": {
			visibility: "30",
			attrErr:    errors.New("connection refused"),
			wantMsg:    "reading the visibility timeout of SQS queue " + testQueueURL + ": connection refused",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			api := newFakeReceiverAPI([]types.Message{sqsMessage("m-1", "")}, []types.Message{sqsMessage("m-2", "")})
			api.visibility = tc.visibility
			api.fail(opAttributes, tc.attrErr)
			r := newTestReceiver(t, api, "")
			if got := r.Lease(); got != 30*time.Second {
				t.Errorf("Lease before the first Receive = %v, want 30s", got)
			}
			msgs, err := r.Receive(context.Background(), 10, 0, fixedNow())
			if tc.wantMsg != "" {
				if err == nil {
					t.Fatalf("Receive = %v, want an error", msgs)
				}
				if diff := cmp.Diff(tc.wantMsg, err.Error()); diff != "" {
					t.Errorf("error mismatch (-want +got):\n%s", diff)
				}
				if len(api.receiveCalls) != 0 {
					t.Errorf("ReceiveMessage called %d times, want 0", len(api.receiveCalls))
				}
				if got := r.Lease(); got != 30*time.Second {
					t.Errorf("Lease after a failed read = %v, want 30s", got)
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
			if len(api.attrCalls) != 1 {
				t.Errorf("GetQueueAttributes called %d times, want 1 (cached)", len(api.attrCalls))
			}
			if diff := cmp.Diff([]types.QueueAttributeName{types.QueueAttributeNameVisibilityTimeout}, api.attrCalls[0].AttributeNames); diff != "" {
				t.Errorf("requested attributes mismatch (-want +got):\n%s", diff)
			}
			wantSeconds := int32(tc.want / time.Second)
			for i, in := range api.receiveCalls {
				if in.VisibilityTimeout != wantSeconds {
					t.Errorf("ReceiveMessage %d VisibilityTimeout = %d, want %d", i, in.VisibilityTimeout, wantSeconds)
				}
			}
			if diff := cmp.Diff([]string{fmt.Sprintf("h-m-1=%d", wantSeconds)}, api.changes()); diff != "" {
				t.Errorf("ChangeMessageVisibility mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReceiveKeepsGroupOrder(t *testing.T) {
	lost := &smithy.OperationError{ServiceID: "SQS", OperationName: "ChangeMessageVisibility",
		Err: &types.ReceiptHandleIsInvalid{Message: aws.String("gone")}}
	boom := errors.New("connection reset")
	cases := map[string]struct {
		first     []types.Message
		wantFirst []string
		// settle is applied to the first Receive's messages by ID: ack, release, dead-letter, extend.
		settle    map[string]string
		settleErr error
		// changeErr fails every ChangeMessageVisibility call.
		changeErr   error
		secondAfter time.Duration
		second      []types.Message
		wantSecond  []string
		wantChanges []string
	}{
		"one batch: the first of each group and every unordered message": {
			first:       []types.Message{sqsMessage("a1", "a"), sqsMessage("a2", "a"), sqsMessage("b1", "b"), sqsMessage("n1", ""), sqsMessage("a3", "a"), sqsMessage("n2", "")},
			wantFirst:   []string{"a1", "b1", "n1", "n2"},
			wantSecond:  []string{},
			wantChanges: []string{"h-a2=0", "h-a3=0"},
		},
		"a held group blocks the next receive": {
			first:       []types.Message{sqsMessage("a1", "a")},
			wantFirst:   []string{"a1"},
			second:      []types.Message{sqsMessage("a2", "a"), sqsMessage("b1", "b")},
			wantSecond:  []string{"b1"},
			wantChanges: []string{"h-a2=0"},
		},
		"ack frees the group": {
			first:      []types.Message{sqsMessage("a1", "a")},
			wantFirst:  []string{"a1"},
			settle:     map[string]string{"a1": "ack"},
			second:     []types.Message{sqsMessage("a2", "a")},
			wantSecond: []string{"a2"},
		},
		"release frees the group": {
			first:       []types.Message{sqsMessage("a1", "a")},
			wantFirst:   []string{"a1"},
			settle:      map[string]string{"a1": "release"},
			second:      []types.Message{sqsMessage("a2", "a")},
			wantSecond:  []string{"a2"},
			wantChanges: []string{"h-a1=0"},
		},
		"dead letter frees the group": {
			first:      []types.Message{sqsMessage("a1", "a")},
			wantFirst:  []string{"a1"},
			settle:     map[string]string{"a1": "dead-letter"},
			second:     []types.Message{sqsMessage("a2", "a")},
			wantSecond: []string{"a2"},
		},
		"a lost lease frees the group": {
			first:       []types.Message{sqsMessage("a1", "a")},
			wantFirst:   []string{"a1"},
			settle:      map[string]string{"a1": "extend"},
			settleErr:   lost,
			second:      []types.Message{sqsMessage("a2", "a")},
			wantSecond:  []string{"a2"},
			wantChanges: []string{"h-a1=30"},
		},
		"a failed ack keeps the group held": {
			first:       []types.Message{sqsMessage("a1", "a")},
			wantFirst:   []string{"a1"},
			settle:      map[string]string{"a1": "ack"},
			settleErr:   boom,
			second:      []types.Message{sqsMessage("a2", "a")},
			wantSecond:  []string{},
			wantChanges: []string{"h-a2=0"},
		},
		"an expired lease frees the group": {
			first:       []types.Message{sqsMessage("a1", "a")},
			wantFirst:   []string{"a1"},
			secondAfter: 30 * time.Second,
			second:      []types.Message{sqsMessage("a2", "a")},
			wantSecond:  []string{"a2"},
		},
		"an extended lease keeps the group held": {
			first:       []types.Message{sqsMessage("a1", "a")},
			wantFirst:   []string{"a1"},
			settle:      map[string]string{"a1": "extend"},
			secondAfter: 31 * time.Second,
			second:      []types.Message{sqsMessage("a2", "a")},
			wantSecond:  []string{},
			wantChanges: []string{"h-a1=30", "h-a2=0"},
		},
		"a redelivery of the held message is returned": {
			first:      []types.Message{sqsMessage("a1", "a")},
			wantFirst:  []string{"a1"},
			second:     []types.Message{withHandle(sqsMessage("a1", "a"), "h-a1-again")},
			wantSecond: []string{"a1"},
		},
		"a failed release of an extra is not an error": {
			first:       []types.Message{sqsMessage("a1", "a"), sqsMessage("a2", "a")},
			changeErr:   boom,
			wantFirst:   []string{"a1"},
			wantSecond:  []string{},
			wantChanges: []string{"h-a2=0"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			api := newFakeReceiverAPI(tc.first, tc.second)
			api.fail(opChange, tc.changeErr)
			r := newTestReceiver(t, api, testDLQ)
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
					api.fail(opDelete, tc.settleErr)
					err = r.Ack(ctx, m)
				case "release":
					api.fail(opChange, tc.settleErr)
					err = r.Release(ctx, m, 0)
				case "dead-letter":
					api.fail(opSend, tc.settleErr)
					err = r.DeadLetter(ctx, m, "failed", nil)
				case "extend":
					api.fail(opChange, tc.settleErr)
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
			if diff := cmp.Diff(tc.wantChanges, api.changes()); diff != "" {
				t.Errorf("ChangeMessageVisibility mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReceiverErrors(t *testing.T) {
	opErr := func(err error) error {
		return &smithy.OperationError{ServiceID: "SQS", OperationName: "Op", Err: err}
	}
	generic := func(code, message string) error {
		return opErr(&smithy.GenericAPIError{Code: code, Message: message, Fault: smithy.FaultClient})
	}
	errs := map[string]struct {
		err  error
		want error // the sources error it maps to; nil: transient
	}{
		"typed ReceiptHandleIsInvalid":   {err: opErr(&types.ReceiptHandleIsInvalid{Message: aws.String("bad handle")}), want: sources.ErrLeaseLost},
		"typed MessageNotInflight":       {err: opErr(&types.MessageNotInflight{}), want: sources.ErrLeaseLost},
		"ReceiptHandleIsInvalid by code": {err: generic("ReceiptHandleIsInvalid", "bad handle"), want: sources.ErrLeaseLost},
		"query-compatible MessageNotInflight code": {
			err: generic("AWS.SimpleQueueService.MessageNotInflight", "not in flight"), want: sources.ErrLeaseLost},
		"InvalidParameterValue: not a valid receipt handle": {
			err: generic("InvalidParameterValue", `The input receipt handle "abc" is not a valid receipt handle.`), want: sources.ErrLeaseLost},
		"InvalidParameterValue: parameter ReceiptHandle": {
			err:  generic("InvalidParameterValue", "Value abc for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change."),
			want: sources.ErrLeaseLost},
		"InvalidParameterValue: beyond the 12-hour cap": {
			err:  generic("InvalidParameterValue", "Value 43200 for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout for the message is beyond the limit [43200 seconds]"),
			want: sources.ErrLeaseLost},
		"InvalidParameterValue about something else is transient": {
			err: generic("InvalidParameterValue", "Value 11 for parameter MaxNumberOfMessages is invalid.")},
		"typed QueueDoesNotExist":    {err: opErr(&types.QueueDoesNotExist{Message: aws.String("nope")}), want: sources.ErrNotFound},
		"NonExistentQueue by code":   {err: generic("AWS.SimpleQueueService.NonExistentQueue", "nope"), want: sources.ErrNotFound},
		"InvalidClientTokenId":       {err: generic("InvalidClientTokenId", "unknown key"), want: sources.ErrUnauthorized},
		"ExpiredToken":               {err: generic("ExpiredToken", "expired"), want: sources.ErrUnauthorized},
		"AccessDenied":               {err: generic("AccessDenied", "denied"), want: sources.ErrUnauthorized},
		"ThrottlingException":        {err: generic("ThrottlingException", "slow down"), want: sources.ErrThrottled},
		"typed RequestThrottled":     {err: opErr(&types.RequestThrottled{}), want: sources.ErrThrottled},
		"RequestThrottled by code":   {err: generic("RequestThrottled", "slow down"), want: sources.ErrThrottled},
		"typed OverLimit":            {err: opErr(&types.OverLimit{}), want: sources.ErrThrottled},
		"network error is transient": {err: errors.New("dial tcp: connection refused")},
	}
	// Each operation fails one API call and names its action as the error's prefix.
	ops := map[string]struct {
		apiOp  string
		dlq    string
		prefix string
		call   func(ctx context.Context, r *Receiver, m *sources.Message) error
	}{
		"Receive reading the lease": {
			apiOp:  opAttributes,
			prefix: "reading the visibility timeout of SQS queue " + testQueueURL,
			call: func(ctx context.Context, r *Receiver, _ *sources.Message) error {
				_, err := r.Receive(ctx, 1, 0, fixedNow())
				return err
			},
		},
		"Receive": {
			apiOp:  opReceive,
			prefix: "receiving messages from SQS queue " + testQueueURL,
			call: func(ctx context.Context, r *Receiver, _ *sources.Message) error {
				_, err := r.Receive(ctx, 1, 0, fixedNow())
				return err
			},
		},
		"Extend": {
			apiOp:  opChange,
			prefix: "extending the lease of message m-1 in SQS queue " + testQueueURL,
			call: func(ctx context.Context, r *Receiver, m *sources.Message) error {
				_, err := r.Extend(ctx, m, fixedNow())
				return err
			},
		},
		"Ack": {
			apiOp:  opDelete,
			prefix: "deleting message m-1 from SQS queue " + testQueueURL,
			call: func(ctx context.Context, r *Receiver, m *sources.Message) error {
				return r.Ack(ctx, m)
			},
		},
		"Release": {
			apiOp:  opChange,
			prefix: "releasing message m-1 to SQS queue " + testQueueURL,
			call: func(ctx context.Context, r *Receiver, m *sources.Message) error {
				return r.Release(ctx, m, time.Minute)
			},
		},
		"DeadLetter sending": {
			apiOp:  opSend,
			dlq:    testDLQ,
			prefix: "sending message m-1 to dead-letter queue " + testDLQ,
			call: func(ctx context.Context, r *Receiver, m *sources.Message) error {
				return r.DeadLetter(ctx, m, "failed", nil)
			},
		},
		"DeadLetter deleting": {
			apiOp:  opDelete,
			dlq:    testDLQ,
			prefix: "deleting dead-lettered message m-1 from SQS queue " + testQueueURL,
			call: func(ctx context.Context, r *Receiver, m *sources.Message) error {
				return r.DeadLetter(ctx, m, "failed", nil)
			},
		},
		"DeadLetter releasing without a dead-letter queue": {
			apiOp:  opChange,
			prefix: "releasing message m-1 to SQS queue " + testQueueURL,
			call: func(ctx context.Context, r *Receiver, m *sources.Message) error {
				return r.DeadLetter(ctx, m, "failed", nil)
			},
		},
	}
	for opName, op := range ops {
		for errName, tc := range errs {
			t.Run(opName+"/"+errName, func(t *testing.T) {
				ctx := context.Background()
				api := newFakeReceiverAPI([]types.Message{sqsMessage("m-1", "")})
				r := newTestReceiver(t, api, op.dlq)
				var m *sources.Message
				if op.apiOp != opAttributes && op.apiOp != opReceive {
					m = &receive(t, r, fixedNow())[0]
				}
				api.fail(op.apiOp, tc.err)
				err := op.call(ctx, r, m)
				if err == nil {
					t.Fatal("error = nil, want an error")
				}
				wantMsg := op.prefix + ": " + tc.err.Error()
				if tc.want != nil {
					wantMsg = op.prefix + ": " + tc.want.Error() + ": " + tc.err.Error()
				}
				if diff := cmp.Diff(wantMsg, err.Error()); diff != "" {
					t.Errorf("error message mismatch (-want +got):\n%s", diff)
				}
				if !errors.Is(err, tc.err) {
					t.Errorf("error %v does not wrap the SDK error", err)
				}
				for _, kind := range []error{sources.ErrLeaseLost, sources.ErrNotFound, sources.ErrUnauthorized, sources.ErrThrottled, sources.ErrNoDeadLetter} {
					if got, want := errors.Is(err, kind), kind == tc.want; got != want {
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

// sendInput is the part of a SendMessageInput the tests compare; attributes are "DataType:value".
type sendInput struct {
	QueueURL, Body, Group, Dedup string
	Attributes                   map[string]string
}

func TestDeadLetter(t *testing.T) {
	numbered := func(prefix string, n int) map[string]string {
		out := map[string]string{}
		for i := range n {
			out[fmt.Sprintf("%s%02d", prefix, i)] = fmt.Sprintf("String:v%d", i)
		}
		return out
	}
	cases := map[string]struct {
		dlq     string
		message types.Message
		// notReceived passes the message to DeadLetter without receiving it first (its data types are unknown).
		notReceived bool
		reason      string
		details     map[string]string
		want        sendInput
	}{
		"standard queue: reason, details, then the original's text attributes": {
			dlq: testDLQ,
			message: withAttributes(sqsMessage("m-1", ""), map[string]string{
				"tenant": "String:acme", "n": "Number.int:7", "blob": "Binary:xyz"}),
			reason:  "job failed: exit code 2",
			details: map[string]string{"kubedispatch-job": "work-abc", "kubedispatch-attempts": "3"},
			want: sendInput{QueueURL: testDLQ, Body: "body-m-1", Attributes: map[string]string{
				"kubedispatch-reason":   "String:job failed: exit code 2",
				"kubedispatch-job":      "String:work-abc",
				"kubedispatch-attempts": "String:3",
				"tenant":                "String:acme",
				"n":                     "Number.int:7",
			}},
		},
		"at most ten attributes: ours first, then the originals by name": {
			dlq:     testDLQ,
			message: withAttributes(sqsMessage("m-1", ""), numbered("orig-", 12)),
			reason:  "failed",
			details: map[string]string{"kubedispatch-c": "3", "kubedispatch-a": "1", "kubedispatch-b": "2"},
			want: sendInput{QueueURL: testDLQ, Body: "body-m-1", Attributes: map[string]string{
				"kubedispatch-reason": "String:failed",
				"kubedispatch-a":      "String:1",
				"kubedispatch-b":      "String:2",
				"kubedispatch-c":      "String:3",
				"orig-00":             "String:v0",
				"orig-01":             "String:v1",
				"orig-02":             "String:v2",
				"orig-03":             "String:v3",
				"orig-04":             "String:v4",
				"orig-05":             "String:v5",
			}},
		},
		"more than nine details: the first nine by key": {
			dlq:     testDLQ,
			message: withAttributes(sqsMessage("m-1", ""), map[string]string{"tenant": "String:acme"}),
			reason:  "failed",
			details: map[string]string{"d00": "0", "d01": "1", "d02": "2", "d03": "3", "d04": "4", "d05": "5",
				"d06": "6", "d07": "7", "d08": "8", "d09": "9", "d10": "10"},
			want: sendInput{QueueURL: testDLQ, Body: "body-m-1", Attributes: map[string]string{
				"kubedispatch-reason": "String:failed",
				"d00":                 "String:0", "d01": "String:1", "d02": "String:2", "d03": "String:3", "d04": "String:4",
				"d05": "String:5", "d06": "String:6", "d07": "String:7", "d08": "String:8",
			}},
		},
		"ours win over an original of the same name; empty values are left out": {
			dlq: testDLQ,
			message: withAttributes(sqsMessage("m-1", ""), map[string]string{
				"kubedispatch-reason": "String:old", "kubedispatch-job": "String:old-job", "tenant": "String:acme"}),
			reason:  "failed",
			details: map[string]string{"kubedispatch-job": "work-abc", "kubedispatch-empty": ""},
			want: sendInput{QueueURL: testDLQ, Body: "body-m-1", Attributes: map[string]string{
				"kubedispatch-reason": "String:failed",
				"kubedispatch-job":    "String:work-abc",
				"tenant":              "String:acme",
			}},
		},
		"a long reason is cut to 1024 bytes at a character boundary": {
			dlq:     testDLQ,
			message: sqsMessage("m-1", ""),
			reason:  strings.Repeat("x", 1022) + "€€",
			want: sendInput{QueueURL: testDLQ, Body: "body-m-1", Attributes: map[string]string{
				"kubedispatch-reason": "String:" + strings.Repeat("x", 1022),
			}},
		},
		"an unreceived message's attributes are sent as String": {
			dlq:         testDLQ,
			message:     withAttributes(sqsMessage("m-1", ""), map[string]string{"n": "Number:7"}),
			notReceived: true,
			reason:      "failed",
			want: sendInput{QueueURL: testDLQ, Body: "body-m-1", Attributes: map[string]string{
				"kubedispatch-reason": "String:failed",
				"n":                   "String:7",
			}},
		},
		"FIFO dead-letter queue keeps the group and deduplicates by message ID": {
			dlq:     testFIFODLQ,
			message: sqsMessage("m-1", "tenant-a"),
			reason:  "failed",
			want: sendInput{QueueURL: testFIFODLQ, Body: "body-m-1", Group: "tenant-a", Dedup: "m-1",
				Attributes: map[string]string{"kubedispatch-reason": "String:failed"}},
		},
		"FIFO dead-letter queue groups an unordered message by its ID": {
			dlq:     testFIFODLQ,
			message: sqsMessage("m-1", ""),
			reason:  "failed",
			want: sendInput{QueueURL: testFIFODLQ, Body: "body-m-1", Group: "m-1", Dedup: "m-1",
				Attributes: map[string]string{"kubedispatch-reason": "String:failed"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			api := newFakeReceiverAPI([]types.Message{tc.message})
			r := newTestReceiver(t, api, tc.dlq)
			var m sources.Message
			if tc.notReceived {
				m, _ = r.toMessage(tc.message, fixedNow())
			} else {
				m = receive(t, r, fixedNow())[0]
			}
			if err := r.DeadLetter(context.Background(), &m, tc.reason, tc.details); err != nil {
				t.Fatalf("DeadLetter: %v", err)
			}
			if len(api.sendCalls) != 1 {
				t.Fatalf("SendMessage called %d times, want 1", len(api.sendCalls))
			}
			in := api.sendCalls[0]
			got := sendInput{QueueURL: aws.ToString(in.QueueUrl), Body: aws.ToString(in.MessageBody),
				Group: aws.ToString(in.MessageGroupId), Dedup: aws.ToString(in.MessageDeduplicationId),
				Attributes: map[string]string{}}
			for k, v := range in.MessageAttributes {
				got.Attributes[k] = aws.ToString(v.DataType) + ":" + aws.ToString(v.StringValue)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("SendMessage input mismatch (-want +got):\n%s", diff)
			}
			if n := len(in.MessageAttributes); n > 10 {
				t.Errorf("sent %d message attributes, SQS allows 10", n)
			}
			if diff := cmp.Diff([]string{"h-m-1"}, api.deletes()); diff != "" {
				t.Errorf("DeleteMessage mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeadLetterFailures(t *testing.T) {
	boom := errors.New("connection reset")
	lost := &smithy.OperationError{ServiceID: "SQS", OperationName: "ChangeMessageVisibility",
		Err: &types.ReceiptHandleIsInvalid{Message: aws.String("gone")}}
	cases := map[string]struct {
		dlq         string
		failOp      string
		failErr     error
		wantIs      []error
		wantSends   int
		wantDeletes []string
		wantChanges []string
		// wantHeld: the group stays held (a second message of it is not returned).
		wantHeld bool
	}{
		"a failed send keeps the message": {
			dlq: testDLQ, failOp: opSend, failErr: boom,
			wantIs: []error{boom}, wantSends: 1, wantHeld: true,
		},
		"a failed delete after the send": {
			dlq: testDLQ, failOp: opDelete, failErr: boom,
			wantIs: []error{boom}, wantSends: 1, wantDeletes: []string{"h-a1"}, wantHeld: true,
		},
		"no dead-letter queue releases the message at once": {
			wantIs: []error{sources.ErrNoDeadLetter}, wantChanges: []string{"h-a1=0"},
		},
		"no dead-letter queue and a lost lease": {
			failOp: opChange, failErr: lost,
			wantIs: []error{sources.ErrLeaseLost}, wantChanges: []string{"h-a1=0"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			api := newFakeReceiverAPI([]types.Message{sqsMessage("a1", "a")}, []types.Message{sqsMessage("a2", "a")})
			r := newTestReceiver(t, api, tc.dlq)
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
			if len(api.sendCalls) != tc.wantSends {
				t.Errorf("SendMessage called %d times, want %d", len(api.sendCalls), tc.wantSends)
			}
			if diff := cmp.Diff(tc.wantDeletes, api.deletes()); diff != "" {
				t.Errorf("DeleteMessage mismatch (-want +got):\n%s", diff)
			}
			api.fail(opChange, nil)
			second := receive(t, r, fixedNow().Add(time.Second))
			if got := len(second) == 0; got != tc.wantHeld {
				t.Errorf("group held after DeadLetter = %v, want %v (second Receive: %v)", got, tc.wantHeld, ids(second))
			}
			wantChanges := tc.wantChanges
			if tc.wantHeld {
				wantChanges = append(wantChanges, "h-a2=0")
			}
			if diff := cmp.Diff(wantChanges, api.changes()); diff != "" {
				t.Errorf("ChangeMessageVisibility mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRelease(t *testing.T) {
	cases := map[string]struct {
		delay time.Duration
		want  int32
	}{
		"at once":                    {delay: 0, want: 0},
		"negative is at once":        {delay: -time.Second, want: 0},
		"whole seconds":              {delay: 10 * time.Second, want: 10},
		"a fraction rounds up":       {delay: 1500 * time.Millisecond, want: 2},
		"a millisecond rounds up":    {delay: time.Millisecond, want: 1},
		"capped at SQS's 12 hours":   {delay: 48 * time.Hour, want: 43200},
		"exactly 12 hours":           {delay: 12 * time.Hour, want: 43200},
		"just under 12 hours rounds": {delay: 12*time.Hour - time.Millisecond, want: 43200},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			api := newFakeReceiverAPI([]types.Message{sqsMessage("m-1", "")})
			r := newTestReceiver(t, api, "")
			m := receive(t, r, fixedNow())[0]
			if err := r.Release(context.Background(), &m, tc.delay); err != nil {
				t.Fatalf("Release: %v", err)
			}
			if diff := cmp.Diff([]string{fmt.Sprintf("h-m-1=%d", tc.want)}, api.changes()); diff != "" {
				t.Errorf("ChangeMessageVisibility mismatch (-want +got):\n%s", diff)
			}
			if got := aws.ToString(api.changeCalls[0].QueueUrl); got != testQueueURL {
				t.Errorf("QueueUrl = %q, want %q", got, testQueueURL)
			}
		})
	}
}

func TestAckAndExtend(t *testing.T) {
	api := newFakeReceiverAPI([]types.Message{sqsMessage("m-1", "")})
	api.visibility = "60"
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
	if diff := cmp.Diff([]string{"h-m-1=60"}, api.changes()); diff != "" {
		t.Errorf("ChangeMessageVisibility mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"h-m-1"}, api.deletes()); diff != "" {
		t.Errorf("DeleteMessage mismatch (-want +got):\n%s", diff)
	}
	if got := aws.ToString(api.deleteCalls[0].QueueUrl); got != testQueueURL {
		t.Errorf("DeleteMessage QueueUrl = %q, want %q", got, testQueueURL)
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
// that no group is handed out twice at once.
func TestReceiveConcurrently(t *testing.T) {
	var batches [][]types.Message
	for i := range 50 {
		batches = append(batches, []types.Message{sqsMessage(fmt.Sprintf("a%d", i), "a"), sqsMessage(fmt.Sprintf("b%d", i), "b")})
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
						t.Errorf("group %s handed out twice: %s and %s", m.Group, other, m.ID)
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
