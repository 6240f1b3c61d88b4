package infra

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/go-logr/logr/testr"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubedispatch/kubedispatch/e2e/cluster"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
	"github.com/kubedispatch/kubedispatch/e2e/worker"
)

// job builds a one-pod Job whose kwok pod runs for runFor and fails when fail is set.
func job(name string, runFor string, fail bool, labels map[string]string) *batchv1.Job {
	ann := map[string]string{"kwok.test/run-for": runFor}
	if fail {
		ann["kwok.test/outcome"] = "fail"
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Annotations: ann, Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "main", Image: "busybox"}},
				},
			},
		},
	}
}

func condition(j *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func TestJobsCompleteAndFailOnKwok(t *testing.T) {
	f := framework.New(t)
	jobs := f.Clientset.BatchV1().Jobs(f.Namespace)
	if _, err := jobs.Create(f.Ctx, job("ok", "2s", false, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.Create(f.Ctx, job("bad", "1s", true, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait := func(name string, want batchv1.JobConditionType) {
		f.Eventually(fmt.Sprintf("job %s to be %s", name, want), 2*time.Minute, func() (bool, error) {
			j, err := jobs.Get(f.Ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return condition(j, want), nil
		})
	}
	wait("ok", batchv1.JobComplete)
	wait("bad", batchv1.JobFailed)

	// The garbage collector removes a Job's pods once the Job is gone.
	pods, err := f.Clientset.CoreV1().Pods(f.Namespace).List(f.Ctx, metav1.ListOptions{LabelSelector: "job-name=ok"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("listing pods of job ok: %v (found %d)", err, len(pods.Items))
	}
	if err := jobs.Delete(f.Ctx, "ok", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}); err != nil {
		t.Fatal(err)
	}
	f.Eventually("pods of job ok to be garbage-collected", 2*time.Minute, func() (bool, error) {
		pods, err := f.Clientset.CoreV1().Pods(f.Namespace).List(f.Ctx, metav1.ListOptions{LabelSelector: "job-name=ok"})
		if err != nil {
			return false, err
		}
		return len(pods.Items) == 0, nil
	})
}

func TestSQSOnMoto(t *testing.T) {
	f := framework.New(t)
	url := f.CreateQueue("infra", nil)
	f.SendMessages(url, 3, "m")
	got := map[string]bool{}
	f.Eventually("3 messages received", time.Minute, func() (bool, error) {
		out, err := f.SQS.ReceiveMessage(f.Ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			return false, err
		}
		for _, m := range out.Messages {
			got[aws.ToString(m.Body)] = true
			if _, err := f.SQS.DeleteMessage(f.Ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				return false, err
			}
		}
		return len(got) == 3, nil
	})
	attrs, err := f.SQS.GetQueueAttributes(f.Ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{"All"}})
	if err != nil {
		t.Fatal(err)
	}
	if v := attrs.Attributes["ApproximateNumberOfMessages"]; v != "0" {
		t.Errorf("ApproximateNumberOfMessages after deleting all = %s, want 0", v)
	}
}

func TestPubSubOnEmulator(t *testing.T) {
	f := framework.New(t)
	c := f.PubSub()
	topic := fmt.Sprintf("projects/%s/topics/t-%s", framework.PubSubProject, f.Namespace)
	sub := fmt.Sprintf("projects/%s/subscriptions/s-%s", framework.PubSubProject, f.Namespace)
	if _, err := c.TopicAdminClient.CreateTopic(f.Ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SubscriptionAdminClient.CreateSubscription(f.Ctx, &pubsubpb.Subscription{Name: sub, Topic: topic, AckDeadlineSeconds: 10}); err != nil {
		t.Fatal(err)
	}
	pub := c.Publisher(topic)
	for i := range 3 {
		if _, err := pub.Publish(f.Ctx, &pubsub.Message{Data: []byte(fmt.Sprintf("m-%d", i))}).Get(f.Ctx); err != nil {
			t.Fatal(err)
		}
	}
	pub.Stop()
	var mu sync.Mutex
	got := map[string]bool{}
	ctx, cancel := context.WithTimeout(f.Ctx, 2*time.Minute)
	defer cancel()
	err := c.Subscriber(sub).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		got[string(m.Data)] = true
		if len(got) == 3 {
			cancel()
		}
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("received %d distinct messages, want 3", len(got))
	}
	// Acked: a unary pull (with a deadline: the emulator blocks on empty pulls) returns nothing.
	pctx, pcancel := context.WithTimeout(f.Ctx, 3*time.Second)
	defer pcancel()
	resp, err := c.SubscriptionAdminClient.Pull(pctx, &pubsubpb.PullRequest{Subscription: sub, MaxMessages: 10})
	if err == nil && len(resp.ReceivedMessages) > 0 {
		t.Fatalf("pulled %d messages after acking all", len(resp.ReceivedMessages))
	}
}

func TestWorkerSimulatorDrainsQueueThroughJobs(t *testing.T) {
	f := framework.New(t)
	url := f.CreateQueue("drain", nil)
	f.SendMessages(url, 20, "work")
	w := &worker.SQS{Client: f.SQS, QueueURL: url, Clientset: f.Clientset, Namespace: f.Namespace, Selector: "app=drain", Log: testr.New(t)}
	ctx, cancel := context.WithCancel(f.Ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for i := range 20 {
		if _, err := f.Clientset.BatchV1().Jobs(f.Namespace).Create(f.Ctx, job(fmt.Sprintf("drain-%d", i), "1s", false, map[string]string{"app": "drain"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	f.Eventually("20 messages processed", 3*time.Minute, func() (bool, error) {
		return w.Stats().Processed == 20, nil
	})
	if d := w.DuplicateDeletes(); len(d) > 0 {
		t.Errorf("messages deleted more than once: %v", d)
	}
	st := w.Stats()
	if st.Idle != 0 || st.Released != 0 || st.Errors != 0 {
		t.Errorf("stats = %+v, want 20 received and processed, nothing idle, released or failed", st)
	}
	attrs, err := f.SQS.GetQueueAttributes(f.Ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{"All"}})
	if err != nil {
		t.Fatal(err)
	}
	if attrs.Attributes["ApproximateNumberOfMessages"] != "0" || attrs.Attributes["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Errorf("queue not empty: %v", attrs.Attributes)
	}
}

// ourProcesses lists live processes whose command line mentions dir.
func ourProcesses(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if s := string(stat); strings.Contains(s, ") Z") {
			continue
		}
		if cmd := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(cmd, dir) {
			found = append(found, e.Name()+": "+cmd)
		}
	}
	return found
}

// A second stack starts beside the one of TestMain (free ports, its own directory) and stops without leftovers.
func TestSecondStackAndCleanStop(t *testing.T) {
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bins, err := cluster.EnsureBinaries(root)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := cluster.Start(context.Background(), cluster.Options{Dir: dir, Bins: bins, SQS: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.Server == framework.Cluster().Server {
		t.Fatalf("second stack reuses the API server address %s", c.Server)
	}
	pids := c.Running()
	if len(pids) != 6 {
		t.Errorf("running processes = %v, want etcd, apiserver, controller-manager, scheduler, kwok, moto", pids)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if left := c.Running(); len(left) > 0 {
		t.Fatalf("still running after Stop: %v", left)
	}
	if left := ourProcesses(dir); len(left) > 0 {
		t.Fatalf("processes of the stopped stack remain: %v", left)
	}
}

func TestStartUpFaultsNameTheComponentAndCleanUp(t *testing.T) {
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bins, err := cluster.EnsureBinaries(root)
	if err != nil {
		t.Fatal(err)
	}
	dying := filepath.Join(t.TempDir(), "dies.sh")
	if err := os.WriteFile(dying, []byte("#!/bin/sh\necho 'cannot bind: address already in use' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		bins    func(b cluster.Binaries) cluster.Binaries
		wantAll []string
	}{
		"missing binary": {
			bins:    func(b cluster.Binaries) cluster.Binaries { b.Kwok = "/nonexistent/kwok"; return b },
			wantAll: []string{"kwok", "/nonexistent/kwok", "build-binaries.sh"},
		},
		"component dies at start-up": {
			bins:    func(b cluster.Binaries) cluster.Binaries { b.Scheduler = dying; return b },
			wantAll: []string{"kube-scheduler", "kube-scheduler.log", "address already in use"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			c, err := cluster.Start(context.Background(), cluster.Options{Dir: dir, Bins: tc.bins(bins)})
			if err == nil {
				c.Stop()
				t.Fatal("Start succeeded, want an error")
			}
			for _, want := range tc.wantAll {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if left := ourProcesses(dir); len(left) > 0 {
				t.Errorf("processes left after a failed start: %v", left)
			}
		})
	}
}

// `make cluster-up` / `make cluster-down` run this command; up, down, up, down in a row leaves nothing behind.
func TestLocalClusterCommandUpDownRepeated(t *testing.T) {
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "localcluster")
	build := exec.Command("go", "build", "-o", bin, "./e2e/cmd/localcluster")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building localcluster: %v\n%s", err, out)
	}
	dir := t.TempDir()
	run := func(args ...string) string {
		cmd := exec.Command(bin, append(args, "--dir", dir, "--no-pubsub")...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("localcluster %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	for round := range 2 {
		out := run("up")
		env, err := os.ReadFile(filepath.Join(dir, "cluster.env"))
		if err != nil {
			t.Fatalf("round %d: cluster.env missing after up: %v\n%s", round, err, out)
		}
		for _, k := range []string{"KUBECONFIG", "AWS_ENDPOINT_URL_SQS", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
			if !strings.Contains(string(env), "export "+k+"=") {
				t.Errorf("round %d: cluster.env lacks %s:\n%s", round, k, env)
			}
		}
		c, err := cluster.Load(filepath.Join(dir, "stack"))
		if err != nil || c == nil {
			t.Fatalf("round %d: no state after up: %v", round, err)
		}
		// etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, moto and the Service Bus fake
		// (the Pub/Sub emulator is left out above).
		if n := len(c.Running()); n != 7 {
			t.Errorf("round %d: %d processes running after up, want 7: %v", round, n, c.Running())
		}
		run("down")
		if left := c.Running(); len(left) > 0 {
			t.Fatalf("round %d: still running after down: %v", round, left)
		}
		if left := ourProcesses(dir); len(left) > 0 {
			t.Fatalf("round %d: leftover processes: %v", round, left)
		}
	}
}
