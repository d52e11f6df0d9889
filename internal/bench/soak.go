package bench

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/runnel-dev/runnel"
)

// Soak workload: a run is triggered every soakEvery; each streams
// soakRunEvents/s for soakRunLength and is followed by a Go SDK subscriber,
// every other one also by an SSE client. At the defaults about 20 runs
// stream at once, 4,000 events/s are stored and 6,000 delivered.
const (
	soakEvery     = 100 * time.Millisecond
	soakRunEvents = 200
	soakRunLength = 2 * time.Second
	soakSamples   = 20
)

// soak: steady runs and subscribers for --duration (10 minutes for the
// documented soak), reporting throughput, latency percentiles, engine RSS
// and open file descriptors over time, so memory growth shows.
func soak(ctx context.Context, o Options) ([]Measurement, error) {
	c, err := startCluster(ctx, o, 1)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := c.startWorkers(ctx, 1, c.urls[0], 64); err != nil {
		return nil, err
	}
	client, err := c.sdkClient(c.urls[0])
	if err != nil {
		return nil, err
	}
	hc := sseHTTPClient()

	var (
		mu        sync.Mutex
		lat       []time.Duration // since the last sample
		delivered atomic.Int64
		completed atomic.Int64
	)
	record := func(sent int64, now time.Time) {
		mu.Lock()
		lat = append(lat, now.Sub(time.Unix(0, sent)))
		mu.Unlock()
		delivered.Add(1)
	}
	follow := func(ctx context.Context, runID string, sse bool) error {
		var seq sequence
		if sse {
			next, closeFn, err := sseSubscribe(ctx, hc, c.urls[0], "/api/v1/runs/"+runID+"/stream",
				url.Values{"types": {string(runnel.EventStepStream)}}, c.token)
			if err != nil {
				return err
			}
			defer closeFn()
			for {
				ev, err := next()
				now := time.Now()
				if err == io.EOF {
					break
				}
				if err != nil {
					return fmt.Errorf("SSE subscriber: %w", err)
				}
				sent, s, err := decodeHeader([]byte(ev.Payload))
				if err != nil {
					return err
				}
				seq.see(s)
				record(sent, now)
			}
		} else {
			for ev, err := range client.Listener().Stream(ctx, runID, runnel.WithTypes(runnel.EventStepStream, runnel.EventRunCompleted)) {
				now := time.Now()
				if err != nil {
					return fmt.Errorf("SDK subscriber: %w", err)
				}
				if ev.Type == runnel.EventRunCompleted {
					completed.Add(1)
					continue
				}
				sent, s, err := decodeHeader(ev.Payload)
				if err != nil {
					return err
				}
				seq.see(s)
				record(sent, now)
			}
		}
		return seq.check("subscriber of "+runID, soakRunEvents*int64(soakRunLength/time.Second))
	}

	interval := max(o.Duration/soakSamples, time.Second)
	o.progress("soak: a run every %v streaming %d events/s for %v, followed over the SDK and SSE, for %v (a sample every %v)",
		soakEvery, soakRunEvents, soakRunLength, o.Duration, interval)
	g, gctx := errgroup.WithContext(ctx)
	runCtx, stopRuns := context.WithTimeout(gctx, o.Duration)
	defer stopRuns()
	g.Go(func() error {
		t := time.NewTicker(soakEvery)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-runCtx.Done():
				return nil
			case <-t.C:
			}
			runID, err := client.Admin().RunWorkflow(gctx, Emit, EmitInput{
				Rate: soakRunEvents, Count: soakRunEvents * int64(soakRunLength/time.Second),
				DurationMs: (soakRunLength + 30*time.Second).Milliseconds(), Size: 100,
			})
			if err != nil {
				return fmt.Errorf("trigger bench-emit: %w", err)
			}
			g.Go(func() error { return follow(gctx, runID, false) })
			if i%2 == 0 {
				g.Go(func() error { return follow(gctx, runID, true) })
			}
		}
	})

	var out []Measurement
	start := time.Now()
	var firstRSS float64
	tick := time.NewTicker(interval)
	defer tick.Stop()
	lastDelivered, lastCompleted := int64(0), int64(0)
	for i := 1; ; i++ {
		select {
		case <-tick.C:
		case <-gctx.Done():
			return nil, g.Wait()
		}
		mu.Lock()
		sample := sortDurations(lat)
		lat = nil
		mu.Unlock()
		d, r := delivered.Load(), completed.Load()
		name := fmt.Sprintf("t=%4.0fs", time.Since(start).Seconds())
		secs := interval.Seconds()
		out = append(out,
			measurement(name, "runs completed", float64(r-lastCompleted)/secs, "runs/s", nil),
			measurement(name, "events delivered", float64(d-lastDelivered)/secs, "ev/s", nil),
			measurement(name, "p50", percentile(sample, 50), "ms", nil),
			measurement(name, "p99", percentile(sample, 99), "ms", nil))
		lastDelivered, lastCompleted = d, r
		if len(c.nodes) > 0 {
			rss, _ := c.nodes[0].rss()
			mib := float64(rss) / (1 << 20)
			if i == max(soakSamples/5, 1) {
				firstRSS = mib // after warm-up: a fifth of the way in
			}
			out = append(out, measurement(name, "engine RSS", mib, "MiB", nil),
				measurement(name, "engine open fds", float64(openFDs(c.nodes[0])), "", nil))
		}
		if time.Since(start) >= o.Duration {
			break
		}
	}
	stopRuns()
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if len(c.nodes) > 0 && firstRSS > 0 {
		rss, _ := c.nodes[0].rss()
		growth := (float64(rss)/(1<<20) - firstRSS) / firstRSS * 100
		// Read once the load has stopped (every subscriber has ended).
		out = append(out, measurement("whole soak", "RSS after the load vs. after warm-up", growth, "%", nil))
	}
	return out, nil
}

// openFDs counts a process's open file descriptors (sockets, files).
func openFDs(p *process) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.Pid()))
	if err != nil {
		return -1
	}
	return len(entries)
}
