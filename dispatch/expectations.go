package dispatch

import (
	"sync"
	"time"
)

// expectations remembers, per ScaledJob, the Jobs this process created that the informer cache may not show yet,
// so the next tick counts them as running instead of creating them again (KEDA has no such guard, §2.7 f).
// An entry is dropped once the cache shows the Job, or after ttl as a safety net against a create that the API
// server accepted but whose Job was deleted before the cache saw it.
type expectations struct {
	mu  sync.Mutex
	ttl time.Duration
	m   map[string]map[string]time.Time // ScaledJob namespace/name -> Job name -> creation time
}

func newExpectations(ttl time.Duration) *expectations {
	return &expectations{ttl: ttl, m: map[string]map[string]time.Time{}}
}

// expect records Jobs created at now.
func (e *expectations) expect(owner string, names []string, now time.Time) {
	if len(names) == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	set := e.m[owner]
	if set == nil {
		set = map[string]time.Time{}
		e.m[owner] = set
	}
	for _, n := range names {
		set[n] = now
	}
}

// unseen drops the names the cache shows (seen) and the expired ones, and returns the names still unseen.
func (e *expectations) unseen(owner string, seen map[string]bool, now time.Time) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	set := e.m[owner]
	var out []string
	for n, at := range set {
		if seen[n] || now.Sub(at) > e.ttl {
			delete(set, n)
			continue
		}
		out = append(out, n)
	}
	if len(set) == 0 {
		delete(e.m, owner)
	}
	return out
}

// forget drops everything about a ScaledJob.
func (e *expectations) forget(owner string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, owner)
}
