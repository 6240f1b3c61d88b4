package jobtemplate

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

const testUID = types.UID("0f9e1c1e-8d0a-4a55-9f3c-2b7c7f0d2a11")

// makeScaledJob returns ScaledJob test/test with one container and no labels or annotations, changed by mods.
func makeScaledJob(mods ...func(*v1alpha1.ScaledJob)) *v1alpha1.ScaledJob {
	sj := &v1alpha1.ScaledJob{
		ObjectMeta: metav1.ObjectMeta{Name: "test", Namespace: "test", UID: testUID},
		Spec: v1alpha1.ScaledJobSpec{
			JobTargetRef: batchv1.JobSpec{
				Template: corev1.PodTemplateSpec{
					Spec: corev1.PodSpec{
						Containers: []corev1.Container{{Name: "worker", Image: "example.com/worker:1"}},
					},
				},
			},
			Triggers: []v1alpha1.ScaleTrigger{{Type: "cron"}},
		},
	}
	for _, m := range mods {
		m(sj)
	}
	return sj
}

// makeJob returns the Job Build makes from makeScaledJob() with no mods, named name, changed by mods.
func makeJob(name string, mods ...func(*batchv1.Job)) *batchv1.Job {
	job := &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: "test",
			Labels: map[string]string{
				"kubedispatch.io/scaledjob":    "test",
				"app.kubernetes.io/name":       "test",
				"app.kubernetes.io/part-of":    "test",
				"app.kubernetes.io/managed-by": "kubedispatch",
				"app.kubernetes.io/component":  "job",
			},
			Annotations: map[string]string{"kubedispatch.io/generation": "0"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         "kubedispatch.io/v1alpha1",
				Kind:               "ScaledJob",
				Name:               "test",
				UID:                testUID,
				Controller:         ptr.To(true),
				BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"kubedispatch.io/scaledjob": "test"}},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyOnFailure,
					Containers:    []corev1.Container{{Name: "worker", Image: "example.com/worker:1"}},
				},
			},
		},
	}
	for _, m := range mods {
		m(job)
	}
	return job
}

func TestBuild(t *testing.T) {
	tests := map[string]struct {
		sj        *v1alpha1.ScaledJob
		name      string
		shardKeys []string
		want      *batchv1.Job
		wantErr   error
	}{
		"minimal": {
			sj:   makeScaledJob(),
			name: "test-abcde",
			want: makeJob("test-abcde"),
		},
		// KEDA TestGenerateJobs (reference §2.8 H): labels test=test and annotation test=test on the ScaledJob,
		// generation 0, give those plus the managed labels and the generation annotation, and restartPolicy
		// OnFailure. KEDA's app.kubernetes.io/version label has no counterpart here.
		"KEDA TestGenerateJobs analogue": {
			sj: makeScaledJob(func(sj *v1alpha1.ScaledJob) {
				sj.Labels = map[string]string{"test": "test"}
				sj.Annotations = map[string]string{"test": "test"}
			}),
			name: "test-x2k9p",
			want: makeJob("test-x2k9p", func(j *batchv1.Job) {
				j.Labels["test"] = "test"
				j.Annotations["test"] = "test"
			}),
		},
		"managed labels win over the ScaledJob's labels": {
			sj: makeScaledJob(func(sj *v1alpha1.ScaledJob) {
				sj.Labels = map[string]string{
					"team":                         "pdf",
					"kubedispatch.io/scaledjob":    "someone-else",
					"app.kubernetes.io/name":       "renderer",
					"app.kubernetes.io/managed-by": "helm",
					"app.kubernetes.io/component":  "worker",
				}
			}),
			name: "test-abcde",
			want: makeJob("test-abcde", func(j *batchv1.Job) { j.Labels["team"] = "pdf" }),
		},
		"pod template labels are kept and gain the scaledjob label": {
			sj: makeScaledJob(func(sj *v1alpha1.ScaledJob) {
				sj.Spec.JobTargetRef.Template.Labels = map[string]string{
					"app":                       "pdf",
					"kubedispatch.io/scaledjob": "stale",
				}
			}),
			name: "test-abcde",
			want: makeJob("test-abcde", func(j *batchv1.Job) {
				j.Spec.Template.Labels = map[string]string{"app": "pdf", "kubedispatch.io/scaledjob": "test"}
			}),
		},
		"ScaledJob labels do not reach the pod template": {
			sj:   makeScaledJob(func(sj *v1alpha1.ScaledJob) { sj.Labels = map[string]string{"team": "pdf"} }),
			name: "test-abcde",
			want: makeJob("test-abcde", func(j *batchv1.Job) { j.Labels["team"] = "pdf" }),
		},
		"shard keys: the ScaledJob's value reaches the pod template, a key it lacks is removed": {
			sj: makeScaledJob(func(sj *v1alpha1.ScaledJob) {
				sj.Labels = map[string]string{"kubedispatch.io/shard": "a", "team": "pdf"}
				sj.Spec.JobTargetRef.Template.Labels = map[string]string{"kubedispatch.io/shard": "b", "zone": "x", "app": "pdf"}
			}),
			name:      "test-abcde",
			shardKeys: []string{"kubedispatch.io/shard", "zone"},
			want: makeJob("test-abcde", func(j *batchv1.Job) {
				j.Labels["kubedispatch.io/shard"] = "a"
				j.Labels["team"] = "pdf"
				j.Spec.Template.Labels = map[string]string{"kubedispatch.io/shard": "a", "app": "pdf", "kubedispatch.io/scaledjob": "test"}
			}),
		},
		"annotations: generation set, kubectl and kubedispatch.io keys not copied": {
			sj: makeScaledJob(func(sj *v1alpha1.ScaledJob) {
				sj.Generation = 7
				sj.Annotations = map[string]string{
					"owner":                            "pdf-team",
					corev1.LastAppliedConfigAnnotation: `{"apiVersion":"kubedispatch.io/v1alpha1"}`,
					v1alpha1.AnnotationPaused:          "false",
					v1alpha1.AnnotationGeneration:      "3",
				}
			}),
			name: "test-abcde",
			want: makeJob("test-abcde", func(j *batchv1.Job) {
				j.Annotations = map[string]string{"owner": "pdf-team", "kubedispatch.io/generation": "7"}
			}),
		},
		"restartPolicy Never is kept": {
			sj: makeScaledJob(func(sj *v1alpha1.ScaledJob) {
				sj.Spec.JobTargetRef.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
			}),
			name: "test-abcde",
			want: makeJob("test-abcde", func(j *batchv1.Job) {
				j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
			}),
		},
		"the whole JobSpec is copied": {
			sj: makeScaledJob(func(sj *v1alpha1.ScaledJob) {
				s := &sj.Spec.JobTargetRef
				s.Parallelism = ptr.To[int32](2)
				s.Completions = ptr.To[int32](4)
				s.BackoffLimit = ptr.To[int32](6)
				s.ActiveDeadlineSeconds = ptr.To[int64](600)
				s.TTLSecondsAfterFinished = ptr.To[int32](300)
				s.Template.Annotations = map[string]string{"sidecar.istio.io/inject": "false"}
				s.Template.Spec.ServiceAccountName = "pdf"
				s.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "QUEUE", Value: "orders"}}
			}),
			name: "test-abcde",
			want: makeJob("test-abcde", func(j *batchv1.Job) {
				s := &j.Spec
				s.Parallelism = ptr.To[int32](2)
				s.Completions = ptr.To[int32](4)
				s.BackoffLimit = ptr.To[int32](6)
				s.ActiveDeadlineSeconds = ptr.To[int64](600)
				s.TTLSecondsAfterFinished = ptr.To[int32](300)
				s.Template.Annotations = map[string]string{"sidecar.istio.io/inject": "false"}
				s.Template.Spec.ServiceAccountName = "pdf"
				s.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "QUEUE", Value: "orders"}}
			}),
		},
		"no containers": {
			sj: makeScaledJob(func(sj *v1alpha1.ScaledJob) {
				sj.Spec.JobTargetRef.Template.Spec.Containers = nil
			}),
			name:    "test-abcde",
			wantErr: ErrNoContainers,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Build(tc.sj, tc.name, tc.shardKeys...)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Build() error = %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Build() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildErrorNamesTheObjectAndField(t *testing.T) {
	sj := makeScaledJob(func(sj *v1alpha1.ScaledJob) { sj.Spec.JobTargetRef.Template.Spec.Containers = nil })
	_, err := Build(sj, "test-abcde")
	want := "building job for ScaledJob test/test: spec.jobTargetRef.template.spec.containers: " +
		"at least one container is required"
	if err == nil || err.Error() != want {
		t.Errorf("Build() error = %v, want %q", err, want)
	}
}

// TestBuildDoesNotMutate checks both that Build leaves its input alone and that the Job shares no memory with it:
// changing the Job afterwards must not reach the ScaledJob, which may live in an informer cache.
func TestBuildDoesNotMutate(t *testing.T) {
	tests := map[string]*v1alpha1.ScaledJob{
		"no labels anywhere": makeScaledJob(),
		"labels, annotations and a full template": makeScaledJob(func(sj *v1alpha1.ScaledJob) {
			sj.Generation = 4
			sj.Labels = map[string]string{"team": "pdf", "app.kubernetes.io/name": "renderer"}
			sj.Annotations = map[string]string{"owner": "pdf-team", v1alpha1.AnnotationPaused: "false"}
			s := &sj.Spec.JobTargetRef
			s.BackoffLimit = ptr.To[int32](1)
			s.Template.Labels = map[string]string{"app": "pdf"}
			s.Template.Annotations = map[string]string{"a": "b"}
			s.Template.Spec.Containers[0].Args = []string{"--render"}
			s.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "QUEUE", Value: "orders"}}
		}),
	}
	for name, sj := range tests {
		t.Run(name, func(t *testing.T) {
			before := sj.DeepCopy()
			job, err := Build(sj, "test-abcde")
			if err != nil {
				t.Fatalf("Build() error = %v", err)
			}
			if diff := cmp.Diff(before, sj); diff != "" {
				t.Fatalf("Build() mutated the ScaledJob (-before +after):\n%s", diff)
			}

			job.Labels["team"] = "changed"
			job.Annotations["owner"] = "changed"
			job.Spec.Template.Labels["app"] = "changed"
			job.Spec.Template.Spec.Containers[0].Image = "changed"
			job.Spec.Template.Spec.Containers[0].Args = append(job.Spec.Template.Spec.Containers[0].Args, "changed")
			*job.OwnerReferences[0].Controller = false
			if job.Spec.BackoffLimit != nil {
				*job.Spec.BackoffLimit = 99
			}
			if diff := cmp.Diff(before, sj); diff != "" {
				t.Errorf("the Job shares memory with the ScaledJob (-before +after):\n%s", diff)
			}
		})
	}
}

func TestName(t *testing.T) {
	long := strings.Repeat("a", 70)
	tests := map[string]struct {
		scaledJob string
		suffix    string
		want      string
	}{
		"short name": {
			scaledJob: "pdf", suffix: "x2k9p", want: "pdf-x2k9p",
		},
		"57 characters fit exactly": {
			scaledJob: strings.Repeat("a", 57), suffix: "x2k9p", want: strings.Repeat("a", 57) + "-x2k9p",
		},
		"58 characters are cut to 57": {
			scaledJob: strings.Repeat("a", 58), suffix: "x2k9p", want: strings.Repeat("a", 57) + "-x2k9p",
		},
		"long name is cut": {
			scaledJob: long, suffix: "x2k9p", want: long[:57] + "-x2k9p",
		},
		"a cut that ends in '-' or '.' drops them": {
			scaledJob: strings.Repeat("a", 54) + "-.-b-long-tail", suffix: "x2k9p",
			want: strings.Repeat("a", 54) + "-x2k9p",
		},
		"a longer suffix leaves less of the name": {
			scaledJob: long, suffix: "0123456789", want: long[:52] + "-0123456789",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Name(tc.scaledJob, func() string { return tc.suffix })
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Name() mismatch (-want +got):\n%s", diff)
			}
			if len(got) > MaxNameLength {
				t.Errorf("Name() = %q is %d characters, want at most %d", got, len(got), MaxNameLength)
			}
			if errs := validation.IsDNS1123Label(got); len(errs) != 0 {
				t.Errorf("Name() = %q is not a valid label value: %v", got, errs)
			}
		})
	}
}

func TestRandomSuffix(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9]{5}$`)
	for range 100 {
		if s := RandomSuffix(); !valid.MatchString(s) {
			t.Fatalf("RandomSuffix() = %q, want 5 lowercase alphanumeric characters", s)
		}
	}
}

func TestJobName(t *testing.T) {
	long := strings.Repeat("a", 63)
	tests := map[string]struct {
		scaledJob   string
		completions int32 // > 0: an Indexed Job with that many completions
		want        string
	}{
		"short name":                  {scaledJob: "pdf", want: "pdf-x2k9p"},
		"63-character ScaledJob name": {scaledJob: long, want: long[:57] + "-x2k9p"},
		"Indexed Job with 1 completion keeps room for the pod hostname's -0": {
			scaledJob: long, completions: 1, want: long[:55] + "-x2k9p",
		},
		"Indexed Job with 2147483647 completions keeps room for -2147483646": {
			scaledJob: long, completions: math.MaxInt32, want: long[:46] + "-x2k9p",
		},
		"Indexed Job with a short name is not cut": {scaledJob: "pdf", completions: 100, want: "pdf-x2k9p"},
		"a cut that ends in '.' drops it": {
			scaledJob: strings.Repeat("a", 56) + ".b", want: strings.Repeat("a", 56) + "-x2k9p",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sj := makeScaledJob(func(sj *v1alpha1.ScaledJob) {
				sj.Name = tc.scaledJob
				if tc.completions > 0 {
					sj.Spec.JobTargetRef.CompletionMode = ptr.To(batchv1.IndexedCompletion)
					sj.Spec.JobTargetRef.Completions = ptr.To(tc.completions)
				}
			})
			got := JobName(sj, func() string { return "x2k9p" })
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("JobName() mismatch (-want +got):\n%s", diff)
			}
			host := got
			if tc.completions > 0 {
				host = fmt.Sprintf("%s-%d", got, tc.completions-1)
			}
			if errs := validation.IsDNS1123Label(host); len(errs) != 0 {
				t.Errorf("JobName() = %q gives the pod hostname %q, not a DNS-1123 label: %v", got, host, errs)
			}
		})
	}
}

// TestLongestNameFitsEverywhere builds count-mode and message-mode Jobs (and the payload Secret) of ScaledJobs
// with names up to the 63 characters admission allows, and checks every name and label value the API server
// checks: Job and Secret names, the label the Job controller adds to pods (batch.kubernetes.io/job-name), and the
// labels Build sets from the ScaledJob's name.
func TestLongestNameFitsEverywhere(t *testing.T) {
	tests := map[string]string{
		"1 character":                      "a",
		"42 characters":                    strings.Repeat("b", 42),
		"57 characters":                    strings.Repeat("c", 57),
		"58 characters":                    strings.Repeat("d", 58),
		"63 characters":                    strings.Repeat("e", 63),
		"63 characters with dots":          strings.Repeat("f.", 31) + "f",
		"63 characters, '-' where cut":     strings.Repeat("g", 50) + strings.Repeat("-", 12) + "g",
		"63 characters, '.' where cut":     strings.Repeat("h", 56) + "." + strings.Repeat("h", 6),
		"63 characters, '.' and '-' mixed": strings.Repeat("i", 40) + strings.Repeat("-a.b", 5) + "-a",
	}
	for name, sjName := range tests {
		t.Run(name, func(t *testing.T) {
			sj := makeScaledJob(func(sj *v1alpha1.ScaledJob) {
				sj.Name = sjName
				sj.Spec.JobTargetRef.Template.Labels = map[string]string{"team": "pdf"}
			})
			if errs := sj.Validate(); len(errs) != 0 {
				t.Fatalf("Validate() = %v, want no errors", errs)
			}
			job, err := Build(sj, JobName(sj, RandomSuffix))
			if err != nil {
				t.Fatal(err)
			}
			checkAccepted(t, job)

			msj := makeMessageScaledJob(func(s *v1alpha1.ScaledJob) { s.Name = sjName })
			for _, attempt := range []int32{1, 100, v1alpha1.MaxMaxDeliveries} {
				mjob, secret, err := BuildMessage(msj, makeMessage(func(m *MessageInfo) { m.Attempt = attempt }))
				if err != nil {
					t.Fatal(err)
				}
				checkAccepted(t, mjob)
				if errs := validation.IsDNS1123Subdomain(secret.Name); len(errs) != 0 {
					t.Errorf("Secret name %q: %v", secret.Name, errs)
				}
				for k, v := range secret.Labels {
					if errs := validation.IsValidLabelValue(v); len(errs) != 0 {
						t.Errorf("Secret label %s=%q: %v", k, v, errs)
					}
				}
			}
		})
	}
}

// checkAccepted reports what the API server would refuse in the Job's name and labels, the pod template's labels
// included, after the Job controller adds its own.
func checkAccepted(t *testing.T, job *batchv1.Job) {
	t.Helper()
	if len(job.Name) > MaxNameLength {
		t.Errorf("Job name %q has %d characters, more than %d", job.Name, len(job.Name), MaxNameLength)
	}
	if errs := validation.IsDNS1123Subdomain(job.Name); len(errs) != 0 {
		t.Errorf("Job name %q: %v", job.Name, errs)
	}
	pod := map[string]string{"batch.kubernetes.io/job-name": job.Name, "job-name": job.Name}
	for k, v := range job.Spec.Template.Labels {
		pod[k] = v
	}
	for _, labels := range []map[string]string{job.Labels, pod} {
		for k, v := range labels {
			if errs := validation.IsQualifiedName(k); len(errs) != 0 {
				t.Errorf("label key %q: %v", k, errs)
			}
			if errs := validation.IsValidLabelValue(v); len(errs) != 0 {
				t.Errorf("label %s=%q: %v", k, v, errs)
			}
		}
	}
}
