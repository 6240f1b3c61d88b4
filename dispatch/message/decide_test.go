package message

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

func TestNext(t *testing.T) {
	cases := map[string]struct {
		attempts []Attempt
		max      int32
		want     Action
	}{
		"no Job yet: attempt 1":         {max: 3, want: Action{Kind: Create, Attempt: 1}},
		"unfinished: adopt":             {attempts: []Attempt{{Number: 1, Job: "a-1"}}, max: 3, want: Action{Kind: Adopt, Attempt: 1, Job: "a-1"}},
		"complete (ack was lost): ack":  {attempts: []Attempt{{Number: 1, Job: "a-1", State: Complete}}, max: 3, want: Action{Kind: Ack, Attempt: 1, Job: "a-1"}},
		"failed below max: next":        {attempts: []Attempt{{Number: 1, Job: "a-1", State: Failed}}, max: 3, want: Action{Kind: Create, Attempt: 2}},
		"latest attempt decides":        {attempts: []Attempt{{Number: 2, Job: "a-2"}, {Number: 1, Job: "a-1", State: Failed}}, max: 3, want: Action{Kind: Adopt, Attempt: 2, Job: "a-2"}},
		"latest complete after failure": {attempts: []Attempt{{Number: 1, Job: "a-1", State: Failed}, {Number: 2, Job: "a-2", State: Complete}}, max: 2, want: Action{Kind: Ack, Attempt: 2, Job: "a-2"}},
		"failed at max: dead-letter": {attempts: []Attempt{{Number: 1, Job: "a-1", State: Failed}, {Number: 2, Job: "a-2", State: Failed, Reason: "BackoffLimitExceeded: boom"}}, max: 2,
			want: Action{Kind: DeadLetter, Attempt: 2, Job: "a-2", Reason: "all 2 deliveries failed (maxDeliveries 2); last Job a-2: BackoffLimitExceeded: boom"}},
		"max lowered below the attempts made: dead-letter": {attempts: []Attempt{{Number: 3, Job: "a-3", State: Failed}}, max: 2,
			want: Action{Kind: DeadLetter, Attempt: 3, Job: "a-3", Reason: "all 3 deliveries failed (maxDeliveries 2); last Job a-3: the Job failed"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Next(tc.attempts, tc.max)); diff != "" {
				t.Errorf("Next (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSettle(t *testing.T) {
	cases := map[string]struct {
		a    Attempt
		max  int32
		want ActionKind
	}{
		"complete: ack":              {a: Attempt{Number: 1, State: Complete}, max: 3, want: Ack},
		"failed below max: release":  {a: Attempt{Number: 2, State: Failed}, max: 3, want: Release},
		"failed at max: dead-letter": {a: Attempt{Number: 3, State: Failed}, max: 3, want: DeadLetter},
		"unfinished: keep holding":   {a: Attempt{Number: 1}, max: 3, want: Adopt},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := Settle(tc.a, tc.max).Kind; got != tc.want {
				t.Errorf("Settle = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFreeSlots(t *testing.T) {
	cases := map[string]struct {
		max        int32
		unfinished []string
		held       []string
		want       int
	}{
		"empty":                                 {max: 5, want: 5},
		"held Jobs in the cache count once":     {max: 5, unfinished: []string{"a", "b"}, held: []string{"a", "b"}, want: 3},
		"held Job not in the cache yet counts":  {max: 5, unfinished: []string{"a"}, held: []string{"a", "b"}, want: 3},
		"held message without a Job yet counts": {max: 5, held: []string{""}, want: 4},
		"unfinished Jobs of messages not held":  {max: 5, unfinished: []string{"x", "y", "z"}, want: 2},
		"never negative":                        {max: 2, unfinished: []string{"x", "y", "z"}, held: []string{""}, want: 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			set := map[string]bool{}
			for _, u := range tc.unfinished {
				set[u] = true
			}
			if got := FreeSlots(tc.max, set, tc.held); got != tc.want {
				t.Errorf("FreeSlots = %d, want %d", got, tc.want)
			}
		})
	}
}

func msgJob(name, key string, attempt string, state JobState, outcome string) batchv1.Job {
	j := batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1alpha1.LabelMessage: key},
		Annotations: map[string]string{v1alpha1.AnnotationDelivery: attempt}}}
	if outcome != "" {
		j.Annotations[v1alpha1.AnnotationMessageOutcome] = outcome
	}
	switch state {
	case Complete:
		j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	case Failed:
		j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "boom"}}
	}
	return j
}

func TestPrunable(t *testing.T) {
	jobs := []batchv1.Job{
		msgJob("a-1", "a", "1", Failed, v1alpha1.OutcomeReleased), // followed by a-2: prunable
		msgJob("a-2", "a", "2", Complete, v1alpha1.OutcomeAcked),  // settled
		msgJob("b-1", "b", "1", Failed, v1alpha1.OutcomeReleased), // latest of b: the record of its attempt
		msgJob("c-1", "c", "1", Complete, ""),                     // complete, ack not recorded yet
		msgJob("d-1", "d", "1", Unfinished, ""),                   // running
		msgJob("e-2", "e", "2", Failed, v1alpha1.OutcomeDeadLettered),
		msgJob("f-1", "f", "1", Complete, ""), // finished long ago, its message never came back
	}
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for i := range jobs {
		for j := range jobs[i].Status.Conditions {
			jobs[i].Status.Conditions[j].LastTransitionTime = metav1.NewTime(now.Add(-time.Hour))
		}
	}
	jobs[6].Status.Conditions[0].LastTransitionTime = metav1.NewTime(now.Add(-UnsettledRetention - time.Minute))
	var got []string
	for _, j := range Prunable(jobs, now) {
		got = append(got, j.Name)
	}
	if diff := cmp.Diff([]string{"a-1", "a-2", "e-2", "f-1"}, got); diff != "" {
		t.Errorf("Prunable (-want +got):\n%s", diff)
	}
}

func TestStateOf(t *testing.T) {
	if st, reason := StateOf(addr(msgJob("x", "k", "1", Failed, ""))); st != Failed || reason != "BackoffLimitExceeded: boom" {
		t.Errorf("StateOf(failed) = %v, %q", st, reason)
	}
	if st, _ := StateOf(addr(msgJob("x", "k", "1", Unfinished, ""))); st != Unfinished {
		t.Errorf("StateOf(running) = %v", st)
	}
	if n := AttemptOf(addr(msgJob("x", "k", "zz", Unfinished, ""))); n != 0 {
		t.Errorf("AttemptOf(malformed) = %d, want 0", n)
	}
}

func addr[T any](v T) *T { return &v }

func TestRetryDelay(t *testing.T) {
	cases := map[int32]time.Duration{1: 5 * time.Second, 2: 10 * time.Second, 3: 20 * time.Second, 8: 5 * time.Minute, 100: 5 * time.Minute}
	for attempt, want := range cases {
		if got := RetryDelay(attempt); got != want {
			t.Errorf("RetryDelay(%d) = %v, want %v", attempt, got, want)
		}
	}
}
