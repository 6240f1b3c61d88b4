package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// sample is one sample line of the Prometheus text exposition format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// metricSet is one scrape of a /metrics page.
type metricSet []sample

// parseMetrics parses the Prometheus text exposition format, skipping comments and blank lines.
func parseMetrics(text string) (metricSet, error) {
	var out metricSet
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", n+1, line, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// parseLine parses `name{k="v",...} value [timestamp]`.
func parseLine(line string) (sample, error) {
	end := strings.IndexAny(line, "{ \t")
	if end <= 0 {
		return sample{}, errors.New("no value")
	}
	s := sample{name: line[:end], labels: map[string]string{}}
	rest := line[end:]
	if rest[0] == '{' {
		var err error
		if rest, err = parseLabels(rest[1:], s.labels); err != nil {
			return sample{}, err
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return sample{}, errors.New("no value")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return sample{}, fmt.Errorf("value: %w", err)
	}
	s.value = v
	return s, nil
}

// parseLabels reads `k="v",...}` into into and returns what follows the closing brace.
func parseLabels(s string, into map[string]string) (string, error) {
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			return "", errors.New("unterminated label set")
		}
		if s[i] == '}' {
			return s[i+1:], nil
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 {
			return "", errors.New("label without a value")
		}
		key := strings.TrimSpace(s[i : i+eq])
		i += eq + 1
		if i >= len(s) || s[i] != '"' {
			return "", fmt.Errorf("label %s: unquoted value", key)
		}
		i++
		var v strings.Builder
		for ; ; i++ {
			if i >= len(s) {
				return "", fmt.Errorf("label %s: unterminated value", key)
			}
			if s[i] == '"' {
				i++
				break
			}
			if s[i] == '\\' && i+1 < len(s) {
				i++
				if s[i] == 'n' {
					v.WriteByte('\n')
					continue
				}
			}
			v.WriteByte(s[i])
		}
		into[key] = v.String()
	}
}

// matches reports whether labels hold every pair of match.
func matches(labels, match map[string]string) bool {
	for k, v := range match {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// has reports whether the set holds a sample of the metric name.
func (m metricSet) has(name string) bool {
	for _, s := range m {
		if s.name == name {
			return true
		}
	}
	return false
}

// sum adds the samples of the metric name whose labels hold every pair of match.
func (m metricSet) sum(name string, match map[string]string) float64 {
	var total float64
	for _, s := range m {
		if s.name == name && matches(s.labels, match) {
			total += s.value
		}
	}
	return total
}

// sumBy adds the samples of the metric name by the values of the labels keys (joined with "|").
func (m metricSet) sumBy(name string, keys ...string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range m {
		if s.name != name {
			continue
		}
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = s.labels[k]
		}
		out[strings.Join(parts, "|")] += s.value
	}
	return out
}

// histogram is a cumulative histogram: counts[i] observations were <= bounds[i]; the last bound is +Inf.
type histogram struct {
	bounds []float64
	counts []float64
}

// histogramOf adds up the buckets of the histogram name over all its label sets.
func (m metricSet) histogramOf(name string) histogram {
	byBound := map[float64]float64{}
	for _, s := range m {
		if s.name != name+"_bucket" {
			continue
		}
		le, err := strconv.ParseFloat(s.labels["le"], 64)
		if err != nil {
			continue
		}
		byBound[le] += s.value
	}
	var h histogram
	for b := range byBound {
		h.bounds = append(h.bounds, b)
	}
	sort.Float64s(h.bounds)
	for _, b := range h.bounds {
		h.counts = append(h.counts, byBound[b])
	}
	return h
}

// minus returns h - before, bucket by bucket (the observations made in between).
func (h histogram) minus(before histogram) histogram {
	prev := map[float64]float64{}
	for i, b := range before.bounds {
		prev[b] = before.counts[i]
	}
	out := histogram{bounds: append([]float64(nil), h.bounds...)}
	for i, b := range h.bounds {
		out.counts = append(out.counts, h.counts[i]-prev[b])
	}
	return out
}

// total is the number of observations.
func (h histogram) total() float64 {
	if len(h.counts) == 0 {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// quantile estimates the q-quantile as Prometheus' histogram_quantile does: linear interpolation inside the bucket
// that holds it, (lower, upper], from 0 for the first bucket. When it falls in the +Inf bucket it returns the
// largest finite bound and beyond=true (the true value is larger). With no observations v is NaN.
func (h histogram) quantile(q float64) (v, lower, upper float64, beyond bool) {
	n := h.total()
	if n <= 0 {
		return math.NaN(), 0, 0, false
	}
	rank := q * n
	for i, c := range h.counts {
		if c < rank {
			continue
		}
		upper = h.bounds[i]
		below := 0.0
		if i > 0 {
			lower, below = h.bounds[i-1], h.counts[i-1]
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

// scrape reads a /metrics page; token, when set, is sent as a bearer token, and TLS certificates are not verified
// (the local stack's are self-signed).
func scrape(ctx context.Context, url, token string) (metricSet, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	req.Header.Set("Accept", "text/plain")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading %s: %s", url, resp.Status)
	}
	m, err := parseMetrics(string(body))
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", url, err)
	}
	return m, nil
}

// scrapeClient reads the dispatcher's and the kube-apiserver's /metrics (loopback; self-signed certificate).
var scrapeClient = &http.Client{Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the local stack's self-signed certificate
}}
