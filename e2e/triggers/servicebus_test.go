package triggers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// An azure-servicebus ScaledJob reads a queue's active message count from a TLS administration API (trusted through
// SSL_CERT_FILE) with a connection string from a Secret, through a TriggerAuthentication (queue orders: 4 -> 4 Jobs,
// then 6 -> 6 Jobs) and through a ClusterTriggerAuthentication whose Secret is in the dispatcher's namespace (queue
// invoices: 3 -> 3 Jobs). The fake refuses any other key, so the Jobs prove each Secret reached it.
func TestServiceBusEndToEnd(t *testing.T) {
	f := framework.New(t)
	nsKey, clusterKey := sasKey("namespace"), sasKey("cluster")
	sb := startServiceBus(t, map[string]string{"k": nsKey, "cluster-reader": clusterKey},
		map[string]int32{"orders": 4, "invoices": 3})

	createSecret(f, "sb-conn", map[string]string{"connection": sb.connection("k", nsKey)})
	ta := createTriggerAuth(f, "sb-auth", "connection", "sb-conn", "connection")
	scaledJob(f, "orders").Max(10).Trigger("azure-servicebus",
		map[string]string{"queueName": "orders", "messageCount": "1"}, ta).Create()

	createSecret(f, "sb-cluster-conn", map[string]string{"conn": sb.connection("cluster-reader", clusterKey)})
	cta := createClusterTriggerAuth(f, "e2e-sb-cluster", "connection", "sb-cluster-conn", "conn")
	scaledJob(f, "invoices").Max(10).Trigger("azure-servicebus",
		map[string]string{"queueName": "invoices", "messageCount": "1"}, cta).Create()

	d := f.StartDispatcherWithEnv(sb.env())

	sj := settledJobs(f, "orders", 4)
	checkBacklog(t, sj, "4", "1")
	sj = settledJobs(f, "invoices", 3)
	checkBacklog(t, sj, "3", "1")

	sb.setQueue("orders", 6)
	sj = settledJobs(f, "orders", 6)
	checkBacklog(t, sj, "6", "1")
	if n := jobCount(f, "invoices"); n != 3 {
		t.Errorf("invoices has %d Jobs after orders grew, want still 3", n)
	}

	served, refused := sb.counts()
	t.Logf("the fake administration API answered %v and refused %v (per key name)", served, refused)
	if served["k"] == 0 || served["cluster-reader"] == 0 {
		t.Errorf("requests answered per key name = %v, want some with k (TriggerAuthentication) and cluster-reader (ClusterTriggerAuthentication)", served)
	}
	if len(refused) != 0 {
		t.Errorf("requests refused = %v, want none", refused)
	}
	checkNoLeak(f, d, map[string]string{"the TriggerAuthentication's SharedAccessKey": nsKey,
		"the ClusterTriggerAuthentication's SharedAccessKey": clusterKey})
}

// A ClusterTriggerAuthentication's Secret is read from the dispatcher's own namespace (--namespace), not from the
// ScaledJob's: here they differ, and the ScaledJob's namespace holds a decoy Secret of the same name whose key the
// server refuses. The ScaledJob gets its 3 Jobs, read with the key from the dispatcher's namespace only.
func TestClusterTriggerAuthSecretFromDispatcherNamespace(t *testing.T) {
	f := framework.New(t)
	home := framework.New(t) // the dispatcher's own namespace
	clusterKey, decoyKey := sasKey("cluster"), sasKey("decoy")
	sb := startServiceBus(t, map[string]string{"cluster-reader": clusterKey}, map[string]int32{"invoices": 3})

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sb-cluster-conn", Namespace: home.Namespace},
		StringData: map[string]string{"conn": sb.connection("cluster-reader", clusterKey)}}
	if err := home.Client.Create(home.Ctx, secret); err != nil {
		t.Fatalf("creating Secret in %s: %v", home.Namespace, err)
	}
	createSecret(f, "sb-cluster-conn", map[string]string{"conn": sb.connection("decoy", decoyKey)})
	cta := createClusterTriggerAuth(f, "e2e-sb-home", "connection", "sb-cluster-conn", "conn")
	scaledJob(f, "invoices").Max(10).Trigger("azure-servicebus",
		map[string]string{"queueName": "invoices", "messageCount": "1"}, cta).Create()

	d := f.StartDispatcherWithEnv(sb.env(), "--namespace="+home.Namespace)
	sj := settledJobs(f, "invoices", 3)
	checkBacklog(t, sj, "3", "1")
	served, refused := sb.counts()
	t.Logf("the fake administration API answered %v and refused %v (per key name)", served, refused)
	if served["cluster-reader"] == 0 || len(refused) != 0 {
		t.Errorf("answered %v and refused %v, want only requests signed by cluster-reader", served, refused)
	}
	checkNoLeak(f, d, map[string]string{"the ClusterTriggerAuthentication's SharedAccessKey": clusterKey,
		"the decoy SharedAccessKey": decoyKey})
}
