package main

import (
	"bufio"
	"bytes"
	"context"
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
	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/bench/internal/benchkit"
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
	flag.BoolVar(&o.keep, "keep", false, benchkit.KeepUsage)
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

func run(o options) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctrllog.SetLogger(logr.Discard())
	res := result{Date: time.Now().UTC(), Jobs: o.jobs, QPS: o.qps, Burst: o.burst, CreateWorkers: createWorkers,
		CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}

	root, bins, err := benchkit.Prepare()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kubedispatch-bench-")
	if err != nil {
		return fmt.Errorf("creating the stack directory: %w", err)
	}
	defer func() { benchkit.CleanStackDir(dir, o.keep, err) }()

	benchkit.Step("Building the dispatcher")
	bin := filepath.Join(dir, "dispatcher")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/dispatcher")
	build.Dir, build.Stdout, build.Stderr = root, os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the dispatcher: %w", err)
	}

	st, err := benchkit.StartStack(ctx, dir, bins)
	if err != nil {
		return err
	}
	res.StackStartupSeconds = st.Startup.Seconds()
	defer func() { err = errors.Join(err, st.Stop()) }()
	c, cl, cfg := st.Cluster, st.Client, st.Cluster.RESTConfig()
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("building the metadata client: %w", err)
	}

	if err := benchkit.InstallCRDs(ctx, cl, root, []string{rawNamespace, liveNamespace, backlogNamespace}); err != nil {
		return err
	}

	benchkit.Step("Raw limit: %d Jobs from a bare client-go loop, %d goroutines, QPS %g, burst %d", o.jobs, createWorkers, o.qps, o.burst)
	if res.Raw, err = runRaw(ctx, cfg, mc, o); err != nil {
		return err
	}
	benchkit.Note("%d Jobs: %.2f s client-side (%.1f Jobs/s); first to last Job seen %.2f s (%.1f Jobs/s)",
		o.jobs, res.Raw.WallSeconds, res.Raw.WallJobsPerSecond, res.Raw.SpanSeconds, res.Raw.JobsPerSecond)
	benchkit.Step("Waiting for the %d raw Jobs' pods to run, so the dispatcher starts on a quiet cluster", o.jobs)
	t := time.Now()
	if err := waitPodsRunning(ctx, mc, rawNamespace, o.jobs); err != nil {
		return err
	}
	benchkit.Note("all running after %.1f s", time.Since(t).Seconds())

	if err := runDispatcher(ctx, c, cl, mc, bin, dir, o, &res); err != nil {
		return err
	}
	if res.Raw.JobsPerSecond > 0 {
		res.Ratio = res.Backlog.JobsPerSecond / res.Raw.JobsPerSecond
	}

	report := render(res)
	fmt.Println()
	fmt.Print(report)
	if err := benchkit.WriteResults(root, "burst", "latest.md", res.Date, res, report); err != nil {
		return err
	}
	if !res.Live.Exact || !res.Backlog.Exact {
		return fmt.Errorf("the dispatcher created %d (live) and %d (backlog) Jobs for %d messages each, want exactly %d (see %s)",
			res.Live.JobsCreated, res.Backlog.JobsCreated, o.jobs, o.jobs, filepath.Join(dir, "logs", "dispatcher.log"))
	}
	return nil
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
	benchkit.Step("Dispatcher: ScaledJobs %s/%s and %s/%s (paused), each on its own SQS queue: maxReplicaCount %d, queueLength 1, "+
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

	benchkit.Step("Starting the dispatcher (QPS %g, burst %d, %d create workers; log %s)", o.qps, o.burst, createWorkers,
		filepath.Join(dir, "logs", "dispatcher.log"))
	d, err := startDispatcher(c, bin, dir, o)
	if err != nil {
		return err
	}
	defer d.Stop()
	go d.sampleRSS(100 * time.Millisecond)
	for _, key := range []client.ObjectKey{{Namespace: liveNamespace, Name: liveName}, {Namespace: backlogNamespace, Name: backlogName}} {
		if err := benchkit.WaitScaledJob(ctx, cl, key, "the dispatcher's first tick on the empty queue (status.lastDecision)", d.Exited,
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
	benchkit.Step("Live burst: sending %d messages (SendMessageBatch of 10, %d goroutines) and watching the Jobs", o.jobs, sendWorkers)
	t0 := time.Now()
	if err := sendMessages(ctx, q, liveQueue, o.jobs); err != nil {
		return err
	}
	res.Live.SendSeconds = time.Since(t0).Seconds()
	benchkit.Note("sent in %.2f s (%.0f messages/s)", res.Live.SendSeconds, float64(o.jobs)/res.Live.SendSeconds)
	if res.Live.jobTimes, err = timeJobs(ctx, cl, mc, w, d, client.ObjectKey{Namespace: liveNamespace, Name: liveName}, t0, o.jobs); err != nil {
		return err
	}
	w.stop()
	benchkit.Note("first Job %.2f s after the first send, Job %d after %.2f s: %.1f Jobs/s; %d Jobs in the end",
		res.Live.FirstJobSeconds, o.jobs, res.Live.LastJobSeconds, res.Live.JobsPerSecond, res.Live.JobsCreated)

	// Backlog: the whole burst is queued before the paused ScaledJob is released.
	benchkit.Step("Backlog: sending %d messages to the paused ScaledJob's queue", o.jobs)
	t := time.Now()
	if err := sendMessages(ctx, q, backlogQueue, o.jobs); err != nil {
		return err
	}
	res.Backlog.FillSeconds = time.Since(t).Seconds()
	benchkit.Note("sent in %.2f s", res.Backlog.FillSeconds)
	benchkit.Step("Waiting for the live burst's pods to run and for a paused tick that reads the whole backlog")
	if err := waitPodsRunning(ctx, mc, liveNamespace, o.jobs); err != nil {
		return err
	}
	if err := benchkit.WaitScaledJob(ctx, cl, client.ObjectKey{Namespace: backlogNamespace, Name: backlogName},
		fmt.Sprintf("a paused tick reading a backlog of %d", o.jobs), d.Exited, func(sj *v1alpha1.ScaledJob) bool {
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
	benchkit.Step("Backlog: unpausing %s/%s and watching the Jobs", backlogNamespace, backlogName)
	cpu0, err := d.cpuSeconds()
	if err != nil {
		return err
	}
	t1 := time.Now()
	if err := benchkit.Unpause(ctx, cl, client.ObjectKey{Namespace: backlogNamespace, Name: backlogName}); err != nil {
		return err
	}
	if res.Backlog.jobTimes, err = timeJobs(ctx, cl, mc, w, d, client.ObjectKey{Namespace: backlogNamespace, Name: backlogName}, t1, o.jobs); err != nil {
		return err
	}
	cpu1, err := d.cpuSeconds()
	if err != nil {
		return err
	}
	res.Backlog.CPUSeconds, res.Backlog.WindowSeconds = cpu1-cpu0, time.Since(t1).Seconds()
	benchkit.Note("first Job %.2f s after unpausing, Job %d after %.2f s: %.1f Jobs/s; %d Jobs in the end",
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
	benchkit.Note("dispatcher counters: %g Jobs created, %g refused; peak RSS %.1f MiB, VmHWM %.1f MiB",
		res.Process.MetricJobsCreated, res.Process.MetricCreateErrors, res.Process.PeakRSSMiB, res.Process.HWMMiB)
	benchkit.Step("Stopping the dispatcher")
	d.Stop()
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

// timeJobs waits for n Jobs on w, then for two more ticks of the ScaledJob at key (to catch any extra Job), and
// counts the Jobs in its namespace. Times run from start.
func timeJobs(ctx context.Context, cl client.Client, mc metadata.Interface, w *jobWatch, d *dispatcher, key client.ObjectKey, start time.Time, n int) (jobTimes, error) {
	var jt jobTimes
	if err := w.wait(ctx, n, waitLimit, d.Exited); err != nil {
		return jt, err
	}
	first, last := w.at(1), w.at(n)
	jt.FirstJobSeconds, jt.LastJobSeconds = first.Sub(start).Seconds(), last.Sub(start).Seconds()
	jt.SpanSeconds, jt.JobsPerSecond = last.Sub(first).Seconds(), rate(n, last.Sub(first))
	if err := benchkit.WaitScaledJob(ctx, cl, key, "two ticks after the last Job", d.Exited, func(sj *v1alpha1.ScaledJob) bool {
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
	return benchkit.WaitUntil(ctx, fmt.Sprintf("%d Running pods in %s", n, ns), waitLimit, time.Second, nil, func() (bool, error) {
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
	batches := (n + 9) / 10
	return benchkit.ForEach(ctx, "sending messages", batches, sendWorkers, func(ctx context.Context, b int) error {
		return benchkit.SendBatch(ctx, q, queueURL, b*10, n)
	})
}

// jobWatch records when each new Job of a namespace is first seen, from a metadata-only watch.
type jobWatch struct {
	stop   func()
	notify chan struct{}

	mu    sync.Mutex
	seen  map[types.UID]bool
	times []time.Time
	err   error
}

// startJobWatch watches the namespace's Jobs, of which there must be none yet; the watch is established when it
// returns.
func startJobWatch(ctx context.Context, mc metadata.Interface, ns string) (*jobWatch, error) {
	res := mc.Resource(batchv1.SchemeGroupVersion.WithResource("jobs")).Namespace(ns)
	src := benchkit.JobSource{
		List:  func(ctx context.Context, o metav1.ListOptions) (kruntime.Object, error) { return res.List(ctx, o) },
		Watch: res.Watch,
	}
	w := &jobWatch{notify: make(chan struct{}, 1), seen: map[types.UID]bool{}}
	stop, err := benchkit.WatchJobs(ctx, ns, "", src, func(ev watch.Event, now time.Time) {
		if obj, ok := ev.Object.(*metav1.PartialObjectMetadata); ok && ev.Type == watch.Added {
			w.add(obj.UID, now)
		}
	}, w.fail)
	if err != nil {
		return nil, err
	}
	w.stop = stop
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
			benchkit.Note("%d/%d Jobs", got, n)
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

// dispatcher is the dispatcher process under test, with its metrics address and the largest VmRSS sampled.
type dispatcher struct {
	*benchkit.Dispatcher
	metricsAddr string
	peakKiB     atomic.Int64
}

func startDispatcher(c *cluster.Cluster, bin, dir string, o options) (*dispatcher, error) {
	metricsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	d, err := benchkit.StartDispatcher(c, bin, dir,
		"--watch-namespace="+liveNamespace+","+backlogNamespace,
		"--namespace="+liveNamespace,
		"--metrics-bind-address="+metricsAddr,
		"--kube-api-qps="+strconv.FormatFloat(o.qps, 'g', -1, 64),
		"--kube-api-burst="+strconv.Itoa(o.burst),
		"--create-workers="+strconv.Itoa(createWorkers),
	)
	if err != nil {
		return nil, err
	}
	return &dispatcher{Dispatcher: d, metricsAddr: metricsAddr}, nil
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
		case <-d.Done():
			return
		case <-tick.C:
		}
	}
}

func (d *dispatcher) hwm() (int64, error) { return d.status("VmHWM") }

// status reads one kB field of /proc/<pid>/status.
func (d *dispatcher) status(field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.Pid()))
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
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.Pid()))
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
