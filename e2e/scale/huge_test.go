package scale

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// A ScaledJob asking for 200,000 Jobs with maxReplicaCount 2147483647 is served in steps of at most
// --max-creates-per-tick (500) Jobs per tick: the dispatcher's memory stays under 150 MiB while it creates 2,000
// of them, and a normal ScaledJob next to it still gets its Job within 2 polls.
func TestHugeMaxIsCappedPerTick(t *testing.T) {
	const (
		poll       = 5
		perTick    = 500
		desired    = 200000
		target     = 2000
		rssLimit   = 150 << 20
		maxInt32   = math.MaxInt32
		hugeName   = "huge"
		normalName = "normal"
	)
	f := framework.New(t)
	huge := framework.NewScaledJob(f, hugeName).Trigger("cron", cronOpen(desired), nil).Max(maxInt32).Poll(poll).RunFor("1h")
	if err := f.Client.Create(f.Ctx, huge.ScaledJob); err != nil {
		t.Fatalf("the API refused maxReplicaCount %d with cron desiredReplicas %d: %v", maxInt32, desired, err)
	}
	url := f.CreateQueue(normalName, nil)
	framework.NewScaledJob(f, normalName).SQS(url, 1).Poll(poll).RunFor("1h").Create()
	d := startDispatcher(f, fmt.Sprintf("--max-creates-per-tick=%d", perTick))

	// The dispatcher's RSS, sampled every 500 ms from here on.
	var (
		mu      sync.Mutex
		maxRSS  int64
		rssErr  error
		stopRSS = make(chan struct{})
		rssDone = make(chan struct{})
	)
	go func() {
		defer close(rssDone)
		for {
			rss, err := d.RSS()
			mu.Lock()
			if err != nil && rssErr == nil && !d.Exited() {
				rssErr = err
			}
			maxRSS = max(maxRSS, rss)
			mu.Unlock()
			select {
			case <-stopRSS:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	stopSampling := func() (int64, error) {
		select {
		case <-stopRSS:
		default:
			close(stopRSS)
		}
		<-rssDone
		mu.Lock()
		defer mu.Unlock()
		return maxRSS, rssErr
	}
	defer stopSampling()

	// Along the way: every decision of the huge ScaledJob seen in its status (cheap to read; its Jobs are not), and
	// every value of the dispatcher's count of its created Jobs. The count moves once per tick, and a tick of 500
	// creations takes seconds at the dispatcher's API QPS, so 200 ms samples see each step.
	decisions := map[time.Time]int32{}
	var steps []float64 // increments of kubedispatch_jobs_created_total between samples
	last := 0.0
	created := func() float64 {
		t.Helper()
		n, err := d.MetricSum("kubedispatch_jobs_created_total", map[string]string{"namespace": f.Namespace, "scaledjob": hugeName})
		if err != nil {
			t.Fatalf("reading the dispatcher's metrics: %v", err)
		}
		if n > last {
			steps = append(steps, n-last)
			if n-last > perTick {
				t.Fatalf("the Jobs of %s grew from %.0f to %.0f between two samples 200 ms apart, more than --max-creates-per-tick=%d at once", hugeName, last, n, perTick)
			}
			last = n
		}
		return n
	}
	sample := func() float64 {
		t.Helper()
		f.RequireRunning(d)
		sj := f.ScaledJob(hugeName)
		if dec := sj.Status.LastDecision; dec != nil {
			decisions[dec.Time.Time] = dec.JobsCreated
			if dec.JobsCreated > perTick {
				t.Fatalf("one decision of %s created %d Jobs, more than --max-creates-per-tick=%d (reason: %s)", hugeName, dec.JobsCreated, perTick, dec.Reason)
			}
		}
		return created()
	}

	// The normal ScaledJob has been read once, and the huge one is in full swing: then the normal one's message.
	waitAllReady(f, d, []string{normalName}, 3*time.Minute)
	f.Eventually(fmt.Sprintf("%s to have created more than %d Jobs", hugeName, perTick), 5*time.Minute, func() (bool, error) {
		n := sample()
		return n > perTick, fmt.Errorf("%.0f created (decision: %s)", n, lastReason(f, hugeName))
	})
	f.SendMessages(url, 1, normalName)
	sent := time.Now()
	var normalLatency time.Duration
	f.Eventually("the first Job of "+normalName, 3*time.Minute, func() (bool, error) {
		sample()
		n, err := countJobs(f, f.Namespace, normalName)
		if n > 0 {
			normalLatency = time.Since(sent)
		}
		return n > 0, err
	})
	f.Eventually(fmt.Sprintf("%s to have created %d Jobs", hugeName, target), 10*time.Minute, func() (bool, error) {
		n := sample()
		return n >= target, fmt.Errorf("%.0f created (decision: %s)", n, lastReason(f, hugeName))
	})
	peak, err := stopSampling()
	if err != nil {
		t.Errorf("sampling the dispatcher's RSS: %v", err)
	}
	jobs, err := countJobs(f, f.Namespace, hugeName)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d Jobs in the API, created in %d steps %v; decisions seen in status: %v; peak RSS %.1f MiB; %s got its Job %.1fs after its message",
		hugeName, jobs, len(steps), steps, decisions, float64(peak)/(1<<20), normalName, normalLatency.Seconds())

	if jobs < target {
		t.Errorf("%d Jobs of %s in the API, want at least the %d the dispatcher counted", jobs, hugeName, target)
	}
	if minSteps := (target + perTick - 1) / perTick; len(steps) < minSteps {
		t.Errorf("the Jobs of %s grew in %d steps %v, want at least %d steps of at most %d", hugeName, len(steps), steps, minSteps, perTick)
	}
	if peak >= rssLimit {
		t.Errorf("the dispatcher's RSS peaked at %.1f MiB while creating %d Jobs, want < %d MiB", float64(peak)/(1<<20), target, rssLimit>>20)
	}
	if bound := 2*poll*time.Second + latencySlack; normalLatency > bound {
		t.Errorf("%s got its first Job %.1fs after its message, want within 2 polls + %s (%s) next to %s", normalName, normalLatency.Seconds(), latencySlack, bound, hugeName)
	}

	// Delete the huge ScaledJob (its Jobs go with it, in the background) and stop.
	sj := f.ScaledJob(hugeName)
	if err := f.Client.Delete(f.Ctx, sj, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatalf("deleting %s: %v", hugeName, err)
	}
	waitGone(f, f.Namespace, hugeName, 2*time.Minute)
}
