package history

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// base is 15:00 on the day of KEDA's cleanup vectors; at(m) is base + m minutes.
var base = time.Date(2024, time.March, 7, 15, 0, 0, 0, time.UTC)

func at(minute int) time.Time { return base.Add(time.Duration(minute) * time.Minute) }

// jobWrapper builds Jobs whose status looks like what the Job controller writes.
type jobWrapper struct{ batchv1.Job }

// job starts a running Job created and started an hour before base.
func job(name string) *jobWrapper {
	created := metav1.NewTime(base.Add(-time.Hour))
	return &jobWrapper{batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", CreationTimestamp: created},
		Status:     batchv1.JobStatus{StartTime: &created, Active: 1},
	}}
}

func (j *jobWrapper) condition(t batchv1.JobConditionType, s corev1.ConditionStatus, when time.Time) *jobWrapper {
	j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{
		Type: t, Status: s, LastProbeTime: metav1.NewTime(when), LastTransitionTime: metav1.NewTime(when),
	})
	return j
}

// succeededAt marks the Job successful as the Job controller does: SuccessCriteriaMet and Complete
// conditions plus completionTime.
func (j *jobWrapper) succeededAt(when time.Time) *jobWrapper {
	j.Status.Active, j.Status.Succeeded = 0, 1
	t := metav1.NewTime(when)
	j.Status.CompletionTime = &t
	return j.condition(batchv1.JobSuccessCriteriaMet, corev1.ConditionTrue, when).
		condition(batchv1.JobComplete, corev1.ConditionTrue, when)
}

// failedAt marks the Job failed as the Job controller does: FailureTarget and Failed conditions and no
// completionTime.
func (j *jobWrapper) failedAt(when time.Time) *jobWrapper {
	j.Status.Active, j.Status.Failed = 0, 1
	return j.condition(batchv1.JobFailureTarget, corev1.ConditionTrue, when).
		condition(batchv1.JobFailed, corev1.ConditionTrue, when)
}

func (j *jobWrapper) createdAt(when time.Time) *jobWrapper {
	j.CreationTimestamp = metav1.NewTime(when)
	return j
}

// withoutTransitionTimes clears lastTransitionTime on every condition, to exercise the fallbacks.
func (j *jobWrapper) withoutTransitionTimes() *jobWrapper {
	for i := range j.Status.Conditions {
		j.Status.Conditions[i].LastTransitionTime = metav1.Time{}
	}
	return j
}

func (j *jobWrapper) obj() batchv1.Job { return j.Job }

func jobs(ws ...*jobWrapper) []batchv1.Job {
	out := make([]batchv1.Job, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.obj())
	}
	return out
}

func names(js []batchv1.Job) []string {
	out := make([]string, 0, len(js))
	for _, j := range js {
		out = append(out, j.Name)
	}
	return out
}

// manyJobs returns n Jobs named prefix<i>, finished by finish at minute i (so higher i is newer).
func manyJobs(prefix string, n int, finish func(*jobWrapper, time.Time) *jobWrapper) []*jobWrapper {
	out := make([]*jobWrapper, 0, n)
	for i := range n {
		out = append(out, finish(job(fmt.Sprintf("%s%02d", prefix, i)), at(i)))
	}
	return out
}

func succeeded(j *jobWrapper, when time.Time) *jobWrapper { return j.succeededAt(when) }
func failed(j *jobWrapper, when time.Time) *jobWrapper    { return j.failedAt(when) }

func TestSelect(t *testing.T) {
	// §2.8 G row 3: 101 successful (success0 oldest) and 101 failed (fail101 oldest), limits 100/100.
	var g3 []*jobWrapper
	g3 = append(g3, job("success0").succeededAt(at(35)))
	for i := 1; i <= 100; i++ {
		g3 = append(g3, job(fmt.Sprintf("success%d", i)).succeededAt(at(40)))
	}
	g3 = append(g3, job("fail101").failedAt(at(35)))
	for i := 102; i <= 201; i++ {
		g3 = append(g3, job(fmt.Sprintf("fail%d", i)).failedAt(at(40)))
	}

	// 30 successful and 30 failed, shuffled by interleaving newest and oldest.
	var thirty []*jobWrapper
	s, f := manyJobs("s", 30, succeeded), manyJobs("f", 30, failed)
	for i := range 15 {
		thirty = append(thirty, s[29-i], f[i], s[i], f[29-i])
	}
	var thirtyWant []string
	for i := range 25 {
		thirtyWant = append(thirtyWant, fmt.Sprintf("s%02d", i))
	}
	for i := range 27 {
		thirtyWant = append(thirtyWant, fmt.Sprintf("f%02d", i))
	}

	cases := map[string]struct {
		jobs   []*jobWrapper
		limits Limits
		want   []string
	}{
		"G/limits 2,2 three successful": {
			jobs:   []*jobWrapper{job("name1").succeededAt(at(37)), job("name2").succeededAt(at(36)), job("name3").succeededAt(at(38))},
			limits: Limits{Successful: 2, Failed: 2},
			want:   []string{"name2"},
		},
		"G/limits 1,2 three successful three failed": {
			jobs: []*jobWrapper{
				job("success1").succeededAt(at(37)), job("success2").succeededAt(at(36)), job("success3").succeededAt(at(35)),
				job("fail1").failedAt(at(37)), job("fail2").failedAt(at(36)), job("fail3").failedAt(at(38)),
			},
			limits: Limits{Successful: 1, Failed: 2},
			want:   []string{"success3", "success2", "fail2"},
		},
		"G/default limits 100,100 with 101 of each": {
			jobs:   g3,
			limits: Limits{Successful: 100, Failed: 100},
			want:   []string{"success0", "fail101"},
		},
		"30 successful + 30 failed with limits 5/3 leaves newest 5 and 3": {
			jobs:   thirty,
			limits: Limits{Successful: 5, Failed: 3},
			want:   thirtyWant,
		},
		"limit 0 deletes every finished Job": {
			jobs:   []*jobWrapper{job("s1").succeededAt(at(2)), job("run"), job("f1").failedAt(at(1)), job("s0").succeededAt(at(1))},
			limits: Limits{},
			want:   []string{"s0", "s1", "f1"},
		},
		"negative limits count as 0": {
			jobs:   []*jobWrapper{job("s0").succeededAt(at(1)), job("f0").failedAt(at(1))},
			limits: Limits{Successful: -1, Failed: -5},
			want:   []string{"s0", "f0"},
		},
		"within limits selects nothing": {
			jobs:   []*jobWrapper{job("s0").succeededAt(at(1)), job("f0").failedAt(at(1))},
			limits: Limits{Successful: 1, Failed: 1},
			want:   nil,
		},
		"unfinished Jobs are never selected": {
			jobs: []*jobWrapper{
				job("running"),
				job("suspended").condition(batchv1.JobSuspended, corev1.ConditionTrue, at(1)),
				job("failing").condition(batchv1.JobFailureTarget, corev1.ConditionTrue, at(1)),
				job("succeeding").condition(batchv1.JobSuccessCriteriaMet, corev1.ConditionTrue, at(1)),
				job("not-complete").condition(batchv1.JobComplete, corev1.ConditionFalse, at(1)),
			},
			limits: Limits{},
			want:   nil,
		},
		"ties broken by name": {
			jobs: []*jobWrapper{
				job("c").succeededAt(at(5)), job("a").succeededAt(at(5)), job("b").succeededAt(at(5)),
				job("z").failedAt(at(5)), job("y").failedAt(at(5)),
			},
			limits: Limits{Successful: 1, Failed: 1},
			want:   []string{"a", "b", "y"},
		},
		"failed Jobs ordered by the Failed condition, not creation": {
			jobs: []*jobWrapper{
				job("old-created-late-fail").createdAt(at(-100)).failedAt(at(50)),
				job("new-created-early-fail").createdAt(at(-10)).failedAt(at(20)),
			},
			limits: Limits{Failed: 1},
			want:   []string{"new-created-early-fail"},
		},
		"successful fallback to completionTime, then creationTimestamp": {
			jobs: []*jobWrapper{
				job("by-completion").succeededAt(at(30)).withoutTransitionTimes(),
				job("by-condition").succeededAt(at(20)),
				job("by-creation").createdAt(at(25)).condition(batchv1.JobComplete, corev1.ConditionTrue, time.Time{}),
			},
			limits: Limits{Successful: 0},
			want:   []string{"by-condition", "by-creation", "by-completion"},
		},
		"failed fallback to creationTimestamp ignores completionTime": {
			jobs: func() []*jobWrapper {
				odd := job("odd-completion").createdAt(at(10)).failedAt(at(40)).withoutTransitionTimes()
				odd.Status.CompletionTime = &metav1.Time{Time: at(30)}
				return []*jobWrapper{job("by-condition").failedAt(at(20)), odd}
			}(),
			limits: Limits{Failed: 0},
			want:   []string{"odd-completion", "by-condition"},
		},
		"first terminal condition decides the class": {
			jobs: []*jobWrapper{
				job("failed-first").failedAt(at(1)).condition(batchv1.JobComplete, corev1.ConditionTrue, at(2)),
			},
			limits: Limits{Successful: 1, Failed: 0},
			want:   []string{"failed-first"},
		},
		"no jobs": {limits: Limits{}, want: nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := jobs(tc.jobs...)
			before := make([]batchv1.Job, len(in))
			for i := range in {
				before[i] = *in[i].DeepCopy()
			}

			got := Select(in, tc.limits)

			if diff := cmp.Diff(tc.want, names(got), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Select() mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, in); diff != "" {
				t.Errorf("Select() mutated its input (-before +after):\n%s", diff)
			}
		})
	}
}

func TestSelectReturnsCopies(t *testing.T) {
	in := jobs(job("a").succeededAt(at(1)))
	got := Select(in, Limits{})
	if len(got) != 1 {
		t.Fatalf("Select() returned %d Jobs, want 1", len(got))
	}
	got[0].Status.Conditions[0].Reason = "changed"
	if in[0].Status.Conditions[0].Reason != "" {
		t.Error("changing a selected Job changed the input")
	}
}
