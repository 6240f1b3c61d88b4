package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/cluster"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// The workload of shared/design/targets.md ("drain at the cap"). The KEDA figures were measured on it.
const (
	messages      = 100
	maxReplicas   = 10
	runFor        = 10 * time.Second
	scaledJobName = "drain"
	// targetSeconds is the project's target for the drain time.
	targetSeconds = 110
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
	flag.BoolVar(&o.keep, "keep", false, "keep the stack directory (component logs, dispatcher log) after the run")
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
	res := result{Date: time.Now().UTC(), Messages: messages, MaxReplicaCount: maxReplicas, RunForSeconds: runFor.Seconds(),
		PhysicalLimitSeconds: math.Ceil(float64(messages)/maxReplicas) * runFor.Seconds(), TargetSeconds: targetSeconds,
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
	step("Building the dispatcher")
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
	defer func() {
		if o.keep || err != nil {
			fmt.Printf("stack directory kept: %s (component logs in logs/, dispatcher log in logs/dispatcher.log)\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()
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
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("building the clientset: %w", err)
	}

	var namespaces []string
	for _, p := range o.polls {
		namespaces = append(namespaces, namespaceFor(p))
	}
	step("Installing the CRDs (deploy/crd) and namespaces %s", strings.Join(namespaces, ", "))
	if err := framework.InstallCRDs(ctx, cl, filepath.Join(root, "deploy", "crd")); err != nil {
		return fmt.Errorf("installing the CRDs: %w", err)
	}
	for _, ns := range namespaces {
		if err := createNamespace(ctx, cl, ns); err != nil {
			return err
		}
	}

	step("Starting the dispatcher (default client QPS and workers; log %s)", filepath.Join(dir, "logs", "dispatcher.log"))
	d, err := startDispatcher(c, bin, dir, namespaces)
	if err != nil {
		return err
	}
	defer d.stop()
	env := clients{cl: cl, cs: cs, q: framework.NewSQSClient(c.SQSEndpoint), sqsEndpoint: c.SQSEndpoint, d: d}
	for _, p := range o.polls {
		step("Round: pollingInterval %d s. ScaledJob %s/%s, created paused: one SQS trigger (queueLength 1), "+
			"maxReplicaCount %d, default strategy; pods run %s", p, namespaceFor(p), scaledJobName, maxReplicas, runFor)
		r, err := runRound(ctx, env, p)
		if err != nil {
			return err
		}
		res.Rounds = append(res.Rounds, r)
	}
	step("Stopping the dispatcher")
	d.stop()

	report := render(res)
	fmt.Println()
	fmt.Print(report)
	if err := writeResults(root, res, report); err != nil {
		return err
	}
	var errs []error
	for _, r := range res.Rounds {
		for _, p := range r.Problems {
			errs = append(errs, fmt.Errorf("pollingInterval %d s: %s", r.PollingIntervalSeconds, p))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("checking the drains (see %s): %w", d.logPath, errors.Join(errs...))
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

// writeResults writes bench/results/drain-<UTC timestamp>.md and .json, and overwrites bench/results/drain-latest.md.
func writeResults(root string, r result, report string) error {
	dir := filepath.Join(root, "bench", "results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the results: %w", err)
	}
	base := filepath.Join(dir, "drain-"+r.Date.Format("20060102T150405Z"))
	latest := filepath.Join(dir, "drain-latest.md")
	files := map[string][]byte{base + ".md": []byte(report), base + ".json": append(js, '\n'), latest: []byte(report)}
	for path, content := range files {
		if err := os.WriteFile(path, content, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	step("Results written to %s.{md,json} and %s", base, latest)
	return nil
}
