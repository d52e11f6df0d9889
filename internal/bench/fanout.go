package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/runnel-dev/runnel"
)

// fanout: one run streaming to many SSE subscribers, 1k subscribers × 100
// events/s and 10k × 10 events/s (100k deliveries/s each): deliveries/s,
// latency, whether every subscriber got every event once and in order, and
// the engine's peak RSS.
func fanout(ctx context.Context, o Options) ([]Measurement, error) {
	c, err := startCluster(ctx, o, 1)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := c.startWorkers(ctx, 1, c.urls[0], 4); err != nil {
		return nil, err
	}
	client, err := c.sdkClient(c.urls[0])
	if err != nil {
		return nil, err
	}
	var out []Measurement
	for _, tc := range []struct {
		subs, rate int
		rssGoal    *goal
	}{{1000, 100, nil}, {10000, 10, atMost(1024, 1024)}} {
		subs := max(int(math.Round(float64(tc.subs)*o.Scale)), 1)
		ms, err := fanoutCase(ctx, o, c, client, subs, tc.rate, tc.rssGoal)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

func fanoutCase(ctx context.Context, o Options, c *cluster, client *runnel.Client, subs, rate int, rssGoal *goal) ([]Measurement, error) {
	warm := min(time.Second, o.Duration/2)
	// Subscribers connect before the step starts putting; whatever they
	// miss of the warm-up they read back from the log.
	connectBudget := time.Second + time.Duration(subs)*300*time.Microsecond
	startAt := time.Now().Add(connectBudget)
	o.progress("fanout: %d SSE subscribers × %d events/s for %v", subs, rate, o.Duration)
	runID, err := client.Admin().RunWorkflow(ctx, Emit, EmitInput{
		StartAtNs: startAt.UnixNano(), Rate: rate, Size: 100,
		DurationMs: (connectBudget + warm + o.Duration).Milliseconds(),
	})
	if err != nil {
		return nil, fmt.Errorf("trigger bench-emit: %w", err)
	}

	// The measured window opens a warm-up after every subscriber is
	// connected and the step started, and lasts the duration.
	var windowFrom, windowTo atomic.Int64
	windowFrom.Store(math.MaxInt64)
	hc := sseHTTPClient()
	var (
		mu        sync.Mutex
		lat       []time.Duration
		broken    int // subscribers that lost, repeated or reordered events
		connected sync.WaitGroup
		lastSeqs  []*sequence
	)
	connected.Add(subs)
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(gctx)
	dials := make(chan struct{}, 64) // connection attempts at once
	for range subs {
		g.Go(func() error {
			dials <- struct{}{}
			next, closeFn, err := sseSubscribe(gctx, hc, c.urls[0], "/api/v1/runs/"+runID+"/stream",
				url.Values{"types": {string(runnel.EventStepStream)}}, c.token)
			<-dials
			connected.Done()
			if err != nil {
				return err
			}
			defer closeFn()
			var mine []time.Duration
			seq := new(sequence)
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
				if sent >= windowFrom.Load() && sent < windowTo.Load() {
					mine = append(mine, now.Sub(time.Unix(0, sent)))
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			lastSeqs = append(lastSeqs, seq)
			mu.Unlock()
			return nil
		})
	}

	// Peak engine RSS, sampled until the run ends.
	var peakRSS atomic.Int64
	rssDone := make(chan struct{})
	stopRSS := make(chan struct{})
	go func() {
		defer close(rssDone)
		if len(c.nodes) == 0 {
			return
		}
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, err := c.nodes[0].rss(); err == nil && rss > peakRSS.Load() {
				peakRSS.Store(rss)
			}
			select {
			case <-t.C:
			case <-stopRSS:
				return
			}
		}
	}()

	connected.Wait()
	from := time.Now()
	if startAt.After(from) {
		from = startAt
	}
	from = from.Add(warm)
	windowTo.Store(from.Add(o.Duration).UnixNano())
	windowFrom.Store(from.UnixNano())
	emitted, err := emitOutput(ctx, client, runID)
	if err == nil {
		err = g.Wait()
	} else {
		cancel()
		_ = g.Wait()
	}
	close(stopRSS)
	<-rssDone
	if err != nil {
		return nil, err
	}
	for i, s := range lastSeqs {
		if s.check(fmt.Sprintf("subscriber %d", i), emitted.Events) != nil {
			broken++
		}
	}
	window := min(time.Duration(windowTo.Load()-windowFrom.Load()), time.Duration(emitted.EndNs-windowFrom.Load()))
	if window <= 0 {
		return nil, fmt.Errorf("fanout: the step stopped before the measured window opened (subscribers took %v to connect)", time.Until(from))
	}
	sorted := sortDurations(lat)
	name := fmt.Sprintf("%d subscribers × %d ev/s", subs, rate)
	ms := []Measurement{
		measurement(name, "deliveries", float64(len(lat))/window.Seconds(), "ev/s", nil),
		measurement(name, "subscribers missing events", float64(broken), "", atMost(0, 0)),
		measurement(name, "p50", percentile(sorted, 50), "ms", nil),
		measurement(name, "p99", percentile(sorted, 99), "ms", atMost(50, 50)),
	}
	if len(c.nodes) > 0 {
		ms = append(ms, measurement(name, "engine peak RSS", float64(peakRSS.Load())/(1<<20), "MiB", rssGoal))
	}
	return ms, nil
}
