package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/runnel-dev/runnel"
)

// fanout: one run streaming to many SSE subscribers, 1k subscribers × 100
// events/s and 10k × 10 events/s (100k deliveries/s each), then a join
// storm: 2k subscribers joining a 10 events/s run from its start at once,
// after it has run for a while (viewers of a popular run). Figures:
// deliveries/s, latency, whether every subscriber got every event once and
// in order, and the engine's peak RSS. Each case runs again against a plain
// SSE server sending the same frames to the same number of connections,
// the limit its latencies are compared with.
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
	engine := fanoutTarget{
		token: c.token,
		start: func(ctx context.Context, startAt time.Time, rate int, d time.Duration) (string, string, func() (EmitOutput, error), error) {
			runID, err := client.Admin().RunWorkflow(ctx, Emit, EmitInput{StartAtNs: startAt.UnixNano(), Rate: rate, Size: 100, DurationMs: d.Milliseconds()})
			if err != nil {
				return "", "", nil, fmt.Errorf("trigger bench-emit: %w", err)
			}
			return c.urls[0], "/api/v1/runs/" + runID + "/stream", func() (EmitOutput, error) { return emitOutput(ctx, client, runID) }, nil
		},
	}
	if len(c.nodes) > 0 {
		engine.rss = c.nodes[0].rss
	}
	var out []Measurement
	for _, tc := range []struct {
		subs, rate int
		join       time.Duration // how long the run goes before everyone joins; 0: all connect before it starts
		p99Goal    *goal
		rssGoal    *goal
	}{
		{1000, 100, 0, atMost(20, 20), nil},
		{10000, 10, 0, atMost(50, 50), atMost(400, 400)},
		{2000, 10, 5 * time.Second, nil, nil},
	} {
		subs := max(int(math.Round(float64(tc.subs)*o.Scale)), 1)
		join := time.Duration(float64(tc.join) * min(o.Scale, 1))
		ms, err := fanoutCase(ctx, o, engine, subs, tc.rate, join)
		if err != nil {
			return nil, err
		}
		// The same case against the plain server: the limit.
		pt, stop, err := c.plainSSETarget(ctx)
		if err != nil {
			return nil, err
		}
		o.progress("fanout: the same against a plain SSE server")
		lim, err := fanoutCase(ctx, o, pt, subs, tc.rate, join)
		stop()
		if err != nil {
			return nil, fmt.Errorf("plain SSE server: %w", err)
		}
		limits := map[string]float64{}
		for _, m := range lim {
			limits[m.Metric] = m.Value
		}
		for i, m := range ms {
			switch m.Metric {
			case "p50", "p99":
				ms[i] = withLimit(m, "plain Go SSE server, same frames and connections", limits[m.Metric], "ms")
				if m.Metric == "p99" {
					ms[i].goal = tc.p99Goal
				}
			case "deliveries":
				ms[i] = withLimit(m, "plain Go SSE server, same frames and connections", limits[m.Metric], "ev/s")
			case "engine peak RSS":
				ms[i].goal = tc.rssGoal
			}
		}
		out = append(out, ms...)
	}
	return out, nil
}

// fanoutTarget is what a fan-out case subscribes to: the engine, or the
// plain SSE server.
type fanoutTarget struct {
	token string
	// start begins a stream of 100-byte events at rate from startAt for d,
	// and returns where to subscribe (host, path) and a wait for what was
	// sent.
	start func(ctx context.Context, startAt time.Time, rate int, d time.Duration) (host, path string, wait func() (EmitOutput, error), err error)
	rss   func() (int64, error) // the engine's, when it is one
}

func fanoutCase(ctx context.Context, o Options, t fanoutTarget, subs, rate int, join time.Duration) ([]Measurement, error) {
	warm := min(time.Second, o.Duration/2)
	// Subscribers connect before the step starts putting; whatever they
	// miss of the warm-up they read back from the log. In a join storm the
	// run goes for a while first, then every subscriber joins at once.
	// (10,000 SSE subscriptions on PostgreSQL took over 4 s to open here.)
	connectBudget := time.Second + time.Duration(subs)*time.Millisecond
	if join > 0 {
		connectBudget, warm = 300*time.Millisecond, 0
	}
	startAt := time.Now().Add(connectBudget)
	if join > 0 {
		o.progress("fanout: %d SSE subscribers joining a %d events/s stream from its start after %v, for %v", subs, rate, join, o.Duration)
	} else {
		o.progress("fanout: %d SSE subscribers × %d events/s for %v", subs, rate, o.Duration)
	}
	host, path, wait, err := t.start(ctx, startAt, rate, connectBudget+join+warm+o.Duration)
	if err != nil {
		return nil, err
	}

	// The measured window opens a warm-up after every subscriber is
	// connected and the step started, and lasts the duration. In a join
	// storm it opens when the storm starts and takes in the history: a
	// replayed event's latency runs from the moment its subscriber asked.
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
	if join > 0 {
		storm := startAt.Add(join)
		if d := time.Until(storm); d > 0 {
			time.Sleep(d) // the run's history builds up
		}
		windowFrom.Store(0)
		windowTo.Store(time.Now().Add(o.Duration).UnixNano())
	}
	connected.Add(subs)
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(gctx)
	dials := make(chan struct{}, 64) // connection attempts at once
	if join > 0 {
		dials = make(chan struct{}, 1024)
	}
	for range subs {
		g.Go(func() error {
			dials <- struct{}{}
			asked := time.Now().UnixNano()
			next, closeFn, err := sseSubscribe(gctx, hc, host, path,
				url.Values{"types": {string(runnel.EventStepStream)}}, t.token)
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
					mine = append(mine, now.Sub(time.Unix(0, max(sent, asked))))
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
		if t.rss == nil {
			return
		}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, err := t.rss(); err == nil && rss > peakRSS.Load() {
				peakRSS.Store(rss)
			}
			select {
			case <-tick.C:
			case <-stopRSS:
				return
			}
		}
	}()

	connected.Wait()
	if join == 0 {
		from := time.Now()
		if startAt.After(from) {
			from = startAt
		}
		from = from.Add(warm)
		windowTo.Store(from.Add(o.Duration).UnixNano())
		windowFrom.Store(from.UnixNano())
	}
	emitted, err := wait()
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
	from := max(windowFrom.Load(), emitted.StartNs)
	window := min(time.Duration(windowTo.Load()-from), time.Duration(emitted.EndNs-from))
	if window <= 0 {
		return nil, fmt.Errorf("fanout: the stream stopped before the measured window opened")
	}
	sorted := sortDurations(lat)
	name := fmt.Sprintf("%d subscribers × %d ev/s", subs, rate)
	if join > 0 {
		name = fmt.Sprintf("%d subscribers joining from the start after %v", subs, join)
	}
	ms := []Measurement{
		measurement(name, "deliveries", float64(len(lat))/window.Seconds(), "ev/s", nil),
		measurement(name, "subscribers missing events", float64(broken), "", atMost(0, 0)),
		measurement(name, "p50", percentile(sorted, 50), "ms", nil),
		measurement(name, "p99", percentile(sorted, 99), "ms", nil),
	}
	if t.rss != nil {
		ms = append(ms, measurement(name, "engine peak RSS", float64(peakRSS.Load())/(1<<20), "MiB", nil))
	}
	return ms, nil
}

// plainSSETarget is a fan-out target served by a plain SSE server process
// (ServePlainSSE), started when the case starts its stream.
func (c *cluster) plainSSETarget(ctx context.Context) (fanoutTarget, func(), error) {
	var p *process
	t := fanoutTarget{start: func(ctx context.Context, startAt time.Time, rate int, d time.Duration) (string, string, func() (EmitOutput, error), error) {
		addr, err := freeAddr()
		if err != nil {
			return "", "", nil, err
		}
		ready := make(chan struct{})
		p, err = c.spawn("plain SSE server", ready, "bench-sse-server", "--addr", addr,
			"--rate", strconv.Itoa(rate), "--start-at-ns", strconv.FormatInt(startAt.UnixNano(), 10),
			"--duration", d.String())
		if err != nil {
			return "", "", nil, err
		}
		select {
		case <-ready:
		case <-p.Done():
			return "", "", nil, fmt.Errorf("plain SSE server exited: %s", tail(p.log))
		case <-ctx.Done():
			return "", "", nil, ctx.Err()
		}
		wait := func() (EmitOutput, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/done", nil)
			if err != nil {
				return EmitOutput{}, err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return EmitOutput{}, fmt.Errorf("plain SSE server: %w", err)
			}
			defer resp.Body.Close()
			var out EmitOutput
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				return EmitOutput{}, fmt.Errorf("plain SSE server: %w", err)
			}
			return out, nil
		}
		return "http://" + addr, "/", wait, nil
	}}
	stop := func() {
		if p != nil {
			p.stop()
		}
	}
	return t, stop, nil
}
