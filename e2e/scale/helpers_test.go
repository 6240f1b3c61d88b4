package scale

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// latencySlack is added to every "within N polls" bound: the machine is small and shared.
const latencySlack = 5 * time.Second

// cronDaily renders a daily cron expression firing at t's minute and hour (UTC).
func cronDaily(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%d %d * * *", t.Minute(), t.Hour())
}

// cronClosed is the metadata of a cron trigger whose daily window opens 12 hours from now and lasts 30 minutes:
// closed for the whole test, and read without any I/O.
func cronClosed() map[string]string {
	open := time.Now().Add(12 * time.Hour)
	return map[string]string{"timezone": "Etc/UTC", "start": cronDaily(open), "end": cronDaily(open.Add(30 * time.Minute)),
		"desiredReplicas": "1"}
}

// cronOpen is the metadata of a cron trigger whose daily window opened a minute ago and closes in an hour, asking
// for desired Jobs.
func cronOpen(desired int) map[string]string {
	now := time.Now()
	return map[string]string{"timezone": "Etc/UTC", "start": cronDaily(now.Add(-time.Minute)), "end": cronDaily(now.Add(time.Hour)),
		"desiredReplicas": fmt.Sprint(desired)}
}

// startDispatcher starts the dispatcher with extra flags and waits until it serves /metrics (it fails the test at
// once if the process exits, e.g. on a flag it does not know).
func startDispatcher(f *framework.F, extra ...string) *framework.Dispatcher {
	f.T.Helper()
	d := f.StartDispatcher(extra...)
	f.WaitDispatcherUp(d)
	return d
}

// waitAllReady waits until every ScaledJob of f's namespace named in names has Ready=True.
func waitAllReady(f *framework.F, d *framework.Dispatcher, names []string, timeout time.Duration) {
	f.T.Helper()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	f.Eventually(fmt.Sprintf("Ready=True on %d ScaledJobs of %s", len(names), f.Namespace), timeout, func() (bool, error) {
		f.RequireRunning(d)
		var list v1alpha1.ScaledJobList
		if err := f.Client.List(f.Ctx, &list, client.InNamespace(f.Namespace)); err != nil {
			return false, err
		}
		ready := 0
		var notReady []string
		for i := range list.Items {
			sj := &list.Items[i]
			if !want[sj.Name] {
				continue
			}
			if c := framework.Condition(sj, v1alpha1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue {
				ready++
			} else if len(notReady) < 5 {
				notReady = append(notReady, fmt.Sprintf("%s: %+v", sj.Name, c))
			}
		}
		return ready == len(names), fmt.Errorf("%d of %d Ready; for example %s", ready, len(names), strings.Join(notReady, "; "))
	})
}

// countJobs counts the Jobs of namespace labelled for the ScaledJob name (for any ScaledJob when name is empty),
// reading only their metadata.
func countJobs(f *framework.F, namespace, name string) (int, error) {
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(batchv1.SchemeGroupVersion.WithKind("JobList"))
	var sel client.ListOption = client.MatchingLabels{v1alpha1.LabelScaledJob: name}
	if name == "" {
		sel = client.HasLabels{v1alpha1.LabelScaledJob}
	}
	err := f.Client.List(f.Ctx, &list, client.InNamespace(namespace), sel)
	return len(list.Items), err
}

// firstJobLatencies waits until every ScaledJob of namespace named in sent has a Job, and returns, per ScaledJob,
// the time from sent[name] until the Job was first seen (an upper bound: the list runs every 200 ms). It lists the
// namespace's Jobs once per round, not once per ScaledJob.
func firstJobLatencies(f *framework.F, d *framework.Dispatcher, namespace string, sent map[string]time.Time, timeout time.Duration) map[string]time.Duration {
	f.T.Helper()
	got := map[string]time.Duration{}
	f.Eventually(fmt.Sprintf("a first Job for each of %d ScaledJobs in %s", len(sent), namespace), timeout, func() (bool, error) {
		f.RequireRunning(d)
		var list metav1.PartialObjectMetadataList
		list.SetGroupVersionKind(batchv1.SchemeGroupVersion.WithKind("JobList"))
		if err := f.Client.List(f.Ctx, &list, client.InNamespace(namespace), client.HasLabels{v1alpha1.LabelScaledJob}); err != nil {
			return false, err
		}
		now := time.Now()
		for _, j := range list.Items {
			name := j.Labels[v1alpha1.LabelScaledJob]
			if at, ok := sent[name]; ok {
				if _, seen := got[name]; !seen {
					got[name] = now.Sub(at)
				}
			}
		}
		var missing []string
		for name := range sent {
			if _, ok := got[name]; !ok {
				missing = append(missing, name)
			}
		}
		sort.Strings(missing)
		return len(missing) == 0, fmt.Errorf("no Job yet for %v", missing)
	})
	return got
}

// quietPeriod checks cond every 500 ms for d: a test that must observe that nothing happens for a while. It is the
// one place these tests wait a fixed time.
func quietPeriod(f *framework.F, disp *framework.Dispatcher, what string, d time.Duration, cond func() error) {
	f.T.Helper()
	end := time.Now().Add(d)
	for {
		f.RequireRunning(disp)
		if err := cond(); err != nil {
			f.T.Fatalf("during %s of quiet period (%s): %v", d, what, err)
		}
		if time.Now().After(end) {
			return
		}
		select {
		case <-f.Ctx.Done():
			f.T.Fatalf("quiet period (%s): %v", what, f.Ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitGone waits until the ScaledJob name of namespace no longer exists.
func waitGone(f *framework.F, namespace, name string, timeout time.Duration) {
	f.T.Helper()
	f.Eventually("ScaledJob "+namespace+"/"+name+" to be gone", timeout, func() (bool, error) {
		var sj v1alpha1.ScaledJob
		err := f.Client.Get(f.Ctx, client.ObjectKey{Namespace: namespace, Name: name}, &sj)
		return apierrors.IsNotFound(err), err
	})
}

// formatLatencies renders per-ScaledJob latencies sorted by name.
func formatLatencies(l map[string]time.Duration) string {
	names := make([]string, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%.1fs", n, l[n].Seconds())
	}
	return strings.Join(parts, " ")
}

// subtest returns a copy of f that reports to the subtest t, so its waits fail the subtest, not its parent.
func subtest(f *framework.F, t testing.TB) *framework.F {
	c := *f
	c.T = t
	return &c
}

// clientKey names an object of f's namespace.
func clientKey(f *framework.F, name string) client.ObjectKey {
	return client.ObjectKey{Namespace: f.Namespace, Name: name}
}

// waitMoreTicks waits until the dispatcher counter name (summed over the samples matching match) has grown by n
// from its value now: a sign that n more ticks read the trigger. Status is no proof of a tick, since an unchanged
// status is not written. With n >= 2 the tick of the first increment has finished, its creations included (the
// ticks of one ScaledJob do not overlap).
func waitMoreTicks(f *framework.F, d *framework.Dispatcher, name string, match map[string]string, n int) {
	f.T.Helper()
	base, err := d.MetricSum(name, match)
	if err != nil {
		f.T.Fatalf("reading the dispatcher's metrics: %v", err)
	}
	f.Eventually(fmt.Sprintf("%d more ticks (%s%v above %.0f)", n, name, match, base), 2*time.Minute, func() (bool, error) {
		f.T.Helper()
		f.RequireRunning(d)
		v, err := d.MetricSum(name, match)
		return v >= base+float64(n), fmt.Errorf("%s = %.0f (err %v)", name, v, err)
	})
}
