package triggers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// Bad gcp-pubsub and azure-servicebus input: each ScaledJob gets Ready=False naming the field or the cause, its
// trigger's lastError is set, and it creates no Jobs, while a correct ScaledJob beside them gets its Jobs. No secret
// (SharedAccessKeys, the bad connection string) shows in the dispatcher's log, in events or in any status.
func TestBadTriggerInput(t *testing.T) {
	f := framework.New(t)
	book := newBacklogBook()
	_, monitoringAddr := startFakeMonitoring(t, framework.PubSubProject, book)
	sub := newEmulatorSub(f, book, "bad")
	sub.publish(3)

	goodKey, intruderKey, partialKey, badKey := sasKey("good"), sasKey("intruder"), sasKey("partial"), sasKey("badconn")
	sb := startServiceBus(t, map[string]string{"reader": goodKey}, map[string]int32{"orders": 2})
	badConnection := "Endpoint=" + sb.Host + ";SharedAccessKeyName=reader;SharedAccessKey=" + badKey // no sb:// scheme
	createSecret(f, "sb-good", map[string]string{"connection": sb.connection("reader", goodKey)})
	createSecret(f, "sb-intruder", map[string]string{"connection": sb.connection("intruder", intruderKey)})
	createSecret(f, "sb-partial", map[string]string{"conn": sb.connection("reader", partialKey)})
	good := createTriggerAuth(f, "sb-good", "connection", "sb-good", "connection")
	intruder := createTriggerAuth(f, "sb-intruder", "connection", "sb-intruder", "connection")
	partial := createTriggerAuth(f, "sb-partial", "connection", "sb-partial", "connection")

	pubsubMeta := func(kv ...string) map[string]string {
		md := map[string]string{"value": "1", "monitoringEndpoint": monitoringAddr, "monitoringInsecure": "true"}
		for i := 0; i+1 < len(kv); i += 2 {
			md[kv[i]] = kv[i+1]
		}
		return md
	}
	queue := map[string]string{"queueName": "orders", "messageCount": "1"}
	cases := map[string]struct {
		typ        string
		metadata   map[string]string
		auth       *v1alpha1.AuthenticationRef
		wantReason string
		want       []string
	}{
		"pubsub without subscriptionName or topicName": {
			typ: "gcp-pubsub", metadata: pubsubMeta(),
			wantReason: "InvalidTrigger", want: []string{"spec.triggers[0].metadata.subscriptionName", "topicName", "is required"},
		},
		"pubsub with subscriptionName and topicName": {
			typ: "gcp-pubsub", metadata: pubsubMeta("subscriptionName", sub.name, "topicName", sub.topic),
			wantReason: "InvalidTrigger", want: []string{"spec.triggers[0].metadata.subscriptionName", "topicName", "both set"},
		},
		"pubsub mode that is no metric name": {
			typ: "gcp-pubsub", metadata: pubsubMeta("subscriptionName", sub.name, "mode", "subscription-size"),
			wantReason: "InvalidTrigger", want: []string{"spec.triggers[0].metadata.mode", "subscription-size"},
		},
		"pubsub mode of an unknown metric": {
			typ: "gcp-pubsub", metadata: pubsubMeta("subscriptionName", sub.name, "mode", "NoSuchMetric"),
			wantReason: "TriggerError", want: []string{"pubsub.googleapis.com/subscription/no_such_metric", "no time series", sub.id},
		},
		"servicebus bad connection string": {
			typ: "azure-servicebus", metadata: map[string]string{"queueName": "orders", "messageCount": "1", "connection": badConnection},
			wantReason: "InvalidTrigger", want: []string{"spec.triggers[0].metadata.connection", "not a valid Service Bus connection string"},
		},
		"servicebus Secret without the key": {
			typ: "azure-servicebus", metadata: queue, auth: partial,
			wantReason: "InvalidTrigger", want: []string{"spec.triggers[0].authenticationRef", `"sb-partial"`, `no key "connection"`},
		},
		"servicebus credential refused": {
			typ: "azure-servicebus", metadata: queue, auth: intruder,
			wantReason: "TriggerError", want: []string{"orders", "HTTP 401", "intruder"},
		},
	}
	names := map[string]string{}
	i := 0
	for name, tc := range cases {
		sjName := fmt.Sprintf("bad-%d", i)
		i++
		names[name] = sjName
		scaledJob(f, sjName).Max(10).Trigger(tc.typ, tc.metadata, tc.auth).Create()
	}
	scaledJob(f, "sb-good").Max(10).Trigger("azure-servicebus", queue, good).Create()
	scaledJob(f, "pubsub-good").Max(10).Trigger("gcp-pubsub", pubsubMeta("subscriptionName", sub.name), nil).Create()
	d := f.StartDispatcherWithEnv(sb.env())

	t.Run("correct ScaledJobs beside them", func(t *testing.T) {
		settledJobs(f, "sb-good", 2)
		settledJobs(f, "pubsub-good", 3)
	})
	for name, tc := range cases {
		sjName := names[name]
		t.Run(name, func(t *testing.T) {
			sj := f.WaitReady(sjName, metav1.ConditionFalse, tc.want...)
			c := framework.Condition(sj, v1alpha1.ConditionReady)
			if c.Reason != tc.wantReason {
				t.Errorf("Ready reason = %s, want %s (message %q)", c.Reason, tc.wantReason, c.Message)
			}
			sj = f.WaitDecisionAfter(sjName, time.Now().Add(time.Second))
			if len(sj.Status.Triggers) != 1 || sj.Status.Triggers[0].LastError == "" {
				t.Errorf("status.triggers = %+v, want one entry with lastError", sj.Status.Triggers)
			}
			if n := jobCount(f, sjName); n != 0 {
				t.Errorf("%d Jobs created, want none", n)
			}
			if d := sj.Status.LastDecision; d == nil || d.JobsCreated != 0 || !strings.HasPrefix(d.Reason, "no Jobs") {
				t.Errorf("last decision = %+v, want no Jobs", d)
			}
			t.Logf("Ready=False %s: %s", c.Reason, c.Message)
		})
	}
	served, refused := sb.counts()
	t.Logf("the fake administration API answered %v and refused %v (per key name)", served, refused)
	if refused["intruder"] == 0 {
		t.Errorf("the fake administration API refused %v, want requests signed by intruder among them", refused)
	}
	checkNoLeak(f, d, map[string]string{
		"the accepted SharedAccessKey":              goodKey,
		"the refused SharedAccessKey":               intruderKey,
		"the SharedAccessKey of the partial Secret": partialKey,
		"the bad connection string":                 badConnection,
		"the SharedAccessKey of the bad connection": badKey,
	})
}
