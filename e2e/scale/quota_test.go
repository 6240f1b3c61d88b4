package scale

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// Eight ScaledJobs that want 200,000 Jobs each (minReplicaCount = maxReplicaCount) in a namespace whose
// ResourceQuota allows 3 Jobs do not starve a ScaledJob of another namespace watched by the same dispatcher: it gets
// its first Job within one poll (plus slack). The refusals are counted, and once the abusers are deleted the
// dispatcher stops trying (kubedispatch_job_create_errors_total stops increasing within 2 s).
func TestAbusersUnderQuotaDoNotStarveOthers(t *testing.T) {
	const (
		abusers   = 8
		want      = 200000
		poll      = 5
		errMetric = "kubedispatch_job_create_errors_total"
	)
	f := framework.New(t)     // the abusers, under the quota
	other := framework.New(t) // the ninth ScaledJob, no quota
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "jobs", Namespace: f.Namespace},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/jobs.batch": resource.MustParse("3")}}}
	if err := f.Client.Create(f.Ctx, quota); err != nil {
		t.Fatal(err)
	}
	f.Eventually("quota status", time.Minute, func() (bool, error) {
		var q corev1.ResourceQuota
		err := f.Client.Get(f.Ctx, client.ObjectKey{Namespace: f.Namespace, Name: "jobs"}, &q)
		return err == nil && len(q.Status.Hard) > 0, err
	})
	var names []string
	for i := range abusers {
		name := fmt.Sprintf("abuser-%d", i)
		// minReplicaCount drives the creations; the trigger (a closed cron window) only satisfies "at least one".
		b := framework.NewScaledJob(f, name).Trigger("cron", cronClosed(), nil).Min(want).Max(want).Poll(poll).RunFor("1h")
		if err := f.Client.Create(f.Ctx, b.ScaledJob); err != nil {
			t.Fatalf("the API refused minReplicaCount = maxReplicaCount = %d: %v", want, err)
		}
		names = append(names, name)
	}
	url := other.CreateQueue("ninth", nil)
	framework.NewScaledJob(other, "ninth").SQS(url, 1).Poll(poll).RunFor("1h").Create()
	// StartDispatcher watches f's namespace; the later flag adds the other one.
	d := startDispatcher(f, "--watch-namespace="+f.Namespace+","+other.Namespace)

	waitAllReady(other, d, []string{"ninth"}, 3*time.Minute)
	f.Eventually("refused creations counted in "+errMetric, 3*time.Minute, func() (bool, error) {
		f.RequireRunning(d)
		n, err := d.MetricSum(errMetric, nil)
		return n > 0, fmt.Errorf("%s = %v (err %v)", errMetric, n, err)
	})
	if n, err := countJobs(f, f.Namespace, ""); err == nil && n > 3 {
		t.Errorf("%d Jobs under a quota of 3", n)
	}

	other.SendMessages(url, 1, "ninth")
	sent := time.Now()
	lat := firstJobLatencies(other, d, other.Namespace, map[string]time.Time{"ninth": sent}, 3*time.Minute)["ninth"]
	refused, err := d.MetricSum(errMetric, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ninth ScaledJob: first Job %.1fs after its message; %s = %.0f so far", lat.Seconds(), errMetric, refused)
	if bound := poll*time.Second + latencySlack; lat > bound {
		t.Errorf("the ninth ScaledJob got its first Job %.1fs after its message, want within one poll + %s (%s) next to %d abusers under quota",
			lat.Seconds(), latencySlack, bound, abusers)
	}
	if refused <= 0 {
		t.Errorf("%s = %.0f, want the quota refusals counted", errMetric, refused)
	}

	// Delete the abusers; once they are gone (as this client sees it), the refusals stop within 2 s.
	for _, name := range names {
		if err := f.Client.Delete(f.Ctx, f.ScaledJob(name), client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
			t.Fatalf("deleting %s: %v", name, err)
		}
	}
	for _, name := range names {
		waitGone(f, f.Namespace, name, 2*time.Minute)
	}
	// Increases are allowed for 2 s after that (creations already in flight); then none for 2 polls.
	gone := time.Now()
	settled := -1.0
	quietPeriod(f, d, errMetric+" not increasing after the abusers are deleted", 2*time.Second+2*poll*time.Second, func() error {
		n, err := d.MetricSum(errMetric, nil)
		if err != nil || time.Since(gone) < 2*time.Second {
			return err
		}
		if settled < 0 {
			settled = n
		}
		if n > settled {
			return fmt.Errorf("%s rose from %.0f to %.0f more than 2 s after the abusers were deleted (%.1fs after)", errMetric, settled, n, time.Since(gone).Seconds())
		}
		return nil
	})
	t.Logf("%s: %.0f before the deletes, %.0f 2 s after, not increasing for %d s", errMetric, refused, settled, 2*poll)
}
