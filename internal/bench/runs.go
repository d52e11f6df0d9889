package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/runnel-dev/runnel"
)

// runsConcurrency is how many runs the saturation phase keeps in flight.
const runsConcurrency = 256

// runs: trigger → completed for one-step runs. First the rate at
// saturation (runsConcurrency clients each triggering a run and waiting for
// its result, again and again), then trigger → result latency with runs
// triggered on a schedule at half that rate.
func runs(ctx context.Context, o Options) ([]Measurement, error) {
	c, err := startCluster(ctx, o, 1)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := c.startWorkers(ctx, 1, c.urls[0], 2*runsConcurrency); err != nil {
		return nil, err
	}
	client, err := c.sdkClient(c.urls[0])
	if err != nil {
		return nil, err
	}
	one := func(ctx context.Context) (time.Duration, error) {
		start := time.Now()
		id, err := client.Admin().RunWorkflow(ctx, Noop, nil)
		if err != nil {
			return 0, fmt.Errorf("trigger bench-noop: %w", err)
		}
		ev, err := awaitRun(ctx, client, id)
		if err != nil {
			return 0, err
		}
		if ev.Type != runnel.EventRunCompleted {
			return 0, fmt.Errorf("bench-noop run %s ended %s", id, ev.Type)
		}
		return time.Since(start), nil
	}
	closedLoop := func(d time.Duration) (int64, error) {
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		var done atomic.Int64
		g, gctx := errgroup.WithContext(context.WithoutCancel(ctx))
		for range runsConcurrency {
			g.Go(func() error {
				for ctx.Err() == nil {
					if _, err := one(gctx); err != nil {
						return err
					}
					done.Add(1)
				}
				return nil
			})
		}
		err := g.Wait()
		return done.Load(), err
	}
	warm := min(time.Second, o.Duration/2)
	o.progress("runs: warming up for %v", warm)
	if _, err := closedLoop(warm); err != nil {
		return nil, err
	}
	o.progress("runs: saturation with %d runs in flight for %v", runsConcurrency, o.Duration)
	start := time.Now()
	completed, err := closedLoop(o.Duration)
	if err != nil {
		return nil, err
	}
	saturation := float64(completed) / time.Since(start).Seconds()

	rate := max(saturation/2, 1)
	o.progress("runs: latency at %.0f runs/s for %v", rate, o.Duration)
	interval := time.Duration(float64(time.Second) / rate)
	var (
		mu  sync.Mutex
		lat []time.Duration
	)
	g, gctx := errgroup.WithContext(ctx)
	begin := time.Now()
	for i := 0; ; i++ {
		due := begin.Add(time.Duration(i) * interval)
		if due.Sub(begin) >= o.Duration {
			break
		}
		if wait := time.Until(due); wait > 0 {
			select {
			case <-time.After(wait):
			case <-gctx.Done():
			}
		}
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			d, err := one(gctx)
			if err != nil {
				return err
			}
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sorted := sortDurations(lat)
	// The case names stay the same from run to run (the paced rate is a
	// figure of its own), so --repeat takes the median of like with like.
	const paced = "paced at half the saturation rate"
	return []Measurement{
		measurement(fmt.Sprintf("saturation, %d in flight", runsConcurrency), "runs completed", saturation, "runs/s", atLeast(2000, 1000)),
		measurement(paced, "rate", rate, "runs/s", nil),
		measurement(paced, "trigger→result p50", percentile(sorted, 50), "ms", atMost(5, 10)),
		measurement(paced, "trigger→result p99", percentile(sorted, 99), "ms", nil),
	}, nil
}
