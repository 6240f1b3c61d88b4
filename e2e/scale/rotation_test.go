package scale

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// keyCheckingSQSProxy forwards SQS requests to moto, except those signed (SigV4) with the refused access key: it
// answers them 403 InvalidClientTokenId in the AWS JSON protocol, as SQS does for an unknown or revoked key.
type keyCheckingSQSProxy struct {
	URL       string
	refused   atomic.Int64
	forwarded atomic.Int64
}

func startKeyCheckingSQSProxy(t testing.TB, refusedKey string) *keyCheckingSQSProxy {
	t.Helper()
	target, err := url.Parse(framework.Cluster().SQSEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &keyCheckingSQSProxy{}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if accessKeyOf(r.Header.Get("Authorization")) == refusedKey {
			p.refused.Add(1)
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.Header().Set("X-Amzn-Query-Error", "InvalidClientTokenId;Sender")
			w.Header().Set("X-Amzn-Requestid", "e2e-refused")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"__type":"com.amazonaws.sqs#InvalidClientTokenId","message":"The security token included in the request is invalid."}`))
			return
		}
		p.forwarded.Add(1)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// accessKeyOf extracts the access key ID of a SigV4 Authorization header:
// "AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/sqs/aws4_request, SignedHeaders=..., Signature=...".
func accessKeyOf(auth string) string {
	_, cred, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	key, _, _ := strings.Cut(cred, "/")
	return key
}

// A Secret rotated from a refused access key to a valid one is picked up within the next polls, without
// restarting the dispatcher: the ScaledJob goes from a trigger error to dispatching Jobs for its messages.
func TestRotatedSecretIsPickedUp(t *testing.T) {
	const (
		oldKey   = "AKIAE2EOLDKEY0000000"
		newKey   = "AKIAE2ENEWKEY0000000"
		poll     = 5
		messages = 2
	)
	f := framework.New(t)
	proxy := startKeyCheckingSQSProxy(t, oldKey)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sqs-creds", Namespace: f.Namespace},
		Data: map[string][]byte{"id": []byte(oldKey), "secret": []byte("old-secret-value")}}
	if err := f.Client.Create(f.Ctx, secret); err != nil {
		t.Fatal(err)
	}
	ta := &v1alpha1.TriggerAuthentication{
		ObjectMeta: metav1.ObjectMeta{Name: "sqs-auth", Namespace: f.Namespace},
		Spec: v1alpha1.TriggerAuthenticationSpec{SecretTargetRef: []v1alpha1.SecretTargetRef{
			{Parameter: "awsAccessKeyID", Name: "sqs-creds", Key: "id"},
			{Parameter: "awsSecretAccessKey", Name: "sqs-creds", Key: "secret"},
		}},
	}
	if err := f.Client.Create(f.Ctx, ta); err != nil {
		t.Fatal(err)
	}
	url := f.CreateQueue("rotated", nil)
	f.SendMessages(url, messages, "m")
	b := framework.NewScaledJob(f, "rotated").SQS(url, 1, "awsEndpoint", proxy.URL).Poll(poll).RunFor("1h")
	b.ScaledJob.Spec.Triggers[0].AuthenticationRef = &v1alpha1.AuthenticationRef{Name: "sqs-auth"}
	b.Create()
	d := startDispatcher(f)
	pid := d.PID()

	// The old key is refused: the status shows the error and no Job is created.
	sj := f.WaitReady("rotated", metav1.ConditionFalse, "InvalidClientTokenId")
	if len(sj.Status.Triggers) == 0 || sj.Status.Triggers[0].LastError == "" {
		t.Errorf("status.triggers = %+v, want the refusal in triggers[0].lastError", sj.Status.Triggers)
	}
	t.Logf("with the old key: %s", framework.Condition(sj, v1alpha1.ConditionReady).Message)
	if proxy.refused.Load() == 0 {
		t.Fatalf("the proxy refused no request, yet the status shows InvalidClientTokenId")
	}
	if n := len(f.JobsOf("rotated")); n != 0 {
		t.Fatalf("%d Jobs created while the key was refused", n)
	}

	// Rotate the Secret to the new key.
	f.Eventually("updating Secret sqs-creds", time.Minute, func() (bool, error) {
		var s corev1.Secret
		if err := f.Client.Get(f.Ctx, clientKey(f, "sqs-creds"), &s); err != nil {
			return false, err
		}
		s.Data = map[string][]byte{"id": []byte(newKey), "secret": []byte("new-secret-value")}
		err := f.Client.Update(f.Ctx, &s)
		return err == nil, err
	})
	rotated := time.Now()
	// Within the next polls (3 polls, plus slack: the failed reads before were retried on a back-off).
	bound := 3*poll*time.Second + latencySlack
	f.Eventually(fmt.Sprintf("%d Jobs after the rotation", messages), 3*time.Minute, func() (bool, error) {
		f.RequireRunning(d)
		n := len(f.JobsOf("rotated"))
		return n == messages, fmt.Errorf("%d Jobs (decision: %s)", n, lastReason(f, "rotated"))
	})
	took := time.Since(rotated)
	t.Logf("%d Jobs %.1fs after the Secret was rotated; the proxy refused %d requests and forwarded %d", messages, took.Seconds(), proxy.refused.Load(), proxy.forwarded.Load())
	if took > bound {
		t.Errorf("the rotated Secret was picked up %.1fs after the update, want within 3 polls + %s (%s)", took.Seconds(), latencySlack, bound)
	}
	if d.Exited() || d.PID() != pid {
		t.Errorf("the dispatcher restarted")
	}
	f.WaitReady("rotated", metav1.ConditionTrue)
}
