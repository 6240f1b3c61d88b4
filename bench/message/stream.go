package main

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/bench/internal/benchkit"
	"github.com/kubedispatch/kubedispatch/dispatch"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
	"github.com/kubedispatch/kubedispatch/e2e/worker"
)

// The two dispatch modes, as in spec.dispatch.mode.
const (
	modeMessage = v1alpha1.ModeMessage
	modeCount   = v1alpha1.ModeCount
)

// latencyMetric is the dispatcher's own enqueue -> Job created histogram (message mode).
const latencyMetric = "kubedispatch_message_dispatch_latency_seconds"

// streamResult is one steady stream of messages: one queue service, one mode.
type streamResult struct {
	// Queue is the queue service: sqs, pubsub or servicebus.
	Queue     string `json:"queue"`
	Mode      string `json:"mode"`
	Namespace string `json:"namespace"`
	Messages  int    `json:"messages"`
	// SendSeconds runs from the start of the first send call (SQS and Service Bus SendMessageBatch, Pub/Sub Publish)
	// to the return of the last; AchievedRate is Messages / SendSeconds.
	SendSeconds  float64 `json:"sendSeconds"`
	AchievedRate float64 `json:"achievedRatePerSecond"`
	// SendCall is the duration of the send calls (one per batch; Service Bus: one per message).
	SendCall latency `json:"sendCall"`
	// PerMessage is message mode's latency per message: the start of the send call that sent it (with the other
	// messages of its batch; Service Bus: alone) to the arrival of its Job's ADDED event on a watch.
	// PerMessageFromReturn runs from that call's return instead.
	PerMessage           latency `json:"perMessage"`
	PerMessageFromReturn latency `json:"perMessageFromReturn"`
	// ByBatchPositionP50 is the per-message p50 by the message's place in its batch (entry 1 to 10).
	ByBatchPositionP50 []float64 `json:"byBatchPositionP50Seconds,omitempty"`
	// Kth pairs the k-th message sent with the k-th Job seen (both sorted by time): the only measure in count mode,
	// where Jobs are not bound to messages; given for message mode too, to compare like with like.
	Kth latency `json:"kth"`
	// Dispatcher is the dispatcher's own histogram over the stream (message mode).
	Dispatcher *histResult `json:"dispatcher,omitempty"`
	// WatchLagMaxSeconds is the largest (ADDED event received - metadata.creationTimestamp); creationTimestamp has
	// second precision, so up to 1 s of it is rounding.
	WatchLagMaxSeconds float64 `json:"watchLagMaxSeconds"`
	// FirstJobSeconds, NthJobSeconds and LastJobSeconds run from the first send to the first Job seen, the
	// Messages-th (the last message's in the k-th pairing) and the last (in count mode, possibly an extra Job).
	FirstJobSeconds float64 `json:"firstJobSeconds"`
	NthJobSeconds   float64 `json:"nthJobSeconds"`
	LastJobSeconds  float64 `json:"lastJobSeconds"`
	// JobsSeen counts the stream's Jobs seen by the watch (the warm-up message's left out), deleted ones (history
	// limits) included.
	JobsSeen int `json:"jobsSeen"`
	// JobsPerSecond is n / (n-th Job seen - first Job seen) with n = min(JobsSeen, Messages): the sustained creation
	// rate while the messages were served.
	JobsPerSecond float64 `json:"jobsPerSecond"`
	// MessagesWithoutJob and MessagesWithSeveralJobs check message mode's one Job per message.
	MessagesWithoutJob      int `json:"messagesWithoutJob"`
	MessagesWithSeveralJobs int `json:"messagesWithSeveralJobs"`
	// JobsNotAcked counts message mode's Jobs (warm-up left out) without the kubedispatch.io/message-outcome
	// "acked" annotation once the stream was over (or after ackWait).
	JobsNotAcked int `json:"jobsNotAcked"`
	// Worker is the worker simulator's counts (count mode), read once the queue is drained (it may still be working
	// through finished pods, so Idle can be short); a message is deleted twice when the queue delivered it again
	// (at-least-once) before the first delete. JobsWithoutMessage is JobsSeen - Worker.Received: Jobs that did no work.
	Worker             *worker.Stats `json:"worker,omitempty"`
	DuplicateDeletes   int           `json:"duplicateDeletes"`
	JobsWithoutMessage int           `json:"jobsWithoutMessage"`
	// MaxUnfinished is the largest number of unfinished Jobs after any watch event.
	MaxUnfinished int `json:"maxUnfinished"`
	// JobLifetimeP50Seconds is the median time from a Job seen to it seen finished.
	JobLifetimeP50Seconds float64  `json:"jobLifetimeP50Seconds"`
	QueueLeft             int      `json:"queueLeft"`
	Problems              []string `json:"problems"`
}

// histResult is a histogram's quantiles, interpolated inside their buckets.
type histResult struct {
	Observations float64 `json:"observations"`
	P50          float64 `json:"p50Seconds"`
	P99          float64 `json:"p99Seconds"`
	// P50Bucket and P99Bucket are the buckets (lower, upper] that hold them.
	P50Bucket [2]float64 `json:"p50Bucket"`
	P99Bucket [2]float64 `json:"p99Bucket"`
	// P99Beyond says the p99 lies in the +Inf bucket: it is larger than P99.
	P99Beyond bool `json:"p99Beyond"`
}

func quantiles(h benchkit.Histogram) *histResult {
	r := &histResult{Observations: h.Total()}
	var lo, hi float64
	r.P50, lo, hi, _ = h.Quantile(0.5)
	r.P50Bucket = [2]float64{lo, hi}
	r.P99, lo, hi, r.P99Beyond = h.Quantile(0.99)
	r.P99Bucket = [2]float64{lo, hi}
	if math.IsNaN(r.P50) || math.IsNaN(r.P99) { // no observations; NaN does not encode as JSON
		r.P50, r.P99 = 0, 0
	}
	return r
}

// ackWait bounds the wait, once every message has its Job, for every Job to be marked acked.
const ackWait = 2 * time.Minute

// stream says what one runStream does: messages messages to a message- or count-mode ScaledJob (count mode: SQS
// only) on a queue of the service queue, all in namespace ns.
type stream struct {
	queue, mode, ns string
	messages        int
}

// runStream sends sp.messages messages at o.rate to a fresh ScaledJob of sp.mode on a fresh queue of sp.queue in
// namespace sp.ns, waits until every Job has finished and the queue is drained, and measures enqueue -> Job created.
// Everything queue-specific is behind benchQueue.
//
// Message mode: once the ScaledJob is Ready, one warm-up message is sent and its Job awaited (the receive loop, the
// caches and the create path are then live), and the dispatcher's histogram is read; the stream follows. Count mode:
// the ScaledJob has ticked once, and the worker simulator (e2e/worker) plays the Jobs' part, taking one message per
// running pod and deleting it just before the pod succeeds.
func runStream(ctx context.Context, e env, sp stream, o options) (streamResult, error) {
	mode, ns := sp.mode, sp.ns
	r := streamResult{Queue: sp.queue, Mode: mode, Namespace: ns, Messages: sp.messages}
	key := client.ObjectKey{Namespace: ns, Name: streamName}
	selector := v1alpha1.LabelScaledJob + "=" + streamName
	poll := ""
	if mode == modeCount {
		poll = fmt.Sprintf(", pollingInterval %d s, queueLength 1", countPoll)
	}
	title, call := queueTitle(sp.queue), sendCallName(sp.queue)
	benchkit.Step("%s, %s mode: ScaledJob %s (maxReplicaCount %d, pods run %s, queue lease %d s%s)", title, mode, key,
		maxReplicas, runFor, visibilitySeconds, poll)
	q, err := newQueue(ctx, e, sp.queue, ns, ns)
	if err != nil {
		return r, err
	}
	defer q.close()
	if err := e.cl.Create(ctx, scaledJob(ns, streamName, q, mode)); err != nil {
		return r, fmt.Errorf("creating ScaledJob %s: %w", key, err)
	}
	if err := waitUp(ctx, e, key, mode); err != nil {
		return r, err
	}
	rec, err := startJobRecorder(ctx, e.cs, ns, selector)
	if err != nil {
		return r, err
	}
	defer rec.stop()
	abort := func() error {
		if err := e.d.Exited(); err != nil {
			return err
		}
		return rec.state().err
	}

	warmup, warmJobs := "", 0 // the warm-up message's id, and its one Job
	var before benchkit.Histogram
	var w *worker.SQS
	switch mode {
	case modeMessage:
		benchkit.Note("warm-up: one message, waiting for its Job")
		sent, err := q.send(ctx, "warm-up", 0, 1)
		if err != nil {
			return r, err
		}
		warmup, warmJobs = sent[0].ID, 1
		if err := benchkit.WaitUntil(ctx, "the warm-up message's Job", 2*time.Minute, 20*time.Millisecond, abort, func() (bool, error) {
			for _, j := range rec.records() {
				if j.key() == warmup {
					benchkit.Note("its Job appeared %.0f ms after the send", 1000*j.Seen.Sub(sent[0].Before).Seconds())
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			return r, err
		}
		if before, err = dispatcherHistogram(ctx, e.metricsURL, ns); err != nil {
			return r, err
		}
	case modeCount:
		sq, ok := q.(*sqsQueue)
		if !ok {
			return r, fmt.Errorf("count mode runs on SQS only (the worker simulator's queue), not %s", title)
		}
		w = &worker.SQS{Client: sq.c, QueueURL: sq.url, Clientset: e.cs, Namespace: ns, Selector: selector, Log: logr.Discard()}
		stopWorker := runWorker(ctx, w)
		defer stopWorker()
	}

	benchkit.Step("%s, %s mode: sending %d messages at %g/s (%s of %d, one call every %s)", title, mode, sp.messages, o.rate,
		call, batchSize, batchInterval(o.rate).Round(time.Millisecond))
	sent, err := sendSteady(ctx, q, sp.messages, o.rate)
	if err != nil {
		return r, err
	}
	t0, tEnd := sent[0].Before, sent[0].After
	var calls []time.Duration
	for i, s := range sent {
		if s.After.After(tEnd) {
			tEnd = s.After
		}
		if i == 0 || s.Before != sent[i-1].Before { // the messages of one call share its times
			calls = append(calls, s.After.Sub(s.Before))
		}
	}
	r.SendSeconds = tEnd.Sub(t0).Seconds()
	r.AchievedRate = float64(sp.messages) / r.SendSeconds
	r.SendCall = summarise(calls)
	benchkit.Note("sent in %.2f s (%.1f messages/s; %s p50 %.0f ms, max %.0f ms)", r.SendSeconds, r.AchievedRate, call,
		1000*r.SendCall.P50, 1000*r.SendCall.Max)

	// Wait for the Jobs, then for the queue to drain and every Job to finish.
	lastReport := time.Now()
	progress := func(format string, args ...any) {
		if time.Since(lastReport) >= 10*time.Second {
			st := rec.state()
			benchkit.Note("%5.1f s: %s; %d Jobs seen, %d unfinished", time.Since(t0).Seconds(), fmt.Sprintf(format, args...), st.seen-warmJobs, st.unfinished)
			lastReport = time.Now()
		}
	}
	switch mode {
	case modeMessage:
		ids := map[string]bool{}
		for _, s := range sent {
			ids[s.ID] = true
		}
		if err := benchkit.WaitUntil(ctx, fmt.Sprintf("a Job for each of the %d messages", sp.messages), waitLimit, 50*time.Millisecond, abort, func() (bool, error) {
			got := map[string]bool{}
			for _, j := range rec.records() {
				if ids[j.key()] {
					got[j.key()] = true
				}
			}
			progress("%d/%d messages have a Job", len(got), len(ids))
			return len(got) == len(ids), nil
		}); err != nil {
			return r, err
		}
		// Pub/Sub's emulator cannot count what the dispatcher holds: the Jobs' outcome annotations say when every
		// message is settled (for every queue, so the drain below means the same everywhere).
		benchkit.Step("%s, %s mode: every message has a Job %.1f s after the first send; waiting for every Job to be marked acked",
			title, mode, time.Since(t0).Seconds())
		notAcked := func() int {
			n := 0
			for _, j := range rec.records() {
				if j.key() != warmup && j.Outcome != v1alpha1.OutcomeAcked {
					n++
				}
			}
			return n
		}
		if err := benchkit.WaitUntil(ctx, "every Job of "+key.String()+" to be marked acked", ackWait, 100*time.Millisecond, abort, func() (bool, error) {
			n := notAcked()
			progress("%d Jobs not marked acked yet", n)
			return n == 0, nil
		}); err != nil && (e.d.Exited() != nil || ctx.Err() != nil) {
			return r, err
		}
		r.JobsNotAcked = notAcked() // a problem when not 0
	case modeCount:
		if err := benchkit.WaitUntil(ctx, fmt.Sprintf("the worker simulator to delete the %d messages", sp.messages), waitLimit, 50*time.Millisecond, abort, func() (bool, error) {
			n := w.Stats().Processed
			progress("%d/%d messages deleted", n, sp.messages)
			return n >= sp.messages, nil
		}); err != nil {
			return r, err
		}
	}
	benchkit.Step("%s, %s mode: every message served %.1f s after the first send; waiting for the queue to drain and the Jobs to finish",
		title, mode, time.Since(t0).Seconds())
	if err := benchkit.WaitUntil(ctx, "queue "+ns+" to drain", waitLimit, 200*time.Millisecond, abort, func() (bool, error) {
		n, err := q.left(ctx)
		progress("%d messages in the queue", n)
		return n == 0, err
	}); err != nil {
		return r, err
	}
	allFinished := func() (bool, error) { return rec.state().unfinished == 0, nil }
	if err := benchkit.WaitUntil(ctx, "every Job of "+key.String()+" to finish", waitLimit, 50*time.Millisecond, abort, allFinished); err != nil {
		return r, err
	}
	if mode == modeCount {
		// Extra (idle) Jobs would come from a tick after the drain: wait for two more ticks (the second started after
		// every Job had finished), then for any Job they created to finish.
		ticks := func() (float64, error) {
			text, err := benchkit.Scrape(ctx, e.metricsURL)
			if err != nil {
				return 0, err
			}
			return framework.SumSamples(text, "kubedispatch_ticks_total", map[string]string{"namespace": ns, "scaledjob": streamName})
		}
		from, err := ticks()
		if err != nil {
			return r, err
		}
		if err := benchkit.WaitUntil(ctx, "two ticks of "+key.String()+" after every Job finished", 2*time.Minute, 100*time.Millisecond, abort, func() (bool, error) {
			n, err := ticks()
			return n >= from+2, err
		}); err != nil {
			return r, err
		}
		if err := benchkit.WaitUntil(ctx, "every Job of "+key.String()+" to finish", waitLimit, 50*time.Millisecond, abort, allFinished); err != nil {
			return r, err
		}
		stats := w.Stats()
		r.Worker, r.DuplicateDeletes = &stats, len(w.DuplicateDeletes())
		// The queue is drained: no pod can take a message any more, so the Jobs beyond those that took one did no work.
		r.JobsWithoutMessage = max(rec.state().seen-stats.Received, 0)
	}

	// The figures.
	if r.QueueLeft, err = q.left(ctx); err != nil {
		return r, err
	}
	st := rec.state()
	r.MaxUnfinished = st.maxUnfinished
	seen := map[string]int{}
	firstSeen := map[string]time.Time{}
	var created, lifetimes []time.Duration
	var seenTimes []time.Time
	for _, j := range rec.records() {
		if mode == modeMessage && j.key() == warmup {
			continue
		}
		r.JobsSeen++
		seen[j.key()]++
		if t, ok := firstSeen[j.key()]; !ok || j.Seen.Before(t) {
			firstSeen[j.key()] = j.Seen
		}
		seenTimes = append(seenTimes, j.Seen)
		created = append(created, j.Seen.Sub(j.Created))
		if !j.Finished.IsZero() {
			lifetimes = append(lifetimes, j.Finished.Sub(j.Seen))
		}
	}
	r.WatchLagMaxSeconds = benchkit.Percentile(created, 100).Seconds()
	r.JobLifetimeP50Seconds = benchkit.Percentile(lifetimes, 50).Seconds()
	if s := benchkit.SortedTimes(seenTimes); len(s) > 0 {
		n := min(len(s), sp.messages)
		r.FirstJobSeconds, r.NthJobSeconds, r.LastJobSeconds = s[0].Sub(t0).Seconds(), s[n-1].Sub(t0).Seconds(), s[len(s)-1].Sub(t0).Seconds()
		if span := s[n-1].Sub(s[0]); span > 0 {
			r.JobsPerSecond = float64(n) / span.Seconds()
		}
	}
	var sentTimes []time.Time
	var perMsg, perMsgReturn []time.Duration
	byPosition := make([][]time.Duration, batchSize)
	for _, s := range sent {
		sentTimes = append(sentTimes, s.Before)
		if mode != modeMessage {
			continue
		}
		if t, ok := firstSeen[s.ID]; ok {
			perMsg, perMsgReturn = append(perMsg, t.Sub(s.Before)), append(perMsgReturn, t.Sub(s.After))
			byPosition[s.Index%batchSize] = append(byPosition[s.Index%batchSize], t.Sub(s.Before))
		}
		if seen[s.ID] == 0 {
			r.MessagesWithoutJob++
		}
		if seen[s.ID] > 1 {
			r.MessagesWithSeveralJobs++
		}
	}
	r.Kth = summarise(kthPairs(sentTimes, seenTimes))
	if mode == modeMessage {
		r.PerMessage, r.PerMessageFromReturn = summarise(perMsg), summarise(perMsgReturn)
		for _, ds := range byPosition {
			if len(ds) > 0 {
				r.ByBatchPositionP50 = append(r.ByBatchPositionP50, benchkit.Percentile(ds, 50).Seconds())
			}
		}
		after, err := dispatcherHistogram(ctx, e.metricsURL, ns)
		if err != nil {
			return r, err
		}
		r.Dispatcher = quantiles(after.Minus(before))
	}
	r.Problems = streamProblems(r)
	if mode == modeMessage {
		benchkit.Note("enqueue -> Job created per message: p50 %.1f ms, p99 %.1f ms, max %.1f ms (dispatcher's histogram: p50 %.1f ms, p99 %.1f ms)",
			1000*r.PerMessage.P50, 1000*r.PerMessage.P99, 1000*r.PerMessage.Max, 1000*r.Dispatcher.P50, 1000*r.Dispatcher.P99)
	}
	benchkit.Note("k-th message -> k-th Job: p50 %.3f s, p99 %.3f s, max %.3f s; %d Jobs (%.1f/s), at most %d unfinished",
		r.Kth.P50, r.Kth.P99, r.Kth.Max, r.JobsSeen, r.JobsPerSecond, r.MaxUnfinished)
	return r, nil
}

// streamProblems lists the correctness checks r fails.
func streamProblems(r streamResult) []string {
	out := []string{} // [] rather than null in the JSON when every check passes
	if r.Mode == modeMessage {
		if r.MessagesWithoutJob > 0 || r.MessagesWithSeveralJobs > 0 {
			out = append(out, fmt.Sprintf("%d messages without a Job and %d with several (watch or list), want exactly one each",
				r.MessagesWithoutJob, r.MessagesWithSeveralJobs))
		}
		if r.JobsSeen != r.Messages {
			out = append(out, fmt.Sprintf("%d Jobs for %d messages", r.JobsSeen, r.Messages))
		}
		if r.JobsNotAcked > 0 {
			out = append(out, fmt.Sprintf("%d Jobs not marked acked (kubedispatch.io/message-outcome) %s after every message had its Job",
				r.JobsNotAcked, ackWait))
		}
	}
	if r.Mode == modeCount && r.JobsSeen < r.Messages {
		out = append(out, fmt.Sprintf("%d Jobs for %d messages", r.JobsSeen, r.Messages))
	}
	if r.MaxUnfinished > maxReplicas {
		out = append(out, fmt.Sprintf("%d unfinished Jobs at once, maxReplicaCount is %d", r.MaxUnfinished, maxReplicas))
	}
	if r.QueueLeft != 0 {
		out = append(out, fmt.Sprintf("%d messages left in the queue", r.QueueLeft))
	}
	return out
}

// waitUp waits until the ScaledJob at key works: in message mode Ready with reason Receiving (its receive loop
// runs), in count mode its first tick (status.lastDecision).
func waitUp(ctx context.Context, e env, key client.ObjectKey, mode string) error {
	if mode == modeMessage {
		return benchkit.WaitScaledJob(ctx, e.cl, key, "Ready (Receiving)", e.d.Exited, func(sj *v1alpha1.ScaledJob) bool {
			c := framework.Condition(sj, v1alpha1.ConditionReady)
			return c != nil && c.Status == metav1.ConditionTrue && c.Reason == dispatch.ReasonMessageMode
		})
	}
	return benchkit.WaitScaledJob(ctx, e.cl, key, "its first tick (status.lastDecision)", e.d.Exited, func(sj *v1alpha1.ScaledJob) bool {
		return sj.Status.LastDecision != nil
	})
}

// runWorker runs the worker simulator until the returned function is called.
func runWorker(ctx context.Context, w *worker.SQS) (stop func()) {
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.Run(wctx) // it returns only when wctx ends
	}()
	return func() { cancel(); <-done }
}

// dispatcherHistogram reads the dispatcher's latency histogram of the ScaledJobs of ns.
func dispatcherHistogram(ctx context.Context, url, ns string) (benchkit.Histogram, error) {
	text, err := benchkit.Scrape(ctx, url)
	if err != nil {
		return benchkit.Histogram{}, err
	}
	return benchkit.HistogramOf(text, latencyMetric, map[string]string{"namespace": ns})
}

// scaledJob builds a ScaledJob of mode on q: q's one trigger, maxReplicaCount maxReplicas, pollingInterval
// countPoll, the default history limits (the watch counts the Jobs); its Jobs' kwok pods run for runFor and succeed.
func scaledJob(ns, name string, q benchQueue, mode string) *v1alpha1.ScaledJob {
	sj := &v1alpha1.ScaledJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
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
			PollingInterval: ptr.To[int32](countPoll),
			MaxReplicaCount: ptr.To[int32](maxReplicas),
		},
	}
	if mode == modeMessage {
		sj.Spec.Dispatch = &v1alpha1.Dispatch{Mode: v1alpha1.ModeMessage}
	}
	q.apply(sj)
	return sj
}

// sentMessage is one message sent.
type sentMessage struct {
	// Index is the message's place in its stream, from 0.
	Index int
	// ID is what the message's Job carries (jobRecord.key): the SQS message id, or the benchmark's own id.
	ID string
	// Before is just before the call that sent it (SQS SendMessageBatch, Pub/Sub Publish: the batch's; Service Bus
	// SendMessage: its own); After is when that call returned.
	Before, After time.Time
}

// batchInterval is the time between two batches at rate messages per second.
func batchInterval(rate float64) time.Duration {
	return time.Duration(float64(batchSize) / rate * float64(time.Second))
}

// sendSteady sends n messages to q in batches of batchSize, batch k started at start + k * batchInterval(rate), each
// in its own goroutine so a slow call does not hold up the next one. It returns the messages in order.
func sendSteady(ctx context.Context, q benchQueue, n int, rate float64) ([]sentMessage, error) {
	interval := batchInterval(rate)
	batches := (n + batchSize - 1) / batchSize
	out := make([][]sentMessage, batches)
	errs := make([]error, batches)
	var wg sync.WaitGroup
	timer := time.NewTimer(0)
	defer timer.Stop()
	start := time.Now()
	lastReport := start
	for b := range batches {
		timer.Reset(time.Until(start.Add(time.Duration(b) * interval)))
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil, fmt.Errorf("sending messages: %w", ctx.Err())
		case <-timer.C:
		}
		if time.Since(lastReport) >= 10*time.Second {
			benchkit.Note("%d/%d messages sent", b*batchSize, n)
			lastReport = time.Now()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[b], errs[b] = q.send(ctx, "msg", b*batchSize, min(batchSize, n-b*batchSize))
		}()
	}
	wg.Wait()
	var all []sentMessage
	for b := range batches {
		if errs[b] != nil {
			return nil, errs[b]
		}
		all = append(all, out[b]...)
	}
	return all, nil
}
