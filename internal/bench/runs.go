package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/runnel-dev/runnel"
)

// runsClients are the saturation phase's client counts: each client
// triggers a run and waits for its result, again and again.
var runsClients = []int{64, 256}

// runs: trigger → completed for one-step runs. First the rate at
// saturation with 64 and then 256 clients, with trigger → result latency
// under that load, then trigger → result latency with runs triggered on a
// schedule at half the rate. Limits: bare commit round trips per second
// from as many clients, and one commit's round trip.
func runs(ctx context.Context, o Options) ([]Measurement, error) {
	c, err := startCluster(ctx, o, 1)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := c.startWorkers(ctx, 1, c.urls[0], 2*slices.Max(runsClients)); err != nil {
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
	closedLoop := func(clients int, d time.Duration) (int64, []time.Duration, error) {
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		var (
			done atomic.Int64
			mu   sync.Mutex
			lat  []time.Duration
		)
		g, gctx := errgroup.WithContext(context.WithoutCancel(ctx))
		for range clients {
			g.Go(func() error {
				var mine []time.Duration
				for ctx.Err() == nil {
					d, err := one(gctx)
					if err != nil {
						return err
					}
					mine = append(mine, d)
					done.Add(1)
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
				return nil
			})
		}
		err := g.Wait()
		return done.Load(), lat, err
	}
	raw, err := c.rawLimits(ctx, o)
	if err != nil {
		return nil, err
	}
	defer raw.close()
	var out []Measurement
	warm := min(time.Second, o.Duration/2)
	o.progress("runs: warming up for %v", warm)
	if _, _, err := closedLoop(slices.Max(runsClients), warm); err != nil {
		return nil, err
	}
	var saturation float64
	for _, clients := range runsClients {
		o.progress("runs: saturation with %d clients for %v", clients, o.Duration)
		txBefore, _ := counterSum(ctx, c.urls[0], "runnel_store_write_transactions_total")
		start := time.Now()
		completed, lat, err := closedLoop(clients, o.Duration)
		if err != nil {
			return nil, err
		}
		txAfter, txErr := counterSum(ctx, c.urls[0], "runnel_store_write_transactions_total")
		rate := float64(completed) / time.Since(start).Seconds()
		saturation = max(saturation, rate)
		sorted := sortDurations(lat)
		name := fmt.Sprintf("saturation, %d clients", clients)
		ms := []Measurement{
			measurement(name, "runs completed", rate, "runs/s", atLeast(3000, 1500)),
			measurement(name, "trigger→result p50", percentile(sorted, 50), "ms", nil),
		}
		if clients == 64 {
			ms[1].goal = atMost(50, 50)
		}
		if txErr == nil && completed > 0 {
			// Every write transaction of the engine in the window (a few
			// of them maintenance), per run completed.
			ms = append(ms, measurement(name, "store write transactions per run", (txAfter-txBefore)/float64(completed), "tx", nil))
		}
		if raw != nil {
			o.progress("runs: limit: bare commits from %d clients", clients)
			lim, err := raw.commitLimit(ctx, clients, limitDuration(o))
			if err != nil {
				return nil, err
			}
			ms[0] = withLimit(ms[0], fmt.Sprintf("%s, %d clients", commitWhat, clients), lim.perSecond, "commits/s")
			ms[1] = withLimit(ms[1], fmt.Sprintf("%s, %d clients", commitWhat, clients), lim.p50, "ms")
		}
		out = append(out, ms...)
	}

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
	ms := []Measurement{
		measurement(paced, "rate", rate, "runs/s", nil),
		measurement(paced, "trigger→result p50", percentile(sorted, 50), "ms", atMost(5, 10)),
		measurement(paced, "trigger→result p99", percentile(sorted, 99), "ms", nil),
	}
	if raw != nil {
		lim, err := raw.commitLimit(ctx, 1, limitDuration(o))
		if err != nil {
			return nil, err
		}
		ms[1] = withLimit(ms[1], commitWhat+", 1 client", lim.p50, "ms")
		ms[2] = withLimit(ms[2], commitWhat+", 1 client", lim.p99, "ms")
	}
	return append(out, ms...), nil
}
