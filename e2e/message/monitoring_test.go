package message

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"

	"github.com/kubedispatch/kubedispatch/e2e/cluster"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// deploy/monitoring is tested here, where a dispatcher runs in both modes: the alert rules pass promtool's check and
// its unit tests, and every metric the dashboard and the rules name is served by a real dispatcher.

// monitoringDir is deploy/monitoring.
func monitoringDir(t *testing.T) string {
	t.Helper()
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "deploy", "monitoring")
}

// ruleGroups reads the PrometheusRule's spec (its rule groups, as a Prometheus rule file).
func ruleGroups(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(monitoringDir(t), "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Kind string          `json:"kind"`
		Spec json.RawMessage `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &pr); err != nil {
		t.Fatalf("parsing prometheusrule.yaml: %v", err)
	}
	if pr.Kind != "PrometheusRule" || len(pr.Spec) == 0 {
		t.Fatalf("prometheusrule.yaml: kind %q, want a PrometheusRule with a spec", pr.Kind)
	}
	out, err := yaml.JSONToYAML(pr.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAlertRulesPassPromtool(t *testing.T) {
	t.Parallel()
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bins, err := cluster.EnsureBinaries(root)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), ruleGroups(t), 0o644); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join(monitoringDir(t), "rules_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "rules_test.yaml"}} {
		cmd := exec.Command(bins.Promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	}
	// Every alert has a unit test.
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\S+)`).FindAllStringSubmatch(string(ruleGroups(t)), -1)
	for _, a := range alerts {
		if !strings.Contains(string(tests), "alertname: "+a[1]) {
			t.Errorf("alert %s has no test in rules_test.yaml", a[1])
		}
	}
}

// metricNames returns the metric names an expression text uses: the dispatcher's own and the leader-election gauge.
func metricNames(text string) []string {
	re := regexp.MustCompile(`\b(kubedispatch_[a-z_]+|leader_election_master_status)\b`)
	seen := map[string]bool{}
	for _, m := range re.FindAllString(text, -1) {
		seen[m] = true
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

func TestDashboardAndRuleMetricsExist(t *testing.T) {
	t.Parallel()
	f := framework.New(t)
	dash, err := os.ReadFile(filepath.Join(monitoringDir(t), "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(dash) {
		t.Fatal("dashboard.json is not valid JSON")
	}
	used := metricNames(string(dash) + string(ruleGroups(t)))
	if len(used) < 10 {
		t.Fatalf("found only %d metric names in the dashboard and rules: %v", len(used), used)
	}

	// A dispatcher that has done everything the dashboard shows: count mode with Jobs that succeed and fail, a
	// trigger that fails, an invalid and a paused ScaledJob, and message mode.
	countQ := f.CreateQueue("mon-count", nil)
	f.SendMessages(countQ, 4, "c")
	framework.NewScaledJob(f, "counted").SQS(countQ, 1).Max(4).RunFor("1s").History(1, 1).Create()
	failing := framework.NewScaledJob(f, "failing").SQS(countQ, 1).Max(2).RunFor("1s").History(1, 1)
	failing.ScaledJob.Spec.JobTargetRef.Template.Annotations["kwok.test/outcome"] = "fail"
	failing.Create()
	framework.NewScaledJob(f, "broken-trigger").SQS(countQ+"-does-not-exist", 1).Max(2).Create()
	bad := framework.NewScaledJob(f, "invalid").SQS(countQ, 1).Max(2)
	bad.ScaledJob.Spec.Triggers[0].Metadata["queueLength"] = "not-a-number"
	bad.Create()
	framework.NewScaledJob(f, "paused").SQS(countQ, 1).Max(2).Paused().Create()
	msgQ := f.CreateQueue("mon-msg", nil)
	messageSJ(f, "messages", msgQ, nil, 5).RunFor("1s").Create()
	f.SendMessages(msgQ, 3, "m")
	d := f.StartDispatcher()

	// Wait until each ScaledJob has done its part, so the series carry real values and not only their zeros.
	waitAcked(f, "messages", 3, 3*time.Minute)
	f.Eventually("failed and succeeded Jobs", 3*time.Minute, func() (bool, error) {
		ok, bad := f.ScaledJob("counted").Status.Succeeded, f.ScaledJob("failing").Status.Failed
		return ok > 0 && bad > 0, fmt.Errorf("succeeded %d, failed %d", ok, bad)
	})
	f.WaitReady("invalid", "False", "queueLength")

	var families map[string]*dto.MetricFamily
	f.Eventually("every metric of the dashboard and the rules on /metrics", 2*time.Minute, func() (bool, error) {
		text, err := d.Metrics()
		if err != nil {
			return false, err
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		if families, err = parser.TextToMetricFamilies(strings.NewReader(text)); err != nil {
			return false, fmt.Errorf("parsing /metrics: %w", err)
		}
		if missing := missingMetrics(used, families); len(missing) > 0 {
			return false, fmt.Errorf("not served: %v", missing)
		}
		return true, nil
	})
	t.Logf("%d metrics of the dashboard and rules, all served: %v", len(used), used)
	for name, want := range map[string]string{
		`kubedispatch_jobs_finished_total{result="failed"}`:    "failing",
		`kubedispatch_jobs_finished_total{result="succeeded"}`: "counted",
		`kubedispatch_scaledjob_invalid`:                       "invalid",
		`kubedispatch_trigger_errors_total`:                    "broken-trigger",
	} {
		if !hasPositive(families, name, want) {
			t.Errorf("%s has no positive sample for ScaledJob %s", name, want)
		}
	}
}

// hasPositive reports whether the family named in sel (a name with at most one label="value" matcher) has a sample
// of ScaledJob scaledJob with a value above 0.
func hasPositive(families map[string]*dto.MetricFamily, sel, scaledJob string) bool {
	name, matcher, _ := strings.Cut(strings.TrimSuffix(sel, "}"), "{")
	fam := families[name]
	if fam == nil {
		return false
	}
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["scaledjob"] != scaledJob {
			continue
		}
		if k, v, ok := strings.Cut(matcher, "="); ok && labels[k] != strings.Trim(v, `"`) {
			continue
		}
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
		if v > 0 {
			return true
		}
	}
	return false
}

// missingMetrics returns the names in used that families lacks; a histogram's _bucket, _sum and _count are its own.
func missingMetrics(used []string, families map[string]*dto.MetricFamily) []string {
	var missing []string
	for _, name := range used {
		if _, ok := families[name]; ok {
			continue
		}
		found := false
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok {
				if fam, ok := families[base]; ok && fam.GetType() == dto.MetricType_HISTOGRAM {
					found = true
				}
			}
		}
		if !found {
			missing = append(missing, name)
		}
	}
	return missing
}
