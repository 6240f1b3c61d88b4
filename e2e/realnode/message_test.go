package realnode

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// The message-mode acceptance test of issue 13: ten messages with distinct JSON bodies become ten Jobs on the real
// node whose worker containers each read their own payload file (the pod log carries the SHA-256 of that message's
// body) and exit 0, and the ten messages are deleted; an eleventh body says "fail": true, so its worker exits 1, the
// message is redelivered to a second Job (attempt 2), which fails too, and then it goes to the dead-letter queue.
func TestMessageWorkersReadTheirOwnPayload(t *testing.T) {
	f := framework.New(t)
	framework.ImportImages(t)
	queue := f.CreateQueue("real", map[string]string{"VisibilityTimeout": "20"})
	dlq := f.CreateQueue("real-dlq", nil)
	rec := f.RecordSQS()

	b := framework.NewScaledJob(f, "worker").SQS(queue, 1, "awsEndpoint", rec.URL).Max(11).History(100, 100)
	b.ScaledJob.Spec.Triggers[0].AuthenticationRef = f.AWSKeysAuth()
	b.ScaledJob.Spec.Dispatch = &v1alpha1.Dispatch{
		Mode: v1alpha1.ModeMessage, MaxDeliveries: ptr.To[int32](2), DeadLetter: &v1alpha1.DeadLetter{QueueURL: dlq},
	}
	tpl := &b.ScaledJob.Spec.JobTargetRef.Template
	tpl.Annotations = nil // no kwok stage: the container decides
	tpl.Spec.AutomountServiceAccountToken = ptr.To(false)
	tpl.Spec.Containers = []corev1.Container{{
		Name: "worker", Image: framework.WorkerImage,
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot: ptr.To(true), ReadOnlyRootFilesystem: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false),
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
	}}
	framework.OnRealNode(&tpl.Spec)
	b.Create()
	f.StartDispatcher()

	start := time.Now()
	bodies := map[string]string{} // message id -> body
	for i := range 10 {
		body := fmt.Sprintf(`{"order":%d,"customer":"c-%03d","items":[%d,%d]}`, i, i*7, i, i*i)
		bodies[send(f, queue, body)] = body
	}
	failBody := `{"order":"doomed","fail":true}`
	failMsg := send(f, queue, failBody)

	f.Eventually("the 10 good messages deleted", 3*time.Minute, func() (bool, error) {
		deleted := rec.Deleted()
		n := 0
		for id := range bodies {
			if _, ok := deleted[id]; ok {
				n++
			}
		}
		return n == len(bodies), fmt.Errorf("%d of %d deleted", n, len(bodies))
	})
	t.Logf("10 messages processed by real workers and deleted %s after the first send", time.Since(start).Round(100*time.Millisecond))
	var dead string
	f.Eventually("the failing message in the dead-letter queue", 3*time.Minute, func() (bool, error) {
		out, err := f.SQS.ReceiveMessage(f.Ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(dlq), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			return false, err
		}
		for _, m := range out.Messages {
			dead = aws.ToString(m.Body)
		}
		return dead != "", fmt.Errorf("dead-letter queue empty")
	})
	t.Logf("failing message dead-lettered after 2 attempts, %s after the first send", time.Since(start).Round(100*time.Millisecond))
	if dead != failBody {
		t.Errorf("dead-lettered body %q, want %q", dead, failBody)
	}

	byMsg := map[string][]batchv1.Job{}
	for _, j := range f.JobsOf("worker") {
		id := j.Annotations[v1alpha1.AnnotationMessageID]
		byMsg[id] = append(byMsg[id], j)
	}
	for id, body := range bodies {
		jobs := byMsg[id]
		if len(jobs) != 1 {
			t.Errorf("message %s has %d Jobs, want 1", id, len(jobs))
			continue
		}
		pod := jobPod(f, &jobs[0])
		requireExit(t, pod, 0)
		log := podLog(f, pod.Name)
		if want := hashLine(body); !strings.Contains(log, want) {
			t.Errorf("Job %s: pod log lacks %q (its own body's hash):\n%s", jobs[0].Name, want, log)
		}
		for other, ob := range bodies {
			if other != id && strings.Contains(log, hashLine(ob)) {
				t.Errorf("Job %s: pod log has the hash of message %s's body too", jobs[0].Name, other)
			}
		}
	}
	failJobs := byMsg[failMsg]
	if len(failJobs) != 2 {
		t.Fatalf("the failing message has %d Jobs, want 2 (attempt 1 and its redelivery)", len(failJobs))
	}
	attempts := map[string]bool{}
	for i := range failJobs {
		attempts[failJobs[i].Annotations[v1alpha1.AnnotationDelivery]] = true
		pod := jobPod(f, &failJobs[i])
		requireExit(t, pod, 1)
		log := podLog(f, pod.Name)
		if !strings.Contains(log, hashLine(failBody)) || !strings.Contains(log, "failing on purpose") {
			t.Errorf("Job %s: pod log lacks the failing body's hash or the reason:\n%s", failJobs[i].Name, log)
		}
	}
	if !attempts["1"] || !attempts["2"] {
		t.Errorf("attempts of the failing message = %v, want 1 and 2", attempts)
	}
	f.Eventually("queue empty", time.Minute, func() (bool, error) {
		v, inflight := f.QueueCounts(queue)
		return v == 0 && inflight == 0, fmt.Errorf("%d visible, %d in flight", v, inflight)
	})
}

func send(f *framework.F, queue, body string) string {
	f.T.Helper()
	out, err := f.SQS.SendMessage(f.Ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queue), MessageBody: aws.String(body)})
	if err != nil {
		f.T.Fatalf("sending %q: %v", body, err)
	}
	return aws.ToString(out.MessageId)
}

func hashLine(body string) string {
	sum := sha256.Sum256([]byte(body))
	return "sha256=" + hex.EncodeToString(sum[:]) + " bytes=" + strconv.Itoa(len(body))
}

// jobPod returns the one pod of a Job (backoffLimit 0).
func jobPod(f *framework.F, job *batchv1.Job) *corev1.Pod {
	f.T.Helper()
	pods, err := f.Clientset.CoreV1().Pods(f.Namespace).List(f.Ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + job.Name})
	if err != nil {
		f.T.Fatalf("listing the pods of Job %s: %v", job.Name, err)
	}
	if len(pods.Items) != 1 {
		f.T.Fatalf("Job %s has %d pods, want 1", job.Name, len(pods.Items))
	}
	return &pods.Items[0]
}

func requireExit(t *testing.T, pod *corev1.Pod, code int32) {
	t.Helper()
	if len(pod.Status.ContainerStatuses) != 1 || pod.Status.ContainerStatuses[0].State.Terminated == nil {
		t.Errorf("pod %s: container not terminated: %+v", pod.Name, pod.Status.ContainerStatuses)
		return
	}
	if got := pod.Status.ContainerStatuses[0].State.Terminated.ExitCode; got != code {
		t.Errorf("pod %s (node %s): exit code %d, want %d", pod.Name, pod.Spec.NodeName, got, code)
	}
}
