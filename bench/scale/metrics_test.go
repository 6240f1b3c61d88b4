package main

import (
	"github.com/kubedispatch/kubedispatch/bench/internal/benchkit"
	"math"
	"net/url"
	"testing"
)

const exposition = `# HELP apiserver_request_total Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",group="kubedispatch.io",resource="scaledjobs",scope="resource",subresource="status",verb="PUT",version="v1alpha1"} 7
apiserver_request_total{code="409",component="apiserver",group="kubedispatch.io",resource="scaledjobs",scope="resource",subresource="status",verb="PUT",version="v1alpha1"} 2
apiserver_request_total{code="200",component="apiserver",group="",resource="secrets",scope="resource",subresource="",verb="GET",version="v1"} 40
apiserver_request_total_other 5
odd{msg="a \"quoted\", value}",x="y"} 1.5e3 1700000000
lag_bucket{scaledjob="a",le="0.1"} 50
lag_bucket{scaledjob="a",le="1"} 90
lag_bucket{scaledjob="a",le="+Inf"} 100
lag_bucket{scaledjob="b",le="0.1"} 50
lag_bucket{scaledjob="b",le="1"} 90
lag_bucket{scaledjob="b",le="+Inf"} 100
`

func TestParseAndSum(t *testing.T) {
	m, err := parseMetrics(exposition)
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{"resource": "scaledjobs", "subresource": "status", "verb": "PUT"}
	if got := m.sum("apiserver_request_total", status); got != 9 {
		t.Errorf("status PUTs = %g, want 9 (both codes)", got)
	}
	by := m.sumBy("apiserver_request_total", "verb", "resource", "subresource")
	if by["GET|secrets|"] != 40 || by["PUT|scaledjobs|status"] != 9 || len(by) != 2 {
		t.Errorf("sumBy = %v", by)
	}
	if got := m.sum("odd", map[string]string{"msg": `a "quoted", value}`, "x": "y"}); got != 1500 {
		t.Errorf("escaped label: sum = %g, want 1500", got)
	}
	if !m.has("lag_bucket") || m.has("lag") {
		t.Error("has: wrong answer")
	}
	if _, err := parseMetrics(`bad{x="y} 1`); err == nil {
		t.Error("unterminated label value: no error")
	}
}

func TestHistogramQuantile(t *testing.T) {
	m, err := parseMetrics(exposition)
	if err != nil {
		t.Fatal(err)
	}
	h := m.histogramOf("lag")
	if h.Total() != 200 {
		t.Fatalf("total = %g, want 200 (two label sets)", h.Total())
	}
	// Rank 100 of 200 is the last of the first bucket [0, 0.1].
	if v, lo, hi, beyond := h.Quantile(0.5); beyond || math.Abs(v-0.1) > 1e-9 || lo != 0 || hi != 0.1 {
		t.Errorf("p50 = %g in (%g, %g] (beyond %v), want 0.1 in (0, 0.1]", v, lo, hi, beyond)
	}
	// Rank 160: 60 of the 80 in (0.1, 1].
	if v, lo, hi, _ := h.Quantile(0.8); math.Abs(v-(0.1+0.9*60/80)) > 1e-9 || lo != 0.1 || hi != 1 {
		t.Errorf("p80 = %g in (%g, %g], want %g in (0.1, 1]", v, lo, hi, 0.1+0.9*60/80)
	}
	// Rank 198 falls in +Inf: the largest finite bound, flagged.
	if v, _, _, beyond := h.Quantile(0.99); !beyond || v != 1 {
		t.Errorf("p99 = %g (beyond %v), want 1 and beyond", v, beyond)
	}
	before := benchkit.Histogram{Bounds: []float64{0.1, 1, math.Inf(1)}, Counts: []float64{100, 100, 100}}
	d := h.Minus(before)
	if d.Total() != 100 {
		t.Errorf("delta total = %g, want 100", d.Total())
	}
	if v, _, _, _ := d.Quantile(0.5); math.Abs(v-(0.1+0.9*50/80)) > 1e-9 {
		t.Errorf("delta p50 = %g", v)
	}
	if v, _, _, _ := (benchkit.Histogram{}).Quantile(0.5); !math.IsNaN(v) {
		t.Errorf("empty quantile = %g, want NaN", v)
	}
}

func TestClassify(t *testing.T) {
	q := func(s string) url.Values { v, _ := url.ParseQuery(s); return v }
	for _, tc := range []struct {
		method, path, query, contentType string
		want                             requestKey
	}{
		{"GET", "/api/v1/namespaces/ns/secrets/creds", "", "", requestKey{"GET", "secrets", ""}},
		{"GET", "/api/v1/namespaces/ns/pods", "labelSelector=a", "", requestKey{"LIST", "pods", ""}},
		{"GET", "/api/v1/namespaces/ns/pods", "watch=true", "", requestKey{"WATCH", "pods", ""}},
		{"GET", "/apis/batch/v1/jobs", "", "", requestKey{"LIST", "jobs", ""}},
		{"PUT", "/apis/kubedispatch.io/v1alpha1/namespaces/ns/scaledjobs/sj/status", "", "", requestKey{"PUT", "scaledjobs", "status"}},
		{"PATCH", "/apis/kubedispatch.io/v1alpha1/namespaces/ns/scaledjobs/sj/status", "", "application/apply-patch+yaml", requestKey{"APPLY", "scaledjobs", "status"}},
		{"PATCH", "/apis/kubedispatch.io/v1alpha1/namespaces/ns/scaledjobs/sj", "", "application/merge-patch+json", requestKey{"PATCH", "scaledjobs", ""}},
		{"POST", "/apis/batch/v1/namespaces/ns/jobs", "", "", requestKey{"POST", "jobs", ""}},
		{"DELETE", "/apis/batch/v1/namespaces/ns/jobs/j", "", "", requestKey{"DELETE", "jobs", ""}},
		{"GET", "/api/v1/namespaces/ns", "", "", requestKey{"GET", "namespaces", ""}},
		{"PUT", "/api/v1/namespaces/ns/finalize", "", "", requestKey{"PUT", "namespaces", "finalize"}},
		{"POST", "/apis/coordination.k8s.io/v1/namespaces/ns/leases", "", "", requestKey{"POST", "leases", ""}},
		{"GET", "/apis", "", "", requestKey{"GET", "", ""}},
		{"GET", "/version", "", "", requestKey{"GET", "", ""}},
	} {
		if got := classify(tc.method, tc.path, q(tc.query), tc.contentType); got != tc.want {
			t.Errorf("%s %s?%s = %+v, want %+v", tc.method, tc.path, tc.query, got, tc.want)
		}
	}
}
