package dispatcher

import (
	"fmt"
	"sort"
	"strconv"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/dispatch"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
	"github.com/kubedispatch/kubedispatch/jobtemplate"
)

// ownedJob creates a Job for sj as the dispatcher would, with a given kwok outcome.
func ownedJob(f *framework.F, sj *v1alpha1.ScaledJob, name string, fail bool) {
	f.T.Helper()
	job, err := jobtemplate.Build(sj, name)
	if err != nil {
		f.T.Fatal(err)
	}
	job.Spec.Template.Annotations["kwok.test/run-for"] = "500ms"
	if fail {
		job.Spec.Template.Annotations["kwok.test/outcome"] = "fail"
	}
	if err := f.Client.Create(f.Ctx, job); err != nil {
		f.T.Fatal(err)
	}
}

func finishedBatch(f *framework.F, sj string, names []string) {
	f.T.Helper()
	f.Eventually(fmt.Sprintf("%d Jobs finished", len(names)), 3*time.Minute, func() (bool, error) {
		want := map[string]bool{}
		for _, n := range names {
			want[n] = true
		}
		for _, j := range f.JobsOf(sj) {
			if want[j.Name] && dispatch.IsFinished(&j) {
				delete(want, j.Name)
			}
		}
		return len(want) == 0, nil
	})
}

// After 30 successful and 30 failed Jobs with history limits 5/3, exactly the newest 5 and 3 remain. The newest
// are made unambiguous: they finish in a second batch, after the first batch has finished.
func TestHistoryKeepsNewestWithinLimits(t *testing.T) {
	f := framework.New(t)
	url := f.CreateQueue("history", nil) // empty: the ScaledJob creates nothing itself
	sj := framework.NewScaledJob(f, "history").SQS(url, 1).History(5, 3).Poll(2).Create()
	var first, second []string
	for i := range 25 {
		first = append(first, fmt.Sprintf("history-ok-a%02d", i))
	}
	for i := range 27 {
		first = append(first, fmt.Sprintf("history-fail-a%02d", i))
	}
	for _, n := range first {
		ownedJob(f, sj, n, len(n) > 12 && n[8:12] == "fail")
	}
	finishedBatch(f, "history", first)
	// The second batch must finish at a later second than the first (condition times have second precision).
	lastFirst := time.Now()
	f.Eventually("a new second", 5*time.Second, func() (bool, error) { return time.Now().Unix() > lastFirst.Unix(), nil })
	for i := range 5 {
		second = append(second, fmt.Sprintf("history-ok-b%02d", i))
	}
	for i := range 3 {
		second = append(second, fmt.Sprintf("history-fail-b%02d", i))
	}
	for _, n := range second {
		ownedJob(f, sj, n, len(n) > 12 && n[8:12] == "fail")
	}
	finishedBatch(f, "history", second)
	f.StartDispatcher()
	want := append([]string(nil), second...)
	sort.Strings(want)
	f.Eventually("only the newest 5 successful and 3 failed Jobs left", 2*time.Minute, func() (bool, error) {
		var names []string
		for _, j := range f.JobsOf("history") {
			names = append(names, j.Name)
		}
		return fmt.Sprint(names) == fmt.Sprint(want), fmt.Errorf("jobs left: %v", names)
	})
	got := f.ScaledJob("history")
	f.Eventually("status counts 5 succeeded and 3 failed", time.Minute, func() (bool, error) {
		got = f.ScaledJob("history")
		return got.Status.Succeeded == 5 && got.Status.Failed == 3, fmt.Errorf("status %+v", got.Status)
	})
}

// Pause stops creation within one tick; removing the annotation resumes it.
func TestPauseAndResume(t *testing.T) {
	f := framework.New(t)
	url := f.CreateQueue("pause", nil)
	f.SendMessages(url, 4, "m")
	framework.NewScaledJob(f, "pause").SQS(url, 1).Poll(2).RunFor("10m").Paused().Create()
	f.StartDispatcher()
	start := time.Now()
	sj := f.WaitDecisionAfter("pause", start)
	sj = f.WaitDecisionAfter("pause", sj.Status.LastDecision.Time.Time) // a second tick, still paused
	if c := framework.Condition(sj, v1alpha1.ConditionPaused); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("Paused condition = %+v, want True", c)
	}
	if n := len(f.JobsOf("pause")); n != 0 {
		t.Fatalf("%d Jobs created while paused", n)
	}
	f.UpdateScaledJob("pause", func(sj *v1alpha1.ScaledJob) { delete(sj.Annotations, v1alpha1.AnnotationPaused) })
	f.Eventually("4 Jobs after resuming", time.Minute, func() (bool, error) { return len(f.JobsOf("pause")) == 4, nil })
	// Pausing again stops creation at the next tick even though the backlog grows.
	f.UpdateScaledJob("pause", func(sj *v1alpha1.ScaledJob) {
		sj.Annotations = map[string]string{v1alpha1.AnnotationPaused: "true"}
	})
	f.Eventually("Paused=True again", time.Minute, func() (bool, error) {
		c := framework.Condition(f.ScaledJob("pause"), v1alpha1.ConditionPaused)
		return c != nil && c.Status == metav1.ConditionTrue, nil
	})
	f.SendMessages(url, 3, "more")
	f.WaitDecisionAfter("pause", time.Now().Add(time.Second))
	if n := len(f.JobsOf("pause")); n != 4 {
		t.Fatalf("%d Jobs after pausing again with a larger backlog, want still 4", n)
	}
}

// A template change with rollout gradual (the default) leaves running Jobs alone; with immediate, Jobs of older
// generations are deleted.
func TestRolloutGradualAndImmediate(t *testing.T) {
	f := framework.New(t)
	url := f.CreateQueue("rollout", nil)
	f.SendMessages(url, 3, "m")
	framework.NewScaledJob(f, "rollout").SQS(url, 1).Poll(2).RunFor("10m").Create()
	f.StartDispatcher()
	f.Eventually("3 Jobs", time.Minute, func() (bool, error) { return len(f.JobsOf("rollout")) == 3, nil })
	old := uids(f.JobsOf("rollout"))

	f.UpdateScaledJob("rollout", func(sj *v1alpha1.ScaledJob) {
		sj.Spec.JobTargetRef.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "VERSION", Value: "2"}}
	})
	gen := f.ScaledJob("rollout").Generation
	f.Eventually("status observes the new generation", time.Minute, func() (bool, error) {
		return f.ScaledJob("rollout").Status.ObservedGeneration == gen, nil
	})
	f.WaitDecisionAfter("rollout", time.Now().Add(time.Second))
	now := uids(f.JobsOf("rollout"))
	for uid := range old {
		if !now[uid] {
			t.Fatalf("gradual rollout deleted running Job %s", uid)
		}
	}
	if len(now) != 3 {
		t.Fatalf("%d Jobs after a gradual template change, want the same 3", len(now))
	}

	f.UpdateScaledJob("rollout", func(sj *v1alpha1.ScaledJob) {
		sj.Spec.Rollout = &v1alpha1.Rollout{Strategy: v1alpha1.RolloutImmediate}
		sj.Spec.JobTargetRef.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "VERSION", Value: "3"}}
	})
	gen = f.ScaledJob("rollout").Generation
	f.Eventually("older-generation Jobs deleted", 2*time.Minute, func() (bool, error) {
		for _, j := range f.JobsOf("rollout") {
			if old[j.UID] && j.DeletionTimestamp.IsZero() {
				return false, nil
			}
			if j.Annotations[v1alpha1.AnnotationGeneration] != strconv.FormatInt(gen, 10) && j.DeletionTimestamp.IsZero() {
				return false, fmt.Errorf("job %s of generation %s remains", j.Name, j.Annotations[v1alpha1.AnnotationGeneration])
			}
		}
		return true, nil
	})
}

// A cron window opening in the next minute: no Jobs before it, desiredReplicas Jobs kept alive inside it (refilled
// as they finish), never more than desiredReplicas unfinished.
func TestCronWindowKeepsDesiredReplicas(t *testing.T) {
	f := framework.New(t)
	now := time.Now().UTC()
	// Open at the next minute boundary (at least 20 s ahead), close two minutes later.
	open := now.Truncate(time.Minute).Add(time.Minute)
	if open.Sub(now) < 20*time.Second {
		open = open.Add(time.Minute)
	}
	end := open.Add(2 * time.Minute)
	cronSpec := func(t time.Time) string { return fmt.Sprintf("%d %d * * *", t.Minute(), t.Hour()) }
	framework.NewScaledJob(f, "burst").ScaleTrigger(v1alpha1.ScaleTrigger{Type: "cron", Name: "window", Metadata: map[string]string{
		"timezone": "Etc/UTC", "start": cronSpec(open), "end": cronSpec(end), "desiredReplicas": "2",
	}}).Poll(2).RunFor("15s").Create()
	f.StartDispatcher()

	// Before the window: ticks happen, no Jobs.
	sj := f.WaitDecisionAfter("burst", time.Now())
	if time.Now().Before(open) {
		if n := len(f.JobsOf("burst")); n != 0 {
			t.Fatalf("%d Jobs before the window opened (decision: %s)", n, sj.Status.LastDecision.Reason)
		}
	}
	// Inside the window: 2 unfinished, refilled after the first pair completes.
	maxSeen := 0
	f.Eventually("a refill inside the window (more than 2 Jobs created in all)", 3*time.Minute, func() (bool, error) {
		jobs := f.JobsOf("burst")
		if time.Now().Before(end) {
			if n := framework.Unfinished(jobs); n > maxSeen {
				maxSeen = n
			}
		}
		if maxSeen > 2 {
			t.Fatalf("%d unfinished Jobs inside the window, desiredReplicas is 2", maxSeen)
		}
		return len(jobs) > 2, nil
	})
	if first := f.JobsOf("burst"); len(first) > 0 {
		for _, j := range first {
			if j.CreationTimestamp.Time.Before(open.Add(-time.Second)) {
				t.Errorf("job %s created at %s, before the window opened at %s", j.Name, j.CreationTimestamp, open)
			}
		}
	}
	// After the window: nothing new.
	f.Eventually("the window to close", 4*time.Minute, func() (bool, error) { return time.Now().After(end.Add(3 * time.Second)), nil })
	count := len(f.JobsOf("burst"))
	sj = f.WaitDecisionAfter("burst", time.Now().Add(time.Second))
	if n := len(f.JobsOf("burst")); n != count {
		t.Errorf("%d Jobs created after the window closed (decision: %s)", n-count, sj.Status.LastDecision.Reason)
	}
}

var _ = batchv1.JobComplete
var _ = ptr.To[int32]
