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
	"slices"
	"strings"
	"syscall"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubedispatch/kubedispatch/bench/internal/benchkit"
	"github.com/kubedispatch/kubedispatch/e2e/cluster"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
	"github.com/kubedispatch/kubedispatch/internal/sbfake"
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
	nsPubSub       = "bench-pubsub"
	nsServiceBus   = "bench-servicebus"
	streamName     = "stream"
)

type options struct {
	queues        []string
	messages      int
	extraMessages int
	rate          float64
	firstRuns     int
	idle          time.Duration
	keep          bool
	noResults     bool
}

// has reports whether -queues names queue.
func (o options) has(queue string) bool { return slices.Contains(o.queues, queue) }

// command is the go run line that repeats the run.
func (o options) command() string {
	return fmt.Sprintf("go run ./bench/message -queues=%s -messages=%d -extra-messages=%d -rate=%g -first-runs=%d -idle=%s",
		strings.Join(o.queues, ","), o.messages, o.extraMessages, o.rate, o.firstRuns, o.idle)
}

func main() {
	var o options
	queues := flag.String("queues", strings.Join(allQueues, ","), "queue services to run, comma-separated: sqs (message mode, count mode "+
		"and the first-Job trials), pubsub and servicebus (message mode)")
	flag.IntVar(&o.messages, "messages", 1000, "messages sent to each of the SQS message-mode and count-mode ScaledJobs")
	flag.IntVar(&o.extraMessages, "extra-messages", 300, "messages sent to each of the Pub/Sub and Service Bus message-mode ScaledJobs")
	flag.Float64Var(&o.rate, "rate", 5, "messages per second, sent in SendMessageBatch calls of 10 (the local stack on 2 cores sustains about 12 Job creations per second: above that the figures measure a backlog, not dispatch)")
	flag.IntVar(&o.firstRuns, "first-runs", 5, "single-message first-Job trials per mode, each on a fresh ScaledJob")
	flag.DurationVar(&o.idle, "idle", 30*time.Second, "how long the first-Job ScaledJobs stay idle before the first trial")
	flag.BoolVar(&o.keep, "keep", false, benchkit.KeepUsage)
	flag.BoolVar(&o.noResults, "no-results", false, "print the report but write nothing under bench/results (smoke runs)")
	flag.Parse()
	var err error
	if o.queues, err = parseQueues(*queues); err != nil {
		fmt.Fprintln(os.Stderr, "message:", err)
		os.Exit(2)
	}
	if o.messages < 1 || o.extraMessages < 1 || o.rate <= 0 || o.firstRuns < 1 || o.idle < 0 {
		fmt.Fprintln(os.Stderr, "message: -messages, -extra-messages, -rate and -first-runs must be positive, -idle not negative")
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
	Revision    string   `json:"revision"`
	Uncommitted []string `json:"uncommitted"`
	// Queues are the queue services run (-queues).
	Queues []string `json:"queues"`
	// Messages is each SQS stream's; ExtraMessages each Pub/Sub and Service Bus stream's.
	Messages                 int     `json:"messages"`
	ExtraMessages            int     `json:"extraMessages"`
	RatePerSecond            float64 `json:"ratePerSecond"`
	BatchSize                int     `json:"batchSize"`
	MaxReplicaCount          int     `json:"maxReplicaCount"`
	RunForSeconds            float64 `json:"runForSeconds"`
	VisibilityTimeoutSeconds int     `json:"visibilityTimeoutSeconds"`
	CountPollingSeconds      int     `json:"countPollingIntervalSeconds"`
	CPUs                     int     `json:"cpus"`
	GoVersion                string  `json:"goVersion"`
	// StackStartupSeconds is the time cluster.Start took (etcd, control plane, kwok, moto, and the Pub/Sub emulator
	// and the Service Bus fake when they run).
	StackStartupSeconds float64 `json:"stackStartupSeconds"`
	// WallSeconds is the whole run, the dispatcher's build included.
	WallSeconds float64 `json:"wallSeconds"`
	// Message and Count are the SQS streams.
	Message *streamResult `json:"message,omitempty"`
	Count   *streamResult `json:"count,omitempty"`
	// FirstMessage and FirstCount are the single-message first-Job trials (SQS).
	FirstMessage *firstResult `json:"firstMessage,omitempty"`
	FirstCount   *firstResult `json:"firstCount,omitempty"`
	// PubSub and ServiceBus are the message-mode streams on those queues.
	PubSub     *streamResult `json:"pubsub,omitempty"`
	ServiceBus *streamResult `json:"serviceBus,omitempty"`
	Verdicts   verdicts      `json:"verdicts"`
}

// messageStreams returns the message-mode streams that ran, SQS first.
func (r result) messageStreams() []*streamResult {
	var out []*streamResult
	for _, s := range []*streamResult{r.Message, r.PubSub, r.ServiceBus} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// verdicts compares the run with the targets.
type verdicts struct {
	TargetP50Seconds float64 `json:"targetP50Seconds"`
	TargetP99Seconds float64 `json:"targetP99Seconds"`
	TargetRatio      float64 `json:"targetRatio"`
	// P50Met and P99Met are SQS message mode's.
	P50Met bool `json:"p50Met"`
	P99Met bool `json:"p99Met"`
	// Ratio is the SQS count-mode p50 (k-th message to k-th Job) over the message-mode p50 (per message).
	Ratio    float64 `json:"ratio"`
	RatioMet bool    `json:"ratioMet"`
	// MessageMode has every message-mode stream's verdicts, SQS's included.
	MessageMode []queueVerdict `json:"messageMode"`
}

// queueVerdict compares one queue's message-mode stream with the latency targets.
type queueVerdict struct {
	Queue      string  `json:"queue"`
	P50Seconds float64 `json:"p50Seconds"`
	P99Seconds float64 `json:"p99Seconds"`
	P50Met     bool    `json:"p50Met"`
	P99Met     bool    `json:"p99Met"`
}

// env is what the phases share.
type env struct {
	cl          client.Client
	cs          kubernetes.Interface
	q           *sqs.Client
	sqsEndpoint string
	// ps is the Pub/Sub emulator's client; sb and sbAddr are the Service Bus fake's control API and AMQP address.
	ps         *pubsub.Client
	sb         *sbfake.Control
	sbAddr     string
	d          *benchkit.Dispatcher
	metricsURL string
}

func run(o options) (err error) {
	start := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctrllog.SetLogger(logr.Discard())
	res := result{Date: time.Now().UTC(), Command: o.command(), Queues: o.queues, Messages: o.messages, ExtraMessages: o.extraMessages,
		RatePerSecond: o.rate, BatchSize: batchSize,
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
	st, err := benchkit.StartStackWith(ctx, dir, bins, cluster.Options{PubSub: o.has(queuePubSub), ServiceBus: o.has(queueServiceBus)})
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
	var namespaces []string
	if o.has(queueSQS) {
		namespaces = append(namespaces, nsMessage, nsCount, nsFirstMessage, nsFirstCount)
	}
	if o.has(queuePubSub) {
		namespaces = append(namespaces, nsPubSub)
	}
	if o.has(queueServiceBus) {
		namespaces = append(namespaces, nsServiceBus)
	}
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
	e := env{cl: cl, cs: cs, q: framework.NewSQSClient(c.SQSEndpoint), sqsEndpoint: c.SQSEndpoint, sb: c.ServiceBus,
		sbAddr: c.ServiceBusAddr, d: d, metricsURL: "http://" + metricsAddr + "/metrics"}
	if o.has(queuePubSub) {
		// The client library dials the emulator without TLS or credentials when PUBSUB_EMULATOR_HOST is set, as the
		// dispatcher does (the stack's Env gives it the same value).
		if err := os.Setenv("PUBSUB_EMULATOR_HOST", c.PubSubHost); err != nil {
			return fmt.Errorf("setting PUBSUB_EMULATOR_HOST: %w", err)
		}
		if e.ps, err = pubsub.NewClient(ctx, framework.PubSubProject); err != nil {
			return fmt.Errorf("building the Pub/Sub client: %w", err)
		}
		defer e.ps.Close()
	}

	// SQS first, as before the other queues were added: message mode, count mode, the first-Job trials. Then one
	// message-mode stream per other queue, each with its own namespace, ScaledJob and queue.
	one := func(sp stream) (*streamResult, error) {
		r, err := runStream(ctx, e, sp, o)
		return &r, err
	}
	if o.has(queueSQS) {
		if res.Message, err = one(stream{queue: queueSQS, mode: modeMessage, ns: nsMessage, messages: o.messages}); err != nil {
			return err
		}
		if res.Count, err = one(stream{queue: queueSQS, mode: modeCount, ns: nsCount, messages: o.messages}); err != nil {
			return err
		}
		fm, fc, err := runFirst(ctx, e, o)
		if err != nil {
			return err
		}
		res.FirstMessage, res.FirstCount = &fm, &fc
	}
	if o.has(queuePubSub) {
		if res.PubSub, err = one(stream{queue: queuePubSub, mode: modeMessage, ns: nsPubSub, messages: o.extraMessages}); err != nil {
			return err
		}
	}
	if o.has(queueServiceBus) {
		if res.ServiceBus, err = one(stream{queue: queueServiceBus, mode: modeMessage, ns: nsServiceBus, messages: o.extraMessages}); err != nil {
			return err
		}
	}
	benchkit.Step("Stopping the dispatcher")
	d.Stop()

	res.Verdicts = judge(res)
	res.WallSeconds = time.Since(start).Seconds()
	report := render(res)
	fmt.Println()
	fmt.Print(report)
	if o.noResults {
		benchkit.Step("-no-results: nothing written under bench/results")
	} else if err := benchkit.WriteResults(root, "message", "message-latest.md", res.Date, res, report); err != nil {
		return err
	}
	var errs []error
	problems := func(what string, ps []string) {
		for _, p := range ps {
			errs = append(errs, fmt.Errorf("%s: %s", what, p))
		}
	}
	if res.Message != nil {
		problems("message mode", res.Message.Problems)
		problems("count mode", res.Count.Problems)
		problems("first Job, message mode", res.FirstMessage.Problems)
		problems("first Job, count mode", res.FirstCount.Problems)
	}
	if res.PubSub != nil {
		problems("Pub/Sub message mode", res.PubSub.Problems)
	}
	if res.ServiceBus != nil {
		problems("Service Bus message mode", res.ServiceBus.Problems)
	}
	if len(errs) > 0 {
		return fmt.Errorf("checking the runs (see %s): %w", d.LogPath, errors.Join(errs...))
	}
	return nil
}

// judge compares the run with the targets.
func judge(r result) verdicts {
	v := verdicts{TargetP50Seconds: targetP50.Seconds(), TargetP99Seconds: targetP99.Seconds(), TargetRatio: targetRatio,
		MessageMode: []queueVerdict{}}
	for _, s := range r.messageStreams() {
		m := s.PerMessage
		v.MessageMode = append(v.MessageMode, queueVerdict{Queue: s.Queue, P50Seconds: m.P50, P99Seconds: m.P99,
			P50Met: m.N > 0 && m.P50 <= v.TargetP50Seconds, P99Met: m.N > 0 && m.P99 <= v.TargetP99Seconds})
	}
	if r.Message == nil {
		return v
	}
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
