package benchkit

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

// WaitUntil calls check every interval until it returns true. It gives up when timeout passes or ctx ends (with the
// last error check returned), or at once when abort returns an error (a process that exited).
func WaitUntil(ctx context.Context, what string, timeout, interval time.Duration, abort func() error, check func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last error
	for {
		if abort != nil {
			if err := abort(); err != nil {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
		}
		ok, err := check()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting %s for %s: %w (last error: %v)", timeout, what, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// WaitScaledJob waits up to 2 minutes until ready holds for the ScaledJob at key, giving up when abort returns an
// error.
func WaitScaledJob(ctx context.Context, cl client.Client, key client.ObjectKey, what string, abort func() error, ready func(*v1alpha1.ScaledJob) bool) error {
	return WaitUntil(ctx, what+" of "+key.String(), 2*time.Minute, 200*time.Millisecond, abort, func() (bool, error) {
		var sj v1alpha1.ScaledJob
		if err := cl.Get(ctx, key, &sj); err != nil {
			return false, err
		}
		return ready(&sj), nil
	})
}
