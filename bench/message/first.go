package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/bench/internal/benchkit"
	"github.com/kubedispatch/kubedispatch/e2e/worker"
)

// firstResult is one mode's single-message first-Job trials.
type firstResult struct {
	Mode      string `json:"mode"`
	Namespace string `json:"namespace"`
	// IdleSeconds is the deliberate idle period between the ScaledJobs being up and the first trial.
	IdleSeconds float64 `json:"idleSeconds"`
	Trials      []trial `json:"trials"`
	// MedianSeconds (nearest rank) and MaxSeconds summarise the trials' latencies.
	MedianSeconds float64 `json:"medianSeconds"`
	MaxSeconds    float64 `json:"maxSeconds"`
	// Dispatcher is the dispatcher's own histogram over the trials (message mode).
	Dispatcher *histResult `json:"dispatcher,omitempty"`
	Problems   []string    `json:"problems"`
}

// trial is one single message sent to a fresh, idle ScaledJob.
type trial struct {
	ScaledJob string `json:"scaledJob"`
	// UpSeconds is how long the ScaledJob had been up (Ready, or ticked once) when the message was sent, the
	// idle period, the earlier trials and JitterSeconds (a random wait right before the send) included.
	UpSeconds     float64 `json:"upSeconds"`
	JitterSeconds float64 `json:"jitterSeconds"`
	// LatencySeconds runs from just before the send to the arrival of the Job's ADDED event on a watch.
	LatencySeconds float64 `json:"latencySeconds"`
	// Jobs is the number of Jobs the ScaledJob had once its queue was empty.
	Jobs int `json:"jobs"`
}

// runFirst measures the first Job for a single message: o.firstRuns fresh ScaledJobs per mode, each on its own
// queue, all created together and left idle for o.idle once up; then, in turn (message mode, count mode, message
// mode, ...), each gets one message, after a random wait of up to one count-mode pollingInterval so the sends land
// at random points of the poll cycle (the ScaledJobs were created together, so their ticks are nearly in phase), and
// the benchmark waits for its Job. Count-mode ScaledJobs are served by the worker simulator, so every queue drains.
func runFirst(ctx context.Context, e env, o options) (firstMsg, firstCount firstResult, err error) {
	modes := []string{modeMessage, modeCount}
	res := map[string]*firstResult{
		modeMessage: {Mode: modeMessage, Namespace: nsFirstMessage, IdleSeconds: o.idle.Seconds(), Problems: []string{}},
		modeCount:   {Mode: modeCount, Namespace: nsFirstCount, IdleSeconds: o.idle.Seconds(), Problems: []string{}},
	}
	recs := map[string]*jobRecorder{}
	queues := map[string][]*sqsQueue{}
	up := map[string][]time.Time{}
	name := func(i int) string { return fmt.Sprintf("first-%d", i+1) }

	benchkit.Step("First Job: %d fresh ScaledJobs per mode, each on its own queue, in %s and %s", o.firstRuns, nsFirstMessage, nsFirstCount)
	for _, mode := range modes {
		ns := res[mode].Namespace
		rec, err := startJobRecorder(ctx, e.cs, ns, "")
		if err != nil {
			return firstMsg, firstCount, err
		}
		defer rec.stop()
		recs[mode] = rec
		for i := range o.firstRuns {
			q, err := newSQSQueue(ctx, e, fmt.Sprintf("%s-%d", ns, i+1))
			if err != nil {
				return firstMsg, firstCount, err
			}
			queues[mode] = append(queues[mode], q)
			if err := e.cl.Create(ctx, scaledJob(ns, name(i), q, mode)); err != nil {
				return firstMsg, firstCount, fmt.Errorf("creating ScaledJob %s/%s: %w", ns, name(i), err)
			}
			if mode == modeCount {
				w := &worker.SQS{Client: q.c, QueueURL: q.url, Clientset: e.cs, Namespace: ns, Log: logr.Discard(),
					Selector: v1alpha1.LabelScaledJob + "=" + name(i)}
				stop := runWorker(ctx, w)
				defer stop()
			}
		}
	}
	for _, mode := range modes {
		for i := range o.firstRuns {
			if err := waitUp(ctx, e, client.ObjectKey{Namespace: res[mode].Namespace, Name: name(i)}, mode); err != nil {
				return firstMsg, firstCount, err
			}
			up[mode] = append(up[mode], time.Now())
		}
	}
	abort := func() error {
		if err := e.d.Exited(); err != nil {
			return err
		}
		for _, rec := range recs {
			if err := rec.state().err; err != nil {
				return err
			}
		}
		return nil
	}

	// The deliberate idle period: longer than the message loop's 20 s long poll (the first trial's message arrives
	// during a later one), and several count-mode polls.
	benchkit.Step("First Job: all %d ScaledJobs up; idle for %s (deliberately: no wait on a condition)", 2*o.firstRuns, o.idle)
	if err := pause(ctx, o.idle); err != nil {
		return firstMsg, firstCount, err
	}
	for i := range o.firstRuns {
		for _, mode := range modes {
			r := res[mode]
			jitter := rand.N(time.Duration(countPoll) * time.Second)
			if err := pause(ctx, jitter); err != nil {
				return firstMsg, firstCount, err
			}
			sent, err := queues[mode][i].send(ctx, "first", i, 1)
			if err != nil {
				return firstMsg, firstCount, err
			}
			t := trial{ScaledJob: name(i), UpSeconds: sent[0].Before.Sub(up[mode][i]).Seconds(), JitterSeconds: jitter.Seconds()}
			if err := benchkit.WaitUntil(ctx, "the first Job of "+r.Namespace+"/"+name(i), 2*time.Minute, 10*time.Millisecond, abort, func() (bool, error) {
				j, n := recs[mode].first(name(i))
				if n > 0 {
					t.LatencySeconds = j.Seen.Sub(sent[0].Before).Seconds()
				}
				return n > 0, nil
			}); err != nil {
				return firstMsg, firstCount, err
			}
			benchkit.Note("%-7s mode, %s: Job %.3f s after the send (up %.1f s)", mode, name(i), t.LatencySeconds, t.UpSeconds)
			r.Trials = append(r.Trials, t)
		}
	}

	benchkit.Step("First Job: waiting for the %d queues to drain", 2*o.firstRuns)
	for _, mode := range modes {
		r := res[mode]
		for i, q := range queues[mode] {
			if err := benchkit.WaitUntil(ctx, "queue "+q.url+" to drain", time.Minute, 200*time.Millisecond, abort, func() (bool, error) {
				n, err := q.left(ctx)
				return n == 0, err
			}); err != nil {
				if e.d.Exited() != nil || ctx.Err() != nil {
					return firstMsg, firstCount, err
				}
				r.Problems = append(r.Problems, err.Error())
			}
			_, r.Trials[i].Jobs = recs[mode].first(name(i))
			if mode == modeMessage && r.Trials[i].Jobs != 1 {
				r.Problems = append(r.Problems, fmt.Sprintf("%s/%s has %d Jobs for its one message", r.Namespace, name(i), r.Trials[i].Jobs))
			}
		}
		var ds []time.Duration
		for _, t := range r.Trials {
			ds = append(ds, time.Duration(t.LatencySeconds*float64(time.Second)))
		}
		r.MedianSeconds, r.MaxSeconds = benchkit.Percentile(ds, 50).Seconds(), benchkit.Percentile(ds, 100).Seconds()
	}
	h, err := dispatcherHistogram(ctx, e.metricsURL, nsFirstMessage)
	if err != nil {
		return firstMsg, firstCount, err
	}
	res[modeMessage].Dispatcher = quantiles(h)
	return *res[modeMessage], *res[modeCount], nil
}

// pause waits d, or until ctx ends: the benchmark's deliberate idle periods, never a wait for a condition.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("waiting: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}
