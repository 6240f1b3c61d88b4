package explain

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Print writes x as numbered steps for a human.
func Print(w io.Writer, x Explanation) error {
	p := &printer{w: w}
	p.header(x)
	p.steps(x)
	return p.err
}

// PrintComparison writes the current explanation, then the figures that differ with the what-if settings side by
// side.
func PrintComparison(w io.Writer, c Comparison) error {
	p := &printer{w: w}
	p.header(c.Current)
	p.steps(c.Current)
	p.line("")
	p.line("What if %s:", c.WhatIf)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tCURRENT\tWHAT-IF")
	cur, chg := c.Current, c.Changed
	rows := [][3]string{
		{"strategy", cur.Strategy, chg.Strategy},
		{"multipleScalersCalculation", cur.Calculation, chg.Calculation},
		{"minReplicaCount (normalised)", itoa(cur.Replicas.MinEffective), itoa(chg.Replicas.MinEffective)},
		{"maxReplicaCount (normalised)", itoa(cur.Replicas.MaxEffective), itoa(chg.Replicas.MaxEffective)},
		{"combined scaleTo / maxScale", fmt.Sprintf("%d / %d", cur.Combined.ScaleTo, cur.Combined.MaxScale), fmt.Sprintf("%d / %d", chg.Combined.ScaleTo, chg.Combined.MaxScale)},
		{"running / pending", fmt.Sprintf("%d / %d", cur.Jobs.Running, cur.Jobs.Pending), fmt.Sprintf("%d / %d", chg.Jobs.Running, chg.Jobs.Pending)},
		{"effective max", itoa(cur.EffectiveMax), itoa(chg.EffectiveMax)},
		{"decision asks for", itoa(cur.WouldCreate), itoa(chg.WouldCreate)},
		{"blockers", strconv.Itoa(len(cur.Blockers)), strconv.Itoa(len(chg.Blockers))},
		{"Jobs to create", itoa(cur.Create), itoa(chg.Create)},
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", r[0], r[1], r[2])
	}
	if err := tw.Flush(); err != nil && p.err == nil {
		p.err = err
	}
	p.line("  what-if reason: %s", chg.Reason)
	for _, b := range chg.Blockers {
		p.line("  what-if blocked by: %s", b)
	}
	return p.err
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) line(format string, args ...any) {
	if p.err != nil {
		return
	}
	_, p.err = fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *printer) header(x Explanation) {
	p.line("ScaledJob %s (generation %d, status of generation %d)", x.ScaledJob, x.Generation, x.StatusGeneration)
}

func (p *printer) steps(x Explanation) {
	p.line("1. Triggers (last readings from status):")
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "   NAME\tTYPE\tBACKLOG Q\tTARGET T\tACTIVE\tJOBS ceil(Q/T)\tSAMPLED\tERROR")
	for _, t := range x.Triggers {
		jobs := itoa(t.Jobs)
		if t.Error != "" {
			jobs = "-"
		}
		sampled := "-"
		if t.SampledAt != nil {
			sampled = t.SampledAt.UTC().Format(time.RFC3339)
		}
		errText := "-"
		if t.Error != "" {
			errText = t.Error
		}
		fmt.Fprintf(tw, "   %s\t%s\t%s\t%s\t%t\t%s\t%s\t%s\n", t.Name, t.Type, ftoa(t.Backlog), ftoa(t.Target), t.Active, jobs, sampled, errText)
	}
	if err := tw.Flush(); err != nil && p.err == nil {
		p.err = err
	}
	usable := len(x.Triggers) - len(x.FailedTriggers)
	comb := fmt.Sprintf("2. Combination: %s of %d usable of %d triggers", x.Calculation, usable, len(x.Triggers))
	if x.PartialRule != "" {
		comb = fmt.Sprintf("2. Combination: %s; %s failed: %s", x.Calculation, strings.Join(x.FailedTriggers, ", "), x.PartialRule)
	}
	p.line("%s -> active %t, scaleTo ceil(Q) = %d, maxScale ceil(min(Q/T, max)) = %d", comb, x.Combined.Active, x.Combined.ScaleTo, x.Combined.MaxScale)
	p.line("3. Min/max: minReplicaCount %s, maxReplicaCount %s -> normalised min %d, max %d (total cap %d)",
		i32toa(x.Replicas.Min), i32toa(x.Replicas.Max), x.Replicas.MinEffective, x.Replicas.MaxEffective, x.Replicas.MinEffective+x.Replicas.MaxEffective)
	if x.Replicas.Window != "" {
		p.line("   capacity: %s (spec values replaced while the window is open)", x.Replicas.Window)
	}
	if x.Replicas.NextWindowChange != "" {
		p.line("   next capacity change: %s", x.Replicas.NextWindowChange)
	}
	p.line("4. Jobs: %d running, of which %d pending; %d succeeded and %d failed kept in history", x.Jobs.Running, x.Jobs.Pending, x.Jobs.Succeeded, x.Jobs.Failed)
	for _, j := range x.Unfinished {
		p.line("   %s: %s: %s", j.Name, j.State, j.Why)
	}
	p.line("5. Strategy %s: effective max %d", x.Strategy, x.EffectiveMax)
	p.line("6. Decision: %d %s (%s)", x.WouldCreate, jobsWord(x.WouldCreate), x.Reason)
	if len(x.Blockers) == 0 {
		p.line("7. What blocks or limits creation: nothing")
	} else {
		p.line("7. What blocks or limits creation:")
		for _, b := range x.Blockers {
			p.line("   - %s", b)
		}
	}
	p.line("Jobs to create: %d", x.Create)
	if d := x.LastDecision; d != nil {
		p.line("Last decision of the dispatcher (%s): %d created: %s", d.Time.UTC().Format(time.RFC3339), d.JobsCreated, d.Reason)
	}
	for _, n := range x.Notes {
		p.line("Note: %s", n)
	}
}

func jobsWord(n int64) string {
	if n == 1 {
		return "Job"
	}
	return "Jobs"
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func ftoa(f *float64) string {
	if f == nil {
		return "-"
	}
	return strconv.FormatFloat(*f, 'g', -1, 64)
}

func i32toa(v *int32) string {
	if v == nil {
		return "unset"
	}
	return strconv.Itoa(int(*v))
}
