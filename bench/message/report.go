package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// dur formats seconds: milliseconds below one second, seconds above.
func dur(s float64) string {
	switch {
	case s < 0.1 && s > -0.1:
		return fmt.Sprintf("%.1f ms", 1000*s)
	case s < 1 && s > -1:
		return fmt.Sprintf("%.0f ms", 1000*s)
	default:
		return fmt.Sprintf("%.2f s", s)
	}
}

// three formats a latency as p50 / p99 / max.
func three(l latency) string {
	if l.N == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%s / %s / %s", dur(l.P50), dur(l.P99), dur(l.Max))
}

// met marks a target.
func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**MISSED**"
}

// readStream explains what bounded one mode's stream: the dispatch path, the cap, or the sustained creation rate.
func readStream(b *strings.Builder, r result, s streamResult, name string) {
	behind := s.NthJobSeconds - s.SendSeconds
	capped := s.MaxUnfinished >= r.MaxReplicaCount
	slack := 1.0 // seconds after the last send within which the last Job shows that the dispatcher kept up
	if s.Mode == modeCount {
		slack += float64(r.CountPollingSeconds) // the last messages wait for the next poll
	}
	capText := fmt.Sprintf("without reaching the cap (at most %d unfinished Jobs of %d)", s.MaxUnfinished, r.MaxReplicaCount)
	if capped {
		capText = fmt.Sprintf("and reached the cap (%d unfinished Jobs) at some point", s.MaxUnfinished)
	}
	switch {
	case behind <= slack && !capped:
		fmt.Fprintf(b, "- %s kept up with the stream: Job %d appeared %s after the last send, at most %d Jobs were "+
			"unfinished (cap %d); the latency is the dispatch path's.\n", name, s.Messages, dur(behind), s.MaxUnfinished, r.MaxReplicaCount)
	case behind <= slack:
		fmt.Fprintf(b, "- %s kept up with the stream (Job %d appeared %s after the last send) but reached the cap "+
			"(%d unfinished Jobs): some messages waited for a free slot.\n", name, s.Messages, dur(behind), s.MaxUnfinished)
	default:
		fmt.Fprintf(b, "- %s fell behind the stream %s: it created %.1f Jobs/s while %.1f messages/s arrived, and "+
			"Job %d appeared %s after the last send. Its latency is then mostly the time a message waits behind earlier "+
			"ones, growing over the run: it measures the sustained creation rate of the whole stack on this machine rather "+
			"than a single message's dispatch (meanwhile the benchmark's own %s calls took p50 %s, max %s: "+
			"the queue service, the API server, kwok and the dispatcher share the machine's %d cores).\n",
			name, capText, s.JobsPerSecond, s.AchievedRate, s.Messages, dur(behind), sendCallName(s.Queue), dur(s.SendCall.P50),
			dur(s.SendCall.Max), r.CPUs)
	}
}

// render formats the result as markdown: what was run, the tables, the method and the repeat command.
func render(r result) string {
	code := r.Revision
	if len(r.Uncommitted) > 0 {
		code += " (the working tree, with uncommitted changes to " + strings.Join(r.Uncommitted, ", ") + ")"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Message-mode latency benchmark, %s\n\n", r.Date.Format("2006-01-02 15:04:05 UTC"))
	services := "moto for SQS"
	if r.PubSub != nil {
		services += ", the Pub/Sub emulator"
	}
	if r.ServiceBus != nil {
		services += ", the Service Bus fake (`internal/sbfake`)"
	}
	fmt.Fprintf(&b, "One local stack (etcd, kube-apiserver, controller-manager, scheduler, kwok, %s; started in %.1f s) and "+
		"one dispatcher process (default flags, `--leader-elect=false`). Queues: %s. Dispatcher code: %s. %d CPUs, shared "+
		"with other work; %s. Whole run %.0f s.\n\n", services, r.StackStartupSeconds, strings.Join(r.Queues, ", "), code, r.CPUs,
		r.GoVersion, r.WallSeconds)
	if r.Message != nil {
		renderSQS(&b, r)
	}
	if r.PubSub != nil || r.ServiceBus != nil {
		renderQueues(&b, r)
	}
	fmt.Fprintf(&b, "\nRepeat with:\n\n```sh\n%s\n```\n\nDate: %s.\n", r.Command, r.Date.Format(time.RFC3339))
	return b.String()
}

// renderSQS writes the SQS part: message mode against count mode, and the first-Job trials.
func renderSQS(b *strings.Builder, r result) {
	m, c, fm, fc, v := *r.Message, *r.Count, *r.FirstMessage, *r.FirstCount, r.Verdicts
	b.WriteString("## SQS: message mode and count mode\n\n")
	fmt.Fprintf(b, "Two ScaledJobs, each in its own namespace on its own "+
		"SQS queue (VisibilityTimeout %d s), one `aws-sqs-queue` trigger (queueLength 1), maxReplicaCount %d, default history limits, kwok pods that run "+
		"%s and succeed: **message mode** (`spec.dispatch.mode: message`: the dispatcher long-polls the queue and creates one Job "+
		"per message, deleting the message when its Job completes) and **count mode** (pollingInterval %d s; the worker "+
		"simulator, `e2e/worker`, takes one message per running pod and deletes it just before the pod succeeds). Each gets "+
		"%d messages at a steady %g/s (SendMessageBatch of %d every %s), one mode after the other. Then %d single-message "+
		"first-Job trials per mode on fresh ScaledJobs.\n\n",
		r.VisibilityTimeoutSeconds, r.MaxReplicaCount, runFor, r.CountPollingSeconds,
		r.Messages, r.RatePerSecond, r.BatchSize, batchInterval(r.RatePerSecond).Round(time.Millisecond), len(fm.Trials))

	fmt.Fprintf(b, "| metric | message mode | count mode, pollingInterval %d s | target |\n| --- | --- | --- | --- |\n", r.CountPollingSeconds)
	row := func(metric, msg, count, target string) {
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", metric, msg, count, target)
	}
	row("**enqueue -> Job created, p50**", fmt.Sprintf("**%s** (per message)", dur(m.PerMessage.P50)),
		fmt.Sprintf("**%s** (k-th message -> k-th Job)", dur(c.Kth.P50)),
		fmt.Sprintf("message mode <= %s: %s", dur(v.TargetP50Seconds), met(v.P50Met)))
	row("**enqueue -> Job created, p99**", fmt.Sprintf("**%s**", dur(m.PerMessage.P99)), dur(c.Kth.P99),
		fmt.Sprintf("message mode <= %s: %s", dur(v.TargetP99Seconds), met(v.P99Met)))
	row("enqueue -> Job created, max", dur(m.PerMessage.Max), dur(c.Kth.Max), "-")
	row("**count-mode p50 / message-mode p50** (the streams above)", fmt.Sprintf("**%.1fx**", v.Ratio), "-",
		fmt.Sprintf(">= %.0fx: %s", v.TargetRatio, met(v.RatioMet)))
	row("k-th message sent -> k-th Job seen, p50 / p99 / max (count mode's measure, both modes)", three(m.Kth), three(c.Kth), "-")
	row("per message, from the SendMessageBatch return, p50 / p99 / max", three(m.PerMessageFromReturn), "n/a (Jobs not bound to messages)", "-")
	if len(m.ByBatchPositionP50) > 0 {
		var ps []string
		for _, p := range m.ByBatchPositionP50 {
			ps = append(ps, dur(p))
		}
		row(fmt.Sprintf("per message by its entry in the SendMessageBatch call (1 to %d), p50", len(ps)), strings.Join(ps, ", "), "n/a", "-")
	}
	row("dispatcher's own `kubedispatch_message_dispatch_latency_seconds` (enqueue = SQS SentTimestamp; interpolated in buckets)",
		histCell(m.Dispatcher), "n/a (message mode only)", "-")
	firstCell := func(f firstResult) string {
		var ts []string
		for _, t := range f.Trials {
			ts = append(ts, dur(t.LatencySeconds))
		}
		return fmt.Sprintf("median %s, max %s (%s)", dur(f.MedianSeconds), dur(f.MaxSeconds), strings.Join(ts, ", "))
	}
	firstMsg := firstCell(fm)
	if h := fm.Dispatcher; h != nil && h.Observations > 0 {
		firstMsg += fmt.Sprintf("; dispatcher's histogram p50 %s", dur(h.P50))
	}
	row(fmt.Sprintf("first Job for a single message, %d trials: fresh ScaledJob idle >= %.0f s, send -> Job seen", len(fm.Trials), fm.IdleSeconds),
		firstMsg, firstCell(fc), "-")
	if fm.MedianSeconds > 0 {
		row("count-mode / message-mode first-Job median", fmt.Sprintf("%.0fx", fc.MedianSeconds/fm.MedianSeconds), "-",
			"- (the ratio target is on the streams' p50s)")
	}
	row("messages sent", sendCell(m), sendCell(c), fmt.Sprintf("%g/s", r.RatePerSecond))
	row(fmt.Sprintf("first Job / Job %d / last Job seen, from the first send; %d / (Job %d - first)", r.Messages, r.Messages, r.Messages),
		span(m), span(c), "-")
	row("Jobs created", fmt.Sprintf("%d (plus the warm-up's); exactly one per message: %s", m.JobsSeen, exactCell(m)),
		strconv.Itoa(c.JobsSeen), "message mode: exactly one Job per message")
	if w := c.Worker; w != nil {
		row("count mode: Jobs that got no message (Jobs - messages taken by pods)", "-", strconv.Itoa(c.JobsWithoutMessage), "-")
		row("worker simulator: messages taken / deleted / deleted twice / SQS errors", "n/a (the dispatcher holds the messages)",
			fmt.Sprintf("%d / %d / %d / %d", w.Received, w.Processed, c.DuplicateDeletes, w.Errors), "-")
	}
	row("max unfinished Jobs (after any watch event)", capCell(m, r.MaxReplicaCount), capCell(c, r.MaxReplicaCount), fmt.Sprintf("<= %d", r.MaxReplicaCount))
	row("Job lifetime p50 (seen -> seen finished)", dur(m.JobLifetimeP50Seconds), dur(c.JobLifetimeP50Seconds), fmt.Sprintf("pods run %s", runFor))
	row("watch check: max (ADDED received - creationTimestamp)", dur(m.WatchLagMaxSeconds), dur(c.WatchLagMaxSeconds),
		"about 1 s (the timestamp's rounding) plus the watch's delivery delay")
	row("messages left in the queue", fmt.Sprint(m.QueueLeft), fmt.Sprint(c.QueueLeft), "0")
	row("checks", checks(m.Problems, fm.Problems), checks(c.Problems, fc.Problems), "-")

	b.WriteString("\n### Reading the numbers\n\n")
	readStream(b, r, m, "Message mode")
	readStream(b, r, c, "Count mode")
	if ps := m.ByBatchPositionP50; len(ps) > 1 && ps[len(ps)-1] > 2*ps[0] {
		fmt.Fprintf(b, "- Within a SendMessageBatch call, later entries wait longer (entry 1 p50 %s, entry %d p50 %s).\n",
			dur(ps[0]), len(ps), dur(ps[len(ps)-1]))
	}
	fmt.Fprintf(b, "- The first-Job trials show a message that finds its ScaledJob idle: message mode %s median, count mode %s "+
		"(a count-mode message waits for the next poll, between 0 and %d s).\n", dur(fm.MedianSeconds), dur(fc.MedianSeconds), r.CountPollingSeconds)

	b.WriteString("\n### Method\n\n")
	fmt.Fprintf(b, "- **Send time** of a message is taken just before the SendMessageBatch call that carries it (the 10 messages of a "+
		"batch share it; the call's return is reported too). A new call starts every %s on a fixed schedule, each in its own "+
		"goroutine, so a slow call does not delay the next. Message ids come from the call's response.\n",
		batchInterval(r.RatePerSecond).Round(time.Millisecond))
	b.WriteString("- **Job created** is the arrival of the Job's first event (ADDED) on a watch of the namespace's Jobs, opened before " +
		"anything is sent. `metadata.creationTimestamp` has second precision, too coarse for these figures; it is used only to " +
		"check that the watch does not lag (ADDED received minus creationTimestamp stays within about a second: the " +
		"timestamp's rounding plus the watch's delivery delay).\n")
	b.WriteString("- **Message mode, per message**: a Job's `kubedispatch.io/message-id` annotation names its message; the latency is " +
		"the message's send time to its Job's ADDED event. The ScaledJob is Ready (reason Receiving) and one warm-up message has " +
		"become a Job before the stream starts; the warm-up is left out of every figure. The dispatcher's histogram is the bucket " +
		"difference between a scrape after the warm-up and one after the stream, quantiles interpolated inside the bucket as " +
		"PromQL's `histogram_quantile` does (so their resolution is the bucket width); its enqueue time is the queue's " +
		"SentTimestamp (moto, same machine, millisecond precision).\n")
	b.WriteString("- **Count mode** Jobs are not bound to messages (each pod takes whichever message the queue hands it), so " +
		"enqueue -> Job created pairs the k-th message sent with the k-th Job seen, both sorted by time. It is given for message " +
		"mode too: the two modes compare like with like on that row. The **ratio** target compares count mode's k-th p50 with " +
		"message mode's per-message p50. After the worker has deleted every message, the benchmark waits for two more ticks and " +
		"for every Job to finish, so extra (idle) Jobs are counted.\n")
	b.WriteString("- **Drain** (message mode): once every message has a Job, the benchmark waits (up to 2 minutes) for every Job " +
		"to carry `kubedispatch.io/message-outcome: acked`, then for the queue to be empty (visible plus in flight) and every " +
		"Job to be finished.\n")
	fmt.Fprintf(b, "- **First Job**: %d fresh ScaledJobs per mode, each on its own queue, are created together; once all are up "+
		"(message mode Ready, count mode ticked once) the benchmark stays idle for %.0f s on purpose (longer than the message "+
		"loop's 20 s long poll, and several count-mode polls), then sends one message to each in turn (message, count, "+
		"message, ...), each after a random wait of 0-%d s so the sends land at random points of the count-mode poll cycle, and "+
		"waits for that ScaledJob's Job. Median is nearest-rank.\n", len(fm.Trials), fm.IdleSeconds, r.CountPollingSeconds)
	b.WriteString("- **Checks** (the run exits 1 on any): in message mode every message has exactly one Job (counted on the " +
		"watch, which also sees the Jobs that the default history limits delete later), the Jobs number the messages and all " +
		"are marked acked; in " +
		"count mode at least one Job per message; no more unfinished Jobs than maxReplicaCount; every queue drains; each " +
		"first-Job message-mode ScaledJob has exactly one Job. Missed targets do not fail the run, nor do count mode's " +
		"Jobs that got no message and the simulator's double deletes (reported).\n")
}

// histCell formats the dispatcher's histogram.
func histCell(h *histResult) string {
	if h == nil {
		return "n/a"
	}
	beyond := ""
	if h.P99Beyond {
		beyond = " (in the +Inf bucket: larger)"
	}
	return fmt.Sprintf("p50 %s (bucket %g-%g s), p99 %s%s (bucket %g-%g s); %.0f observations", dur(h.P50), h.P50Bucket[0], h.P50Bucket[1],
		dur(h.P99), beyond, h.P99Bucket[0], h.P99Bucket[1], h.Observations)
}

// sendCell formats a stream's sends.
func sendCell(s streamResult) string {
	return fmt.Sprintf("%d in %.2f s (%.1f/s); %s p50 %s, max %s", s.Messages, s.SendSeconds, s.AchievedRate, sendCallName(s.Queue),
		dur(s.SendCall.P50), dur(s.SendCall.Max))
}

// span formats a stream's first, n-th and last Job.
func span(s streamResult) string {
	return fmt.Sprintf("%s / %.2f s / %.2f s; %.1f Jobs/s", dur(s.FirstJobSeconds), s.NthJobSeconds, s.LastJobSeconds, s.JobsPerSecond)
}

// exactCell says whether every message had exactly one Job.
func exactCell(s streamResult) string {
	if s.MessagesWithoutJob > 0 || s.MessagesWithSeveralJobs > 0 {
		return fmt.Sprintf("**NO**: %d without, %d with several", s.MessagesWithoutJob, s.MessagesWithSeveralJobs)
	}
	return "yes"
}

// capCell formats the largest number of unfinished Jobs against the cap.
func capCell(s streamResult, limit int) string {
	if s.MaxUnfinished >= limit {
		return fmt.Sprintf("%d (the cap was reached: latency includes waiting for a slot)", s.MaxUnfinished)
	}
	return fmt.Sprintf("%d (cap not reached)", s.MaxUnfinished)
}

// checks formats the problems found: pass, or FAIL and the list.
func checks(ps ...[]string) string {
	var all []string
	for _, p := range ps {
		all = append(all, p...)
	}
	if len(all) == 0 {
		return "pass"
	}
	return "**FAIL**: " + strings.Join(all, "; ")
}

// renderQueues writes the message-mode streams of every queue side by side: SQS's (when it ran, the same figures
// as above) beside Pub/Sub's and Service Bus's.
func renderQueues(b *strings.Builder, r result) {
	ss := r.messageStreams()
	verdict := map[string]queueVerdict{}
	for _, v := range r.Verdicts.MessageMode {
		verdict[v.Queue] = v
	}
	b.WriteString("\n## Message mode on each queue\n\n")
	fmt.Fprintf(b, "One message-mode ScaledJob per queue, each in its own namespace, with SQS's settings: maxReplicaCount %d, default "+
		"history limits, kwok pods that run %s and succeed, a %d s lease (SQS VisibilityTimeout, Pub/Sub ackDeadlineSeconds, Service "+
		"Bus lock duration). **Pub/Sub**: a topic and its subscription on the emulator, one `gcp-pubsub` trigger "+
		"(subscriptionName) with a TriggerAuthentication of podIdentity provider gcp (the dispatcher's `PUBSUB_EMULATOR_HOST` "+
		"points it at the emulator, without credentials). **Service Bus**: a queue on the AMQP fake (MaxDeliveryCount %d) with a "+
		"SAS key of its own, one `azure-servicebus` trigger (queueName) with a TriggerAuthentication reading the connection "+
		"string from a Secret. Each gets %d messages at a steady %g/s (batches of %d, one every %s: one Pub/Sub Publish per "+
		"batch; Service Bus, ten SendMessage calls in a row, as the fake cannot take a SendMessageBatch) after one warm-up "+
		"message, one queue after the other, after the SQS runs.\n\n",
		r.MaxReplicaCount, runFor, r.VisibilityTimeoutSeconds, sbMaxDelivery, r.ExtraMessages, r.RatePerSecond, r.BatchSize,
		batchInterval(r.RatePerSecond).Round(time.Millisecond))
	b.WriteString("| metric |")
	for _, s := range ss {
		fmt.Fprintf(b, " %s (%d messages) |", queueTitle(s.Queue), s.Messages)
	}
	b.WriteString(" target |\n|" + strings.Repeat(" --- |", len(ss)+2) + "\n")
	row := func(metric string, cell func(s streamResult) string, target string) {
		fmt.Fprintf(b, "| %s |", metric)
		for _, s := range ss {
			fmt.Fprintf(b, " %s |", cell(*s))
		}
		fmt.Fprintf(b, " %s |\n", target)
	}
	row("**enqueue -> Job created, p50** (per message)", func(s streamResult) string {
		return fmt.Sprintf("**%s**: %s", dur(s.PerMessage.P50), met(verdict[s.Queue].P50Met))
	}, "<= "+dur(r.Verdicts.TargetP50Seconds))
	row("**enqueue -> Job created, p99**", func(s streamResult) string {
		return fmt.Sprintf("**%s**: %s", dur(s.PerMessage.P99), met(verdict[s.Queue].P99Met))
	}, "<= "+dur(r.Verdicts.TargetP99Seconds))
	row("enqueue -> Job created, max", func(s streamResult) string { return dur(s.PerMessage.Max) }, "-")
	row("per message, from the send call's return, p50 / p99 / max", func(s streamResult) string { return three(s.PerMessageFromReturn) }, "-")
	row("k-th message sent -> k-th Job seen, p50 / p99 / max", func(s streamResult) string { return three(s.Kth) }, "-")
	row("dispatcher's own `"+latencyMetric+"` (enqueue = SQS SentTimestamp, Pub/Sub publishTime, Service Bus EnqueuedTime; "+
		"interpolated in buckets)", func(s streamResult) string { return histCell(s.Dispatcher) }, "-")
	row("messages sent", sendCell, fmt.Sprintf("%g/s", r.RatePerSecond))
	row("first Job / n-th Job / last Job seen, from the first send; n / (n-th - first), n = messages", span, "-")
	row("Jobs created (the warm-up's left out); exactly one per message", func(s streamResult) string {
		return fmt.Sprintf("%d; %s", s.JobsSeen, exactCell(s))
	}, "exactly one Job per message")
	row("Jobs marked `kubedispatch.io/message-outcome: acked`", func(s streamResult) string {
		return fmt.Sprintf("%d of %d", s.JobsSeen-s.JobsNotAcked, s.JobsSeen)
	}, "all")
	row("max unfinished Jobs (after any watch event)", func(s streamResult) string { return capCell(s, r.MaxReplicaCount) },
		fmt.Sprintf("<= %d", r.MaxReplicaCount))
	row("Job lifetime p50 (seen -> seen finished)", func(s streamResult) string { return dur(s.JobLifetimeP50Seconds) },
		fmt.Sprintf("pods run %s", runFor))
	row("watch check: max (ADDED received - creationTimestamp)", func(s streamResult) string { return dur(s.WatchLagMaxSeconds) },
		"about 1 s")
	row("messages left on the queue", func(s streamResult) string { return fmt.Sprint(s.QueueLeft) }, "0")
	row("checks", func(s streamResult) string { return checks(s.Problems) }, "-")

	b.WriteString("\n### Reading the numbers\n\n")
	for _, s := range ss {
		if s.Queue != queueSQS {
			readStream(b, r, *s, queueTitle(s.Queue)+" message mode")
		}
	}
	b.WriteString("\n### Method\n\n")
	b.WriteString("- The measurement is SQS message mode's (above), through the same code: one loop over a small per-queue sender " +
		"(`benchQueue` in `bench/message/queues.go`).\n")
	b.WriteString("- **Send time**: just before the call that carries the message. Pub/Sub: one raw `Publish` RPC with the batch's " +
		"messages (not the client's batching Publisher), so, as on SQS, a batch's messages share it; Service Bus: each " +
		"message's own `SendMessage` on an azservicebus sender (AMQP), the batch's ten sent one after the other (the fake " +
		"drops the connection on a `SendMessageBatch`). The call's return is reported too.\n")
	fmt.Fprintf(b, "- **Which Job is which message**: Pub/Sub message ids are known only from the publish response and a Service "+
		"Bus Job's `kubedispatch.io/message-id` is the sequence number the queue assigns, which the sender never sees; so each "+
		"message carries the benchmark's own id in the attribute (application property) `%s`, and the ScaledJob copies it "+
		"with a `spec.dispatch.parameters` entry into the pod template annotation `%s`, which the Job watch reads.\n",
		benchIDAttribute, benchIDAnnotation)
	b.WriteString("- **Job created**: the arrival of the Job's ADDED event on a watch of the namespace's Jobs, as for SQS " +
		"(`creationTimestamp` has second precision).\n")
	b.WriteString("- **Drain**: once every message has a Job, the benchmark waits for every Job to be marked acked " +
		"(`kubedispatch.io/message-outcome`; the emulator cannot count the messages the dispatcher holds), then for the queue " +
		"to be empty: Service Bus by the fake's active plus locked counts, Pub/Sub by a `Pull` with returnImmediately " +
		"(whatever it returns is handed straight back with ack deadline 0), and for every Job to finish.\n")
}
