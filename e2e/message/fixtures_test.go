package message

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/dispatch"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
	"github.com/kubedispatch/kubedispatch/jobtemplate"
)

// messageSJ builds a message-mode ScaledJob on queueURL, through the recorder when rec is set.
func messageSJ(f *framework.F, name, queueURL string, rec *framework.SQSRecorder, max int32) *framework.ScaledJobBuilder {
	extra := []string{}
	if rec != nil {
		extra = append(extra, "awsEndpoint", rec.URL)
	}
	// History large enough that the tests can count every message's Jobs at the end.
	b := framework.NewScaledJob(f, name).SQS(queueURL, 1, extra...).Max(max).History(1000, 1000)
	b.ScaledJob.Spec.Dispatch = &v1alpha1.Dispatch{Mode: v1alpha1.ModeMessage}
	if rec != nil {
		// The recorder is a custom endpoint: only credentials of the ScaledJob's namespace may go there.
		b.ScaledJob.Spec.Triggers[0].AuthenticationRef = f.AWSKeysAuth()
	}
	return b
}

// requireCompleteBeforeDelete makes rec check, before each DeleteMessage reaches moto, that the message's Job
// has completed (read from the API server).
func requireCompleteBeforeDelete(f *framework.F, rec *framework.SQSRecorder, queueURL string) {
	rec.BeforeDelete = func(id string) error { return jobComplete(f, queueURL, id) }
}

// jobComplete reports, from the API server, whether one of the Jobs of message id of queue is Complete.
func jobComplete(f *framework.F, queue, id string) error {
	var list batchv1.JobList
	key := jobtemplate.MessageKey(queue, id)
	if err := f.Client.List(f.Ctx, &list, client.InNamespace(f.Namespace), client.MatchingLabels{v1alpha1.LabelMessage: key}); err != nil {
		return fmt.Errorf("listing its Jobs: %w", err)
	}
	for i := range list.Items {
		for _, c := range list.Items[i].Status.Conditions {
			if c.Type == batchv1.JobComplete && c.Status == "True" {
				return nil
			}
		}
	}
	return fmt.Errorf("none of its %d Jobs is Complete", len(list.Items))
}

// recordPubSubAcks starts a dispatcher that reaches the Pub/Sub emulator through a recorder checking, at each
// Acknowledge, that the message's Job is Complete.
func recordPubSubAcks(f *framework.F) (*framework.PubSubRecorder, *framework.Dispatcher) {
	rec := f.RecordPubSub()
	rec.BeforeAck = func(sub, id string) error { return jobComplete(f, sub, id) }
	return rec, f.StartDispatcherWithEnv(map[string]string{"PUBSUB_EMULATOR_HOST": rec.Host})
}

// requireAckedAfterComplete checks that the recorder saw at least n messages acknowledged, each after its Job
// completed.
func requireAckedAfterComplete(t *testing.T, rec *framework.PubSubRecorder, n int) {
	t.Helper()
	acked, violations := rec.Acked()
	for _, v := range violations {
		t.Error(v)
	}
	if acked < n {
		t.Errorf("%d messages acknowledged through the recorder, want at least %d", acked, n)
	}
}

// capSampler lists the ScaledJob's Jobs every 200 ms and keeps the largest number of unfinished ones.
type capSampler struct {
	mu   sync.Mutex
	max  int
	stop chan struct{}
	done chan struct{}
}

func sampleCap(f *framework.F, name string) *capSampler {
	s := &capSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			var list batchv1.JobList
			if err := f.Client.List(f.Ctx, &list, client.InNamespace(f.Namespace), client.MatchingLabels{v1alpha1.LabelScaledJob: name}); err == nil {
				n := 0
				for i := range list.Items {
					if !dispatch.IsFinished(&list.Items[i]) {
						n++
					}
				}
				s.mu.Lock()
				s.max = max(s.max, n)
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-f.Ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return s
}

func (s *capSampler) Stop() int {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max
}

// sendWithAttributes sends one message with string attributes and returns its id.
func sendWithAttributes(f *framework.F, queueURL, body string, attrs map[string]string) string {
	f.T.Helper()
	in := &sqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(body), MessageAttributes: map[string]sqstypes.MessageAttributeValue{}}
	for k, v := range attrs {
		in.MessageAttributes[k] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	out, err := f.SQS.SendMessage(f.Ctx, in)
	if err != nil {
		f.T.Fatalf("sending message %q: %v", body, err)
	}
	return aws.ToString(out.MessageId)
}

// jobsByMessage groups the ScaledJob's Jobs by their message-id annotation.
func jobsByMessage(f *framework.F, name string) map[string][]batchv1.Job {
	out := map[string][]batchv1.Job{}
	for _, j := range f.JobsOf(name) {
		id := j.Annotations[v1alpha1.AnnotationMessageID]
		out[id] = append(out[id], j)
	}
	return out
}

// waitDeleted waits until the recorder has seen n distinct messages deleted.
func waitDeleted(f *framework.F, rec *framework.SQSRecorder, n int, timeout time.Duration) {
	f.T.Helper()
	f.Eventually(fmt.Sprintf("%d messages deleted", n), timeout, func() (bool, error) {
		got := len(rec.Deleted())
		return got >= n, fmt.Errorf("%d deleted", got)
	})
}

// requireEmpty checks the queue holds nothing, visible or in flight.
func requireEmpty(t *testing.T, f *framework.F, queueURL string) {
	t.Helper()
	f.Eventually("queue "+queueURL+" empty", time.Minute, func() (bool, error) {
		v, inflight := f.QueueCounts(queueURL)
		return v == 0 && inflight == 0, fmt.Errorf("%d visible, %d in flight", v, inflight)
	})
}
