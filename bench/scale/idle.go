package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/bench/internal/benchkit"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// Classes of the idle scenario's ScaledJobs.
const (
	classCronClosed = "cron, window closed"
	classCronOpen   = "cron, window open"
	classSQSEmpty   = "sqs, empty queue"
	classSQSBusy    = "sqs, queue with messages"
)

// idleClasses are the classes in report order; the first two are the idle ones.
var idleClasses = []string{classCronClosed, classSQSEmpty, classCronOpen, classSQSBusy}

func isIdle(class string) bool { return class == classCronClosed || class == classSQSEmpty }

// idleResult is scenario (a): many ScaledJobs, most of them idle, polled for a while.
type idleResult struct {
	ScaledJobs   int            `json:"scaledJobs"`
	ByClass      map[string]int `json:"byClass"`
	PollSeconds  int            `json:"pollSeconds"`
	Queues       int            `json:"queues"`
	BusyQueues   int            `json:"busyQueues"`
	BusyMessages int            `json:"busyMessages"`
	// ExpectedJobs is the number of Jobs the non-idle ScaledJobs should keep running: one per open cron window,
	// busyMessages per ScaledJob on a busy queue.
	ExpectedJobs int `json:"expectedJobs"`
	// SettleFlag and DurationFlag are -settle and -duration.
	SettleFlag   string `json:"settle"`
	DurationFlag string `json:"duration"`

	// CreateSeconds is the time to create the ScaledJobs; AllTickedSeconds runs from the last create until every
	// one has a status.lastDecision; SettleSeconds from the last create to the start of the window.
	CreateSeconds    float64 `json:"createSeconds"`
	AllTickedSeconds float64 `json:"allTickedSeconds"`
	SettleSeconds    float64 `json:"settleSeconds"`
	WindowSeconds    float64 `json:"windowSeconds"`

	// TickLag is nil when the dispatcher does not export kubedispatch_tick_lag_seconds.
	TickLag                *lagResult         `json:"tickLag"`
	TicksPerSecond         float64            `json:"ticksPerSecond"`
	TicksByResult          map[string]float64 `json:"ticksByResult"`
	ExpectedTicksPerSecond float64            `json:"expectedTicksPerSecond"`
	ReadsPerSecond         map[string]float64 `json:"triggerReadsPerSecondByType"`
	TriggerErrorsInWindow  float64            `json:"triggerErrorsInWindow"`
	JobsCreatedInWindow    float64            `json:"jobsCreatedInWindow"`

	Status statusResult `json:"statusWrites"`
	// API is every (verb, resource, subresource) with requests in the window, busiest first.
	API []apiRow `json:"api"`

	CPUSeconds float64 `json:"cpuSeconds"`
	Cores      float64 `json:"cores"`
	// PeakRSSMiB is the largest VmRSS sampled every second in the window; HWMMiB is VmHWM at the end (the whole
	// life of the process, start-up and the creation of the ScaledJobs included); RSSEndMiB is VmRSS at the end.
	PeakRSSMiB float64 `json:"peakRssMiB"`
	HWMMiB     float64 `json:"hwmMiB"`
	RSSEndMiB  float64 `json:"rssEndMiB"`

	JobsAtEnd     int      `json:"jobsAtEnd"`
	NotReadyAtEnd []string `json:"notReadyAtEnd,omitempty"`
	Problems      []string `json:"problems,omitempty"`
}

// lagResult summarises kubedispatch_tick_lag_seconds over the window.
type lagResult struct {
	Observations float64 `json:"observations"`
	MeanSeconds  float64 `json:"meanSeconds"`
	P50Seconds   float64 `json:"p50Seconds"`
	P99Seconds   float64 `json:"p99Seconds"`
	// P50Bucket and P99Bucket are the (lower, upper] bounds of the buckets the quantiles fell in: the resolution.
	P50Bucket [2]float64 `json:"p50Bucket"`
	P99Bucket [2]float64 `json:"p99Bucket"`
	// P50Beyond and P99Beyond say the quantile fell in the +Inf bucket: it is larger than the value given.
	P50Beyond bool `json:"p50Beyond"`
	P99Beyond bool `json:"p99Beyond"`
}

// statusResult counts the writes of the ScaledJobs' status subresource.
type statusResult struct {
	// AllPerSecond is apiserver_request_total{resource=scaledjobs,subresource=status} for the write verbs (all
	// clients; only the dispatcher writes these), by verb in ByVerbPerSecond.
	AllPerSecond    float64            `json:"allPerSecond"`
	ByVerbPerSecond map[string]float64 `json:"byVerbPerSecond"`
	// DispatcherPerSecond is the same, counted by the proxy in front of the dispatcher.
	DispatcherPerSecond float64 `json:"dispatcherPerSecond"`
	// ChangesPerSecond counts MODIFIED events of a watch on the ScaledJobs, by class: writes that changed
	// something (a write that changes nothing makes no event).
	ChangesPerSecond     map[string]float64 `json:"changesPerSecondByClass"`
	IdleChangesPerSecond float64            `json:"idleChangesPerSecond"`
}

// apiRow is one (verb, resource, subresource) of apiserver_request_total over the window, per second.
type apiRow struct {
	requestKey
	AllPerSecond        float64 `json:"allPerSecond"`
	DispatcherPerSecond float64 `json:"dispatcherPerSecond"`
}

// statusWriteVerbs are the apiserver_request_total verbs that write: the kube-apiserver labels an update PUT.
var statusWriteVerbs = []string{"PUT", "UPDATE", "PATCH", "APPLY", "POST"}

// idleSJ is one ScaledJob of the idle scenario.
type idleSJ struct {
	name, class string
	queue       int // for SQS ones
}

// idlePlan lays out the ScaledJobs: alternately cron and SQS; the first openCron cron ones have an open window;
// SQS ones take the queues in turn, and the first busyQueues queues hold messages.
func idlePlan(o options) []idleSJ {
	plan := make([]idleSJ, 0, o.scaledJobs)
	for i := range o.scaledJobs {
		k := i / 2
		if i%2 == 0 {
			sj := idleSJ{name: fmt.Sprintf("cron-%04d", k), class: classCronClosed}
			if k < o.openCron {
				sj.class = classCronOpen
			}
			plan = append(plan, sj)
			continue
		}
		sj := idleSJ{name: fmt.Sprintf("sqs-%04d", k), class: classSQSEmpty, queue: k % o.queues}
		if sj.queue < o.busyQueues && o.busyMessages > 0 {
			sj.class = classSQSBusy
		}
		plan = append(plan, sj)
	}
	return plan
}

// cronDaily is a daily cron expression at t's hour and minute (UTC).
func cronDaily(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%d %d * * *", t.Minute(), t.Hour())
}

// cronWindow is the metadata of a cron trigger whose daily window runs from opens to closes, asking for one Job.
func cronWindow(opens, closes time.Time) map[string]string {
	return map[string]string{"timezone": "Etc/UTC", "start": cronDaily(opens), "end": cronDaily(closes), "desiredReplicas": "1"}
}

// closedWindow opens in 12 hours: closed for the whole run, and read without any I/O.
func closedWindow(now time.Time) map[string]string {
	return cronWindow(now.Add(12*time.Hour), now.Add(12*time.Hour+30*time.Minute))
}

// jobTarget is the Job every ScaledJob of the benchmark would create: one container on the kwok node whose pod
// runs for runFor.
func jobTarget(runFor string) batchv1.JobSpec {
	return batchv1.JobSpec{
		BackoffLimit: ptr.To[int32](0),
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"kwok.test/run-for": runFor}},
			Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "worker", Image: "example.com/worker:1"}},
			},
		},
	}
}

const (
	authName   = "sqs-auth"
	secretName = "sqs-creds"
)

func (p idleSJ) build(o options, now time.Time, queueURLs []string, endpoint string) *v1alpha1.ScaledJob {
	sj := &v1alpha1.ScaledJob{
		ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: idleNamespace},
		Spec: v1alpha1.ScaledJobSpec{
			JobTargetRef:    jobTarget("1h"),
			PollingInterval: ptr.To(int32(o.poll)),
			MaxReplicaCount: ptr.To(int32(max(10, o.busyMessages))),
		},
	}
	switch p.class {
	case classCronClosed:
		sj.Spec.Triggers = []v1alpha1.ScaleTrigger{{Type: "cron", Name: "window", Metadata: closedWindow(now)}}
	case classCronOpen:
		sj.Spec.Triggers = []v1alpha1.ScaleTrigger{{Type: "cron", Name: "window",
			Metadata: cronWindow(now.Add(-2*time.Minute), now.Add(6*time.Hour))}}
	default:
		sj.Spec.Triggers = []v1alpha1.ScaleTrigger{{Type: "aws-sqs-queue", Name: "sqs",
			Metadata: map[string]string{
				"queueURL": queueURLs[p.queue], "queueLength": "1", "awsRegion": "us-east-1", "awsEndpoint": endpoint,
			},
			AuthenticationRef: &v1alpha1.AuthenticationRef{Name: authName}}}
	}
	return sj
}

// snapshot is what is read at each end of the window.
type snapshot struct {
	at         time.Time
	cpu        float64
	api, disp  metricSet
	dispatcher map[requestKey]float64
	changes    map[string]float64
}

func runIdle(ctx context.Context, e *env, o options) (*idleResult, error) {
	plan := idlePlan(o)
	res := &idleResult{ScaledJobs: o.scaledJobs, ByClass: map[string]int{}, PollSeconds: o.poll, Queues: o.queues,
		BusyQueues: o.busyQueues, BusyMessages: o.busyMessages, SettleFlag: o.settle.String(), DurationFlag: o.duration.String()}
	classOf := map[string]string{}
	for _, p := range plan {
		res.ByClass[p.class]++
		classOf[p.name] = p.class
	}
	res.ExpectedJobs = res.ByClass[classCronOpen] + res.ByClass[classSQSBusy]*o.busyMessages
	benchkit.Step("Scenario idle: %d ScaledJobs in %s, pollingInterval %d s: %d cron with a closed window, %d cron with an open "+
		"window (desiredReplicas 1), %d SQS on %d empty queues, %d SQS on %d queue(s) holding %d messages each (SQS credentials "+
		"from a TriggerAuthentication and a Secret)", o.scaledJobs, idleNamespace, o.poll, res.ByClass[classCronClosed],
		res.ByClass[classCronOpen], res.ByClass[classSQSEmpty], o.queues-o.busyQueues, res.ByClass[classSQSBusy], o.busyQueues, o.busyMessages)

	q := framework.NewSQSClient(e.c.SQSEndpoint)
	urls := make([]string, o.queues)
	for i := range urls {
		out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(fmt.Sprintf("bench-scale-%02d", i))})
		if err != nil {
			return nil, fmt.Errorf("creating SQS queue %d: %w", i, err)
		}
		urls[i] = aws.ToString(out.QueueUrl)
		if i < o.busyQueues && o.busyMessages > 0 {
			for start := 0; start < o.busyMessages; start += 10 {
				if err := benchkit.SendBatch(ctx, q, urls[i], start, o.busyMessages); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := e.cl.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: idleNamespace},
		StringData: map[string]string{"id": "test", "secret": "test"}}); err != nil {
		return nil, fmt.Errorf("creating Secret %s: %w", secretName, err)
	}
	if err := e.cl.Create(ctx, &v1alpha1.TriggerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: authName, Namespace: idleNamespace},
		Spec: v1alpha1.TriggerAuthenticationSpec{SecretTargetRef: []v1alpha1.SecretTargetRef{
			{Parameter: "awsAccessKeyID", Name: secretName, Key: "id"},
			{Parameter: "awsSecretAccessKey", Name: secretName, Key: "secret"},
		}}}); err != nil {
		return nil, fmt.Errorf("creating TriggerAuthentication %s: %w", authName, err)
	}

	proxyLog, err := os.Create(filepath.Join(e.dir, "logs", "api-proxy.log"))
	if err != nil {
		return nil, fmt.Errorf("creating the API proxy's log: %w", err)
	}
	defer proxyLog.Close()
	proxy, err := startProxy(e.c.Server, e.c.Token, filepath.Join(e.dir, "dispatcher-proxy.kubeconfig"), proxyLog)
	if err != nil {
		return nil, err
	}
	defer proxy.Stop()
	benchkit.Step("Starting the dispatcher through a counting API proxy (default flags; log %s)", filepath.Join(e.dir, "logs", "dispatcher.log"))
	d, err := startDispatcher(ctx, e.c, e.bin, e.dir, idleNamespace, proxy.Kubeconfig)
	if err != nil {
		return nil, err
	}
	defer d.Stop()

	benchkit.Step("Creating the %d ScaledJobs (%d in parallel)", o.scaledJobs, o.setupWorkers)
	t := time.Now()
	now := time.Now()
	if err := benchkit.ForEach(ctx, "ScaledJobs created", len(plan), o.setupWorkers, func(ctx context.Context, i int) error {
		if err := e.setupCl.Create(ctx, plan[i].build(o, now, urls, e.c.SQSEndpoint)); err != nil {
			return fmt.Errorf("creating ScaledJob %s: %w", plan[i].name, err)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	created := time.Now()
	res.CreateSeconds = created.Sub(t).Seconds()
	benchkit.Note("created in %.1f s", res.CreateSeconds)

	benchkit.Step("Waiting until every ScaledJob has ticked (status.lastDecision)")
	if err := waitAllTicked(ctx, e.cl, d, idleNamespace, o.scaledJobs, time.Time{}); err != nil {
		return nil, err
	}
	res.AllTickedSeconds = time.Since(created).Seconds()
	benchkit.Note("all ticked %.1f s after the last create", res.AllTickedSeconds)
	if left := o.settle - time.Since(created); left > 0 {
		benchkit.Step("Settling until %s after the last create", o.settle)
		if err := sleepWatching(ctx, d, left, nil); err != nil {
			return nil, err
		}
	}
	res.SettleSeconds = time.Since(created).Seconds()

	mc, err := metadata.NewForConfig(e.c.RESTConfig())
	if err != nil {
		return nil, fmt.Errorf("building the metadata client: %w", err)
	}
	changes, err := watchChanges(ctx, mc, idleNamespace, classOf)
	if err != nil {
		return nil, err
	}
	defer changes.stop()

	benchkit.Step("Measuring for %s", o.duration)
	s0, err := takeSnapshot(ctx, e, d, proxy, changes)
	if err != nil {
		return nil, err
	}
	d.resetPeak()
	if err := sleepWatching(ctx, d, o.duration, func(elapsed time.Duration) {
		if cpu, err := cpuSeconds(d.Pid()); err == nil {
			rss, _ := statusMiB(d.Pid(), "VmRSS")
			benchkit.Note("%3.0f s: %.3f core so far, VmRSS %.1f MiB", elapsed.Seconds(), (cpu-s0.cpu)/elapsed.Seconds(), rss)
		}
	}); err != nil {
		return nil, err
	}
	s1, err := takeSnapshot(ctx, e, d, proxy, changes)
	if err != nil {
		return nil, err
	}
	if err := changes.failed(); err != nil {
		return nil, err
	}
	res.measure(s0, s1, o)
	res.PeakRSSMiB = d.peak()
	if res.HWMMiB, err = statusMiB(d.Pid(), "VmHWM"); err != nil {
		return nil, err
	}
	if res.RSSEndMiB, err = statusMiB(d.Pid(), "VmRSS"); err != nil {
		return nil, err
	}
	res.printSummary()

	if err := res.checkEnd(ctx, e.cl); err != nil {
		return nil, err
	}
	benchkit.Step("Stopping the dispatcher")
	changes.stop()
	d.Stop()
	return res, nil
}

func takeSnapshot(ctx context.Context, e *env, d *dispatcher, p *apiProxy, c *changeCounter) (snapshot, error) {
	var s snapshot
	var err error
	if s.api, err = apiServerMetrics(ctx, e.c); err != nil {
		return s, err
	}
	if s.disp, err = d.metrics(ctx); err != nil {
		return s, err
	}
	s.dispatcher, s.changes = p.snapshot(), c.snapshot()
	if s.cpu, err = cpuSeconds(d.Pid()); err != nil {
		return s, err
	}
	s.at = time.Now()
	return s, nil
}

// measure fills the window's figures from the two snapshots.
func (r *idleResult) measure(s0, s1 snapshot, o options) {
	w := s1.at.Sub(s0.at).Seconds()
	r.WindowSeconds = w
	r.CPUSeconds = s1.cpu - s0.cpu
	r.Cores = r.CPUSeconds / w

	const lag = "kubedispatch_tick_lag_seconds"
	if s1.disp.has(lag+"_bucket") || s1.disp.has(lag+"_count") {
		h := s1.disp.histogramOf(lag).Minus(s0.disp.histogramOf(lag))
		l := &lagResult{Observations: h.Total()}
		l.P50Seconds, l.P50Bucket[0], l.P50Bucket[1], l.P50Beyond = h.Quantile(0.5)
		l.P99Seconds, l.P99Bucket[0], l.P99Bucket[1], l.P99Beyond = h.Quantile(0.99)
		if n := s1.disp.sum(lag+"_count", nil) - s0.disp.sum(lag+"_count", nil); n > 0 {
			l.MeanSeconds = (s1.disp.sum(lag+"_sum", nil) - s0.disp.sum(lag+"_sum", nil)) / n
		}
		r.TickLag = l
	}
	r.TicksByResult = map[string]float64{}
	before := s0.disp.sumBy("kubedispatch_tick_duration_seconds_count", "result")
	var ticks float64
	for k, v := range s1.disp.sumBy("kubedispatch_tick_duration_seconds_count", "result") {
		if d := v - before[k]; d > 0 {
			r.TicksByResult[k] = d / w
			ticks += d
		}
	}
	r.TicksPerSecond = ticks / w
	r.ExpectedTicksPerSecond = float64(o.scaledJobs) / float64(o.poll)
	r.ReadsPerSecond = map[string]float64{}
	readsBefore := s0.disp.sumBy("kubedispatch_trigger_read_duration_seconds_count", "type")
	for k, v := range s1.disp.sumBy("kubedispatch_trigger_read_duration_seconds_count", "type") {
		r.ReadsPerSecond[k] = (v - readsBefore[k]) / w
	}
	r.TriggerErrorsInWindow = s1.disp.sum("kubedispatch_trigger_errors_total", nil) - s0.disp.sum("kubedispatch_trigger_errors_total", nil)
	r.JobsCreatedInWindow = s1.disp.sum("kubedispatch_jobs_created_total", nil) - s0.disp.sum("kubedispatch_jobs_created_total", nil)

	// Status writes.
	r.Status.ByVerbPerSecond = map[string]float64{}
	for _, verb := range statusWriteVerbs {
		m := map[string]string{"group": v1alpha1.GroupVersion.Group, "resource": "scaledjobs", "subresource": "status", "verb": verb}
		if d := s1.api.sum("apiserver_request_total", m) - s0.api.sum("apiserver_request_total", m); d > 0 {
			r.Status.ByVerbPerSecond[verb] = d / w
			r.Status.AllPerSecond += d / w
		}
		k := requestKey{Verb: verb, Resource: "scaledjobs", Subresource: "status"}
		r.Status.DispatcherPerSecond += (s1.dispatcher[k] - s0.dispatcher[k]) / w
	}
	r.Status.ChangesPerSecond = map[string]float64{}
	for _, class := range idleClasses {
		d := (s1.changes[class] - s0.changes[class]) / w
		r.Status.ChangesPerSecond[class] = d
		if isIdle(class) {
			r.Status.IdleChangesPerSecond += d
		}
	}

	// Every request of the window, by verb, resource and subresource.
	all := map[requestKey]float64{}
	b := s0.api.sumBy("apiserver_request_total", "verb", "resource", "subresource")
	for k, v := range s1.api.sumBy("apiserver_request_total", "verb", "resource", "subresource") {
		parts := strings.SplitN(k, "|", 3)
		if parts[1] == "" {
			continue // non-resource paths: /metrics, discovery, health
		}
		if d := v - b[k]; d > 0 {
			all[requestKey{Verb: parts[0], Resource: parts[1], Subresource: parts[2]}] = d
		}
	}
	disp := map[requestKey]float64{}
	for k, v := range s1.dispatcher {
		if d := v - s0.dispatcher[k]; d > 0 && k.Resource != "" {
			disp[k] = d
		}
	}
	keys := map[requestKey]bool{}
	for k := range all {
		keys[k] = true
	}
	for k := range disp {
		keys[k] = true
	}
	r.API = nil
	for k := range keys {
		r.API = append(r.API, apiRow{requestKey: k, AllPerSecond: all[k] / w, DispatcherPerSecond: disp[k] / w})
	}
	sort.Slice(r.API, func(i, j int) bool {
		a, b := r.API[i], r.API[j]
		if a.AllPerSecond != b.AllPerSecond {
			return a.AllPerSecond > b.AllPerSecond
		}
		if a.DispatcherPerSecond != b.DispatcherPerSecond {
			return a.DispatcherPerSecond > b.DispatcherPerSecond
		}
		return a.String() < b.String()
	})
}

// apiRate returns the (all, dispatcher) rates of key, 0 when absent.
func (r *idleResult) apiRate(k requestKey) (all, disp float64) {
	for _, row := range r.API {
		if row.requestKey == k {
			return row.AllPerSecond, row.DispatcherPerSecond
		}
	}
	return 0, 0
}

func (r *idleResult) printSummary() {
	benchkit.Note("window %.1f s: %.1f ticks/s (expected %.1f)", r.WindowSeconds, r.TicksPerSecond, r.ExpectedTicksPerSecond)
	benchkit.Note("dispatcher CPU %.3f core (target < %g); VmHWM %.1f MiB, largest VmRSS in the window %.1f MiB (target < %g MiB)",
		r.Cores, targetCores, r.HWMMiB, r.PeakRSSMiB, targetIdleRSSMiB)
	benchkit.Note("tick lag p50 / p99: %s / %s (target p99 < %g s)", r.lagText(false), r.lagText(true), targetTickLagP99Seconds)
	benchkit.Note("status writes: %.3f/s (apiserver, all ScaledJobs; dispatcher via proxy %.3f/s); changes by idle ScaledJobs %.3f/s (target < %g/s)",
		r.Status.AllPerSecond, r.Status.DispatcherPerSecond, r.Status.IdleChangesPerSecond, targetIdleStatusWritesPS)
	secAll, secDisp := r.apiRate(requestKey{Verb: "GET", Resource: "secrets"})
	benchkit.Note("Secret GETs: %.2f/s (dispatcher via proxy %.2f/s)", secAll, secDisp)
}

// lagText renders the p50 or p99 tick lag.
func (r *idleResult) lagText(p99 bool) string {
	if r.TickLag == nil {
		return "n/a (metric missing)"
	}
	if r.TickLag.Observations == 0 {
		return "n/a (no observations)"
	}
	v, bucket, beyond := r.TickLag.P50Seconds, r.TickLag.P50Bucket, r.TickLag.P50Beyond
	if p99 {
		v, bucket, beyond = r.TickLag.P99Seconds, r.TickLag.P99Bucket, r.TickLag.P99Beyond
	}
	if beyond {
		return fmt.Sprintf("> %.3g s (beyond the largest bucket)", v)
	}
	return fmt.Sprintf("%.3g s (bucket %.3g-%.3g s)", v, bucket[0], bucket[1])
}

// checkEnd counts the namespace's Jobs and the ScaledJobs that are not Ready, recording problems.
func (r *idleResult) checkEnd(ctx context.Context, cl client.Client) error {
	var jobs metav1.PartialObjectMetadataList
	jobs.SetGroupVersionKind(batchv1.SchemeGroupVersion.WithKind("JobList"))
	if err := cl.List(ctx, &jobs, client.InNamespace(idleNamespace), client.HasLabels{v1alpha1.LabelScaledJob}); err != nil {
		return fmt.Errorf("listing the Jobs of %s: %w", idleNamespace, err)
	}
	r.JobsAtEnd = len(jobs.Items)
	if r.JobsAtEnd != r.ExpectedJobs {
		r.Problems = append(r.Problems, fmt.Sprintf("%d Jobs at the end, want %d", r.JobsAtEnd, r.ExpectedJobs))
	}
	var list v1alpha1.ScaledJobList
	if err := cl.List(ctx, &list, client.InNamespace(idleNamespace)); err != nil {
		return fmt.Errorf("listing the ScaledJobs of %s: %w", idleNamespace, err)
	}
	for i := range list.Items {
		sj := &list.Items[i]
		if c := framework.Condition(sj, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			msg := "no Ready condition"
			if c != nil {
				msg = c.Reason + ": " + c.Message
			}
			r.NotReadyAtEnd = append(r.NotReadyAtEnd, sj.Name+" ("+msg+")")
		}
	}
	if n := len(r.NotReadyAtEnd); n > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d ScaledJobs not Ready at the end, e.g. %s", n, r.NotReadyAtEnd[0]))
	}
	if r.TriggerErrorsInWindow > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%.0f failed trigger readings in the window", r.TriggerErrorsInWindow))
	}
	return nil
}

// waitAllTicked waits until n ScaledJobs of ns have a status.lastDecision after since (any, when zero).
func waitAllTicked(ctx context.Context, cl client.Client, d *dispatcher, ns string, n int, since time.Time) error {
	last := time.Now()
	return benchkit.WaitUntil(ctx, fmt.Sprintf("a decision on each of %d ScaledJobs in %s", n, ns), waitLimit, 2*time.Second, d.Exited, func() (bool, error) {
		var list v1alpha1.ScaledJobList
		if err := cl.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		ticked := 0
		for i := range list.Items {
			if ld := list.Items[i].Status.LastDecision; ld != nil && !ld.Time.Before(&metav1.Time{Time: since.Truncate(time.Second)}) {
				ticked++
			}
		}
		if time.Since(last) >= 10*time.Second {
			benchkit.Note("%d/%d ticked", ticked, n)
			last = time.Now()
		}
		return ticked >= n, fmt.Errorf("%d of %d have a decision", ticked, n)
	})
}

// changeCounter counts MODIFIED events of a metadata watch on the ScaledJobs of a namespace, by class.
type changeCounter struct {
	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}

	mu     sync.Mutex
	counts map[string]float64
	err    error
}

// watchChanges starts the watch from the current state; it is established when it returns.
func watchChanges(ctx context.Context, mc metadata.Interface, ns string, classOf map[string]string) (*changeCounter, error) {
	res := mc.Resource(v1alpha1.GroupVersion.WithResource("scaledjobs")).Namespace(ns)
	list, err := res.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing the ScaledJobs of %s: %w", ns, err)
	}
	rv := list.ResourceVersion
	wctx, cancel := context.WithCancel(ctx)
	opts := func() metav1.ListOptions { return metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true} }
	wi, err := res.Watch(wctx, opts())
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watching the ScaledJobs of %s: %w", ns, err)
	}
	c := &changeCounter{cancel: cancel, done: make(chan struct{}), counts: map[string]float64{}}
	go func() {
		defer close(c.done)
		for {
			for ev := range wi.ResultChan() {
				obj, ok := ev.Object.(*metav1.PartialObjectMetadata)
				if ev.Type == watch.Error || !ok {
					c.fail(fmt.Errorf("watching the ScaledJobs of %s: unexpected %s event", ns, ev.Type))
					wi.Stop()
					return
				}
				rv = obj.ResourceVersion
				if ev.Type == watch.Modified {
					c.mu.Lock()
					c.counts[classOf[obj.Name]]++
					c.mu.Unlock()
				}
			}
			if wctx.Err() != nil {
				return
			}
			if wi, err = res.Watch(wctx, opts()); err != nil { // the API server ended the watch: resume
				if wctx.Err() == nil {
					c.fail(fmt.Errorf("watching the ScaledJobs of %s again: %w", ns, err))
				}
				return
			}
		}
	}()
	return c, nil
}

func (c *changeCounter) fail(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

func (c *changeCounter) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *changeCounter) snapshot() map[string]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]float64, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

func (c *changeCounter) stop() { c.stopOnce.Do(func() { c.cancel(); <-c.done }) }

// fmtRate renders a per-second rate with a precision that suits it.
func fmtRate(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) < 0.1:
		return fmt.Sprintf("%.3f", v)
	case math.Abs(v) < 10:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}
