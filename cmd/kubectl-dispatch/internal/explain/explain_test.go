package explain

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files from the current output")

// figures are the numbers of an Explanation the table tests compare.
type figures struct {
	Active         bool
	ScaleTo        int64
	MaxScale       int64
	MinE, MaxE     int64
	Running        int64
	Pending        int64
	Strategy       string
	EffectiveMax   int64
	WouldCreate    int64
	Create         int64
	Blocked        bool
	FailedTriggers []string
}

func figuresOf(x Explanation) figures {
	return figures{
		Active: x.Combined.Active, ScaleTo: x.Combined.ScaleTo, MaxScale: x.Combined.MaxScale,
		MinE: x.Replicas.MinEffective, MaxE: x.Replicas.MaxEffective,
		Running: x.Jobs.Running, Pending: x.Jobs.Pending, Strategy: x.Strategy, EffectiveMax: x.EffectiveMax,
		WouldCreate: x.WouldCreate, Create: x.Create, Blocked: x.Create != x.WouldCreate || hasBlocker(x),
		FailedTriggers: x.FailedTriggers,
	}
}

func hasBlocker(x Explanation) bool { return len(x.Blockers) > 0 }

func input(sj *v1alpha1.ScaledJob, jobs []batchv1.Job, pods []corev1.Pod) Input {
	return Input{ScaledJob: sj, Jobs: jobs, Pods: pods}
}

// TestExplain covers the KEDA docs table (keda-scaledjob-reference.md §2.8 I, the same vectors as
// dispatch.TestDecide's "I/..." cases), derived vectors, and paused, invalid and trigger-failing ScaledJobs.
func TestExplain(t *testing.T) {
	r1Jobs, r1Pods := running(1)
	r3Jobs, r3Pods := running(3)
	cases := map[string]struct {
		in   Input
		want figures
	}{
		"I/Q10 max3 T1 R0": {
			in:   input(scaledJob(withMax(3), withReading("10", "1")), nil, nil),
			want: figures{Active: true, ScaleTo: 10, MaxScale: 3, MaxE: 3, Strategy: "default", EffectiveMax: 3, WouldCreate: 3, Create: 3},
		},
		"I/Q10 max3 T2 R0": {
			in:   input(scaledJob(withMax(3), withReading("10", "2")), nil, nil),
			want: figures{Active: true, ScaleTo: 10, MaxScale: 3, MaxE: 3, Strategy: "default", EffectiveMax: 3, WouldCreate: 3, Create: 3},
		},
		"I/Q10 max3 T1 R1": {
			in:   input(scaledJob(withMax(3), withReading("10", "1")), r1Jobs, r1Pods),
			want: figures{Active: true, ScaleTo: 10, MaxScale: 3, MaxE: 3, Running: 1, Strategy: "default", EffectiveMax: 2, WouldCreate: 2, Create: 2},
		},
		"I/Q10 max100 T1 R0": {
			in:   input(scaledJob(withMax(100), withReading("10", "1")), nil, nil),
			want: figures{Active: true, ScaleTo: 10, MaxScale: 10, MaxE: 100, Strategy: "default", EffectiveMax: 10, WouldCreate: 10, Create: 10},
		},
		"I/Q4 max3 T5 R0": {
			in:   input(scaledJob(withMax(3), withReading("4", "5")), nil, nil),
			want: figures{Active: true, ScaleTo: 4, MaxScale: 1, MaxE: 3, Strategy: "default", EffectiveMax: 1, WouldCreate: 1, Create: 1},
		},
		"D1 min2 max10 Q3 R0 fills the baseline only": {
			in:   input(scaledJob(withMin(2), withMax(10), withReading("3", "1")), nil, nil),
			want: figures{Active: true, ScaleTo: 3, MaxScale: 3, MinE: 2, MaxE: 8, Strategy: "default", EffectiveMax: 2, WouldCreate: 2, Create: 2},
		},
		"D4 eager Q6 R3": {
			in:   input(scaledJob(withMax(10), withStrategy("eager"), withReading("6", "1")), r3Jobs, r3Pods),
			want: figures{Active: true, ScaleTo: 6, MaxScale: 6, MaxE: 10, Running: 3, Strategy: "eager", EffectiveMax: 6, WouldCreate: 6, Create: 6},
		},
		"pending Jobs: no pods and a Pending pod count as pending (accurate)": {
			in: input(scaledJob(withMax(10), withStrategy("accurate"), withReading("5", "1")),
				[]batchv1.Job{job("reports-a", ""), job("reports-b", ""), job("reports-c", batchv1.JobComplete), job("reports-d", batchv1.JobFailed)},
				[]corev1.Pod{pod("reports-b", corev1.PodPending)}),
			want: figures{Active: true, ScaleTo: 5, MaxScale: 5, MaxE: 10, Running: 2, Pending: 2, Strategy: "accurate", EffectiveMax: 3, WouldCreate: 3, Create: 3},
		},
		"paused: the decision is shown, nothing is created": {
			in:   input(scaledJob(paused, withMax(3), withReading("10", "1")), nil, nil),
			want: figures{Active: true, ScaleTo: 10, MaxScale: 3, MaxE: 3, Strategy: "default", EffectiveMax: 3, WouldCreate: 3, Create: 0, Blocked: true},
		},
		"invalid spec: Validate fails, nothing is created": {
			in: input(scaledJob(withMax(10), withStrategy("custom"), withReading("10", "1"),
				withReady(metav1.ConditionFalse, "InvalidSpec", "spec.scalingStrategy.customScalingRunningJobPercentage: Required value")), nil, nil),
			want: figures{Active: true, ScaleTo: 10, MaxScale: 10, MaxE: 10, Strategy: "default", EffectiveMax: 10, WouldCreate: 10, Create: 0, Blocked: true},
		},
		"trigger failing with max: only the baseline": {
			in: input(scaledJob(withMin(1), withMax(10), withReading("10", "1"), withTriggerError("reading queue orders: AccessDenied"),
				withReady(metav1.ConditionFalse, "TriggerError", "trigger orders: AccessDenied")), nil, nil),
			want: figures{Active: true, MinE: 1, MaxE: 9, Strategy: "default", EffectiveMax: 1, WouldCreate: 1, Create: 1, Blocked: true,
				FailedTriggers: []string{"orders"}},
		},
		"failing Jobs back-off: three failures in a row, the probe is due": {
			in: Input{ScaledJob: scaledJob(withMax(10), withReading("10", "1")), Now: sampled.Add(time.Minute),
				Jobs: []batchv1.Job{failedJob("reports-f1", 1), failedJob("reports-f2", 2), failedJob("reports-f3", 3)}},
			want: figures{Active: true, ScaleTo: 10, MaxScale: 10, MaxE: 10, Strategy: "default", EffectiveMax: 10, WouldCreate: 10, Create: 1, Blocked: true},
		},
		"failing Jobs back-off: waiting for the next probe": {
			in: Input{ScaledJob: scaledJob(withMax(10), withReading("10", "1")), Now: sampled.Add(5 * time.Second),
				Jobs: []batchv1.Job{failedJob("reports-f1", 1), failedJob("reports-f2", 2), failedJob("reports-f3", 3)}},
			want: figures{Active: true, ScaleTo: 10, MaxScale: 10, MaxE: 10, Strategy: "default", EffectiveMax: 10, WouldCreate: 10, Create: 0, Blocked: true},
		},
		"no reading yet counts as failed": {
			in:   input(scaledJob(withMax(10)), nil, nil),
			want: figures{MaxE: 10, Strategy: "default", Blocked: true, FailedTriggers: []string{"orders"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := figuresOf(Explain(tc.in))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Explain mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExplainPendingReasons(t *testing.T) {
	sj := scaledJob(withMax(10), withReading("5", "1"), func(sj *v1alpha1.ScaledJob) {
		sj.Spec.ScalingStrategy.PendingPodConditions = []string{"Ready", "PodScheduled"}
	})
	jobs := []batchv1.Job{job("reports-a", ""), job("reports-b", ""), job("reports-c", ""), job("other", "")}
	jobs[3].OwnerReferences = nil // labelled, but not controlled by the ScaledJob
	pods := []corev1.Pod{
		pod("reports-a", corev1.PodRunning, corev1.PodScheduled),
		pod("reports-b", corev1.PodRunning, corev1.PodReady, corev1.PodScheduled),
	}
	x := Explain(input(sj, jobs, pods))
	want := []Job{
		{Name: "reports-a", State: StatePending, Why: "no pod has all of pendingPodConditions [Ready, PodScheduled] True (reports-a-pod Ready=missing,PodScheduled=True)"},
		{Name: "reports-b", State: StateRunning, Why: "a pod has all of pendingPodConditions [Ready, PodScheduled] True (reports-b-pod Ready=True,PodScheduled=True)"},
		{Name: "reports-c", State: StatePending, Why: "no pods yet"},
	}
	if diff := cmp.Diff(want, x.Unfinished); diff != "" {
		t.Errorf("Unfinished mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(JobCounts{Running: 3, Pending: 2, Ignored: 1}, x.Jobs); diff != "" {
		t.Errorf("Jobs mismatch (-want +got):\n%s", diff)
	}
}

func TestCompare(t *testing.T) {
	jobs, pods := running(3)
	sj := scaledJob(withMax(10), withReading("6", "1"))
	w, err := ParseWhatIf("strategy=eager,maxReplicaCount=50")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compare(input(sj, jobs, pods), w)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := [2]int64{c.Current.Create, c.Changed.Create}, [2]int64{3, 6}; got != want {
		t.Errorf("Create current/what-if = %v, want %v", got, want)
	}
	if sj.Spec.ScalingStrategy.Strategy != "" || *sj.Spec.MaxReplicaCount != 10 {
		t.Errorf("Compare modified its input: %+v", sj.Spec)
	}
}

func TestParseWhatIf(t *testing.T) {
	cases := map[string]struct {
		in      string
		want    WhatIf
		wantErr string
	}{
		"two settings": {
			in:   "strategy=eager, maxReplicaCount=50",
			want: WhatIf{Settings: []Setting{{"strategy", "eager"}, {"maxReplicaCount", "50"}}},
		},
		"unknown key": {in: "replicas=3", wantErr: `unknown setting "replicas"`},
		"not a pair":  {in: "eager", wantErr: `"eager" is not key=value`},
		"empty":       {in: " , ", wantErr: "no settings"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseWhatIf(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseWhatIf(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseWhatIf mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := (WhatIf{Settings: []Setting{{"maxReplicaCount", "x"}}}).Apply(scaledJob()); err == nil {
		t.Error("Apply with maxReplicaCount=x succeeded, want an error")
	}
}

// TestPrintGolden compares the printed text with testdata/<case>.golden; refresh with -update.
func TestPrintGolden(t *testing.T) {
	r1Jobs, r1Pods := running(1)
	cases := map[string]struct {
		in     Input
		whatIf string
	}{
		"docs-table-q10-max3-r1": {in: input(scaledJob(withMax(3), withReading("10", "1")), r1Jobs, r1Pods)},
		"paused":                 {in: input(scaledJob(paused, withMax(3), withReading("10", "1")), nil, nil)},
		"invalid": {in: input(scaledJob(withMax(10), withStrategy("custom"), withReading("10", "1"),
			withReady(metav1.ConditionFalse, "InvalidSpec", "spec.scalingStrategy.customScalingRunningJobPercentage: Required value")), nil, nil)},
		"trigger-failing": {in: input(scaledJob(withMin(1), withMax(10), withReading("10", "1"),
			withTriggerError("reading queue orders: AccessDenied"),
			withReady(metav1.ConditionFalse, "TriggerError", "trigger orders: AccessDenied")), nil, nil)},
		"pending": {in: input(scaledJob(withMax(10), withStrategy("accurate"), withReading("5", "1")),
			[]batchv1.Job{job("reports-a", ""), job("reports-b", ""), job("reports-c", batchv1.JobComplete), job("reports-d", batchv1.JobFailed)},
			[]corev1.Pod{pod("reports-b", corev1.PodPending)})},
		"what-if-eager-max50": {in: input(scaledJob(withMax(10), withReading("6", "1")), r1Jobs, r1Pods), whatIf: "strategy=eager,maxReplicaCount=50"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if tc.whatIf == "" {
				if err := Print(&buf, Explain(tc.in)); err != nil {
					t.Fatal(err)
				}
			} else {
				w, err := ParseWhatIf(tc.whatIf)
				if err != nil {
					t.Fatal(err)
				}
				c, err := Compare(tc.in, w)
				if err != nil {
					t.Fatal(err)
				}
				if err := PrintComparison(&buf, c); err != nil {
					t.Fatal(err)
				}
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if diff := cmp.Diff(string(want), buf.String()); diff != "" {
				t.Errorf("printed text mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPrintSummaryGolden compares watch's view with testdata/summary-*.golden; refresh with -update.
func TestPrintSummaryGolden(t *testing.T) {
	r1Jobs, r1Pods := running(1)
	now := sampled.Add(30 * time.Second)
	cases := map[string]Input{
		"summary-running": input(scaledJob(withMax(3), withReading("10", "1"), func(sj *v1alpha1.ScaledJob) {
			sj.Status.LastDecision = &v1alpha1.Decision{Time: sampled, JobsCreated: 2, Reason: "backlog 10 on orders (target 1) wants 10 Jobs; 1 running, 0 pending, cap 3, default strategy: creating 2 Jobs"}
		}), r1Jobs, r1Pods),
		"summary-paused-failing": input(scaledJob(paused, withMax(3), withReading("10", "1"), withTriggerError("reading queue orders: AccessDenied")), nil, nil),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := PrintSummary(&buf, Explain(in), now); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if diff := cmp.Diff(string(want), buf.String()); diff != "" {
				t.Errorf("summary mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
