package dispatcher

import (
	"fmt"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/dispatch"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// sjBuilder builds ScaledJobs for tests.
type sjBuilder struct{ sj *v1alpha1.ScaledJob }

func scaledJob(f *framework.F, name string) *sjBuilder {
	return &sjBuilder{sj: &v1alpha1.ScaledJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.Namespace},
		Spec: v1alpha1.ScaledJobSpec{
			PollingInterval: ptr.To[int32](2),
			JobTargetRef: batchv1.JobSpec{
				BackoffLimit: ptr.To[int32](0),
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"kwok.test/run-for": "2s"}},
					Spec: corev1.PodSpec{
						RestartPolicy: corev1.RestartPolicyNever,
						Containers:    []corev1.Container{{Name: "worker", Image: "example.com/worker:1"}},
					},
				},
			},
		},
	}}
}

func (b *sjBuilder) sqs(queueURL string, queueLength int, extra ...string) *sjBuilder {
	md := map[string]string{"queueURL": queueURL, "queueLength": strconv.Itoa(queueLength), "awsRegion": "us-east-1",
		"awsEndpoint": framework.Cluster().SQSEndpoint}
	for i := 0; i+1 < len(extra); i += 2 {
		md[extra[i]] = extra[i+1]
	}
	b.sj.Spec.Triggers = append(b.sj.Spec.Triggers, v1alpha1.ScaleTrigger{Type: "aws-sqs-queue", Name: fmt.Sprintf("sqs%d", len(b.sj.Spec.Triggers)), Metadata: md})
	return b
}

func (b *sjBuilder) trigger(t v1alpha1.ScaleTrigger) *sjBuilder {
	b.sj.Spec.Triggers = append(b.sj.Spec.Triggers, t)
	return b
}

func (b *sjBuilder) max(n int32) *sjBuilder  { b.sj.Spec.MaxReplicaCount = &n; return b }
func (b *sjBuilder) min(n int32) *sjBuilder  { b.sj.Spec.MinReplicaCount = &n; return b }
func (b *sjBuilder) poll(s int32) *sjBuilder { b.sj.Spec.PollingInterval = &s; return b }
func (b *sjBuilder) runFor(d string) *sjBuilder {
	b.sj.Spec.JobTargetRef.Template.Annotations["kwok.test/run-for"] = d
	return b
}
func (b *sjBuilder) strategy(s string) *sjBuilder {
	b.sj.Spec.ScalingStrategy.Strategy = s
	return b
}
func (b *sjBuilder) calculation(c string) *sjBuilder {
	b.sj.Spec.ScalingStrategy.MultipleScalersCalculation = c
	return b
}
func (b *sjBuilder) history(ok, failed int32) *sjBuilder {
	b.sj.Spec.SuccessfulJobsHistoryLimit, b.sj.Spec.FailedJobsHistoryLimit = &ok, &failed
	return b
}
func (b *sjBuilder) paused() *sjBuilder {
	b.sj.Annotations = map[string]string{v1alpha1.AnnotationPaused: "true"}
	return b
}
func (b *sjBuilder) rollout(strategy string) *sjBuilder {
	b.sj.Spec.Rollout = &v1alpha1.Rollout{Strategy: strategy}
	return b
}

func (b *sjBuilder) create(f *framework.F) *v1alpha1.ScaledJob {
	f.T.Helper()
	if err := f.Client.Create(f.Ctx, b.sj); err != nil {
		f.T.Fatalf("creating ScaledJob %s: %v", b.sj.Name, err)
	}
	return b.sj
}

// getSJ reads a ScaledJob.
func getSJ(f *framework.F, name string) *v1alpha1.ScaledJob {
	f.T.Helper()
	var sj v1alpha1.ScaledJob
	if err := f.Client.Get(f.Ctx, client.ObjectKey{Namespace: f.Namespace, Name: name}, &sj); err != nil {
		f.T.Fatalf("reading ScaledJob %s: %v", name, err)
	}
	return &sj
}

// update applies mutate to the latest ScaledJob, retrying on conflicts.
func update(f *framework.F, name string, mutate func(*v1alpha1.ScaledJob)) {
	f.T.Helper()
	f.Eventually("updating ScaledJob "+name, time.Minute, func() (bool, error) {
		sj := getSJ(f, name)
		mutate(sj)
		err := f.Client.Update(f.Ctx, sj)
		return err == nil, err
	})
}

// jobsOf lists the Jobs labelled for a ScaledJob, oldest first.
func jobsOf(f *framework.F, name string) []batchv1.Job {
	f.T.Helper()
	var list batchv1.JobList
	if err := f.Client.List(f.Ctx, &list, client.InNamespace(f.Namespace), client.MatchingLabels{v1alpha1.LabelScaledJob: name}); err != nil {
		f.T.Fatalf("listing jobs: %v", err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list.Items
}

func unfinished(jobs []batchv1.Job) int {
	n := 0
	for i := range jobs {
		if !dispatch.IsFinished(&jobs[i]) {
			n++
		}
	}
	return n
}

// waitTicks waits until the dispatcher has written a decision after the given time (so a full tick happened).
func waitDecisionAfter(f *framework.F, name string, after time.Time) *v1alpha1.ScaledJob {
	f.T.Helper()
	var sj *v1alpha1.ScaledJob
	f.Eventually("a decision of "+name+" after "+after.Format(time.RFC3339Nano), 2*time.Minute, func() (bool, error) {
		sj = getSJ(f, name)
		d := sj.Status.LastDecision
		return d != nil && d.Time.Unix() > after.Unix(), nil // status times have second precision
	})
	return sj
}

func condition(sj *v1alpha1.ScaledJob, typ string) *metav1.Condition {
	return apimeta.FindStatusCondition(sj.Status.Conditions, typ)
}

func queueCounts(f *framework.F, url string) (visible, inFlight int) {
	f.T.Helper()
	out, err := f.SQS.GetQueueAttributes(f.Ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{"All"}})
	if err != nil {
		f.T.Fatalf("reading queue attributes: %v", err)
	}
	visible, _ = strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	inFlight, _ = strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return visible, inFlight
}

var _ = testing.Verbose

func clientKey(f *framework.F, name string) client.ObjectKey {
	return client.ObjectKey{Namespace: f.Namespace, Name: name}
}
