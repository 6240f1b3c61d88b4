package explain

import (
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

// sampled is the fixed time of every fixture reading.
var sampled = metav1.NewTime(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))

const sjUID = "0b5c6e3a-0000-4000-8000-000000000001"

// scaledJob is etl/reports with one aws-sqs-queue trigger "orders" and the given mutations applied.
func scaledJob(muts ...func(*v1alpha1.ScaledJob)) *v1alpha1.ScaledJob {
	sj := &v1alpha1.ScaledJob{
		ObjectMeta: metav1.ObjectMeta{Name: "reports", Namespace: "etl", UID: sjUID, Generation: 2},
		Spec: v1alpha1.ScaledJobSpec{
			JobTargetRef: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers:    []corev1.Container{{Name: "worker", Image: "example.com/worker:1"}},
				RestartPolicy: corev1.RestartPolicyNever,
			}}},
			Triggers: []v1alpha1.ScaleTrigger{{Type: "aws-sqs-queue", Name: "orders", Metadata: map[string]string{
				"queueURL": "orders", "awsRegion": "eu-west-1", "queueLength": "1",
			}}},
		},
		Status: v1alpha1.ScaledJobStatus{ObservedGeneration: 2},
	}
	for _, m := range muts {
		m(sj)
	}
	return sj
}

func withMax(n int32) func(*v1alpha1.ScaledJob) {
	return func(sj *v1alpha1.ScaledJob) { sj.Spec.MaxReplicaCount = ptr.To(n) }
}

func withMin(n int32) func(*v1alpha1.ScaledJob) {
	return func(sj *v1alpha1.ScaledJob) { sj.Spec.MinReplicaCount = ptr.To(n) }
}

func withStrategy(s string) func(*v1alpha1.ScaledJob) {
	return func(sj *v1alpha1.ScaledJob) { sj.Spec.ScalingStrategy.Strategy = s }
}

// withReading sets the last reading of trigger "orders" (backlog Q, target T, active when Q > 0).
func withReading(q, t string) func(*v1alpha1.ScaledJob) {
	return func(sj *v1alpha1.ScaledJob) {
		sj.Status.Triggers = []v1alpha1.TriggerStatus{{Name: "orders", Type: "aws-sqs-queue", Backlog: q, Target: t,
			Active: q != "0", SampledAt: &sampled}}
	}
}

func withTriggerError(msg string) func(*v1alpha1.ScaledJob) {
	return func(sj *v1alpha1.ScaledJob) { sj.Status.Triggers[0].LastError = msg }
}

func withReady(status metav1.ConditionStatus, reason, msg string) func(*v1alpha1.ScaledJob) {
	return func(sj *v1alpha1.ScaledJob) {
		sj.Status.Conditions = append(sj.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: msg})
	}
}

func paused(sj *v1alpha1.ScaledJob) {
	sj.Annotations = map[string]string{v1alpha1.AnnotationPaused: "true"}
}

// job is an unfinished Job of etl/reports; finished ("Complete" or "Failed") marks it finished.
func job(name string, finished batchv1.JobConditionType) batchv1.Job {
	j := batchv1.Job{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: "etl", Labels: map[string]string{v1alpha1.LabelScaledJob: "reports"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ScaledJob",
			Name: "reports", UID: sjUID, Controller: ptr.To(true)}},
	}}
	if finished != "" {
		j.Status.Conditions = []batchv1.JobCondition{{Type: finished, Status: corev1.ConditionTrue}}
	}
	return j
}

// pod is a pod of Job jobName in the given phase with the given True conditions.
func pod(jobName string, phase corev1.PodPhase, trueConds ...corev1.PodConditionType) corev1.Pod {
	p := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: jobName + "-pod", Namespace: "etl", Labels: map[string]string{
			v1alpha1.LabelScaledJob: "reports", batchv1.JobNameLabel: jobName,
		}},
		Status: corev1.PodStatus{Phase: phase},
	}
	for _, c := range trueConds {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: c, Status: corev1.ConditionTrue})
	}
	return p
}

// running returns n Jobs, each with a Running pod.
func running(n int) ([]batchv1.Job, []corev1.Pod) {
	var jobs []batchv1.Job
	var pods []corev1.Pod
	for i := range n {
		name := "reports-r" + string(rune('a'+i))
		jobs = append(jobs, job(name, ""))
		pods = append(pods, pod(name, corev1.PodRunning))
	}
	return jobs, pods
}

// failedJob is a Job of the ScaledJob's current generation that failed second seconds before sampled.
func failedJob(name string, second int) batchv1.Job {
	j := job(name, "")
	j.Annotations = map[string]string{v1alpha1.AnnotationGeneration: "2"}
	j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue,
		Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit",
		LastTransitionTime: metav1.NewTime(sampled.Add(-time.Duration(second) * time.Second))}}
	return j
}
