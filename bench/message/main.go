package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubedispatch/kubedispatch/bench/internal/benchkit"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// The workload and the targets (from the message-mode issue).
const (
	maxReplicas = 100
	runFor      = 2 * time.Second
	// visibilitySeconds is the VisibilityTimeout of every queue.
	visibilitySeconds = 30
	// countPoll is the count-mode ScaledJobs' pollingInterval, in seconds.
	countPoll = 5
	batchSize = 10

	targetP50   = 50 * time.Millisecond
	targetP99   = 250 * time.Millisecond
	targetRatio = 20.0

	// waitLimit bounds the long waits: generous, for a loaded 2-core machine.
	waitLimit = 10 * time.Minute
)

// The namespaces, one per phase, and the stream phases' ScaledJob.
const (
	nsMessage      = "bench-message"
	nsCount        = "bench-count"
	nsFirstMessage = "bench-first-message"
	nsFirstCount   = "bench-first-count"
	streamName     = "stream"
)

type options struct {
	messages  int
	rate      float64
	firstRuns int
	idle      time.Duration
	keep      bool
}

// command is the go run line that repeats the run.
func (o options) command() string {
	return fmt.Sprintf("go run ./bench/message -messages=%d -rate=%g -first-runs=%d -idle=%s", o.messages, o.rate, o.firstRuns, o.idle)
}

func main() {
	var o options
	flag.IntVar(&o.messages, "messages", 1000, "messages sent to each of the message-mode and count-mode ScaledJobs")
	flag.Float64Var(&o.rate, "rate", 5, "messages per second, sent in SendMessageBatch calls of 10 (the local stack on 2 cores sustains about 12 Job creations per second: above that the figures measure a backlog, not dispatch)")
	flag.IntVar(&o.firstRuns, "first-runs", 5, "single-message first-Job trials per mode, each on a fresh ScaledJob")
	flag.DurationVar(&o.idle, "idle", 30*time.Second, "how long the first-Job ScaledJobs stay idle before the first trial")
	flag.BoolVar(&o.keep, "keep", false, benchkit.KeepUsage)
	flag.Parse()
	if o.messages < 1 || o.rate <= 0 || o.firstRuns < 1 || o.idle < 0 {
		fmt.Fprintln(os.Stderr, "message: -messages, -rate and -first-runs must be positive, -idle not negative")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "message:", err)
		os.Exit(1)
	}
}

// result is one run, as written to bench/results/message-<timestamp>.json.
type result struct {
	Date    time.Time `json:"date"`
	Command string    `json:"command"`
	// Revision is the dispatcher's code: git describe of the checkout, and the files outside bench/ with
	// uncommitted changes (the dispatcher is built from the working tree).
	Revision                 string   `json:"revision"`
	Uncommitted              []string `json:"uncommitted"`
	Messages                 int      `json:"messages"`
	RatePerSecond            float64  `json:"ratePerSecond"`
	BatchSize                int      `json:"batchSize"`
	MaxReplicaCount          int      `json:"maxReplicaCount"`
	RunForSeconds            float64  `json:"runForSeconds"`
	VisibilityTimeoutSeconds int      `json:"visibilityTimeoutSeconds"`
	CountPollingSeconds      int      `json:"countPollingIntervalSeconds"`
	CPUs                     int      `json:"cpus"`
	GoVersion                string   `json:"goVersion"`
	// StackStartupSeconds is the time cluster.Start took (etcd, control plane, kwok, moto).
	StackStartupSeconds float64 `json:"stackStartupSeconds"`
	// WallSeconds is the whole run, the dispatcher's build included.
	WallSeconds float64      `json:"wallSeconds"`
	Message     streamResult `json:"message"`
	Count       streamResult `json:"count"`
	// FirstMessage and FirstCount are the single-message first-Job trials.
	FirstMessage firstResult `json:"firstMessage"`
	FirstCount   firstResult `json:"firstCount"`
	Verdicts     verdicts    `json:"verdicts"`
}

// verdicts compares the run with the targets.
type verdicts struct {
	TargetP50Seconds float64 `json:"targetP50Seconds"`
	TargetP99Seconds float64 `json:"targetP99Seconds"`
	TargetRatio      float64 `json:"targetRatio"`
	P50Met           bool    `json:"p50Met"`
	P99Met           bool    `json:"p99Met"`
	// Ratio is the count-mode p50 (k-th message to k-th Job) over the message-mode p50 (per message).
	Ratio    float64 `json:"ratio"`
	RatioMet bool    `json:"ratioMet"`
}

// env is what the phases share.
type env struct {
	cl          client.Client
	cs          kubernetes.Interface
	q           *sqs.Client
	sqsEndpoint string
	d           *benchkit.Dispatcher
	metricsURL  string
}

func run(o options) (err error) {
	start := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctrllog.SetLogger(logr.Discard())
	res := result{Date: time.Now().UTC(), Command: o.command(), Messages: o.messages, RatePerSecond: o.rate, BatchSize: batchSize,
		MaxReplicaCount: maxReplicas, RunForSeconds: runFor.Seconds(), VisibilityTimeoutSeconds: visibilitySeconds,
		CountPollingSeconds: countPoll, CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}

	root, bins, err := benchkit.Prepare()
	if err != nil {
		return err
	}
	res.Revision, res.Uncommitted = revision(ctx, root)
	benchkit.Step("Building the dispatcher (%s)", res.Revision)
	bin, err := framework.DispatcherBinary()
	if bin != "" {
		defer os.RemoveAll(filepath.Dir(bin)) // a directory of its own, made for this process
	}
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("building the dispatcher: %w", err)
	}

	dir, err := os.MkdirTemp("", "kubedispatch-bench-message-")
	if err != nil {
		return fmt.Errorf("creating the stack directory: %w", err)
	}
	defer func() { benchkit.CleanStackDir(dir, o.keep, err) }()
	st, err := benchkit.StartStack(ctx, dir, bins)
	if err != nil {
		return err
	}
	res.StackStartupSeconds = st.Startup.Seconds()
	defer func() { err = errors.Join(err, st.Stop()) }()
	c, cl := st.Cluster, st.Client
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return fmt.Errorf("building the clientset: %w", err)
	}
	namespaces := []string{nsMessage, nsCount, nsFirstMessage, nsFirstCount}
	if err := benchkit.InstallCRDs(ctx, cl, root, namespaces); err != nil {
		return err
	}

	benchkit.Step("Starting the dispatcher (default client QPS and workers; log %s)", filepath.Join(dir, "logs", "dispatcher.log"))
	metricsAddr, err := benchkit.FreeAddr()
	if err != nil {
		return err
	}
	d, err := benchkit.StartDispatcher(c, bin, dir,
		"--watch-namespace="+strings.Join(namespaces, ","),
		"--namespace="+namespaces[0],
		"--metrics-bind-address="+metricsAddr,
	)
	if err != nil {
		return err
	}
	defer d.Stop()
	e := env{cl: cl, cs: cs, q: framework.NewSQSClient(c.SQSEndpoint), sqsEndpoint: c.SQSEndpoint, d: d,
		metricsURL: "http://" + metricsAddr + "/metrics"}

	if res.Message, err = runStream(ctx, e, modeMessage, o); err != nil {
		return err
	}
	if res.Count, err = runStream(ctx, e, modeCount, o); err != nil {
		return err
	}
	if res.FirstMessage, res.FirstCount, err = runFirst(ctx, e, o); err != nil {
		return err
	}
	benchkit.Step("Stopping the dispatcher")
	d.Stop()

	res.Verdicts = judge(res)
	res.WallSeconds = time.Since(start).Seconds()
	report := render(res)
	fmt.Println()
	fmt.Print(report)
	if err := benchkit.WriteResults(root, "message", "message-latest.md", res.Date, res, report); err != nil {
		return err
	}
	var errs []error
	for _, p := range res.Message.Problems {
		errs = append(errs, fmt.Errorf("message mode: %s", p))
	}
	for _, p := range res.Count.Problems {
		errs = append(errs, fmt.Errorf("count mode: %s", p))
	}
	for _, p := range res.FirstMessage.Problems {
		errs = append(errs, fmt.Errorf("first Job, message mode: %s", p))
	}
	for _, p := range res.FirstCount.Problems {
		errs = append(errs, fmt.Errorf("first Job, count mode: %s", p))
	}
	if len(errs) > 0 {
		return fmt.Errorf("checking the runs (see %s): %w", d.LogPath, errors.Join(errs...))
	}
	return nil
}

// judge compares the run with the targets.
func judge(r result) verdicts {
	v := verdicts{TargetP50Seconds: targetP50.Seconds(), TargetP99Seconds: targetP99.Seconds(), TargetRatio: targetRatio}
	m := r.Message.PerMessage
	v.P50Met = m.N > 0 && m.P50 <= v.TargetP50Seconds
	v.P99Met = m.N > 0 && m.P99 <= v.TargetP99Seconds
	if m.P50 > 0 {
		v.Ratio = r.Count.Kth.P50 / m.P50
	}
	v.RatioMet = m.N > 0 && r.Count.Kth.N > 0 && v.Ratio >= targetRatio
	return v
}

// revision describes the checkout at root and lists the tracked files outside bench/ with uncommitted changes.
func revision(ctx context.Context, root string) (string, []string) {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown (not a git checkout)", nil
	}
	files := []string{}
	st, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench").Output()
	if err == nil {
		for line := range strings.SplitSeq(strings.TrimRight(string(st), "\n"), "\n") {
			if len(line) > 3 {
				files = append(files, line[3:])
			}
		}
	}
	return strings.TrimSpace(string(out)), files
}
