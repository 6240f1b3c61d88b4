package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubedispatch/kubedispatch/bench/internal/benchkit"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// The workload of shared/design/targets.md ("drain at the cap"). The KEDA figures were measured on it.
const (
	messages      = 100
	maxReplicas   = 10
	runFor        = 10 * time.Second
	scaledJobName = "drain"
	// targetSeconds is the project's target for the drain time.
	targetSeconds = 105
	kedaReference = "KEDA: 136.3 s [135.8-138.2] at its default poll (it refills every 15 s instead of 10)"
	// waitLimit bounds the drain and the other long waits: generous, for a loaded 2-core machine.
	waitLimit = 10 * time.Minute
)

type options struct {
	polls []int32
	keep  bool
}

func main() {
	var (
		o     options
		polls string
	)
	flag.StringVar(&polls, "polls", "30,5", "comma-separated pollingInterval values in seconds, one drain each")
	flag.BoolVar(&o.keep, "keep", false, benchkit.KeepUsage)
	flag.Parse()
	for p := range strings.SplitSeq(polls, ",") {
		v, err := strconv.ParseInt(strings.TrimSpace(p), 10, 32)
		if err != nil || v < 1 {
			fmt.Fprintf(os.Stderr, "drain: -polls: %q is not a positive number of seconds\n", p)
			os.Exit(2)
		}
		for _, seen := range o.polls {
			if seen == int32(v) {
				fmt.Fprintf(os.Stderr, "drain: -polls: %d s is listed twice\n", v)
				os.Exit(2)
			}
		}
		o.polls = append(o.polls, int32(v))
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "drain:", err)
		os.Exit(1)
	}
}

// result is one run, as written to bench/results/drain-<timestamp>.json.
type result struct {
	Date            time.Time `json:"date"`
	Messages        int       `json:"messages"`
	MaxReplicaCount int       `json:"maxReplicaCount"`
	RunForSeconds   float64   `json:"runForSeconds"`
	// PhysicalLimitSeconds is ceil(messages / maxReplicaCount) rounds of runFor.
	PhysicalLimitSeconds float64 `json:"physicalLimitSeconds"`
	TargetSeconds        float64 `json:"targetSeconds"`
	CPUs                 int     `json:"cpus"`
	GoVersion            string  `json:"goVersion"`
	// StackStartupSeconds is the time cluster.Start took (etcd, control plane, kwok, moto).
	StackStartupSeconds float64       `json:"stackStartupSeconds"`
	Rounds              []roundResult `json:"rounds"`
}

func run(o options) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctrllog.SetLogger(logr.Discard())
	res := result{Date: time.Now().UTC(), Messages: messages, MaxReplicaCount: maxReplicas, RunForSeconds: runFor.Seconds(),
		PhysicalLimitSeconds: math.Ceil(float64(messages)/maxReplicas) * runFor.Seconds(), TargetSeconds: targetSeconds,
		CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}

	root, bins, err := benchkit.Prepare()
	if err != nil {
		return err
	}
	benchkit.Step("Building the dispatcher")
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

	dir, err := os.MkdirTemp("", "kubedispatch-bench-drain-")
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
	c, cl, cfg := st.Cluster, st.Client, st.Cluster.RESTConfig()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("building the clientset: %w", err)
	}

	var namespaces []string
	for _, p := range o.polls {
		namespaces = append(namespaces, namespaceFor(p))
	}
	if err := benchkit.InstallCRDs(ctx, cl, root, namespaces); err != nil {
		return err
	}

	benchkit.Step("Starting the dispatcher (default client QPS and workers; log %s)", filepath.Join(dir, "logs", "dispatcher.log"))
	metricsAddr, err := freeAddr()
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
	env := clients{cl: cl, cs: cs, q: framework.NewSQSClient(c.SQSEndpoint), sqsEndpoint: c.SQSEndpoint, d: d,
		metricsURL: "http://" + metricsAddr + "/metrics"}
	for _, p := range o.polls {
		benchkit.Step("Round: pollingInterval %d s. ScaledJob %s/%s, created paused: one SQS trigger (queueLength 1), "+
			"maxReplicaCount %d, default strategy; pods run %s", p, namespaceFor(p), scaledJobName, maxReplicas, runFor)
		r, err := runRound(ctx, env, p)
		if err != nil {
			return err
		}
		res.Rounds = append(res.Rounds, r)
	}
	benchkit.Step("Stopping the dispatcher")
	d.Stop()

	report := render(res)
	fmt.Println()
	fmt.Print(report)
	if err := benchkit.WriteResults(root, "drain", "drain-latest.md", res.Date, res, report); err != nil {
		return err
	}
	var errs []error
	for _, r := range res.Rounds {
		for _, p := range r.Problems {
			errs = append(errs, fmt.Errorf("pollingInterval %d s: %s", r.PollingIntervalSeconds, p))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("checking the drains (see %s): %w", d.LogPath, errors.Join(errs...))
	}
	return nil
}

// render formats the result as markdown: a header and one table with a column per round.
func render(r result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Drain-at-the-cap benchmark, %s\n\n", r.Date.Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(&b, "%d messages in one SQS queue on moto; one ScaledJob with an aws-sqs-queue trigger (queueLength 1), "+
		"maxReplicaCount %d and the default strategy; its Jobs' kwok pods run %s, and the worker simulator "+
		"(e2e/worker) takes one message per running pod and deletes it just before the pod succeeds. Each round has a "+
		"fresh ScaledJob, namespace and queue: the ScaledJob is created paused and ticks once, the messages are sent, "+
		"then it is unpaused. Times run from the first message sent. Physical limit: %d rounds x %s = %.0f s plus "+
		"start-up. The KEDA column quotes the project's earlier measurements on the same kind of stack "+
		"(shared/design/targets.md); it is not measured in this run. Local stack started in %.1f s; %d CPUs; %s.\n\n",
		r.Messages, r.MaxReplicaCount, runFor, int(math.Ceil(float64(r.Messages)/float64(r.MaxReplicaCount))), runFor,
		r.PhysicalLimitSeconds, r.StackStartupSeconds, r.CPUs, r.GoVersion)

	b.WriteString("| metric |")
	for _, rd := range r.Rounds {
		fmt.Fprintf(&b, " pollingInterval %d s |", rd.PollingIntervalSeconds)
	}
	b.WriteString(" KEDA reference / target (not measured here) |\n| --- |")
	for range r.Rounds {
		b.WriteString(" --- |")
	}
	b.WriteString(" --- |\n")
	row := func(metric, ref string, value func(roundResult) string) {
		fmt.Fprintf(&b, "| %s |", metric)
		for _, rd := range r.Rounds {
			fmt.Fprintf(&b, " %s |", value(rd))
		}
		fmt.Fprintf(&b, " %s |\n", ref)
	}
	row("**drain time** (first message sent to last message deleted)",
		fmt.Sprintf("%s; physical limit about %.0f s plus start-up; target <= %.0f s", kedaReference, r.PhysicalLimitSeconds, r.TargetSeconds),
		func(rd roundResult) string {
			verdict := "target met"
			if rd.DrainSeconds > r.TargetSeconds {
				verdict = "target MISSED"
			}
			return fmt.Sprintf("**%.1f s** (%s)", rd.DrainSeconds, verdict)
		})
	row("over the physical limit", "KEDA: +36.3 s", func(rd roundResult) string {
		return fmt.Sprintf("%+.1f s", rd.DrainSeconds-r.PhysicalLimitSeconds)
	})
	row("first Job appeared", "-", func(rd roundResult) string {
		return fmt.Sprintf("%.2f s (sent in %.2f s, unpaused at %.2f s)", rd.FirstJobSeconds, rd.SendSeconds, rd.UnpauseSeconds)
	})
	row("last Job appeared", "-", func(rd roundResult) string { return fmt.Sprintf("%.1f s", rd.LastJobSeconds) })
	row(fmt.Sprintf("refill delay: k-th Job seen finished to Job k+%d appearing, p50 / p90 / max", r.MaxReplicaCount),
		"KEDA: a Job is marked Complete about 1 s after its pod ends and the next poll still counts it",
		func(rd roundResult) string {
			return fmt.Sprintf("%.2f / %.2f / %.2f s (%d refills)", rd.RefillP50Seconds, rd.RefillP90Seconds, rd.RefillMaxSeconds, rd.Refills)
		})
	row("SQS backlog reads by the dispatcher, unpause to drained (all ScaledJobs)", "target <= 1 read/s per ScaledJob on average; KEDA: 1 per poll",
		func(rd roundResult) string {
			verdict := "target met"
			if rd.QueueReadsPerSecond > 1 {
				verdict = "target MISSED"
			}
			return fmt.Sprintf("%d reads, %.2f/s (%s)", rd.QueueReads, rd.QueueReadsPerSecond, verdict)
		})
	row("Job lifetime p50 (appeared to seen finished)", "-", func(rd roundResult) string {
		return fmt.Sprintf("%.2f s (pods run %s)", rd.JobLifetimeP50Seconds, runFor)
	})
	row("max unfinished Jobs, List every 200 ms", fmt.Sprintf("must be <= %d", r.MaxReplicaCount), func(rd roundResult) string {
		return fmt.Sprintf("%d (%d samples, %d failed)", rd.MaxUnfinishedSampled, rd.Samples, rd.SampleFailures)
	})
	row("max unfinished Jobs, after any watch event", fmt.Sprintf("must be <= %d", r.MaxReplicaCount), func(rd roundResult) string {
		return strconv.Itoa(rd.MaxUnfinishedWatched)
	})
	row("Jobs created", fmt.Sprintf("want %d", r.Messages), func(rd roundResult) string {
		return fmt.Sprintf("%d (%d listed at the end)", rd.JobsCreated, rd.JobsListed)
	})
	row("idle Jobs (found the queue empty)", "want 0", func(rd roundResult) string { return strconv.Itoa(rd.Worker.Idle) })
	row("worker: received / deleted / released / SQS errors / deleted twice", "-", func(rd roundResult) string {
		w := rd.Worker
		return fmt.Sprintf("%d / %d / %d / %d / %d", w.Received, w.Processed, w.Released, w.Errors, rd.DuplicateDeletes)
	})
	row("messages left in the queue", "want 0", func(rd roundResult) string { return strconv.Itoa(rd.QueueLeft) })
	row("checks", "-", func(rd roundResult) string {
		if len(rd.Problems) == 0 {
			return "pass"
		}
		return "FAIL: " + strings.Join(rd.Problems, "; ")
	})
	fmt.Fprintf(&b, "\nDate: %s.\n", r.Date.Format(time.RFC3339))
	return b.String()
}

// freeAddr returns a loopback address with a port free now, for the dispatcher's /metrics.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// metricSum reads the dispatcher's /metrics and sums the samples of name whose labels include match.
func metricSum(ctx context.Context, url, name string, match map[string]string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", url, err)
	}
	return framework.SumSamples(string(body), name, match)
}
