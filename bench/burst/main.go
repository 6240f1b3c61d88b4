package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/cluster"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

const (
	rawNamespace     = "bench-raw"
	liveNamespace    = "bench-live"
	backlogNamespace = "bench-backlog"
	liveName         = "live"
	backlogName      = "backlog"
	// createWorkers is the dispatcher's default --create-workers; the bare loop uses as many goroutines.
	createWorkers = 32
	sendWorkers   = 8
	// waitLimit bounds every wait on the cluster: generous, for a loaded 2-core machine.
	waitLimit = 10 * time.Minute
	// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat on Linux.
	clockTicks = 100
)

type options struct {
	jobs  int
	qps   float64
	burst int
	keep  bool
}

func main() {
	var o options
	flag.IntVar(&o.jobs, "jobs", 1000, "Jobs created in each phase (and SQS messages sent)")
	flag.Float64Var(&o.qps, "qps", 100, "client QPS of both the bare client-go loop and the dispatcher (--kube-api-qps)")
	flag.IntVar(&o.burst, "burst", 200, "client burst of both the bare client-go loop and the dispatcher (--kube-api-burst)")
	flag.BoolVar(&o.keep, "keep", false, "keep the stack directory (component logs, dispatcher log) after the run")
	flag.Parse()
	if o.jobs < 1 || o.qps <= 0 || o.burst < 1 {
		fmt.Fprintln(os.Stderr, "bench: -jobs, -qps and -burst must be positive")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// result is one run, as written to bench/results/burst-<timestamp>.json.
type result struct {
	Date          time.Time `json:"date"`
	Jobs          int       `json:"jobs"`
	QPS           float64   `json:"qps"`
	Burst         int       `json:"burst"`
	CreateWorkers int       `json:"createWorkers"`
	CPUs          int       `json:"cpus"`
	GoVersion     string    `json:"goVersion"`
	// StackStartupSeconds is the time cluster.Start took (etcd, control plane, kwok, moto).
	StackStartupSeconds float64       `json:"stackStartupSeconds"`
	Raw                 rawResult     `json:"raw"`
	Live                liveResult    `json:"live"`
	Backlog             backlogResult `json:"backlog"`
	Process             processResult `json:"process"`
	// Ratio is Backlog.JobsPerSecond / Raw.JobsPerSecond: the same measure (first to last Job seen by a watch).
	Ratio float64 `json:"ratio"`
}

type rawResult struct {
	// WallSeconds runs from the first create call to the return of the last one.
	WallSeconds       float64 `json:"wallSeconds"`
	WallJobsPerSecond float64 `json:"wallJobsPerSecond"`
	// SpanSeconds runs from the first to the last Job seen by a watch; JobsPerSecond is Jobs / SpanSeconds.
	SpanSeconds   float64 `json:"spanSeconds"`
	JobsPerSecond float64 `json:"jobsPerSecond"`
}

// jobTimes are the Jobs of one dispatcher phase, as seen by a watch.
type jobTimes struct {
	// FirstJobSeconds and LastJobSeconds run from the phase's start to the first and the Jobs-th Job.
	FirstJobSeconds float64 `json:"firstJobSeconds"`
	LastJobSeconds  float64 `json:"lastJobSeconds"`
	// SpanSeconds runs from the first to the Jobs-th Job; JobsPerSecond is Jobs / SpanSeconds.
	SpanSeconds   float64 `json:"spanSeconds"`
	JobsPerSecond float64 `json:"jobsPerSecond"`
	// JobsCreated is the number of Jobs in the namespace two ticks after the last one; Exact says it equals Jobs.
	JobsCreated int  `json:"jobsCreated"`
	Exact       bool `json:"exact"`
}

// liveResult is the live burst: the phase starts with the first SendMessageBatch, while the dispatcher polls.
type liveResult struct {
	// SendSeconds runs from the start of the first SendMessageBatch to the return of the last one.
	SendSeconds float64 `json:"sendSeconds"`
	jobTimes
}

// backlogResult is the backlog: the phase starts when the paused ScaledJob, whose queue holds every message, is
// unpaused.
type backlogResult struct {
	// FillSeconds is the time it took to send the messages, before the phase.
	FillSeconds float64 `json:"fillSeconds"`
	jobTimes
	// CPUSeconds is the dispatcher's CPU time (user + system) over WindowSeconds, from unpausing to two ticks
	// after the last Job.
	CPUSeconds    float64 `json:"cpuSeconds"`
	WindowSeconds float64 `json:"windowSeconds"`
}

// processResult describes the dispatcher process over the whole run.
type processResult struct {
	// PeakRSSMiB is the largest VmRSS sampled every 100 ms; HWMMiB is VmHWM at the end.
	PeakRSSMiB float64 `json:"peakRssMiB"`
	HWMMiB     float64 `json:"hwmMiB"`
	// MetricJobsCreated and MetricCreateErrors are the dispatcher's own counters at the end, over both phases.
	MetricJobsCreated  float64 `json:"metricJobsCreated"`
	MetricCreateErrors float64 `json:"metricCreateErrors"`
}

func step(format string, args ...any) {
	fmt.Printf("==> %s %s\n", time.Now().Format("15:04:05.0"), fmt.Sprintf(format, args...))
}

func note(format string, args ...any) { fmt.Printf("    "+format+"\n", args...) }

type indent struct{}

func (indent) Write(b []byte) (int, error) {
	fmt.Print("    " + string(b))
	return len(b), nil
}

func run(o options) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctrllog.SetLogger(logr.Discard())
	res := result{Date: time.Now().UTC(), Jobs: o.jobs, QPS: o.qps, Burst: o.burst, CreateWorkers: createWorkers,
		CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}

	root, err := cluster.RepoRoot()
	if err != nil {
		return err
	}
	step("Ensuring the control-plane binaries (built once, cached)")
	bins, err := cluster.EnsureBinaries(root)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kubedispatch-bench-")
	if err != nil {
		return fmt.Errorf("creating the stack directory: %w", err)
	}
	defer func() {
		if o.keep || err != nil {
			fmt.Printf("stack directory kept: %s (component logs in logs/, dispatcher log in logs/dispatcher.log)\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()

	step("Building the dispatcher")
	bin := filepath.Join(dir, "dispatcher")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/dispatcher")
	build.Dir, build.Stdout, build.Stderr = root, os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the dispatcher: %w", err)
	}

	step("Starting the local stack (SQS on moto) in %s", dir)
	t := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{Dir: dir, Bins: bins, SQS: true, Progress: indent{}})
	if err != nil {
		return fmt.Errorf("starting the local stack: %w", err)
	}
	res.StackStartupSeconds = time.Since(t).Seconds()
	note("stack ready in %.1f s", res.StackStartupSeconds)
	defer func() {
		step("Stopping the local stack")
		if stopErr := c.Stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("stopping the local stack: %w", stopErr))
		}
	}()

	scheme := kruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fmt.Errorf("building the scheme: %w", err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("building the scheme: %w", err)
	}
	cfg := c.RESTConfig()
	cl, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("building the client: %w", err)
	}
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("building the metadata client: %w", err)
	}

	step("Installing the CRDs (deploy/crd) and namespaces %s, %s, %s", rawNamespace, liveNamespace, backlogNamespace)
	if err := framework.InstallCRDs(ctx, cl, filepath.Join(root, "deploy", "crd")); err != nil {
		return fmt.Errorf("installing the CRDs: %w", err)
	}
	for _, ns := range []string{rawNamespace, liveNamespace, backlogNamespace} {
		if err := createNamespace(ctx, cl, ns); err != nil {
			return err
		}
	}

	step("Raw limit: %d Jobs from a bare client-go loop, %d goroutines, QPS %g, burst %d", o.jobs, createWorkers, o.qps, o.burst)
	if res.Raw, err = runRaw(ctx, cfg, mc, o); err != nil {
		return err
	}
	note("%d Jobs: %.2f s client-side (%.1f Jobs/s); first to last Job seen %.2f s (%.1f Jobs/s)",
		o.jobs, res.Raw.WallSeconds, res.Raw.WallJobsPerSecond, res.Raw.SpanSeconds, res.Raw.JobsPerSecond)
	step("Waiting for the %d raw Jobs' pods to run, so the dispatcher starts on a quiet cluster", o.jobs)
	t = time.Now()
	if err := waitPodsRunning(ctx, mc, rawNamespace, o.jobs); err != nil {
		return err
	}
	note("all running after %.1f s", time.Since(t).Seconds())

	if err := runDispatcher(ctx, c, cl, mc, bin, dir, o, &res); err != nil {
		return err
	}
	if res.Raw.JobsPerSecond > 0 {
		res.Ratio = res.Backlog.JobsPerSecond / res.Raw.JobsPerSecond
	}

	report := render(res)
	fmt.Println()
	fmt.Print(report)
	if err := writeResults(root, res, report); err != nil {
		return err
	}
	if !res.Live.Exact || !res.Backlog.Exact {
		return fmt.Errorf("the dispatcher created %d (live) and %d (backlog) Jobs for %d messages each, want exactly %d (see %s)",
			res.Live.JobsCreated, res.Backlog.JobsCreated, o.jobs, o.jobs, filepath.Join(dir, "logs", "dispatcher.log"))
	}
	return nil
}

// createNamespace creates ns and waits for its default ServiceAccount, without which the Job controller cannot
// create pods.
func createNamespace(ctx context.Context, cl client.Client, ns string) error {
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	return waitUntil(ctx, "the default ServiceAccount in "+ns, 2*time.Minute, 200*time.Millisecond, nil, func() (bool, error) {
		err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, &corev1.ServiceAccount{})
		return err == nil, err
	})
}

// jobSpec is the spec of every Job in both phases: a kwok pod that runs for an hour, so nothing finishes.
func jobSpec() batchv1.JobSpec {
	return batchv1.JobSpec{
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"kwok.test/run-for": "1h"}},
			Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "worker", Image: "example.com/worker:1"}},
			},
		},
	}
}

// runRaw creates o.jobs Jobs with createWorkers goroutines sharing one client-go rate limiter at o.qps / o.burst.
func runRaw(ctx context.Context, base *rest.Config, mc metadata.Interface, o options) (rawResult, error) {
	cfg := rest.CopyConfig(base)
	cfg.QPS, cfg.Burst = float32(o.qps), o.burst
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return rawResult{}, fmt.Errorf("building the raw clientset: %w", err)
	}
	w, err := startJobWatch(ctx, mc, rawNamespace)
	if err != nil {
		return rawResult{}, err
	}
	defer w.stop()

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		once     sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan int)
	start := time.Now()
	for range createWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("raw-%05d", i), Namespace: rawNamespace}, Spec: jobSpec()}
				if _, err := cs.BatchV1().Jobs(rawNamespace).Create(cctx, job, metav1.CreateOptions{}); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("creating Job %s: %w", job.Name, err); cancel() })
				}
			}
		}()
	}
feed:
	for i := range o.jobs {
		select {
		case next <- i:
		case <-cctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	wall := time.Since(start)
	if firstErr != nil {
		return rawResult{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return rawResult{}, fmt.Errorf("creating raw Jobs: %w", err)
	}
	if err := w.wait(ctx, o.jobs, waitLimit, nil); err != nil {
		return rawResult{}, err
	}
	span := w.at(o.jobs).Sub(w.at(1))
	return rawResult{
		WallSeconds: wall.Seconds(), WallJobsPerSecond: float64(o.jobs) / wall.Seconds(),
		SpanSeconds: span.Seconds(), JobsPerSecond: rate(o.jobs, span),
	}, nil
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// runDispatcher starts the dispatcher on two ScaledJobs with empty queues, then times a live burst (messages sent
// while the dispatcher polls) and a backlog (messages queued while the ScaledJob is paused, then unpaused).
func runDispatcher(ctx context.Context, c *cluster.Cluster, cl client.Client, mc metadata.Interface, bin, dir string, o options, res *result) error {
	step("Dispatcher: ScaledJobs %s/%s and %s/%s (paused), each on its own SQS queue: maxReplicaCount %d, queueLength 1, "+
		"default strategy, pollingInterval 1 s", liveNamespace, liveName, backlogNamespace, backlogName, o.jobs)
	q := framework.NewSQSClient(c.SQSEndpoint)
	liveQueue, err := createQueue(ctx, q, liveName)
	if err != nil {
		return err
	}
	backlogQueue, err := createQueue(ctx, q, backlogName)
	if err != nil {
		return err
	}
	if err := cl.Create(ctx, scaledJob(liveNamespace, liveName, liveQueue, c.SQSEndpoint, o.jobs, false)); err != nil {
		return fmt.Errorf("creating ScaledJob %s: %w", liveName, err)
	}
	if err := cl.Create(ctx, scaledJob(backlogNamespace, backlogName, backlogQueue, c.SQSEndpoint, o.jobs, true)); err != nil {
		return fmt.Errorf("creating ScaledJob %s: %w", backlogName, err)
	}

	step("Starting the dispatcher (QPS %g, burst %d, %d create workers; log %s)", o.qps, o.burst, createWorkers,
		filepath.Join(dir, "logs", "dispatcher.log"))
	d, err := startDispatcher(c, bin, dir, o)
	if err != nil {
		return err
	}
	defer d.stop()
	go d.sampleRSS(100 * time.Millisecond)
	for _, key := range []client.ObjectKey{{Namespace: liveNamespace, Name: liveName}, {Namespace: backlogNamespace, Name: backlogName}} {
		if err := waitScaledJob(ctx, cl, key, "the dispatcher's first tick on the empty queue (status.lastDecision)", d,
			func(sj *v1alpha1.ScaledJob) bool { return sj.Status.LastDecision != nil }); err != nil {
			return err
		}
	}

	// Live burst: the messages arrive while the dispatcher polls.
	w, err := startJobWatch(ctx, mc, liveNamespace)
	if err != nil {
		return err
	}
	defer w.stop()
	step("Live burst: sending %d messages (SendMessageBatch of 10, %d goroutines) and watching the Jobs", o.jobs, sendWorkers)
	t0 := time.Now()
	if err := sendMessages(ctx, q, liveQueue, o.jobs); err != nil {
		return err
	}
	res.Live.SendSeconds = time.Since(t0).Seconds()
	note("sent in %.2f s (%.0f messages/s)", res.Live.SendSeconds, float64(o.jobs)/res.Live.SendSeconds)
	if res.Live.jobTimes, err = timeJobs(ctx, cl, mc, w, d, client.ObjectKey{Namespace: liveNamespace, Name: liveName}, t0, o.jobs); err != nil {
		return err
	}
	w.stop()
	note("first Job %.2f s after the first send, Job %d after %.2f s: %.1f Jobs/s; %d Jobs in the end",
		res.Live.FirstJobSeconds, o.jobs, res.Live.LastJobSeconds, res.Live.JobsPerSecond, res.Live.JobsCreated)

	// Backlog: the whole burst is queued before the paused ScaledJob is released.
	step("Backlog: sending %d messages to the paused ScaledJob's queue", o.jobs)
	t := time.Now()
	if err := sendMessages(ctx, q, backlogQueue, o.jobs); err != nil {
		return err
	}
	res.Backlog.FillSeconds = time.Since(t).Seconds()
	note("sent in %.2f s", res.Backlog.FillSeconds)
	step("Waiting for the live burst's pods to run and for a paused tick that reads the whole backlog")
	if err := waitPodsRunning(ctx, mc, liveNamespace, o.jobs); err != nil {
		return err
	}
	if err := waitScaledJob(ctx, cl, client.ObjectKey{Namespace: backlogNamespace, Name: backlogName},
		fmt.Sprintf("a paused tick reading a backlog of %d", o.jobs), d, func(sj *v1alpha1.ScaledJob) bool {
			for _, ts := range sj.Status.Triggers {
				if v, err := strconv.ParseFloat(ts.Backlog, 64); err == nil && v >= float64(o.jobs) {
					return true
				}
			}
			return false
		}); err != nil {
		return err
	}
	w, err = startJobWatch(ctx, mc, backlogNamespace)
	if err != nil {
		return err
	}
	defer w.stop()
	step("Backlog: unpausing %s/%s and watching the Jobs", backlogNamespace, backlogName)
	cpu0, err := d.cpuSeconds()
	if err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{v1alpha1.AnnotationPaused: nil}}})
	if err != nil {
		return fmt.Errorf("encoding the unpause patch: %w", err)
	}
	t1 := time.Now()
	unpause := &v1alpha1.ScaledJob{ObjectMeta: metav1.ObjectMeta{Namespace: backlogNamespace, Name: backlogName}}
	if err := cl.Patch(ctx, unpause, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("unpausing ScaledJob %s: %w", backlogName, err)
	}
	if res.Backlog.jobTimes, err = timeJobs(ctx, cl, mc, w, d, client.ObjectKey{Namespace: backlogNamespace, Name: backlogName}, t1, o.jobs); err != nil {
		return err
	}
	cpu1, err := d.cpuSeconds()
	if err != nil {
		return err
	}
	res.Backlog.CPUSeconds, res.Backlog.WindowSeconds = cpu1-cpu0, time.Since(t1).Seconds()
	note("first Job %.2f s after unpausing, Job %d after %.2f s: %.1f Jobs/s; %d Jobs in the end",
		res.Backlog.FirstJobSeconds, o.jobs, res.Backlog.LastJobSeconds, res.Backlog.JobsPerSecond, res.Backlog.JobsCreated)

	hwm, err := d.hwm()
	if err != nil {
		return err
	}
	if rss, err := d.status("VmRSS"); err == nil && rss > d.peakKiB.Load() {
		d.peakKiB.Store(rss)
	}
	res.Process.HWMMiB, res.Process.PeakRSSMiB = float64(hwm)/1024, float64(d.peakKiB.Load())/1024
	if res.Process.MetricJobsCreated, res.Process.MetricCreateErrors, err = d.counters(ctx); err != nil {
		return err
	}
	note("dispatcher counters: %g Jobs created, %g refused; peak RSS %.1f MiB, VmHWM %.1f MiB",
		res.Process.MetricJobsCreated, res.Process.MetricCreateErrors, res.Process.PeakRSSMiB, res.Process.HWMMiB)
	step("Stopping the dispatcher")
	d.stop()
	return nil
}

func createQueue(ctx context.Context, q *sqs.Client, name string) (string, error) {
	out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("bench-" + name)})
	if err != nil {
		return "", fmt.Errorf("creating SQS queue bench-%s: %w", name, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

// scaledJob builds a ScaledJob with one SQS trigger (queueLength 1) on queueURL, maxReplicaCount max, polling every
// second, creating jobSpec Jobs.
func scaledJob(ns, name, queueURL, endpoint string, maxJobs int, paused bool) *v1alpha1.ScaledJob {
	sj := &v1alpha1.ScaledJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.ScaledJobSpec{
			JobTargetRef:    jobSpec(),
			PollingInterval: ptr.To[int32](1),
			MaxReplicaCount: ptr.To(int32(maxJobs)),
			Triggers: []v1alpha1.ScaleTrigger{{Type: "aws-sqs-queue", Name: "sqs", Metadata: map[string]string{
				"queueURL": queueURL, "queueLength": "1", "awsRegion": "us-east-1", "awsEndpoint": endpoint,
			}}},
		},
	}
	if paused {
		sj.Annotations = map[string]string{v1alpha1.AnnotationPaused: "true"}
	}
	return sj
}

// waitScaledJob waits until ready holds for the ScaledJob at key.
func waitScaledJob(ctx context.Context, cl client.Client, key client.ObjectKey, what string, d *dispatcher, ready func(*v1alpha1.ScaledJob) bool) error {
	return waitUntil(ctx, what+" of "+key.String(), 2*time.Minute, 200*time.Millisecond, d.exited, func() (bool, error) {
		var sj v1alpha1.ScaledJob
		if err := cl.Get(ctx, key, &sj); err != nil {
			return false, err
		}
		return ready(&sj), nil
	})
}

// timeJobs waits for n Jobs on w, then for two more ticks of the ScaledJob at key (to catch any extra Job), and
// counts the Jobs in its namespace. Times run from start.
func timeJobs(ctx context.Context, cl client.Client, mc metadata.Interface, w *jobWatch, d *dispatcher, key client.ObjectKey, start time.Time, n int) (jobTimes, error) {
	var jt jobTimes
	if err := w.wait(ctx, n, waitLimit, d.exited); err != nil {
		return jt, err
	}
	first, last := w.at(1), w.at(n)
	jt.FirstJobSeconds, jt.LastJobSeconds = first.Sub(start).Seconds(), last.Sub(start).Seconds()
	jt.SpanSeconds, jt.JobsPerSecond = last.Sub(first).Seconds(), rate(n, last.Sub(first))
	if err := waitScaledJob(ctx, cl, key, "two ticks after the last Job", d, func(sj *v1alpha1.ScaledJob) bool {
		ld := sj.Status.LastDecision
		return ld != nil && ld.Time.Unix() >= last.Unix()+3 // decision times have second precision
	}); err != nil {
		return jt, err
	}
	jobs, err := mc.Resource(batchv1.SchemeGroupVersion.WithResource("jobs")).Namespace(key.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return jt, fmt.Errorf("listing Jobs in %s: %w", key.Namespace, err)
	}
	jt.JobsCreated = len(jobs.Items)
	jt.Exact = jt.JobsCreated == n
	return jt, nil
}

// waitPodsRunning waits until n pods of ns are Running.
func waitPodsRunning(ctx context.Context, mc metadata.Interface, ns string, n int) error {
	return waitUntil(ctx, fmt.Sprintf("%d Running pods in %s", n, ns), waitLimit, time.Second, nil, func() (bool, error) {
		pods, err := mc.Resource(corev1.SchemeGroupVersion.WithResource("pods")).Namespace(ns).
			List(ctx, metav1.ListOptions{FieldSelector: "status.phase=Running"})
		if err != nil {
			return false, err
		}
		return len(pods.Items) >= n, nil
	})
}

// sendMessages sends n messages in batches of 10 from sendWorkers goroutines.
func sendMessages(ctx context.Context, q *sqs.Client, queueURL string, n int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		once     sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) { once.Do(func() { firstErr = err; cancel() }) }
	next := make(chan int)
	for range sendWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := range next {
				var entries []sqstypes.SendMessageBatchRequestEntry
				for i := start; i < start+10 && i < n; i++ {
					entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
						Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(fmt.Sprintf(`{"item":%d}`, i))})
				}
				out, err := q.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: entries})
				switch {
				case err != nil:
					fail(fmt.Errorf("sending messages %d-%d: %w", start, start+len(entries)-1, err))
				case len(out.Failed) > 0:
					fail(fmt.Errorf("sending messages %d-%d: %d refused, first: %s", start, start+len(entries)-1,
						len(out.Failed), aws.ToString(out.Failed[0].Message)))
				}
			}
		}()
	}
feed:
	for start := 0; start < n; start += 10 {
		select {
		case next <- start:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sending messages: %w", err)
	}
	return nil
}

// waitUntil calls check every interval until it returns true. It gives up when timeout passes or ctx ends (with the
// last error check returned), or at once when abort returns an error (a process that exited).
func waitUntil(ctx context.Context, what string, timeout, interval time.Duration, abort func() error, check func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last error
	for {
		if abort != nil {
			if err := abort(); err != nil {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
		}
		ok, err := check()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting %s for %s: %w (last error: %v)", timeout, what, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// jobWatch records when each new Job of a namespace is first seen, from a metadata-only watch.
type jobWatch struct {
	cancel context.CancelFunc
	notify chan struct{}

	mu    sync.Mutex
	seen  map[types.UID]bool
	times []time.Time
	err   error
}

// startJobWatch lists the namespace's Jobs (there must be none) and watches from that list's resource version; the
// watch is established when it returns.
func startJobWatch(ctx context.Context, mc metadata.Interface, ns string) (*jobWatch, error) {
	res := mc.Resource(batchv1.SchemeGroupVersion.WithResource("jobs")).Namespace(ns)
	list, err := res.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing Jobs in %s: %w", ns, err)
	}
	if len(list.Items) > 0 {
		return nil, fmt.Errorf("namespace %s already holds %d Jobs", ns, len(list.Items))
	}
	wctx, cancel := context.WithCancel(ctx)
	rv := list.ResourceVersion
	wi, err := res.Watch(wctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watching Jobs in %s: %w", ns, err)
	}
	w := &jobWatch{cancel: cancel, notify: make(chan struct{}, 1), seen: map[types.UID]bool{}}
	go func() {
		for {
			for ev := range wi.ResultChan() {
				now := time.Now()
				if ev.Type == watch.Error {
					w.fail(fmt.Errorf("watching Jobs in %s: %w", ns, apierrors.FromObject(ev.Object)))
					wi.Stop()
					return
				}
				obj, ok := ev.Object.(*metav1.PartialObjectMetadata)
				if !ok {
					continue
				}
				rv = obj.ResourceVersion
				if ev.Type == watch.Added {
					w.add(obj.UID, now)
				}
			}
			if wctx.Err() != nil {
				return
			}
			// The API server ended the watch (its timeout): resume where it stopped.
			if wi, err = res.Watch(wctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}); err != nil {
				if wctx.Err() == nil {
					w.fail(fmt.Errorf("watching Jobs in %s again: %w", ns, err))
				}
				return
			}
		}
	}()
	return w, nil
}

func (w *jobWatch) add(uid types.UID, at time.Time) {
	w.mu.Lock()
	if !w.seen[uid] {
		w.seen[uid] = true
		w.times = append(w.times, at)
	}
	w.mu.Unlock()
	w.poke()
}

func (w *jobWatch) fail(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
	w.poke()
}

func (w *jobWatch) poke() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *jobWatch) stop() { w.cancel() }

// at returns when the i-th Job (from 1) was seen; call it after wait(i) succeeded.
func (w *jobWatch) at(i int) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.times[i-1]
}

// wait returns when n Jobs have been seen, printing progress every 5 s.
func (w *jobWatch) wait(ctx context.Context, n int, timeout time.Duration, abort func() error) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	lastReport := time.Now()
	for {
		w.mu.Lock()
		got, err := len(w.times), w.err
		w.mu.Unlock()
		if got >= n {
			return nil
		}
		if err != nil {
			return err
		}
		if abort != nil {
			if err := abort(); err != nil {
				return fmt.Errorf("waiting for %d Jobs (%d so far): %w", n, got, err)
			}
		}
		if time.Since(lastReport) >= 5*time.Second {
			note("%d/%d Jobs", got, n)
			lastReport = time.Now()
		}
		select {
		case <-w.notify:
		case <-check.C:
		case <-deadline.C:
			return fmt.Errorf("waiting %s for %d Jobs: only %d were created", timeout, n, got)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d Jobs (%d so far): %w", n, got, ctx.Err())
		}
	}
}

// dispatcher is the dispatcher process under test.
type dispatcher struct {
	cmd         *exec.Cmd
	done        chan struct{}
	logPath     string
	metricsAddr string
	peakKiB     atomic.Int64
	stopOnce    sync.Once
}

func startDispatcher(c *cluster.Cluster, bin, dir string, o options) (*dispatcher, error) {
	metricsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "logs", "dispatcher.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the dispatcher log: %w", err)
	}
	cmd := exec.Command(bin,
		"--kubeconfig="+c.Kubeconfig,
		"--watch-namespace="+liveNamespace+","+backlogNamespace,
		"--namespace="+liveNamespace,
		"--leader-elect=false",
		"--metrics-bind-address="+metricsAddr,
		"--health-probe-bind-address=0",
		"--kube-api-qps="+strconv.FormatFloat(o.qps, 'g', -1, 64),
		"--kube-api-burst="+strconv.Itoa(o.burst),
		"--create-workers="+strconv.Itoa(createWorkers),
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = os.Environ()
	for k, v := range c.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting the dispatcher: %w", err)
	}
	d := &dispatcher{cmd: cmd, done: make(chan struct{}), logPath: logPath, metricsAddr: metricsAddr}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(d.done)
	}()
	return d, nil
}

// exited returns an error once the process has exited.
func (d *dispatcher) exited() error {
	select {
	case <-d.done:
		return fmt.Errorf("the dispatcher exited (%v); see %s", d.cmd.ProcessState, d.logPath)
	default:
		return nil
	}
}

// stop sends SIGTERM to the dispatcher's process group and waits for it, killing it after 20 s.
func (d *dispatcher) stop() {
	d.stopOnce.Do(func() {
		select {
		case <-d.done:
			return
		default:
		}
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.done
		}
	})
}

// sampleRSS records the largest VmRSS until the process exits.
func (d *dispatcher) sampleRSS(every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if kib, err := d.status("VmRSS"); err == nil && kib > d.peakKiB.Load() {
			d.peakKiB.Store(kib)
		}
		select {
		case <-d.done:
			return
		case <-tick.C:
		}
	}
}

func (d *dispatcher) hwm() (int64, error) { return d.status("VmHWM") }

// status reads one kB field of /proc/<pid>/status.
func (d *dispatcher) status(field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("reading the dispatcher's /proc status: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing %s in the dispatcher's /proc status: %w", field, err)
			}
			return kib, nil
		}
	}
	return 0, fmt.Errorf("reading the dispatcher's /proc status: no %s line", field)
}

// cpuSeconds returns the process's user + system CPU time.
func (d *dispatcher) cpuSeconds() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("reading the dispatcher's /proc stat: %w", err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces: state is field 3, utime 14,
	// stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("reading the dispatcher's /proc stat: unexpected format")
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 13 {
		return 0, errors.New("reading the dispatcher's /proc stat: unexpected format")
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parsing the dispatcher's /proc stat: %w", err)
	}
	return float64(utime+stime) / clockTicks, nil
}

// counters sums the dispatcher's kubedispatch_jobs_created_total and kubedispatch_job_create_errors_total.
func (d *dispatcher) counters(ctx context.Context) (created, refused float64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.metricsAddr+"/metrics", nil)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the dispatcher's metrics: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the dispatcher's metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the dispatcher's metrics: %w", err)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			name, rest, ok = strings.Cut(line, " ")
		}
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			continue
		}
		switch name {
		case "kubedispatch_jobs_created_total":
			created += v
		case "kubedispatch_job_create_errors_total":
			refused += v
		}
	}
	return created, refused, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// render formats the result as markdown: a header and the table.
func render(r result) string {
	exact := func(t jobTimes) string {
		if t.Exact {
			return "yes"
		}
		return "NO"
	}
	lv, bl, p := r.Live, r.Backlog, r.Process
	var b strings.Builder
	fmt.Fprintf(&b, "# Burst benchmark, %s\n\n", r.Date.Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(&b, "%d Jobs per phase. Each ScaledJob: one SQS trigger (queueLength 1), maxReplicaCount %d, default "+
		"strategy, pollingInterval 1 s; kwok pods run 1 h, so nothing finishes. Client QPS %g, burst %d and %d create "+
		"workers for both the bare client-go loop and the dispatcher. **Live**: the messages are sent while the "+
		"dispatcher polls (moto takes longer per message as its queue grows, so this phase is paced by the sending). "+
		"**Backlog**: the messages are queued while the ScaledJob is paused, then it is unpaused; this is the "+
		"dispatcher's creation rate. Rates are Jobs / (last Job seen - first Job seen) by a watch. The KEDA column "+
		"quotes the project's earlier measurements on the same kind of stack (see bench/README.md); it is not "+
		"measured in this run.\n\n", r.Jobs, r.Jobs, r.QPS, r.Burst, r.CreateWorkers)
	b.WriteString("| metric | value | KEDA reference / target (not measured here) |\n| --- | --- | --- |\n")
	row := func(metric, value, ref string) { fmt.Fprintf(&b, "| %s | %s | %s |\n", metric, value, ref) }
	row("local stack start-up", fmt.Sprintf("%.1f s", r.StackStartupSeconds), "-")
	row(fmt.Sprintf("raw client-go Jobs/s (QPS %g, burst %d, %d goroutines)", r.QPS, r.Burst, r.CreateWorkers),
		fmt.Sprintf("%.1f Jobs/s (%.2f s first to last Job; client-side %.2f s, %.1f Jobs/s)",
			r.Raw.JobsPerSecond, r.Raw.SpanSeconds, r.Raw.WallSeconds, r.Raw.WallJobsPerSecond),
		"bare client-go: 55.5 Jobs/s at QPS 50 (the limiter); 786-934/s with 8 workers and no limiter")
	row("dispatcher Jobs/s, backlog", fmt.Sprintf("%.1f Jobs/s (%.2f s first to last Job; first Job %.2f s after unpausing)",
		bl.JobsPerSecond, bl.SpanSeconds, bl.FirstJobSeconds),
		"KEDA: 100 Jobs in 3.50 s at QPS 20 / burst 30 (sequential creates); 0.35-0.70 s at QPS 50 / burst 100")
	row("dispatcher / raw", fmt.Sprintf("%.1f %%", 100*r.Ratio), "target: >= 90 % of the bare rate at the same QPS")
	row("dispatcher Jobs/s, live burst", fmt.Sprintf("%.1f Jobs/s (%.2f s first to last Job; %d messages sent in %.2f s)",
		lv.JobsPerSecond, lv.SpanSeconds, r.Jobs, lv.SendSeconds), "-")
	row("live burst: first Job after the first send", fmt.Sprintf("%.2f s (pollingInterval 1 s)", lv.FirstJobSeconds),
		"KEDA: 2.2 s [0.3-3.3] at a 5 s poll, 20.5 s at its default 30 s; target (count mode): one poll at most")
	row(fmt.Sprintf("live burst: Job %d after the first send", r.Jobs), fmt.Sprintf("%.2f s", lv.LastJobSeconds), "-")
	row("Jobs created", fmt.Sprintf("live %d, backlog %d (exactly %d: %s, %s; dispatcher counters: %g created, %g refused)",
		lv.JobsCreated, bl.JobsCreated, r.Jobs, exact(lv.jobTimes), exact(bl.jobTimes), p.MetricJobsCreated, p.MetricCreateErrors),
		"target: 0 wasted Jobs")
	row("dispatcher peak RSS (whole run)", fmt.Sprintf("%.1f MiB (VmRSS sampled every 100 ms; VmHWM %.1f MiB)", p.PeakRSSMiB, p.HWMMiB),
		"targets (other workloads): < 150 MB with 1,000 ScaledJobs; < 200 MB with 10k Jobs + 10k pods")
	row("dispatcher CPU, backlog phase",
		fmt.Sprintf("%.2f s in %.1f s (%.2f core)", bl.CPUSeconds, bl.WindowSeconds, bl.CPUSeconds/max(bl.WindowSeconds, 1e-9)),
		"target (other workload): < 0.5 core with 1,000 ScaledJobs")
	row("CPUs", strconv.Itoa(r.CPUs), "2 (the KEDA runs)")
	row("Go", r.GoVersion, "-")
	row("date", r.Date.Format(time.RFC3339), "-")
	return b.String()
}

// writeResults writes bench/results/burst-<UTC timestamp>.md and .json, and overwrites bench/results/latest.md.
func writeResults(root string, r result, report string) error {
	dir := filepath.Join(root, "bench", "results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the results: %w", err)
	}
	base := filepath.Join(dir, "burst-"+r.Date.Format("20060102T150405Z"))
	files := map[string][]byte{base + ".md": []byte(report), base + ".json": append(js, '\n'), filepath.Join(dir, "latest.md"): []byte(report)}
	for path, content := range files {
		if err := os.WriteFile(path, content, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	step("Results written to %s.{md,json} and %s", base, filepath.Join(dir, "latest.md"))
	return nil
}
