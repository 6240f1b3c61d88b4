package benchkit

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// FreeAddr returns a loopback address whose port is free now, for the dispatcher's /metrics.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Scrape reads the Prometheus text page at url (a plain-HTTP /metrics), giving up after 10 s.
func Scrape(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("reading %s: %s", url, resp.Status)
	}
	return string(body), nil
}

// Histogram is a cumulative Prometheus histogram: Counts[i] observations were <= Bounds[i]; the last bound is +Inf.
type Histogram struct {
	Bounds []float64
	Counts []float64
}

// leLabel finds the le label of a bucket sample.
var leLabel = regexp.MustCompile(`[{,]\s*le="([^"]*)"`)

// HistogramOf reads the histogram name from the text exposition, adding up the buckets of every label set that
// holds each pair of match. A histogram with no sample is empty (no bounds).
func HistogramOf(text, name string, match map[string]string) (Histogram, error) {
	bounds := map[string]float64{}
	bucket := name + "_bucket"
	for _, m := range regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(bucket)+`\{[^\n]*`).FindAllString(text, -1) {
		le := leLabel.FindStringSubmatch(m)
		if le == nil {
			continue
		}
		v, err := strconv.ParseFloat(le[1], 64)
		if err != nil {
			return Histogram{}, fmt.Errorf("parsing %s: le=%q: %w", bucket, le[1], err)
		}
		bounds[le[1]] = v
	}
	les := make([]string, 0, len(bounds))
	for le := range bounds {
		les = append(les, le)
	}
	sort.Slice(les, func(i, j int) bool { return bounds[les[i]] < bounds[les[j]] })
	var h Histogram
	for _, le := range les {
		m := map[string]string{"le": le}
		for k, v := range match {
			m[k] = v
		}
		c, err := framework.SumSamples(text, bucket, m)
		if err != nil {
			return Histogram{}, fmt.Errorf("parsing %s: %w", bucket, err)
		}
		h.Bounds, h.Counts = append(h.Bounds, bounds[le]), append(h.Counts, c)
	}
	return h, nil
}

// Minus returns h - before, bucket by bucket: the observations made in between.
func (h Histogram) Minus(before Histogram) Histogram {
	prev := map[float64]float64{}
	for i, b := range before.Bounds {
		prev[b] = before.Counts[i]
	}
	out := Histogram{Bounds: append([]float64(nil), h.Bounds...)}
	for i, b := range h.Bounds {
		out.Counts = append(out.Counts, h.Counts[i]-prev[b])
	}
	return out
}

// Total is the number of observations.
func (h Histogram) Total() float64 {
	if len(h.Counts) == 0 {
		return 0
	}
	return h.Counts[len(h.Counts)-1]
}

// Quantile estimates the q-quantile as PromQL's histogram_quantile does: linear interpolation inside the bucket
// (lower, upper] that holds it, from 0 for the first bucket. When it falls in the +Inf bucket it returns the largest
// finite bound and beyond=true (the true value is larger). With no observations v is NaN.
func (h Histogram) Quantile(q float64) (v, lower, upper float64, beyond bool) {
	n := h.Total()
	if n <= 0 {
		return math.NaN(), 0, 0, false
	}
	rank := q * n
	for i, c := range h.Counts {
		if c < rank {
			continue
		}
		upper = h.Bounds[i]
		below := 0.0
		if i > 0 {
			lower, below = h.Bounds[i-1], h.Counts[i-1]
		}
		if math.IsInf(upper, 1) {
			return lower, lower, upper, true
		}
		if c == below {
			return upper, lower, upper, false
		}
		return lower + (upper-lower)*(rank-below)/(c-below), lower, upper, false
	}
	return math.NaN(), 0, 0, false
}
