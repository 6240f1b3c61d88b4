package framework

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/dispatch"
)

// MainWithAPI is Main for tests of kubedispatch's own API: its client knows client-go's types and v1alpha1, and the
// CRDs of deploy/crd are installed before the tests run. Use it as:
//
//	func TestMain(m *testing.M) { os.Exit(framework.MainWithAPI(m)) }
func MainWithAPI(m *testing.M) int {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: building the scheme:", err)
			return 1
		}
	}
	return Main(m, Options{Scheme: s, CRDs: "deploy/crd"})
}

// ScaledJobBuilder builds a ScaledJob in a test's namespace. By default it polls every 2 seconds, its Jobs have
// backoffLimit 0, and their one pod runs for 2 seconds on kwok and succeeds.
type ScaledJobBuilder struct {
	f *F
	// ScaledJob is the object being built; a test may edit it directly for what no method covers.
	ScaledJob *v1alpha1.ScaledJob
}

// NewScaledJob starts building a ScaledJob named name in f's namespace, with no triggers.
func NewScaledJob(f *F, name string) *ScaledJobBuilder {
	return &ScaledJobBuilder{f: f, ScaledJob: &v1alpha1.ScaledJob{
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

// SQS appends an aws-sqs-queue trigger named sqs<index> on the moto queue at queueURL with the given queueLength.
// extra holds further metadata as key, value pairs, which may override the defaults.
func (b *ScaledJobBuilder) SQS(queueURL string, queueLength int, extra ...string) *ScaledJobBuilder {
	md := map[string]string{"queueURL": queueURL, "queueLength": strconv.Itoa(queueLength), "awsRegion": "us-east-1",
		"awsEndpoint": Cluster().SQSEndpoint}
	for i := 0; i+1 < len(extra); i += 2 {
		md[extra[i]] = extra[i+1]
	}
	return b.ScaleTrigger(v1alpha1.ScaleTrigger{Type: "aws-sqs-queue", Name: fmt.Sprintf("sqs%d", len(b.ScaledJob.Spec.Triggers)), Metadata: md})
}

// Trigger appends a trigger of type typ named <typ without dashes><index>; auth may be nil.
func (b *ScaledJobBuilder) Trigger(typ string, metadata map[string]string, auth *v1alpha1.AuthenticationRef) *ScaledJobBuilder {
	return b.ScaleTrigger(v1alpha1.ScaleTrigger{
		Type: typ, Name: fmt.Sprintf("%s%d", strings.ReplaceAll(typ, "-", ""), len(b.ScaledJob.Spec.Triggers)),
		Metadata: metadata, AuthenticationRef: auth,
	})
}

// ScaleTrigger appends t as given.
func (b *ScaledJobBuilder) ScaleTrigger(t v1alpha1.ScaleTrigger) *ScaledJobBuilder {
	b.ScaledJob.Spec.Triggers = append(b.ScaledJob.Spec.Triggers, t)
	return b
}

// Max sets maxReplicaCount.
func (b *ScaledJobBuilder) Max(n int32) *ScaledJobBuilder {
	b.ScaledJob.Spec.MaxReplicaCount = &n
	return b
}

// Min sets minReplicaCount.
func (b *ScaledJobBuilder) Min(n int32) *ScaledJobBuilder {
	b.ScaledJob.Spec.MinReplicaCount = &n
	return b
}

// Poll sets pollingInterval in seconds.
func (b *ScaledJobBuilder) Poll(s int32) *ScaledJobBuilder {
	b.ScaledJob.Spec.PollingInterval = &s
	return b
}

// RunFor sets how long the Jobs' pods run on kwok, as a Go duration ("10m").
func (b *ScaledJobBuilder) RunFor(d string) *ScaledJobBuilder {
	b.ScaledJob.Spec.JobTargetRef.Template.Annotations["kwok.test/run-for"] = d
	return b
}

// Strategy sets scalingStrategy.strategy.
func (b *ScaledJobBuilder) Strategy(s string) *ScaledJobBuilder {
	b.ScaledJob.Spec.ScalingStrategy.Strategy = s
	return b
}

// Calculation sets scalingStrategy.multipleScalersCalculation.
func (b *ScaledJobBuilder) Calculation(c string) *ScaledJobBuilder {
	b.ScaledJob.Spec.ScalingStrategy.MultipleScalersCalculation = c
	return b
}

// History sets successfulJobsHistoryLimit and failedJobsHistoryLimit.
func (b *ScaledJobBuilder) History(ok, failed int32) *ScaledJobBuilder {
	b.ScaledJob.Spec.SuccessfulJobsHistoryLimit, b.ScaledJob.Spec.FailedJobsHistoryLimit = &ok, &failed
	return b
}

// Paused sets the paused annotation, replacing any other annotations.
func (b *ScaledJobBuilder) Paused() *ScaledJobBuilder {
	b.ScaledJob.Annotations = map[string]string{v1alpha1.AnnotationPaused: "true"}
	return b
}

// Rollout sets rollout.strategy.
func (b *ScaledJobBuilder) Rollout(strategy string) *ScaledJobBuilder {
	b.ScaledJob.Spec.Rollout = &v1alpha1.Rollout{Strategy: strategy}
	return b
}

// Create creates the ScaledJob, failing the test if the API server refuses it, and returns it.
func (b *ScaledJobBuilder) Create() *v1alpha1.ScaledJob {
	b.f.T.Helper()
	if err := b.f.Client.Create(b.f.Ctx, b.ScaledJob); err != nil {
		b.f.T.Fatalf("creating ScaledJob %s: %v", b.ScaledJob.Name, err)
	}
	return b.ScaledJob
}

// ScaledJob reads the ScaledJob name of the test's namespace, failing the test if it cannot.
func (f *F) ScaledJob(name string) *v1alpha1.ScaledJob {
	f.T.Helper()
	var sj v1alpha1.ScaledJob
	if err := f.Client.Get(f.Ctx, client.ObjectKey{Namespace: f.Namespace, Name: name}, &sj); err != nil {
		f.T.Fatalf("reading ScaledJob %s: %v", name, err)
	}
	return &sj
}

// UpdateScaledJob applies mutate to the latest ScaledJob name and updates it, retrying on conflicts for a minute.
func (f *F) UpdateScaledJob(name string, mutate func(*v1alpha1.ScaledJob)) {
	f.T.Helper()
	f.Eventually("updating ScaledJob "+name, time.Minute, func() (bool, error) {
		sj := f.ScaledJob(name)
		mutate(sj)
		err := f.Client.Update(f.Ctx, sj)
		return err == nil, err
	})
}

// JobsOf lists the Jobs labelled for the ScaledJob name, sorted by name.
func (f *F) JobsOf(name string) []batchv1.Job {
	f.T.Helper()
	var list batchv1.JobList
	if err := f.Client.List(f.Ctx, &list, client.InNamespace(f.Namespace), client.MatchingLabels{v1alpha1.LabelScaledJob: name}); err != nil {
		f.T.Fatalf("listing Jobs of %s: %v", name, err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list.Items
}

// Unfinished counts the Jobs that have neither completed nor failed.
func Unfinished(jobs []batchv1.Job) int {
	n := 0
	for i := range jobs {
		if !dispatch.IsFinished(&jobs[i]) {
			n++
		}
	}
	return n
}

// WaitDecisionAfter waits until the dispatcher has run two full ticks of the ScaledJob name that started after
// after (so at least one whole tick observed the world as it is now), and returns the ScaledJob as read then.
// Status is written only on change, so the witness is the dispatchers' kubedispatch_ticks_total.
func (f *F) WaitDecisionAfter(name string, after time.Time) *v1alpha1.ScaledJob {
	f.T.Helper()
	f.Eventually("the time "+after.Format(time.RFC3339Nano), time.Until(after)+time.Minute, func() (bool, error) {
		return !time.Now().Before(after), nil
	})
	return f.WaitTicks(name, f.Ticks(name), 2)
}

// WaitTicks waits until the ScaledJob name has had n more ticks than from (a value of Ticks), and returns it.
func (f *F) WaitTicks(name string, from float64, n int) *v1alpha1.ScaledJob {
	f.T.Helper()
	f.Eventually(fmt.Sprintf("%d more ticks of %s", n, name), 2*time.Minute, func() (bool, error) {
		return f.Ticks(name) >= from+float64(n), nil
	})
	return f.ScaledJob(name)
}

// Dispatchers returns the dispatchers this test started, running or not.
func (f *F) Dispatchers() []*Dispatcher { return append([]*Dispatcher(nil), f.dispatchers...) }

// Ticks sums kubedispatch_ticks_total of the ScaledJob name over the running dispatchers this test started.
func (f *F) Ticks(name string) float64 {
	var n float64
	for _, d := range f.dispatchers {
		if d.Exited() {
			continue
		}
		v, err := d.MetricSum("kubedispatch_ticks_total", map[string]string{"namespace": f.Namespace, "scaledjob": name})
		if err == nil {
			n += v
		}
	}
	return n
}

// Condition returns the status condition of type typ of sj, or nil.
func Condition(sj *v1alpha1.ScaledJob, typ string) *metav1.Condition {
	return apimeta.FindStatusCondition(sj.Status.Conditions, typ)
}

// WaitReady waits until the Ready condition of the ScaledJob name has the given status and its message contains every
// want string, and returns the ScaledJob as read then.
func (f *F) WaitReady(name string, status metav1.ConditionStatus, want ...string) *v1alpha1.ScaledJob {
	f.T.Helper()
	var sj *v1alpha1.ScaledJob
	f.Eventually(fmt.Sprintf("Ready=%s on %s mentioning %q", status, name, want), 2*time.Minute, func() (bool, error) {
		sj = f.ScaledJob(name)
		c := Condition(sj, v1alpha1.ConditionReady)
		if c == nil || c.Status != status {
			return false, fmt.Errorf("ready condition %+v", c)
		}
		for _, w := range want {
			if !strings.Contains(c.Message, w) {
				return false, fmt.Errorf("ready message %q", c.Message)
			}
		}
		return true, nil
	})
	return sj
}

// QueueCounts returns the approximate numbers of visible and in-flight messages of the SQS queue at url.
func (f *F) QueueCounts(url string) (visible, inFlight int) {
	f.T.Helper()
	out, err := f.SQS.GetQueueAttributes(f.Ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{"All"}})
	if err != nil {
		f.T.Fatalf("reading attributes of queue %s: %v", url, err)
	}
	visible, _ = strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	inFlight, _ = strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return visible, inFlight
}

// AWSKeysAuth creates, once per namespace, a Secret with moto's test access keys and a TriggerAuthentication
// "aws-keys" mapping them to awsAccessKeyID and awsSecretAccessKey, and returns a reference to it. A trigger whose
// awsEndpoint is a local proxy needs credentials of its own namespace: the dispatcher never sends its own there.
func (f *F) AWSKeysAuth() *v1alpha1.AuthenticationRef {
	f.T.Helper()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "aws-keys", Namespace: f.Namespace},
		StringData: map[string]string{"id": "test", "secret": "test"}}
	if err := f.Client.Create(f.Ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		f.T.Fatalf("creating Secret aws-keys: %v", err)
	}
	ta := &v1alpha1.TriggerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "aws-keys", Namespace: f.Namespace},
		Spec: v1alpha1.TriggerAuthenticationSpec{SecretTargetRef: []v1alpha1.SecretTargetRef{
			{Parameter: "awsAccessKeyID", Name: "aws-keys", Key: "id"},
			{Parameter: "awsSecretAccessKey", Name: "aws-keys", Key: "secret"},
		}}}
	if err := f.Client.Create(f.Ctx, ta); err != nil && !apierrors.IsAlreadyExists(err) {
		f.T.Fatalf("creating TriggerAuthentication aws-keys: %v", err)
	}
	return &v1alpha1.AuthenticationRef{Name: "aws-keys"}
}
