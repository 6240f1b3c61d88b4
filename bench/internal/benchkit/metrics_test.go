package benchkit

import (
	"math"
	"testing"
)

const exposition = `# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{namespace="a",scaledjob="x",le="0.01"} 2
lat_seconds_bucket{namespace="a",scaledjob="x",le="0.05"} 8
lat_seconds_bucket{namespace="a",scaledjob="x",le="0.1"} 10
lat_seconds_bucket{namespace="a",scaledjob="x",le="+Inf"} 10
lat_seconds_sum{namespace="a",scaledjob="x"} 0.3
lat_seconds_count{namespace="a",scaledjob="x"} 10
lat_seconds_bucket{namespace="b",scaledjob="y",le="0.01"} 0
lat_seconds_bucket{namespace="b",scaledjob="y",le="0.05"} 0
lat_seconds_bucket{namespace="b",scaledjob="y",le="0.1"} 0
lat_seconds_bucket{namespace="b",scaledjob="y",le="+Inf"} 5
`

func TestHistogramOf(t *testing.T) {
	h, err := HistogramOf(exposition, "lat_seconds", map[string]string{"namespace": "a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Bounds) != 4 || !math.IsInf(h.Bounds[3], 1) || h.Total() != 10 {
		t.Fatalf("histogram = %+v, want 4 bounds ending in +Inf and 10 observations", h)
	}
	tests := map[float64]float64{0.1: 0.005, 0.5: 0.01 + 0.04*3/6, 0.9: 0.075}
	for q, want := range tests {
		if v, _, _, beyond := h.Quantile(q); math.Abs(v-want) > 1e-9 || beyond {
			t.Errorf("quantile %g = %g (beyond %v), want %g", q, v, beyond, want)
		}
	}
	all, err := HistogramOf(exposition, "lat_seconds", nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _, beyond := all.Quantile(0.99); v != 0.1 || !beyond {
		t.Errorf("quantile 0.99 of both = %g (beyond %v), want 0.1 beyond", v, beyond)
	}
	if d := all.Minus(h); d.Total() != 5 || d.Counts[2] != 0 {
		t.Errorf("difference = %+v, want the 5 observations of b, all above 0.1", d)
	}
	if v, _, _, _ := (Histogram{}).Quantile(0.5); !math.IsNaN(v) {
		t.Errorf("quantile of an empty histogram = %g, want NaN", v)
	}
}
