package scale

import (
	"fmt"
	"testing"
	"time"

	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// statusWriteVerbs are the values of apiserver_request_total's verb label that write the status subresource. The
// kube-apiserver labels an update "PUT" (not "UPDATE"); PATCH and APPLY are writes all the same, and "UPDATE" is
// kept in case a version labels it so.
var statusWriteVerbs = []string{"PUT", "UPDATE", "PATCH", "APPLY"}

// statusWrites reads, per verb, the kube-apiserver's count of requests on the ScaledJob status subresource (all
// response codes summed).
func statusWrites(f *framework.F) map[string]float64 {
	f.T.Helper()
	text, err := framework.APIServerMetrics(f.Ctx)
	if err != nil {
		f.T.Fatal(err)
	}
	out := map[string]float64{}
	for _, verb := range statusWriteVerbs {
		n, err := framework.SumSamples(text, "apiserver_request_total",
			map[string]string{"group": "kubedispatch.io", "resource": "scaledjobs", "subresource": "status", "verb": verb})
		if err != nil {
			f.T.Fatalf("parsing the kube-apiserver's metrics: %v", err)
		}
		out[verb] = n
	}
	return out
}

func sum(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

// 300 idle ScaledJobs polled every 5 s (3,600 ticks a minute) write their status once, when they become Ready,
// and then not again while nothing changes: over 60 s the kube-apiserver counts fewer than 60 status writes.
// Most are cron triggers with a closed window (no I/O); 20 read one empty moto queue, so the test also proves that
// the dispatcher kept polling during the quiet minute.
func TestIdleScaledJobsDoNotWriteStatus(t *testing.T) {
	const (
		total    = 300
		sqsCount = 20
		poll     = 5
		window   = 60 * time.Second
		maxWrite = 60
	)
	f := framework.New(t)
	url := f.CreateQueue("idle", nil) // stays empty
	names := make([]string, 0, total)
	for i := range total {
		name := fmt.Sprintf("idle-%03d", i)
		b := framework.NewScaledJob(f, name).Poll(poll).RunFor("1s")
		if i < sqsCount {
			b.SQS(url, 1)
		} else {
			b.Trigger("cron", cronClosed(), nil)
		}
		b.Create()
		names = append(names, name)
	}
	d := startDispatcher(f)
	waitAllReady(f, d, names, 5*time.Minute)

	sqsReads := map[string]string{"type": "aws-sqs-queue"}
	reads := func() float64 {
		t.Helper()
		n, err := d.MetricSum("kubedispatch_trigger_read_duration_seconds_count", sqsReads)
		if err != nil {
			t.Fatalf("reading the dispatcher's metrics: %v", err)
		}
		return n
	}
	w0, r0 := statusWrites(f), reads()
	// Every ScaledJob wrote its status at least once to become Ready: this proves the counter is the right one.
	if sum(w0) < total {
		t.Fatalf("apiserver_request_total counts %.0f status writes of scaledjobs (%v) although %d ScaledJobs became Ready: the metric does not match", sum(w0), w0, total)
	}
	// The quiet minute: nothing is sent, nothing changes; only the counters are watched.
	quietPeriod(f, d, "idle ScaledJobs", window, func() error { return nil })
	w1, r1 := statusWrites(f), reads()
	delta := map[string]float64{}
	for _, verb := range statusWriteVerbs {
		delta[verb] = w1[verb] - w0[verb]
	}
	t.Logf("over %s with %d idle ScaledJobs: status writes by verb %v; %.0f SQS trigger reads", window, total, delta, r1-r0)

	// The dispatcher must have kept polling: the 20 SQS ScaledJobs read their queue every 5 s (at least half of
	// the 240 expected reads, for a slow machine).
	if minReads := float64(sqsCount * int(window.Seconds()) / poll / 2); r1-r0 < minReads {
		t.Fatalf("only %.0f SQS trigger reads in %s (want at least %.0f): the dispatcher did not keep polling, so the write count proves nothing", r1-r0, window, minReads)
	}
	if n := sum(delta); n >= maxWrite {
		t.Errorf("apiserver_request_total{resource=scaledjobs,subresource=status} writes grew by %.0f over %s (%v), want fewer than %d: idle ScaledJobs rewrite their status",
			n, window, delta, maxWrite)
	}
}
