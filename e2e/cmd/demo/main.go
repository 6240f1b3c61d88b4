package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/cluster"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
	"github.com/kubedispatch/kubedispatch/e2e/worker"
)

const (
	namespace = "demo"
	messages  = 50
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := cluster.RepoRoot()
	if err != nil {
		return err
	}
	local := filepath.Join(root, ".local")
	stackDir := filepath.Join(local, "stack")

	// 1. The local stack: reuse one started by `make cluster-up`, or start one.
	c, err := cluster.Load(stackDir)
	if err != nil {
		return err
	}
	started := false
	if c != nil && len(c.Running()) > 0 && c.SQSEndpoint != "" {
		step("Using the local stack already running (%s)", c.Server)
	} else {
		realNode := os.Getenv("DEMO_REAL_NODE") != "0"
		what := "etcd, kube-apiserver, controller-manager, scheduler, kwok, moto"
		if realNode {
			what += ", and a real node (kubelet + containerd) for the real worker containers"
		}
		step("Building (once, cached) and starting the local stack: %s", what)
		bins, err := cluster.EnsureBinaries(root)
		if err != nil {
			return err
		}
		t0 := time.Now()
		c, err = cluster.Start(ctx, cluster.Options{Dir: stackDir, Bins: bins, SQS: true, RealNode: realNode, Progress: indent{}})
		if err != nil {
			return err
		}
		started = true
		fmt.Printf("   stack ready in %.1fs\n", time.Since(t0).Seconds())
		if err := os.WriteFile(filepath.Join(local, "cluster.env"), []byte(c.EnvFile()), 0o644); err != nil {
			return fmt.Errorf("writing cluster.env: %w", err)
		}
	}
	keep := os.Getenv("DEMO_KEEP") != ""
	if started && !keep {
		defer func() {
			step("Stopping the local stack")
			if err := c.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "demo: stopping the stack:", err)
			}
		}()
	}
	for k, v := range c.Env() {
		os.Setenv(k, v)
	}
	kubectl := "kubectl"
	if c.KubectlDir != "" {
		kubectl = filepath.Join(c.KubectlDir, "kubectl")
	}

	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	cl, err := client.New(c.RESTConfig(), client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("building client: %w", err)
	}
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return fmt.Errorf("building clientset: %w", err)
	}

	// 2. CRDs and a namespace.
	step("Installing the CRDs (deploy/crd) and namespace %q", namespace)
	if err := framework.InstallCRDs(ctx, cl, filepath.Join(root, "deploy", "crd")); err != nil {
		return err
	}
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace: %w", err)
	}
	if err := cl.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "etl-worker", Namespace: namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ServiceAccount: %w", err)
	}

	// 3. The queue on moto.
	q := framework.NewSQSClient(c.SQSEndpoint)
	out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("etl-batches"), Attributes: map[string]string{"VisibilityTimeout": "120"}})
	if err != nil {
		return fmt.Errorf("creating the SQS queue on moto: %w", err)
	}
	queueURL := aws.ToString(out.QueueUrl)
	if _, err := q.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: &queueURL}); err != nil {
		return fmt.Errorf("emptying the queue: %w", err)
	}
	fmt.Printf("   queue %s\n", queueURL)

	// 4. The dispatcher, as a process, with leader election on (as in production).
	step("Building and starting the dispatcher (log: .local/demo-dispatcher.log)")
	bin := filepath.Join(local, "bin", "dispatcher")
	build := exec.Command("go", "build", "-o", bin, "./cmd/dispatcher")
	build.Dir, build.Stdout, build.Stderr = root, os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the dispatcher: %w", err)
	}
	logPath := filepath.Join(local, "demo-dispatcher.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("creating dispatcher log: %w", err)
	}
	defer logFile.Close()
	disp := exec.Command(bin, "--kubeconfig="+c.Kubeconfig, "--leader-election-namespace="+namespace,
		"--metrics-bind-address=127.0.0.1:0", "--metrics-secure=false", "--health-probe-bind-address=0",
		// moto is a custom endpoint on loopback: allow it, and (for the examples' pod identity) let the process's own
		// AWS credentials go there; moto takes any key.
		"--allowed-endpoints=127.0.0.1:*,localhost:*", "--allow-ambient-credentials-on-custom-endpoints")
	disp.Stdout, disp.Stderr = logFile, logFile
	disp.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=demo", "AWS_SECRET_ACCESS_KEY=demo", "AWS_EC2_METADATA_DISABLED=true")
	disp.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := disp.Start(); err != nil {
		return fmt.Errorf("starting the dispatcher: %w", err)
	}
	defer func() {
		_ = syscall.Kill(-disp.Process.Pid, syscall.SIGTERM)
		_ = disp.Wait()
	}()

	mode := os.Getenv("DEMO_MODE") // count, message, or both (default)
	if mode != "message" {
		if err := countDemo(ctx, root, c, cl, cs, q, queueURL, kubectl); err != nil {
			return err
		}
	}
	if mode != "count" {
		if err := messageDemo(ctx, root, c, cl, kubectl); err != nil {
			return err
		}
		if err := realWorkersDemo(ctx, c, cl, kubectl); err != nil {
			return err
		}
	}
	if keep && started {
		fmt.Printf("\nThe stack is still running (DEMO_KEEP): . .local/cluster.env; kubectl get ksj,jobs -n %s; make cluster-down when done.\n", namespace)
	}
	return nil
}

// countDemo is the count-mode part: the SQS ETL example, 50 messages, and the worker simulator taking one message
// per Job, as KEDA's ScaledJob users run it.
func countDemo(ctx context.Context, root string, c *cluster.Cluster, cl client.Client, cs kubernetes.Interface, q *sqs.Client, queueURL, kubectl string) error {
	// 5. The example ScaledJob, pointed at moto.
	step("Count mode. Applying deploy/examples/sqs-etl.yaml, pointed at moto (pollingInterval 5s for the demo; kwok pods run 4s)")
	sj, ta, err := loadExample(filepath.Join(root, "deploy", "examples", "sqs-etl.yaml"))
	if err != nil {
		return err
	}
	sj.Namespace, ta.Namespace = namespace, namespace
	md := sj.Spec.Triggers[0].Metadata
	md["queueURL"], md["awsRegion"], md["awsEndpoint"] = queueURL, "us-east-1", c.SQSEndpoint
	sj.Spec.PollingInterval = ptr(int32(5))
	if sj.Spec.JobTargetRef.Template.Annotations == nil {
		sj.Spec.JobTargetRef.Template.Annotations = map[string]string{}
	}
	sj.Spec.JobTargetRef.Template.Annotations["kwok.test/run-for"] = "4s"
	for _, obj := range []client.Object{ta, sj} {
		_ = cl.Delete(ctx, obj)
	}
	if err := waitGone(ctx, cl, sj); err != nil {
		return err
	}
	if err := cl.Create(ctx, ta); err != nil {
		return fmt.Errorf("creating TriggerAuthentication: %w", err)
	}
	if err := cl.Create(ctx, sj); err != nil {
		return fmt.Errorf("creating ScaledJob: %w", err)
	}

	// 6. The worker simulator plays the Jobs' part: each pod takes one message and deletes it when done.
	w := &worker.SQS{Client: q, QueueURL: queueURL, Clientset: cs, Namespace: namespace,
		Selector: v1alpha1.LabelScaledJob + "=" + sj.Name, Log: logr.Discard()}
	wctx, wcancel := context.WithCancel(ctx)
	wdone := make(chan error, 1)
	go func() { wdone <- w.Run(wctx) }()
	defer func() { wcancel(); <-wdone }()

	step("Sending %d messages to the queue", messages)
	for i := 0; i < messages; i += 10 {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for j := i; j < i+10 && j < messages; j++ {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(fmt.Sprintf(`{"file":"batch-%03d.csv"}`, j))})
		}
		if _, err := q.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &queueURL, Entries: entries}); err != nil {
			return fmt.Errorf("sending messages: %w", err)
		}
	}
	start := time.Now()

	step("Watching: kubectl get ksj,jobs -n %s  (every 5s until the queue is empty; history limits prune finished Jobs)", namespace)
	deadline := time.Now().Add(10 * time.Minute)
	for {
		visible, inflight := counts(ctx, q, queueURL)
		fmt.Printf("\n--- t=%4.0fs  queue: %d waiting, %d in flight; processed %d\n", time.Since(start).Seconds(), visible, inflight, w.Stats().Processed)
		show(ctx, kubectl, c.Kubeconfig, "get", "ksj,jobs", "-n", namespace)
		if visible+inflight == 0 && w.Stats().Processed >= messages && unfinished(ctx, cs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the queue did not drain within 10 minutes: see .local/demo-dispatcher.log and .local/stack/logs")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
	st := w.Stats()
	step("Done in %.0fs: %d messages processed by %d Jobs (%d found no message), at most 20 at a time", time.Since(start).Seconds(), st.Processed, st.Received+st.Idle, st.Idle)
	show(ctx, kubectl, c.Kubeconfig, "get", "ksj", sj.Name, "-n", namespace, "-o", "wide")
	fmt.Println("\nStatus and events of the ScaledJob:")
	show(ctx, kubectl, c.Kubeconfig, "get", "events", "-n", namespace, "--field-selector", "involvedObject.kind=ScaledJob")
	return nil
}

func loadExample(path string) (*v1alpha1.ScaledJob, *v1alpha1.TriggerAuthentication, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading example: %w", err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var sj *v1alpha1.ScaledJob
	var ta *v1alpha1.TriggerAuthentication
	for {
		var raw map[string]any
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, nil, fmt.Errorf("decoding %s: %w", path, err)
		}
		js, err := json.Marshal(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("re-encoding %s: %w", path, err)
		}
		switch raw["kind"] {
		case "ScaledJob":
			sj = &v1alpha1.ScaledJob{}
			err = json.Unmarshal(js, sj)
		case "TriggerAuthentication":
			ta = &v1alpha1.TriggerAuthentication{}
			err = json.Unmarshal(js, ta)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("decoding %s: %w", path, err)
		}
	}
	if sj == nil || ta == nil {
		return nil, nil, fmt.Errorf("%s: want a ScaledJob and a TriggerAuthentication", path)
	}
	return sj, ta, nil
}

func waitGone(ctx context.Context, cl client.Client, sj *v1alpha1.ScaledJob) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		err := cl.Get(ctx, client.ObjectKeyFromObject(sj), &v1alpha1.ScaledJob{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("an earlier demo ScaledJob is still being deleted")
}

func counts(ctx context.Context, q *sqs.Client, url string) (visible, inflight int) {
	out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{"All"}})
	if err != nil {
		return -1, -1
	}
	visible, _ = strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	inflight, _ = strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return visible, inflight
}

func unfinished(ctx context.Context, cs kubernetes.Interface) int {
	jobs, err := cs.BatchV1().Jobs(namespace).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.LabelScaledJob})
	if err != nil {
		return -1
	}
	n := 0
	for _, j := range jobs.Items {
		done := false
		for _, c := range j.Status.Conditions {
			if (c.Type == "Complete" || c.Type == "Failed") && c.Status == corev1.ConditionTrue {
				done = true
			}
		}
		if !done {
			n++
		}
	}
	return n
}

func show(ctx context.Context, kubectl, kubeconfig string, args ...string) {
	cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Printf("   (kubectl %s: %v)\n", strings.Join(args, " "), err)
	}
}

type indent struct{}

func (indent) Write(b []byte) (int, error) {
	fmt.Print("   " + string(b))
	return len(b), nil
}

func ptr[T any](v T) *T { return &v }
