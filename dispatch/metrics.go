package dispatch

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the dispatcher's Prometheus metrics (prefix kubedispatch_). Create them once with NewMetrics and
// register them on the manager's registry.
type Metrics struct {
	JobsCreated      *prometheus.CounterVec
	JobCreateErrors  *prometheus.CounterVec
	JobsDeleted      *prometheus.CounterVec
	TriggerBacklog   *prometheus.GaugeVec
	TriggerActive    *prometheus.GaugeVec
	TriggerErrors    *prometheus.CounterVec
	TriggerLatency   *prometheus.HistogramVec
	Jobs             *prometheus.GaugeVec
	Paused           *prometheus.GaugeVec
	TickDuration     *prometheus.HistogramVec
	DecisionJobs     *prometheus.GaugeVec
	ScaledJobInvalid *prometheus.GaugeVec
	StatusWrites     prometheus.Counter
	QueueReads       *prometheus.CounterVec
	FailingBackoff   *prometheus.GaugeVec
	Ticks            *prometheus.CounterVec
	TickLag          prometheus.Histogram
	JobsFinished     *prometheus.CounterVec
	MaxReplicas      *prometheus.GaugeVec
}

// NewMetrics builds the metrics and registers them on reg (nil: not registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	sj := []string{"namespace", "scaledjob"}
	trig := []string{"namespace", "scaledjob", "trigger", "type"}
	m := &Metrics{
		JobsCreated: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubedispatch_jobs_created_total",
			Help: "Jobs created, per ScaledJob."}, sj),
		JobCreateErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubedispatch_job_create_errors_total",
			Help: "Job creations the API server refused, per ScaledJob."}, sj),
		JobsDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubedispatch_jobs_deleted_total",
			Help: "Jobs deleted by the dispatcher, by reason (history: beyond the history limits; rollout: older generation with rollout.strategy immediate)."},
			[]string{"namespace", "scaledjob", "reason"}),
		TriggerBacklog: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kubedispatch_trigger_backlog",
			Help: "Last backlog value read from each trigger (messages, or desiredReplicas for cron)."}, trig),
		TriggerActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kubedispatch_trigger_active",
			Help: "1 when the trigger was active at its last reading, else 0."}, trig),
		TriggerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubedispatch_trigger_errors_total",
			Help: "Failed trigger readings (configuration or transient)."}, trig),
		TriggerLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kubedispatch_trigger_read_duration_seconds",
			Help: "Time to read one trigger's backlog.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}, []string{"type"}),
		Jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kubedispatch_jobs",
			Help: "Jobs of each ScaledJob at the last tick, by state (active = unfinished, pending = not yet running, a subset of active)."},
			[]string{"namespace", "scaledjob", "state"}),
		Paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kubedispatch_scaledjob_paused",
			Help: "1 when the ScaledJob is paused by the kubedispatch.io/paused annotation."}, sj),
		TickDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kubedispatch_tick_duration_seconds",
			Help: "Duration of one observe-decide-act tick, by result (ok, error, invalid, paused).", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)},
			[]string{"result"}),
		DecisionJobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kubedispatch_decision_jobs",
			Help: "Jobs the last decision asked for (before creation errors), per ScaledJob."}, sj),
		ScaledJobInvalid: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kubedispatch_scaledjob_invalid",
			Help: "1 when the ScaledJob's spec or trigger configuration is invalid (Ready=False), else 0."}, sj),
		Ticks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubedispatch_ticks_total",
			Help: "Ticks that observed fresh readings and decided, per ScaledJob (status is written only on change, so this is the witness of a tick)."}, sj),
		FailingBackoff: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kubedispatch_failing_jobs_backoff",
			Help: "1 while Job creation backs off because the ScaledJob's Jobs keep failing, else 0."}, sj),
		QueueReads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubedispatch_trigger_reads_total",
			Help: "Trigger readings sent to queues and metric APIs, by trigger type."}, []string{"type"}),
		StatusWrites: prometheus.NewCounter(prometheus.CounterOpts{Name: "kubedispatch_status_writes_total",
			Help: "ScaledJob status updates sent to the API server (only on a material change)."}),
		JobsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubedispatch_jobs_finished_total",
			Help: "Jobs seen finishing, by result (succeeded: Complete; failed: Failed), per ScaledJob; every replica counts what its cache sees."},
			[]string{"namespace", "scaledjob", "result"}),
		MaxReplicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kubedispatch_scaledjob_max_replicas",
			Help: "The ScaledJob's effective maxReplicaCount at its last tick (in message mode: the most messages held at once)."}, sj),
		TickLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kubedispatch_tick_lag_seconds",
			Help:    "Seconds from when a ScaledJob's poll was due to when its tick decided.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}}),
	}
	if reg != nil {
		reg.MustRegister(m.JobsCreated, m.JobCreateErrors, m.JobsDeleted, m.TriggerBacklog, m.TriggerActive,
			m.TriggerErrors, m.TriggerLatency, m.Jobs, m.Paused, m.TickDuration, m.DecisionJobs, m.ScaledJobInvalid,
			m.StatusWrites, m.TickLag, m.QueueReads, m.FailingBackoff, m.Ticks, m.JobsFinished, m.MaxReplicas)
	}
	return m
}

// startCounters exports a ScaledJob's counters from 0 (once they exist, this adds nothing), so that rate() and
// increase() see their first increment and alerts can refer to them before anything went wrong.
func (m *Metrics) startCounters(namespace, name string) {
	m.JobsCreated.WithLabelValues(namespace, name).Add(0)
	m.JobCreateErrors.WithLabelValues(namespace, name).Add(0)
	for _, reason := range []string{"history", "rollout"} {
		m.JobsDeleted.WithLabelValues(namespace, name, reason).Add(0)
	}
	for _, result := range []string{"succeeded", "failed"} {
		m.JobsFinished.WithLabelValues(namespace, name, result).Add(0)
	}
}

// forget removes the per-ScaledJob series of a deleted ScaledJob.
func (m *Metrics) forget(namespace, name string) {
	l := prometheus.Labels{"namespace": namespace, "scaledjob": name}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.JobsCreated, m.JobCreateErrors, m.JobsDeleted, m.TriggerBacklog, m.TriggerActive, m.TriggerErrors, m.Jobs,
		m.Paused, m.DecisionJobs, m.ScaledJobInvalid, m.FailingBackoff, m.Ticks, m.JobsFinished, m.MaxReplicas} {
		v.DeletePartialMatch(l)
	}
}
