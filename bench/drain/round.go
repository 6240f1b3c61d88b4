package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/bench/internal/benchkit"
	"github.com/kubedispatch/kubedispatch/e2e/worker"
)

// roundResult is one drain, at one polling interval. Times run from the start of the first SendMessageBatch.
type roundResult struct {
	PollingIntervalSeconds int32  `json:"pollingIntervalSeconds"`
	Namespace              string `json:"namespace"`
	// SendSeconds is when the last SendMessageBatch returned; UnpauseSeconds when the ScaledJob was unpaused.
	SendSeconds    float64 `json:"sendSeconds"`
	UnpauseSeconds float64 `json:"unpauseSeconds"`
	// FirstJobSeconds and LastJobSeconds are when the first and the last Job were seen by a watch.
	FirstJobSeconds float64 `json:"firstJobSeconds"`
	LastJobSeconds  float64 `json:"lastJobSeconds"`
	// DrainSeconds is when the worker simulator had deleted the last message (checked every 20 ms).
	DrainSeconds float64 `json:"drainSeconds"`
	// MaxUnfinishedSampled is the largest number of unfinished Jobs in a List every 200 ms (Samples lists, of which
	// SampleFailures failed); MaxUnfinishedWatched is the largest after any watch event.
	MaxUnfinishedSampled int `json:"maxUnfinishedSampled"`
	Samples              int `json:"samples"`
	SampleFailures       int `json:"sampleFailures"`
	MaxUnfinishedWatched int `json:"maxUnfinishedWatched"`
	// JobsCreated counts the Jobs a watch saw appear, up to a tick that started after every Job had finished;
	// JobsListed is a List of the namespace then.
	JobsCreated int `json:"jobsCreated"`
	JobsListed  int `json:"jobsListed"`
	// Worker is the simulator's counters; Idle Jobs found the queue empty.
	Worker           worker.Stats `json:"worker"`
	DuplicateDeletes int          `json:"duplicateDeletes"`
	// QueueLeft is the queue's visible plus in-flight messages at the end.
	QueueLeft int `json:"queueLeft"`
	// JobLifetimeP50Seconds is the median time from a Job appearing to it being seen finished (pod start, the run,
	// and the Job controller marking it Complete).
	JobLifetimeP50Seconds float64 `json:"jobLifetimeP50Seconds"`
	// Refill* summarise, over Refills pairs, how long after the k-th Job finished the (maxReplicaCount+k)-th Job
	// appeared: the dispatcher's reaction to a free slot.
	Refills          int     `json:"refills"`
	RefillP50Seconds float64 `json:"refillP50Seconds"`
	RefillP90Seconds float64 `json:"refillP90Seconds"`
	RefillMaxSeconds float64 `json:"refillMaxSeconds"`
	// QueueReads counts the dispatcher's SQS backlog reads from the unpause to the drain's end (all ScaledJobs:
	// the earlier rounds' idle ones add one read per pollingInterval each); QueueReadsPerSecond divides by that time.
	QueueReads          int     `json:"queueReads"`
	QueueReadsPerSecond float64 `json:"queueReadsPerSecond"`
	// Problems lists the failed correctness checks (cap, Jobs created, idle Jobs, queue left); empty when all pass.
	Problems []string `json:"problems"`
}

// clients are what a round talks to.
type clients struct {
	cl          client.Client
	cs          kubernetes.Interface
	q           *sqs.Client
	sqsEndpoint string
	d           *benchkit.Dispatcher
	metricsURL  string // the dispatcher's /metrics
}

func namespaceFor(poll int32) string { return fmt.Sprintf("bench-drain-p%d", poll) }

// runRound drains messages through a fresh ScaledJob polling every poll seconds in its own namespace and queue.
//
// The ScaledJob is created paused and has ticked once (so the dispatcher is up and holds it) before the first message
// is sent; it is unpaused right after the last one, which wakes it at once. The drain then runs from a full queue,
// and the measured time includes neither the dispatcher's nor the stack's start-up.
func runRound(ctx context.Context, c clients, poll int32) (roundResult, error) {
	ns := namespaceFor(poll)
	r := roundResult{PollingIntervalSeconds: poll, Namespace: ns}
	key := client.ObjectKey{Namespace: ns, Name: scaledJobName}
	selector := v1alpha1.LabelScaledJob + "=" + scaledJobName

	out, err := c.q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(ns)})
	if err != nil {
		return r, fmt.Errorf("creating SQS queue %s: %w", ns, err)
	}
	queueURL := aws.ToString(out.QueueUrl)
	if err := c.cl.Create(ctx, scaledJob(ns, queueURL, c.sqsEndpoint, poll)); err != nil {
		return r, fmt.Errorf("creating ScaledJob %s: %w", key, err)
	}
	if err := benchkit.WaitScaledJob(ctx, c.cl, key, "its first (paused) tick", c.d.Exited, func(sj *v1alpha1.ScaledJob) bool {
		return sj.Status.LastDecision != nil
	}); err != nil {
		return r, err
	}

	tracker, err := startJobTracker(ctx, c.cs, ns, selector)
	if err != nil {
		return r, err
	}
	defer tracker.stop()
	sampler := startCapSampler(ctx, c.cs, ns, selector, 200*time.Millisecond)
	defer sampler.stop()
	w := &worker.SQS{Client: c.q, QueueURL: queueURL, Clientset: c.cs, Namespace: ns, Selector: selector, Log: logr.Discard()}
	wctx, wcancel := context.WithCancel(ctx)
	wdone := make(chan error, 1)
	go func() { wdone <- w.Run(wctx) }()
	defer func() { wcancel(); <-wdone }()
	// abort stops a wait early when something the round depends on has gone.
	abort := func() error {
		if err := c.d.Exited(); err != nil {
			return err
		}
		if err := tracker.state().err; err != nil {
			return err
		}
		select {
		case err := <-wdone:
			wdone <- err // for the deferred receive
			return fmt.Errorf("the worker simulator stopped: %v", err)
		default:
			return nil
		}
	}

	benchkit.Step("Poll %d s: sending %d messages, then unpausing %s", poll, messages, key)
	t0 := time.Now()
	if err := sendMessages(ctx, c.q, queueURL, messages); err != nil {
		return r, err
	}
	r.SendSeconds = time.Since(t0).Seconds()
	if err := benchkit.Unpause(ctx, c.cl, key); err != nil {
		return r, err
	}
	r.UnpauseSeconds = time.Since(t0).Seconds()
	benchkit.Note("sent in %.2f s, unpaused at %.2f s", r.SendSeconds, r.UnpauseSeconds)

	reads := func() (float64, error) {
		return metricSum(ctx, c.metricsURL, "kubedispatch_trigger_reads_total", map[string]string{"type": "aws-sqs-queue"})
	}
	readsBefore, err := reads()
	if err != nil {
		return r, err
	}
	drained, err := waitDrained(ctx, w, tracker, t0, abort)
	if err != nil {
		return r, err
	}
	r.DrainSeconds = drained.Sub(t0).Seconds()
	readsAfter, err := reads()
	if err != nil {
		return r, err
	}
	r.QueueReads = int(readsAfter - readsBefore)
	r.QueueReadsPerSecond = (readsAfter - readsBefore) / (r.DrainSeconds - r.UnpauseSeconds)
	benchkit.Note("last message deleted %.1f s after the first send", r.DrainSeconds)

	// Extra Jobs would show after the drain: wait until every Job has finished, then for a tick that started after
	// that (decision times have second precision, hence two seconds), then for any Job that tick created.
	benchkit.Step("Poll %d s: waiting for the Jobs to finish and for one more tick", poll)
	allFinished := func() (bool, error) {
		s := tracker.state()
		return s.unfinished == 0, s.err
	}
	if err := benchkit.WaitUntil(ctx, "every Job of "+key.String()+" to finish", 2*time.Minute, 100*time.Millisecond, abort, allFinished); err != nil {
		return r, err
	}
	// Two more ticks of this ScaledJob (kubedispatch_ticks_total): the second started after every Job had finished.
	ticks := func() (float64, error) {
		return metricSum(ctx, c.metricsURL, "kubedispatch_ticks_total", map[string]string{"namespace": ns, "scaledjob": scaledJobName})
	}
	from, err := ticks()
	if err != nil {
		return r, err
	}
	if err := benchkit.WaitUntil(ctx, "two ticks of "+key.String()+" after every Job finished", waitLimit, 100*time.Millisecond, abort, func() (bool, error) {
		n, err := ticks()
		return n >= from+2, err
	}); err != nil {
		return r, err
	}
	if err := benchkit.WaitUntil(ctx, "every Job of "+key.String()+" to finish", waitLimit, 100*time.Millisecond, abort, allFinished); err != nil {
		return r, err
	}

	r.MaxUnfinishedSampled, r.Samples, r.SampleFailures = sampler.stop()
	s := tracker.state()
	r.JobsCreated, r.MaxUnfinishedWatched = s.created, s.maxUnfinished
	var jobs batchv1.JobList
	if err := c.cl.List(ctx, &jobs, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelScaledJob: scaledJobName}); err != nil {
		return r, fmt.Errorf("listing Jobs in %s: %w", ns, err)
	}
	r.JobsListed = len(jobs.Items)
	r.Worker, r.DuplicateDeletes = w.Stats(), len(w.DuplicateDeletes())
	if r.QueueLeft, err = queueLeft(ctx, c.q, queueURL); err != nil {
		return r, err
	}

	created, finished := tracker.times()
	var createdAt, finishedAt []time.Time
	for _, t := range created {
		createdAt = append(createdAt, t)
	}
	for _, t := range finished {
		finishedAt = append(finishedAt, t)
	}
	if cs := benchkit.SortedTimes(createdAt); len(cs) > 0 {
		r.FirstJobSeconds, r.LastJobSeconds = cs[0].Sub(t0).Seconds(), cs[len(cs)-1].Sub(t0).Seconds()
	}
	r.JobLifetimeP50Seconds = benchkit.Percentile(lifetimes(created, finished), 50).Seconds()
	refills := refillDelays(createdAt, finishedAt, maxReplicas)
	r.Refills = len(refills)
	r.RefillP50Seconds = benchkit.Percentile(refills, 50).Seconds()
	r.RefillP90Seconds = benchkit.Percentile(refills, 90).Seconds()
	r.RefillMaxSeconds = benchkit.Percentile(refills, 100).Seconds()
	r.Problems = problems(r)
	benchkit.Note("%d Jobs, at most %d unfinished (sampled; %d by watch events), %d idle; refill p50 %.2f s",
		r.JobsCreated, r.MaxUnfinishedSampled, r.MaxUnfinishedWatched, r.Worker.Idle, r.RefillP50Seconds)
	return r, nil
}

// problems lists the correctness checks r fails.
func problems(r roundResult) []string {
	out := []string{} // [] rather than null in the JSON when every check passes
	if r.MaxUnfinishedSampled > maxReplicas || r.MaxUnfinishedWatched > maxReplicas {
		out = append(out, fmt.Sprintf("%d unfinished Jobs at once (sampled; %d by watch events), max is %d",
			r.MaxUnfinishedSampled, r.MaxUnfinishedWatched, maxReplicas))
	}
	if r.JobsCreated != messages || r.JobsListed != messages {
		out = append(out, fmt.Sprintf("%d Jobs created (%d listed), want %d", r.JobsCreated, r.JobsListed, messages))
	}
	if r.Worker.Idle != 0 {
		out = append(out, fmt.Sprintf("%d idle Jobs, want 0", r.Worker.Idle))
	}
	if r.Worker.Errors != 0 || r.DuplicateDeletes != 0 {
		out = append(out, fmt.Sprintf("worker: %d SQS errors, %d messages deleted twice", r.Worker.Errors, r.DuplicateDeletes))
	}
	if r.QueueLeft != 0 {
		out = append(out, fmt.Sprintf("%d messages left in the queue", r.QueueLeft))
	}
	return out
}

// waitDrained returns when the worker simulator has deleted every message, checking every 20 ms and reporting
// progress every 10 s.
func waitDrained(ctx context.Context, w *worker.SQS, tracker *jobTracker, t0 time.Time, abort func() error) (time.Time, error) {
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	lastReport := time.Now()
	for {
		st := w.Stats()
		if st.Processed >= messages {
			return time.Now(), nil
		}
		if time.Since(lastReport) >= 10*time.Second {
			ts := tracker.state()
			benchkit.Note("%5.1f s: %d/%d messages deleted, %d Jobs created, %d unfinished", time.Since(t0).Seconds(),
				st.Processed, messages, ts.created, ts.unfinished)
			lastReport = time.Now()
		}
		if err := abort(); err != nil {
			return time.Time{}, fmt.Errorf("waiting for the drain (%d/%d messages deleted): %w", st.Processed, messages, err)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("waiting for the drain (%d/%d messages deleted): %w", st.Processed, messages, ctx.Err())
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("waiting %s for the drain: only %d/%d messages deleted", waitLimit, st.Processed, messages)
		case <-tick.C:
		}
	}
}

// scaledJob builds the paused ScaledJob of a round: one SQS trigger (queueLength 1), maxReplicaCount maxReplicas,
// the default strategy, polling every poll seconds; its Jobs' kwok pods run for runFor and succeed.
func scaledJob(ns, queueURL, endpoint string, poll int32) *v1alpha1.ScaledJob {
	return &v1alpha1.ScaledJob{
		ObjectMeta: metav1.ObjectMeta{Name: scaledJobName, Namespace: ns, Annotations: map[string]string{v1alpha1.AnnotationPaused: "true"}},
		Spec: v1alpha1.ScaledJobSpec{
			JobTargetRef: batchv1.JobSpec{
				BackoffLimit: ptr.To[int32](0),
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"kwok.test/run-for": runFor.String()}},
					Spec: corev1.PodSpec{
						RestartPolicy: corev1.RestartPolicyNever,
						Containers:    []corev1.Container{{Name: "worker", Image: "example.com/worker:1"}},
					},
				},
			},
			PollingInterval: ptr.To(poll),
			MaxReplicaCount: ptr.To[int32](maxReplicas),
			Triggers: []v1alpha1.ScaleTrigger{{Type: "aws-sqs-queue", Name: "sqs", Metadata: map[string]string{
				"queueURL": queueURL, "queueLength": "1", "awsRegion": "us-east-1", "awsEndpoint": endpoint,
			}}},
		},
	}
}

// sendMessages sends n messages in batches of 10, one batch after the other.
func sendMessages(ctx context.Context, q *sqs.Client, queueURL string, n int) error {
	for start := 0; start < n; start += 10 {
		if err := benchkit.SendBatch(ctx, q, queueURL, start, n); err != nil {
			return err
		}
	}
	return nil
}

// queueLeft returns the queue's visible plus in-flight messages.
func queueLeft(ctx context.Context, q *sqs.Client, queueURL string) (int, error) {
	out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		return 0, fmt.Errorf("reading the attributes of queue %s: %w", queueURL, err)
	}
	left := 0
	for _, k := range []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
		sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible} {
		v, err := strconv.Atoi(out.Attributes[string(k)])
		if err != nil {
			return 0, fmt.Errorf("reading the attributes of queue %s: %s is %q", queueURL, k, out.Attributes[string(k)])
		}
		left += v
	}
	return left, nil
}
