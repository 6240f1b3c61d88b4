package message

import "github.com/prometheus/client_golang/prometheus"

// Metrics are message mode's Prometheus metrics (prefix kubedispatch_).
type Metrics struct {
	// DispatchLatency is enqueue -> Job created, in seconds.
	DispatchLatency *prometheus.HistogramVec
	// Messages counts messages by action: received, acked, released, dead_lettered.
	Messages *prometheus.CounterVec
	// LeaseErrors counts failed lease renewals (lost leases included).
	LeaseErrors *prometheus.CounterVec
	// Held is the number of messages held now.
	Held *prometheus.GaugeVec
}

// NewMetrics builds the metrics and registers them on reg (nil: not registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	sj := []string{"namespace", "scaledjob"}
	m := &Metrics{
		DispatchLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kubedispatch_message_dispatch_latency_seconds",
			Help:    "Seconds from a message's enqueue (the queue's own timestamp) to its Job's creation, message mode.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}}, sj),
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubedispatch_messages_total",
			Help: "Messages handled in message mode, by action: received, acked (deleted after the Job completed), released (handed back after a failed Job), dead_lettered."},
			[]string{"namespace", "scaledjob", "action"}),
		LeaseErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubedispatch_message_lease_renew_errors_total",
			Help: "Failed lease renewals of held messages (a lost lease included), message mode."}, sj),
		Held: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kubedispatch_messages_held",
			Help: "Messages whose lease the dispatcher holds now, message mode."}, sj),
	}
	if reg != nil {
		reg.MustRegister(m.DispatchLatency, m.Messages, m.LeaseErrors, m.Held)
	}
	return m
}

func (m *Metrics) forget(namespace, name string) {
	l := prometheus.Labels{"namespace": namespace, "scaledjob": name}
	m.DispatchLatency.DeletePartialMatch(l)
	m.Messages.DeletePartialMatch(l)
	m.LeaseErrors.DeletePartialMatch(l)
	m.Held.DeletePartialMatch(l)
}
