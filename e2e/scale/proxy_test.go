package scale

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// jobCreatePath is the path of a Job create (POST .../namespaces/<ns>/jobs).
var jobCreatePath = regexp.MustCompile(`^/apis/batch/v1/namespaces/[^/]+/jobs$`)

// faultyAPIProxy is a TLS reverse proxy in front of the kube-apiserver that, for every tenth POST creating a Job,
// forwards it and, when the API server created the Job (201), answers 500 with a Status body and Retry-After: 1,
// so client-go retries a create that in fact succeeded.
type faultyAPIProxy struct {
	URL      string
	posts    atomic.Int64
	injected atomic.Int64
}

func startFaultyAPIProxy(t testing.TB) *faultyAPIProxy {
	t.Helper()
	target, err := url.Parse(framework.Cluster().Server)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultyAPIProxy{}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = target.Host
		},
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 64}, //nolint:gosec // loopback test stack with a self-signed cert
		FlushInterval: -1,                                                                                               // watches stream
		ModifyResponse: func(resp *http.Response) error {
			req := resp.Request
			if req.Method != http.MethodPost || !jobCreatePath.MatchString(req.URL.Path) {
				return nil
			}
			if n := p.posts.Add(1); n%10 != 0 || resp.StatusCode != http.StatusCreated {
				return nil
			}
			p.injected.Add(1)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			body := `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",` +
				`"message":"injected by the e2e proxy: the Job was created but this answer is lost","reason":"InternalError","code":500}`
			resp.StatusCode, resp.Status = http.StatusInternalServerError, "500 Internal Server Error"
			resp.Header = http.Header{}
			resp.Header.Set("Content-Type", "application/json")
			resp.Header.Set("Retry-After", "1")
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			resp.ContentLength = int64(len(body))
			resp.Body = io.NopCloser(strings.NewReader(body))
			return nil
		},
	}
	srv := httptest.NewUnstartedServer(rp)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// Job creations are idempotent behind an API server whose create answers are sometimes lost: every tenth Job
// create succeeds but the client is told 500 (Retry-After: 1) and retries. A backlog of 30 with max 30 still gives
// exactly 30 Jobs.
func TestCreatesAreIdempotentBehindFaultyProxy(t *testing.T) {
	const (
		backlog = 30
		poll    = 5
	)
	f := framework.New(t)
	proxy := startFaultyAPIProxy(t)
	kubeconfig := framework.WriteKubeconfig(t, proxy.URL)
	url := f.CreateQueue("idempotent", nil)
	f.SendMessages(url, backlog, "m")
	framework.NewScaledJob(f, "idempotent").SQS(url, 1).Max(backlog).Poll(poll).RunFor("1h").Create()
	d := startDispatcher(f, "--kubeconfig="+kubeconfig) // the later flag wins

	f.Eventually(fmt.Sprintf("%d Jobs", backlog), 3*time.Minute, func() (bool, error) {
		f.RequireRunning(d)
		n := len(f.JobsOf("idempotent"))
		if n > backlog {
			t.Fatalf("%d Jobs for a backlog of %d with max %d: a create whose answer was lost was repeated (%d faults injected, decision: %s)",
				n, backlog, backlog, proxy.injected.Load(), lastReason(f, "idempotent"))
		}
		return n == backlog, fmt.Errorf("%d Jobs (decision: %s)", n, lastReason(f, "idempotent"))
	})
	if proxy.injected.Load() == 0 {
		t.Fatalf("the proxy saw %d Job creates and lost no answer: the dispatcher did not create Jobs through it", proxy.posts.Load())
	}
	// Things settle: for 2 polls, and two more ticks after that (the only SQS trigger of this dispatcher is read
	// once per tick), no 31st Job appears.
	check := func() error {
		if n := len(f.JobsOf("idempotent")); n != backlog {
			return fmt.Errorf("%d Jobs, want exactly %d (%d faults injected, decision: %s)", n, backlog, proxy.injected.Load(), lastReason(f, "idempotent"))
		}
		return nil
	}
	quietPeriod(f, d, fmt.Sprintf("exactly %d Jobs", backlog), 2*poll*time.Second, check)
	waitMoreTicks(f, d, "kubedispatch_trigger_read_duration_seconds_count", map[string]string{"type": "aws-sqs-queue"}, 2)
	if err := check(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d Jobs; the proxy saw %d Job POSTs and lost %d answers", backlog, proxy.posts.Load(), proxy.injected.Load())
}
