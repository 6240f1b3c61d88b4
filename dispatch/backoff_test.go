package dispatch

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

func TestFailingJobsBackoff(t *testing.T) {
	at := func(s int) time.Time { return testNow.Add(time.Duration(s) * time.Second) }
	fail := func(s int) JobOutcome {
		return JobOutcome{At: at(s), Failed: true, Reason: "BackoffLimitExceeded: boom"}
	}
	ok := func(s int) JobOutcome { return JobOutcome{At: at(s)} }
	cases := map[string]struct {
		in   BackoffInputs
		want Backoff
	}{
		"no Jobs": {in: BackoffInputs{Now: at(0)}, want: Backoff{}},
		"two failures: below the threshold": {
			in:   BackoffInputs{Outcomes: []JobOutcome{fail(1), fail(2)}, Now: at(3), Unfinished: 0},
			want: Backoff{Consecutive: 2, LastReason: "BackoffLimitExceeded: boom"},
		},
		"three failures: wait the base delay": {
			in:   BackoffInputs{Outcomes: []JobOutcome{fail(3), fail(1), fail(2)}, Now: at(4), Unfinished: 0},
			want: Backoff{Active: true, RetryAt: at(13), Consecutive: 3, LastReason: "BackoffLimitExceeded: boom"},
		},
		"three failures, delay over: one probe": {
			in:   BackoffInputs{Outcomes: []JobOutcome{fail(1), fail(2), fail(3)}, Now: at(13), Unfinished: 0},
			want: Backoff{Active: true, Allowed: 1, Consecutive: 3, LastReason: "BackoffLimitExceeded: boom"},
		},
		"a Job still running: no probe": {
			in:   BackoffInputs{Outcomes: []JobOutcome{fail(1), fail(2), fail(3)}, Now: at(30), Unfinished: 1},
			want: Backoff{Active: true, Consecutive: 3, LastReason: "BackoffLimitExceeded: boom"},
		},
		"five failures: 40 s": {
			in:   BackoffInputs{Outcomes: []JobOutcome{fail(1), fail(2), fail(3), fail(4), fail(5)}, Now: at(6), Unfinished: 0},
			want: Backoff{Active: true, RetryAt: at(45), Consecutive: 5, LastReason: "BackoffLimitExceeded: boom"},
		},
		"capped at 5 minutes": {
			in: BackoffInputs{Outcomes: []JobOutcome{fail(1), fail(2), fail(3), fail(4), fail(5), fail(6), fail(7), fail(8), fail(9), fail(10)},
				Now: at(11), Unfinished: 0},
			want: Backoff{Active: true, RetryAt: at(310), Consecutive: 10, LastReason: "BackoffLimitExceeded: boom"},
		},
		"a success after the failures ends it": {
			in:   BackoffInputs{Outcomes: []JobOutcome{fail(1), fail(2), fail(3), ok(4)}, Now: at(5), Unfinished: 0},
			want: Backoff{},
		},
		"failures after a success count from it": {
			in:   BackoffInputs{Outcomes: []JobOutcome{fail(1), fail(2), ok(3), fail(4), fail(5)}, Now: at(6), Unfinished: 0},
			want: Backoff{Consecutive: 2, LastReason: "BackoffLimitExceeded: boom"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, FailingJobsBackoff(tc.in)); diff != "" {
				t.Errorf("FailingJobsBackoff (-want +got):\n%s", diff)
			}
		})
	}
}

// A template whose Jobs all fail and a backlog that stays: creation backs off instead of refilling every slot.
func TestReconcileBacksOffFailingJobs(t *testing.T) {
	sj := makeSJ("etl").max(5).obj()
	var objs []client.Object
	objs = append(objs, sj)
	for i := range 5 {
		objs = append(objs, makeJob(t, sj, fmt.Sprintf("etl-f%d", i)).failedAt(testNow.Add(-time.Duration(5-i)*time.Second)).obj())
	}
	env := newLoopEnv(t, interceptor.Funcs{}, objs...)
	env.sources.source(defaultTrigger).set(100, nil)

	res := env.mustReconcile("etl")
	if got := len(env.jobs()); got != 5 {
		t.Errorf("%d Jobs right after 5 failures, want the 5 failed ones and no new one", got)
	}
	ready := apimeta.FindStatusCondition(env.scaledJob("etl").Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil || ready.Reason != ReasonFailingJobsBackoff || !strings.Contains(ready.Message, "BackoffLimitExceeded") {
		t.Errorf("Ready = %+v, want reason %s naming the Jobs' failure", ready, ReasonFailingJobsBackoff)
	}
	if res.RequeueAfter <= 0 || res.RequeueAfter > 40*time.Second {
		t.Errorf("RequeueAfter = %v, want the time to the next probe (at most 40s)", res.RequeueAfter)
	}

	env.clock.Step(40 * time.Second)
	env.mustReconcile("etl")
	env.mustReconcile("etl")
	if got := len(env.jobs()); got != 6 {
		t.Errorf("%d Jobs after the back-off, want 6 (one probe, however often it ticks)", got)
	}
}
