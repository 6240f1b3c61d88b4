package scale

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// A trigger that fails to read does not take the minReplicaCount baseline down, and the partial-failure rule of
// multipleScalersCalculation holds: with sum the answering triggers still count; with max nothing beyond the
// baseline is created while any trigger fails.
func TestBaselineKeptWhileTriggerFails(t *testing.T) {
	const poll = 2
	f := framework.New(t)
	// A queue URL on moto that does not exist: every read fails at once (QueueDoesNotExist).
	missing := framework.Cluster().SQSEndpoint + "/123456789012/missing-" + f.Namespace
	const failing = "missing-queue"
	withFailing := func(b *framework.ScaledJobBuilder) *framework.ScaledJobBuilder {
		b.SQS(missing, 1)
		b.ScaledJob.Spec.Triggers[len(b.ScaledJob.Spec.Triggers)-1].Name = failing
		return b
	}
	withThree := func(b *framework.ScaledJobBuilder) *framework.ScaledJobBuilder {
		url := f.CreateQueue(b.ScaledJob.Name, nil)
		f.SendMessages(url, 3, b.ScaledJob.Name)
		return b.SQS(url, 1)
	}
	cases := map[string]struct {
		name  string
		build func(b *framework.ScaledJobBuilder) *framework.ScaledJobBuilder
		want  int
		ready bool // Ready=False must name the failing trigger
	}{
		"min 2 max 5 with its only trigger failing keeps 2": {
			name:  "baseline",
			build: func(b *framework.ScaledJobBuilder) *framework.ScaledJobBuilder { return withFailing(b).Min(2).Max(5) },
			want:  2, ready: true,
		},
		"sum of a failing trigger and one with 3 messages creates 3": {
			name: "sum",
			build: func(b *framework.ScaledJobBuilder) *framework.ScaledJobBuilder {
				return withThree(withFailing(b)).Calculation(v1alpha1.CalculationSum).Max(10)
			},
			want: 3,
		},
		"max of a failing trigger and one with 3 messages creates nothing beyond min 0": {
			name: "max",
			build: func(b *framework.ScaledJobBuilder) *framework.ScaledJobBuilder {
				return withThree(withFailing(b)).Calculation(v1alpha1.CalculationMax).Min(0).Max(10)
			},
			want: 0,
		},
	}
	for _, tc := range cases {
		tc.build(framework.NewScaledJob(f, tc.name).Poll(poll).RunFor("1h")).Create()
	}
	d := startDispatcher(f)

	for title, tc := range cases {
		t.Run(title, func(t *testing.T) {
			f := subtest(f, t)
			// The failing trigger has been read (and failed) at least once.
			f.Eventually("a read error on trigger "+failing+" of "+tc.name, 2*time.Minute, func() (bool, error) {
				f.RequireRunning(d)
				sj := f.ScaledJob(tc.name)
				if len(sj.Status.Triggers) == 0 {
					return false, fmt.Errorf("no status.triggers yet")
				}
				return sj.Status.Triggers[0].LastError != "", fmt.Errorf("status.triggers[0] = %+v", sj.Status.Triggers[0])
			})
			if tc.want > 0 {
				f.Eventually(fmt.Sprintf("%d unfinished Jobs of %s", tc.want, tc.name), 2*time.Minute, func() (bool, error) {
					f.RequireRunning(d)
					jobs := f.JobsOf(tc.name)
					if len(jobs) > tc.want {
						t.Fatalf("%d Jobs of %s, want exactly %d (decision: %s)", len(jobs), tc.name, tc.want, lastReason(f, tc.name))
					}
					return framework.Unfinished(jobs) == tc.want, fmt.Errorf("%d Jobs, %d unfinished (decision: %s)", len(jobs), framework.Unfinished(jobs), lastReason(f, tc.name))
				})
			}
			// And it stays so: for 3 polls (at least 10 s: failed reads may retry on a back-off, not on the poll),
			// and for two more ticks after that (each reads the failing trigger again and counts its error).
			check := func() error {
				jobs := f.JobsOf(tc.name)
				if len(jobs) != tc.want || framework.Unfinished(jobs) != tc.want {
					return fmt.Errorf("%d Jobs of %s (%d unfinished), want exactly %d (decision: %s)", len(jobs), tc.name, framework.Unfinished(jobs), tc.want, lastReason(f, tc.name))
				}
				return nil
			}
			quietPeriod(f, d, fmt.Sprintf("%s keeps %d Jobs", tc.name, tc.want), max(3*poll*time.Second, 10*time.Second), check)
			waitMoreTicks(f, d, "kubedispatch_trigger_errors_total", map[string]string{"namespace": f.Namespace, "scaledjob": tc.name, "trigger": failing}, 2)
			if err := check(); err != nil {
				t.Fatal(err)
			}
			if tc.ready {
				sj := f.WaitReady(tc.name, metav1.ConditionFalse, failing)
				t.Logf("Ready: %s: %s", framework.Condition(sj, v1alpha1.ConditionReady).Reason, framework.Condition(sj, v1alpha1.ConditionReady).Message)
			}
			t.Logf("decision: %s", lastReason(f, tc.name))
		})
	}
}

// lastReason is the reason of the ScaledJob's last decision, for failure messages.
func lastReason(f *framework.F, name string) string {
	sj := f.ScaledJob(name)
	if sj.Status.LastDecision == nil {
		return "none yet"
	}
	return fmt.Sprintf("%d created: %s", sj.Status.LastDecision.JobsCreated, sj.Status.LastDecision.Reason)
}
