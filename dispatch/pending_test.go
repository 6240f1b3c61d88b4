package dispatch

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// podWrapper builds pods for the pending tests.
type podWrapper struct{ corev1.Pod }

// pod starts a pod in the given phase.
func pod(phase corev1.PodPhase) *podWrapper {
	return &podWrapper{corev1.Pod{Status: corev1.PodStatus{Phase: phase}}}
}

// withConditions adds conditions with status True.
func (p *podWrapper) withConditions(types ...corev1.PodConditionType) *podWrapper {
	for _, t := range types {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue})
	}
	return p
}

// withFalseConditions adds conditions with status False.
func (p *podWrapper) withFalseConditions(types ...corev1.PodConditionType) *podWrapper {
	for _, t := range types {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionFalse})
	}
	return p
}

func (p *podWrapper) obj() corev1.Pod { return p.Pod }

func pods(ws ...*podWrapper) []corev1.Pod {
	out := make([]corev1.Pod, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.obj())
	}
	return out
}

// jobWrapper builds Jobs for the counting tests.
type jobWrapper struct{ batchv1.Job }

func job(name string) *jobWrapper {
	return &jobWrapper{batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}}
}

func (j *jobWrapper) condition(t batchv1.JobConditionType, s corev1.ConditionStatus) *jobWrapper {
	j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: t, Status: s})
	return j
}

func (j *jobWrapper) complete() *jobWrapper {
	return j.condition(batchv1.JobComplete, corev1.ConditionTrue)
}
func (j *jobWrapper) failed() *jobWrapper {
	return j.condition(batchv1.JobFailed, corev1.ConditionTrue)
}
func (j *jobWrapper) obj() batchv1.Job { return j.Job }

var readyScheduled = []string{string(corev1.PodReady), string(corev1.PodScheduled)}

// Vectors §2.8 F (TestGetPendingJobCount, TestAreAllPendingPodConditionsFulfilledBugScenario): each case
// is one unfinished Job.
func TestIsPending(t *testing.T) {
	cases := map[string]struct {
		conditions []string
		pods       []corev1.Pod
		want       bool
	}{
		"F/none Succeeded": {pods: pods(pod(corev1.PodSucceeded)), want: false},
		"F/none Running":   {pods: pods(pod(corev1.PodRunning)), want: false},
		"F/none Failed":    {pods: pods(pod(corev1.PodFailed)), want: true},
		"F/none Pending":   {pods: pods(pod(corev1.PodPending)), want: true},
		"F/none Unknown":   {pods: pods(pod(corev1.PodUnknown)), want: true},
		"F/[Ready PodScheduled] 1 pod no conditions": {
			conditions: readyScheduled, pods: pods(pod(corev1.PodPending)), want: true,
		},
		"F/[Ready PodScheduled] 1 pod Ready only": {
			conditions: readyScheduled, pods: pods(pod(corev1.PodRunning).withConditions(corev1.PodReady)), want: true,
		},
		"F/[Ready PodScheduled] 1 pod PodScheduled only": {
			conditions: readyScheduled, pods: pods(pod(corev1.PodPending).withConditions(corev1.PodScheduled)), want: true,
		},
		"F/[Ready PodScheduled] 1 pod both": {
			conditions: readyScheduled, pods: pods(pod(corev1.PodRunning).withConditions(corev1.PodReady, corev1.PodScheduled)), want: false,
		},
		"F/[Ready PodScheduled] 2 pods both + both": {
			conditions: readyScheduled,
			pods: pods(
				pod(corev1.PodRunning).withConditions(corev1.PodReady, corev1.PodScheduled),
				pod(corev1.PodRunning).withConditions(corev1.PodReady, corev1.PodScheduled),
			),
			want: false,
		},
		"F/[Ready PodScheduled] 2 pods both + Ready": {
			conditions: readyScheduled,
			pods: pods(
				pod(corev1.PodRunning).withConditions(corev1.PodReady, corev1.PodScheduled),
				pod(corev1.PodRunning).withConditions(corev1.PodReady),
			),
			want: false,
		},
		"F/[Ready PodScheduled] 2 pods Ready + PodScheduled": {
			conditions: readyScheduled,
			pods: pods(
				pod(corev1.PodRunning).withConditions(corev1.PodReady),
				pod(corev1.PodPending).withConditions(corev1.PodScheduled),
			),
			want: true,
		},
		"F/[Ready PodScheduled] 3 pods none + Ready + both": {
			conditions: readyScheduled,
			pods: pods(
				pod(corev1.PodPending),
				pod(corev1.PodRunning).withConditions(corev1.PodReady),
				pod(corev1.PodRunning).withConditions(corev1.PodReady, corev1.PodScheduled),
			),
			want: false,
		},
		"F/[Ready PodScheduled] 3 pods none + Ready + PodScheduled": {
			conditions: readyScheduled,
			pods: pods(
				pod(corev1.PodPending),
				pod(corev1.PodRunning).withConditions(corev1.PodReady),
				pod(corev1.PodPending).withConditions(corev1.PodScheduled),
			),
			want: true,
		},
		"F/[] empty list Running with Ready": {
			conditions: []string{}, pods: pods(pod(corev1.PodRunning).withConditions(corev1.PodReady)), want: false,
		},
		"F/[Ready PodScheduled] bug #6727 2 pods both + both": {
			conditions: readyScheduled,
			pods: pods(
				pod(corev1.PodRunning).withConditions(corev1.PodScheduled, corev1.PodReady),
				pod(corev1.PodRunning).withConditions(corev1.PodReady, corev1.PodScheduled),
			),
			want: false,
		},
		"no pods yet": {pods: nil, want: true},
		"no pods yet with conditions": {
			conditions: readyScheduled, pods: nil, want: true,
		},
		"one Running pod among failed ones": {
			pods: pods(pod(corev1.PodFailed), pod(corev1.PodRunning)), want: false,
		},
		"condition with status False does not count": {
			conditions: readyScheduled,
			pods:       pods(pod(corev1.PodRunning).withConditions(corev1.PodScheduled).withFalseConditions(corev1.PodReady)),
			want:       true,
		},
		"conditions ignore the phase": {
			conditions: []string{string(corev1.PodScheduled)}, pods: pods(pod(corev1.PodPending).withConditions(corev1.PodScheduled)), want: false,
		},
		"duplicate list entries are de-duplicated (KEDA: pending forever)": {
			conditions: []string{"Ready", "Ready", "PodScheduled"},
			pods:       pods(pod(corev1.PodRunning).withConditions(corev1.PodReady, corev1.PodScheduled)),
			want:       false,
		},
		"a condition listed twice on the pod counts once": {
			conditions: readyScheduled,
			pods:       pods(pod(corev1.PodRunning).withConditions(corev1.PodReady, corev1.PodReady)),
			want:       true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, IsPending(tc.pods, tc.conditions)); diff != "" {
				t.Errorf("IsPending() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIsFinished(t *testing.T) {
	cases := map[string]struct {
		job  *jobWrapper
		want bool
	}{
		"no conditions":             {job: job("a"), want: false},
		"Complete True":             {job: job("a").complete(), want: true},
		"Failed True":               {job: job("a").failed(), want: true},
		"Complete False":            {job: job("a").condition(batchv1.JobComplete, corev1.ConditionFalse), want: false},
		"Failed Unknown":            {job: job("a").condition(batchv1.JobFailed, corev1.ConditionUnknown), want: false},
		"Suspended True":            {job: job("a").condition(batchv1.JobSuspended, corev1.ConditionTrue), want: false},
		"FailureTarget True only":   {job: job("a").condition(batchv1.JobFailureTarget, corev1.ConditionTrue), want: false},
		"SuccessCriteriaMet only":   {job: job("a").condition(batchv1.JobSuccessCriteriaMet, corev1.ConditionTrue), want: false},
		"FailureTarget then Failed": {job: job("a").condition(batchv1.JobFailureTarget, corev1.ConditionTrue).failed(), want: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			j := tc.job.obj()
			if diff := cmp.Diff(tc.want, IsFinished(&j)); diff != "" {
				t.Errorf("IsFinished() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCount(t *testing.T) {
	type want struct{ Running, Pending int64 }
	cases := map[string]struct {
		jobs       []*jobWrapper
		podsByJob  map[string][]corev1.Pod
		conditions []string
		want       want
	}{
		"no jobs": {want: want{}},
		"finished jobs are not counted, even with pending pods": {
			jobs: []*jobWrapper{job("done").complete(), job("broken").failed()},
			podsByJob: map[string][]corev1.Pod{
				"done":   pods(pod(corev1.PodPending)),
				"broken": pods(pod(corev1.PodFailed)),
			},
			want: want{},
		},
		"mixed": {
			jobs: []*jobWrapper{job("run"), job("wait"), job("new"), job("done").complete()},
			podsByJob: map[string][]corev1.Pod{
				"run":  pods(pod(corev1.PodRunning)),
				"wait": pods(pod(corev1.PodPending)),
			},
			want: want{Running: 3, Pending: 2},
		},
		"with pendingPodConditions": {
			jobs: []*jobWrapper{job("ready"), job("scheduled")},
			podsByJob: map[string][]corev1.Pod{
				"ready":     pods(pod(corev1.PodRunning).withConditions(corev1.PodReady, corev1.PodScheduled)),
				"scheduled": pods(pod(corev1.PodRunning).withConditions(corev1.PodScheduled)),
			},
			conditions: readyScheduled,
			want:       want{Running: 2, Pending: 1},
		},
		"nil pod map counts every unfinished job as pending": {
			jobs: []*jobWrapper{job("a"), job("b")},
			want: want{Running: 2, Pending: 2},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			jobs := make([]batchv1.Job, 0, len(tc.jobs))
			for _, j := range tc.jobs {
				jobs = append(jobs, j.obj())
			}
			running, pending := Count(jobs, tc.podsByJob, tc.conditions)
			if diff := cmp.Diff(tc.want, want{Running: running, Pending: pending}); diff != "" {
				t.Errorf("Count() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// The dispatcher caches only unfinished pods; a succeeded pod is known from the Job's status.
func TestJobPending(t *testing.T) {
	running := []corev1.Pod{{Status: corev1.PodStatus{Phase: corev1.PodRunning}}}
	pending := []corev1.Pod{{Status: corev1.PodStatus{Phase: corev1.PodPending}}}
	cases := map[string]struct {
		succeeded  int32
		pods       []corev1.Pod
		conditions []string
		want       bool
	}{
		"no pods yet":                       {want: true},
		"a running pod":                     {pods: running},
		"a succeeded pod, no longer cached": {succeeded: 1},
		"a succeeded pod and a pending one (completions 2)": {succeeded: 1, pods: pending},
		"with a list, a succeeded pod does not count":       {succeeded: 1, conditions: []string{"Ready"}, want: true},
		"with a list, a running pod without the condition":  {pods: running, conditions: []string{"Ready"}, want: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			j := &batchv1.Job{Status: batchv1.JobStatus{Succeeded: tc.succeeded}}
			if got := JobPending(j, tc.pods, tc.conditions); got != tc.want {
				t.Errorf("JobPending() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestJobNameOf(t *testing.T) {
	owned := []metav1.OwnerReference{{Kind: "Job", Name: "from-owner", Controller: ptr.To(true)}}
	cases := map[string]struct {
		labels map[string]string
		owners []metav1.OwnerReference
		want   string
	}{
		"current label":          {labels: map[string]string{batchv1.JobNameLabel: "a", "job-name": "b"}, owners: owned, want: "a"},
		"legacy label":           {labels: map[string]string{"job-name": "b"}, owners: owned, want: "b"},
		"owner reference":        {owners: owned, want: "from-owner"},
		"nothing says which Job": {},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: tc.labels, OwnerReferences: tc.owners}}
			if got := JobNameOf(p); got != tc.want {
				t.Errorf("JobNameOf() = %q, want %q", got, tc.want)
			}
		})
	}
}
