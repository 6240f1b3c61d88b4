package explain

import (
	"bytes"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// PrintSummary writes the compact view `kubectl dispatch watch` refreshes: the triggers' backlogs, the Jobs by
// state, what blocks creation, the Jobs to create and the dispatcher's last decision. now is the time of the
// refresh, printed in the header.
func PrintSummary(w io.Writer, x Explanation, now time.Time) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "ScaledJob %s at %s: %d to create now (decision %d)\n", x.ScaledJob, now.UTC().Format(time.RFC3339), x.Create, x.WouldCreate)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TRIGGER\tTYPE\tBACKLOG\tTARGET\tACTIVE\tERROR")
	for _, t := range x.Triggers {
		errText := "-"
		if t.Error != "" {
			errText = t.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\n", t.Name, t.Type, ftoa(t.Backlog), ftoa(t.Target), t.Active, errText)
	}
	_ = tw.Flush() // writes to a bytes.Buffer cannot fail
	if x.Replicas.Window != "" {
		fmt.Fprintf(&b, "Capacity: %s\n", x.Replicas.Window)
	}
	if x.Replicas.NextWindowChange != "" {
		fmt.Fprintf(&b, "Next capacity change: %s\n", x.Replicas.NextWindowChange)
	}
	fmt.Fprintf(&b, "Jobs: %d running (%d pending), %d succeeded, %d failed\n", x.Jobs.Running, x.Jobs.Pending, x.Jobs.Succeeded, x.Jobs.Failed)
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, j := range x.Unfinished {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", j.Name, j.State, j.Why)
	}
	_ = tw.Flush()
	for _, bl := range x.Blockers {
		fmt.Fprintf(&b, "Blocked: %s\n", bl)
	}
	if d := x.LastDecision; d != nil {
		fmt.Fprintf(&b, "Last decision: %s, %d created: %s\n", d.Time.UTC().Format(time.RFC3339), d.JobsCreated, d.Reason)
	} else {
		fmt.Fprintln(&b, "Last decision: none yet")
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("printing summary: %w", err)
	}
	return nil
}
