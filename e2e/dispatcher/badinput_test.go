package dispatcher

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// Bad input gets Ready=False naming the field, creates no Jobs, and recovers when fixed.
func TestBadInputNamesTheFieldAndRecovers(t *testing.T) {
	f := framework.New(t)
	url := f.CreateQueue("bad", nil)
	f.SendMessages(url, 2, "m")
	cases := map[string]struct {
		build func(b *framework.ScaledJobBuilder) *framework.ScaledJobBuilder
		want  []string
		fix   func(sj *v1alpha1.ScaledJob)
	}{
		"unknown trigger type": {
			build: func(b *framework.ScaledJobBuilder) *framework.ScaledJobBuilder {
				return b.ScaleTrigger(v1alpha1.ScaleTrigger{Type: "rabbitmq", Metadata: map[string]string{"queueName": "x"}})
			},
			want: []string{"spec.triggers[0].type", "rabbitmq", "aws-sqs-queue"},
			fix: func(sj *v1alpha1.ScaledJob) {
				sj.Spec.Triggers[0] = v1alpha1.ScaleTrigger{Type: "aws-sqs-queue", Metadata: sqsMetadata(url)}
			},
		},
		"missing queueURL": {
			build: func(b *framework.ScaledJobBuilder) *framework.ScaledJobBuilder { return b.SQS("", 1) },
			want:  []string{"spec.triggers[0].metadata.queueURL"},
			fix:   func(sj *v1alpha1.ScaledJob) { sj.Spec.Triggers[0].Metadata["queueURL"] = url },
		},
		"non-numeric queueLength": {
			build: func(b *framework.ScaledJobBuilder) *framework.ScaledJobBuilder {
				return b.SQS(url, 1, "queueLength", "five")
			},
			want: []string{"spec.triggers[0].metadata.queueLength", "five"},
			fix:  func(sj *v1alpha1.ScaledJob) { sj.Spec.Triggers[0].Metadata["queueLength"] = "1" },
		},
		"missing Secret": {
			build: func(b *framework.ScaledJobBuilder) *framework.ScaledJobBuilder {
				b = b.SQS(url, 1)
				b.ScaledJob.Spec.Triggers[0].AuthenticationRef = &v1alpha1.AuthenticationRef{Name: "bad-auth-" + b.ScaledJob.Name}
				return b
			},
			want: []string{"authenticationRef", "Secret", "not found"},
		},
	}
	i := 0
	names := map[string]string{}
	for name, tc := range cases {
		sjName := fmt.Sprintf("bad-%d", i)
		i++
		names[name] = sjName
		b := tc.build(framework.NewScaledJob(f, sjName).Poll(2).RunFor("10m"))
		b.Create()
		if name == "missing Secret" {
			ta := &v1alpha1.TriggerAuthentication{
				ObjectMeta: metav1.ObjectMeta{Name: "bad-auth-" + sjName, Namespace: f.Namespace},
				Spec: v1alpha1.TriggerAuthenticationSpec{SecretTargetRef: []v1alpha1.SecretTargetRef{
					{Parameter: "awsAccessKeyID", Name: "sqs-creds", Key: "id"},
					{Parameter: "awsSecretAccessKey", Name: "sqs-creds", Key: "secret"},
				}},
			}
			if err := f.Client.Create(f.Ctx, ta); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.StartDispatcher()
	for name, tc := range cases {
		sjName := names[name]
		t.Run(name, func(t *testing.T) {
			f.WaitReady(sjName, metav1.ConditionFalse, tc.want...)
			f.WaitDecisionAfter(sjName, time.Now().Add(time.Second))
			if n := len(f.JobsOf(sjName)); n != 0 {
				t.Fatalf("%d Jobs created for an invalid ScaledJob", n)
			}
		})
	}
	// Fix each one; each recovers and creates its 2 Jobs.
	const secretValue = "s3cr3t-value-never-shown"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sqs-creds", Namespace: f.Namespace},
		StringData: map[string]string{"id": "test", "secret": secretValue}}
	if err := f.Client.Create(f.Ctx, secret); err != nil {
		t.Fatal(err)
	}
	for name, tc := range cases {
		if tc.fix != nil {
			f.UpdateScaledJob(names[name], tc.fix)
		}
	}
	for name := range cases {
		sjName := names[name]
		t.Run(name+" fixed", func(t *testing.T) {
			f.WaitReady(sjName, metav1.ConditionTrue)
			f.Eventually("2 Jobs for "+sjName, time.Minute, func() (bool, error) { return len(f.JobsOf(sjName)) == 2, nil })
		})
	}
	// The Secret's value never shows in status or events.
	for _, sjName := range names {
		sj := f.ScaledJob(sjName)
		if strings.Contains(fmt.Sprintf("%+v", sj.Status), secretValue) {
			t.Errorf("status of %s shows the secret value", sjName)
		}
	}
	events, err := f.Clientset.CoreV1().Events(f.Namespace).List(f.Ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if strings.Contains(e.Message, secretValue) {
			t.Errorf("event %s shows the secret value", e.Name)
		}
	}
}

func sqsMetadata(url string) map[string]string {
	return map[string]string{"queueURL": url, "queueLength": "1", "awsRegion": "us-east-1", "awsEndpoint": framework.Cluster().SQSEndpoint}
}

// min > max is refused by the API server (CEL rule), naming the field, so it never reaches the dispatcher.
func TestMinAboveMaxRefusedByTheAPI(t *testing.T) {
	f := framework.New(t)
	b := framework.NewScaledJob(f, "minmax").SQS("q", 1).Min(5).Max(2)
	err := f.Client.Create(f.Ctx, b.ScaledJob)
	if err == nil || !strings.Contains(err.Error(), "minReplicaCount") {
		t.Fatalf("create with min 5 > max 2: err = %v, want a refusal naming minReplicaCount", err)
	}
}

// minReplicaCount = maxReplicaCount = 2147483647 (a baseline of two billion Jobs) is refused at admission, naming
// the field and its maximum, so it can never crash-loop the dispatcher.
func TestHugeBaselineRefusedByTheAPI(t *testing.T) {
	f := framework.New(t)
	b := framework.NewScaledJob(f, "huge").SQS("q", 1).Min(math.MaxInt32).Max(math.MaxInt32)
	err := f.Client.Create(f.Ctx, b.ScaledJob)
	if err == nil || !strings.Contains(err.Error(), "minReplicaCount") || !strings.Contains(err.Error(), "1000000") {
		t.Fatalf("create with min = max = 2147483647: err = %v, want a refusal naming minReplicaCount and 1000000", err)
	}
}

// A queue that does not exist, and an endpoint nothing listens on, give a trigger error in status and no Jobs.
// The unreachable endpoint is a custom one used with the dispatcher's own (environment) credentials, so this test
// allows that (--allow-ambient-credentials-on-custom-endpoints) to reach the read at all.
func TestUnreachableQueueIsATriggerError(t *testing.T) {
	f := framework.New(t)
	framework.NewScaledJob(f, "noqueue").SQS(framework.Cluster().SQSEndpoint+"/123456789012/does-not-exist", 1).Poll(2).Create()
	b := framework.NewScaledJob(f, "noendpoint").SQS("http://127.0.0.1:1/123456789012/q", 1).Poll(2)
	b.ScaledJob.Spec.Triggers[0].Metadata["awsEndpoint"] = "http://127.0.0.1:1"
	b.Create()
	f.StartDispatcher("--allow-ambient-credentials-on-custom-endpoints")
	sj := f.WaitReady("noqueue", metav1.ConditionFalse, "does-not-exist")
	if r := framework.Condition(sj, v1alpha1.ConditionReady).Reason; r != "TriggerError" {
		t.Errorf("Ready reason = %s, want TriggerError", r)
	}
	if sj.Status.Triggers[0].LastError == "" {
		t.Errorf("status.triggers[0].lastError is empty")
	}
	f.WaitReady("noendpoint", metav1.ConditionFalse, "127.0.0.1:1")
	for _, n := range []string{"noqueue", "noendpoint"} {
		if got := len(f.JobsOf(n)); got != 0 {
			t.Errorf("%s: %d Jobs created on a failed read", n, got)
		}
	}
}

// A create the API server refuses (a ResourceQuota on Jobs) is reported and does not stop the others.
func TestRefusedCreatesAreReportedAndOthersProceed(t *testing.T) {
	f := framework.New(t)
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "jobs", Namespace: f.Namespace},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/jobs.batch": resource.MustParse("3")}}}
	if err := f.Client.Create(f.Ctx, quota); err != nil {
		t.Fatal(err)
	}
	f.Eventually("quota status", time.Minute, func() (bool, error) {
		var q corev1.ResourceQuota
		err := f.Client.Get(f.Ctx, clientKey(f, "jobs"), &q)
		return err == nil && len(q.Status.Hard) > 0, err
	})
	url := f.CreateQueue("quota", nil)
	f.SendMessages(url, 5, "m")
	framework.NewScaledJob(f, "quota").SQS(url, 1).Poll(2).RunFor("10m").Create()
	f.StartDispatcher()
	sj := f.WaitReady("quota", metav1.ConditionFalse, "Jobs failed", "exceeded quota")
	if n := len(f.JobsOf("quota")); n != 3 {
		t.Errorf("%d Jobs created under a quota of 3, want 3", n)
	}
	t.Logf("Ready message: %s", framework.Condition(sj, v1alpha1.ConditionReady).Message)
}
