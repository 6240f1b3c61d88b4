package benchkit

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// ForEach calls fn(i) for i in [0, n) from workers goroutines and returns the first error, after which it stops
// handing out work. It prints progress every 10 s, naming what.
func ForEach(ctx context.Context, what string, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		once     sync.Once
		firstErr error
		wg       sync.WaitGroup
		mu       sync.Mutex
		done     int
	)
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					continue
				}
				mu.Lock()
				done++
				mu.Unlock()
			}
		}()
	}
	report := time.NewTicker(10 * time.Second)
	defer report.Stop()
feed:
	for i := range n {
		select {
		case next <- i:
		case <-report.C:
			mu.Lock()
			Note("%s: %d/%d", what, done, n)
			mu.Unlock()
			select {
			case next <- i:
			case <-ctx.Done():
				break feed
			}
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
