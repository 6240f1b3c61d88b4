package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/sources"
)

var (
	readyTrue = conditionSummary{Status: metav1.ConditionTrue, Reason: "TriggersHealthy"}
	jobsGR    = schema.GroupResource{Group: "batch", Resource: "jobs"}
)

func TestReconcileCreatesJobsForBacklog(t *testing.T) {
	sj := makeSJ("etl").max(10).poll(15).generation(3).obj()
	env := newLoopEnv(t, interceptor.Funcs{}, sj)
	env.sources.source(defaultTrigger).set(5, nil)

	res := env.mustReconcile("etl")

	// The poller wakes the ScaledJob every poll; the requeue is a safety net at 2 x pollingInterval + 1s.
	if diff := cmp.Diff(ctrl.Result{RequeueAfter: 31 * time.Second}, res); diff != "" {
		t.Errorf("Result (-want +got):\n%s", diff)
	}
	jobs := env.jobs()
	if len(jobs) != 5 {
		t.Fatalf("got %d Jobs, want 5: %v", len(jobs), env.jobNames())
	}
	wantOwner := []metav1.OwnerReference{{
		APIVersion: "kubedispatch.io/v1alpha1", Kind: "ScaledJob", Name: "etl", UID: "uid-etl",
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}}
	for _, j := range jobs {
		if diff := cmp.Diff(wantOwner, j.OwnerReferences); diff != "" {
			t.Errorf("Job %s owner references (-want +got):\n%s", j.Name, diff)
		}
		if got := j.Labels[v1alpha1.LabelScaledJob]; got != "etl" {
			t.Errorf("Job %s label %s = %q, want etl", j.Name, v1alpha1.LabelScaledJob, got)
		}
		if got := j.Annotations[v1alpha1.AnnotationGeneration]; got != "3" {
			t.Errorf("Job %s annotation %s = %q, want 3", j.Name, v1alpha1.AnnotationGeneration, got)
		}
		if !strings.HasPrefix(j.Name, "etl-") {
			t.Errorf("Job name %q, want prefix etl-", j.Name)
		}
	}

	got := env.scaledJob("etl")
	type statusSummary struct {
		Active, Pending    int32
		JobsCreated        int32
		ObservedGeneration int64
		Ready, ActiveCond  conditionSummary
		Triggers           []v1alpha1.TriggerStatus
	}
	ready, _ := condition(got, v1alpha1.ConditionReady)
	activeCond, _ := condition(got, v1alpha1.ConditionActive)
	sampled := metav1.NewTime(testNow)
	want := statusSummary{
		Active: 5, Pending: 5, JobsCreated: 5, ObservedGeneration: 3,
		Ready:      readyTrue,
		ActiveCond: conditionSummary{Status: metav1.ConditionTrue, Reason: "BacklogPresent"},
		Triggers:   []v1alpha1.TriggerStatus{{Name: defaultTrigger, Type: fakeType, Backlog: "5", Target: "1", Active: true, SampledAt: &sampled}},
	}
	if got.Status.LastDecision == nil {
		t.Fatal("status.lastDecision is nil")
	}
	gotSummary := statusSummary{
		Active: got.Status.Active, Pending: got.Status.Pending, JobsCreated: got.Status.LastDecision.JobsCreated,
		ObservedGeneration: got.Status.ObservedGeneration, Ready: ready, ActiveCond: activeCond, Triggers: got.Status.Triggers,
	}
	if diff := cmp.Diff(want, gotSummary); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	if got.Status.LastDispatchTime == nil || !got.Status.LastDispatchTime.Time.Equal(testNow) {
		t.Errorf("status.lastDispatchTime = %v, want %v", got.Status.LastDispatchTime, testNow)
	}
	if diff := cmp.Diff([]string{"Normal JobsCreated Created 5 Job(s)"}, env.drainEvents()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(env.r.Metrics.JobsCreated.WithLabelValues(testNamespace, "etl")); got != 5 {
		t.Errorf("jobs created metric = %v, want 5", got)
	}
}

func TestReconcileJobCount(t *testing.T) {
	base := makeSJ("etl").max(10)
	running := func(t *testing.T, n int) []client.Object {
		var out []client.Object
		for i := range n {
			out = append(out, makeJob(t, base.obj(), "etl-running-"+string(rune('a'+i))).obj())
		}
		return out
	}
	cases := map[string]struct {
		sj        *v1alpha1.ScaledJob
		backlog   float64
		running   int
		finished  int
		wantNew   int
		wantReady conditionSummary
	}{
		"backlog 5, nothing running":    {sj: base.obj(), backlog: 5, wantNew: 5},
		"backlog 50 capped at max 10":   {sj: base.obj(), backlog: 50, wantNew: 10},
		"backlog 50, max 10, 4 running": {sj: base.obj(), backlog: 50, running: 4, wantNew: 6},
		"backlog 50, max 10, 4 running, 3 finished Jobs do not count": {
			sj: base.obj(), backlog: 50, running: 4, finished: 3, wantNew: 6,
		},
		"backlog 3, 4 running (default strategy)": {sj: base.obj(), backlog: 3, running: 4, wantNew: 0},
		"accurate: backlog 3, 4 running, all pending": {
			sj: makeSJ("etl").max(10).strategy("accurate").obj(), backlog: 3, running: 4, wantNew: 0,
		},
		"accurate: backlog 50, 4 running": {
			sj: makeSJ("etl").max(10).strategy("accurate").obj(), backlog: 50, running: 4, wantNew: 6,
		},
		"no backlog": {sj: base.obj(), backlog: 0, wantNew: 0},
		"minReplicaCount fills the baseline without backlog": {
			sj: makeSJ("etl").min(2).max(10).obj(), backlog: 0, wantNew: 2,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			objs := append([]client.Object{tc.sj}, running(t, tc.running)...)
			for i := range tc.finished {
				objs = append(objs, makeJob(t, tc.sj, "etl-done-"+string(rune('a'+i))).completeAt(testNow.Add(-time.Minute)).obj())
			}
			env := newLoopEnv(t, interceptor.Funcs{}, objs...)
			env.sources.source(defaultTrigger).set(tc.backlog, nil)

			env.mustReconcile("etl")

			if got, want := len(env.jobs()), tc.running+tc.finished+tc.wantNew; got != want {
				t.Errorf("got %d Jobs, want %d (%d new)", got, want, tc.wantNew)
			}
			sj := env.scaledJob("etl")
			if got := sj.Status.LastDecision.JobsCreated; got != int32(tc.wantNew) {
				t.Errorf("status.lastDecision.jobsCreated = %d, want %d (reason %q)", got, tc.wantNew, sj.Status.LastDecision.Reason)
			}
			if got, want := sj.Status.Active, int32(tc.running+tc.wantNew); got != want {
				t.Errorf("status.active = %d, want %d", got, want)
			}
			if got, want := sj.Status.Succeeded, int32(tc.finished); got != want {
				t.Errorf("status.succeeded = %d, want %d", got, want)
			}
			if ready, _ := condition(sj, v1alpha1.ConditionReady); ready != readyTrue {
				t.Errorf("Ready = %+v, want %+v", ready, readyTrue)
			}
		})
	}
}

// hideJobs makes List return no Jobs while hide is set: an informer cache that has not seen the creations yet.
func hideJobs(hide *atomic.Bool) interceptor.Funcs {
	return interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if err := c.List(ctx, list, opts...); err != nil {
				return err
			}
			if jl, ok := list.(*batchv1.JobList); ok && hide.Load() {
				jl.Items = nil
			}
			return nil
		},
	}
}

func TestReconcileCountsOwnCreationsTheCacheDoesNotShowYet(t *testing.T) {
	var hide atomic.Bool
	env := newLoopEnv(t, hideJobs(&hide), makeSJ("etl").max(10).obj())
	env.sources.source(defaultTrigger).set(5, nil)

	env.mustReconcile("etl")
	if got := len(env.jobs()); got != 5 {
		t.Fatalf("first tick: got %d Jobs, want 5", got)
	}

	// The cache is stale: it shows none of the 5 Jobs. The loop must count them itself.
	hide.Store(true)
	env.clock.Step(time.Second)
	env.mustReconcile("etl")
	if got := len(env.jobs()); got != 5 {
		t.Errorf("second tick on a stale cache: got %d Jobs, want still 5", got)
	}
	sj := env.scaledJob("etl")
	if sj.Status.Active != 5 || sj.Status.LastDecision.JobsCreated != 0 {
		t.Errorf("second tick: status.active = %d, lastDecision.jobsCreated = %d; want 5 and 0 (reason %q)",
			sj.Status.Active, sj.Status.LastDecision.JobsCreated, sj.Status.LastDecision.Reason)
	}

	// Contrast: a Reconciler without that memory (a restarted dispatcher) trusts the stale cache. This shows the
	// interceptor really hides the Jobs.
	fresh := env.newReconciler()
	fresh.init()
	fresh.pollers.PollNow(context.Background(), sj)
	if _, err := fresh.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(sj)}); err != nil {
		t.Fatal(err)
	}
	if got := len(env.jobs()); got != 10 {
		t.Errorf("a Reconciler without expectations on a stale cache: got %d Jobs, want 10", got)
	}

	// The cache catches up: the original Reconciler sees all 10 and creates nothing.
	hide.Store(false)
	env.clock.Step(time.Second)
	env.mustReconcile("etl")
	if got := len(env.jobs()); got != 10 {
		t.Errorf("after the cache caught up: got %d Jobs, want 10", got)
	}
	if sj := env.scaledJob("etl"); sj.Status.Active != 10 {
		t.Errorf("after the cache caught up: status.active = %d, want 10", sj.Status.Active)
	}
}

func TestReconcileExpectationsExpire(t *testing.T) {
	// A Job whose creation the API server accepted but which the cache never shows (deleted at once) must not
	// block the ScaledJob forever: the expectation expires.
	var hide atomic.Bool
	hide.Store(true)
	env := newLoopEnv(t, hideJobs(&hide), makeSJ("etl").max(10).obj())
	env.sources.source(defaultTrigger).set(3, nil)

	env.mustReconcile("etl")
	env.clock.Step(time.Minute)
	env.mustReconcile("etl")
	if got := len(env.jobs()); got != 3 {
		t.Fatalf("within the expectation TTL: got %d Jobs, want 3", got)
	}
	env.clock.Step(2 * time.Minute)
	env.mustReconcile("etl")
	if got := len(env.jobs()); got != 6 {
		t.Errorf("after the expectation TTL: got %d Jobs, want 6", got)
	}
}

func TestReconcileTriggerErrorCreatesNothing(t *testing.T) {
	readErr := errors.New("connection reset by peer")
	env := newLoopEnv(t, interceptor.Funcs{}, makeSJ("etl").max(10).obj())
	env.sources.source(defaultTrigger).set(0, readErr)

	_, err := env.reconcile("etl")

	if !errors.Is(err, readErr) {
		t.Fatalf("Reconcile error = %v, want one wrapping %v", err, readErr)
	}
	if names := env.jobNames(); len(names) != 0 {
		t.Errorf("Jobs created on a failed trigger read: %v", names)
	}
	sj := env.scaledJob("etl")
	ready, msg := condition(sj, v1alpha1.ConditionReady)
	if diff := cmp.Diff(conditionSummary{Status: metav1.ConditionFalse, Reason: ReasonTriggerError}, ready); diff != "" {
		t.Errorf("Ready (-want +got):\n%s", diff)
	}
	for _, want := range []string{"trigger queue", "spec.triggers[0]", "connection reset by peer"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Ready message %q does not contain %q", msg, want)
		}
	}
	if len(sj.Status.Triggers) != 1 || !strings.Contains(sj.Status.Triggers[0].LastError, "connection reset by peer") {
		t.Errorf("status.triggers = %+v, want triggers[0].lastError set", sj.Status.Triggers)
	}
	if evs := eventsWithReason(env.drainEvents(), corev1.EventTypeWarning, ReasonTriggerError); len(evs) != 1 {
		t.Errorf("got %d TriggerError warnings, want 1: %v", len(evs), evs)
	}

	// The same failure again: no new event.
	env.clock.Step(time.Second)
	if _, err := env.reconcile("etl"); err == nil {
		t.Error("second failing tick: Reconcile returned no error")
	}
	if evs := env.drainEvents(); len(evs) != 0 {
		t.Errorf("repeated failure emitted events again: %v", evs)
	}

	// The trigger recovers.
	env.sources.source(defaultTrigger).set(2, nil)
	env.clock.Step(time.Second)
	env.mustReconcile("etl")
	if got := len(env.jobs()); got != 2 {
		t.Errorf("after recovery: got %d Jobs, want 2", got)
	}
	sj = env.scaledJob("etl")
	if ready, _ := condition(sj, v1alpha1.ConditionReady); ready != readyTrue {
		t.Errorf("after recovery: Ready = %+v, want %+v", ready, readyTrue)
	}
	if sj.Status.Triggers[0].LastError != "" {
		t.Errorf("after recovery: triggers[0].lastError = %q, want empty", sj.Status.Triggers[0].LastError)
	}
}

func TestReconcileOneFailedTriggerOfSeveralCreatesNothing(t *testing.T) {
	sj := makeSJ("etl").max(10).triggers(
		v1alpha1.ScaleTrigger{Type: fakeType, Name: "orders"},
		v1alpha1.ScaleTrigger{Type: fakeType, Name: "refunds"},
	).obj()
	env := newLoopEnv(t, interceptor.Funcs{}, sj)
	// A first, successful tick leaves readings in status.
	env.sources.source("orders").set(8, nil)
	env.sources.source("refunds").set(1, nil)
	env.mustReconcile("etl")
	if got := len(env.jobs()); got != 8 {
		t.Fatalf("first tick: got %d Jobs, want 8", got)
	}

	env.sources.source("orders").set(20, nil)
	env.sources.source("refunds").set(0, errors.New("throttled"))
	env.clock.Step(time.Second)
	if _, err := env.reconcile("etl"); err == nil {
		t.Error("Reconcile returned no error")
	}
	if got := len(env.jobs()); got != 8 {
		t.Errorf("got %d Jobs, want still 8: one trigger failed, so nothing is decided", got)
	}
	got := env.scaledJob("etl").Status.Triggers
	if len(got) != 2 {
		t.Fatalf("status.triggers = %+v, want 2 entries", got)
	}
	if got[0].Backlog != "20" || got[0].LastError != "" {
		t.Errorf("triggers[0] = %+v, want backlog 20 and no error", got[0])
	}
	if got[1].Backlog != "1" || !strings.Contains(got[1].LastError, "throttled") {
		t.Errorf("triggers[1] = %+v, want the previous backlog 1 kept and lastError throttled", got[1])
	}
}

func TestReconcileListErrorCreatesNothing(t *testing.T) {
	listErr := apierrors.NewServiceUnavailable("etcd leader changed")
	cases := map[string]struct {
		fail func(client.ObjectList) bool
	}{
		"jobs": {fail: func(l client.ObjectList) bool { _, ok := l.(*batchv1.JobList); return ok }},
		"pods": {fail: func(l client.ObjectList) bool { _, ok := l.(*corev1.PodList); return ok }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			funcs := interceptor.Funcs{
				List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
					if tc.fail(list) {
						return listErr
					}
					return c.List(ctx, list, opts...)
				},
			}
			sj := makeSJ("etl").max(10).history(0, 0).obj()
			done := makeJob(t, sj, "etl-done").completeAt(testNow.Add(-time.Hour)).obj()
			env := newLoopEnv(t, funcs, sj, done)
			env.sources.source(defaultTrigger).set(5, nil)

			_, err := env.reconcile("etl")

			if !errors.Is(err, listErr) {
				t.Errorf("Reconcile error = %v, want one wrapping %v", err, listErr)
			}
			if diff := cmp.Diff([]string{"etl-done"}, env.jobNames()); diff != "" {
				t.Errorf("Jobs (-want +got): nothing created, nothing pruned\n%s", diff)
			}
			// The trigger is read by its poller whatever the Job list does; the decision is what waits.
			ready, _ := condition(env.scaledJob("etl"), v1alpha1.ConditionReady)
			if diff := cmp.Diff(conditionSummary{Status: metav1.ConditionFalse, Reason: ReasonJobListError}, ready); diff != "" {
				t.Errorf("Ready (-want +got):\n%s", diff)
			}
			if evs := eventsWithReason(env.drainEvents(), corev1.EventTypeWarning, ReasonJobListError); len(evs) != 1 {
				t.Errorf("got %d JobListError warnings, want 1: %v", len(evs), evs)
			}
		})
	}
}

func TestReconcileInvalidSpec(t *testing.T) {
	cases := map[string]struct {
		sj        *v1alpha1.ScaledJob
		wantField string
		fix       func(*v1alpha1.ScaledJob)
	}{
		"min above max": {
			sj:        makeSJ("etl").min(5).max(2).obj(),
			wantField: "spec.minReplicaCount",
			fix: func(sj *v1alpha1.ScaledJob) {
				sj.Spec.MinReplicaCount, sj.Spec.MaxReplicaCount = nil, ptr.To[int32](10)
			},
		},
		"no container": {
			sj: makeSJ("etl").max(10).mutate(func(sj *v1alpha1.ScaledJob) {
				sj.Spec.JobTargetRef.Template.Spec.Containers = nil
			}).obj(),
			wantField: "spec.jobTargetRef.template.spec.containers",
			fix: func(sj *v1alpha1.ScaledJob) {
				sj.Spec.JobTargetRef.Template.Spec.Containers = []corev1.Container{{Name: "w", Image: "w:1"}}
			},
		},
		"custom strategy without percentage": {
			sj:        makeSJ("etl").max(10).strategy("custom").obj(),
			wantField: "spec.scalingStrategy.customScalingRunningJobPercentage",
			fix:       func(sj *v1alpha1.ScaledJob) { sj.Spec.ScalingStrategy.CustomScalingRunningJobPercentage = "0" },
		},
		"metricType set": {
			sj: makeSJ("etl").max(10).mutate(func(sj *v1alpha1.ScaledJob) {
				sj.Spec.Triggers[0].MetricType = "AverageValue"
			}).obj(),
			wantField: "spec.triggers[0].metricType",
			fix:       func(sj *v1alpha1.ScaledJob) { sj.Spec.Triggers[0].MetricType = "" },
		},
		"pod template label value of 64 characters": {
			sj: makeSJ("etl").max(10).mutate(func(sj *v1alpha1.ScaledJob) {
				sj.Spec.JobTargetRef.Template.Labels = map[string]string{"team": strings.Repeat("t", 64)}
			}).obj(),
			wantField: "spec.jobTargetRef.template.metadata.labels[team]",
			fix:       func(sj *v1alpha1.ScaledJob) { sj.Spec.JobTargetRef.Template.Labels["team"] = "pdf" },
		},
		"trigger named like the unnamed trigger next to it": {
			sj: makeSJ("etl").max(10).mutate(func(sj *v1alpha1.ScaledJob) {
				sj.Spec.Triggers = append(sj.Spec.Triggers, *sj.Spec.Triggers[0].DeepCopy())
				sj.Spec.Triggers[0].Name = fakeType + "[1]"
				sj.Spec.Triggers[1].Name = ""
			}).obj(),
			wantField: "spec.triggers[1].name: Duplicate value",
			fix: func(sj *v1alpha1.ScaledJob) {
				sj.Spec.Triggers = sj.Spec.Triggers[:1]
				sj.Spec.Triggers[0].Name = defaultTrigger
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			env := newLoopEnv(t, interceptor.Funcs{}, tc.sj)
			env.sources.source(defaultTrigger).set(3, nil)

			if _, err := env.reconcile("etl"); err != nil {
				t.Errorf("Reconcile = %v, want no error: an invalid spec waits for an edit", err)
			}

			if names := env.jobNames(); len(names) != 0 {
				t.Errorf("Jobs created for an invalid spec: %v", names)
			}
			if n := len(env.sources.builds()); n != 0 {
				t.Errorf("sources built %d times for an invalid spec, want 0", n)
			}
			sj := env.scaledJob("etl")
			ready, msg := condition(sj, v1alpha1.ConditionReady)
			if diff := cmp.Diff(conditionSummary{Status: metav1.ConditionFalse, Reason: ReasonInvalidSpec}, ready); diff != "" {
				t.Errorf("Ready (-want +got):\n%s", diff)
			}
			if !strings.Contains(msg, tc.wantField) {
				t.Errorf("Ready message %q does not name %s", msg, tc.wantField)
			}
			if got := testutil.ToFloat64(env.r.Metrics.ScaledJobInvalid.WithLabelValues(testNamespace, "etl")); got != 1 {
				t.Errorf("invalid metric = %v, want 1", got)
			}
			if evs := eventsWithReason(env.drainEvents(), corev1.EventTypeWarning, ReasonInvalidSpec); len(evs) != 1 {
				t.Errorf("got %d InvalidSpec warnings, want 1: %v", len(evs), evs)
			}

			env.update("etl", tc.fix)
			env.clock.Step(time.Second)
			env.mustReconcile("etl")

			if got := len(env.jobs()); got != 3 {
				t.Errorf("after the fix: got %d Jobs, want 3", got)
			}
			if ready, _ := condition(env.scaledJob("etl"), v1alpha1.ConditionReady); ready != readyTrue {
				t.Errorf("after the fix: Ready = %+v, want %+v", ready, readyTrue)
			}
			if got := testutil.ToFloat64(env.r.Metrics.ScaledJobInvalid.WithLabelValues(testNamespace, "etl")); got != 0 {
				t.Errorf("after the fix: invalid metric = %v, want 0", got)
			}
		})
	}
}

func TestReconcileInvalidTrigger(t *testing.T) {
	twoTriggers := func(second v1alpha1.ScaleTrigger) *v1alpha1.ScaledJob {
		return makeSJ("etl").max(10).triggers(v1alpha1.ScaleTrigger{Type: fakeType, Name: "orders"}, second).obj()
	}
	cases := map[string]struct {
		sj        *v1alpha1.ScaledJob
		setup     func(*fakeSources)
		objs      []client.Object
		wantField string
		wantText  string
	}{
		"unknown trigger type": {
			sj:        twoTriggers(v1alpha1.ScaleTrigger{Type: "rabbitmq"}),
			wantField: "spec.triggers[1].type",
			wantText:  `unknown trigger type "rabbitmq"`,
		},
		"factory rejects the metadata": {
			sj: twoTriggers(v1alpha1.ScaleTrigger{Type: fakeType, Name: "refunds"}),
			setup: func(f *fakeSources) {
				f.source("refunds").buildErr = sources.ConfigErrorf("metadata.queueURL", "is required")
			},
			wantField: "spec.triggers[1].metadata.queueURL",
			wantText:  "is required",
		},
		"reading reports a configuration error": {
			sj: twoTriggers(v1alpha1.ScaleTrigger{Type: fakeType, Name: "refunds"}),
			setup: func(f *fakeSources) {
				f.source("refunds").set(0, sources.ConfigErrorf("metadata.queueLength", "must be positive"))
			},
			wantField: "spec.triggers[1].metadata.queueLength",
			wantText:  "must be positive",
		},
		"missing TriggerAuthentication": {
			sj: twoTriggers(v1alpha1.ScaleTrigger{Type: fakeType, Name: "refunds",
				AuthenticationRef: &v1alpha1.AuthenticationRef{Name: "nowhere"}}),
			wantField: "spec.triggers[1].authenticationRef.name",
			wantText:  `TriggerAuthentication "nowhere" not found`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			env := newLoopEnv(t, interceptor.Funcs{}, append([]client.Object{tc.sj}, tc.objs...)...)
			env.sources.source("orders").set(4, nil)
			if tc.setup != nil {
				tc.setup(env.sources)
			}

			if _, err := env.reconcile("etl"); err != nil {
				t.Errorf("Reconcile = %v, want no error: a configuration error waits for an edit", err)
			}

			if names := env.jobNames(); len(names) != 0 {
				t.Errorf("Jobs created despite an invalid trigger: %v", names)
			}
			sj := env.scaledJob("etl")
			ready, msg := condition(sj, v1alpha1.ConditionReady)
			if diff := cmp.Diff(conditionSummary{Status: metav1.ConditionFalse, Reason: "InvalidTrigger"}, ready); diff != "" {
				t.Errorf("Ready (-want +got):\n%s", diff)
			}
			for _, want := range []string{tc.wantField, tc.wantText} {
				if !strings.Contains(msg, want) {
					t.Errorf("Ready message %q does not contain %q", msg, want)
				}
			}
			if len(sj.Status.Triggers) != 2 || !strings.Contains(sj.Status.Triggers[1].LastError, tc.wantText) {
				t.Errorf("status.triggers = %+v, want triggers[1].lastError containing %q", sj.Status.Triggers, tc.wantText)
			}
			if evs := eventsWithReason(env.drainEvents(), corev1.EventTypeWarning, ReasonTriggerError); len(evs) != 1 {
				t.Errorf("got %d TriggerError warnings, want 1: %v", len(evs), evs)
			}
			if got := testutil.ToFloat64(env.r.Metrics.ScaledJobInvalid.WithLabelValues(testNamespace, "etl")); got != 1 {
				t.Errorf("invalid metric = %v, want 1", got)
			}
		})
	}
}

func TestReconcileInvalidTriggerStatusNamesFieldOnce(t *testing.T) {
	// status.triggers[i].lastError of a configuration error is "<spec path>: <detail>", without the trigger-relative
	// field repeated after the path.
	sj := makeSJ("etl").max(10).triggers(v1alpha1.ScaleTrigger{Type: "rabbitmq"}).obj()
	env := newLoopEnv(t, interceptor.Funcs{}, sj)

	env.mustReconcile("etl")

	got := env.scaledJob("etl").Status.Triggers
	want := `spec.triggers[0].type: unknown trigger type "rabbitmq" (known types: fake-queue)`
	if len(got) != 1 || got[0].LastError != want {
		t.Errorf("status.triggers = %+v, want lastError %q", got, want)
	}
}

func TestReconcileSecretReference(t *testing.T) {
	const secretValue = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYzz9"
	sj := makeSJ("etl").max(10).authRef("sqs-auth").obj()
	ta := triggerAuth("sqs-auth", "awsSecretAccessKey", "sqs-creds", "secret")
	env := newLoopEnv(t, interceptor.Funcs{}, sj, ta)
	env.sources.source(defaultTrigger).set(2, nil)

	// The Secret does not exist yet.
	if _, err := env.reconcile("etl"); err != nil {
		t.Errorf("Reconcile = %v, want no error", err)
	}
	if names := env.jobNames(); len(names) != 0 {
		t.Errorf("Jobs created without credentials: %v", names)
	}
	ready, msg := condition(env.scaledJob("etl"), v1alpha1.ConditionReady)
	if ready.Status != metav1.ConditionFalse || !strings.Contains(msg, `Secret "sqs-creds" not found`) {
		t.Errorf("Ready = %+v %q, want False naming Secret sqs-creds", ready, msg)
	}
	allEvents := env.drainEvents()

	// Creating the Secret recovers on the next tick.
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sqs-creds", Namespace: testNamespace},
		Data:       map[string][]byte{"secret": []byte(secretValue)},
	}
	if err := env.raw.Create(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	env.clock.Step(time.Second)
	env.mustReconcile("etl")

	if got := len(env.jobs()); got != 2 {
		t.Errorf("after creating the Secret: got %d Jobs, want 2", got)
	}
	got := env.scaledJob("etl")
	if ready, _ := condition(got, v1alpha1.ConditionReady); ready != readyTrue {
		t.Errorf("after creating the Secret: Ready = %+v, want %+v", ready, readyTrue)
	}
	builds := env.sources.builds()
	if len(builds) != 1 || builds[0].AuthParams["awsSecretAccessKey"] != secretValue {
		t.Errorf("sources built with %+v, want one build with the Secret's value as awsSecretAccessKey", builds)
	}

	// Rotating the Secret rebuilds the source and closes the old one.
	secret.Data["secret"] = []byte(secretValue + "-rotated")
	if err := env.raw.Update(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	env.clock.Step(time.Second)
	env.mustReconcile("etl")
	if builds := env.sources.builds(); len(builds) != 2 || builds[1].AuthParams["awsSecretAccessKey"] != secretValue+"-rotated" {
		t.Errorf("after rotation: sources built %d times, want 2 with the rotated value", len(builds))
	}
	if _, closed := env.sources.source(defaultTrigger).stats(); closed != 1 {
		t.Errorf("after rotation: old source closed %d times, want 1", closed)
	}

	// The value never shows in status, conditions or events.
	allEvents = append(allEvents, env.drainEvents()...)
	b, err := json.Marshal(env.scaledJob("etl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, where := range []string{string(b), strings.Join(allEvents, "\n")} {
		if strings.Contains(where, secretValue) {
			t.Errorf("the Secret's value leaked into %s", where)
		}
	}
}

func TestReconcileCreateFailures(t *testing.T) {
	var creates atomic.Int64
	funcs := interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*batchv1.Job); ok && creates.Add(1)%2 == 0 {
				return apierrors.NewForbidden(jobsGR, obj.GetName(),
					errors.New("exceeded quota: team-a-quota, requested: count/jobs.batch=1, used: count/jobs.batch=3, limited: count/jobs.batch=3"))
			}
			return c.Create(ctx, obj, opts...)
		},
	}
	env := newLoopEnv(t, funcs, makeSJ("etl").max(10).obj())
	env.sources.source(defaultTrigger).set(6, nil)

	res, err := env.reconcile("etl")
	if err != nil {
		t.Errorf("Reconcile = %v, want no error (creation errors wait for the next poll)", err)
	}
	if res.RequeueAfter != 61*time.Second {
		t.Errorf("RequeueAfter = %v, want the safety net 2 x the default polling interval + 1s", res.RequeueAfter)
	}

	if got := len(env.jobs()); got != 3 {
		t.Errorf("got %d Jobs, want 3 (every second create refused)", got)
	}
	sj := env.scaledJob("etl")
	ready, msg := condition(sj, v1alpha1.ConditionReady)
	if diff := cmp.Diff(conditionSummary{Status: metav1.ConditionFalse, Reason: ReasonJobCreateFailed}, ready); diff != "" {
		t.Errorf("Ready (-want +got):\n%s", diff)
	}
	if !strings.Contains(msg, "exceeded quota") {
		t.Errorf("Ready message %q does not carry the API error", msg)
	}
	if sj.Status.LastDecision.JobsCreated != 3 || sj.Status.Active != 3 {
		t.Errorf("status.lastDecision.jobsCreated = %d, active = %d; want 3 and 3", sj.Status.LastDecision.JobsCreated, sj.Status.Active)
	}
	evs := env.drainEvents()
	if diff := cmp.Diff([]string{"Normal JobsCreated Created 3 Job(s)"}, eventsWithReason(evs, corev1.EventTypeNormal, ReasonJobsCreated)); diff != "" {
		t.Errorf("JobsCreated events (-want +got):\n%s", diff)
	}
	warnings := eventsWithReason(evs, corev1.EventTypeWarning, ReasonJobCreateFailed)
	if len(warnings) == 0 || !strings.Contains(warnings[0], "exceeded quota") {
		t.Errorf("JobCreateFailed warnings = %v, want at least one carrying the quota error", warnings)
	}
	if got := testutil.ToFloat64(env.r.Metrics.JobCreateErrors.WithLabelValues(testNamespace, "etl")); got != 3 {
		t.Errorf("create errors metric = %v, want 3", got)
	}
	if got := testutil.ToFloat64(env.r.Metrics.JobsCreated.WithLabelValues(testNamespace, "etl")); got != 3 {
		t.Errorf("jobs created metric = %v, want 3", got)
	}
}

func TestReconcileCreateFailuresOneEventPerCause(t *testing.T) {
	// act.go promises "a quota refusal for 50 Jobs is one line, not 50". The API server names the Job in every
	// refusal, so the messages must be compared without the Job names.
	funcs := interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*batchv1.Job); ok {
				return apierrors.NewForbidden(jobsGR, obj.GetName(),
					errors.New("exceeded quota: team-a-quota, requested: count/jobs.batch=1, used: count/jobs.batch=20, limited: count/jobs.batch=20"))
			}
			return c.Create(ctx, obj, opts...)
		},
	}
	env := newLoopEnv(t, funcs, makeSJ("etl").max(50).obj())
	env.r.CreateWorkers = 4
	env.sources.source(defaultTrigger).set(50, nil)

	env.mustReconcile("etl")

	warnings := eventsWithReason(env.drainEvents(), corev1.EventTypeWarning, ReasonJobCreateFailed)
	if len(warnings) != 1 {
		t.Errorf("got %d JobCreateFailed warnings for 50 identical quota refusals, want 1; first: %q",
			len(warnings), firstOf(warnings))
	}
	// The first refusal stops the tick: only the creates already in flight (at most CreateWorkers) are attempted,
	// and every one of those refusals is counted.
	if got := testutil.ToFloat64(env.r.Metrics.JobCreateErrors.WithLabelValues(testNamespace, "etl")); got < 1 || got > 4 {
		t.Errorf("create errors metric = %v, want 1..4 (the tick stops launching after the first refusal)", got)
	}
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func TestReconcilePaused(t *testing.T) {
	sj := makeSJ("etl").max(10).history(1, 1).paused().obj()
	objs := []client.Object{sj,
		makeJob(t, sj, "etl-c1").completeAt(testNow.Add(-3 * time.Hour)).obj(),
		makeJob(t, sj, "etl-c2").completeAt(testNow.Add(-1 * time.Hour)).obj(),
		makeJob(t, sj, "etl-c3").completeAt(testNow.Add(-2 * time.Hour)).obj(),
		makeJob(t, sj, "etl-f1").failedAt(testNow.Add(-2 * time.Hour)).obj(),
		makeJob(t, sj, "etl-f2").failedAt(testNow.Add(-3 * time.Hour)).obj(),
	}
	env := newLoopEnv(t, interceptor.Funcs{}, objs...)
	env.sources.source(defaultTrigger).set(5, nil)

	res := env.mustReconcile("etl")

	if res.RequeueAfter != 61*time.Second {
		t.Errorf("RequeueAfter = %v, want 61s", res.RequeueAfter)
	}
	if diff := cmp.Diff([]string{"etl-c2", "etl-f1"}, env.jobNames()); diff != "" {
		t.Errorf("Jobs while paused (-want +got): nothing created, history still pruned\n%s", diff)
	}
	got := env.scaledJob("etl")
	paused, _ := condition(got, v1alpha1.ConditionPaused)
	if diff := cmp.Diff(conditionSummary{Status: metav1.ConditionTrue, Reason: "PausedByAnnotation"}, paused); diff != "" {
		t.Errorf("Paused (-want +got):\n%s", diff)
	}
	if active, _ := condition(got, v1alpha1.ConditionActive); active.Status != metav1.ConditionFalse {
		t.Errorf("Active = %+v, want False while paused", active)
	}
	if got.Status.LastDecision.JobsCreated != 0 || !strings.HasPrefix(got.Status.LastDecision.Reason, "paused") {
		t.Errorf("lastDecision = %+v, want 0 Jobs and a reason starting with paused", got.Status.LastDecision)
	}
	evs := env.drainEvents()
	if n := len(eventsWithReason(evs, corev1.EventTypeNormal, ReasonPaused)); n != 1 {
		t.Errorf("got %d Paused events, want 1: %v", n, evs)
	}
	if n := len(eventsWithReason(evs, corev1.EventTypeNormal, ReasonJobsCreated)); n != 0 {
		t.Errorf("JobsCreated event while paused: %v", evs)
	}

	// Still paused: no second Paused event.
	env.clock.Step(time.Second)
	env.mustReconcile("etl")
	if n := len(eventsWithReason(env.drainEvents(), corev1.EventTypeNormal, ReasonPaused)); n != 0 {
		t.Errorf("Paused event repeated on an unchanged pause")
	}

	// Unpause.
	env.update("etl", func(sj *v1alpha1.ScaledJob) { delete(sj.Annotations, v1alpha1.AnnotationPaused) })
	env.clock.Step(time.Second)
	env.mustReconcile("etl")

	if got := len(env.jobs()); got != 2+5 {
		t.Errorf("after unpausing: got %d Jobs, want 7", got)
	}
	paused, _ = condition(env.scaledJob("etl"), v1alpha1.ConditionPaused)
	if paused.Status != metav1.ConditionFalse {
		t.Errorf("after unpausing: Paused = %+v, want False", paused)
	}
	evs = env.drainEvents()
	if n := len(eventsWithReason(evs, corev1.EventTypeNormal, ReasonResumed)); n != 1 {
		t.Errorf("got %d Resumed events, want 1: %v", n, evs)
	}
	if n := len(eventsWithReason(evs, corev1.EventTypeNormal, ReasonJobsCreated)); n != 1 {
		t.Errorf("got %d JobsCreated events, want 1: %v", n, evs)
	}
}

// deleteRecorder records the propagation policy of every Delete.
type deleteRecorder struct {
	mu       sync.Mutex
	policies map[string]metav1.DeletionPropagation
}

func (d *deleteRecorder) funcs() interceptor.Funcs {
	return interceptor.Funcs{
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			var o client.DeleteOptions
			o.ApplyOptions(opts)
			d.mu.Lock()
			if d.policies == nil {
				d.policies = map[string]metav1.DeletionPropagation{}
			}
			var p metav1.DeletionPropagation
			if o.PropagationPolicy != nil {
				p = *o.PropagationPolicy
			}
			d.policies[obj.GetName()] = p
			d.mu.Unlock()
			return c.Delete(ctx, obj, opts...)
		},
	}
}

func (d *deleteRecorder) deleted() map[string]metav1.DeletionPropagation {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.policies
}

func TestReconcileRollout(t *testing.T) {
	cases := map[string]struct {
		strategy, propagation string
		wantDeleted           map[string]metav1.DeletionPropagation
	}{
		"default is gradual": {},
		"gradual":            {strategy: "gradual", propagation: "foreground"},
		"immediate, default background propagation": {
			strategy: "immediate",
			wantDeleted: map[string]metav1.DeletionPropagation{
				"etl-old-done": metav1.DeletePropagationBackground, "etl-old-running": metav1.DeletePropagationBackground,
			},
		},
		"immediate, foreground propagation": {
			strategy: "immediate", propagation: "foreground",
			wantDeleted: map[string]metav1.DeletionPropagation{
				"etl-old-done": metav1.DeletePropagationForeground, "etl-old-running": metav1.DeletePropagationForeground,
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := makeSJ("etl").max(10).generation(2)
			if tc.strategy != "" || tc.propagation != "" {
				b = b.rollout(tc.strategy, tc.propagation)
			}
			sj := b.obj()
			objs := []client.Object{sj,
				makeJob(t, sj, "etl-old-running").jobGeneration("1").obj(),
				makeJob(t, sj, "etl-old-done").jobGeneration("1").completeAt(testNow.Add(-time.Hour)).obj(),
				makeJob(t, sj, "etl-current").obj(),
				makeJob(t, sj, "etl-legacy").noGeneration().obj(),
			}
			var rec deleteRecorder
			env := newLoopEnv(t, rec.funcs(), objs...)

			env.mustReconcile("etl")

			if diff := cmp.Diff(tc.wantDeleted, rec.deleted()); diff != "" {
				t.Errorf("deleted Jobs and propagation (-want +got):\n%s", diff)
			}
			want := []string{"etl-current", "etl-legacy"}
			if len(tc.wantDeleted) == 0 {
				want = []string{"etl-current", "etl-legacy", "etl-old-done", "etl-old-running"}
			}
			if diff := cmp.Diff(want, env.jobNames()); diff != "" {
				t.Errorf("remaining Jobs (-want +got):\n%s", diff)
			}
			evs := eventsWithReason(env.drainEvents(), corev1.EventTypeNormal, ReasonRolloutDeleted)
			if wantEvents := min(len(tc.wantDeleted), 1); len(evs) != wantEvents {
				t.Errorf("got %d RolloutDeletedJobs events, want %d: %v", len(evs), wantEvents, evs)
			}
		})
	}
}

func TestReconcileHistory(t *testing.T) {
	sj := makeSJ("etl").max(10).history(2, 1).obj()
	h := func(n int) time.Time { return testNow.Add(-time.Duration(n) * time.Hour) }
	objs := []client.Object{sj,
		// Complete Jobs: names do not follow completion order.
		makeJob(t, sj, "etl-c-a").createdAt(h(30)).completeAt(h(5)).obj(),
		makeJob(t, sj, "etl-c-b").createdAt(h(30)).completeAt(h(1)).obj(), // newest
		makeJob(t, sj, "etl-c-c").createdAt(h(30)).completeAt(h(7)).obj(),
		makeJob(t, sj, "etl-c-d").createdAt(h(30)).completeAt(h(3)).obj(),
		makeJob(t, sj, "etl-c-e").createdAt(h(30)).completeAt(h(2)).obj(), // second newest
		makeJob(t, sj, "etl-c-f").createdAt(h(30)).completeAt(h(6)).obj(),
		makeJob(t, sj, "etl-c-g").createdAt(h(30)).completeAt(h(4)).obj(),
		// Failed Jobs: no completionTime; the one that failed last was created first (long retries).
		makeJob(t, sj, "etl-f-a").createdAt(h(20)).failedAt(h(1)).obj(), // newest failure
		makeJob(t, sj, "etl-f-b").createdAt(h(10)).failedAt(h(9)).obj(),
		makeJob(t, sj, "etl-f-c").createdAt(h(12)).failedAt(h(11)).obj(),
		makeJob(t, sj, "etl-f-d").createdAt(h(14)).failedAt(h(3)).obj(),
		makeJob(t, sj, "etl-f-e").createdAt(h(16)).failedAt(h(2)).obj(),
		// Unfinished Jobs are never history.
		makeJob(t, sj, "etl-r-a").createdAt(h(40)).obj(),
	}
	var rec deleteRecorder
	env := newLoopEnv(t, rec.funcs(), objs...)

	env.mustReconcile("etl")

	if diff := cmp.Diff([]string{"etl-c-b", "etl-c-e", "etl-f-a", "etl-r-a"}, env.jobNames()); diff != "" {
		t.Errorf("remaining Jobs (-want +got):\n%s", diff)
	}
	for name, p := range rec.deleted() {
		if p != metav1.DeletePropagationBackground {
			t.Errorf("history deleted %s with propagation %q, want Background", name, p)
		}
	}
	if got := testutil.ToFloat64(env.r.Metrics.JobsDeleted.WithLabelValues(testNamespace, "etl", "history")); got != 9 {
		t.Errorf("history deletions metric = %v, want 9", got)
	}
}

func TestReconcileRolloutAndHistoryKeepTheLimit(t *testing.T) {
	// With rollout immediate, Jobs of an older generation are deleted by the rollout. History must then keep the
	// newest current-generation Jobs up to the limit, not count the Jobs the rollout just deleted.
	sj := makeSJ("etl").max(10).generation(2).rollout("immediate", "").history(2, 2).obj()
	h := func(n int) time.Time { return testNow.Add(-time.Duration(n) * time.Hour) }
	objs := []client.Object{sj,
		makeJob(t, sj, "etl-old").jobGeneration("1").completeAt(h(1)).obj(),
		makeJob(t, sj, "etl-new-a").completeAt(h(2)).obj(),
		makeJob(t, sj, "etl-new-b").completeAt(h(3)).obj(),
	}
	env := newLoopEnv(t, interceptor.Funcs{}, objs...)

	env.mustReconcile("etl")

	if diff := cmp.Diff([]string{"etl-new-a", "etl-new-b"}, env.jobNames()); diff != "" {
		t.Errorf("remaining Jobs (-want +got):\n%s", diff)
	}
}

func TestReconcileIgnoresJobsItDoesNotOwn(t *testing.T) {
	sj := makeSJ("etl").max(10).generation(2).rollout("immediate", "").history(0, 0).obj()
	foreign := []client.Object{
		makeJob(t, sj, "etl-foreign-running").unowned().obj(),
		makeJob(t, sj, "etl-other-owner").ownedByUID("uid-someone-else").obj(),
		makeJob(t, sj, "etl-foreign-done").unowned().completeAt(testNow.Add(-time.Hour)).obj(),
		makeJob(t, sj, "etl-foreign-failed").ownedByUID("uid-someone-else").failedAt(testNow.Add(-time.Hour)).obj(),
		makeJob(t, sj, "etl-foreign-old").unowned().jobGeneration("1").obj(),
	}
	env := newLoopEnv(t, interceptor.Funcs{}, append([]client.Object{sj}, foreign...)...)
	env.sources.source(defaultTrigger).set(5, nil)

	env.mustReconcile("etl")

	var ours, theirs []string
	for _, j := range env.jobs() {
		if ref := metav1.GetControllerOf(&j); ref != nil && ref.UID == sj.UID {
			ours = append(ours, j.Name)
		} else {
			theirs = append(theirs, j.Name)
		}
	}
	if len(ours) != 5 {
		t.Errorf("created %d Jobs, want 5: foreign Jobs must not count as running", len(ours))
	}
	want := []string{"etl-foreign-done", "etl-foreign-failed", "etl-foreign-old", "etl-foreign-running", "etl-other-owner"}
	if diff := cmp.Diff(want, theirs); diff != "" {
		t.Errorf("foreign Jobs (-want +got): none may be deleted\n%s", diff)
	}
	got := env.scaledJob("etl").Status
	if got.Active != 5 || got.Succeeded != 0 || got.Failed != 0 {
		t.Errorf("status active/succeeded/failed = %d/%d/%d, want 5/0/0", got.Active, got.Succeeded, got.Failed)
	}
}

func TestReconcileScaledJobGone(t *testing.T) {
	beingDeleted := makeSJ("etl").max(10).mutate(func(sj *v1alpha1.ScaledJob) {
		sj.Finalizers = []string{"example.com/keep"}
		sj.DeletionTimestamp = &metav1.Time{Time: testNow}
	}).obj()
	cases := map[string]struct {
		objs []client.Object
	}{
		"not found":                     {},
		"being deleted":                 {objs: []client.Object{beingDeleted}},
		"only another ScaledJob exists": {objs: []client.Object{makeSJ("etl-other").obj()}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			env := newLoopEnv(t, interceptor.Funcs{}, tc.objs...)
			env.sources.source(defaultTrigger).set(5, nil)

			res, err := env.reconcile("etl")

			if err != nil {
				t.Errorf("Reconcile = %v, want no error", err)
			}
			if diff := cmp.Diff(ctrl.Result{}, res); diff != "" {
				t.Errorf("Result (-want +got):\n%s", diff)
			}
			if names := env.jobNames(); len(names) != 0 {
				t.Errorf("Jobs created for a missing ScaledJob: %v", names)
			}
			if calls, _ := env.sources.source(defaultTrigger).stats(); calls != 0 {
				t.Errorf("trigger read %d times, want 0", calls)
			}
		})
	}
}

func TestReconcileDeletedScaledJobClosesSources(t *testing.T) {
	env := newLoopEnv(t, interceptor.Funcs{}, makeSJ("etl").max(10).obj())
	env.sources.source(defaultTrigger).set(1, nil)
	env.mustReconcile("etl")
	env.mustReconcile("etl")
	if n := len(env.sources.builds()); n != 1 {
		t.Errorf("sources built %d times over two ticks with the same configuration, want 1", n)
	}

	if err := env.raw.Delete(context.Background(), env.scaledJob("etl")); err != nil {
		t.Fatal(err)
	}
	env.mustReconcile("etl")

	if _, closed := env.sources.source(defaultTrigger).stats(); closed != 1 {
		t.Errorf("source closed %d times after the ScaledJob was deleted, want 1", closed)
	}
}

func TestReconcileInvalidTriggerNeverRollsOutRunningJobs(t *testing.T) {
	// A spec change that breaks a trigger, with rollout immediate, must not delete the running Jobs of the
	// previous generation: a bad ScaledJob never takes running work down.
	sj := makeSJ("etl").max(10).generation(2).rollout("immediate", "").
		triggers(v1alpha1.ScaleTrigger{Type: "rabbitmq"}).obj()
	objs := []client.Object{sj, makeJob(t, sj, "etl-old-running").jobGeneration("1").obj()}
	var rec deleteRecorder
	env := newLoopEnv(t, rec.funcs(), objs...)

	_, _ = env.reconcile("etl")

	if got := rec.deleted(); len(got) != 0 {
		t.Errorf("deleted %v for a ScaledJob with an invalid trigger", got)
	}
	if diff := cmp.Diff([]string{"etl-old-running"}, env.jobNames()); diff != "" {
		t.Errorf("remaining Jobs (-want +got):\n%s", diff)
	}
}
