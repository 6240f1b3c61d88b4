package dispatch

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/kubedispatch/kubedispatch/sources"
)

func TestEndpointBackoff(t *testing.T) {
	cases := map[int]time.Duration{0: 0, 1: 0, 2: time.Second, 3: 2 * time.Second, 4: 4 * time.Second, 6: 16 * time.Second, 7: 30 * time.Second, 50: 30 * time.Second}
	for failures, want := range cases {
		t.Run(fmt.Sprint(failures), func(t *testing.T) {
			if diff := cmp.Diff(want, EndpointBackoff(failures)); diff != "" {
				t.Errorf("EndpointBackoff(%d) (-want +got):\n%s", failures, diff)
			}
		})
	}
}

func TestEndpointBackoffSpacesOutOnlyItsEndpoint(t *testing.T) {
	b := newEndpointBackoff()
	for range 3 {
		b.record("sqs:dead", testNow, true)
	}
	b.record("sqs:alive", testNow, false)
	if wait, _ := b.wait("sqs:dead", testNow); wait != 2*time.Second {
		t.Errorf("dead endpoint waits %v after 3 failures, want 2s", wait)
	}
	if wait, _ := b.wait("sqs:alive", testNow); wait != 0 {
		t.Errorf("healthy endpoint waits %v, want 0", wait)
	}
	b.record("sqs:dead", testNow.Add(3*time.Second), false)
	if wait, _ := b.wait("sqs:dead", testNow.Add(3*time.Second)); wait != 0 {
		t.Errorf("a success does not reset the back-off: waits %v", wait)
	}
}

func TestNeedsReresolve(t *testing.T) {
	refused := fmt.Errorf("reading queue: %w: InvalidClientTokenId", sources.ErrUnauthorized)
	cases := map[string]struct {
		res  pollResult
		want bool
	}{
		"all fine":               {res: pollResult{triggers: []triggerResult{{}}}},
		"transient error":        {res: pollResult{triggers: []triggerResult{{err: errors.New("timeout")}}}},
		"key refused by a queue": {res: pollResult{triggers: []triggerResult{{}, {err: refused}}}, want: true},
		"setup refused":          {res: pollResult{setupErr: refused}, want: true},
		// A failed resolution (after an edit, say) resolves again at the next poll rather than reading with the
		// sources built before it.
		"resolution failed transiently": {res: pollResult{setupErr: errors.New("reading Secret x/y: timeout")}, want: true},
		"configuration refused":         {res: pollResult{setupErr: sources.ConfigErrorf("authenticationRef", "not allowed")}, want: true},
		"invalid spec":                  {res: pollResult{setupErr: errInvalidSpec}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := needsReresolve(tc.res); got != tc.want {
				t.Errorf("needsReresolve = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPollersFinishedAfterForgetsFinishesALaterReadingReflects(t *testing.T) {
	env := newLoopEnv(t, interceptor.Funcs{})
	env.r.init()
	p := env.r.pollers
	key := testNamespace + "/etl"
	p.running[key] = &poller{cancel: func() {}, refresh: make(chan struct{}, 1)} // as Ensure would, without starting the goroutine

	p.store(key, pollResult{readAt: testNow})
	p.Refresh(key, "etl-a", testNow.Add(time.Second))
	p.Refresh(key, "etl-b", testNow.Add(2*time.Second))
	steps := []struct {
		readAt time.Time
		want   int64
	}{
		{readAt: testNow, want: 2},                      // both finished after this reading
		{readAt: testNow.Add(time.Second), want: 1},     // a reading started when etl-a was seen finishing counts it
		{readAt: testNow.Add(3 * time.Second), want: 0}, // a later reading reflects both
	}
	for _, s := range steps {
		if got := p.FinishedAfter(key, s.readAt); got != s.want {
			t.Errorf("FinishedAfter(reading at +%s) = %d, want %d", s.readAt.Sub(testNow), got, s.want)
		}
	}
	p.store(key, pollResult{readAt: testNow.Add(time.Second)})
	if got := len(p.finished[key]); got != 1 {
		t.Errorf("after storing a reading taken when etl-a finished, %d finishes are kept, want 1 (etl-b)", got)
	}
	p.Stop(key)
	if got := p.FinishedAfter(key, testNow); got != 0 {
		t.Errorf("after Stop, FinishedAfter = %d, want 0", got)
	}
}

// A Job finishing wakes its ScaledJob before the poller's next reading is in. That tick decides on the older
// reading, which still counts the finished Job's message, so it must count the Job as running: no wasted Job, no
// waiting. The fresh reading then decides the refill.
func TestReconcileCountsJobsFinishedAfterTheReadingAsRunning(t *testing.T) {
	env := newLoopEnv(t, interceptor.Funcs{}, makeSJ("etl").max(10).obj())
	env.sources.source(defaultTrigger).set(3, nil)
	env.mustReconcile("etl")
	jobs := env.jobs()
	if len(jobs) != 3 {
		t.Fatalf("first tick: got %d Jobs, want 3", len(jobs))
	}
	// Let the pollers accept Refresh for this ScaledJob, as Ensure does once they run.
	key := testNamespace + "/etl"
	env.r.pollers.running[key] = &poller{generation: 1, cancel: func() {}, refresh: make(chan struct{}, 1)}

	// One Job completes (its worker deleted its message: the queue now holds 2), seen after the last reading.
	env.clock.Step(time.Second)
	done := jobs[0].DeepCopy()
	fixture := &jobFixture{j: done}
	fixture.completeAt(env.clock.Now())
	if err := env.raw.Update(context.Background(), fixture.obj()); err != nil {
		t.Fatal(err)
	}
	env.r.pollers.Refresh(key, done.Name, env.clock.Now())
	env.sources.source(defaultTrigger).set(2, nil)

	ctx := context.Background()
	nn := types.NamespacedName{Namespace: testNamespace, Name: "etl"}
	if _, err := env.r.Reconcile(ctx, ctrl.Request{NamespacedName: nn}); err != nil { // no new reading
		t.Fatal(err)
	}
	if got := len(env.jobs()); got != 3 {
		t.Errorf("tick on the reading from before the finish: %d Jobs, want still 3 (the reading counts the finished Job's message)", got)
	}
	env.clock.Step(time.Second)
	env.r.pollers.PollNow(ctx, env.scaledJob("etl"))
	if _, err := env.r.Reconcile(ctx, ctrl.Request{NamespacedName: nn}); err != nil {
		t.Fatal(err)
	}
	if got := len(env.jobs()); got != 3 {
		t.Errorf("tick on the fresh reading (2 messages, 2 running): %d Jobs, want 3", got)
	}
	if got := env.r.pollers.FinishedAfter(key, testNow); got != 0 {
		t.Errorf("the fresh reading should have cleared the recorded finish; FinishedAfter = %d", got)
	}
}
