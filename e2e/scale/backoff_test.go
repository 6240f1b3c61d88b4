package scale

import (
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// Jobs that all fail at once with a backlog that stays do not make a creation storm: after the first failures
// creation backs off (at most one probe per step), the status says why with the Jobs' failure reason, and an edit
// that fixes the template ends the back-off.
func TestFailingJobsBackOff(t *testing.T) {
	f := framework.New(t)
	url := f.CreateQueue("failing", nil)
	f.SendMessages(url, 100, "work")
	b := framework.NewScaledJob(f, "failing").SQS(url, 1).Max(5).Poll(5).RunFor("1s")
	b.ScaledJob.Spec.JobTargetRef.Template.Annotations["kwok.test/outcome"] = "fail"
	b.Create()
	disp := startDispatcher(f)

	failed := func() (all, failedJobs int) {
		for _, j := range f.JobsOf("failing") {
			all++
			for _, c := range j.Status.Conditions {
				if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
					failedJobs++
				}
			}
		}
		return all, failedJobs
	}
	f.Eventually("the first 5 Jobs to fail", 3*time.Minute, func() (bool, error) {
		_, n := failed()
		return n >= 5, nil
	})
	base, _ := failed()
	f.Eventually("Ready=False FailingJobsBackoff naming the failure", time.Minute, func() (bool, error) {
		c := framework.Condition(f.ScaledJob("failing"), v1alpha1.ConditionReady)
		if c == nil || c.Reason != "FailingJobsBackoff" {
			return false, nil
		}
		if !strings.Contains(c.Message, "BackoffLimitExceeded") {
			return false, fmt.Errorf("back-off message %q does not name the Jobs' failure reason", c.Message)
		}
		return true, nil
	})
	d := f.ScaledJob("failing")
	quietPeriod(f, disp, "no creation storm", 2*time.Minute, func() error {
		if all, _ := failed(); all-base >= 15 {
			return fmt.Errorf("%d more Jobs within 2 minutes after the first 5 failed, want fewer than 15", all-base)
		}
		return nil
	})
	all, _ := failed()
	t.Logf("%d Jobs when the first 5 had failed, %d two minutes later; status: %s", base, all, d.Status.LastDecision.Reason)

	// The fix: a template whose Jobs succeed. The back-off counts only the current template's Jobs.
	f.UpdateScaledJob("failing", func(sj *v1alpha1.ScaledJob) {
		delete(sj.Spec.JobTargetRef.Template.Annotations, "kwok.test/outcome")
	})
	f.Eventually("a Job of the fixed template to succeed and Ready=True", 2*time.Minute, func() (bool, error) {
		sj := f.ScaledJob("failing")
		c := framework.Condition(sj, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue && sj.Status.Succeeded > 0, nil
	})
}
