package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// command is the go run line that repeats the run.
func (o options) command() string {
	var sc []string
	for _, s := range []string{scenarioIdle, scenarioMem} {
		if o.scenarios[s] {
			sc = append(sc, s)
		}
	}
	args := []string{"go run ./bench/scale", "-scenarios=" + strings.Join(sc, ",")}
	if o.scenarios[scenarioIdle] {
		args = append(args, fmt.Sprintf("-scaledjobs=%d -duration=%s -settle=%s -poll=%d -queues=%d -busy-queues=%d -busy-messages=%d -open-cron=%d",
			o.scaledJobs, o.duration, o.settle, o.poll, o.queues, o.busyQueues, o.busyMessages, o.openCron))
	}
	if o.scenarios[scenarioMem] {
		args = append(args, fmt.Sprintf("-memory-scaledjobs=%d -finished-jobs=%d -running-jobs=%d -memory-settle=%s",
			o.memScaledJobs, o.finishedJobs, o.runningJobs, o.memSettle))
	}
	if o.dispatcherBin != "" {
		args = append(args, "-dispatcher="+o.dispatcherBin)
	}
	return strings.Join(args, " ")
}

// verdict compares a measured value with an upper bound.
func verdict(v, limit float64) string {
	if v < limit {
		return "met"
	}
	return "**MISSED**"
}

// render formats the result as markdown.
func render(r result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Scale benchmark, %s\n\n", r.Date.Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(&b, "The real dispatcher (default flags, `--leader-elect=false`) on a fresh local stack (etcd, kube-apiserver, "+
		"controller-manager, scheduler, kwok, moto; `e2e/cluster`), started in %.1f s. Dispatcher code: %s. %d CPUs, shared "+
		"with other work; %s. Whole run: %.0f s. Repeat with:\n\n```sh\n%s\n```\n\n",
		r.StackStartupSeconds, r.Revision, r.CPUs, r.GoVersion, r.WallSeconds, r.Command)
	if r.Idle != nil {
		renderIdle(&b, r.Idle)
	}
	if r.Memory != nil {
		renderMemory(&b, r.Memory)
	}
	renderBefore(&b, r.Idle)
	b.WriteString("## Method\n\n")
	b.WriteString("- **Tick lag** is the dispatcher's histogram `kubedispatch_tick_lag_seconds` (seconds from when a decision was due " +
		"to when it was made): bucket counts at the end of the window minus those at its start, summed over label sets; " +
		"quantiles are interpolated inside the bucket as PromQL's `histogram_quantile` does, so their resolution is the " +
		"bucket width. \"n/a (metric missing)\" means the dispatcher binary does not export it.\n")
	b.WriteString("- **API requests** are deltas of the kube-apiserver's `apiserver_request_total` over the window, summed over " +
		"code, scope, version and component, grouped by verb, resource and subresource (all clients: the controller-manager, " +
		"scheduler and kwok included). The dispatcher column counts the same requests at a proxy in the benchmark that is " +
		"the dispatcher's only way to the API server (its `--kubeconfig` points at it, TLS with a throwaway certificate); " +
		"the proxy classifies them as the API server does. A WATCH is counted by the API server when it ends and by the proxy when it starts.\n")
	b.WriteString("- **Status writes**: the API server labels an update of the status subresource `PUT` (not `UPDATE`); every " +
		"write verb (PUT, PATCH, APPLY) of `scaledjobs/status` is summed. Only the dispatcher writes it. The per-class split " +
		"comes from a metadata watch on the ScaledJobs: one MODIFIED event per write that changed the object (a write that " +
		"changes nothing makes no event but is still counted by the API server).\n")
	b.WriteString("- **CPU** is utime + stime from `/proc/<pid>/stat` over the window divided by its wall time; **RSS** is VmRSS " +
		"from `/proc/<pid>/status` sampled every second, and VmHWM (the peak over the process's life).\n")
	fmt.Fprintf(&b, "\nDate: %s.\n", r.Date.Format(time.RFC3339))
	return b.String()
}

func renderIdle(b *strings.Builder, r *idleResult) {
	fmt.Fprintf(b, "## (a) %d ScaledJobs, pollingInterval %d s, measured for %.0f s\n\n", r.ScaledJobs, r.PollSeconds, r.WindowSeconds)
	fmt.Fprintf(b, "Half cron, half `aws-sqs-queue` on moto: %d cron ScaledJobs whose daily window is closed (it opens 12 h later), "+
		"%d whose window is open (desiredReplicas 1, one Job each), %d SQS ScaledJobs on %d empty queues and %d on %d queue(s) "+
		"holding %d messages each (queueLength 1: %d Jobs each). Every SQS trigger takes its access keys from a "+
		"TriggerAuthentication (secretTargetRef to one Secret). Jobs' kwok pods run 1 h, so the non-idle ScaledJobs keep "+
		"their %d Jobs and stay steady. The dispatcher was started first; the %d ScaledJobs were then created in %.1f s; every "+
		"one had a decision %.1f s after the last create. The window started %.1f s after the last create (-settle %s) and "+
		"lasted %.1f s (-duration %s).\n\n",
		r.ByClass[classCronClosed], r.ByClass[classCronOpen], r.ByClass[classSQSEmpty], r.Queues-r.BusyQueues,
		r.ByClass[classSQSBusy], r.BusyQueues, r.BusyMessages, r.BusyMessages, r.ExpectedJobs, r.ScaledJobs,
		r.CreateSeconds, r.AllTickedSeconds, r.SettleSeconds, r.SettleFlag, r.WindowSeconds, r.DurationFlag)

	b.WriteString("| metric | measured | target | verdict |\n| --- | --- | --- | --- |\n")
	row := func(metric, value, target, v string) {
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", metric, value, target, v)
	}
	lagVerdict := "n/a"
	if r.TickLag != nil && r.TickLag.Observations > 0 {
		lagVerdict = verdict(r.TickLag.P99Seconds, targetTickLagP99Seconds)
		if r.TickLag.P99Beyond {
			lagVerdict = "**MISSED**"
		}
	}
	lagObs := ""
	if r.TickLag != nil {
		lagObs = fmt.Sprintf(" (%.0f decisions, mean %.3g s)", r.TickLag.Observations, r.TickLag.MeanSeconds)
	}
	row("tick lag p50", r.lagText(false)+lagObs, "-", "-")
	row("**tick lag p99**", "**"+r.lagText(true)+"**", fmt.Sprintf("< %g s", targetTickLagP99Seconds), lagVerdict)
	row("ticks/s (`kubedispatch_tick_duration_seconds_count`)", fmt.Sprintf("%s (%s)", fmtRate(r.TicksPerSecond), mapText(r.TicksByResult)),
		fmt.Sprintf("- (polls due: %s = %d ScaledJobs / %d s)", fmtRate(r.ExpectedTicksPerSecond), r.ScaledJobs, r.PollSeconds), "-")
	poll := float64(r.PollSeconds)
	row("trigger reads/s by type (`kubedispatch_trigger_read_duration_seconds_count`)", mapText(r.ReadsPerSecond),
		fmt.Sprintf("polls due: aws-sqs-queue %s, cron %s", fmtRate(float64(r.ByClass[classSQSEmpty]+r.ByClass[classSQSBusy])/poll),
			fmtRate(float64(r.ByClass[classCronClosed]+r.ByClass[classCronOpen])/poll)), "-")
	statusVerdict := verdict(r.Status.AllPerSecond, targetIdleStatusWritesPS)
	if r.Status.AllPerSecond >= targetIdleStatusWritesPS && r.Status.IdleChangesPerSecond < targetIdleStatusWritesPS {
		statusVerdict = "met by the idle ones (see the split); all ScaledJobs together exceed it"
	}
	row("**status writes/s**, all ScaledJobs (`apiserver_request_total{resource=\"scaledjobs\",subresource=\"status\"}`, write verbs)",
		fmt.Sprintf("**%s** (%s; dispatcher via proxy %s)", fmtRate(r.Status.AllPerSecond), mapText(r.Status.ByVerbPerSecond), fmtRate(r.Status.DispatcherPerSecond)),
		fmt.Sprintf("idle ScaledJobs < %g/s in total", targetIdleStatusWritesPS), statusVerdict)
	var split []string
	for _, c := range idleClasses {
		split = append(split, fmt.Sprintf("%s (%d): %s", c, r.ByClass[c], fmtRate(r.Status.ChangesPerSecond[c])))
	}
	row("status changes/s by class (watch)", strings.Join(split, "; ")+fmt.Sprintf("; **idle: %s**", fmtRate(r.Status.IdleChangesPerSecond)),
		fmt.Sprintf("idle < %g/s", targetIdleStatusWritesPS), verdict(r.Status.IdleChangesPerSecond, targetIdleStatusWritesPS))
	secAll, secDisp := r.apiRate(requestKey{Verb: "GET", Resource: "secrets"})
	row("Secret GETs/s", fmt.Sprintf("%s (dispatcher via proxy %s)", fmtRate(secAll), fmtRate(secDisp)), "- (before: 400-600/s, see below)", "-")
	var allRate, dispRate float64
	for _, a := range r.API {
		allRate += a.AllPerSecond
		dispRate += a.DispatcherPerSecond
	}
	row("API requests/s, total", fmt.Sprintf("dispatcher %s; all clients %s (table below)", fmtRate(dispRate), fmtRate(allRate)), "-", "-")
	row("**dispatcher CPU**", fmt.Sprintf("**%.3f core** (%.1f s in %.1f s)", r.Cores, r.CPUSeconds, r.WindowSeconds),
		fmt.Sprintf("< %g core", targetCores), verdict(r.Cores, targetCores))
	row("**dispatcher peak RSS** (VmHWM, whole life)", fmt.Sprintf("**%.1f MiB** (largest VmRSS in the window %.1f MiB, at the end %.1f MiB)",
		r.HWMMiB, r.PeakRSSMiB, r.RSSEndMiB), fmt.Sprintf("< %g MiB", targetIdleRSSMiB), verdict(r.HWMMiB, targetIdleRSSMiB))
	row("Jobs", fmt.Sprintf("%.0f created in the window; %d at the end", r.JobsCreatedInWindow, r.JobsAtEnd), fmt.Sprintf("0; %d", r.ExpectedJobs),
		okText(r.JobsCreatedInWindow == 0 && r.JobsAtEnd == r.ExpectedJobs))
	row("checks", problemsText(r.Problems), "-", okText(len(r.Problems) == 0))

	b.WriteString("\nAPI requests/s over the window by verb, resource and subresource (rows under 0.005/s on both sides left out):\n\n")
	b.WriteString("| verb | resource | subresource | dispatcher (proxy) | all clients (`apiserver_request_total`) |\n| --- | --- | --- | --- | --- |\n")
	left := 0
	for _, a := range r.API {
		if a.AllPerSecond < 0.005 && a.DispatcherPerSecond < 0.005 {
			left++
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", a.Verb, a.Resource, a.Subresource, fmtRate(a.DispatcherPerSecond), fmtRate(a.AllPerSecond))
	}
	if left > 0 {
		fmt.Fprintf(b, "\n(%d quieter rows left out; all of them are in the .json file.)\n", left)
	}
	b.WriteString("\n")
}

func renderMemory(b *strings.Builder, r *memoryResult) {
	fmt.Fprintf(b, "## (b) Memory: %d ScaledJobs owning %d Complete and %d running Jobs\n\n", r.ScaledJobs, r.FinishedJobs, r.RunningJobs)
	fmt.Fprintf(b, "The benchmark created the Jobs itself, as the dispatcher would have (label `kubedispatch.io/scaledjob`, controller "+
		"reference to the ScaledJob, generation annotation), with the pod template on the kwok node: %d whose pods run 1 s "+
		"(Complete) and %d whose pods run 1 h. Each ScaledJob has a cron trigger with a closed window, maxReplicaCount %d "+
		"(full) and successfulJobsHistoryLimit %d (keeps all its finished Jobs), so the dispatcher has nothing to create or "+
		"delete. Created in %.1f s; all Complete or running %.1f s after the first create, with %d pods in the namespace. "+
		"The dispatcher was started only then, so its initial lists hold every object; every ScaledJob had a decision "+
		"%.1f s after its start, and it ran %.0f s more before the figures were read.\n\n",
		r.FinishedJobs, r.RunningJobs, r.MaxReplicaCount, r.SuccessfulJobsHistoryLimit, r.CreateSeconds, r.ObjectsSeconds,
		r.PodsAtStart, r.AllTickedSeconds, r.SettleSeconds)
	b.WriteString("| metric | measured | target | verdict |\n| --- | --- | --- | --- |\n")
	row := func(metric, value, target, v string) {
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", metric, value, target, v)
	}
	row("**dispatcher VmRSS** after the settle", fmt.Sprintf("**%.1f MiB**", r.RSSMiB), fmt.Sprintf("< %g MiB", targetMemoryRSSMiB), verdict(r.RSSMiB, targetMemoryRSSMiB))
	row("**dispatcher VmHWM** (peak, initial lists included)", fmt.Sprintf("**%.1f MiB** (largest VmRSS sampled %.1f MiB)", r.HWMMiB, r.PeakRSSMiB),
		fmt.Sprintf("< %g MiB", targetMemoryRSSMiB), verdict(r.HWMMiB, targetMemoryRSSMiB))
	row("Go heap in use (`go_memstats_heap_inuse_bytes`)", fmt.Sprintf("%.1f MiB", r.HeapInUseMiB), "-", "-")
	row("dispatcher CPU while settled", fmt.Sprintf("%.3f core", r.Cores), "-", "-")
	row("Jobs created / deleted by the dispatcher; Jobs at the end", fmt.Sprintf("%.0f / %.0f; %d", r.JobsCreated, r.JobsDeleted, r.JobsAtEnd),
		fmt.Sprintf("0 / 0; %d", r.FinishedJobs+r.RunningJobs), okText(r.JobsCreated == 0 && r.JobsDeleted == 0 && r.JobsAtEnd == r.FinishedJobs+r.RunningJobs))
	row("ScaledJobs' status: sum of active / succeeded", fmt.Sprintf("%d / %d", r.StatusActive, r.StatusSucceeded),
		fmt.Sprintf("%d / %d", r.RunningJobs, r.FinishedJobs), okText(r.StatusActive == r.RunningJobs && r.StatusSucceeded == r.FinishedJobs))
	row("checks", problemsText(r.Problems), "-", okText(len(r.Problems) == 0))
	b.WriteString("\n")
}

func renderBefore(b *strings.Builder, r *idleResult) {
	b.WriteString("## Before (design estimate, not measured)\n\n")
	b.WriteString("No old code path is kept to measure, so this is the estimate from the issue for the previous design at " +
		"1,000 ScaledJobs polled every 5 s (200 ticks/s): about **200 status writes/s** (one per tick) and **400-600 Secret " +
		"GETs/s** (2-3 per tick). It is not measured here.\n\n")
	if r == nil {
		return
	}
	secAll, secDisp := r.apiRate(requestKey{Verb: "GET", Resource: "secrets"})
	b.WriteString("| | before (estimate, 1,000 ScaledJobs / 5 s) | this run (measured) |\n| --- | --- | --- |\n")
	fmt.Fprintf(b, "| status writes/s | ~200 | %s (%d ScaledJobs / %d s) |\n", fmtRate(r.Status.AllPerSecond), r.ScaledJobs, r.PollSeconds)
	fmt.Fprintf(b, "| Secret GETs/s | 400-600 | %s (dispatcher %s; %d of the ScaledJobs reference a Secret) |\n\n",
		fmtRate(secAll), fmtRate(secDisp), r.ByClass[classSQSEmpty]+r.ByClass[classSQSBusy])
}

// mapText renders a map of rates as "k v, ..." sorted by key.
func mapText(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %s", k, fmtRate(m[k])))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func okText(ok bool) string {
	if ok {
		return "ok"
	}
	return "**FAIL**"
}

func problemsText(p []string) string {
	if len(p) == 0 {
		return "pass"
	}
	return strings.Join(p, "; ")
}
