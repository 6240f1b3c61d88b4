package dispatcher

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/dispatch"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// longName returns a valid ScaledJob name of n characters.
func longName(n int) string {
	return ("names-" + strings.Repeat("x", n))[:n-1] + "z"
}

// The API server refuses names and sizes that could never dispatch, saying why.
func TestNamesRefusedAtAdmission(t *testing.T) {
	f := framework.New(t)
	url := "https://sqs.us-east-1.amazonaws.com/000000000000/never-read"
	cases := map[string]struct {
		build func(b *framework.ScaledJobBuilder) *framework.ScaledJobBuilder
		name  string
		want  []string
	}{
		"64-character name": {
			name:  longName(64),
			build: func(b *framework.ScaledJobBuilder) *framework.ScaledJobBuilder { return b.SQS(url, 1) },
			want:  []string{"metadata.name must be no more than 63 characters", "label kubedispatch.io/scaledjob"},
		},
		"253-character name": {
			name:  longName(253),
			build: func(b *framework.ScaledJobBuilder) *framework.ScaledJobBuilder { return b.SQS(url, 1) },
			want:  []string{"metadata.name must be no more than 63 characters"},
		},
		"trigger named like the unnamed trigger next to it": {
			name: "reserved-trigger-name",
			build: func(b *framework.ScaledJobBuilder) *framework.ScaledJobBuilder {
				b = b.SQS(url, 1).SQS(url, 1)
				b.ScaledJob.Spec.Triggers[0].Name = "aws-sqs-queue[1]"
				b.ScaledJob.Spec.Triggers[1].Name = ""
				return b
			},
			want: []string{"spec.triggers[0].name", "must not end in [<number>]"},
		},
		"1000 triggers": {
			name: "thousand-triggers",
			build: func(b *framework.ScaledJobBuilder) *framework.ScaledJobBuilder {
				for range 1000 {
					b = b.ScaleTrigger(v1alpha1.ScaleTrigger{Type: "aws-sqs-queue", Metadata: map[string]string{"queueURL": url}})
				}
				return b
			},
			want: []string{"spec.triggers", "must have at most 64 items"},
		},
		"metadata value of 1 MB": {
			name: "megabyte-value",
			build: func(b *framework.ScaledJobBuilder) *framework.ScaledJobBuilder {
				return b.SQS(url, 1, "queueURL", strings.Repeat("q", 1<<20))
			},
			want: []string{"spec.triggers[0].metadata", "values at most 8192 characters"},
		},
		"129 metadata keys": {
			name: "many-keys",
			build: func(b *framework.ScaledJobBuilder) *framework.ScaledJobBuilder {
				var kv []string
				for i := range 129 {
					kv = append(kv, fmt.Sprintf("key%d", i), "v")
				}
				return b.SQS(url, 1, kv...)
			},
			want: []string{"spec.triggers[0].metadata", "must have at most 128 items"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := tc.build(framework.NewScaledJob(f, tc.name))
			err := f.Client.Create(f.Ctx, b.ScaledJob)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("creating the ScaledJob = %v, want Invalid", err)
			}
			t.Logf("refused: %.400s", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal %q does not say %q", err.Error(), w)
				}
			}
		})
	}
}

// A 63-character ScaledJob name works end to end: its Jobs (whose names are shortened) are created and their pods
// run. And an InvalidSpec with many field errors still leaves an event, within the API's note limit.
func TestNamesLongestNameAndLongErrors(t *testing.T) {
	f := framework.New(t)
	long := longName(v1alpha1.MaxScaledJobNameLength)
	url := f.CreateQueue("longest", nil)
	f.SendMessages(url, 3, "m")
	framework.NewScaledJob(f, long).SQS(url, 1).Max(3).RunFor("1s").Create()

	bad := framework.NewScaledJob(f, "many-errors").SQS(url, 1).Max(1)
	bad.ScaledJob.Spec.JobTargetRef.Template.Labels = map[string]string{}
	for i := range 20 {
		bad.ScaledJob.Spec.JobTargetRef.Template.Labels[fmt.Sprintf("label-%02d", i)] = strings.Repeat("v", 64)
	}
	bad.Create()

	f.StartDispatcher()

	f.Eventually("3 Jobs of the 63-character ScaledJob completing", 3*time.Minute, func() (bool, error) {
		jobs := f.JobsOf(long)
		done := 0
		for i := range jobs {
			if n := len(jobs[i].Name); n > 63 {
				return false, fmt.Errorf("job name %q has %d characters", jobs[i].Name, n)
			}
			if jobs[i].Status.Succeeded > 0 {
				done++
			}
		}
		return done >= 3, fmt.Errorf("%d Jobs, %d succeeded", len(jobs), done)
	})
	if c := framework.Condition(f.ScaledJob(long), v1alpha1.ConditionReady); c == nil || c.Reason == dispatch.ReasonJobCreateFailed {
		t.Errorf("Ready of the 63-character ScaledJob = %+v, want no JobCreateFailed", c)
	}

	f.WaitReady("many-errors", metav1.ConditionFalse, "spec.jobTargetRef.template.metadata.labels[label-00]",
		"spec.jobTargetRef.template.metadata.labels[label-19]")
	f.Eventually("an InvalidSpec event on many-errors", 2*time.Minute, func() (bool, error) {
		evs, err := f.Clientset.EventsV1().Events(f.Namespace).List(f.Ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, ev := range evs.Items {
			if ev.Regarding.Name != "many-errors" || ev.Reason != dispatch.ReasonInvalidSpec {
				continue
			}
			if len(ev.Note) > 1024 || !strings.HasPrefix(ev.Note, "[spec.jobTargetRef.template.metadata.labels[label-00]") ||
				!strings.HasSuffix(ev.Note, " more bytes)") {
				return false, fmt.Errorf("note of %d bytes: %q", len(ev.Note), ev.Note)
			}
			return true, nil
		}
		return false, fmt.Errorf("%d events, none InvalidSpec on many-errors", len(evs.Items))
	})
	if jobs := f.JobsOf("many-errors"); len(jobs) != 0 {
		t.Errorf("an invalid ScaledJob got %d Jobs", len(jobs))
	}
}
