package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

func TestTrimPod(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC))
	owner := []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "etl-abc", UID: "u1", Controller: ptr.To(true)}}
	pod := func(labels map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "etl-abc-x1", Namespace: "team-a", UID: "p1", ResourceVersion: "42",
				Labels: labels, Annotations: map[string]string{"a": "b"}, OwnerReferences: owner, CreationTimestamp: now},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now, Reason: "r", Message: "m"},
				{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: now},
			}, ContainerStatuses: []corev1.ContainerStatus{{Name: "c"}}},
		}
	}
	want := func(labels map[string]string, owners []metav1.OwnerReference) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "etl-abc-x1", Namespace: "team-a", UID: "p1", ResourceVersion: "42",
				Labels: labels, OwnerReferences: owners},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}},
		}
	}
	cases := map[string]struct {
		in   *corev1.Pod
		want *corev1.Pod
	}{
		"labelled by the Job controller": {
			in: pod(map[string]string{v1alpha1.LabelScaledJob: "etl", batchv1.JobNameLabel: "etl-abc", "job-name": "etl-abc",
				batchv1.ControllerUidLabel: "u1", "team": "a"}),
			want: want(map[string]string{v1alpha1.LabelScaledJob: "etl", batchv1.JobNameLabel: "etl-abc", "job-name": "etl-abc"}, nil),
		},
		"no Job-name label keeps the owner": {
			in:   pod(map[string]string{v1alpha1.LabelScaledJob: "etl"}),
			want: want(map[string]string{v1alpha1.LabelScaledJob: "etl"}, owner),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := trimPod(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("trimPod() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTrimJob(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC))
	owner := []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ScaledJob", Name: "etl", UID: "s1", Controller: ptr.To(true)}}
	status := batchv1.JobStatus{Succeeded: 1, CompletionTime: &now, Conditions: []batchv1.JobCondition{
		{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now, Reason: "Done", Message: "ok"}}}
	cases := map[string]struct {
		in   *batchv1.Job
		want *batchv1.Job
	}{
		"own labels and annotations, status and owner kept": {
			in: &batchv1.Job{
				ObjectMeta: metav1.ObjectMeta{Name: "etl-abc", Namespace: "team-a", CreationTimestamp: now, OwnerReferences: owner,
					Labels: map[string]string{v1alpha1.LabelScaledJob: "etl", v1alpha1.LabelMessage: "k1", "app.kubernetes.io/name": "etl", "team": "a"},
					Annotations: map[string]string{v1alpha1.AnnotationGeneration: "3", v1alpha1.AnnotationCreateToken: "t",
						"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
					ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubedispatch"}}},
				Spec: batchv1.JobSpec{Parallelism: ptr.To[int32](1), Completions: ptr.To[int32](1), BackoffLimit: ptr.To[int32](6),
					Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}},
				Status: status,
			},
			want: &batchv1.Job{
				ObjectMeta: metav1.ObjectMeta{Name: "etl-abc", Namespace: "team-a", CreationTimestamp: now, OwnerReferences: owner,
					Labels:      map[string]string{v1alpha1.LabelScaledJob: "etl", v1alpha1.LabelMessage: "k1"},
					Annotations: map[string]string{v1alpha1.AnnotationGeneration: "3", v1alpha1.AnnotationCreateToken: "t"}},
				Spec:   batchv1.JobSpec{Parallelism: ptr.To[int32](1), Completions: ptr.To[int32](1)},
				Status: status,
			},
		},
		"no annotations of its own": {
			in: &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "etl-abc", Labels: map[string]string{v1alpha1.LabelScaledJob: "etl"},
				Annotations: map[string]string{"a": "b"}}},
			want: &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "etl-abc", Labels: map[string]string{v1alpha1.LabelScaledJob: "etl"}}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := trimJob(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("trimJob() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnfinishedPods(t *testing.T) {
	cases := map[string]struct {
		phase corev1.PodPhase
		want  bool
	}{
		"pending":   {phase: corev1.PodPending, want: true},
		"running":   {phase: corev1.PodRunning, want: true},
		"unknown":   {phase: corev1.PodUnknown, want: true},
		"succeeded": {phase: corev1.PodSucceeded, want: false},
		"failed":    {phase: corev1.PodFailed, want: false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := unfinishedPods.Matches(fields.Set{"status.phase": string(tc.phase)}); got != tc.want {
				t.Errorf("unfinishedPods matches phase %s = %v, want %v", tc.phase, got, tc.want)
			}
		})
	}
}

func TestCacheOptionsFollowTheShard(t *testing.T) {
	type want struct{ Job, Pod, ScaledJob bool }
	cases := map[string]struct {
		selector string
		labels   map[string]string
		want     want
	}{
		"no shard: every managed Job and pod": {
			labels: map[string]string{v1alpha1.LabelScaledJob: "etl", "kubedispatch.io/shard": "b"},
			want:   want{Job: true, Pod: true, ScaledJob: true},
		},
		"no shard: unmanaged objects are not cached": {
			labels: map[string]string{"app": "web"},
			want:   want{ScaledJob: true},
		},
		"shard a sees its own": {
			selector: "kubedispatch.io/shard=a",
			labels:   map[string]string{v1alpha1.LabelScaledJob: "etl", "kubedispatch.io/shard": "a"},
			want:     want{Job: true, Pod: true, ScaledJob: true},
		},
		"shard a does not see shard b's": {
			selector: "kubedispatch.io/shard=a",
			labels:   map[string]string{v1alpha1.LabelScaledJob: "etl", "kubedispatch.io/shard": "b"},
		},
		"a selector on a label the dispatcher sets: Jobs and pods are not sharded": {
			selector: "app.kubernetes.io/part-of=billing",
			labels:   map[string]string{v1alpha1.LabelScaledJob: "etl", "app.kubernetes.io/part-of": "etl"},
			want:     want{Job: true, Pod: true},
		},
		"a shard for unlabelled ScaledJobs": {
			selector: "!kubedispatch.io/shard",
			labels:   map[string]string{v1alpha1.LabelScaledJob: "etl"},
			want:     want{Job: true, Pod: true, ScaledJob: true},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			sh, err := parseShard(Options{WatchLabelSelector: tc.selector})
			if err != nil {
				t.Fatal(err)
			}
			co, err := cacheOptions(Options{WatchLabelSelector: tc.selector}, sh)
			if err != nil {
				t.Fatal(err)
			}
			for obj, by := range co.ByObject {
				if _, ok := obj.(*corev1.Pod); ok && by.Field.String() != "status.phase!=Succeeded,status.phase!=Failed" {
					t.Errorf("pod field selector %q, want only unfinished pods", by.Field.String())
				}
			}
			var got want
			got.ScaledJob = true // without a ByObject entry every ScaledJob is cached
			set := labels.Set(tc.labels)
			for obj, by := range co.ByObject {
				switch obj.(type) {
				case *batchv1.Job:
					got.Job = by.Label.Matches(set)
				case *corev1.Pod:
					got.Pod = by.Label.Matches(set)
				case *v1alpha1.ScaledJob:
					got.ScaledJob = by.Label.Matches(set)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("cached (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseShard(t *testing.T) {
	cases := map[string]struct {
		selector        string
		wantKeys        []string
		wantUnshardable string
		wantJobKeys     []string
	}{
		"none": {},
		"shard keys, each once": {
			selector: "kubedispatch.io/shard in (a,b),team,!legacy,team!=x",
			wantKeys: []string{"kubedispatch.io/shard", "legacy", "team"}, wantJobKeys: []string{"kubedispatch.io/shard", "legacy", "team"},
		},
		"a key the dispatcher sets": {
			selector: "team=a,app.kubernetes.io/name=etl",
			wantKeys: []string{"app.kubernetes.io/name", "team"}, wantUnshardable: "app.kubernetes.io/name",
		},
		"a key the Job controller sets": {
			selector: "batch.kubernetes.io/job-name", wantKeys: []string{"batch.kubernetes.io/job-name"},
			wantUnshardable: "batch.kubernetes.io/job-name",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			sh, err := parseShard(Options{WatchLabelSelector: tc.selector})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantKeys, sh.keys); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
			if sh.unshardable != tc.wantUnshardable {
				t.Errorf("unshardable %q, want %q", sh.unshardable, tc.wantUnshardable)
			}
			if diff := cmp.Diff(tc.wantJobKeys, sh.jobKeys()); diff != "" {
				t.Errorf("jobKeys (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := parseShard(Options{WatchLabelSelector: "a=b=c"}); err == nil {
		t.Errorf("a bad selector gave no error")
	}
}
