package dispatch

import (
	"context"
	"fmt"
	"time"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/sources"
)

// LiveReading is one trigger read on demand.
type LiveReading struct {
	// Name is the trigger's name or "<type>[<index>]".
	Name    string
	Backlog sources.Backlog
	// Err is the reading's or the trigger's configuration error (credentials included).
	Err error
}

// ReadTriggersNow resolves sj's trigger configurations (TriggerAuthentications, Secrets, env) with r's clients,
// builds each trigger's source through r's registry (and so its endpoint policy) and reads it once, each within
// r.TriggerTimeout (10 s when unset). It is what the pollers do, without their schedule, stores or back-off, for
// `kubectl dispatch explain --live`. A configuration that cannot be resolved fails every trigger with that error.
func (r *Reconciler) ReadTriggersNow(ctx context.Context, sj *v1alpha1.ScaledJob, now time.Time) []LiveReading {
	out := make([]LiveReading, len(sj.Spec.Triggers))
	for i, t := range sj.Spec.Triggers {
		out[i].Name = t.EffectiveName(i)
	}
	cfgs, err := r.resolveConfigs(ctx, sj)
	if err != nil {
		for i := range out {
			out[i].Err = fmt.Errorf("resolving the trigger configuration: %w", err)
		}
		return out
	}
	timeout := r.TriggerTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	for i, cfg := range cfgs {
		src, err := r.Registry.New(ctx, cfg)
		if err != nil {
			out[i].Err = err
			continue
		}
		tctx, cancel := context.WithTimeout(ctx, timeout)
		out[i].Backlog, out[i].Err = src.Backlog(tctx, now)
		cancel()
		_ = src.Close()
	}
	return out
}
