package triggers

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
	"github.com/kubedispatch/kubedispatch/sources/cron"
)

// openCronWindow returns cron start and end expressions ("M H * * *", in Etc/UTC) for a window that is open at now
// and stays open at least 9 more minutes: start at the minute of now-1m, end at the minute of now+10m. Each takes the
// hour of its own time, so the window works across an hour or day boundary.
func openCronWindow(now time.Time) (start, end string) {
	at := func(t time.Time) string {
		t = t.UTC()
		return fmt.Sprintf("%d %d * * *", t.Minute(), t.Hour())
	}
	return at(now.Add(-time.Minute)), at(now.Add(10 * time.Minute))
}

// The window math of openCronWindow, checked with the cron trigger's own parser and window, at the awkward times.
func TestOpenCronWindow(t *testing.T) {
	cases := map[string]struct {
		now        time.Time
		start, end string
	}{
		"middle of an hour":        {now: utc(10, 30, 15), start: "29 10 * * *", end: "40 10 * * *"},
		"first second of an hour":  {now: utc(11, 0, 0), start: "59 10 * * *", end: "10 11 * * *"},
		"last minute of an hour":   {now: utc(10, 59, 59), start: "58 10 * * *", end: "9 11 * * *"},
		"end crosses the hour":     {now: utc(10, 55, 30), start: "54 10 * * *", end: "5 11 * * *"},
		"end crosses midnight":     {now: utc(23, 55, 30), start: "54 23 * * *", end: "5 0 * * *"},
		"start before midnight":    {now: utc(0, 0, 30), start: "59 23 * * *", end: "10 0 * * *"},
		"last second of the day":   {now: utc(23, 59, 59), start: "58 23 * * *", end: "9 0 * * *"},
		"one minute past midnight": {now: utc(0, 1, 0), start: "0 0 * * *", end: "11 0 * * *"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			start, end := openCronWindow(tc.now)
			if diff := cmp.Diff([]string{tc.start, tc.end}, []string{start, end}); diff != "" {
				t.Errorf("window (-want +got):\n%s", diff)
			}
			s, err := cron.ParseSchedule("Etc/UTC", start, end)
			if err != nil {
				t.Fatalf("parsing %q - %q: %v", start, end, err)
			}
			active, _, nextEnd := cron.Window(s, tc.now)
			if !active {
				t.Errorf("window %q - %q is closed at %s", start, end, tc.now)
			}
			if left := nextEnd.Sub(tc.now); left < 9*time.Minute || left > 10*time.Minute {
				t.Errorf("window %q - %q closes %s after %s, want 9 to 10 minutes", start, end, left, tc.now)
			}
		})
	}
}

func utc(h, m, s int) time.Time { return time.Date(2026, time.March, 1, h, m, s, 0, time.UTC) }

// One ScaledJob per multipleScalersCalculation, each with an SQS trigger (9 messages, queueLength 3: Q=9, M=3) and a
// cron trigger whose window is open (desiredReplicas 5: Q=5, M=5). keda-scaledjob-reference.md §2.3 predicts
// max -> the trigger with the largest Q (9), M=3 -> 3 Jobs; min -> Q=5, M=5 -> 5; avg -> Q=7, M=4 -> 4;
// sum -> Q=14, M=8 -> 8 (maxReplicaCount 100, nothing running). A long pollingInterval leaves the creating tick's
// decision in status; an annotation change then forces one more tick, which must create nothing.
func TestMixedTriggersCalculation(t *testing.T) {
	f := framework.New(t)
	cases := map[string]struct {
		calculation string
		want        int
	}{
		"max": {calculation: v1alpha1.CalculationMax, want: 3},
		"min": {calculation: v1alpha1.CalculationMin, want: 5},
		"avg": {calculation: v1alpha1.CalculationAvg, want: 4},
		"sum": {calculation: v1alpha1.CalculationSum, want: 8},
	}
	now := time.Now()
	start, end := openCronWindow(now)
	t.Logf("cron window at %s: start %q, end %q (Etc/UTC)", now.UTC().Format(time.RFC3339), start, end)
	for name, tc := range cases {
		url := f.CreateQueue("mixed-"+name, nil)
		f.SendMessages(url, 9, name)
		scaledJob(f, "mixed-"+name).Max(100).Poll(600).Calculation(tc.calculation).
			Trigger("aws-sqs-queue", map[string]string{"queueURL": url, "queueLength": "3", "awsRegion": "us-east-1",
				"awsEndpoint": framework.Cluster().SQSEndpoint}, nil).
			Trigger("cron", map[string]string{"timezone": "Etc/UTC", "start": start, "end": end, "desiredReplicas": "5"}, nil).
			Create()
	}
	f.StartDispatcher()

	for name, tc := range cases {
		sjName := "mixed-" + name
		t.Run(name, func(t *testing.T) {
			waitJobs(f, sjName, tc.want)
			// Status is written only on change, so the decision seen may be the creating one or the next tick's
			// (everything running); both carry the combined want.
			var sj *v1alpha1.ScaledJob
			wants := fmt.Sprintf("wants %d Jobs", tc.want)
			f.Eventually("a decision of "+sjName+" that "+wants, time.Minute, func() (bool, error) {
				sj = f.ScaledJob(sjName)
				d := sj.Status.LastDecision
				return d != nil && strings.Contains(d.Reason, wants), fmt.Errorf("last decision %+v", d)
			})
			t.Logf("%s: %d Jobs; decision: %s", name, jobCount(f, sjName), sj.Status.LastDecision.Reason)
			if n := jobCount(f, sjName); n != tc.want {
				t.Errorf("%d Jobs, want %d (%s)", n, tc.want, sj.Status.LastDecision.Reason)
			}
			wantTriggers := []triggerReading{
				{Name: "awssqsqueue0", Backlog: "9", Target: "3", Active: true},
				{Name: "cron1", Backlog: "5", Target: "1", Active: true},
			}
			if diff := cmp.Diff(wantTriggers, readings(sj)); diff != "" {
				t.Errorf("status.triggers (-want +got):\n%s", diff)
			}

			// One more tick: everything it asked for is running, so it creates nothing.
			before := f.Ticks(sjName)
			nudged := time.Now()
			f.UpdateScaledJob(sjName, func(sj *v1alpha1.ScaledJob) {
				if sj.Annotations == nil {
					sj.Annotations = map[string]string{}
				}
				sj.Annotations["e2e.kubedispatch.io/nudge"] = strconv.FormatInt(nudged.UnixNano(), 10)
			})
			f.WaitTicks(sjName, before, 1)
			// The tick counter moves just before the tick's status write: wait for the write, not only the count.
			running := fmt.Sprintf("%d running", tc.want)
			f.Eventually("the next tick's decision of "+sjName, time.Minute, func() (bool, error) {
				d := f.ScaledJob(sjName).Status.LastDecision
				return d != nil && d.JobsCreated == 0 && strings.Contains(d.Reason, running), fmt.Errorf("last decision %+v", d)
			})
			if n := jobCount(f, sjName); n != tc.want {
				t.Errorf("after one more tick: %d Jobs, want %d", n, tc.want)
			}
		})
	}
}

// triggerReading is the part of a trigger's status that a test compares.
type triggerReading struct {
	Name, Backlog, Target string
	Active                bool
}

func readings(sj *v1alpha1.ScaledJob) []triggerReading {
	var out []triggerReading
	for _, tr := range sj.Status.Triggers {
		out = append(out, triggerReading{Name: tr.Name, Backlog: tr.Backlog, Target: tr.Target, Active: tr.Active && tr.LastError == ""})
	}
	return out
}
