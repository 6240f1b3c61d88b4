package cron

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/kubedispatch/kubedispatch/sources"
)

// Type is the trigger type this package implements.
const Type = "cron"

// Metadata keys of the cron trigger.
const (
	keyTimezone        = "timezone"
	keyStart           = "start"
	keyEnd             = "end"
	keyDesiredReplicas = "desiredReplicas"
	// keyRunsPerWindow and keyStartingDeadline are this project's own: exactly N Jobs per window occurrence, and
	// how late after its start an occurrence may still be served after downtime.
	keyRunsPerWindow    = "runsPerWindow"
	keyStartingDeadline = "startingDeadlineSeconds"
)

// MaxRunsPerWindow is the largest runsPerWindow accepted.
const MaxRunsPerWindow = 1000000

// Register adds the cron factory to r, with the endpoint rule sources.NoEndpoints: cron talks to no service.
func Register(r *sources.Registry) error {
	if err := r.Register(Type, New); err != nil {
		return err
	}
	return r.RegisterEndpoints(Type, sources.NoEndpoints)
}

// Metadata is a parsed cron trigger.
type Metadata struct {
	// Timezone, Start and End are the trigger's metadata as written.
	Timezone, Start, End string
	// DesiredReplicas is the backlog while the window is open (ignored with RunsPerWindow).
	DesiredReplicas int64
	// RunsPerWindow, when above 0, makes the trigger want exactly that many Jobs per window occurrence in total.
	RunsPerWindow int64
	// StartingDeadline bounds how late after an occurrence's start it is still served for the first time; 0 = only
	// while the window is open.
	StartingDeadline time.Duration
	// Schedule is the parsed window.
	Schedule Schedule
}

// MaxDesiredReplicas is the largest desiredReplicas accepted: far above the 150000 pods Kubernetes is tested with
// per cluster, so it refuses only plain mistakes.
const MaxDesiredReplicas = 1000000

// Parse validates a cron trigger configuration. All four keys are required; desiredReplicas must be at least 1.
// Every error is a *sources.ConfigError.
func Parse(cfg sources.Config) (Metadata, error) {
	p := cfg.Params()
	var m Metadata
	var err error
	// actual maps the field ParseSchedule names to the field the value came from (e.g. metadata.startFromEnv).
	actual := map[string]string{}
	for _, kv := range []struct {
		key string
		dst *string
	}{{keyTimezone, &m.Timezone}, {keyStart, &m.Start}, {keyEnd, &m.End}} {
		var field string
		if *kv.dst, field, err = p.Value(kv.key, false); err != nil {
			return Metadata{}, err
		}
		actual[sources.MetadataField(kv.key)] = field
	}
	if m.Schedule, err = ParseSchedule(m.Timezone, m.Start, m.End); err != nil {
		return Metadata{}, hideValue(err, actual)
	}
	if m.RunsPerWindow, err = p.Int64(keyRunsPerWindow, 0); err != nil {
		return Metadata{}, err
	}
	if p.Has(keyRunsPerWindow) && (m.RunsPerWindow < 1 || m.RunsPerWindow > MaxRunsPerWindow) {
		_, field, _, _ := p.Lookup(keyRunsPerWindow)
		return Metadata{}, sources.ConfigErrorf(field,
			"must be from 1 to %d Jobs per window occurrence, got %s", MaxRunsPerWindow, sources.QuoteNumber(keyRunsPerWindow, field, m.RunsPerWindow))
	}
	deadline, err := p.Int64(keyStartingDeadline, 0)
	if err != nil {
		return Metadata{}, err
	}
	if p.Has(keyStartingDeadline) {
		_, field, _, _ := p.Lookup(keyStartingDeadline)
		switch {
		case m.RunsPerWindow == 0:
			return Metadata{}, sources.ConfigErrorf(field, "applies only with metadata.%s (a once-per-window batch); remove it or set %s", keyRunsPerWindow, keyRunsPerWindow)
		case deadline < 1 || deadline > 366*24*3600:
			return Metadata{}, sources.ConfigErrorf(field, "must be from 1 to %d seconds, got %s", 366*24*3600, sources.QuoteNumber(keyStartingDeadline, field, deadline))
		}
		m.StartingDeadline = time.Duration(deadline) * time.Second
	}
	if m.RunsPerWindow > 0 && !p.Has(keyDesiredReplicas) {
		return m, nil // desiredReplicas means nothing to a once-per-window batch; KEDA manifests may still carry it
	}
	if m.DesiredReplicas, err = p.RequiredInt64(keyDesiredReplicas); err != nil {
		return Metadata{}, err
	}
	if m.DesiredReplicas < 1 || m.DesiredReplicas > MaxDesiredReplicas {
		_, field, _, _ := p.Lookup(keyDesiredReplicas)
		return Metadata{}, sources.ConfigErrorf(field,
			"must be from 1 to %d, got %s", MaxDesiredReplicas, sources.QuoteNumber(keyDesiredReplicas, field, m.DesiredReplicas))
	}
	return m, nil
}

// hideValue replaces a ParseSchedule error about a value that did not come from literal metadata (ParseSchedule
// quotes what it parses) by one that names the field it came from and does not quote it.
func hideValue(err error, actual map[string]string) error {
	var ce *sources.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	field, ok := actual[ce.Field]
	if !ok || field == ce.Field {
		return err
	}
	return sources.ConfigErrorf(field, "%s is not a valid %s (the reason is not shown, as it would quote the value)",
		sources.HiddenValue, strings.TrimPrefix(ce.Field, "metadata."))
}

// Source reports desiredReplicas while the cron window is open. It does no I/O and is safe for concurrent use.
type Source struct {
	meta Metadata
}

var _ sources.Source = (*Source)(nil)

// New is the cron sources.Factory.
func New(_ context.Context, cfg sources.Config) (sources.Source, error) {
	m, err := Parse(cfg)
	if err != nil {
		return nil, err
	}
	return &Source{meta: m}, nil
}

// Metadata returns the parsed trigger metadata.
func (s *Source) Metadata() Metadata {
	return s.meta
}

// Backlog returns desiredReplicas (target 1, active) while the window is open at now, and 0 (inactive) otherwise.
// With runsPerWindow it returns runsPerWindow and the occurrence it is about (the open one, else the latest that
// opened before now), active while that occurrence is open or within its starting deadline: the dispatcher
// subtracts the Jobs it created for the occurrence. It never fails.
func (s *Source) Backlog(_ context.Context, now time.Time) (sources.Backlog, error) {
	active, _, _ := Window(s.meta.Schedule, now)
	b := sources.Backlog{Target: 1, Active: active, SampledAt: now}
	if s.meta.RunsPerWindow > 0 {
		occ, ok := LatestOccurrence(s.meta.Schedule, now)
		if !ok {
			b.Active = false
			return b, nil
		}
		b.Occurrence = &sources.Occurrence{Start: occ.Start, End: occ.End, Open: occ.Open, Runs: s.meta.RunsPerWindow,
			StartingDeadline: s.meta.StartingDeadline}
		b.Active = occ.Open || (s.meta.StartingDeadline > 0 && !now.After(occ.Start.Add(s.meta.StartingDeadline)))
		if b.Active {
			b.Value = float64(s.meta.RunsPerWindow)
		}
		return b, nil
	}
	if active {
		b.Value = float64(s.meta.DesiredReplicas)
	}
	return b, nil
}

// Close does nothing; it is safe to call more than once.
func (s *Source) Close() error {
	return nil
}
