package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/kubedispatch/kubedispatch/bench/internal/benchkit"
	"io"
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

// histogramOf adds up the buckets of the histogram name over all its label sets (quantiles and differences are
// benchkit.Histogram's).
func (m metricSet) histogramOf(name string) benchkit.Histogram {
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
	var h benchkit.Histogram
	for b := range byBound {
		h.Bounds = append(h.Bounds, b)
	}
	sort.Float64s(h.Bounds)
	for _, b := range h.Bounds {
		h.Counts = append(h.Counts, byBound[b])
	}
	return h
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
