package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubedispatch/kubedispatch/bench/internal/benchkit"
	"github.com/kubedispatch/kubedispatch/e2e/cluster"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

const (
	idleNamespace   = "bench-scale-idle"
	memoryNamespace = "bench-scale-memory"
	// waitLimit bounds every wait on the cluster: generous, for a loaded 2-core machine.
	waitLimit = 20 * time.Minute
)

// The targets (shared/design/targets.md, bench/README.md).
const (
	targetTickLagP99Seconds   = 1.0
	targetIdleStatusWritesPS  = 1.0
	targetCores               = 0.5
	targetIdleRSSMiB          = 150.0
	targetMemoryRSSMiB        = 200.0
	scenarioIdle, scenarioMem = "idle", "memory"
)

type options struct {
	scenarios map[string]bool

	// Scenario (a): many mostly idle ScaledJobs.
	scaledJobs   int
	duration     time.Duration
	settle       time.Duration
	poll         int
	queues       int
	busyQueues   int
	busyMessages int
	openCron     int

	// Scenario (b): memory with many Jobs.
	memScaledJobs int
	finishedJobs  int
	runningJobs   int
	memSettle     time.Duration

	// Setup client.
	setupQPS     float64
	setupWorkers int
	// dispatcherBin is a prebuilt dispatcher; empty builds ./cmd/dispatcher.
	dispatcherBin string
	// revision names the code measured; empty asks git.
	revision string
	keep     bool
}

func main() {
	o, err := parseOptions(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

// parseOptions reads the flags; each one's default comes from its environment variable when set.
func parseOptions(args []string) (options, error) {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	var (
		o         options
		scenarios string
		envErrs   []error
	)
	envString := func(k, def string) string {
		if v, ok := os.LookupEnv(k); ok && v != "" {
			return v
		}
		return def
	}
	envInt := func(k string, def int) int {
		v, err := strconv.Atoi(envString(k, strconv.Itoa(def)))
		if err != nil {
			envErrs = append(envErrs, fmt.Errorf("%s: %w", k, err))
		}
		return v
	}
	envDuration := func(k string, def time.Duration) time.Duration {
		v, err := time.ParseDuration(envString(k, def.String()))
		if err != nil {
			envErrs = append(envErrs, fmt.Errorf("%s: %w", k, err))
		}
		return v
	}
	fs.StringVar(&scenarios, "scenarios", envString("SCALE_SCENARIOS", "idle,memory"),
		"comma-separated scenarios to run: idle (many ScaledJobs), memory (many Jobs) (env SCALE_SCENARIOS)")
	fs.IntVar(&o.scaledJobs, "scaledjobs", envInt("SCALE_SCALEDJOBS", 1000), "idle: ScaledJobs, half cron and half SQS (env SCALE_SCALEDJOBS)")
	fs.DurationVar(&o.duration, "duration", envDuration("SCALE_DURATION", 5*time.Minute), "idle: length of the measured window (env SCALE_DURATION)")
	fs.DurationVar(&o.settle, "settle", envDuration("SCALE_SETTLE", 30*time.Second),
		"idle: the window starts this long after the last ScaledJob was created, and not before every one has ticked (env SCALE_SETTLE)")
	fs.IntVar(&o.poll, "poll", envInt("SCALE_POLL", 5), "pollingInterval of every ScaledJob, in seconds (env SCALE_POLL)")
	fs.IntVar(&o.queues, "queues", envInt("SCALE_QUEUES", 20), "idle: SQS queues shared by the SQS ScaledJobs (env SCALE_QUEUES)")
	fs.IntVar(&o.busyQueues, "busy-queues", envInt("SCALE_BUSY_QUEUES", 1), "idle: queues that hold messages; the others stay empty (env SCALE_BUSY_QUEUES)")
	fs.IntVar(&o.busyMessages, "busy-messages", envInt("SCALE_BUSY_MESSAGES", 2),
		"idle: messages in each busy queue; each ScaledJob on it keeps that many Jobs running (env SCALE_BUSY_MESSAGES)")
	fs.IntVar(&o.openCron, "open-cron", envInt("SCALE_OPEN_CRON", 10),
		"idle: cron ScaledJobs whose window is open (desiredReplicas 1); the other cron windows are closed (env SCALE_OPEN_CRON)")
	fs.IntVar(&o.memScaledJobs, "memory-scaledjobs", envInt("SCALE_MEMORY_SCALEDJOBS", 200), "memory: ScaledJobs owning the Jobs (env SCALE_MEMORY_SCALEDJOBS)")
	fs.IntVar(&o.finishedJobs, "finished-jobs", envInt("SCALE_FINISHED_JOBS", 10000), "memory: Complete Jobs, with their Succeeded pods (env SCALE_FINISHED_JOBS)")
	fs.IntVar(&o.runningJobs, "running-jobs", envInt("SCALE_RUNNING_JOBS", 2000), "memory: running Jobs, with their Running pods (env SCALE_RUNNING_JOBS)")
	fs.DurationVar(&o.memSettle, "memory-settle", envDuration("SCALE_MEMORY_SETTLE", 30*time.Second),
		"memory: how long the dispatcher runs after every ScaledJob has ticked before VmRSS is read (env SCALE_MEMORY_SETTLE)")
	fs.Float64Var(&o.setupQPS, "setup-qps", 1000, "client QPS of the benchmark's own creates (burst twice that)")
	fs.IntVar(&o.setupWorkers, "setup-workers", 48, "parallel creates of the benchmark's own objects")
	fs.StringVar(&o.dispatcherBin, "dispatcher", "", "a dispatcher binary to run instead of building ./cmd/dispatcher")
	fs.StringVar(&o.revision, "revision", "", "names the dispatcher's code in the report (default: git describe of the checkout)")
	fs.BoolVar(&o.keep, "keep", false, benchkit.KeepUsage)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if err := errors.Join(envErrs...); err != nil {
		return o, err
	}
	o.scenarios = map[string]bool{}
	for s := range strings.SplitSeq(scenarios, ",") {
		s = strings.TrimSpace(s)
		if s != scenarioIdle && s != scenarioMem {
			return o, fmt.Errorf("-scenarios: unknown scenario %q (want idle and/or memory)", s)
		}
		o.scenarios[s] = true
	}
	switch {
	case o.scaledJobs < 2 || o.poll < 1 || o.queues < 1 || o.busyQueues < 0 || o.busyQueues > o.queues ||
		o.busyMessages < 0 || o.openCron < 0 || o.openCron > o.scaledJobs/2:
		return o, errors.New("idle: want -scaledjobs >= 2, -poll >= 1, -queues >= 1, 0 <= -busy-queues <= -queues, " +
			"-busy-messages >= 0 and 0 <= -open-cron <= half the ScaledJobs")
	case o.duration < time.Second || o.settle < 0:
		return o, errors.New("idle: want -duration >= 1s and -settle >= 0")
	case o.memScaledJobs < 1 || o.finishedJobs < 0 || o.runningJobs < 0 || o.memSettle < 0:
		return o, errors.New("memory: want -memory-scaledjobs >= 1, -finished-jobs, -running-jobs and -memory-settle >= 0")
	case o.setupQPS <= 0 || o.setupWorkers < 1:
		return o, errors.New("want -setup-qps > 0 and -setup-workers >= 1")
	}
	return o, nil
}

// result is one run, as written to bench/results/scale-<timestamp>.json.
type result struct {
	Date      time.Time `json:"date"`
	CPUs      int       `json:"cpus"`
	GoVersion string    `json:"goVersion"`
	// Command repeats the run; Revision is the dispatcher's code.
	Command  string `json:"command"`
	Revision string `json:"revision"`
	// StackStartupSeconds is the time cluster.Start took (etcd, control plane, kwok, moto).
	StackStartupSeconds float64       `json:"stackStartupSeconds"`
	Idle                *idleResult   `json:"idle,omitempty"`
	Memory              *memoryResult `json:"memory,omitempty"`
	// WallSeconds is the whole run, builds and stack included.
	WallSeconds float64 `json:"wallSeconds"`
}

// env is what both scenarios use.
type env struct {
	root, dir, bin string
	c              *cluster.Cluster
	cl             client.Client
	// setup is a client with a high QPS for the benchmark's own creates (protobuf).
	setup *kubernetes.Clientset
	// setupCl is a controller-runtime client with the same QPS, for ScaledJobs.
	setupCl client.Client
}

func run(o options) (err error) {
	start := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctrllog.SetLogger(logr.Discard())
	res := result{Date: time.Now().UTC(), CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Command: o.command()}

	root, bins, err := benchkit.Prepare()
	if err != nil {
		return err
	}
	if res.Revision = o.revision; res.Revision == "" {
		res.Revision = revision(ctx, root)
	}
	bin := o.dispatcherBin
	if bin == "" {
		benchkit.Step("Building the dispatcher")
		bin, err = framework.DispatcherBinary()
		if bin != "" {
			defer os.RemoveAll(filepath.Dir(bin)) // a directory of its own, made for this process
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("building the dispatcher: %w", err)
		}
	} else if bin, err = filepath.Abs(bin); err != nil {
		return fmt.Errorf("locating -dispatcher: %w", err)
	}

	dir, err := os.MkdirTemp("", "kubedispatch-bench-scale-")
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

	e := &env{root: root, dir: dir, bin: bin, c: st.Cluster, cl: st.Client}
	cfg := rest.CopyConfig(st.Cluster.RESTConfig())
	cfg.QPS, cfg.Burst = float32(o.setupQPS), int(2*o.setupQPS)
	if e.setupCl, err = client.New(cfg, client.Options{Scheme: st.Client.Scheme()}); err != nil {
		return fmt.Errorf("building the setup client: %w", err)
	}
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	if e.setup, err = kubernetes.NewForConfig(cfg); err != nil {
		return fmt.Errorf("building the setup clientset: %w", err)
	}
	var namespaces []string
	if o.scenarios[scenarioIdle] {
		namespaces = append(namespaces, idleNamespace)
	}
	if o.scenarios[scenarioMem] {
		namespaces = append(namespaces, memoryNamespace)
	}
	if err := benchkit.InstallCRDs(ctx, st.Client, root, namespaces); err != nil {
		return err
	}

	var problems []string
	if o.scenarios[scenarioIdle] {
		r, err := runIdle(ctx, e, o)
		if err != nil {
			return err
		}
		res.Idle = r
		for _, p := range r.Problems {
			problems = append(problems, "idle: "+p)
		}
	}
	if o.scenarios[scenarioMem] {
		r, err := runMemory(ctx, e, o)
		if err != nil {
			return err
		}
		res.Memory = r
		for _, p := range r.Problems {
			problems = append(problems, "memory: "+p)
		}
	}
	res.WallSeconds = time.Since(start).Seconds()

	report := render(res)
	fmt.Println()
	fmt.Print(report)
	if err := benchkit.WriteResults(root, "scale", "scale-latest.md", res.Date, res, report); err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("checks failed (dispatcher logs under %s): %s", filepath.Join(dir, "logs"), strings.Join(problems, "; "))
	}
	return nil
}

// sleepWatching waits d, sampling the dispatcher's VmRSS every second and calling every (when set) every 30 s; it
// returns early with an error when the dispatcher exits or ctx ends.
func sleepWatching(ctx context.Context, d *dispatcher, dur time.Duration, every func(elapsed time.Duration)) error {
	end := time.Now().Add(dur)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start, lastReport := time.Now(), time.Now()
	for {
		if err := d.Exited(); err != nil {
			return err
		}
		if _, err := d.sampleRSS(); err != nil {
			return err
		}
		if every != nil && time.Since(lastReport) >= 30*time.Second {
			every(time.Since(start))
			lastReport = time.Now()
		}
		left := time.Until(end)
		if left <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		case <-time.After(left):
		}
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// apiServerMetrics scrapes the kube-apiserver's /metrics.
func apiServerMetrics(ctx context.Context, c *cluster.Cluster) (metricSet, error) {
	return scrape(ctx, c.Server+"/metrics", c.Token)
}

// revision describes the checkout at root: its commit, "-dirty" with uncommitted changes.
func revision(ctx context.Context, root string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	return strings.TrimSpace(string(out))
}
