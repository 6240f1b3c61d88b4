package benchkit

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// JobSource lists and watches the Jobs of one namespace, with whichever client suits the caller.
type JobSource struct {
	// List lists the Jobs; the result is a list with a resource version.
	List func(context.Context, metav1.ListOptions) (kruntime.Object, error)
	// Watch watches the Jobs.
	Watch func(context.Context, metav1.ListOptions) (watch.Interface, error)
}

// WatchJobs lists the Jobs of ns that match selector (there must be none) and watches them from that list's
// resource version, resuming when the API server ends the watch. It calls observe with every event but errors and
// bookmarks, and the time it was received, and fail with the error that ended the watch. The watch is established
// when it returns; stop ends it and waits until it has ended.
func WatchJobs(ctx context.Context, ns, selector string, src JobSource, observe func(watch.Event, time.Time), fail func(error)) (stop func(), err error) {
	list, err := src.List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("listing Jobs in %s: %w", ns, err)
	}
	if n := meta.LenList(list); n > 0 {
		return nil, fmt.Errorf("namespace %s already holds %d Jobs", ns, n)
	}
	lm, err := meta.ListAccessor(list)
	if err != nil {
		return nil, fmt.Errorf("listing Jobs in %s: %w", ns, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	rv := lm.GetResourceVersion()
	opts := func() metav1.ListOptions {
		return metav1.ListOptions{LabelSelector: selector, ResourceVersion: rv, AllowWatchBookmarks: true}
	}
	wi, err := src.Watch(wctx, opts())
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watching Jobs in %s: %w", ns, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			for ev := range wi.ResultChan() {
				now := time.Now()
				if ev.Type == watch.Error {
					fail(fmt.Errorf("watching Jobs in %s: %w", ns, apierrors.FromObject(ev.Object)))
					wi.Stop()
					return
				}
				obj, err := meta.Accessor(ev.Object)
				if err != nil {
					continue
				}
				rv = obj.GetResourceVersion()
				if ev.Type != watch.Bookmark {
					observe(ev, now)
				}
			}
			if wctx.Err() != nil {
				return
			}
			// The API server ended the watch (its timeout): resume where it stopped.
			if wi, err = src.Watch(wctx, opts()); err != nil {
				if wctx.Err() == nil {
					fail(fmt.Errorf("watching Jobs in %s again: %w", ns, err))
				}
				return
			}
		}
	}()
	return func() { cancel(); <-done }, nil
}
