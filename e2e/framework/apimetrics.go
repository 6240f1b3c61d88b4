package framework

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// APIServerMetrics returns the text of the kube-apiserver's /metrics, read with the stack's admin token.
func APIServerMetrics(ctx context.Context) (string, error) {
	if stack == nil {
		return "", fmt.Errorf("APIServerMetrics called without framework.Main in TestMain")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, stack.Server+"/metrics", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+stack.Token)
	req.Header.Set("Accept", "text/plain")
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback test stack with a self-signed cert
	resp, err := cl.Do(req)
	if err != nil {
		return "", fmt.Errorf("reading the kube-apiserver's /metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("reading the kube-apiserver's /metrics: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("reading the kube-apiserver's /metrics: %s: %s", resp.Status, tailBytes(b, 500))
	}
	return string(b), nil
}

// APIServerCounter sums the kube-apiserver's samples of the metric name whose labels include every pair of match
// (e.g. apiserver_request_total with resource=scaledjobs, subresource=status, verb=UPDATE: all codes summed).
func APIServerCounter(ctx context.Context, name string, match map[string]string) (float64, error) {
	text, err := APIServerMetrics(ctx)
	if err != nil {
		return 0, err
	}
	return SumSamples(text, name, match)
}

// SumSamples parses Prometheus text exposition and sums the samples of the metric name (exactly; no _bucket or
// _sum suffixes are added) whose labels include every pair of match. A metric with no matching sample sums to 0.
func SumSamples(text, name string, match map[string]string) (float64, error) {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' || !strings.HasPrefix(s, name) {
			continue
		}
		rest := s[len(name):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ' && rest[0] != '\t') {
			continue // a longer metric name sharing the prefix
		}
		labels, value, err := parseSample(rest)
		if err != nil {
			return 0, fmt.Errorf("line %d %q: %w", line, s, err)
		}
		ok := true
		for k, v := range match {
			if labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			sum += value
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return sum, nil
}

// parseSample parses what follows a metric name on a sample line: optional {labels}, the value and an optional
// timestamp.
func parseSample(s string) (map[string]string, float64, error) {
	labels := map[string]string{}
	if strings.HasPrefix(s, "{") {
		i := 1
		for {
			for i < len(s) && (s[i] == ' ' || s[i] == ',') {
				i++
			}
			if i >= len(s) {
				return nil, 0, fmt.Errorf("unterminated label set")
			}
			if s[i] == '}' {
				i++
				break
			}
			eq := strings.IndexByte(s[i:], '=')
			if eq < 0 {
				return nil, 0, fmt.Errorf("label without value")
			}
			key := strings.TrimSpace(s[i : i+eq])
			i += eq + 1
			if i >= len(s) || s[i] != '"' {
				return nil, 0, fmt.Errorf("label %s: value is not quoted", key)
			}
			i++
			var v strings.Builder
			for {
				if i >= len(s) {
					return nil, 0, fmt.Errorf("label %s: unterminated value", key)
				}
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					switch s[i+1] {
					case 'n':
						v.WriteByte('\n')
					default:
						v.WriteByte(s[i+1])
					}
					i += 2
					continue
				}
				if c == '"' {
					i++
					break
				}
				v.WriteByte(c)
				i++
			}
			labels[key] = v.String()
		}
		s = s[i:]
	}
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, 0, fmt.Errorf("no value")
	}
	var value float64
	switch fields[0] {
	case "+Inf":
		value = math.Inf(1)
	case "-Inf":
		value = math.Inf(-1)
	case "NaN":
		value = math.NaN()
	default:
		var err error
		if value, err = strconv.ParseFloat(fields[0], 64); err != nil {
			return nil, 0, fmt.Errorf("value %q: %w", fields[0], err)
		}
	}
	return labels, value, nil
}
